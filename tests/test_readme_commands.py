"""README's command table names every command `autonoma --help` lists (and no other)."""

from __future__ import annotations

import re
from pathlib import Path

from autonoma.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_cli_command_has_its_row_in_the_readme_table() -> None:
    rows = re.findall(r"^\| `autonoma ([a-z-]+)", README.read_text(), flags=re.M)
    listed = {name for name, cmd in main.commands.items() if not cmd.hidden}
    assert listed - set(rows) == set(), "commands missing from README's table"
    assert set(rows) - listed == set(), "README's table names commands that do not exist"
