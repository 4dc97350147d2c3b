"""The chaos suite's tables, printed at the end of the session, and its fixtures.

``make test`` runs the short trials (``-m "not chaos_long"``, pyproject's addopts);
``make chaos`` runs them all and prints a table per name given to `chaoslib.record`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.chaos import chaoslib

# chaoslib read them at import: autonoma refuses any AUTONOMA_* variable it does not know.
for _name in (chaoslib.TRIALS_VARIABLE, chaoslib.SEED_VARIABLE):
    os.environ.pop(_name, None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One table per name recorded with `chaoslib.record`, columns the rows' keys."""
    for name, rows in chaoslib.tables().items():
        terminalreporter.write_sep("=", f"chaos table: {name}")
        for line in chaoslib.render(rows):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[chaoslib.Company], chaoslib.Reference]:
    """The uninterrupted run of a company (made once per session and company)."""

    def made(company: chaoslib.Company) -> chaoslib.Reference:
        return chaoslib.reference(company, lambda: tmp_path_factory.mktemp("reference"))

    return made
