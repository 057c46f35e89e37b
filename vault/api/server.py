"""The gRPC server: services, health, reflection, limits, TLS and graceful shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vault.api.gen.customervault.v1 import vault_pb2
from vault.api.interceptors import Stage, VaultInterceptor

log = logging.getLogger(__name__)

VAULT_SERVICE = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service: its full name (for health and reflection) and how to add it."""

    name: str
    register: Callable[[grpc.Server], None]


def binding(
    module: ModuleType, service: str, add: Callable[[Any, grpc.Server], None], servicer: object
) -> ServiceBinding:
    """How to register one generated service, named as its descriptor names it."""
    return ServiceBinding(
        module.DESCRIPTOR.services_by_name[service].full_name, partial(add, servicer)
    )


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate and key; with `client_ca`, clients must present a certificate."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class ServerOptions:
    address: str
    max_message_bytes: int
    max_workers: int
    max_concurrent_rpcs: int
    tls: TlsFiles | None = None


class VaultServer:
    """A started gRPC server whose health says SERVING only once it is ready."""

    def __init__(
        self, options: ServerOptions, stages: Sequence[Stage], services: Sequence[ServiceBinding]
    ) -> None:
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=options.max_workers, thread_name_prefix="rpc"),
            interceptors=[VaultInterceptor(stages)],
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=options.max_concurrent_rpcs,
        )
        for service in services:
            service.register(self._server)
        self._names = tuple(service.name for service in services)
        self._audit_failed = False
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        reflection.enable_server_reflection(
            (*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.port = self._bind(options)
        if self.port == 0:
            raise OSError(f"could not bind {options.address}")

    def _bind(self, options: ServerOptions) -> int:
        if options.tls is None:
            return int(self._server.add_insecure_port(options.address))
        tls = options.tls
        credentials = grpc.ssl_server_credentials(
            [(tls.key.read_bytes(), tls.cert.read_bytes())],
            root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
            require_client_auth=tls.client_ca is not None,
        )
        return int(self._server.add_secure_port(options.address, credentials))

    def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", *self._names):
            self.health.set(name, status)

    def start(self) -> None:
        self._server.start()

    def mark_serving(self) -> None:
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        if self._audit_failed:
            self.mark_audit_failed()

    def mark_audit_failed(self) -> None:
        """The audit log's integrity alarm: every named service (each one audits its calls)
        goes NOT_SERVING and stays so until restart. The overall status ("") is left to
        the process's own state, so an alarm does not make Kubernetes pull or restart
        every replica at once; alert on the per-service status and the alarm metric."""
        self._audit_failed = True
        for name in self._names:
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds."""
        self.health.enter_graceful_shutdown()
        self._server.stop(grace).wait()

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))
