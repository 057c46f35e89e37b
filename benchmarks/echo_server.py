"""The baseline: a bare grpcio echo service, a sync server as the vault's was.

The vault's settings for workers (a ThreadPoolExecutor), the concurrency limit and the
message limits, but the sync server `vault.api.server.VaultServer` used before it moved
to grpc.aio, no interceptors, no protobuf (the handler returns the request bytes), no
authentication, no database. Run as its own process:

    .venv/bin/python benchmarks/echo_server.py --port 0

prints ``echo serving on port N`` and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc

from vault.config import Settings

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def build(port: int) -> tuple[grpc.Server, int]:
    defaults = Settings()
    server = grpc.server(
        ThreadPoolExecutor(max_workers=defaults.max_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", defaults.max_batch_request_bytes),
            ("grpc.max_send_message_length", defaults.max_response_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=defaults.max_concurrent_rpcs,
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    return server, bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server, port = build(args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"echo serving on port {port}", flush=True)
    stop.wait()
    server.stop(1).wait()


if __name__ == "__main__":
    main()
