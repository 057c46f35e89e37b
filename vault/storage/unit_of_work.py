"""One transaction for a whole call: what makes an idempotency key commit with its effect.

Inside `Database.unit_of_work(on_begin)`, the call's first `Database.write()` opens the
unit's one transaction and runs `on_begin` in it (the idempotency claim) before the
domain writes anything; every later `write()` is a savepoint in that transaction and
every `read()` reads in it (seeing its own writes). Reads before the first write use
their own snapshots, as outside a unit. The unit commits when its block ends without an
error, rolls back otherwise; work registered with `after_commit` (the WAL scrub after a
shred) runs only once the commit is done, work registered with `after_rollback` (a
wrong verification code that must count although its call fails) only once the
rollback is.

The unit lives in a context variable, so it follows the call into the domain without
any signature changing; one unit is entered by one thread at a time (the call's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar

from sqlalchemy.engine import Connection


class UnitOfWork:
    """The open transaction of one call, begun at its first write."""

    def __init__(
        self,
        open_transaction: Callable[[], AbstractContextManager[Connection]],
        on_begin: Callable[[Connection], None],
    ) -> None:
        self._open = open_transaction
        self._on_begin = on_begin
        self._stack = ExitStack()
        self._conn: Connection | None = None
        self._after_commit: list[Callable[[], None]] = []
        self._after_rollback: list[Callable[[], None]] = []

    @property
    def begun(self) -> bool:
        return self._conn is not None

    def connection(self) -> Connection:
        """The unit's connection, its transaction begun (and `on_begin` run) if need be."""
        if self._conn is None:
            conn = self._stack.enter_context(self._open())
            self._conn = conn
            self._on_begin(conn)
        return self._conn

    def after_commit(self, work: Callable[[], None]) -> None:
        """Run `work` once the unit has committed (never if it rolls back)."""
        self._after_commit.append(work)

    def after_rollback(self, work: Callable[[], None]) -> None:
        """Run `work` once the unit has rolled back (never if it commits)."""
        self._after_rollback.append(work)

    def close(self, exc: BaseException | None) -> None:
        """Commit (`exc` is None) or roll back; then the after-commit or after-rollback
        work, whichever happened."""
        if exc is None:
            self._stack.close()
            for work in self._after_commit:
                work()
        else:
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            for work in self._after_rollback:
                work()


_current: ContextVar[UnitOfWork | None] = ContextVar("unit_of_work", default=None)


def current() -> UnitOfWork | None:
    """The unit of the running call, if it runs in one."""
    return _current.get()


@contextmanager
def entered(unit: UnitOfWork) -> Iterator[UnitOfWork]:
    """Make `unit` current for the block; commit or roll it back when the block ends
    (no longer current by then: after-commit work runs outside it)."""
    token = _current.set(unit)
    try:
        yield unit
    except BaseException as exc:
        _current.reset(token)
        unit.close(exc)
        raise
    _current.reset(token)
    unit.close(None)
