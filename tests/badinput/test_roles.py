"""Role files a run could not use, refused at start, before any agent runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autonoma.resources import packaged
from tests.badinput.conftest import SCENARIO, Cli


def _start(requirements: Path) -> list[str]:
    return ["start", str(requirements), "--scenario", str(SCENARIO)]


def _role(name: str) -> str:
    return packaged("actors", f"{name}.md").read_text("utf-8")


def _without_schema(text: str) -> str:
    start = text.index("schema = '''")
    end = text.index("'''", start + len("schema = '''")) + 3
    return text[:start] + text[end:]


@pytest.mark.parametrize("name", ["ceo", "staff_engineer", "developer", "qa"])
def test_a_placeholder_nobody_fills(name: str, cli: Cli, project: Path, requirements: Path) -> None:
    path = project / ".autonoma" / "actors" / f"{name}.md"
    path.write_text(_role(name) + "\nAlso mind $nobody_fills_this.\n")
    cli.refused(
        *_start(requirements),
        code=1,
        says=f"{path}: the prompt uses $nobody_fills_this, which Autonoma never fills for the "
        f"{name} role",
    )


@pytest.mark.parametrize("name", ["ceo", "staff_engineer", "qa"])
def test_a_role_whose_answer_is_structured_needs_a_schema(
    name: str, cli: Cli, project: Path, requirements: Path
) -> None:
    path = project / ".autonoma" / "actors" / f"{name}.md"
    path.write_text(_without_schema(_role(name)))
    cli.refused(*_start(requirements), code=1, says=f"{path}: the {name} role needs a 'schema'")


def test_an_invalid_regex_in_a_schema(cli: Cli, project: Path, requirements: Path) -> None:
    path = project / ".autonoma" / "actors" / "qa.md"
    text = _role("qa").replace(
        '"test_command": {"type": "string"}', '"test_command": {"type": "string", "pattern": "(["}'
    )
    path.write_text(text)
    cli.refused(*_start(requirements), code=1, says=f"{path}: invalid 'schema': ")
