// A TypeScript client for Customer Vault's gRPC API (see README.md).
export { VaultClient, DEFAULT_TIMEOUT_MS, type ClientOptions, type CallOptions } from "./client";
export { VaultError, fromServiceError, type FieldViolation, type PreconditionViolation } from "./errors";
export { DEFAULT_RETRY, retryableMethods, serviceConfig, type RetryPolicy } from "./retries";
export { SERVICES, type ServiceName } from "./services";
export type { SubjectView__Output as SubjectView } from "./gen/customervault/v1/SubjectView";
export type { SubjectMeta__Output as SubjectMeta } from "./gen/customervault/v1/SubjectMeta";
