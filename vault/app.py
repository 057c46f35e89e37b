"""The one place that wires everything together."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from types import FrameType
from typing import TypedDict

from sqlalchemy.engine import Engine

import audit
from audit.witness import WitnessClient
from vault import key_custody, startup, telemetry
from vault.api.bindings import (
    SHORT_READS,
    DomainServices,
    interceptor_stages,
    service_bindings,
)
from vault.api.idempotency import Idempotency
from vault.api.limits import CallLimits
from vault.api.page_tokens import PageTokens
from vault.api.server import (
    VAULT_SERVICE,
    ConnectionLimits,
    ServerOptions,
    ServiceBinding,
    TlsFiles,
    VaultServer,
)
from vault.audit_trail import Auditor, checkpoint_lag
from vault.background import PeriodicTask
from vault.clock import Clock, SystemClock
from vault.config import Settings
from vault.consent.receipts import ReceiptIssuer
from vault.consent.service import ConsentService
from vault.crypto import KeyRing
from vault.errors import FailedPreconditionError
from vault.events.service import EventFeed
from vault.fields.dictionary import DataDictionary
from vault.identity import (
    BearerVerifier,
    IdentityMap,
    IssuerVerifiers,
    JwksVerifier,
    TokenIssuer,
    TokenVerifier,
    trusted_issuer,
)
from vault.policy import PolicyEngine
from vault.records.cipher import RecordCipher
from vault.records.disclosure import DisclosureService
from vault.records.limits import RateLimiter
from vault.records.reader import RecordReader
from vault.records.reindex import Reindexer
from vault.records.rendering import ViewRenderer
from vault.records.service import RecordService
from vault.retention.anonymizer import Anonymizer
from vault.retention.job import RetentionJob
from vault.retention.locking import runner_lock_for
from vault.retention.preparer import ChildPreparerSetup
from vault.retention.rules import RULES_FILE, RetentionRules
from vault.retention.scheduler import RetentionScheduler
from vault.retention.service import RetentionService
from vault.rights.customer_access import LINK_AUDIENCE_SUFFIX, CustomerAccess, Signing
from vault.rights.deadlines import REQUESTS_FILE, RequestRules
from vault.rights.request_decisions import RequestDecisions, RequestDesk
from vault.rights.request_expiry import RequestExpiry
from vault.rights.requests import CustomerRequests
from vault.rights.service import RightsService
from vault.storage import migrate
from vault.storage.db import (
    SQLITE_AUTOCHECKPOINT_PAGES,
    SQLITE_BACKSTOP_PAGES,
    Database,
    create_engine,
    wait_until,
    wait_until_reachable,
)
from vault.whatif.service import WhatIfService
from vault.whatif.versions import PolicyVersions

log = logging.getLogger(__name__)

# How often a WAL scrub an erasure could not finish (the database was busy) is retried.
WAL_SCRUB_RETRY_SECONDS = 5.0


class RecordServiceParts(TypedDict):
    """What every record service is built from."""

    db: Database
    sealing: RecordCipher
    dictionary: DataDictionary
    policy: PolicyEngine


@dataclass
class VaultApp:
    """Every long-lived component of one vault process."""

    settings: Settings
    clock: Clock
    db: Database
    keyring: KeyRing
    dictionary: DataDictionary
    policy: PolicyEngine
    audit_log: audit.AuditLog
    auditor: Auditor
    records: RecordService
    reader: RecordReader
    disclosures: DisclosureService
    identities: IdentityMap
    consent: ConsentService
    rights: RightsService
    retention_job: RetentionJob
    reindexer: Reindexer
    requests: RequestDesk
    versions: PolicyVersions
    tasks: list[PeriodicTask | audit.PublisherThread | RetentionScheduler] = field(
        default_factory=list
    )
    publisher: audit.Publisher | None = field(default=None, init=False, repr=False)
    audit_alarm: str | None = field(default=None, init=False, repr=False)
    _alarm_listeners: list[Callable[[str], None]] = field(
        default_factory=list, init=False, repr=False
    )
    observability: telemetry.Telemetry = field(default_factory=telemetry.Telemetry)
    _unwatch: Callable[[], None] | None = field(default=None, init=False, repr=False)
    # SQLite's WAL checkpointed by a task of `start_background` every this many seconds
    # (None: by the commits, SQLite's default).
    wal_checkpoint_interval: float | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(
        cls, settings: Settings, clock: Clock | None = None, *, wal_checkpoints: bool = False
    ) -> VaultApp:
        """Load keys, policies and the database; migrate the embedded default.

        `wal_checkpoints` (SQLite, a process that will `start_background`): its WAL is
        checkpointed by a background task every `sqlite_checkpoint_interval_seconds`,
        and a commit checkpoints only as a backstop."""
        clock = clock or SystemClock()
        if settings.is_embedded and settings.generate_dev_keys:
            for created in key_custody.init_keys(settings):
                log.info("generated development key %s", created)
        keyring = key_custody.keyring_for(settings)
        dictionary = DataDictionary.from_file(settings.policies_dir / "data_dictionary.yaml")
        retention_rules = RetentionRules.from_file(settings.policies_dir / RULES_FILE)
        request_rules = RequestRules.from_file(settings.policies_dir / REQUESTS_FILE)
        policy = PolicyEngine.from_dir(settings.policies_dir)
        interval = settings.sqlite_checkpoint_interval_seconds
        checkpointing = wal_checkpoints and settings.is_embedded and interval > 0
        engine = create_engine(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            lock_timeout=settings.db_lock_timeout_seconds,
            wal_autocheckpoint=(
                SQLITE_BACKSTOP_PAGES if checkpointing else SQLITE_AUTOCHECKPOINT_PAGES
            ),
        )
        try:
            _await_database(engine, settings)
        except BaseException:
            engine.dispose()
            raise
        db = Database(engine)
        versions = PolicyVersions(db, dictionary, clock)
        # Every policy put in force is kept by its version (`policy simulate`, `audit explain`).
        policy.on_version(versions.record)
        # Every entry appended through this engine carries a MAC under a key that is
        # never in the database (audit.mac).
        audit.use_entry_mac(engine, _entry_mac(settings))
        audit_log = audit.AuditLog(engine)
        audit_log.start()
        auditor = Auditor(audit_log, clock, timeout=settings.audit_timeout_seconds)
        sealing = RecordCipher(keyring, dictionary.index_forms)
        renderer = ViewRenderer(policy, dictionary, sealing, keyring)
        common = RecordServiceParts(db=db, sealing=sealing, dictionary=dictionary, policy=policy)
        records = RecordService(
            **common,
            auditor=auditor,
            clock=clock,
            max_batch_size=settings.max_batch_size,
            erase_limit=RateLimiter(
                "erasure", settings.erase_rate_per_minute, settings.erase_burst, clock
            ),
        )
        reader = RecordReader(
            **common,
            renderer=renderer,
            auditor=auditor,
            clock=clock,
            export_batch_size=settings.export_batch_size,
            search_limit=RateLimiter(
                "search", settings.search_rate_per_minute, settings.search_burst, clock
            ),
            find_page_size=settings.find_page_size,
            find_max_page_size=settings.find_max_page_size,
        )
        disclosures = DisclosureService(
            **common,
            auditor=auditor,
            clock=clock,
            # Each call asks for the active token-key version: a rotation applies at once.
            tokenizer_deterministic=lambda t, f, v: keyring.tokenizer().deterministic(t, f, v),
            tokenizer_random=lambda: keyring.tokenizer().random_token(),
            token_versions=keyring.token_versions,
        )
        identities = IdentityMap.from_file(settings.policies_dir / "identities.yaml")
        receipt_issuer = _receipt_issuer(settings, dictionary)
        consent = ConsentService(
            db=db,
            policy=policy,
            auditor=auditor,
            clock=clock,
            issuer=receipt_issuer,
            jurisdiction=settings.consent_jurisdiction,
        )
        rights = RightsService(
            db=db,
            sealing=sealing,
            dictionary=dictionary,
            policy=policy,
            records=records,
            auditor=auditor,
            clock=clock,
            controller=settings.consent_controller,
            signer=receipt_issuer,
        )
        desk_parts = {
            "db": db,
            "policy": policy,
            "auditor": auditor,
            "clock": clock,
            "rules": request_rules,
            "sealing": sealing,
        }
        requests = RequestDesk(
            customers=CustomerRequests(dictionary=dictionary, **desk_parts),
            decisions=RequestDecisions(rights=rights, **desk_parts),
            expiry=RequestExpiry(**desk_parts),  # type: ignore[arg-type]
        )
        app = cls(
            settings,
            clock,
            db,
            keyring,
            dictionary,
            policy,
            audit_log,
            auditor,
            records,
            reader,
            disclosures,
            identities,
            consent=consent,
            rights=rights,
            retention_job=RetentionJob(
                db=db,
                rules=retention_rules,
                anonymizer=Anonymizer(sealing, dictionary),
                clock=clock,
                lock=runner_lock_for(engine, settings.data_dir),
                batch_size=settings.retention_batch_size,
                child=ChildPreparerSetup(settings, dictionary),
            ),
            reindexer=Reindexer(db, sealing, settings.reindex_batch_size),
            requests=requests,
            versions=versions,
            observability=telemetry.configure(settings),
        )
        app.wal_checkpoint_interval = interval if checkpointing else None
        return app

    def start_background(self, *, leader: bool = True) -> None:
        """Start the audit integrator, key refresh/re-wrap, policy watching and the
        retention schedule (when `retention_schedule` is set).

        With several worker processes (`serve --workers N`) only the leader runs the
        work done once for the database (integrator and witness publishing, re-wrap,
        blind re-index, retention); every worker refreshes its own keys, watches its
        own policy files and scrubs the WAL after its own shreds."""
        s = self.settings
        own = [
            PeriodicTask("key-refresh", s.key_refresh_interval_seconds, self._refresh_keys),
            PeriodicTask("wal-scrub", WAL_SCRUB_RETRY_SECONDS, self.db.scrub_pending),
        ]
        if self.wal_checkpoint_interval is not None:
            # Every process: each one's commits leave the checkpoint to it.
            own.append(
                PeriodicTask("wal-checkpoint", self.wal_checkpoint_interval, self.db.checkpoint_wal)
            )
        if not leader:
            self.tasks = [*own]
            self._start_tasks()
            return
        signer = audit.CheckpointSigner(s.resolved_audit_signing_key.read_bytes(), s.audit_origin)
        publishing = self._publisher_thread()
        self.audit_log.start_integrating(
            signer,
            s.audit_origin,
            interval=s.audit_integrate_interval_seconds,
            last_signed=audit.LastSignedFile(s.audit_last_checkpoint_file, self.audit_verifier()),
            mac=audit.entry_mac_for(self.db.engine),
            on_refusal=lambda problem: self._audit_integrity_alarm("integrator", problem),
            on_checkpoint=None if publishing is None else publishing.notify,
        )
        self.tasks = [
            *([] if publishing is None else [publishing]),
            *own,
            PeriodicTask("key-rewrap", s.rewrap_interval_seconds, self._rewrap),
            PeriodicTask("blind-reindex", s.rewrap_interval_seconds, self.reindexer.run_once),
            PeriodicTask(
                "event-prune", s.event_prune_interval_seconds, self.event_feed().prune_once
            ),
            PeriodicTask(
                "idempotency-prune", s.idempotency_prune_interval_seconds, self.idempotency.prune
            ),
            PeriodicTask(
                "request-expiry",
                s.request_expiry_interval_seconds,
                self.requests.expiry.expire_due,
            ),
        ]
        if s.retention_schedule:
            self.tasks.append(
                RetentionScheduler(
                    self.retention_job, s.retention_schedule, self.clock, s.retention_poll_seconds
                )
            )
        self._start_tasks()

    def _start_tasks(self) -> None:
        for task in self.tasks:
            task.start()
        self.policy.start_watching(interval=2.0)
        self._unwatch = telemetry.watch(
            telemetry.GaugeSources(
                audit_lag=lambda: checkpoint_lag(self.db.engine, self.clock.now()),
                data_keys=self._data_keys_by_version,
                witness_lag=lambda: {} if self.publisher is None else self.publisher.lag(),
            )
        )

    def _publisher_thread(self) -> audit.PublisherThread | None:
        """Publishing to the configured witnesses, if any."""
        s = self.settings
        if not s.audit_witnesses:
            return None
        self.publisher = audit.Publisher(
            self.db.engine,
            self.witness_clients(),
            self.audit_verifier(),
            on_alarm=lambda problem: self._audit_integrity_alarm("witness", problem),
        )
        return audit.PublisherThread(self.publisher, interval=s.audit_publish_interval_seconds)

    def witness_clients(self) -> list[WitnessClient]:
        """The configured witnesses, each with the verifier of its cosignatures."""
        return [
            WitnessClient(w.url, audit.CosignatureVerifier.from_verifier_key(w.verifier_key()))
            for w in self.settings.audit_witnesses
        ]

    def on_audit_alarm(self, listener: Callable[[str], None]) -> None:
        """Call `listener(problem)` on an audit integrity alarm (at once if one was raised)."""
        self._alarm_listeners.append(listener)
        if self.audit_alarm is not None:
            listener(self.audit_alarm)

    def _audit_integrity_alarm(self, source: str, problem: str) -> None:
        # Loud, once per source: the ERROR line was written by the audit package; the
        # metric and the health status make it visible to alerting and to clients.
        telemetry.audit_integrity_alarm(source)
        if self.audit_alarm is None:
            self.audit_alarm = problem
        for listener in self._alarm_listeners:
            listener(problem)

    def _data_keys_by_version(self) -> dict[str, int]:
        counts = key_custody.status(self.db, self.keyring.provider).data_keys_by_version
        return {"shredded" if v is None else str(v): n for v, n in counts.items()}

    @cached_property
    def idempotency(self) -> Idempotency:
        """Idempotency keys of mutating calls, in this vault's database (every worker
        and replica sees the same keys)."""
        window = timedelta(seconds=self.settings.idempotency_window_seconds)
        return Idempotency(self.db, self.clock, window)

    def _refresh_keys(self) -> bool:
        self.keyring.refresh()
        return False

    def _rewrap(self) -> bool:
        moved = key_custody.rewrap_batch(self.db, self.keyring, self.settings.rewrap_batch_size)
        if moved:
            log.info("re-wrapped %d data keys", moved)
        return moved > 0

    def close(self) -> None:
        self.policy.stop_watching()
        for task in self.tasks:
            task.stop()
        if self._unwatch is not None:
            self._unwatch()
        self.audit_log.close()
        self.db.scrub_pending(wait_seconds=2.0)
        self.db.dispose()
        self.keyring.provider.close()
        self.observability.shutdown()

    def token_verifier(self) -> BearerVerifier:
        """The static token key's verifier, and one per trusted issuer (`token_issuers`)
        behind a router choosing by the token's issuer (the static key is then optional)."""
        s = self.settings
        public_key = s.resolved_token_public_key
        static = (
            TokenVerifier(
                public_key.read_bytes(),
                issuer=s.token_issuer,
                audience=s.token_audience,
                clock=self.clock,
                leeway_seconds=s.token_leeway_seconds,
            )
            if not s.token_issuers or public_key.exists()
            else None
        )
        if not s.token_issuers:
            assert static is not None
            return static
        trusted = [
            JwksVerifier(trusted_issuer(entry), self.clock, s.token_leeway_seconds)
            for entry in s.token_issuers
        ]
        return IssuerVerifiers(static, s.token_issuer, trusted)

    def customer_signing(self) -> Signing | None:
        """Customer tokens and link codes are signed with the vault's token key, when this
        vault holds it (a vault given only the public key cannot issue them)."""
        s = self.settings
        if not (s.token_private_key.exists() and s.resolved_token_public_key.exists()):
            return None  # e.g. only trusted issuers: no static key pair at all
        private = s.token_private_key.read_bytes()
        link_audience = s.token_audience + LINK_AUDIENCE_SUFFIX
        return Signing(
            tokens=TokenIssuer(
                private, issuer=s.token_issuer, audience=s.token_audience, clock=self.clock
            ),
            links=TokenIssuer(
                private, issuer=s.token_issuer, audience=link_audience, clock=self.clock
            ),
            link_verifier=TokenVerifier(
                s.resolved_token_public_key.read_bytes(),
                issuer=s.token_issuer,
                audience=link_audience,
                clock=self.clock,
                leeway_seconds=0,
            ),
        )

    def build_server(self, *, reuse_port: bool = False) -> VaultServer:
        s = self.settings
        tls = (
            TlsFiles(s.tls_cert, s.tls_key, s.tls_client_ca)
            if s.tls_cert is not None and s.tls_key is not None
            else None
        )
        options = ServerOptions(
            address=s.address,
            max_workers=s.max_workers,
            max_concurrent_rpcs=s.max_concurrent_rpcs,
            max_response_bytes=s.max_response_bytes,
            limits=call_limits(s),
            connections=ConnectionLimits(
                idle_seconds=s.connection_idle_seconds,
                max_age_seconds=s.connection_max_age_seconds,
                age_grace_seconds=s.connection_age_grace_seconds,
                keepalive_time_seconds=s.keepalive_time_seconds,
                keepalive_timeout_seconds=s.keepalive_timeout_seconds,
                min_client_ping_interval_seconds=s.min_client_ping_interval_seconds,
                max_streams_per_connection=s.max_streams_per_connection,
            ),
            reflection=s.reflection_served,
            reflection_public=s.reflection_public,
            tls=tls,
            reuse_port=reuse_port,
            on_loop=SHORT_READS if s.resolved_reads_on_loop else frozenset(),
        )
        stages = interceptor_stages(self.auditor, self.token_verifier(), self.identities)
        server = VaultServer(
            options,
            stages,
            self.services(),
            idempotency=self.idempotency,
            page_tokens=PageTokens(self.keyring.page_token_mac, self.keyring.page_token_versions),
            admit_bulk=self.records.admit_batch,  # BatchCreateSubjects, the one bulk method
        )
        self.on_audit_alarm(lambda _problem: server.mark_audit_failed())
        return server

    def services(self) -> list[ServiceBinding]:
        """The gRPC services of this process, each over its domain service."""
        return service_bindings(
            DomainServices(
                records=self.records,
                reader=self.reader,
                disclosures=self.disclosures,
                consent=self.consent,
                rights=self.rights,
                retention=RetentionService(
                    db=self.db,
                    policy=self.policy,
                    auditor=self.auditor,
                    clock=self.clock,
                    job=self.retention_job,
                ),
                customers=CustomerAccess(
                    db=self.db,
                    policy=self.policy,
                    auditor=self.auditor,
                    clock=self.clock,
                    signing=self.customer_signing(),
                ),
                requests=self.requests,
                events=self.event_feed(),
                policy=self.policy,
                dictionary=self.dictionary,
                audit_engine=self.db.engine,
                whatif=WhatIfService(
                    self.db.engine, self.db, self.policy, self.versions, self.clock
                ),
                audit_verifier=self.audit_verifier(),
                audit_mac=audit.entry_mac_for(self.db.engine),
                witnesses=self.witness_clients(),
            ),
            max_violations=self.settings.max_error_violations,
        )

    def event_feed(self) -> EventFeed:
        """The outbox's reader and upkeep (EventService, the `event-prune` task)."""
        return EventFeed(
            db=self.db,
            policy=self.policy,
            auditor=self.auditor,
            clock=self.clock,
            retention=timedelta(days=self.settings.event_retention_days),
        )

    def audit_verifier(self) -> audit.CheckpointVerifier:
        s = self.settings
        return audit.CheckpointVerifier.from_pem(s.audit_public_key.read_bytes(), s.audit_origin)


def _entry_mac(settings: Settings) -> audit.EntryMac:
    path = settings.resolved_audit_mac_key
    if not path.exists():
        raise FailedPreconditionError(
            "the audit entry MAC key is missing: run `customer-vault keys init` "
            "(or mount audit_mac.key from the key Secret)"
        )
    try:
        return audit.EntryMac.from_file(path)
    except audit.KeyFormatError as exc:
        raise FailedPreconditionError(f"audit entry MAC key: {exc}") from None


def _await_database(engine: Engine, settings: Settings) -> None:
    """Wait for the database (with back-off) and its schema: the embedded default
    migrates itself; a replica of a new release waits for its migration job instead of
    crash-looping (both within `db_connect_timeout_seconds`)."""
    wait_until_reachable(engine, timeout=settings.db_connect_timeout_seconds)
    if settings.is_embedded:
        migrate.upgrade(engine)
        audit.migrate(engine)
    elif not wait_until(
        lambda: migrate.is_current(engine) and audit.is_current(engine),
        timeout=settings.db_connect_timeout_seconds,
        waiting_for="the schema migration (`customer-vault migrate`)",
    ):
        raise FailedPreconditionError(
            "database schema is not current: run `customer-vault migrate` first"
        )


BATCH_CREATE = f"/{VAULT_SERVICE}/BatchCreateSubjects"


def call_limits(settings: Settings) -> CallLimits:
    """The per-call limits: BatchCreateSubjects alone takes more than the default."""
    return CallLimits(
        max_request_bytes=settings.max_request_bytes,
        request_bytes_by_method={BATCH_CREATE: settings.max_batch_request_bytes},
        max_map_entries=settings.max_map_entries,
        max_request_map_entries=settings.max_request_map_entries,
        max_large_requests=settings.max_large_requests,
        bulk_methods=frozenset({BATCH_CREATE}),
        max_bulk_calls=settings.max_concurrent_batches,
        max_bulk_calls_per_principal=settings.max_batches_per_caller,
        max_queue_seconds=settings.max_queue_seconds,
        max_violations=settings.max_error_violations,
        max_calls_per_principal=settings.max_calls_per_principal,
        max_streams=settings.max_streams,
        max_streams_per_principal=settings.max_streams_per_principal,
        max_public_streams=settings.max_public_streams,
        max_public_calls=settings.max_public_calls,
        public_request_timeout_seconds=settings.public_request_timeout_seconds,
        idle_timeout_seconds=settings.stream_idle_timeout_seconds,
        max_age_seconds=settings.stream_max_age_seconds,
        audit_timeout_seconds=settings.audit_timeout_seconds,
    )


def _receipt_issuer(settings: Settings, dictionary: DataDictionary) -> ReceiptIssuer:
    return ReceiptIssuer.load(
        settings.resolved_receipt_signing_key,
        settings.receipt_public_key,
        controller=settings.consent_controller,
        controller_contact=settings.consent_controller_contact,
        policy_url=settings.consent_policy_url,
        dictionary=dictionary,
    )


@contextmanager
def running(
    settings: Settings,
    clock: Clock | None = None,
    *,
    grace: float | None = None,
    leader: bool = True,
    reuse_port: bool = False,
) -> Iterator[tuple[VaultApp, VaultServer]]:
    """The one start-up path (`serve`, its workers, and `vault.testing.running_vault`):
    open the app, start the server and the background work (all of it when `leader`,
    see `VaultApp.start_background`), mark it serving; on leaving, stop the server
    (in-flight calls get `grace` seconds, by default the configured
    `shutdown_grace_seconds`) and close the app."""
    app = VaultApp.open(settings, clock=clock, wal_checkpoints=True)
    server: VaultServer | None = None
    try:
        server = app.build_server(reuse_port=reuse_port)
        server.start()
        app.start_background(leader=leader)
        server.mark_serving()
        yield app, server
    finally:
        if server is not None:
            server.stop(settings.shutdown_grace_seconds if grace is None else grace)
        app.close()


def serve(settings: Settings, ready: threading.Event | None = None, *, dev: bool = False) -> int:
    """Run until SIGTERM/SIGINT, then drain in-flight calls and exit 0.

    Refuses first (`StartupRefusedError`) key files or a data dir others may use, and a
    development token key beyond loopback or with PostgreSQL unless `dev` (`vault.startup`).
    Everything the process creates is private to its user (umask 077). One process,
    whatever `settings.workers` says: `vault.supervisor.serve` runs several.
    """
    prepare(settings, dev=dev)
    return serve_one(settings, ready)


def prepare(settings: Settings, *, dev: bool = False) -> None:
    """The checks and the umask of `serve`, before anything is opened."""
    os.umask(0o077)
    startup.check_private_modes(settings)
    startup.check_token_key(settings, dev=dev)
    if dev:
        # INFO, not WARNING: --dev is a stated choice, and a clean run logs no warning.
        log.info("DEVELOPMENT MODE (--dev): tokens signed by the data dir's key are trusted")


def serve_one(
    settings: Settings,
    ready: threading.Event | Callable[[int], None] | None = None,
    *,
    leader: bool = True,
    reuse_port: bool = False,
) -> int:
    """One server process until SIGTERM/SIGINT (`serve`, or one of its workers, which
    reports its port through `ready` instead of printing the "serving on" line)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received signal %d; shutting down", signum)
        stop.set()

    with running(settings, leader=leader, reuse_port=reuse_port) as (_app, server):
        # Only once started: a signal while the database is awaited ends the process.
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info("customer vault serving on port %d", server.port)
        for name in settings.receipt_placeholders() if leader else ():  # once per vault
            log.warning(
                "%s is not configured: consent receipts and access packages state a "
                "placeholder controller detail (set VAULT_%s)",
                name,
                name.upper(),
            )
        if ready is None or isinstance(ready, threading.Event):
            print(f"customer-vault serving on {settings.address} (port {server.port})", flush=True)
            if ready is not None:
                ready.set()
        else:
            ready(server.port)
        stop.wait()
    log.info("customer vault stopped")
    return 0
