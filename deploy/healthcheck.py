#!/usr/bin/env python3
"""Container health check: exit 0 when the vault's gRPC health service says SERVING.

    vault-healthcheck [ADDRESS] [--service NAME] [--ca FILE [--cert FILE --key FILE]]

ADDRESS defaults to 127.0.0.1:50051. With --ca the check uses TLS (and, with --cert and
--key, presents a client certificate, for a vault that requires mutual TLS). Exit codes:
0 serving, 1 not serving or unreachable, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if args.ca is None:
        return grpc.insecure_channel(args.address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(args.ca).read_bytes(),
        private_key=Path(args.key).read_bytes() if args.key else None,
        certificate_chain=Path(args.cert).read_bytes() if args.cert else None,
    )
    return grpc.secure_channel(args.address, credentials)


def check(args: argparse.Namespace) -> int:
    """0 if the service answers SERVING, else 1 (the reason goes to stderr)."""
    with _channel(args) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", nargs="?", default="127.0.0.1:50051")
    parser.add_argument("--service", default="", help="health service name ('' = server)")
    parser.add_argument("--ca", help="CA bundle: check over TLS")
    parser.add_argument("--cert", help="client certificate (mutual TLS)")
    parser.add_argument("--key", help="client private key (mutual TLS)")
    args = parser.parse_args(argv)
    if (args.cert is None) != (args.key is None) or (args.cert and args.ca is None):
        parser.error("--cert and --key go together, and need --ca")
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
