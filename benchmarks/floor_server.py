"""The floor of a fail-closed read: echo + bearer-token check + one durable insert per call.

The least any audited read can cost on this machine: the bare echo's server
(`echo_server.py`: the vault's executor, concurrency and message limits, no
interceptors, no protobuf), plus, per call, the vault's own `TokenVerifier` on the
call's bearer token (an unknown or invalid one is refused UNAUTHENTICATED, as the vault
does; a verified token is cached by its text, as in the vault) and one small row
inserted and committed through the vault's own engine and transaction code
(`vault.storage.db`: SQLite in WAL mode with synchronous=NORMAL and BEGIN IMMEDIATE, its
WAL checkpointed from a thread every `sqlite_checkpoint_interval_seconds` as the vault's
is, or PostgreSQL through psycopg 3, the vault's pool settings) before the reply leaves. No
policy, no decryption, no masking, no hash chain, no group commit. Run as its own
process:

    .venv/bin/python benchmarks/floor_server.py --port 0 --data-dir DIR [--database-url URL]

`DIR` holds the vault's keys (`customer-vault keys init`); tokens come from
`customer-vault token issue --data-dir DIR`. Without `--database-url` the row goes to
`DIR/floor.db` (SQLite). Prints ``floor serving on port N`` and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import sqlalchemy as sa

from vault.background import PeriodicTask
from vault.clock import SystemClock
from vault.config import Settings
from vault.errors import UnauthenticatedError
from vault.identity.tokens import TokenVerifier
from vault.storage.db import (
    SQLITE_AUTOCHECKPOINT_PAGES,
    SQLITE_BACKSTOP_PAGES,
    Database,
    create_engine,
)

SERVICE = "bench.Floor"
METHOD = f"/{SERVICE}/Read"
_BEARER = "Bearer "

_metadata = sa.MetaData()
reads = sa.Table(
    "floor_reads",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("request_bytes", sa.Integer, nullable=False),
)


class Floor:
    """The handler: verify the token, insert and commit one row, echo the request."""

    def __init__(self, verifier: TokenVerifier, database: Database) -> None:
        self._verifier = verifier
        self._database = database
        self._insert = reads.insert()

    def read(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str) and value.startswith(_BEARER):
                token = value[len(_BEARER) :]
        if token is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        try:
            principal = self._verifier.verify(token)
        except UnauthenticatedError:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token")
        with self._database.write() as conn:
            conn.execute(
                self._insert,
                {
                    "at_us": time.time_ns() // 1000,
                    "principal": principal.id[:128],
                    "request_bytes": len(request),
                },
            )
        return request


def build(
    port: int, data_dir: Path, database_url: str | None
) -> tuple[grpc.Server, int, list[PeriodicTask]]:
    settings = Settings(data_dir=data_dir)
    url = database_url or f"sqlite:///{data_dir / 'floor.db'}"
    interval = settings.sqlite_checkpoint_interval_seconds
    checkpointing = url.startswith("sqlite") and interval > 0
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        lock_timeout=settings.db_lock_timeout_seconds,
        wal_autocheckpoint=SQLITE_BACKSTOP_PAGES if checkpointing else SQLITE_AUTOCHECKPOINT_PAGES,
    )
    _metadata.create_all(engine)
    verifier = TokenVerifier(
        settings.resolved_token_public_key.read_bytes(),
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        clock=SystemClock(),
        leeway_seconds=settings.token_leeway_seconds,
    )
    database = Database(engine)
    floor = Floor(verifier, database)
    # As the vault does (`VaultApp.start_background`): no call's commit checkpoints.
    tasks = (
        [PeriodicTask("wal-checkpoint", interval, database.checkpoint_wal)] if checkpointing else []
    )
    server = grpc.server(
        ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", settings.max_batch_request_bytes),
            ("grpc.max_send_message_length", settings.max_response_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Read": grpc.unary_unary_rpc_method_handler(floor.read)}
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    return server, bound, tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    server, port, tasks = build(args.port, args.data_dir, args.database_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    for task in tasks:
        task.start()
    print(f"floor serving on port {port}", flush=True)
    stop.wait()
    server.stop(1).wait()
    for task in tasks:
        task.stop()


if __name__ == "__main__":
    main()
