"""The one place that wires everything together."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType

import audit
from vault import keys
from vault.api.interceptors import AuditStage, AuthenticationStage
from vault.api.server import ServerOptions, TlsFiles, VaultServer
from vault.api.servicer import VaultServicer
from vault.api.tracing import TracingStage
from vault.auditing import Auditor
from vault.background import PeriodicTask
from vault.clock import Clock, SystemClock
from vault.config import Settings
from vault.crypto import KeyRing
from vault.errors import FailedPreconditionError
from vault.identity import TokenVerifier
from vault.policy import PolicyEngine
from vault.records.dictionary import DataDictionary
from vault.records.reader import RecordReader
from vault.records.rendering import ViewRenderer
from vault.records.sealing import SubjectSealing
from vault.records.service import RecordService
from vault.storage import migrate
from vault.storage.db import Database, create_engine, wait_until_reachable

log = logging.getLogger(__name__)


@dataclass
class VaultApp:
    """Every long-lived component of one vault process."""

    settings: Settings
    clock: Clock
    db: Database
    keyring: KeyRing
    dictionary: DataDictionary
    policy: PolicyEngine
    audit_writer: audit.GroupCommitWriter
    auditor: Auditor
    records: RecordService
    reader: RecordReader
    tasks: list[PeriodicTask | audit.IntegratorThread] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> VaultApp:
        """Load keys, policies and the database; migrate the embedded default."""
        clock = clock or SystemClock()
        if settings.is_embedded and settings.generate_dev_keys:
            for created in keys.init_keys(settings):
                log.info("generated development key %s", created)
        keyring = KeyRing(keys.provider_for(settings))
        dictionary = DataDictionary.from_file(settings.policies_dir / "data_dictionary.yaml")
        policy = PolicyEngine.from_dir(settings.policies_dir)
        engine = create_engine(settings.resolved_database_url, pool_size=settings.db_pool_size)
        wait_until_reachable(engine, timeout=settings.db_connect_timeout_seconds)
        if settings.is_embedded:
            migrate.upgrade(engine)
            audit.migrate(engine)
        elif not migrate.is_current(engine):
            raise FailedPreconditionError(
                "database schema is not current: run `customer-vault migrate` first"
            )
        db = Database(engine)
        writer = audit.GroupCommitWriter(engine)
        auditor = Auditor(writer, clock)
        sealing = SubjectSealing(keyring, dictionary.searchable_fields)
        renderer = ViewRenderer(policy, dictionary, sealing, keyring)
        common = {"db": db, "sealing": sealing, "dictionary": dictionary, "policy": policy}
        records = RecordService(
            **common, auditor=auditor, clock=clock, max_batch_size=settings.max_batch_size
        )
        reader = RecordReader(**common, renderer=renderer, auditor=auditor, clock=clock)
        return cls(
            settings, clock, db, keyring, dictionary, policy, writer, auditor, records, reader
        )

    def start_background(self) -> None:
        """Start the audit integrator, key refresh/re-wrap and policy watching."""
        s = self.settings
        signer = audit.CheckpointSigner.from_pem(
            s.resolved_audit_signing_key.read_bytes(), name=s.audit_origin
        )
        integrator = audit.Integrator(self.db.engine, signer, s.audit_origin)
        self.tasks = [
            audit.IntegratorThread(integrator, interval=s.audit_integrate_interval_seconds),
            PeriodicTask("key-refresh", s.key_refresh_interval_seconds, self._refresh_keys),
            PeriodicTask("key-rewrap", s.rewrap_interval_seconds, self._rewrap),
        ]
        for task in self.tasks:
            task.start()
        self.policy.start_watching(interval=2.0)

    def _refresh_keys(self) -> bool:
        self.keyring.provider.refresh()
        return False

    def _rewrap(self) -> bool:
        moved = keys.rewrap_batch(self.db, self.keyring, self.settings.rewrap_batch_size)
        if moved:
            log.info("re-wrapped %d data keys", moved)
        return moved > 0

    def close(self) -> None:
        self.policy.stop_watching()
        for task in self.tasks:
            task.stop()
        self.audit_writer.close()
        self.db.dispose()

    def token_verifier(self) -> TokenVerifier:
        s = self.settings
        return TokenVerifier(
            s.resolved_token_public_key.read_bytes(),
            issuer=s.token_issuer,
            audience=s.token_audience,
            clock=self.clock,
            leeway_seconds=s.token_leeway_seconds,
        )

    def build_server(self) -> VaultServer:
        s = self.settings
        tls = (
            TlsFiles(s.tls_cert, s.tls_key, s.tls_client_ca)
            if s.tls_cert is not None and s.tls_key is not None
            else None
        )
        options = ServerOptions(
            address=s.address,
            max_message_bytes=s.max_message_bytes,
            max_workers=s.max_workers,
            max_concurrent_rpcs=s.max_concurrent_rpcs,
            tls=tls,
        )
        stages = [TracingStage(), AuditStage(self.auditor), AuthenticationStage(self.token_verifier())]
        return VaultServer(options, stages, VaultServicer(self.records, self.reader))


def serve(settings: Settings, ready: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT, then drain in-flight calls and exit 0."""
    app = VaultApp.open(settings)
    server = app.build_server()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d; shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    app.start_background()
    server.mark_serving()
    log.info("customer vault serving on port %d", server.port)
    print(f"customer-vault serving on {settings.address} (port {server.port})", flush=True)
    if ready is not None:
        ready.set()
    stop.wait()
    server.stop(settings.shutdown_grace_seconds)
    app.close()
    log.info("customer vault stopped")
    return 0
