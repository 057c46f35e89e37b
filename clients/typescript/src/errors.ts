// Typed errors built from the google.rpc.Status the vault puts in the
// `grpc-status-details-bin` trailer: BadRequest field violations, ErrorInfo, RetryInfo,
// PreconditionFailure, RequestInfo (decoded with protobufjs from proto/google/rpc).
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protobuf from "protobufjs";
import { PROTO_DIR } from "./services";

export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

export interface FieldViolation { field: string; description: string }
export interface PreconditionViolation { type: string; subject: string; description: string }

/** A call the vault refused (or that never reached it). */
export class VaultError extends Error {
  /** The status code's name, e.g. "NOT_FOUND". */
  readonly code: string;
  readonly grpcCode: grpc.status;
  /** BadRequest field violations. */
  violations: FieldViolation[] = [];
  /** ErrorInfo: a stable UPPER_SNAKE_CASE cause to branch on, its domain and metadata. */
  reason = "";
  domain = "";
  errorMetadata: Record<string, string> = {};
  /** RetryInfo: wait at least this many seconds before trying again. */
  retryDelaySeconds?: number;
  preconditions: PreconditionViolation[] = [];
  /** RequestInfo: quote it to the vault's operators. */
  requestId = "";

  constructor(grpcCode: grpc.status, message: string) {
    super(`${grpc.status[grpcCode]}: ${message}`);
    this.name = "VaultError";
    this.grpcCode = grpcCode;
    this.code = grpc.status[grpcCode] ?? String(grpcCode);
  }
}

let root: protobuf.Root | undefined;

function rpcTypes(): protobuf.Root {
  if (root === undefined) {
    root = new protobuf.Root();
    root.resolvePath = (_origin, target) =>
      target.startsWith("google/protobuf/") ? target : path.join(PROTO_DIR, target);
    root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"]);
  }
  return root;
}

type Decoded = Record<string, unknown>;

/** The typed error for a failed call's ServiceError. */
export function fromServiceError(error: grpc.ServiceError): VaultError {
  const typed = new VaultError(error.code, error.details || error.message);
  const raw = error.metadata?.get(STATUS_DETAILS_KEY)?.[0];
  if (!(raw instanceof Buffer)) {
    return typed;
  }
  const types = rpcTypes();
  const status = types.lookupType("google.rpc.Status").decode(raw) as unknown as {
    details: { type_url: string; value: Uint8Array }[];
  };
  for (const any of status.details ?? []) {
    const name = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
    let type: protobuf.Type;
    try {
      type = types.lookupType(name);
    } catch {
      continue;
    }
    const detail = type.toObject(type.decode(any.value), { longs: Number, defaults: true }) as Decoded;
    if (name === "google.rpc.BadRequest") {
      const list = detail.fieldViolations as FieldViolation[];
      typed.violations.push(...list.map((v) => ({ field: v.field, description: v.description })));
    } else if (name === "google.rpc.ErrorInfo") {
      typed.reason = detail.reason as string;
      typed.domain = detail.domain as string;
      typed.errorMetadata = (detail.metadata ?? {}) as Record<string, string>;
    } else if (name === "google.rpc.RetryInfo") {
      const delay = (detail.retryDelay ?? {}) as { seconds?: number; nanos?: number };
      typed.retryDelaySeconds = (delay.seconds ?? 0) + (delay.nanos ?? 0) / 1e9;
    } else if (name === "google.rpc.PreconditionFailure") {
      typed.preconditions = detail.violations as PreconditionViolation[];
    } else if (name === "google.rpc.RequestInfo") {
      typed.requestId = detail.requestId as string;
    }
  }
  return typed;
}
