"""One logged-in PKCS#11 session per token and process, shared by the providers over it.

The login state of a token belongs to the whole process: a second `C_Login` fails
(`UserAlreadyLoggedIn`) and a `C_Logout` ends it for every session. So providers over
one token (the server's, a `keys` command's, a test's) share one session and its lock,
counted; the last to let go logs out. A provider opening the shared session must know
its PIN: a wrong one is refused like a failed login, not handed the session.
"""

from __future__ import annotations

import hmac
import threading
from contextlib import suppress
from dataclasses import dataclass, field

import pkcs11

from vault.crypto.errors import KeyMaterialError


@dataclass
class SharedSession:
    """A logged-in session, the lock that serializes its use, and how many hold it."""

    session: pkcs11.Session
    pin: str = field(repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: int = 0
    broken: bool = False
    """A call failed as if the token or the session were gone (`reopen` mends it)."""
    generation: int = 0
    """How many times the session was reopened: objects found before are stale."""


_sessions: dict[tuple[str, str], SharedSession] = {}
_sessions_lock = threading.Lock()


def _refused(label: str, reason: str) -> KeyMaterialError:
    # The reason is an exception's class name (no token, wrong PIN ...): its text and
    # the PIN stay out of the message.
    return KeyMaterialError(f"PKCS#11 token {label!r} cannot be opened ({reason})")


def _login(module: str, label: str, pin: str) -> pkcs11.Session:
    try:
        token = pkcs11.lib(module).get_token(token_label=label)
        return token.open(user_pin=pin, rw=True)
    except (pkcs11.PKCS11Error, RuntimeError, OSError) as exc:
        raise _refused(label, type(exc).__name__) from None


def open_shared(module: str, label: str, pin: str) -> SharedSession:
    """The shared session of token `label` in `module`, logging in with `pin` if none."""
    with _sessions_lock:
        shared = _sessions.get((module, label))
        if shared is None:
            shared = _sessions[(module, label)] = SharedSession(_login(module, label, pin), pin)
        elif not hmac.compare_digest(shared.pin.encode(), pin.encode()):
            raise _refused(label, "PinIncorrect")
        shared.users += 1
        return shared


def reopen(shared: SharedSession, module: str, label: str) -> None:
    """Replace a broken session by a new login (the token restarted, the connection to a
    network HSM dropped); the caller holds `shared.lock`."""
    with suppress(pkcs11.PKCS11Error):
        shared.session.close()
    shared.session = _login(module, label, shared.pin)
    shared.broken = False
    shared.generation += 1


def release_shared(module: str, label: str) -> None:
    """Let go of the shared session; the last holder closes it (logging out)."""
    with _sessions_lock:
        shared = _sessions.get((module, label))
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del _sessions[(module, label)]
            with shared.lock, suppress(pkcs11.PKCS11Error):
                shared.session.close()
