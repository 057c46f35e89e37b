"""The gRPC server: services, health, reflection, limits, TLS and graceful shutdown.

It is a grpc.aio server on an event loop thread of its own: waiting on callers (their
requests, their reading of streams, idle connections) costs no thread, so no number of
idle or slow callers can take the threads that calls and health checks need. The
domain work of each call runs on a pool of `max_workers` threads (`vault.api.runner`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import grpc
from customer_vault_client.gen.customervault.v1 import vault_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vault.api.idempotency import Idempotency
from vault.api.interceptors import Stage
from vault.api.limits import CallLimits
from vault.api.page_tokens import PageTokens
from vault.api.runner import VaultInterceptor
from vault.context import CallContext

log = logging.getLogger(__name__)

VAULT_SERVICE = vault_pb2.DESCRIPTOR.services_by_name["VaultService"].full_name
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
T = TypeVar("T")


@dataclass(frozen=True)
class ServiceBinding:
    """One gRPC service: its full name (for health and reflection) and how to add it."""

    name: str
    register: Callable[[grpc.aio.Server], None]


def binding(
    module: ModuleType, service: str, add: Callable[[Any, grpc.aio.Server], None], servicer: object
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
class ConnectionLimits:
    """HTTP/2 connection limits (grpc channel arguments); see `Settings`."""

    idle_seconds: float = 300.0
    max_age_seconds: float = 1800.0
    age_grace_seconds: float = 300.0
    keepalive_time_seconds: float = 60.0
    keepalive_timeout_seconds: float = 20.0
    min_client_ping_interval_seconds: float = 10.0
    max_streams_per_connection: int = 100

    def channel_args(self) -> list[tuple[str, int]]:
        def ms(seconds: float) -> int:
            return int(seconds * 1000)

        return [
            ("grpc.max_connection_idle_ms", ms(self.idle_seconds)),
            ("grpc.max_connection_age_ms", ms(self.max_age_seconds)),
            ("grpc.max_connection_age_grace_ms", ms(self.age_grace_seconds)),
            ("grpc.keepalive_time_ms", ms(self.keepalive_time_seconds)),
            ("grpc.keepalive_timeout_ms", ms(self.keepalive_timeout_seconds)),
            ("grpc.keepalive_permit_without_calls", 1),
            (
                "grpc.http2.min_ping_interval_without_data_ms",
                ms(self.min_client_ping_interval_seconds),
            ),
            ("grpc.http2.max_ping_strikes", 2),
            ("grpc.max_concurrent_streams", self.max_streams_per_connection),
            # Windows stay at HTTP/2's 64 KiB unless a call asks for a message: with
            # BDP probing they grow to megabytes per connection, which an
            # unauthenticated caller could fill before it is refused.
            ("grpc.http2.bdp_probe", 0),
        ]


@dataclass(frozen=True)
class ServerOptions:
    address: str
    max_workers: int
    max_concurrent_rpcs: int
    max_response_bytes: int = 32 * 1024 * 1024
    limits: CallLimits = field(default_factory=CallLimits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    reflection: bool = False
    reflection_public: bool = False
    tls: TlsFiles | None = None
    # Share the port with the other worker processes of `serve --workers N`.
    reuse_port: bool = False
    # Unary methods whose handler runs on the event loop (`VaultInterceptor`'s on_loop).
    on_loop: frozenset[str] = frozenset()


class VaultServer:
    """A started gRPC server whose health says SERVING only once it is ready.

    Its methods are called from ordinary threads; each runs its part on the loop."""

    def __init__(
        self,
        options: ServerOptions,
        stages: Sequence[Stage],
        services: Sequence[ServiceBinding],
        *,
        idempotency: Idempotency | None = None,
        page_tokens: PageTokens | None = None,
        admit_bulk: Callable[[CallContext], object] | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet_loop_errors)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="grpc-loop", daemon=True
        )
        self._thread.start()
        self._pool = ThreadPoolExecutor(max_workers=options.max_workers, thread_name_prefix="rpc")
        public = (HEALTH_PREFIX, *(REFLECTION_PREFIXES if options.reflection_public else ()))
        self.interceptor = VaultInterceptor(
            stages,
            self._pool,
            options.limits,
            public,
            idempotency=idempotency,
            page_tokens=page_tokens,
            on_loop=options.on_loop,
            admit_bulk=admit_bulk,
        )
        self._names = tuple(service.name for service in services)
        self._audit_failed = False
        self.health = health.aio.HealthServicer()
        try:
            self._server = self._run(self._build(options, services))
            self.port = self._bind(options)
        except BaseException:
            self._close()
            raise

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    async def _build(
        self, options: ServerOptions, services: Sequence[ServiceBinding]
    ) -> grpc.aio.Server:
        server = grpc.aio.server(
            interceptors=[self.interceptor],
            options=[
                ("grpc.max_receive_message_length", options.limits.largest_request_bytes),
                ("grpc.max_send_message_length", options.max_response_bytes),
                ("grpc.so_reuseport", 1 if options.reuse_port else 0),
                *options.connections.channel_args(),
            ],
            maximum_concurrent_rpcs=options.max_concurrent_rpcs,
        )
        generic = GenericOnly(server)
        for service in services:
            service.register(generic)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, generic)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if options.reflection:
            reflection.enable_server_reflection(
                (*self._names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )  # its one method registered: reflection picks its servicer by the type
        return server

    def _bind(self, options: ServerOptions) -> int:
        tls = options.tls
        if tls is None:
            port = int(self._server.add_insecure_port(options.address))
        else:
            credentials = grpc.ssl_server_credentials(
                [(tls.key.read_bytes(), tls.cert.read_bytes())],
                root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
                require_client_auth=tls.client_ca is not None,
            )
            port = int(self._server.add_secure_port(options.address, credentials))
        if port == 0:
            raise OSError(f"could not bind {options.address}")
        return port

    async def _set_health(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        for name in ("", *self._names):
            await self.health.set(name, status)

    def start(self) -> None:
        self._run(self._server.start())

    def mark_serving(self) -> None:
        self._run(self._set_health(health_pb2.HealthCheckResponse.SERVING))
        if self._audit_failed:
            self.mark_audit_failed()

    def mark_audit_failed(self) -> None:
        """The audit log's integrity alarm: every named service (each one audits its calls)
        goes NOT_SERVING and stays so until restart. The overall status ("") is left to
        the process's own state, so an alarm does not make Kubernetes pull or restart
        every replica at once; alert on the per-service status and the alarm metric.
        Called from any thread but the loop's own (it waits for the loop)."""
        self._audit_failed = True
        if self._loop.is_closed() or not self._loop.is_running():
            return
        self._run(self._set_named(health_pb2.HealthCheckResponse.NOT_SERVING))

    async def _set_named(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        for name in self._names:
            await self.health.set(name, status)

    def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within `grace` seconds. Stopping
        a stopped server does nothing (as with grpc's own servers)."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._stop(grace))
        finally:
            self._close()

    async def _stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self._server.stop(grace)
        # Calls cut at the end of the grace finish their current step (and audit).
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            # Reads on the loop may still be waiting for their audit commit.
            wait = max(grace, 1.0) + max(5.0, self.interceptor.audit_timeout_seconds)
            await asyncio.wait(others, timeout=wait)

    def _close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._pool.shutdown(wait=True)
        self._loop.close()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._loop.is_running():
            return True
        return bool(self._run(self._server.wait_for_termination(timeout)))


class GenericOnly:
    """The server as the generated `add_*_to_server` functions see it: each service is
    served through its generic handler, none as "registered methods".

    grpc.aio keeps one request for the next call waiting per registered method, and
    after every call that arrives waits on all of them again (`asyncio.wait`). With the
    sixty-odd methods the vault serves that wait is about a quarter of the Python calls
    the event loop makes per call. Through the generic handlers there is one such
    request, as in the bare echo baseline, and grpc finds a call's handler by its path
    (`_MethodResolver`), which it does for every generic handler anyway."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        """Not registered: the same handlers came through `add_generic_rpc_handlers`."""


def _quiet_loop_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An error the event loop could not hand to anyone (a future whose exception was
    never retrieved, a callback that raised): logged by its type only. asyncio's default
    handler logs the future's repr and the traceback, which quote a driver's message."""
    exc = context.get("exception")
    log.error(
        "event loop: %s%s",
        context.get("message", "unhandled error").split("\n", 1)[0],
        f" ({type(exc).__name__})" if exc is not None else "",
    )
