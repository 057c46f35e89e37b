"""`serve`'s log formatter never writes a traceback, an exception's message or a stack.

A library that catches an exception may log it with its traceback (grpc's servicer
error, asyncio's "exception was never retrieved", SQLAlchemy's pool reset): the chained
driver error quotes SQL and can quote bound values. Whatever logs it, the line keeps only
the exception types.
"""

from __future__ import annotations

import logging
import sys

from vault.telemetry import LOG_FORMAT, RedactingFormatter, TraceContextFilter


def _record_with_chained_error() -> logging.LogRecord:
    try:
        try:
            raise ValueError("INSERT INTO audit_entries VALUES ('Lovelace')")
        except ValueError as inner:
            raise RuntimeError("SELECT * FROM subjects WHERE email='ada@example.com'") from inner
    except RuntimeError:
        record = logging.LogRecord(
            "grpc", logging.ERROR, __file__, 1, "servicer failed", None, sys.exc_info()
        )
    record.stack_info = 'Stack (most recent call last):\n  File "x.py", line 1'
    TraceContextFilter().filter(record)
    return record


def test_an_exception_is_logged_by_its_types_only() -> None:
    line = RedactingFormatter(LOG_FORMAT).format(_record_with_chained_error())
    assert "servicer failed" in line
    assert "exception: RuntimeError <- ValueError" in line
    for leak in ("Traceback", 'File "', "INSERT", "SELECT", "Lovelace", "ada@example.com"):
        assert leak not in line


def test_the_plain_formatter_would_have_leaked() -> None:
    # The reason the formatter exists: the default one writes all of it.
    line = logging.Formatter(LOG_FORMAT).format(_record_with_chained_error())
    assert "Traceback" in line and "SELECT" in line
