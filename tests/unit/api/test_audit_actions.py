"""The audit action catalogue names every RPC the server serves, and nothing else but
the retention job's steps and the CLI's development token issue."""

import pytest
from customer_vault_client.gen.customervault.v1 import (
    admin_pb2,
    audit_pb2,
    consent_pb2,
    customers_pb2,
    events_pb2,
    retention_pb2,
    rights_pb2,
    vault_pb2,
)
from grpc_reflection.v1alpha import reflection_pb2

from vault.audit_actions import AuditAction
from vault.context import CallContext

# Reflection is served, and audited, where it needs credentials.
_MODULES = (
    admin_pb2,
    audit_pb2,
    consent_pb2,
    customers_pb2,
    events_pb2,
    retention_pb2,
    rights_pb2,
    vault_pb2,
    reflection_pb2,
)
_JOB_STEPS = {
    AuditAction.NOTIFY_SUBJECT,
    AuditAction.ANONYMIZE_SUBJECT,
    AuditAction.CANCEL_NOTICE,
    AuditAction.ISSUE_DEVELOPMENT_TOKEN,  # the CLI's, not an RPC
    AuditAction.EXPIRE_DATA_SUBJECT_REQUEST,  # the leader's request-expiry task
}


def _served_methods() -> list[str]:
    return [
        f"/{service.full_name}/{method.name}"
        for module in _MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


def test_every_rpc_has_its_action_and_every_action_is_an_rpc_or_a_job_step() -> None:
    served = {AuditAction.of_method(m) for m in _served_methods()}
    assert len(served) == len(_served_methods())
    assert served | _JOB_STEPS == set(AuditAction)
    assert not served & _JOB_STEPS


def test_a_call_records_the_stored_value_of_its_action() -> None:
    call = CallContext("/customervault.v1.VaultService/GetSubject", "req-1")
    assert call.action is AuditAction.GET_SUBJECT
    assert call.action.value == "GetSubject"


def test_a_method_outside_the_catalogue_is_refused() -> None:
    with pytest.raises(ValueError, match="NoSuchMethod"):
        AuditAction.of_method("/customervault.v1.VaultService/NoSuchMethod")
