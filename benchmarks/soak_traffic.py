"""One soak worker: mixed traffic through the public gRPC API, every outcome classified.

A worker is its own OS process (so client work does not share the server's or the other
workers' GIL). It creates subjects, reads them through several roles and views, finds
them by blind index, updates, changes consent, reveals, tokenizes and detokenizes, asks
for access packages and erases a few, makes calls its role may not make, and queries
the audit log. Subjects it created are its own: only it updates, consents or erases
them, so any refusal on them is unexpected. The shared "hot" subjects are updated by
every worker with the version it last saw, so ABORTED (a lost race) is expected there
and is counted apart. Nothing a worker records holds a request value: call kinds,
status code names and latencies only.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from customer_vault_client.gen.customervault.v1 import audit_pb2 as apb
from customer_vault_client.gen.customervault.v1 import consent_pb2 as cpb
from customer_vault_client.gen.customervault.v1 import rights_pb2 as rpb
from customer_vault_client.gen.customervault.v1 import vault_pb2 as pb
from workload import FIELD_NAMES, TIERS, records

from vault.api.client import VaultClient, VaultClientError

OK = "OK"
BATCH_SIZE = 20
SUBJECTS_PER_WORKER = 10_000_000
"""Record numbers of worker w start at (w + 1) * this, so e-mail addresses are unique."""
# An opaque evidence reference (ev_ + 26 base32 characters), as the vault requires.
SOAK_EVIDENCE = "ev_soaksoaksoaksoaksoaksoaks2"
_KEEP_TOKENS = 200
_MIN_OWN_TO_ERASE = 20

# Relative weights of the call kinds: reads dominate, as in a CRM; erasure is rare.
WEIGHTS: dict[str, float] = {
    "create": 10,
    "batch_create": 1,
    "get_support": 14,
    "get_marketing": 4,
    "get_analytics": 4,
    "get_full": 4,
    "find_email": 8,
    "update_hot": 5,
    "update_own": 3,
    "consent": 5,
    "reveal": 4,
    "tokenize": 3,
    "detokenize": 3,
    "rights_access": 2,
    "erase": 0.5,
    "denied": 4,
    "audit_query": 3,
    "record_activity": 3,
}
EXPECTED_REFUSALS: dict[str, frozenset[str]] = {
    "update_hot": frozenset({"ABORTED"}),  # another worker updated it first
    "denied": frozenset({"PERMISSION_DENIED"}),  # the only acceptable answer
}
"""Per kind, the status codes that are a correct answer under load. Every other code is
unexpected, and so is OK for a call that must be refused."""


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker does: where, as whom, on which shared subjects, until when."""

    index: int
    address: str
    tokens: dict[str, str]
    hot: tuple[str, ...]
    steady_from: float
    stop_at: float
    seed: int = 8


@dataclass
class WorkerResult:
    """Counts per (kind, code), steady-state latencies per kind, the subjects it wrote."""

    index: int
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    warmup_outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)
    unexpected: Counter[tuple[str, str]] = field(default_factory=Counter)
    warmup_unexpected: Counter[tuple[str, str]] = field(default_factory=Counter)


class WrongAnswerError(Exception):
    """A call succeeded but its answer was wrong (e.g. find missed the subject)."""


@dataclass
class _Own:
    subject_id: str
    version: int
    email: str
    consented: bool = False


class Worker:
    """The traffic of one process. `run` loops until the plan's stop time."""

    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.result = WorkerResult(plan.index)
        self._rng = random.Random(plan.seed * 7919 + plan.index)
        self._clients = {role: VaultClient(plan.address, t) for role, t in plan.tokens.items()}
        self._own: list[_Own] = []
        self._hot_versions = dict.fromkeys(plan.hot, 1)
        self._tokens: list[tuple[str, str]] = []
        self._next_record = (plan.index + 1) * SUBJECTS_PER_WORKER
        self._kinds = list(WEIGHTS)
        self._weights = [WEIGHTS[k] for k in self._kinds]
        self._ops: dict[str, Callable[[], None]] = {k: getattr(self, f"_{k}") for k in WEIGHTS}

    def run(self) -> WorkerResult:
        try:
            self._call("create", self._create)  # something of its own to work on
            while time.monotonic() < self.plan.stop_at:
                kind = self._rng.choices(self._kinds, self._weights)[0]
                if not self._own:  # every create so far failed: nothing else to call on
                    kind = "create"
                self._call(kind, self._ops[kind])
        finally:
            for client in self._clients.values():
                client.__exit__(None, None, None)
        return self.result

    # --- bookkeeping -----------------------------------------------------------------

    def _call(self, kind: str, op: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            op()
            code = OK
        except VaultClientError as exc:
            code = exc.code
        except WrongAnswerError:
            code = "WRONG_ANSWER"
        elapsed = time.monotonic() - started
        self._record(kind, code, started, elapsed)

    def _record(self, kind: str, code: str, started: float, elapsed: float) -> None:
        steady = started >= self.plan.steady_from
        (self.result.outcomes if steady else self.result.warmup_outcomes)[kind, code] += 1
        if steady:
            self.result.latencies.setdefault(kind, []).append(elapsed)
        refusals = EXPECTED_REFUSALS.get(kind, frozenset())
        must_refuse = kind == "denied"
        if (code == OK and must_refuse) or (code != OK and code not in refusals):
            (self.result.unexpected if steady else self.result.warmup_unexpected)[kind, code] += 1

    def _records(self, count: int) -> list[dict[str, str]]:
        made = records(count, start=self._next_record, seed=self.plan.seed)
        self._next_record += count
        return made

    def _adopt(self, subject_id: str, email: str) -> None:
        self._own.append(_Own(subject_id, 1, email))
        self.result.created.append(subject_id)

    def _pick_own(self) -> _Own:
        return self._own[self._rng.randrange(len(self._own))]

    def _pick_any(self) -> str:
        if self.plan.hot and self._rng.random() < 0.3:
            return self._rng.choice(self.plan.hot)
        return self._pick_own().subject_id

    # --- the calls -------------------------------------------------------------------

    def _create(self) -> None:
        [fields] = self._records(1)
        meta = self._clients["service"].create(fields)
        self._adopt(meta.subject_id, fields["email"])

    def _batch_create(self) -> None:
        items = self._records(BATCH_SIZE)
        response = self._clients["service"].batch_create(items)
        for result in response.results:
            if result.subject_id:
                self._adopt(result.subject_id, items[result.index]["email"])
        if response.failed or len(response.results) != len(items):
            raise WrongAnswerError

    def _get_support(self) -> None:
        self._clients["agent"].get(self._pick_any(), "support", "support")

    def _get_marketing(self) -> None:
        self._clients["marketer"].get(self._pick_any(), "marketing", "marketing")

    def _get_analytics(self) -> None:
        self._clients["analyst"].get(self._pick_any(), "analytics", "analytics")

    def _get_full(self) -> None:
        view = self._clients["dpo"].get(self._pick_any(), "full", "data_subject_request", "DSR-1")
        if set(view.fields) != set(FIELD_NAMES):
            raise WrongAnswerError

    def _find_email(self) -> None:
        own = self._pick_own()
        found = self._clients["agent"].find("email", own.email, "support", "support")
        if [v.meta.subject_id for v in found] != [own.subject_id]:
            raise WrongAnswerError

    def _update_hot(self) -> None:
        subject = self._rng.choice(self.plan.hot)
        try:
            meta = self._clients["service"].update(
                subject, self._hot_versions[subject], self._changes(), reason="soak"
            )
        except VaultClientError as exc:
            if exc.code == "ABORTED":  # re-read the version, as a real caller would
                self._call("get_full", lambda: self._refresh(subject))
            raise
        self._hot_versions[subject] = meta.version

    def _refresh(self, subject: str) -> None:
        view = self._clients["dpo"].get(subject, "full", "data_subject_request", "DSR-1")
        self._hot_versions[subject] = view.meta.version

    def _update_own(self) -> None:
        own = self._pick_own()
        meta = self._clients["service"].update(
            own.subject_id, own.version, self._changes(), reason="soak"
        )
        own.version = meta.version

    def _changes(self) -> dict[str, str]:
        tier, postal_code = self._rng.choice(TIERS), f"{self._rng.randint(10000, 99999)}"
        return {"loyalty_tier": tier, "postal_code": postal_code}

    def _consent(self) -> None:
        own = self._pick_own()
        source = cpb.ConsentSource(
            channel=cpb.CONSENT_CHANNEL_WEB, notice_version="2026-01", evidence_ref=SOAK_EVIDENCE
        )
        service = self._clients["service"]
        if own.consented:
            request: object = cpb.WithdrawConsentRequest(
                subject_id=own.subject_id, purposes=["marketing"], source=source
            )
            service.call(service.consent, "WithdrawConsent", request)
        else:
            request = cpb.GrantConsentRequest(
                subject_id=own.subject_id, purposes=["marketing"], source=source
            )
            service.call(service.consent, "GrantConsent", request)
        own.consented = not own.consented

    def _reveal(self) -> None:
        if self._rng.random() < 0.5:
            self._clients["dpo"].reveal(self._pick_any(), "email", "data_subject_request", "DSR-1")
        else:
            self._clients["lead"].reveal(self._pick_any(), "phone", "support", "TICKET-1")

    def _tokenize(self) -> None:
        own = self._pick_own()
        if self._rng.random() < 0.5:
            response = self._clients["service"].tokenize(
                own.subject_id, "email", pb.TOKEN_KIND_RANDOM, "support"
            )
        else:  # deterministic tokens need a clear read of the field: not the service's
            response = self._clients["fraud"].tokenize(
                own.subject_id, "email", pb.TOKEN_KIND_DETERMINISTIC, "fraud", "CASE-1"
            )
        self._tokens.append((own.subject_id, response.token))
        del self._tokens[:-_KEEP_TOKENS]

    def _detokenize(self) -> None:
        if not self._tokens:
            self._tokenize()
            return
        _, token = self._rng.choice(self._tokens)
        self._clients["fraud"].detokenize(token, "fraud", "CASE-1")

    def _rights_access(self) -> None:
        dpo = self._clients["dpo"]
        subject = self._pick_own().subject_id
        request = rpb.ExportSubjectDataRequest(subject_id=subject, reason="DSR-2")
        response = dpo.call(dpo.rights, "ExportSubjectData", request)
        if not response.package_json:
            raise WrongAnswerError

    def _erase(self) -> None:
        if len(self._own) < _MIN_OWN_TO_ERASE:
            self._create()
            return
        own = self._own.pop(self._rng.randrange(len(self._own)))
        # Forget it first: if the call fails, the subject is in doubt, never read again.
        self._tokens = [(s, t) for s, t in self._tokens if s != own.subject_id]
        dpo = self._clients["dpo"]
        request = rpb.EraseSubjectDataRequest(subject_id=own.subject_id, reason="DSR-3")
        dpo.call(dpo.rights, "EraseSubjectData", request)
        self.result.erased.append(own.subject_id)

    def _denied(self) -> None:
        subject = self._pick_any()
        choice = self._rng.randrange(4)
        if choice == 0:
            self._clients["intern"].get(subject, "support", "support")
        elif choice == 1:
            self._clients["service"].get(subject, "full", "data_subject_request", "DSR-1")
        elif choice == 2:
            self._clients["analyst"].reveal(subject, "email", "analytics", "CASE-2")
        else:
            self._clients["agent"].get(subject, "full", "data_subject_request", "DSR-1")

    def _audit_query(self) -> None:
        compliance = self._clients["compliance"]
        subject = self._pick_own().subject_id
        if self._rng.random() < 0.5:
            request: object = apb.QueryEntriesRequest(
                filter=apb.EntryFilter(subject_id=subject), page_size=50
            )
            compliance.call(compliance.audit, "QueryEntries", request)
        else:
            request = apb.SubjectHistoryRequest(subject_id=subject, page_size=50)
            compliance.call(compliance.audit, "SubjectHistory", request)

    def _record_activity(self) -> None:
        self._clients["service"].record_activity(self._pick_any())


def run_worker(plan: WorkerPlan) -> WorkerResult:
    """The entry point of a worker process."""
    return Worker(plan).run()
