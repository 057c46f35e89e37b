"""`customer-vault serve --workers N`: N server processes sharing one port.

A Python process serves on one core, so the supervisor (this process) starts N worker
processes, each a whole `vault.app.serve_one` with its own thread pool, database engine
and keys in memory, all listening on the same port with SO_REUSEPORT: the kernel spreads
the incoming connections over them. The supervisor itself never creates a grpc object
(grpc's own multiprocessing example: no grpc state may exist before the workers start);
the workers are spawned, not forked.

- Port 0: the supervisor binds a SO_REUSEPORT socket to learn a free port, holds it
  (bound, never listening, so it takes no connections) while the workers run, and gives
  the workers that port.
- Start-up: worker 0, the leader, starts first and alone (it migrates the embedded
  database and generates the development keys, so no two processes race at it); the
  others start once it serves. The "serving on" line is printed when all of them serve.
- Background work: only the leader runs what is done once for the database (audit
  integrator and witness publishing, key re-wrap, blind re-index, retention); every
  worker refreshes its own keys, watches its own policy files and scrubs the WAL after
  its own shreds (`VaultApp.start_background`).
- SIGTERM/SIGINT: every worker gets SIGTERM and drains its in-flight calls; the
  supervisor exits 0 when all of them exited 0, else 1.
- A worker that dies while the others serve is not restarted: the supervisor stops the
  others (SIGTERM, drained) and exits 1, so the orchestrator (Kubernetes, systemd)
  restarts the whole vault: a half-alive vault (no leader: no integrator) never serves.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import threading
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from queue import Empty
from types import FrameType

from vault.app import prepare, serve_one
from vault.config import Settings

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
_STOP_MARGIN_SECONDS = 15.0


def serve(
    settings: Settings,
    *,
    dev: bool = False,
    worker_setup: Callable[[], None] | None = None,
) -> int:
    """Run `settings.resolved_workers` server processes (one: this process serves)
    until SIGTERM/SIGINT. `worker_setup` (a module-level function: it is pickled by
    name) runs first in each worker, e.g. to configure logging."""
    prepare(settings, dev=dev)
    workers = settings.resolved_workers
    if workers <= 1:
        return serve_one(settings)
    return Supervisor(settings, workers, worker_setup).run()


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (HOST may be `[v6]`) as (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not a HOST:PORT address: {address!r}")
    return host.strip("[]"), int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reserve(host: str) -> socket.socket:
    """A SO_REUSEPORT socket bound to a free port of `host`, not listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = socket.socket(family, socket.SOCK_STREAM)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((host, 0))
    except BaseException:
        held.close()
        raise
    return held


def _worker_main(
    settings: Settings,
    index: int,
    ready: Queue[tuple[int, int]],
    setup: Callable[[], None] | None,
) -> None:
    """One worker process (spawned): serve until SIGTERM."""
    if setup is not None:
        setup()
    os.umask(0o077)
    leader = index == 0
    log.info(
        "worker %d (pid %d) starting%s",
        index,
        os.getpid(),
        "; it runs the background work" if leader else "",
    )
    code = serve_one(
        settings,
        lambda port: ready.put((index, port)),
        leader=leader,
        reuse_port=True,
    )
    # Drained and closed: a second SIGTERM (the supervisor's, after one sent to the
    # whole process group) must not kill the interpreter while it finalizes.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(code)


class Supervisor:
    """Starts, watches and stops the worker processes of one `serve`."""

    def __init__(self, settings: Settings, workers: int, setup: Callable[[], None] | None) -> None:
        self._settings = settings
        self._count = workers
        self._setup = setup
        self._context = multiprocessing.get_context("spawn")
        self._ready: Queue[tuple[int, int]] = self._context.Queue()
        self._workers: list[BaseProcess] = []
        self._stop = threading.Event()
        self._died = False

    def run(self) -> int:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received signal %d; stopping the workers", signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        host, port = split_address(self._settings.address)
        with ExitStack() as held:
            if port == 0:
                reserved = held.enter_context(_reserve(host))
                port = int(reserved.getsockname()[1])
            shared = self._settings.model_copy(
                update={"address": join_address(host, port), "workers": 1}
            )
            try:
                if self._start(shared):
                    log.info("customer vault serving on port %d with %d workers", port, self._count)
                    print(
                        f"customer-vault serving on {self._settings.address} (port {port}, "
                        f"{self._count} workers)",
                        flush=True,
                    )
                    self._watch()
            finally:
                code = self._stop_all()
        log.info("customer vault stopped (exit code %d)", code)
        return code

    def _start(self, settings: Settings) -> bool:
        """Start the leader, then the others; True once all serve."""
        for index in range(self._count):
            process = self._context.Process(
                target=_worker_main,
                args=(settings, index, self._ready, self._setup),
                name=f"vault-worker-{index}",
            )
            process.start()
            self._workers.append(process)
            if index == 0 and not self._await_ready(1):
                return False
        return self._await_ready(self._count - 1)

    def _await_ready(self, count: int) -> bool:
        while count > 0:
            if self._stop.is_set() or self._dead() is not None:
                return False
            try:
                index, port = self._ready.get(timeout=_POLL_SECONDS)
            except Empty:
                continue
            log.info("worker %d serving on port %d", index, port)
            count -= 1
        return True

    def _dead(self) -> BaseProcess | None:
        for process in self._workers:
            if process.exitcode is not None:
                return process
        return None

    def _watch(self) -> None:
        """Until a signal, or a worker's death."""
        by_sentinel = {process.sentinel: process for process in self._workers}
        while not self._stop.is_set():
            ended = multiprocessing.connection.wait(list(by_sentinel), timeout=_POLL_SECONDS)
            if ended:
                dead = by_sentinel[ended[0]]  # type: ignore[index]
                dead.join(_POLL_SECONDS * 10)  # its sentinel closes just before it is reaped
                self._died = True
                log.error(
                    "worker %s exited unexpectedly (exit code %s); stopping the others",
                    dead.name,
                    dead.exitcode,
                )
                return

    def _stop_all(self) -> int:
        """SIGTERM every worker, wait for it to drain; 0 if every one exited 0."""
        unexpected = self._died or (self._dead() is not None and not self._stop.is_set())
        for process in self._workers:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        wait = self._settings.shutdown_grace_seconds + _STOP_MARGIN_SECONDS
        for process in self._workers:
            process.join(wait)
            if process.exitcode is None:
                log.error("worker %s did not stop in time; killing it", process.name)
                process.kill()
                process.join()
        self._ready.close()
        codes = [process.exitcode for process in self._workers]
        for process, code in zip(self._workers, codes, strict=True):
            log.info("worker %s (pid %s) exited with code %s", process.name, process.pid, code)
        return 1 if unexpected or any(code != 0 for code in codes) else 0
