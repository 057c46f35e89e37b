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

from vault.access.guard import authorize, check_subject, load_own_subject, stated_justification
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
from vault.policy import DEFAULT_DENY, SENSITIVITY_CLASSES, Action, PolicyEngine, class_resource
from vault.principal import Principal
from vault.records.cipher import RecordCipher
from vault.records.rendering import DisclosedField, Disclosure
from vault.storage import subjects as repo
from vault.storage.db import Database
from vault.storage.subjects import SubjectRow
from vault.subject import SubjectMeta

_MAX_TOKEN = 80


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
        spec = self._check_field_request(call, field, purpose, justification, always=True)
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

    def tokenize(
        self,
        call: CallContext,
        subject_id: str,
        field: str,
        kind: TokenKind,
        *,
        purpose: str,
        justification: str = "",
    ) -> str:
        """A token for one field of a subject, for `purpose`, recorded so Detokenize
        can reverse it.

        Both kinds need tokens:tokenize on the field's class for the purpose. A
        deterministic token is an equality oracle (equal values, equal tokens), so it
        also needs the right to read the field in clear for the purpose (fields:clear)
        or the narrow tokens:deterministic grant on its class. The subject's state,
        consent and opt-outs are checked as for a read for the purpose.
        """
        call.subject_ids, call.extra = [subject_id], {"token_kind": kind.value}
        spec = self._check_field_request(call, field, purpose, justification, always=False)
        resource = _class(spec)
        principal = authorize(
            self._policy, call, Action.TOKENIZE, purpose=purpose, resource=resource
        )
        if kind is TokenKind.DETERMINISTIC:
            self._authorize_deterministic(call, principal, purpose, resource)
        with self._db.write() as conn:
            row = load_own_subject(conn, call, principal, subject_id, for_update=True)
            consent = ledger.current(conn, subject_id, self._clock.now())
            self._check_subject(call, Action.TOKENIZE, purpose, row, consent)
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

    def _authorize_deterministic(
        self, call: CallContext, principal: Principal, purpose: str, resource: str
    ) -> None:
        """fields:clear or tokens:deterministic on the field's class for the purpose."""
        decision = self._policy.decide_deterministic_token(principal, purpose, resource)
        if not decision.allowed:
            call.deny(decision.rule, self._policy.version)
            raise PermissionDeniedError(
                "a deterministic token needs the right to read the field in clear for this purpose",
                decision.rule,
            )
        call.allow(f"{call.reason}; {decision.rule}", self._policy.version)

    def detokenize(
        self, call: CallContext, token: str, purpose: str, justification: str
    ) -> Disclosed:
        """The clear value behind a token this vault issued, for the caller's tenant.

        Permission comes first: a caller that may detokenize nothing for `purpose` is
        refused before the token is looked up, and a token of a class the caller may not
        open is answered like an unknown one (NOT_FOUND; the audit entry says denied).
        """
        call.extra = {"disclosure": "detokenize"}
        principal = call.require_principal()
        violations = []
        if not token or len(token) > _MAX_TOKEN or not token.isascii():
            violations.append(FieldViolation("token", "not a token"))
        try:
            self._check_request(call, purpose, justification, always=True)
        except InvalidArgumentError as exc:
            violations = [*violations, *exc.violations]
        if violations:
            raise InvalidArgumentError(violations)
        openable = self._openable_classes(call, principal, purpose)
        with self._db.read() as conn:
            # A token of a retired token-key version is as unknown as one never issued.
            targets = repo.find_token(conn, principal.tenant, token, self._token_versions())
            if not targets:
                call.deny("unknown token", self._policy.version)
                raise NotFoundError("token not found")
            target = targets[0]
            call.subject_ids = [t.subject_id for t in targets]
            spec = self._dictionary.field(target.field)
            call.field_names = [target.field]
            if spec.sensitivity not in openable:
                decision = self._policy.decide(
                    principal, Action.DETOKENIZE, purpose=purpose, resource=_class(spec)
                )
                call.deny(decision.rule, self._policy.version)
                raise NotFoundError("token not found")
            authorize(self._policy, call, Action.DETOKENIZE, purpose=purpose, resource=_class(spec))
            row = load_own_subject(conn, call, principal, target.subject_id)
            consent = ledger.current(conn, target.subject_id, self._clock.now())
        self._check_subject(call, Action.DETOKENIZE, purpose, row, consent)
        value = self._open(row, target.field)
        self._auditor.record(call)
        return Disclosed(row.meta, target.field, value)

    def _openable_classes(
        self, call: CallContext, principal: Principal, purpose: str
    ) -> frozenset[str]:
        """The classes whose tokens the caller may reverse for `purpose`; refuses the
        call (audited) when there are none, before any token is looked up."""
        decisions = {
            name: self._policy.decide(
                principal, Action.DETOKENIZE, purpose=purpose, resource=class_resource(name)
            )
            for name in SENSITIVITY_CLASSES
        }
        allowed = frozenset(name for name, d in decisions.items() if d.allowed)
        if not allowed:
            deny = next(
                (d for d in decisions.values() if d.rule != DEFAULT_DENY),
                decisions[SENSITIVITY_CLASSES[0]],
            )
            call.deny(deny.rule, self._policy.version)
            raise PermissionDeniedError(deny.reason, deny.rule)
        return allowed

    def _check_request(
        self,
        call: CallContext,
        purpose: str,
        justification: str,
        *,
        field: str | None = None,
        always: bool = False,
    ) -> FieldSpec | None:
        """Field (when given), purpose and justification, all violations at once; the
        spec of `field`."""
        violations = []
        spec = None
        if field is not None:
            spec = self._dictionary.fields.get(field)
            if spec is None:
                violations.append(FieldViolation("field", "unknown field"))
        if not purpose:
            violations.append(FieldViolation("purpose", "must name a purpose"))
        elif purpose not in self._policy.purposes:
            violations.append(FieldViolation("purpose", "undeclared purpose"))
        else:
            try:
                stated_justification(
                    self._policy, call, justification, purpose=purpose, always=always
                )
            except InvalidArgumentError as exc:
                violations.extend(exc.violations)
        if violations:
            raise InvalidArgumentError(violations)
        if field is not None:
            call.field_names = [field]
        call.purpose = purpose
        return spec

    def _check_field_request(
        self, call: CallContext, field: str, purpose: str, justification: str, *, always: bool
    ) -> FieldSpec:
        spec = self._check_request(call, purpose, justification, field=field, always=always)
        if spec is None:  # _check_request refuses an unknown field
            raise InvalidArgumentError([FieldViolation("field", "unknown field")])
        return spec

    def _check_subject(
        self,
        call: CallContext,
        action: Action,
        purpose: str | None,
        row: SubjectRow,
        consent: SubjectConsent | None = None,
    ) -> None:
        subject = check_subject(
            self._policy, call, action, subject_context(row.meta, consent), purpose=purpose
        )
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
