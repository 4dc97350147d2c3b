"""Settings out of range: inf, nan, unbounded worker counts, claude_path a folder,
skipping permissions as root. One line naming the setting, exit 2, nothing made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autonoma import config
from tests.badinput.conftest import SCENARIO, Cli

FLOATS = [option for option in config.OPTIONS if option.kind is float]


@pytest.mark.parametrize("value", ["inf", "nan"])
@pytest.mark.parametrize("option", FLOATS, ids=lambda o: o.key)
def test_a_float_variable_must_be_finite(
    option: config.Option, value: str, cli: Cli, requirements: Path
) -> None:
    cli.refused("start", str(requirements), env={option.env: value}, code=2, says=f"{option.env}=")


@pytest.mark.parametrize("value", ["inf", "nan"])
@pytest.mark.parametrize("option", FLOATS, ids=lambda o: o.key)
def test_a_float_in_config_toml_must_be_finite(
    option: config.Option, value: str, cli: Cli, project: Path, requirements: Path
) -> None:
    path = project / ".autonoma" / "config.toml"
    path.write_text(f"{option.key} = {value}\n")
    cli.refused("start", str(requirements), code=2, says=f"{path}: '{option.key}' = ")


def test_the_journal_batch_wait_has_an_upper_bound(cli: Cli, requirements: Path) -> None:
    line = cli.refused(
        "start",
        str(requirements),
        env={"AUTONOMA_JOURNAL_BATCH_MS": "1e9"},
        code=2,
        says="AUTONOMA_JOURNAL_BATCH_MS='1e9'",
    )
    assert "<= 1000" in line


@pytest.mark.parametrize("value", ["65", "100000", "99999999999999999999"])
def test_max_workers_has_an_upper_bound(
    value: str, cli: Cli, project: Path, requirements: Path
) -> None:
    says = f"must be a whole number >= 1 and <= {config.MAX_WORKERS}"
    cli.refused("start", str(requirements), env={"AUTONOMA_MAX_WORKERS": value}, code=2, says=says)
    path = project / ".autonoma" / "config.toml"
    path.write_text(f"max_workers = {value}\n")
    cli.refused("start", str(requirements), code=2, says=says)
    path.unlink()
    says = f"--max-workers must be from 1 to {config.MAX_WORKERS}, not {value}"
    cli.refused("start", str(requirements), "--max-workers", value, code=2, says=says)


def test_demo_max_workers_has_an_upper_bound(cli: Cli, project: Path) -> None:
    where = project.parent / "demo"
    cli.refused(
        "demo", "--dir", str(where), "--max-workers", "65", code=2, says="--max-workers must be"
    )
    assert not where.exists()


def test_claude_path_a_folder_is_a_setting(cli: Cli, project: Path, requirements: Path) -> None:
    folder = project.parent / "claude-folder"
    folder.mkdir()
    cli.refused(
        "start",
        str(requirements),
        "--scenario",
        str(SCENARIO),
        env={"AUTONOMA_CLAUDE_PATH": str(folder)},
        code=2,
        says=f"claude_path '{folder}' (AUTONOMA_CLAUDE_PATH or config.toml): is a folder",
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="claude refuses to skip permissions only as root")
def test_skipping_permissions_as_root_is_refused_at_start(cli: Cli, requirements: Path) -> None:
    cli.refused(
        "start",
        str(requirements),
        "--scenario",
        str(SCENARIO),
        env={"AUTONOMA_DANGEROUSLY_SKIP_PERMISSIONS": "1"},
        code=2,
        says="AUTONOMA_DANGEROUSLY_SKIP_PERMISSIONS: claude refuses --dangerously-skip-permissions "
        "when run as root: set IS_SANDBOX=1",
    )
