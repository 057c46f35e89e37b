"""Which servicer answers which generated service, and the interceptor chain in front.

The one place outside the servicers that names generated modules: `vault.app` hands the
domain services over and gets back what `VaultServer` registers, without importing grpc
or generated code itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
from sqlalchemy.engine import Engine

import audit
from audit.witness import WitnessClient
from vault.api.admin import PolicyAdminServicer
from vault.api.audit_service import AuditServicer
from vault.api.consent_service import ConsentServicer
from vault.api.customers_service import CustomerAccessServicer
from vault.api.errors import MAX_VIOLATIONS
from vault.api.events_service import EventServicer
from vault.api.interceptors import AuditStage, AuthenticationStage, Stage
from vault.api.retention_service import RetentionServicer
from vault.api.rights_service import RightsServicer
from vault.api.server import ServiceBinding, binding
from vault.api.servicer import VaultServicer
from vault.api.tracing import TracingStage
from vault.audit_trail import Auditor
from vault.consent.service import ConsentService
from vault.events.service import EventFeed
from vault.fields.dictionary import DataDictionary
from vault.identity import BearerVerifier, IdentityMap
from vault.policy import PolicyEngine
from vault.records.disclosure import DisclosureService
from vault.records.reader import RecordReader
from vault.records.service import RecordService
from vault.retention.service import RetentionService
from vault.rights.customer_access import CustomerAccess
from vault.rights.request_decisions import RequestDesk
from vault.rights.service import RightsService
from vault.whatif.service import WhatIfService


@dataclass(frozen=True)
class DomainServices:
    """Everything the servicers call into, as one vault process built it."""

    records: RecordService
    reader: RecordReader
    disclosures: DisclosureService
    consent: ConsentService
    rights: RightsService
    retention: RetentionService
    customers: CustomerAccess
    requests: RequestDesk
    events: EventFeed
    policy: PolicyEngine
    dictionary: DataDictionary
    audit_engine: Engine
    audit_verifier: audit.CheckpointVerifier
    whatif: WhatIfService
    audit_mac: audit.EntryMac | None = None
    witnesses: Sequence[WitnessClient] = ()


def _method(service: str, name: str) -> str:
    return f"/{vault_pb2.DESCRIPTOR.services_by_name[service].full_name}/{name}"


SHORT_READS = frozenset(
    _method("VaultService", name)
    for name in ("GetSubject", "FindSubjects", "RevealField", "Detokenize")
)
"""The reads a server may run on its event loop (`Settings.reads_on_loop`): short, a
read transaction and a group-committed audit entry, no write of their own."""


def interceptor_stages(
    auditor: Auditor, verifier: BearerVerifier, identities: IdentityMap
) -> list[Stage]:
    """The chain every call passes, outermost first: trace, audit, authenticate."""
    return [
        TracingStage(),
        AuditStage(auditor),
        AuthenticationStage(verifier, identities),
    ]


def service_bindings(
    services: DomainServices, max_violations: int = MAX_VIOLATIONS
) -> list[ServiceBinding]:
    """One binding per service of the `customervault.v1` contract."""
    vault = VaultServicer(
        services.records, services.reader, services.disclosures, max_violations=max_violations
    )
    admin = PolicyAdminServicer(services.policy, services.dictionary, services.whatif)
    log = AuditServicer(
        services.audit_engine,
        services.policy,
        services.audit_verifier,
        mac=services.audit_mac,
        witnesses=services.witnesses,
        whatif=services.whatif,
    )
    consent = ConsentServicer(services.consent)
    rights = RightsServicer(services.rights, services.requests.decisions)
    retention = RetentionServicer(services.retention)
    customers = CustomerAccessServicer(services.customers, services.requests.customers)
    feed = EventServicer(services.events)
    return [
        binding(
            vault_pb2, "VaultService", vault_pb2_grpc.add_VaultServiceServicer_to_server, vault
        ),
        binding(
            admin_pb2,
            "PolicyAdminService",
            admin_pb2_grpc.add_PolicyAdminServiceServicer_to_server,
            admin,
        ),
        binding(audit_pb2, "AuditService", audit_pb2_grpc.add_AuditServiceServicer_to_server, log),
        binding(
            consent_pb2,
            "ConsentService",
            consent_pb2_grpc.add_ConsentServiceServicer_to_server,
            consent,
        ),
        binding(
            rights_pb2,
            "RightsService",
            rights_pb2_grpc.add_RightsServiceServicer_to_server,
            rights,
        ),
        binding(
            retention_pb2,
            "RetentionService",
            retention_pb2_grpc.add_RetentionServiceServicer_to_server,
            retention,
        ),
        binding(
            customers_pb2,
            "CustomerAccessService",
            customers_pb2_grpc.add_CustomerAccessServiceServicer_to_server,
            customers,
        ),
        binding(
            events_pb2, "EventService", events_pb2_grpc.add_EventServiceServicer_to_server, feed
        ),
    ]
