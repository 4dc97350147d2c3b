"""Requirements, config, role and scenario files that are fifos, devices, too big or
nested too deep: one line naming the file, never a hang or a read without end."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from autonoma import inputfile
from autonoma.resources import packaged
from tests.badinput.conftest import SCENARIO, Cli

DEEP_TOML = "a = " + "[" * 5000 + "]" * 5000 + "\n"

# Where each kind of file goes, and the `autonoma` arguments that read it.
Placed = tuple[Path, list[str]]


def _requirements(project: Path, requirements: Path) -> Placed:
    path = project.parent / "bad-requirements.md"
    return path, ["start", str(path)]


def _config(project: Path, requirements: Path) -> Placed:
    return project / ".autonoma" / "config.toml", ["start", str(requirements)]


def _role(project: Path, requirements: Path) -> Placed:
    return project / ".autonoma" / "actors" / "qa.md", ["start", str(requirements)]


def _scenario(project: Path, requirements: Path) -> Placed:
    path = project.parent / "bad-scenario.toml"
    return path, ["start", str(requirements), "--scenario", str(path)]


KINDS: dict[str, Callable[[Path, Path], Placed]] = {
    "requirements": _requirements,
    "config": _config,
    "role": _role,
    "scenario": _scenario,
}
CODE = {"requirements": 1, "config": 2, "role": 1, "scenario": 1}


@pytest.mark.parametrize("kind", KINDS)
def test_a_fifo_is_refused_without_waiting_for_a_writer(
    kind: str, cli: Cli, project: Path, requirements: Path
) -> None:
    path, args = KINDS[kind](project, requirements)
    os.mkfifo(path)
    cli.refused(*args, code=CODE[kind], says=f"{path}: not a regular file (a fifo)")


@pytest.mark.parametrize("kind", KINDS)
def test_dev_zero_is_refused_without_reading_it(
    kind: str, cli: Cli, project: Path, requirements: Path
) -> None:
    path, args = KINDS[kind](project, requirements)
    path.symlink_to("/dev/zero")
    cli.refused(*args, code=CODE[kind], says=f"{path}: not a regular file (a character device)")


@pytest.mark.parametrize("kind", KINDS)
def test_a_file_over_its_size_limit_is_refused(
    kind: str, cli: Cli, project: Path, requirements: Path
) -> None:
    path, args = KINDS[kind](project, requirements)
    with path.open("wb") as handle:  # sparse: no disk, no time
        handle.truncate(inputfile.LIMITS[kind] + 1)
    cli.refused(
        *args,
        code=CODE[kind],
        says=f"{path}: more than the {inputfile.LIMITS[kind]} bytes a {kind} file may hold",
    )


def test_requirements_as_a_folder_or_dev_zero_given_directly(cli: Cli, project: Path) -> None:
    cli.refused("start", "/dev/zero", code=1, says="/dev/zero: not a regular file")
    cli.refused("start", str(project.parent), code=1, says="is a folder")


@pytest.mark.parametrize("kind", ["config", "scenario"])
def test_toml_nested_5000_deep(kind: str, cli: Cli, project: Path, requirements: Path) -> None:
    path, args = KINDS[kind](project, requirements)
    path.write_text(DEEP_TOML)
    cli.refused(*args, code=CODE[kind], says=f"{path}: ")
    assert "nested too deep" in cli(*args).stderr


def test_a_scenario_nested_5000_deep_for_the_sim_command(cli: Cli, project: Path) -> None:
    path = project.parent / "deep.toml"
    path.write_text(DEEP_TOML)
    cli.refused("sim", "--scenario", str(path), code=2, says=f"{path}: not valid TOML: nested")


def _qa_role(replace: str, by: str) -> str:
    text = packaged("actors", "qa.md").read_text("utf-8")
    assert replace in text
    return text.replace(replace, by, 1)


def test_role_front_matter_nested_5000_deep(cli: Cli, project: Path, requirements: Path) -> None:
    path = project / ".autonoma" / "actors" / "qa.md"
    path.write_text(_qa_role("max_turns = 40", "max_turns = 40\n" + DEEP_TOML.strip()))
    cli.refused("start", str(requirements), code=1, says=f"{path}: front matter or 'schema' nested")


def test_role_json_schema_nested_5000_deep(cli: Cli, project: Path, requirements: Path) -> None:
    path = project / ".autonoma" / "actors" / "qa.md"
    deep = '{"items": ' * 5000 + "{}" + "}" * 5000
    path.write_text(_qa_role('"test_command": {"type": "string"}', f'"test_command": {deep}'))
    cli.refused("start", str(requirements), code=1, says=f"{path}: front matter or 'schema' nested")


@pytest.mark.parametrize("name", ["CLAUDE.md", "exclude"])
def test_project_standards_and_excludes_that_are_fifos(
    name: str, cli: Cli, project: Path, requirements: Path
) -> None:
    path = project / ".autonoma" / name
    os.mkfifo(path)
    cli.refused(
        "start",
        str(requirements),
        "--scenario",
        str(SCENARIO),
        code=1,
        says=f"{path}: not a regular file (a fifo)",
    )
