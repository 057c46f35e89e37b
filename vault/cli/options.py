"""The options and parsers the CLI's local commands share (data dir, database URL,
durations, name=value pairs), and their settings."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from vault.config import Settings

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Local data dir (keys, SQLite).")]
DatabaseUrl = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")]


def settings(**overrides: Any) -> Settings:
    """Settings from flags (those given), environment and config file; invalid settings
    end the command with a message that names the fields, never their values."""
    from vault.config import SettingsError, load_settings

    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise die(exc.message) from None


def die(message: str) -> typer.Exit:
    """Print `error: message` on stderr; the Exit (code 1) to raise."""
    from rich.console import Console

    # soft_wrap: one line, so a path in the message is never broken across lines.
    Console(stderr=True).print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code=1)


_TTL = re.compile(r"^(\d+)([smhd])$")


def parse_ttl(text: str) -> timedelta:
    """A duration such as `90s`, `15m`, `6h` or `30d`."""
    match = _TTL.fullmatch(text)
    if not match:
        raise typer.BadParameter("use a number and s, m, h or d, e.g. 1h")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """`name=value` options (`what` names the option in the error) as a dict."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} must look like name=value")
        out[key] = value
    return out
