"""Idempotent retries of mutating calls (AIP-155), for every request with a `request_id`.

A mutating RPC's request carries `request_id`, a UUID the caller picks once per intended
change and resends on every retry of it. The call then runs in one unit of work
(`Database.unit_of_work`): its first write claims the key (caller's tenant and
principal, method, request id) in the same transaction as the effect, and the response
is stored in it before the commit. So:

- the first call's effect and its remembered response commit together, or neither does
  (a failed call is not remembered: a retry runs afresh);
- a retry with the same key and the same request (compared by a SHA-256 of the request
  without its request_id) gets the first response back, with no second effect: its own
  audit entry notes ``idempotent_replay`` and the server request id of the first call;
- the same key with another request is refused: ALREADY_EXISTS, ErrorInfo reason
  IDEMPOTENCY_KEY_REUSED;
- two calls with one key at once: the second waits for the first's transaction, then
  replays its response (one effect);
- it holds across worker processes and replicas: the key is in the database.

The claim is made at the call's first write, after the domain has authorized the call
and validated the request: a replay is still authorized as the caller stands now. Keys
are kept `window` (24 h by default) and then pruned by the leader's background work.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from sqlalchemy.engine import Connection

from vault.clock import Clock, to_micros
from vault.context import CallContext
from vault.crypto import constant_time_equals
from vault.errors import AlreadyExistsError, FieldViolation, InvalidArgumentError
from vault.storage import idempotency as keys
from vault.storage.db import Database

log = logging.getLogger(__name__)

FIELD = "request_id"
"""The request field that makes a call idempotent (AIP-155)."""
KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
"""ErrorInfo reason of a request id sent again with a different request."""
DEFAULT_WINDOW = timedelta(hours=24)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class _Replay(BaseException):
    """Carries the first call's outcome out of the domain code that claimed the key.

    A BaseException, so no domain `except Exception` can swallow it on its way out."""

    def __init__(self, found: keys.Remembered) -> None:
        super().__init__("idempotent replay")
        self.found = found


@dataclass(frozen=True)
class _Call:
    key: keys.Key
    response_type: type[Message]


def request_id_of(request: Message) -> str | None:
    """The request's idempotency key, lower-cased; None when it has none (no such field,
    or empty). INVALID_ARGUMENT when it is not a UUID."""
    if FIELD not in request.DESCRIPTOR.fields_by_name:
        return None
    value = getattr(request, FIELD)
    if not value:
        return None
    normalized = str(value).strip().lower()
    if not _UUID.match(normalized):
        raise InvalidArgumentError(
            [FieldViolation(FIELD, "must be a UUID (AIP-155), e.g. a random uuid4")]
        )
    return normalized


def request_hash(request: Message) -> str:
    """SHA-256 of the request without its request_id (deterministic serialization)."""
    bare = type(request)()
    bare.CopyFrom(request)
    bare.ClearField(FIELD)
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()


@cache
def _response_type(method: str) -> type[Message]:
    found = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", "."))
    return message_factory.GetMessageClass(found.output_type)


class Idempotency:
    """Runs calls whose request has a request_id so that a retry has no second effect."""

    def __init__(self, db: Database, clock: Clock, window: timedelta = DEFAULT_WINDOW) -> None:
        self._db = db
        self._clock = clock
        self.window = window

    def run(self, call: CallContext, request: Any, handler: Callable[[], Any]) -> Any:
        """`handler()`, exactly once per key within the window; a retry's response is
        the first call's."""
        if not isinstance(request, Message):
            return handler()
        request_id = request_id_of(request)
        principal = call.principal
        if request_id is None or principal is None:
            return handler()
        key = keys.Key(
            tenant=principal.tenant,
            principal=principal.id,
            method=call.method,
            request_id=request_id,
            request_hash=request_hash(request),
        )
        try:
            with self._db.unit_of_work(lambda conn: self._claim(conn, key)) as unit:
                response = handler()
                conn = unit.connection()  # a call that wrote nothing claims its key now
                keys.remember(
                    conn,
                    key,
                    response.SerializeToString(deterministic=True),
                    subject_ids=list(call.subject_ids),
                    call_request_id=call.request_id,
                )
        except _Replay as replay:
            return self._replayed(call, key, replay.found)
        except BaseException:
            # Whatever the domain audited inside the unit was rolled back with it: the
            # audit stage must write this call's entry.
            call.audited = False
            raise
        return response

    def _claim(self, conn: Connection, key: keys.Key) -> None:
        found = keys.claim(conn, key, to_micros(self._clock.now()))
        if found is not None:
            raise _Replay(found)

    def _replayed(self, call: CallContext, key: keys.Key, found: keys.Remembered) -> Any:
        call.audited = False
        call.subject_ids = list(found.subject_ids)
        if not constant_time_equals(found.request_hash.encode(), key.request_hash.encode()):
            call.deny("request id reused with a different request")
            raise AlreadyExistsError(
                "this request_id was used for a different request; use a new request_id",
                reason=KEY_REUSED,
            )
        call.extra = {
            **call.extra,
            "idempotent_replay": "true",
            "first_request_id": found.call_request_id,
        }
        return _response_type(key.method).FromString(found.response)

    def prune(self) -> bool:
        """Forget keys older than the window (a batch at a time); True while more are
        waiting (a `PeriodicTask` runs again at once)."""
        cutoff = to_micros(self._clock.now() - self.window)
        with self._db.write() as conn:
            gone = keys.prune(conn, cutoff)
        if gone:
            log.info("forgot %d idempotency keys older than the window", gone)
        return gone >= keys.PRUNE_BATCH
