"""Sampling the vault server with py-spy while one section runs, and summarizing where
the time went (self time by layer, inclusive time of the vault's own functions).

py-spy attaches to the running server process from outside (`--nonblocking`, so it does
not pause the server while sampling) and samples only the thread holding the GIL
(`--gil`): the shares are shares of the server's Python CPU time, which is what limits a
single process. Time spent waiting (for the database, for the audit writer's commit, in
native code that released the GIL) does not show up here; the wall-clock figures and
the server CPU per call in the results table cover that. Raw output is kept next to the
results for flame graphs (flamegraph.pl or speedscope read it).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_REPO = str(Path(__file__).resolve().parents[1]) + "/"
_STDLIB = re.compile(r"^.*/lib/python3\.\d+/")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")
LAYERS = (
    ("customer_vault_client/gen", "protobuf generated code"),
    ("vault/api/", "vault transport (servicer, interceptors, convert)"),
    ("vault/identity", "vault authentication (JWT)"),
    ("vault/policy", "vault policy"),
    ("vault/crypto", "vault crypto recipes"),
    ("vault/fields", "vault validation + normalization"),
    ("vault/records", "vault records domain"),
    ("vault/views", "vault masking"),
    ("vault/storage", "vault storage repository"),
    ("vault/audit_trail", "vault audit trail (call -> entry)"),
    ("vault/", "vault other"),
    ("audit/", "audit log (append, chain)"),
    ("sqlalchemy/", "SQLAlchemy"),
    ("psycopg", "psycopg driver"),
    ("sqlite3", "sqlite3 driver"),
    ("cryptography/", "cryptography (OpenSSL)"),
    ("jwt/", "PyJWT"),
    ("phonenumbers/", "phonenumbers"),
    ("grpc", "grpcio"),
    ("google/protobuf", "protobuf runtime"),
    ("opentelemetry", "OpenTelemetry"),
    ("json/", "json"),
    ("threading.py", "threads, queues (waiting)"),
    ("queue.py", "threads, queues (waiting)"),
    ("concurrent/futures", "threads, queues (waiting)"),
)


# Classified by the first marker found in the stack: RPC workers first, since their
# stacks also pass through the audit writer's append.
THREADS = (
    ("concurrent/futures/thread", "RPC worker threads"),
    ("audit/integrator", "audit integrator (chain, Merkle, checkpoints)"),
    ("audit/writer", "audit group-commit writer"),
    ("vault/background", "periodic tasks (key refresh, re-wrap)"),
    ("vault/policy/watch", "policy file watcher"),
    ("grpc/_server", "gRPC server loop"),
)


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


@contextmanager
def sampling(pid: int, output: Path, rate: int = 250) -> Iterator[None]:
    """Sample `pid` with py-spy while the block runs; raw stacks go to `output`."""
    exe = py_spy()
    if exe is None:
        yield
        return
    proc = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
         "--output", str(output), "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _thread(stack: str) -> str:
    for marker, name in THREADS:
        if marker in stack:
            return name
    return "other threads"


def _layer(file: str) -> str:
    for marker, name in LAYERS:
        if marker in file:
            return name
    if "site-packages" not in file and "/python3" in file:
        return "Python stdlib"
    return "other"


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        frames.append((match["func"], match["file"]) if match else (raw, ""))
    return frames


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self time by layer and the vault/audit functions with the most inclusive time."""
    if not raw.exists():
        return {"available": False}
    by_thread: Counter[str] = Counter()
    by_layer: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = _frames(stack)
        by_thread[_thread(stack)] += count
        func, file = frames[-1]
        by_layer[_layer(file)] += count
        self_time[f"{func} ({_short(file)})"] += count
        seen = set()
        for func, file in frames:
            if ("vault/" in file or "/audit/" in file) and "customer_vault_client/gen" not in file:
                key = f"{func} ({_short(file)})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += count
    if total == 0:
        return {"available": False}

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {
        "available": True,
        "samples": total,
        "by_thread_percent": share(by_thread),
        "self_by_layer_percent": share(by_layer),
        "self_top_percent": share(self_time),
        "inclusive_vault_percent": share(inclusive),
    }


def _short(file: str) -> str:
    for root in ("site-packages/", _REPO):
        if root in file:
            return file.split(root, 1)[1]
    return _STDLIB.sub("", file)
