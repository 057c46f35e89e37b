"""Which calls gRPC may retry by itself, as a service config (`grpc.service_config`).

Two kinds of call are safe to send again after UNAVAILABLE:

- idempotent reads: the methods whose name is a read verb (`Get`, `List`, `Find`,
  `Query`, `Check`, `Verify`, `Explain`, `Simulate`) and the streaming reads in `READS`;
- calls carrying an idempotency key: every method whose request message has a
  `request_id` field (the client fills one when the caller left it empty, so a retry
  reaches the vault with the same key and is answered with the first response).

Everything else (a create without a request id, a one-time link redemption) is never
retried by the channel. The list is computed from the services' descriptors, so a new
RPC is covered by the rule its name and request fields give it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

READ_VERBS = ("Get", "List", "Find", "Query", "Check", "Verify", "Explain", "Simulate")
READS = frozenset({"SubjectHistory", "ExportView"})
REQUEST_ID = "request_id"


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's retryPolicy: attempts (the first included) and exponential backoff."""

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 3.0
    backoff_multiplier: float = 2.0
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)


DEFAULT_RETRY = RetryPolicy()


def is_read(method: MethodDescriptor) -> bool:
    """A method that only reads, by the naming rule above."""
    return method.name in READS or method.name.startswith(READ_VERBS)


def has_request_id(method: MethodDescriptor) -> bool:
    """A method whose request carries an idempotency key."""
    return REQUEST_ID in method.input_type.fields_by_name


def retryable_methods(services: Iterable[ServiceDescriptor]) -> list[tuple[str, str]]:
    """(full service name, method name) of every method the channel may retry."""
    return [
        (service.full_name, method.name)
        for service in services
        for method in service.methods
        if is_read(method) or has_request_id(method)
    ]


def service_config(services: Iterable[ServiceDescriptor], policy: RetryPolicy) -> str:
    """The JSON service config giving `policy` to the retryable methods only."""
    names = [{"service": s, "method": m} for s, m in retryable_methods(services)]
    config = {
        "methodConfig": [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": policy.max_attempts,
                    "initialBackoff": f"{policy.initial_backoff}s",
                    "maxBackoff": f"{policy.max_backoff}s",
                    "backoffMultiplier": policy.backoff_multiplier,
                    "retryableStatusCodes": list(policy.retryable_status_codes),
                },
            }
        ]
    }
    return json.dumps(config)
