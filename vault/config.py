"""Settings: the only module that reads the environment (prefix ``VAULT_``).

Values come from, in order of precedence: explicit arguments (the CLI's flags), the
environment, an optional YAML file named by ``VAULT_CONFIG_FILE``, then defaults that
give the embedded development setup (SQLite + generated keys under ``.vault-data``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as PydanticSettingsError

from vault.errors import VaultError

_REPO_POLICIES = Path(__file__).resolve().parents[1] / "policies"


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by VAULT_CONFIG_FILE, if any."""

    def __init__(self, settings_cls: type[BaseSettings], path: str | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path:
            try:
                loaded = yaml.safe_load(Path(path).read_text()) or {}
            except yaml.MarkedYAMLError as exc:
                # `from None`, and only the position: PyYAML's message quotes the line,
                # which may hold a key document.
                line = exc.problem_mark.line + 1 if exc.problem_mark else 0
                raise SettingsError(f"config file {path}: not valid YAML (line {line})") from None
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                raise SettingsError(f"config file {path}: not readable YAML") from None
            if not isinstance(loaded, dict):
                raise SettingsError(f"config file {path} must hold a mapping")
            self._data = loaded

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class SettingsError(VaultError):
    """The settings do not validate. The message names fields and problems, never a value:
    a typo must not print part of a key document (`VAULT_MASTER_KEYS`) to a log."""


def load_settings(**overrides: Any) -> Settings:
    """`Settings(**overrides)`, with every validation problem as one `SettingsError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise SettingsError(f"invalid settings: {problems}") from None
    except PydanticSettingsError as exc:
        # pydantic-settings names the field and the source in its own message.
        raise SettingsError(f"invalid settings: {exc}") from None


class WitnessSettings(BaseModel):
    """One witness the vault publishes checkpoints to (`audit_witnesses`).

    `key` is the witness's verifier key (`<name>+<hex id>+<base64 key>`, what
    `customer-vault witness init` prints); `key_file` a file holding it instead.
    `name` must be the name inside that key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str
    url: str
    key: str | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _one_key(self) -> WitnessSettings:
        if (self.key is None) == (self.key_file is None):
            raise ValueError("a witness needs exactly one of key and key_file")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("a witness url must start with http:// or https://")
        return self

    def verifier_key(self) -> str:
        """The verifier key, read from `key_file` when that is how it was given."""
        if self.key is not None:
            return self.key
        assert self.key_file is not None
        return self.key_file.read_text(encoding="utf-8").strip()


class TrustedIssuerSettings(BaseModel):
    """One identity provider whose tokens the vault accepts (`token_issuers`; JSON list in
    VAULT_TOKEN_ISSUERS, or YAML). See docs/operations.md, "Tokens from your identity
    provider", and `vault.identity.issuers`."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    issuer: str
    jwks_url: str
    audience: str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"])
    # Exactly one: every token of this issuer is for `tenant`, or names it in a claim.
    tenant: str | None = None
    tenant_claim: str | None = None
    principal_claim: str = "sub"
    roles_claim: str = "roles"
    # Principal attribute name -> claim (dotted path) it is read from.
    attribute_claims: dict[str, str] = Field(default_factory=dict)
    # The key set is kept this long; an unknown key id refetches it at most this often.
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refetch_seconds: float = Field(default=30.0, ge=0)
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _checked(self) -> TrustedIssuerSettings:
        if not self.jwks_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("a jwks_url must be https:// (plain http only on the loopback)")
        if any(a.lower() == "none" or a.upper().startswith("HS") for a in self.algorithms):
            raise ValueError("an issuer's algorithms must be asymmetric (no none, no HS*)")
        if (self.tenant is None) == (self.tenant_claim is None):
            raise ValueError("an issuer needs exactly one of tenant and tenant_claim")
        return self


PLACEHOLDER_CONTROLLER = "Customer Vault controller"
"""The default controller name: a placeholder, never a real controller's name."""


class Settings(BaseSettings):
    """Every knob of the vault. Paths default to locations inside `data_dir`."""

    # hide_input_in_errors: a ValidationError never quotes the value it refused (a key
    # document put under the wrong name or shape would otherwise be echoed in full).
    model_config = SettingsConfigDict(
        env_prefix="VAULT_", extra="forbid", hide_input_in_errors=True
    )

    config_file: str | None = None
    address: str = "127.0.0.1:50051"
    data_dir: Path = Path(".vault-data")
    database_url: str | None = None
    policies_dir: Path = _REPO_POLICIES

    # Key custody. VAULT_MASTER_KEYS (a key document) wins over the local key file.
    master_keys: str | None = Field(default=None, repr=False)
    key_file: Path | None = None
    # Which provider holds the KEKs and root secrets: "file" (key_file), "env"
    # (master_keys) or "pkcs11" (an HSM; docs/operations.md, "Key custody in an HSM").
    # None: "env" when master_keys is set, else "file".
    key_provider: Literal["file", "env", "pkcs11"] | None = None
    pkcs11_module: str | None = None
    pkcs11_token_label: str = "customer-vault"  # noqa: S105 - a token's name, not a secret
    # The token's user PIN: VAULT_PKCS11_PIN, or a file holding it (a mounted secret).
    pkcs11_pin: SecretStr | None = Field(default=None, repr=False)
    pkcs11_pin_file: Path | None = None
    # Unwrapped data keys kept in memory (vault/crypto/dek_cache.py): at most this many,
    # each at most this long after its unwrap; 0 entries = no cache.
    dek_cache_size: int = Field(default=10_000, ge=0)
    dek_cache_ttl_seconds: float = Field(default=300.0, gt=0)
    generate_dev_keys: bool = True
    token_public_key: Path | None = None
    token_issuer: str = "customer-vault"  # noqa: S105 - an issuer name, not a secret
    token_audience: str = "customer-vault"  # noqa: S105 - an audience name, not a secret
    token_leeway_seconds: int = 5
    # Identity providers whose tokens are accepted beside the static token key above.
    token_issuers: list[TrustedIssuerSettings] = Field(default_factory=list)
    audit_signing_key: Path | None = None
    audit_origin: str = "customer-vault/audit"
    # HMAC-SHA256 key of every audit entry (never in the database); default in keys_dir.
    audit_mac_key: Path | None = None
    # Witnesses that cosign checkpoints (JSON list in VAULT_AUDIT_WITNESSES, or YAML).
    audit_witnesses: list[WitnessSettings] = Field(default_factory=list)
    audit_publish_interval_seconds: float = Field(default=1.0, gt=0)
    receipt_signing_key: Path | None = None

    # Consent receipts (Kantara Consent Receipt fields naming the controller).
    consent_controller: str = PLACEHOLDER_CONTROLLER
    consent_controller_contact: str = ""
    consent_jurisdiction: str = "EU"
    consent_policy_url: str = ""

    # Transport.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # Limits (docs/operations.md, "Limits"). A request is read only once its caller is
    # authenticated, and no larger than `max_request_bytes`; BatchCreateSubjects alone
    # takes up to `max_batch_request_bytes` (10,000 typical subjects are about 2.6 MiB).
    # That larger size is also what gRPC accepts at all (its limit is per server).
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_batch_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # Map entries (a subject's fields) in any one map of a request and in all of its
    # maps, counted on the wire before it is parsed (a 10,000-subject batch of 20 fields
    # each is 200,000); requests over `max_request_bytes` parsed and handled at once;
    # field violations listed in one error (the rest are counted).
    max_map_entries: int = Field(default=256, ge=1)
    max_request_map_entries: int = Field(default=200_000, ge=1)
    max_large_requests: int = Field(default=2, ge=1)
    # BatchCreateSubjects calls run in each server process at once; the rest wait their
    # turn holding no thread (`CallLimits.bulk_methods`). More than one shares one core.
    max_concurrent_batches: int = Field(default=1, ge=1)
    # ... and each caller's in flight per process, running or waiting (more: refused).
    max_batches_per_caller: int = Field(default=4, ge=1)
    # Seconds a batch or a large request waits for its turn before it is refused
    # UNAVAILABLE (retry later): a caller with no deadline holds its request no longer.
    max_queue_seconds: float = Field(default=120.0, gt=0)
    max_error_violations: int = Field(default=50, ge=1)
    max_batch_size: int = 10_000
    export_batch_size: int = 500
    # Threads that run the domain work of calls. Waiting on a caller (its request, its
    # reading of a stream, an idle connection) holds none: the server is grpc.aio.
    max_workers: int = 32
    # Short reads (GetSubject, FindSubjects, RevealField, Detokenize) run on the event
    # loop instead of a worker thread, their audit entries awaited there before anything
    # is sent: two thread hand-offs less per call. None = on SQLite only (a read there
    # is CPU in this process; on PostgreSQL it waits on the network, which would stall
    # the loop for every other call), and not with a PKCS#11 key provider (an uncached
    # data key is unwrapped in the token, which may be across the network).
    reads_on_loop: bool | None = None
    # How long a read waits for its audit entry's group commit before it fails closed
    # (UNAVAILABLE; the entry may still be written later, which is harmless).
    audit_timeout_seconds: float = Field(default=10.0, gt=0)
    # Server processes sharing the port (SO_REUSEPORT), each with its own thread pool
    # and database engine; None = one per CPU this process may run on. 1 = one process.
    workers: int | None = Field(default=None, ge=1)
    max_concurrent_rpcs: int = Field(default=1024, ge=1)
    # Calls in flight per principal (a call cut while its caller stalls counts until
    # its transport ends it); open streams (ExportView, reflection, health Watch) on
    # the server, per principal, and unauthenticated; unauthenticated unary calls
    # (health checks: their request is read before anyone is known), each of which
    # must send its request within `public_request_timeout_seconds`.
    max_calls_per_principal: int = Field(default=64, ge=1)
    max_streams: int = Field(default=64, ge=1)
    max_streams_per_principal: int = Field(default=4, ge=1)
    max_public_streams: int = Field(default=16, ge=1)
    max_public_calls: int = Field(default=16, ge=1)
    public_request_timeout_seconds: float = Field(default=2.0, gt=0)
    # A call waiting on its caller longer than this (a request message that does not
    # come, a stream response the caller does not read) is cut; streams end at the
    # maximum age whatever they do.
    stream_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    stream_max_age_seconds: float = Field(default=3600.0, gt=0)
    # Connections: closed when idle (no call) this long; told to go away (GOAWAY) at
    # this age and closed after the grace, which also ends calls cut while their caller
    # stalls; the server pings an idle connection every `keepalive_time` and drops it
    # when no answer comes within `keepalive_timeout`; a client pinging more often than
    # `min_client_ping_interval` is disconnected.
    connection_idle_seconds: float = Field(default=300.0, gt=0)
    connection_max_age_seconds: float = Field(default=1800.0, gt=0)
    connection_age_grace_seconds: float = Field(default=300.0, ge=0)
    keepalive_time_seconds: float = Field(default=60.0, gt=0)
    keepalive_timeout_seconds: float = Field(default=20.0, gt=0)
    min_client_ping_interval_seconds: float = Field(default=10.0, gt=0)
    max_streams_per_connection: int = Field(default=100, ge=1)
    # Server reflection: None = public in the embedded development default, off
    # otherwise; True = on (and then only for authenticated callers outside the
    # embedded default); False = off.
    reflection: bool | None = None
    shutdown_grace_seconds: float = 15.0

    # Abuse limits, per principal (tenant + id) and per vault process (docs/security.md).
    # A search confirms or denies a guessed value: FindSubjects calls per minute, with a
    # burst allowance. 0 switches a limit off.
    search_rate_per_minute: int = Field(default=60, ge=0)
    search_burst: int = Field(default=20, ge=1)
    # EraseSubject calls per minute (the data-subject-request path, EraseSubjectData,
    # is not limited: bulk erasure goes through it, one request reference each).
    erase_rate_per_minute: int = Field(default=10, ge=0)
    erase_burst: int = Field(default=10, ge=1)
    # FindSubjects pages: the default and the largest page size.
    find_page_size: int = Field(default=50, ge=1)
    find_max_page_size: int = Field(default=500, ge=1)
    # Idempotency keys (AIP-155 request_id on mutating calls) are remembered at least
    # this long (docs/api.md#idempotency); the leader prunes older ones every interval.
    idempotency_window_seconds: float = Field(default=86400.0, ge=60)
    idempotency_prune_interval_seconds: float = Field(default=300.0, gt=0)

    # Data-subject requests still awaiting verification past their deadline expire in
    # the leader's background work, checked every this many seconds.
    request_expiry_interval_seconds: float = Field(default=300.0, gt=0)

    # Background work.
    rewrap_interval_seconds: float = 5.0
    rewrap_batch_size: int = 500
    # Subjects per transaction when re-indexing after a blind-index key rotation (it runs
    # every `rewrap_interval_seconds` while digests are stale).
    reindex_batch_size: int = 500
    audit_integrate_interval_seconds: float = 1.0
    # SQLite: each serving process copies the WAL into the database file from a thread
    # of its own this often, so no call's commit waits for a checkpoint; 0 leaves it to
    # SQLite (the commit that finds 1,000 pages in the WAL checkpoints it).
    sqlite_checkpoint_interval_seconds: float = Field(default=0.25, ge=0)
    key_refresh_interval_seconds: float = 2.0
    db_pool_size: int = 10
    db_connect_timeout_seconds: float = 60.0
    # How long a statement waits for a lock held by another session before the call
    # fails UNAVAILABLE (SQLite busy timeout, PostgreSQL lock_timeout).
    db_lock_timeout_seconds: float = Field(default=30.0, gt=0)

    # Retention (policies/retention.yaml): a cron expression in UTC for the in-process
    # job ("" = off, e.g. when a Kubernetes CronJob runs `customer-vault retention run`).
    retention_schedule: str = "17 3 * * *"
    # A batch holds SQLite's write lock about 0.3 s
    # (docs/performance-journal/2026-11-24-anonymization-a-million.md).
    retention_batch_size: int = 2500
    retention_poll_seconds: float = 30.0

    # The event outbox (vault/storage/events.py, EventService): events older than this
    # many days are pruned in the background (every `event_prune_interval_seconds`);
    # a consumer must read more often than that (docs/operations.md, "Events").
    event_retention_days: int = Field(default=30, ge=1)
    event_prune_interval_seconds: float = Field(default=600.0, gt=0)

    # Telemetry (vault/telemetry.py). These standard OpenTelemetry variables decide
    # whether anything is exported, so they keep their own names (no VAULT_ prefix);
    # the SDK reads the rest itself: OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS,
    # OTEL_TRACES_SAMPLER, OTEL_METRIC_EXPORT_INTERVAL, ...
    otel_sdk_disabled: bool = Field(default=False, validation_alias="otel_sdk_disabled")
    otel_traces_exporter: str = Field(default="", validation_alias="otel_traces_exporter")
    otel_metrics_exporter: str = Field(default="", validation_alias="otel_metrics_exporter")
    otel_exporter_otlp_endpoint: str = Field(
        default="", validation_alias="otel_exporter_otlp_endpoint"
    )
    otel_exporter_otlp_traces_endpoint: str = Field(
        default="", validation_alias="otel_exporter_otlp_traces_endpoint"
    )
    otel_exporter_otlp_metrics_endpoint: str = Field(
        default="", validation_alias="otel_exporter_otlp_metrics_endpoint"
    )

    @field_validator("max_batch_size", "export_batch_size", "retention_batch_size")
    @classmethod
    def _batch_size_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("batch sizes must be positive")
        return value

    @model_validator(mode="after")
    def _pkcs11_complete(self) -> Settings:
        if self.key_provider == "pkcs11":
            if not self.pkcs11_module:
                raise ValueError("key_provider pkcs11 needs pkcs11_module")
            if (self.pkcs11_pin is None) == (self.pkcs11_pin_file is None):
                raise ValueError(
                    "key_provider pkcs11 needs exactly one of pkcs11_pin and pkcs11_pin_file"
                )
        if self.key_provider == "env" and not self.master_keys:
            raise ValueError("key_provider env needs master_keys")
        return self

    @field_validator("retention_schedule")
    @classmethod
    def _cron_expression(cls, value: str) -> str:
        if value.strip() and not croniter.is_valid(value):
            raise ValueError("retention_schedule must be a cron expression (or empty: off)")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = init_settings().get("config_file") or env_settings().get("config_file")
        return (init_settings, env_settings, _YamlFileSource(settings_cls, config_file))

    def receipt_placeholders(self) -> list[str]:
        """The controller details a receipt would state that are still placeholders
        (`serve` warns about each: a receipt must name the real controller)."""
        missing = []
        if self.consent_controller.strip() in {"", PLACEHOLDER_CONTROLLER}:
            missing.append("consent_controller")
        if not self.consent_controller_contact.strip():
            missing.append("consent_controller_contact")
        if not self.consent_policy_url.strip():
            missing.append("consent_policy_url")
        return missing

    @property
    def resolved_key_provider(self) -> str:
        if self.key_provider is not None:
            return self.key_provider
        return "env" if self.master_keys else "file"

    def pkcs11_pin_value(self) -> str:
        """The token PIN, from VAULT_PKCS11_PIN or the first line of `pkcs11_pin_file`."""
        if self.pkcs11_pin is not None:
            return self.pkcs11_pin.get_secret_value()
        if self.pkcs11_pin_file is None:
            raise SettingsError("pkcs11_pin or pkcs11_pin_file is required")
        try:
            text = self.pkcs11_pin_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise SettingsError(f"PIN file {self.pkcs11_pin_file} cannot be read") from None
        return text.splitlines()[0] if text else ""

    # Derived locations -----------------------------------------------------------------
    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.keys_dir / "master.json"

    @property
    def token_private_key(self) -> Path:
        return self.keys_dir / "token_signing.pem"

    @property
    def resolved_token_public_key(self) -> Path:
        return self.token_public_key or self.keys_dir / "token_signing.pub.pem"

    @property
    def resolved_audit_signing_key(self) -> Path:
        return self.audit_signing_key or self.keys_dir / "audit_signing.pem"

    @property
    def audit_public_key(self) -> Path:
        return self.resolved_audit_signing_key.with_suffix(".pub.pem")

    @property
    def resolved_audit_mac_key(self) -> Path:
        return self.audit_mac_key or self.keys_dir / "audit_mac.key"

    @property
    def audit_last_checkpoint_file(self) -> Path:
        """Where the integrator keeps the last checkpoint it signed (outside the database)."""
        return self.data_dir / "audit" / "last-checkpoint"

    @property
    def resolved_receipt_signing_key(self) -> Path:
        return self.receipt_signing_key or self.keys_dir / "receipt_signing.pem"

    @property
    def receipt_public_key(self) -> Path:
        return self.resolved_receipt_signing_key.with_suffix(".pub.pem")

    @property
    def resolved_reads_on_loop(self) -> bool:
        if self.reads_on_loop is not None:
            return self.reads_on_loop
        # An HSM unwraps uncached data keys in the token, under a lock the workers share:
        # that wait must not hold up the loop.
        return self.is_embedded and self.resolved_key_provider != "pkcs11"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'vault.db').resolve()}"

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        # Imported here: the audit package takes half a second to import.
        from audit.cpus import usable_cpus  # noqa: PLC0415

        return usable_cpus()

    @property
    def reflection_served(self) -> bool:
        return self.reflection if self.reflection is not None else self.is_embedded

    @property
    def reflection_public(self) -> bool:
        """Reflection answers without credentials only in the embedded default."""
        return self.reflection_served and self.is_embedded
