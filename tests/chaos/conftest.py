"""The chaos suite's tables: printed at the end of the session, one per table name."""

from __future__ import annotations

import pytest

from tests.chaos.chaoslib import TABLES


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return "-" if value is None else str(value)


def table_text(name: str, rows: list[dict[str, object]]) -> str:
    """``rows`` as a text table headed ``name`` (columns: every key, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    cells = [[_cell(row.get(key)) for key in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [name, "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the tables the chaos tests recorded (nothing when none ran)."""
    for name, rows in TABLES.items():
        terminalreporter.write_sep("=", f"chaos: {name}")
        terminalreporter.write_line(table_text(name, rows))
