"""The vault's gRPC services: the client's name for each, its modules and descriptor."""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType

from google.protobuf.descriptor import ServiceDescriptor

from customer_vault_client.gen.customervault.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    consent_pb2,
    consent_pb2_grpc,
    customers_pb2,
    customers_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    retention_pb2,
    retention_pb2_grpc,
    rights_pb2,
    rights_pb2_grpc,
    vault_pb2,
    vault_pb2_grpc,
)

SERVICES: Mapping[str, tuple[ModuleType, ModuleType, str]] = {
    "vault": (vault_pb2, vault_pb2_grpc, "VaultService"),
    "admin": (admin_pb2, admin_pb2_grpc, "PolicyAdminService"),
    "audit": (audit_pb2, audit_pb2_grpc, "AuditService"),
    "consent": (consent_pb2, consent_pb2_grpc, "ConsentService"),
    "rights": (rights_pb2, rights_pb2_grpc, "RightsService"),
    "retention": (retention_pb2, retention_pb2_grpc, "RetentionService"),
    "customers": (customers_pb2, customers_pb2_grpc, "CustomerAccessService"),
    "events": (events_pb2, events_pb2_grpc, "EventService"),
}
"""`VaultClient` attribute -> (messages module, stubs module, service name)."""


def descriptor(name: str) -> ServiceDescriptor:
    """The service descriptor of the client's service `name` (e.g. "consent")."""
    module, _, service = SERVICES[name]
    found: ServiceDescriptor = module.DESCRIPTOR.services_by_name[service]
    return found


def all_descriptors() -> list[ServiceDescriptor]:
    """Every service the vault serves (customervault.v1)."""
    return [descriptor(name) for name in SERVICES]
