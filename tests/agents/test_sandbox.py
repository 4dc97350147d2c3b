"""Claude Code's own sandbox, built by `autonoma.agents.sandbox`, through the real ``claude``.

The settings and rules are a table; then the real binary against the sim shows that
with them a Bash write inside the turn's folder and its temp folder succeeds, one
outside fails with "Read-only file system", the Write tool is refused outside the
folder, a unix socket (an ssh-agent's, docker's) cannot even be opened, and a machine
without bubblewrap refuses to start instead of running unconfined (docs/sandbox.md has
the findings behind each).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from autonoma.agents import process
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role
from autonoma.agents.sandbox import (
    REGISTRY_DOMAINS,
    file_tool_rules,
    network_for,
    sandbox_settings,
    scoped_tools,
    secret_paths,
    settings_arg,
    too_long_for_sockets,
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
    assert sandbox["filesystem"] == {"allowWrite": write, "denyRead": []}
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
            # Its own session: what it leaves (claude does not reap its children) is
            # reparented here as a stray the port's reaper can tell from our children.
            start_new_session=True,
        )
    process.reap_strays()
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
@pytest.mark.usefixtures("needs_bwrap")
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
@pytest.mark.usefixtures("needs_bwrap")
@pytest.mark.parametrize("sandbox", [True, False])
def test_bash_cannot_open_a_unix_socket_such_as_the_users_agents(
    sandbox: bool, git_repo: Path, tmp_path: Path
) -> None:
    """A listening socket of the user's (an ssh-agent, docker's) is out of reach of a
    sandboxed Bash: claude's seccomp filter refuses AF_UNIX sockets. Without the
    sandbox the same command reaches it, which is what the filter changes."""
    where = Path(tempfile.mkdtemp(prefix="us-"))  # a socket path holds 107 bytes at most
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(where / "agent.sock"))
    listening.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        # Ends at the first connection, or when the socket is closed below.
        with contextlib.suppress(OSError):
            connection, _ = listening.accept()
            with connection:
                received.append(connection.recv(16))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    work = PurePosixPath(git_repo.resolve())
    settings = settings_arg(sandbox_settings(work, PurePosixPath(tmp_path))) if sandbox else []
    argv = [*settings, "--permission-mode", "default", "--allowedTools", "Bash"]
    reach = (
        "import socket; s = socket.socket(socket.AF_UNIX); "
        f"s.connect({str(where / 'agent.sock')!r}); s.sendall(b'reached')"
    )
    calls = [("Bash", {"command": f'python3 -c "{reach}"', "description": "socket"})]
    try:
        proc, lines = _claude(calls, git_repo, tmp_path / "home", argv, os.environ["PATH"])
    finally:
        with contextlib.suppress(OSError):
            listening.shutdown(socket.SHUT_RDWR)
        listening.close()
        server.join(5)
        shutil.rmtree(where, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    [(failed, output)] = _tool_results(lines)
    if sandbox:
        assert failed and "Operation not permitted" in output, output
        assert received == []
    else:
        assert not failed, output
        assert received == [b"reached"]


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
@pytest.mark.usefixtures("needs_bwrap")
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
    outcome, _ = _developer_turn(calls, git_repo, home, settings=Settings(sandbox=sandbox))
    assert outcome is not None and outcome.exit_code == 0 and not outcome.failed
    assert (git_repo / "inside.txt").read_text() == "in\n"
    assert (outside / "bash.txt").exists() is (not sandbox)


@pytest.mark.parametrize(
    ("allowed", "scoped"),
    [
        (["Bash"], ["Bash"]),
        (
            ["Read", "Bash(git log:*)"],
            ["Read(//w/task/**)", "Read(//tmp/turn/**)", "Bash(git log:*)"],
        ),
        (
            ["Read", "Write", "Edit", "Bash"],
            [
                "Read(//w/task/**)",
                "Read(//tmp/turn/**)",
                "Write(//w/task/**)",
                "Write(//tmp/turn/**)",
                "Edit(//w/task/**)",
                "Edit(//tmp/turn/**)",
                "Bash",
            ],
        ),
        (["Read(src/**)", "Grep"], ["Read(src/**)", "Grep"]),  # a role file's own rule stays
    ],
)
def test_scoped_tools_table(allowed: list[str], scoped: list[str]) -> None:
    assert scoped_tools(allowed, W, T) == scoped


@pytest.mark.parametrize(
    ("role", "bash", "network", "extra", "expected"),
    [
        ("developer", True, "registries", [], (True, [])),
        ("developer", True, "none", [], (False, [])),
        ("developer", True, "none", ["x.org"], (False, ["x.org"])),
        ("qa", True, "registries", ["x.org"], (False, ["x.org"])),
        ("ceo", False, "registries", ["x.org"], (False, [])),
    ],
)
def test_network_table(
    role: str, bash: bool, network: str, extra: list[str], expected: tuple[bool, list[str]]
) -> None:
    assert network_for(role, bash, network, extra) == expected


def test_secret_paths_and_socket_room() -> None:
    home = PurePosixPath("/home/u")
    paths = secret_paths(home, home / ".claude")
    assert home / ".ssh" in paths and home / ".claude" / ".credentials.json" in paths
    assert not too_long_for_sockets(PurePosixPath("/tmp/autonoma-0/0123456789ab"))
    assert too_long_for_sockets(PurePosixPath("/" + "a" * 60))


def _developer_turn(
    calls: list[tuple[str, dict[str, str]]],
    cwd: Path,
    home: Path,
    *,
    tmpdir: Path | None = None,
    deny_read: list[Path] | None = None,
    env_extra: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> tuple[Any, list[Any]]:
    seen: list[Any] = []
    with SimServer(loads_scenario(_scenario(calls))) as sim:
        bus = Bus(run_id="test")
        bus.subscribe(lambda envelope: seen.append(envelope.message))
        env = child_env(dict(os.environ), sim_url=sim.url, config_dir=home)
        env.update(env_extra or {})
        turn = Turn(
            bus,
            agent_id="dev-1",
            role=dataclasses.replace(load_role("developer"), schema=None),
            prompt="go",
            session_id=str(uuid.uuid4()),
            resume=False,
            cwd=cwd,
            settings=settings or Settings(),
            env=env,
            claude=CLAUDE,
            task_id="t1",
            tmpdir=tmpdir,
            deny_read=deny_read or [],
        )
        turn.start()
        outcome = turn.wait(50)
    return outcome, seen


def _results(seen: list[Any]) -> list[tuple[bool, str]]:
    from autonoma.protocol import AgentToolResult

    return [(m.is_error, m.content) for m in seen if isinstance(m, AgentToolResult)]


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("needs_bwrap")
def test_secrets_tmpdir_and_file_tools_of_a_default_turn(git_repo: Path, tmp_path: Path) -> None:
    """With the defaults (sandbox on): a planted ~/.ssh key is unreadable to Bash, the
    turn's TMPDIR is its own folder (gone after the turn), and the Write tool is refused
    outside the turn's folder, journaled as `PermissionDenied`."""
    from autonoma.protocol import PermissionDenied

    fake_home = tmp_path / "userhome"
    (fake_home / ".ssh").mkdir(parents=True)
    (fake_home / ".ssh" / "id_rsa").write_text("PRIVATE KEY\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    turn_tmp = tmp_path / "project" / ".autonoma" / "tmp" / "run-1" / "developer-1"
    calls = [
        ("Bash", {"command": f"cat {fake_home}/.ssh/id_rsa", "description": "steal"}),
        (
            "Bash",
            {"command": 'echo "$TMPDIR" > tmpdir.txt; echo t > "$TMPDIR/t"', "description": "t"},
        ),
        ("Write", {"file_path": f"{outside}/w.txt", "content": "w\n"}),
        ("Read", {"file_path": f"{fake_home}/.ssh/id_rsa"}),
        ("Write", {"file_path": f"{git_repo.resolve()}/w.txt", "content": "w\n"}),
    ]
    home = tmp_path / "home"
    home.mkdir()
    outcome, seen = _developer_turn(
        calls, git_repo, home, tmpdir=turn_tmp, deny_read=[fake_home / ".ssh"]
    )
    assert outcome is not None and outcome.exit_code == 0
    results = _results(seen)
    assert len(results) == 5, results
    assert "PRIVATE KEY" not in results[0][1] and results[0][0], results[0]
    used = (git_repo / "tmpdir.txt").read_text().strip()
    assert used.startswith(tempfile.gettempdir()) and "claude-" in used  # the short alias
    assert not turn_tmp.exists()  # removed after the turn
    assert list(outside.iterdir()) == []
    assert (git_repo / "w.txt").read_text() == "w\n"
    denied = [m for m in seen if isinstance(m, PermissionDenied)]
    assert [m.tool for m in denied] == ["Write", "Read"], denied
    assert "haven't granted" in denied[0].reason


def _zombie_children() -> list[Any]:
    from autonoma.agents import process

    me = os.getpid()
    return [e for e in process.processes() if e.ppid == me and not e.alive]


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("needs_bwrap")
def test_sandboxed_bash_calls_leave_no_zombie(git_repo: Path, tmp_path: Path) -> None:
    """Each sandboxed Bash call's inner bwrap is reparented here (a subreaper): the port
    reaps it (docs/sandbox.md section 5); the port tests' no-zombie check runs after."""
    calls = [("Bash", {"command": f"echo {i}", "description": "x"}) for i in range(5)]
    home = tmp_path / "home"
    home.mkdir()
    outcome, _seen = _developer_turn(calls, git_repo, home)
    assert outcome is not None and outcome.exit_code == 0
    assert _zombie_children() == []
    from tests.agents.test_port import test_many_ports_leak_no_fd_and_leave_no_zombie

    test_many_ports_leak_no_fd_and_leave_no_zombie(tmp_path / "ports")


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("needs_bwrap")
def test_git_add_all_works_in_the_sandbox_and_keeps_a_tracked_gitmodules(
    git_repo: Path, tmp_path: Path
) -> None:
    """claude mounts placeholders on absent dotfiles; with the agents' excludes file
    `git add -A` ignores them, and a tracked .gitmodules is still committed."""
    from autonoma.vcs import excludes, workspace

    (git_repo / ".gitmodules").write_text("# none\n")
    subprocess.run(["git", "add", ".gitmodules"], cwd=git_repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "m"],
        cwd=git_repo,
        check=True,
    )
    # Changed as the Edit tool would (claude's sandbox keeps Bash from writing it).
    (git_repo / ".gitmodules").write_text("# changed\n")
    agent_exclude = excludes.agent_excludes(git_repo, tmp_path / "agent-exclude")
    env: dict[str, str] = {}
    workspace.add_git_config(env, "core.excludesFile", str(agent_exclude))
    script = (
        "echo x > new.txt && git add -A && "
        "git -c user.name=a -c user.email=a@b commit -qm work && git show --stat --format= HEAD"
    )
    home = tmp_path / "home"
    home.mkdir()
    outcome, seen = _developer_turn(
        [("Bash", {"command": script, "description": "commit"})], git_repo, home, env_extra=env
    )
    assert outcome is not None and outcome.exit_code == 0
    results = _results(seen)
    assert not results[0][0], results
    shown = subprocess.run(
        ["git", "show", "--name-only", "--format=", "HEAD"],
        cwd=git_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(shown) == [".gitmodules", "new.txt"]


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("needs_bwrap")
def test_skip_permissions_still_confines_bash_and_keeps_secrets(
    git_repo: Path, tmp_path: Path
) -> None:
    """--dangerously-skip-permissions: no permission prompts (the Write tool may write
    anywhere), but Bash stays in the sandbox and no file tool reads the secrets."""
    secrets = tmp_path / "userhome" / ".aws"
    secrets.mkdir(parents=True)
    (secrets / "credentials").write_text("AWS SECRET\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    calls = [
        ("Bash", {"command": f"echo b > {outside}/b.txt", "description": "out"}),
        ("Read", {"file_path": f"{secrets}/credentials"}),
        ("Write", {"file_path": f"{outside}/w.txt", "content": "w\n"}),
    ]
    home = tmp_path / "home"
    home.mkdir()
    outcome, seen = _developer_turn(
        calls,
        git_repo,
        home,
        deny_read=[secrets],
        env_extra={"IS_SANDBOX": "1"},
        settings=Settings(dangerously_skip_permissions=True),
    )
    assert outcome is not None and outcome.exit_code == 0
    results = _results(seen)
    assert results[0][0] and "Read-only file system" in results[0][1]
    assert results[1][0] and "AWS SECRET" not in results[1][1]
    assert sorted(p.name for p in outside.iterdir()) == ["w.txt"]


def test_a_late_end_of_a_crashed_turn_keeps_the_next_turns_temp_folder(tmp_path: Path) -> None:
    """A crashed agent's turn may end after its restarted agent's next turn made the
    same temp folder (same run, same agent): the late end must not remove it."""
    tmpdir = tmp_path / ("long-" * 12) / ".autonoma" / "tmp" / "run-1" / "developer-1"

    def turn() -> Turn:
        return Turn(
            Bus(run_id="test"),
            agent_id="developer-1",
            role=load_role("developer"),
            prompt="go",
            session_id=str(uuid.uuid4()),
            resume=False,
            cwd=tmp_path,
            settings=Settings(),
            env={"PATH": os.environ["PATH"]},
            claude=CLAUDE,
            tmpdir=tmpdir,
        )

    old, new = turn(), turn()
    old._make_tmpdir()
    new._make_tmpdir()
    old._remove_tmpdir()  # the crashed turn's port thread, late
    assert tmpdir.is_dir()
    assert new._alias is not None and new._alias.is_symlink()
    new._remove_tmpdir()
    assert not tmpdir.exists() and not new._alias.is_symlink()
