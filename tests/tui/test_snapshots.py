"""Pictures of the main screens (pytest-textual-snapshot), on journals kept in data/.

``data/demo.db`` and ``data/escalated.db`` were recorded from real runs (the demo, and
``rejects_t2`` with one retry) and are kept so that the pictures stay the same from run
to run. ``pytest --snapshot-update tests/tui`` redraws them after a deliberate change.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autonoma.tui.app import Dashboard
from autonoma.tui.source import JournalSource
from tests.tui.conftest import DATA

Compare = Callable[..., bool]


@pytest.fixture(autouse=True)
def _no_color_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


def app_on(name: str, tmp_path: Path) -> Dashboard:
    db = tmp_path / name
    shutil.copyfile(DATA / name, db)
    return Dashboard(JournalSource(db), notify=False, clock=lambda: 0.0)


def test_the_main_screen(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(app_on("demo.db", tmp_path), terminal_size=(120, 40))


def test_an_escalation(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(app_on("escalated.db", tmp_path), terminal_size=(120, 40))


def test_time_travel(snap_compare: Any, tmp_path: Path) -> None:
    # To the start, then ten task events on: the board in the middle of the run.
    keys = ["home", *["right_square_bracket"] * 10]
    assert snap_compare(app_on("demo.db", tmp_path), press=keys, terminal_size=(120, 40))


def test_80x24(snap_compare: Any, tmp_path: Path) -> None:
    assert snap_compare(app_on("demo.db", tmp_path), terminal_size=(80, 24))
