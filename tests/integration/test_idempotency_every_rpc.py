"""Every RPC that takes a request_id (tests/integration/rpc_table.py's valid request,
with a key) answers its retry with its first response: no second effect, one more audit
entry noting the replay. A refused first call (AcknowledgeNotice of a notice that does
not exist) is not remembered: its retry is refused the same way."""

from __future__ import annotations

import uuid
from collections import defaultdict

import grpc
import pytest
from google.protobuf.message import Message

import audit
from tests.integration.harness import RunningVault
from tests.integration.rpc_table import CASES, RET, SERVICES, caller


def _keyed() -> list[str]:
    return sorted(
        method
        for method, case in CASES.items()
        if "request_id" in case.request(defaultdict(str)).DESCRIPTOR.fields_by_name
    )


def _call(
    vault: RunningVault, method: str, request: Message, prepared: dict[str, str]
) -> tuple[str, bytes]:
    service, name = method.split("/")
    _, _, stub_type = next(s for s in SERVICES if f"{s[0].DESCRIPTOR.package}.{s[1]}" == service)
    who = caller(CASES[method].allowed_as, prepared)  # a customer: its own subject
    assert who is not None
    metadata = (("authorization", f"Bearer {vault.token(**who)}"),)
    with grpc.insecure_channel(vault.address) as channel:
        try:
            response = getattr(stub_type(channel), name)(request, metadata=metadata, timeout=20)
        except grpc.RpcError as exc:
            return exc.code().name, b""
    return "OK", response.SerializeToString(deterministic=True)


def test_the_keyed_rpcs_are_found() -> None:
    # Not vacuous: the table names every RPC (test_audit_every_rpc.py), so this is every
    # RPC that takes a request_id (15 when this was written).
    assert {"customervault.v1.VaultService/CreateSubject", f"{RET}/SetLegalHold"} <= set(_keyed())
    assert len(_keyed()) >= 15


@pytest.mark.parametrize("method", _keyed())
def test_a_retry_replays_the_first_answer(
    sqlite_vault: RunningVault, prepared: dict[str, str], method: str
) -> None:
    request = CASES[method].request(prepared)
    request.request_id = str(uuid.uuid4())  # type: ignore[attr-defined]
    first = _call(sqlite_vault, method, request, prepared)
    again = _call(sqlite_vault, method, request, prepared)
    assert again == first
    action = method.rsplit("/", 1)[1]
    entries = [e.entry for e in audit.iter_query(sqlite_vault.app.db.engine, action=action)]
    *_, original, retry = entries
    if first[0] == "OK":
        replay = {"idempotent_replay": "true", "first_request_id": original.request_id}
        assert replay.items() <= retry.extra.items()
        assert retry.subject_ids == original.subject_ids
    else:
        assert "idempotent_replay" not in retry.extra
