"""What an agent turn loads, through the real ``claude`` against the sim.

The user's own configuration (``~/.claude/settings.json`` hooks, MCP servers in
``~/.claude.json``, ``~/.claude/CLAUDE.md``) stays out unless ``user_claude_config``
lets it in; the project's own ``.claude`` settings and ``CLAUDE.md`` apply. For a
turn against the sim the user's config folder is the ``HOME`` / ``CLAUDE_CONFIG_DIR``
that `child_env` sets, so the hostile files are planted there. Models: the role's
model, the default, and ``--fallback-model`` taking over from an overloaded model.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autonoma.agents.auth import NOT_AUTHENTICATED, ONLY_USER_CONFIG, AuthError, check_auth
from autonoma.agents.command import isolation_args
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role
from autonoma.agents.turn import Turn
from autonoma.config import Settings
from autonoma.journal import reader
from autonoma.journal.fold import fold
from autonoma.journal.writer import Journal
from autonoma.protocol import AgentSessionStarted, AgentTurnStarting, Message
from autonoma.report import state_json, state_text
from autonoma.runtime.bus import Bus
from autonoma.sim import SimServer, loads_scenario

CLAUDE = LOCAL_INSTALL / "claude"

pytestmark = [pytest.mark.timeout(60)]

SCENARIO = """
[[rule]]
name = "overloaded"
task = "overloaded"
[[rule.step]]
fault = "529"
retry_after = 0
times = 3
text = "Answered anyway."

[[rule]]
name = "bash"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "echo ran > bash-ran.txt", description = "run" }
[[rule.step]]
text = "Done."
"""

USER_MD = "USER-GLOBAL-CLAUDE-MD-7f3a"
PROJECT_MD = "PROJECT-CLAUDE-MD-91c2"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(loads_scenario(SCENARIO)) as server:
        yield server


def _hook(marker: Path) -> list[dict[str, object]]:
    return [{"matcher": "*", "hooks": [{"type": "command", "command": f"touch {marker}"}]}]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The user's config folder, with a hook, an MCP server and a CLAUDE.md of theirs."""
    home = tmp_path / "home"
    config = home / ".claude"  # CLAUDE_CONFIG_DIR: settings.json and .claude.json live here
    config.mkdir(parents=True)
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    hooks = {
        "SessionStart": _hook(markers / "user-session-start"),
        "PreToolUse": _hook(markers / "user-pre-tool-use"),
    }
    (config / "settings.json").write_text(json.dumps({"hooks": hooks}))
    server = {"type": "stdio", "command": "sh", "args": ["-c", f"touch {markers}/user-mcp"]}
    (config / ".claude.json").write_text(json.dumps({"mcpServers": {"hostile": server}}))
    (config / "CLAUDE.md").write_text(f"{USER_MD}\n")
    return home


@pytest.fixture
def project(git_repo: Path, tmp_path: Path) -> Path:
    """The user's repository, with its own project and local hooks and a CLAUDE.md."""
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    (git_repo / ".claude").mkdir()
    project_hooks = {"hooks": {"PreToolUse": _hook(markers / "project-pre-tool-use")}}
    (git_repo / ".claude" / "settings.json").write_text(json.dumps(project_hooks))
    local_hooks = {"hooks": {"PreToolUse": _hook(markers / "local-pre-tool-use")}}
    (git_repo / ".claude" / "settings.local.json").write_text(json.dumps(local_hooks))
    (git_repo / "CLAUDE.md").write_text(f"{PROJECT_MD}\n")
    return git_repo


def run_turn(
    sim: SimServer,
    cwd: Path,
    home: Path,
    tmp_path: Path,
    settings: Settings,
    *,
    task: str = "t1",
) -> tuple[list[Message], str]:
    """One developer turn; its journal and the first request body the sim got."""
    db = tmp_path / f"{task}.db"
    journal = Journal.open(db, batch_ms=1)
    bus = Bus(run_id="test")
    bus.attach(journal)
    session = str(uuid.uuid4())
    turn = Turn(
        bus,
        agent_id="dev-1",
        role=load_role("developer", cwd),
        prompt="Do it",
        session_id=session,
        resume=False,
        cwd=cwd,
        settings=settings,
        env=child_env(os.environ, sim_url=sim.url, config_dir=home),
        claude=CLAUDE,
        task_id=task,
    )
    turn.start()
    outcome = turn.wait(45)
    journal.stop()
    assert outcome is not None and not outcome.failed, outcome
    bodies = [r.body for r in sim.messages_requests if r.session_id == session]
    assert bodies
    return [e.message for e in reader.read(db)], json.dumps(bodies[0])


def markers(tmp_path: Path) -> set[str]:
    folder = tmp_path / "markers"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_the_users_hooks_mcp_servers_and_claude_md_stay_out(
    sim: SimServer, project: Path, home: Path, tmp_path: Path
) -> None:
    _, body = run_turn(sim, project, home, tmp_path, Settings())
    assert (project / "bash-ran.txt").exists()  # the tool ran, so PreToolUse hooks had a chance
    # The project's own settings (it is the user's repository) apply; the user's do not.
    assert markers(tmp_path) == {"project-pre-tool-use", "local-pre-tool-use"}
    assert PROJECT_MD in body
    assert USER_MD not in body


def test_user_claude_config_lets_them_in(
    sim: SimServer, project: Path, home: Path, tmp_path: Path
) -> None:
    _, body = run_turn(sim, project, home, tmp_path, Settings(user_claude_config=True))
    assert markers(tmp_path) == {
        "user-session-start",
        "user-pre-tool-use",
        "user-mcp",
        "project-pre-tool-use",
        "local-pre-tool-use",
    }
    assert PROJECT_MD in body and USER_MD in body


def test_a_project_mcp_server_does_not_start_either(
    sim: SimServer, git_repo: Path, home: Path, tmp_path: Path
) -> None:
    # Even approved by the project's settings: agents' allowed tools name no MCP tool.
    server = {"type": "stdio", "command": "sh", "args": ["-c", f"touch {tmp_path}/markers/p-mcp"]}
    (git_repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"project": server}}))
    (git_repo / ".claude").mkdir()
    approve = {"enableAllProjectMcpServers": True}
    (git_repo / ".claude" / "settings.json").write_text(json.dumps(approve))
    run_turn(sim, git_repo, home, tmp_path, Settings())
    assert "p-mcp" not in markers(tmp_path)


def test_the_role_model_is_asked_for_and_status_shows_what_claude_ran(
    sim: SimServer, git_repo: Path, home: Path, tmp_path: Path
) -> None:
    override = git_repo / ".autonoma" / "actors" / "developer.md"
    override.parent.mkdir(parents=True)
    packaged = load_role("developer").path.read_text()
    override.write_text(packaged.replace("+++\n", '+++\nmodel = "haiku"\n', 1))
    messages, body = run_turn(sim, git_repo, home, tmp_path, Settings(claude_model="opus"))
    starting = next(m for m in messages if isinstance(m, AgentTurnStarting))
    session = next(m for m in messages if isinstance(m, AgentSessionStarted))
    assert starting.model == "haiku"
    assert session.model.startswith("claude-haiku"), session.model
    assert json.loads(body)["model"] == session.model
    state = fold(reader.read(tmp_path / "t1.db"))
    assert state.agents["dev-1"].model == session.model
    agent_line = next(x for x in state_text(state).splitlines() if x.startswith("  dev-1 "))
    assert f" {session.model}" in agent_line
    assert json.loads(state_json(state))["agents"]["dev-1"]["model"] == session.model


def test_an_overloaded_model_falls_back(sim: SimServer, git_repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    run_turn(sim, git_repo, home, tmp_path, Settings(), task="overloaded")
    models = [
        r.body["model"]
        for r in sim.messages_requests
        if r.info is not None and r.info.task == "overloaded"
    ]
    # claude asks the main model until it gives up on it, then the fallback.
    assert models[0].startswith("claude-opus"), models
    assert models[-1].startswith("claude-sonnet"), models


def test_auth_check_sees_what_the_turns_see(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    helper = {"apiKeyHelper": "echo sk-ant-from-a-helper"}
    (home / ".claude" / "settings.json").write_text(json.dumps(helper))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
    }
    with pytest.raises(AuthError) as err:
        check_auth(CLAUDE, env, options=isolation_args(Settings()))
    assert str(err.value) == ONLY_USER_CONFIG
    check_auth(CLAUDE, env, options=isolation_args(Settings(user_claude_config=True)))
    (home / ".claude" / "settings.json").unlink()
    with pytest.raises(AuthError) as err:
        check_auth(CLAUDE, env, options=isolation_args(Settings()))
    assert str(err.value) == NOT_AUTHENTICATED
