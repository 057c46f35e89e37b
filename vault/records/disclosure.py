"""Single-field disclosures outside views: reveal, tokenize and detokenize.

Each needs its own permission on the field's sensitivity class, and each is audited
before the value leaves (reveal and detokenize as reads that fail closed; tokenize in
the transaction that records the token). Reveal and detokenize read for a purpose, so
they derive the subject's consent from the ledger in the same read transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum

from vault.access.guard import authorize, load_own_subject
from vault.access.guard import justification as check_justification
from vault.audit_trail import Auditor
from vault.clock import Clock, to_micros
from vault.consent import ledger
from vault.consent.models import SubjectConsent, subject_context
from vault.context import CallContext
from vault.crypto import token_key_version
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from vault.fields.dictionary import DataDictionary, FieldSpec
from vault.policy import Action, PolicyEngine
from vault.records.cipher import RecordCipher
from vault.records.rendering import DisclosedField, Disclosure
from vault.storage import subjects as repo
from vault.storage.db import Database
from vault.storage.subjects import SubjectRow
from vault.subject import SubjectMeta


class TokenKind(StrEnum):
    DETERMINISTIC = "deterministic"
    RANDOM = "random"


@dataclass(frozen=True)
class Disclosed:
    """One field of one subject in clear text, with its provenance."""

    meta: SubjectMeta
    field: str
    value: DisclosedField


class DisclosureService:
    """Reveal, tokenize and detokenize: the narrow ways to one clear value."""

    def __init__(
        self,
        *,
        db: Database,
        sealing: RecordCipher,
        dictionary: DataDictionary,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        tokenizer_deterministic: Callable[[str, str, str], str],
        tokenizer_random: Callable[[], str],
        token_versions: Callable[[], Collection[int]],
    ) -> None:
        self._db = db
        self._sealing = sealing
        self._dictionary = dictionary
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._deterministic = tokenizer_deterministic
        self._random = tokenizer_random
        self._token_versions = token_versions

    def reveal(
        self, call: CallContext, subject_id: str, field: str, purpose: str, justification: str
    ) -> Disclosed:
        """One field in clear text, whatever the views say; always audited as a reveal."""
        call.subject_ids, call.extra = [subject_id], {"disclosure": "reveal"}
        spec = self._check_disclosure(call, field, purpose, justification)
        principal = authorize(
            self._policy, call, Action.SUBJECT_REVEAL, purpose=purpose, resource=_class(spec)
        )
        with self._db.read() as conn:
            row = load_own_subject(conn, call, principal, subject_id)
            consent = ledger.current(conn, subject_id, self._clock.now())
        self._check_subject(call, Action.SUBJECT_REVEAL, purpose, row, consent)
        value = self._open(row, field)
        self._auditor.record(call)
        return Disclosed(row.meta, field, value)

    def tokenize(self, call: CallContext, subject_id: str, field: str, kind: TokenKind) -> str:
        """A token for one field of a subject, recorded so Detokenize can reverse it."""
        call.subject_ids, call.extra = [subject_id], {"token_kind": kind.value}
        spec = self._dictionary.field(field)  # an unknown name never reaches the audit log
        call.field_names = [field]
        principal = authorize(self._policy, call, Action.TOKENIZE, resource=_class(spec))
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, subject_id, for_update=True)
            self._check_subject(call, Action.TOKENIZE, None, row)
            if field not in row.fields:
                call.deny("field not set")
                raise FailedPreconditionError("the subject has no value for this field")
            if kind is TokenKind.DETERMINISTIC:
                opened = self._sealing.open(row, [field])[field]
                token = self._deterministic(row.meta.tenant, field, opened.value)
            else:
                token = self._random()
            repo.insert_token(
                conn,
                tenant=row.meta.tenant,
                token=token,
                subject_id=subject_id,
                field=field,
                kind=kind.value,
                now_us=to_micros(self._clock.now()),
                key_version=_minted_version(token),
            )
            self._auditor.record_in(conn, call)
        return token

    def detokenize(
        self, call: CallContext, token: str, purpose: str, justification: str
    ) -> Disclosed:
        """The clear value behind a token this vault issued, for the caller's tenant."""
        call.extra = {"disclosure": "detokenize"}
        principal = call.require_principal()
        if not token or len(token) > 80 or not token.isascii():
            raise InvalidArgumentError([FieldViolation("token", "not a token")])
        with self._db.read() as conn:
            # A token of a retired token-key version is as unknown as one never issued.
            targets = repo.find_token(conn, principal.tenant, token, self._token_versions())
            if not targets:
                call.deny("unknown token")
                raise NotFoundError("token not found")
            target = targets[0]
            call.subject_ids = [t.subject_id for t in targets]
            spec = self._check_disclosure(call, target.field, purpose, justification)
            authorize(self._policy, call, Action.DETOKENIZE, purpose=purpose, resource=_class(spec))
            row = load_own_subject(conn, call, principal, target.subject_id)
            consent = ledger.current(conn, target.subject_id, self._clock.now())
        self._check_subject(call, Action.DETOKENIZE, purpose, row, consent)
        value = self._open(row, target.field)
        self._auditor.record(call)
        return Disclosed(row.meta, target.field, value)

    def _check_disclosure(
        self, call: CallContext, field: str, purpose: str, justification: str
    ) -> FieldSpec:
        violations = []
        spec = self._dictionary.fields.get(field)
        if spec is None:
            violations.append(FieldViolation("field", "unknown field"))
        if not purpose:
            violations.append(FieldViolation("purpose", "must name a purpose"))
        elif purpose not in self._policy.purposes:
            violations.append(FieldViolation("purpose", "undeclared purpose"))
        text = ""
        try:
            text = check_justification(justification, "justification", required=True)
        except InvalidArgumentError as exc:
            violations.extend(exc.violations)
        if violations or spec is None:
            raise InvalidArgumentError(violations)
        call.field_names, call.purpose, call.justification = [field], purpose, text
        return spec

    def _check_subject(
        self,
        call: CallContext,
        action: Action,
        purpose: str | None,
        row: SubjectRow,
        consent: SubjectConsent | None = None,
    ) -> None:
        subject = subject_context(row.meta, consent)
        refusal = self._policy.check_subject(action, purpose, subject)
        if refusal is not None:
            call.deny(refusal.rule, self._policy.version)
            if row.meta.state.is_terminal or refusal.rule.startswith("state:"):
                raise FailedPreconditionError(refusal.reason)
            raise PermissionDeniedError(refusal.reason, refusal.rule)
        call.consent_version = subject.consent_version

    def _open(self, row: SubjectRow, field: str) -> DisclosedField:
        opened = self._sealing.open(row, [field]).get(field)
        if opened is None:
            raise FailedPreconditionError("the subject has no value for this field")
        return DisclosedField(
            opened.value, Disclosure.CLEAR, "", opened.written_by, opened.written_at
        )


def _minted_version(token: str) -> int:
    version = token_key_version(token)
    if version is None:
        raise ValueError("the tokenizer minted a token without a key version")
    return version


def _class(spec: FieldSpec) -> str:
    return f"class:{spec.sensitivity}"
