// The vault's services, loaded at run time from proto/ (the repository's protos, copied
// and checked by `make protos-check`) with the same options the generated types in
// src/gen were made with (`npm run gen`).
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const PROTO_DIR = path.resolve(__dirname, "..", "..", "proto");

export const PROTO_FILES = [
  "customervault/v1/vault.proto",
  "customervault/v1/consent.proto",
  "customervault/v1/rights.proto",
  "customervault/v1/retention.proto",
  "customervault/v1/customers.proto",
  "customervault/v1/admin.proto",
  "customervault/v1/audit.proto",
];

/** The client's name for each service, as in the Python client. */
export const SERVICES = {
  vault: "customervault.v1.VaultService",
  consent: "customervault.v1.ConsentService",
  rights: "customervault.v1.RightsService",
  retention: "customervault.v1.RetentionService",
  customers: "customervault.v1.CustomerAccessService",
  admin: "customervault.v1.PolicyAdminService",
  audit: "customervault.v1.AuditService",
} as const;

export type ServiceName = keyof typeof SERVICES;

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
};

let loaded: protoLoader.PackageDefinition | undefined;

export function packageDefinition(): protoLoader.PackageDefinition {
  loaded ??= protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS);
  return loaded;
}

export function serviceDefinition(name: ServiceName): protoLoader.ServiceDefinition {
  return packageDefinition()[SERVICES[name]] as protoLoader.ServiceDefinition;
}

export function serviceConstructor(name: ServiceName): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(serviceDefinition(name), SERVICES[name]);
}
