"""``logs --limit`` beyond what SQLite takes, or below 1: refused by the option itself."""

from __future__ import annotations

import pytest

from autonoma.journal import schema
from tests.badinput.conftest import Cli


@pytest.mark.parametrize("value", [str(2**63), str(2**64 + 1), "-1", "0"])
def test_logs_limit_out_of_range(value: str, cli: Cli) -> None:
    schema.open_write(cli.root / ".autonoma" / "state.db").close()
    cli.refused(
        "logs",
        "--limit",
        value,
        code=2,
        says=f"Invalid value for '--limit': {value} is not in the range",
    )


def test_logs_limit_at_the_bound_works(cli: Cli) -> None:
    schema.open_write(cli.root / ".autonoma" / "state.db").close()
    # Reading the journal makes SQLite's -wal and -shm files: the one change allowed.
    out = cli("logs", "--limit", str(2**63 - 1), unchanged=False)
    assert out.code == 0, out.stderr
