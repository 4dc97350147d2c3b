"""Claude Code's own sandbox, built by `autonoma.agents.sandbox`, through the real ``claude``.

The settings and rules are a table; then the real binary against the sim shows that
with them a Bash write inside the turn's folder and its temp folder succeeds, one
outside fails with "Read-only file system", the Write tool is refused outside the
folder, and a machine without bubblewrap refuses to start instead of running
unconfined (docs/sandbox.md has the findings behind each).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role
from autonoma.agents.sandbox import (
    REGISTRY_DOMAINS,
    file_tool_rules,
    sandbox_settings,
    settings_arg,
)
from autonoma.agents.turn import Turn
from autonoma.config import Settings
from autonoma.runtime.bus import Bus
from autonoma.sim import SimServer, loads_scenario

CLAUDE = LOCAL_INSTALL / "claude"
W = PurePosixPath("/w/task")
T = PurePosixPath("/tmp/turn")


@pytest.mark.parametrize(
    ("kwargs", "write", "domains"),
    [
        ({}, ["/w/task", "/tmp/turn"], []),
        ({"tmpdir": None}, ["/w/task"], []),
        ({"registries": True}, ["/w/task", "/tmp/turn"], list(REGISTRY_DOMAINS)),
        ({"extra_domains": ["localhost"]}, ["/w/task", "/tmp/turn"], ["localhost"]),
        (
            {"registries": True, "extra_domains": ["x.org"]},
            ["/w/task", "/tmp/turn"],
            [*REGISTRY_DOMAINS, "x.org"],
        ),
    ],
)
def test_settings_table(kwargs: dict[str, Any], write: list[str], domains: list[str]) -> None:
    sandbox = sandbox_settings(W, **{"tmpdir": T, **kwargs})["sandbox"]
    assert sandbox["enabled"] is True
    assert sandbox["failIfUnavailable"] is True
    assert sandbox["autoAllowBashIfSandboxed"] is True
    assert sandbox["allowUnsandboxedCommands"] is False
    assert sandbox["excludedCommands"] == []
    assert sandbox["filesystem"] == {"allowWrite": write}
    assert sandbox["network"] == {"allowedDomains": domains, "strictAllowlist": True}


def test_auto_allow_bash_off_for_narrow_roles() -> None:
    sandbox = sandbox_settings(W, auto_allow_bash=False)["sandbox"]
    assert sandbox["autoAllowBashIfSandboxed"] is False


@pytest.mark.parametrize(
    ("workdir", "tmpdir"),
    [
        (PurePosixPath("rel/task"), T),
        (W, PurePosixPath("tmp")),
        (PurePosixPath("/w/task/../.."), T),
        (W, PurePosixPath("/tmp/../etc")),
    ],
)
def test_settings_refuse_relative_or_dotdot(workdir: PurePosixPath, tmpdir: PurePosixPath) -> None:
    with pytest.raises(ValueError, match="sandbox"):
        sandbox_settings(workdir, tmpdir)


@pytest.mark.parametrize(
    ("workdir", "rules"),
    [
        (W, ["Read(//w/task/**)", "Edit(//w/task/**)", "Write(//w/task/**)"]),
        (
            PurePosixPath("/w/task/"),
            ["Read(//w/task/**)", "Edit(//w/task/**)", "Write(//w/task/**)"],
        ),
    ],
)
def test_file_tool_rules_table(workdir: PurePosixPath, rules: list[str]) -> None:
    assert file_tool_rules(workdir) == rules


def test_settings_arg_is_compact_json() -> None:
    argv = settings_arg(sandbox_settings(W, T))
    assert argv[0] == "--settings"
    assert json.loads(argv[1]) == sandbox_settings(W, T)


def _scenario(calls: list[tuple[str, dict[str, str]]]) -> str:
    steps = ""
    for name, payload in calls:
        inline = ", ".join(f"{key} = {json.dumps(value)}" for key, value in payload.items())
        steps += "[[rule.step]]\n[[rule.step.tool]]\n"
        steps += f"name = {json.dumps(name)}\ninput = {{ {inline} }}\n"
    return (
        'usage = { input_tokens = 10, output_tokens = 2 }\n[[rule]]\nname = "attack"\n'
        f'prompt_contains = "go"\n{steps}[[rule.step]]\ntext = "Done."\n'
    )


def _claude(
    calls: list[tuple[str, dict[str, str]]], cwd: Path, home: Path, argv: list[str], path: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    with SimServer(loads_scenario(_scenario(calls))) as sim:
        env = {
            "PATH": path,
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": sim.url,
            "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        proc = subprocess.run(
            [
                str(CLAUDE),
                "-p",
                "go",
                "--output-format",
                "stream-json",
                "--verbose",
                "--setting-sources",
                "project,local",
                "--strict-mcp-config",
                *argv,
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=50,
            stdin=subprocess.DEVNULL,
        )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, lines


def _tool_results(lines: list[dict[str, Any]]) -> list[tuple[bool, str]]:
    return [
        (bool(block.get("is_error")), str(block.get("content")))
        for line in lines
        if line.get("type") == "user"
        for block in line["message"]["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="make test installs bubblewrap")
def test_bash_and_write_confined_to_the_folder(git_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    turn_tmp = tmp_path / "turn-tmp"
    turn_tmp.mkdir()
    work = PurePosixPath(git_repo.resolve())
    argv = [
        *settings_arg(sandbox_settings(work, PurePosixPath(turn_tmp))),
        "--permission-mode",
        "default",
        "--allowedTools",
        "Bash",
        *file_tool_rules(work),
    ]
    calls = [
        ("Bash", {"command": "echo in > inside.txt", "description": "inside"}),
        ("Bash", {"command": f"echo t > {turn_tmp}/t.txt", "description": "temp"}),
        ("Bash", {"command": f"echo out > {outside}/bash.txt", "description": "outside"}),
        ("Write", {"file_path": f"{work}/written.txt", "content": "w\n"}),
        ("Write", {"file_path": f"{outside}/written.txt", "content": "w\n"}),
    ]
    proc, lines = _claude(calls, git_repo, tmp_path / "home", argv, os.environ["PATH"])
    assert proc.returncode == 0, proc.stderr
    results = _tool_results(lines)
    assert len(results) == 5, results
    assert (git_repo / "inside.txt").read_text() == "in\n"
    assert (turn_tmp / "t.txt").read_text() == "t\n"
    assert (git_repo / "written.txt").read_text() == "w\n"
    assert sorted(p.name for p in outside.iterdir()) == []
    assert results[2][0] and "Read-only file system" in results[2][1]
    assert results[4][0] and "haven't granted" in results[4][1]


@pytest.mark.timeout(60)
def test_no_bubblewrap_refuses_to_start(git_repo: Path, tmp_path: Path) -> None:
    # A PATH without bwrap (claude is a native binary and needs nothing else to start).
    empty = tmp_path / "bin"
    empty.mkdir()
    work = PurePosixPath(git_repo.resolve())
    argv = [*settings_arg(sandbox_settings(work, work)), "--allowedTools", "Bash"]
    calls = [("Bash", {"command": "echo x > /tmp/should-not-run", "description": "x"})]
    proc, _lines = _claude(calls, git_repo, tmp_path / "home", argv, str(empty))
    assert proc.returncode != 0
    assert "bubblewrap (bwrap) not installed" in proc.stderr
    assert "Refusing to start without a working sandbox" in proc.stderr


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="make test installs bubblewrap")
@pytest.mark.parametrize("sandbox", [True, False])
def test_turn_with_the_sandbox_setting(sandbox: bool, git_repo: Path, tmp_path: Path) -> None:
    """A developer's turn through `Turn` with ``sandbox`` on: its Bash cannot write
    outside its folder (off: it can, which is what the setting changes)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    calls = [
        ("Bash", {"command": "echo in > inside.txt", "description": "inside"}),
        ("Bash", {"command": f"echo out > {outside}/bash.txt", "description": "outside"}),
    ]
    home = tmp_path / "home"
    home.mkdir()
    with SimServer(loads_scenario(_scenario(calls))) as sim:
        bus = Bus(run_id="test")
        turn = Turn(
            bus,
            agent_id="dev-1",
            role=dataclasses.replace(load_role("developer"), schema=None),
            prompt="go",
            session_id=str(uuid.uuid4()),
            resume=False,
            cwd=git_repo,
            settings=Settings(sandbox=sandbox),
            env=child_env(dict(os.environ), sim_url=sim.url, config_dir=home),
            claude=CLAUDE,
            task_id="t1",
        )
        turn.start()
        outcome = turn.wait(50)
    assert outcome is not None and outcome.exit_code == 0 and not outcome.failed
    assert (git_repo / "inside.txt").read_text() == "in\n"
    assert (outside / "bash.txt").exists() is (not sandbox)
