"""Every RPC of every service, called allowed, denied and malformed, leaves exactly one
audit entry. The table (tests/integration/rpc_table.py) must name every method the
descriptors list, so a new RPC cannot be added without saying how it is audited."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.message import Message

from tests.data import NOBODY
from tests.integration.harness import RunningVault
from tests.integration.rpc_table import CASES, SERVICES, caller


def _all_methods() -> list[str]:
    return [
        f"{module.DESCRIPTOR.package}.{name}/{method.name}"
        for module, name, _ in SERVICES
        for method in module.DESCRIPTOR.services_by_name[name].methods
    ]


def test_the_table_covers_every_rpc_of_every_service() -> None:
    assert sorted(CASES) == sorted(_all_methods())


def test_the_table_names_every_service_the_server_serves(sqlite_vault: RunningVault) -> None:
    served = {binding.name for binding in sqlite_vault.app.services()}
    assert served == {f"{module.DESCRIPTOR.package}.{name}" for module, name, _ in SERVICES}


def _entries(vault: RunningVault) -> int:
    with vault.app.db.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM audit_entries")).scalar_one())


def _invoke(
    vault: RunningVault, method: str, request: Message, who: dict[str, Any] | None
) -> grpc.StatusCode:
    service, name = method.split("/")
    _, _, stub_type = next(s for s in SERVICES if f"{s[0].DESCRIPTOR.package}.{s[1]}" == service)
    metadata = () if who is None else (("authorization", f"Bearer {vault.token(**who)}"),)
    with grpc.insecure_channel(vault.address) as channel:
        rpc = getattr(stub_type(channel), name)
        try:
            answer = rpc(request, metadata=metadata, timeout=20)
            if CASES[method].streaming:
                list(answer)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", sorted(CASES))
def test_each_call_allowed_denied_unauthenticated_or_malformed_leaves_one_entry(
    sqlite_vault: RunningVault, prepared: dict[str, str], method: str
) -> None:
    case = CASES[method]
    attempts: list[tuple[str, Message, dict[str, Any] | None]] = [
        ("unauthenticated", case.request(prepared), None),
        ("denied", case.request(prepared), NOBODY),
        ("allowed", case.request(prepared), caller(case.allowed_as, prepared)),
    ]
    if case.malformed is not None:
        attempts.append(("malformed", case.malformed(prepared), caller(case.allowed_as, prepared)))
    for label, request, who in attempts:
        before = _entries(sqlite_vault)
        code = _invoke(sqlite_vault, method, request, who)
        after = _entries(sqlite_vault)
        expected = case.allowed_entries if label == "allowed" else 1
        assert after - before == expected, (
            f"{label} call ({code.name}) left {after - before} entries"
        )
        if label == "unauthenticated":
            assert code is grpc.StatusCode.UNAUTHENTICATED
        elif label == "denied":
            assert code in case.denied_codes, code
        elif label == "allowed":
            assert code in case.allowed_codes, f"{method} as {who}: {code.name}"
        else:
            assert code in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.NOT_FOUND,
                *case.denied_codes,
            ), f"{method} malformed: {code.name}"
