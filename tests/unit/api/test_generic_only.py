"""The server hands the generated services to grpc as generic handlers only: grpc.aio
waits on one pending request per registered method after every call (see
`vault.api.server.GenericOnly`)."""

from __future__ import annotations

from typing import Any

import grpc
from customer_vault_client.gen.customervault.v1 import vault_pb2, vault_pb2_grpc
from grpc_health.v1 import health, health_pb2_grpc

from vault.api.server import GenericOnly


class _Recorder:
    """Stands in for grpc.aio.Server: records what the adapter passes on."""

    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.registered.append(service)


class _Details:
    """What grpc hands a generic handler: the call's path and metadata."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def test_every_vault_method_is_served_by_the_generic_handler_and_none_is_registered() -> None:
    server = _Recorder()
    servicer: Any = vault_pb2_grpc.VaultServiceServicer  # the generated base: abstract to mypy
    vault_pb2_grpc.add_VaultServiceServicer_to_server(servicer(), GenericOnly(server))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), GenericOnly(server))

    assert server.registered == []
    service = vault_pb2.DESCRIPTOR.services_by_name["VaultService"]
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        assert any(h.service(_Details(path)) is not None for h in server.generic), path
    assert any(
        h.service(_Details("/grpc.health.v1.Health/Check")) is not None for h in server.generic
    )
