// Which calls gRPC may retry by itself (the `grpc.service_config` channel option), by the
// same rule as the Python client: idempotent reads (read verbs, SubjectHistory,
// ExportView) and every method whose request has a `request_id` (the client fills one).
import type * as protoLoader from "@grpc/proto-loader";
import { SERVICES, serviceDefinition, type ServiceName } from "./services";

export const READ_VERBS = ["Get", "List", "Find", "Query", "Check", "Verify", "Explain", "Simulate"];
export const READS = new Set(["SubjectHistory", "ExportView"]);
export const REQUEST_ID = "request_id";

export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffSeconds: number;
  maxBackoffSeconds: number;
  backoffMultiplier: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4,
  initialBackoffSeconds: 0.2,
  maxBackoffSeconds: 3,
  backoffMultiplier: 2,
};

/** Field names of a method's request message, as the .proto spells them. */
export function requestFields(method: protoLoader.MethodDefinition<object, object>): string[] {
  const type = method.requestType.type as { field?: { name: string }[] };
  return (type.field ?? []).map((f) => f.name);
}

export function isRetryable(name: string, method: protoLoader.MethodDefinition<object, object>): boolean {
  return READS.has(name) || READ_VERBS.some((verb) => name.startsWith(verb)) ||
    requestFields(method).includes(REQUEST_ID);
}

export function retryableMethods(): { service: string; method: string }[] {
  const names: { service: string; method: string }[] = [];
  for (const service of Object.keys(SERVICES) as ServiceName[]) {
    for (const [name, method] of Object.entries(serviceDefinition(service))) {
      if (name[0] === name[0].toUpperCase() && isRetryable(name, method)) {
        names.push({ service: SERVICES[service], method: name });
      }
    }
  }
  return names;
}

export function serviceConfig(policy: RetryPolicy): string {
  return JSON.stringify({
    methodConfig: [
      {
        name: retryableMethods(),
        retryPolicy: {
          maxAttempts: policy.maxAttempts,
          initialBackoff: `${policy.initialBackoffSeconds}s`,
          maxBackoff: `${policy.maxBackoffSeconds}s`,
          backoffMultiplier: policy.backoffMultiplier,
          retryableStatusCodes: ["UNAVAILABLE"],
        },
      },
    ],
  });
}
