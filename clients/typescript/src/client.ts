// VaultClient: every service of the vault on one channel, promise-based, with a deadline
// on every call, the retry policy of retries.ts, an idempotency key filled when the
// request has a `request_id`, a bearer token, and TLS or mutual TLS.
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { fromServiceError } from "./errors";
import { DEFAULT_RETRY, REQUEST_ID, requestFields, type RetryPolicy, serviceConfig } from "./retries";
import { SERVICES, type ServiceName, serviceConstructor, serviceDefinition } from "./services";
import type { CreateSubjectResponse__Output } from "./gen/customervault/v1/CreateSubjectResponse";
import type { GetSubjectResponse__Output } from "./gen/customervault/v1/GetSubjectResponse";
import type { SubjectMeta__Output } from "./gen/customervault/v1/SubjectMeta";
import type { SubjectView__Output } from "./gen/customervault/v1/SubjectView";

/** Milliseconds a call may take unless the caller gives its own `timeoutMs`. */
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface ClientOptions {
  /** Bearer token, or a function returning the current one (called for every call). */
  token?: string | (() => string);
  /** TLS with the system's roots (implied by caFile or a client certificate). */
  tls?: boolean;
  caFile?: string;
  /** Mutual TLS: the client's certificate chain and key (PEM files). */
  certFile?: string;
  keyFile?: string;
  timeoutMs?: number;
  /** null: never retry. */
  retry?: RetryPolicy | null;
}

export interface CallOptions { timeoutMs?: number }

export class VaultClient {
  readonly timeoutMs: number;
  private readonly stubs: Map<ServiceName, grpc.Client> = new Map();
  private readonly token: () => string;

  constructor(readonly address: string, options: ClientOptions = {}) {
    const token = options.token ?? "";
    this.token = typeof token === "function" ? token : () => token;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const retry = options.retry === undefined ? DEFAULT_RETRY : options.retry;
    const channelOptions: grpc.ChannelOptions = { "grpc.enable_retries": retry ? 1 : 0 };
    if (retry) {
      channelOptions["grpc.service_config"] = serviceConfig(retry);
    }
    if ((options.certFile === undefined) !== (options.keyFile === undefined)) {
      throw new Error("certFile and keyFile go together (mutual TLS)");
    }
    const secure = options.tls || options.caFile || options.certFile;
    const credentials = secure
      ? grpc.credentials.createSsl(
          options.caFile ? fs.readFileSync(options.caFile) : null,
          options.keyFile ? fs.readFileSync(options.keyFile) : null,
          options.certFile ? fs.readFileSync(options.certFile) : null,
        )
      : grpc.credentials.createInsecure();
    for (const name of Object.keys(SERVICES) as ServiceName[]) {
      const Stub = serviceConstructor(name);
      this.stubs.set(name, new Stub(address, credentials, channelOptions));
    }
  }

  close(): void {
    for (const stub of this.stubs.values()) {
      stub.close();
    }
  }

  /** Any unary method of any service, e.g. `call("consent", "GetConsent", {subjectId})`.
   * An empty `requestId` is filled with a UUID4 (in the object given) when the request
   * message has that field, so sending the same object again is an idempotent retry. */
  call<Response = unknown>(
    service: ServiceName, method: string, request: Record<string, unknown>, options: CallOptions = {},
  ): Promise<Response> {
    const definition = serviceDefinition(service)[method];
    if (definition === undefined || definition.responseStream) {
      return Promise.reject(new Error(`${service}.${method} is not a unary method`));
    }
    if (requestFields(definition).includes(REQUEST_ID) && !request.requestId) {
      request.requestId = randomUUID();
    }
    const stub = this.stubs.get(service) as unknown as Record<string, Function>;
    const deadline = new Date(Date.now() + (options.timeoutMs ?? this.timeoutMs));
    return new Promise((resolve, reject) => {
      stub[method].call(stub, request, this.metadata(), { deadline },
        (error: grpc.ServiceError | null, response: Response) => {
          if (error) {
            reject(fromServiceError(error));
          } else {
            resolve(response);
          }
        });
    });
  }

  async createSubject(fields: Record<string, string>, requestId?: string): Promise<SubjectMeta__Output> {
    const request: Record<string, unknown> = { fields };
    if (requestId) {
      request.requestId = requestId;
    }
    const response = await this.call<CreateSubjectResponse__Output>("vault", "CreateSubject", request);
    return response.subject as SubjectMeta__Output;
  }

  async getSubject(
    subjectId: string, view: string, purpose: string, justification = "",
  ): Promise<SubjectView__Output> {
    const response = await this.call<GetSubjectResponse__Output>(
      "vault", "GetSubject", { subjectId, view, purpose, justification },
    );
    return response.subject as SubjectView__Output;
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    const token = this.token();
    if (token) {
      metadata.set("authorization", `Bearer ${token}`);
    }
    return metadata;
  }
}
