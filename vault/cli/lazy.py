"""Command groups imported only when they run, so `customer-vault --help` and a client
command import nothing of the other groups (no SQLAlchemy, Casbin, OpenTelemetry SDK or
cryptography for a client command: tests/unit/test_cli_startup.py).

`LazyRoot` is the root command's class: besides the commands defined on the root app, it
lists every group of `GROUPS` under its help text, and imports a group's module when the
group is invoked, completed or asked for its own help.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup


class Group(NamedTuple):
    """Where a group's typer app lives, and its one-line help."""

    module: str
    attribute: str
    help: str


class LazyGroup(TyperCommand):
    """A stand-in listed with its help; the real group is built when it is used (typer
    vendors click, so the real one's type is typer's `_click.Command`)."""

    def __init__(self, name: str, group: Group) -> None:
        super().__init__(name=name, help=group.help, short_help=group.help)
        self._group = group
        self._loaded: Any = None

    def load(self) -> Any:
        if self._loaded is None:
            found = getattr(importlib.import_module(self._group.module), self._group.attribute)
            command = typer.main.get_group(found) if isinstance(found, typer.Typer) else found
            command.name = self.name
            command.help = command.help or self._group.help
            self._loaded = command
        return self._loaded

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Any = None,
        **extra: Any,
    ) -> Any:
        return self.load().make_context(info_name, args, parent=parent, **extra)


def lazy_root(groups: Mapping[str, Group]) -> type[TyperGroup]:
    """The root command class listing `groups` after the root app's own commands."""

    class LazyRoot(TyperGroup):
        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            for name, group in groups.items():
                self.commands.setdefault(name, LazyGroup(name, group))

    return LazyRoot
