"""Page tokens (AIP-158) for every list, search and resumable stream: opaque, tamper-
checked and bound to the query and the caller that received them.

The domain pages with plain cursors (the last subject id, entry position, notice
deadline and id). On the way out, every `next_page_token` (and a stream item's
`resume_token`) is sealed here: version byte, root-key version, the cursor, and a
128-bit HMAC tag over them and the call's binding (method, the caller's tenant and id,
and a SHA-256 of the request without its page_token, resume_token, page_size and
request_id), base64url. On the way in, a `page_token` (or `resume_token`) is checked and
replaced by its cursor before the servicer sees the request. A token that was edited,
forged, issued for another query or another caller, or under a root key no longer
present, is INVALID_ARGUMENT on that field; page_size may change between pages.

The tag key is derived from the "pseudonym" root secret (`KeyRing.page_token_mac`), so
any worker or replica with the vault's keys accepts any other's tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

from google.protobuf.message import Message

from vault.context import CallContext
from vault.crypto import PageTokenMac
from vault.errors import FieldViolation, InvalidArgumentError

_FORMAT = b"\x01"
_TAG = 16
_IN = ("page_token", "resume_token")
"""Request fields holding a token the server issued."""
_OUT = ("next_page_token", "resume_token")
"""Response fields holding a cursor to seal."""
_UNBOUND = {"page_size", "request_id", *_IN}
"""Request fields a token is not bound to."""
PUBLIC_CURSORS = frozenset({"/customervault.v1.EventService/ListEvents"})
"""Methods whose token is a public position, left as it is: the event feed's cursor is
an event sequence a consumer stores and may write itself (events.proto says so); what
a caller may read at any position is decided per event."""


class PageTokens:
    """Seals cursors into page tokens and opens them, bound to the call."""

    def __init__(
        self,
        mac: Callable[[int | None], PageTokenMac],
        versions: Callable[[], tuple[int, ...]],
    ) -> None:
        self._mac = mac
        self._versions = versions

    def open(self, call: CallContext, request: Any) -> bytes | None:
        """The call's binding, after replacing each token in `request` by its cursor;
        None for a request that takes no token."""
        if not isinstance(request, Message) or call.method in PUBLIC_CURSORS:
            return None
        names = [n for n in _IN if n in request.DESCRIPTOR.fields_by_name]
        if not names:
            return None
        binding = _binding(call, request)
        for name in names:
            token = getattr(request, name)
            if token:
                setattr(request, name, self._cursor(binding, name, token))
        return binding

    def seal(self, binding: bytes, produced: Any) -> Any:
        """`produced` (a response, or a stream of them) with its cursors sealed."""
        if isinstance(produced, Message):
            self._seal_message(binding, produced)
            return produced
        return self._sealed_stream(binding, produced)

    def _sealed_stream(self, binding: bytes, items: Iterator[Any]) -> Iterator[Any]:
        try:
            for item in items:
                if isinstance(item, Message):
                    self._seal_message(binding, item)
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _seal_message(self, binding: bytes, message: Message) -> None:
        for name in _OUT:
            if name in message.DESCRIPTOR.fields_by_name and getattr(message, name):
                setattr(message, name, self._token(binding, getattr(message, name)))

    def _token(self, binding: bytes, cursor: str) -> str:
        mac = self._mac(None)
        body = _FORMAT + mac.version.to_bytes(4, "big") + cursor.encode("utf-8")
        raw = body + mac.tag(binding + body)
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def _cursor(self, binding: bytes, field: str, token: str) -> str:
        refused = InvalidArgumentError(
            [FieldViolation(field, "not a token this query gave you: start from the first page")]
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise refused from None
        if len(raw) <= 5 + _TAG or raw[:1] != _FORMAT:
            raise refused
        body, tag = raw[:-_TAG], raw[-_TAG:]
        version = int.from_bytes(body[1:5], "big")
        if version not in self._versions() or not self._mac(version).verify(binding + body, tag):
            raise refused
        try:
            return body[5:].decode("utf-8")
        except UnicodeDecodeError:
            raise refused from None


def _binding(call: CallContext, request: Message) -> bytes:
    """What a token is bound to: the method, the caller, and the request's other fields."""
    bare = type(request)()
    bare.CopyFrom(request)
    for name in _UNBOUND:
        if name in request.DESCRIPTOR.fields_by_name:
            bare.ClearField(name)
    principal = call.principal
    who = f"{principal.tenant}\x00{principal.id}" if principal is not None else ""
    query = hashlib.sha256(bare.SerializeToString(deterministic=True)).digest()
    return f"{call.method}\x00{who}\x00".encode() + query
