"""Figures, targets and how they are shown: a rich table, JSON and a Markdown table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

DATABASES = ("sqlite", "postgresql")
IN_PROCESS = "sqlite"  # figures without a database are shown in the first column


@dataclass
class Row:
    """One measure, with a value per database and a note per database."""

    group: str
    label: str
    unit: str
    values: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A design target: `measured` must be at least (or at most) `required`."""

    name: str
    db: str
    measured: float | None
    required: float
    unit: str
    at_most: bool = False

    @property
    def ratio(self) -> float | None:
        """Measured against required, oriented so that >= 1 means the target is met."""
        if self.measured is None or math.isnan(self.measured) or self.measured <= 0:
            return None
        return self.required / self.measured if self.at_most else self.measured / self.required

    @property
    def status(self) -> str:
        ratio = self.ratio
        if ratio is None:
            return "N/A"
        return "PASS" if ratio >= 1 else "MISS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "database": self.db,
            "measured": self.measured,
            "required": self.required,
            "unit": self.unit,
            "comparison": "<=" if self.at_most else ">=",
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "status": self.status,
        }


class Results:
    """Collects figures as sections finish; renders them at the end."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.targets: list[Target] = []
        self.unavailable: list[str] = []

    def add(
        self,
        group: str,
        label: str,
        db: str | None,
        value: float | None,
        unit: str,
        note: str = "",
        **details: Any,
    ) -> None:
        row = self.rows.setdefault((group, label), Row(group, label, unit))
        key = db or IN_PROCESS
        row.values[key] = value
        if note:
            row.notes[key] = note
        if details:
            row.details[key] = details

    def value(self, group: str, label: str, db: str | None = None) -> float | None:
        row = self.rows.get((group, label))
        return None if row is None else row.values.get(db or IN_PROCESS)

    def target(
        self,
        name: str,
        db: str,
        measured: float | None,
        required: float,
        unit: str,
        *,
        at_most: bool = False,
    ) -> None:
        self.targets.append(Target(name, db, measured, required, unit, at_most))

    def not_available(self, what: str) -> None:
        self.unavailable.append(what)

    def as_dict(self) -> dict[str, Any]:
        return {
            "figures": [
                {
                    "group": r.group,
                    "measure": r.label,
                    "unit": r.unit,
                    "values": r.values,
                    "notes": r.notes,
                    "details": r.details,
                }
                for r in self.rows.values()
            ],
            "targets": [t.as_dict() for t in self.targets],
            "not_available": self.unavailable,
        }

    # --- rendering -----------------------------------------------------------------

    def figures_table(self) -> Table:
        table = Table(title="Figures (medians of repetitions)", show_lines=False)
        table.add_column("group", style="dim")
        table.add_column("measure")
        table.add_column("SQLite / in-process", justify="right")
        table.add_column("PostgreSQL", justify="right")
        table.add_column("unit", style="dim")
        table.add_column("notes, ratios")
        for row in self.rows.values():
            table.add_row(
                row.group,
                row.label,
                fmt(row.values.get("sqlite")),
                fmt(row.values.get("postgresql")),
                row.unit,
                notes_text(row),
            )
        return table

    def targets_table(self) -> Table:
        table = Table(title="Targets (DESIGN.md)")
        for name in ("target", "db", "measured", "required", "ratio", "result"):
            table.add_column(name, justify="right" if name in ("measured", "ratio") else "left")
        for t in self.targets:
            style = {"PASS": "green", "MISS": "red"}.get(t.status, "yellow")
            table.add_row(
                t.name,
                t.db,
                f"{fmt(t.measured)} {t.unit}",
                f"{'<=' if t.at_most else '>='} {fmt(t.required)} {t.unit}",
                "-" if t.ratio is None else f"{t.ratio:.2f}x",
                f"[{style}]{t.status}[/{style}]",
            )
        return table

    def print(self, console: Console) -> None:
        console.print(self.figures_table())
        console.print(self.targets_table())
        for what in self.unavailable:
            console.print(f"[yellow]not available:[/yellow] {what}")

    def markdown(self) -> str:
        lines = [
            "| group | measure | SQLite / in-process | PostgreSQL | unit | notes, ratios |",
            "|---|---|--:|--:|---|---|",
        ]
        for row in self.rows.values():
            cells = (
                row.group,
                row.label,
                fmt(row.values.get("sqlite")),
                fmt(row.values.get("postgresql")),
                row.unit,
                notes_text(row),
            )
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        lines += [
            "",
            "| target | db | measured | required | ratio | result |",
            "|---|---|--:|--:|--:|---|",
        ]
        for t in self.targets:
            ratio = "-" if t.ratio is None else f"{t.ratio:.2f}x"
            lines.append(
                f"| {t.name} | {t.db} | {fmt(t.measured)} {t.unit} | "
                f"{'<=' if t.at_most else '>='} {fmt(t.required)} {t.unit} | {ratio} | "
                f"**{t.status}** |"
            )
        lines.extend(f"\nNot available: {what}" for what in self.unavailable)
        return "\n".join(lines) + "\n"


def notes_text(row: Row) -> str:
    """The row's notes, once when every database has the same note, else per database."""
    distinct = set(row.notes.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(
        ("SQLite: " if db == "sqlite" else "PG: ") + row.notes[db]
        for db in DATABASES
        if row.notes.get(db)
    )


def fmt(value: float | None) -> str:
    """Thousands separators for big numbers, three significant digits for small ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"
