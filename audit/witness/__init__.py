"""`customer-vault witness`: a small C2SP tlog-witness for the audit log.

A witness is a separate process with its own Ed25519 key and its own storage (a SQLite
file in its own directory). For each log it knows (by origin and log public key) it
keeps the latest checkpoint it cosigned, and cosigns a new one only with a valid
consistency proof from that one: a log that rewrites, truncates or rewinds its history
cannot get it cosigned. Its cosignatures (C2SP tlog-cosignature v1) are what `audit
verify` checks against the witnesses' public keys.

- `audit.witness.state`: the per-log record, updated atomically.
- `audit.witness.protocol`: the add-checkpoint rules, as a pure function of request and state.
- `audit.witness.server`: the HTTP server (stdlib `ThreadingHTTPServer`).
- `audit.witness.client`: what a log uses to submit checkpoints and read the latest.
- `audit.witness.cli`: the `customer-vault witness` command group.
"""

from audit.witness.client import WitnessClient, WitnessRefusedError, WitnessUnavailableError
from audit.witness.protocol import KnownLog, Reply, Witness
from audit.witness.state import WitnessState

__all__ = [
    "KnownLog",
    "Reply",
    "Witness",
    "WitnessClient",
    "WitnessRefusedError",
    "WitnessState",
    "WitnessUnavailableError",
]
