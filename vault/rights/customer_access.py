"""Customers acting for themselves: tokens bound to one subject, and one-time links.

The organization's front end (a role the policy grants `customers:issue`, e.g.
`frontend`) has signed its customer in and asks for a token bound to that customer's
subject, or for a link code it sends them. A bound token carries the role `customer`
and the signed claim `subject`; `access.guard.load_own_subject` makes every other
subject missing to it (NOT_FOUND, audited as denied).

A link code is a token of its own audience (so it is never accepted as a bearer token),
signed with the same key. Its id's SHA-256 is stored; redeeming marks it used in the
same transaction as the audit entry, so a code works once, until it expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from vault.access.guard import authorize, load_own_subject
from vault.audit_trail import Auditor
from vault.clock import Clock, from_micros, to_micros
from vault.context import CallContext
from vault.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    UnauthenticatedError,
)
from vault.identity.tokens import CUSTOMER_ROLE, TokenIssuer, TokenVerifier
from vault.policy import Action, PolicyEngine
from vault.principal import Principal
from vault.storage import customer_links, notices
from vault.storage.db import Database

DEFAULT_TOKEN_TTL = timedelta(minutes=15)
MAX_TOKEN_TTL = timedelta(hours=1)
DEFAULT_LINK_TTL = timedelta(minutes=15)
MAX_LINK_TTL = timedelta(hours=24)
MAX_CODE = 4096
LINK_AUDIENCE_SUFFIX = "/customer-link"


@dataclass(frozen=True)
class CustomerToken:
    token: str
    expires_at: datetime
    subject_id: str


@dataclass(frozen=True)
class CustomerLink:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Signing:
    """The vault's own token key, for customer tokens and link codes."""

    tokens: TokenIssuer
    links: TokenIssuer
    link_verifier: TokenVerifier


def customer_principal(tenant: str, subject_id: str) -> Principal:
    return Principal(
        id=f"customer:{subject_id}",
        tenant=tenant,
        roles=frozenset({CUSTOMER_ROLE}),
        subject=subject_id,
    )


def _ttl(seconds: int, default: timedelta, limit: timedelta) -> timedelta:
    if seconds == 0:
        return default
    ttl = timedelta(seconds=seconds)
    if ttl > limit:
        raise InvalidArgumentError(
            [FieldViolation("ttl_seconds", f"at most {int(limit.total_seconds())}")]
        )
    return ttl


def _link_hash(link_id: str) -> str:
    return hashlib.sha256(link_id.encode()).hexdigest()


class CustomerAccess:
    """Issues customer tokens and link codes; redeems a code once."""

    def __init__(
        self,
        *,
        db: Database,
        policy: PolicyEngine,
        auditor: Auditor,
        clock: Clock,
        signing: Signing | None,
    ) -> None:
        self._db = db
        self._policy = policy
        self._auditor = auditor
        self._clock = clock
        self._signing = signing

    def _require_signing(self) -> Signing:
        if self._signing is None:
            raise FailedPreconditionError(
                "this vault holds no token signing key: it cannot issue customer tokens"
            )
        return self._signing

    def _customer_of(self, call: CallContext, subject_id: str) -> Principal:
        """The customer principal of `subject_id`, a live subject of the caller's tenant."""
        principal = authorize(self._policy, call, Action.CUSTOMER_ISSUE)
        call.subject_ids = [subject_id]
        with self._db.read() as conn:
            row = load_own_subject(conn, call, principal, subject_id)
        if row.meta.state.is_terminal:
            raise FailedPreconditionError(f"subject is {row.meta.state.value}")
        return customer_principal(principal.tenant, subject_id)

    def issue_token(self, call: CallContext, subject_id: str, ttl_seconds: int) -> CustomerToken:
        signing = self._require_signing()
        ttl = _ttl(ttl_seconds, DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL)
        customer = self._customer_of(call, subject_id)
        token = signing.tokens.issue(customer, ttl)
        self._auditor.record(call)
        return CustomerToken(token, self._clock.now() + ttl, subject_id)

    def create_link(self, call: CallContext, subject_id: str, ttl_seconds: int) -> CustomerLink:
        signing = self._require_signing()
        ttl = _ttl(ttl_seconds, DEFAULT_LINK_TTL, MAX_LINK_TTL)
        customer = self._customer_of(call, subject_id)
        code = signing.links.issue(customer, ttl)
        link_id = _claims_jti(signing, code)
        now = self._clock.now()
        with self._db.write() as conn:
            customer_links.purge_expired(conn, to_micros(now))
            customer_links.put(
                conn,
                link_hash=_link_hash(link_id),
                tenant=customer.tenant,
                subject_id=subject_id,
                created_at=to_micros(now),
                expires_at=to_micros(now + ttl),
            )
            self._auditor.record_in(conn, call)
        return CustomerLink(code, now + ttl)

    def dormancy_notice(self, call: CallContext, subject_id: str) -> datetime | None:
        """The deadline of the subject's open dormancy notice, or None."""
        principal = authorize(self._policy, call, Action.NOTICE_READ)
        call.subject_ids = [subject_id]
        with self._db.read() as conn:
            load_own_subject(conn, call, principal, subject_id)
            notice = notices.open_for(conn, subject_id)
        self._auditor.record(call)
        return from_micros(notice.deadline_at) if notice is not None else None

    def redeem_link(self, call: CallContext, code: str) -> CustomerToken:
        """A customer token for a valid, unused, unexpired code; UNAUTHENTICATED else."""
        signing = self._require_signing()
        code = code.strip()
        if not code or len(code) > MAX_CODE:
            call.reason = "link refused"
            raise UnauthenticatedError("this link is not valid")
        try:
            customer, link_id = _verify_link(signing, code)
        except UnauthenticatedError:
            call.reason = "link refused"
            raise UnauthenticatedError("this link is not valid") from None
        call.subject_ids = [customer.subject or ""]
        now = self._clock.now()
        with self._db.write() as conn:
            used = customer_links.redeem(
                conn,
                _link_hash(link_id),
                subject_id=customer.subject or "",
                tenant=customer.tenant,
                now=to_micros(now),
            )
            if not used:
                call.reason = "link used, expired or unknown"
                raise UnauthenticatedError("this link is not valid")
            call.principal = customer
            call.allow("one-time link", self._policy.version)
            self._auditor.record_in(conn, call)
        token = signing.tokens.issue(customer, DEFAULT_TOKEN_TTL)
        return CustomerToken(token, now + DEFAULT_TOKEN_TTL, customer.subject or "")


def _claims_jti(signing: Signing, code: str) -> str:
    _, link_id = _verify_link(signing, code)
    return link_id


def _verify_link(signing: Signing, code: str) -> tuple[Principal, str]:
    principal, link_id = signing.link_verifier.verify_with_id(code)
    if principal.subject is None:
        raise UnauthenticatedError("invalid credentials")
    return principal, link_id
