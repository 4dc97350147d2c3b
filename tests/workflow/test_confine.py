"""Set-up and test commands under bubblewrap (the real /usr/bin/bwrap, no mocks).

What a confined command can and cannot do, as seen on disk and in its output: the
user's repository and home unchanged, secrets unreadable, no network for tests, only
the registries (through the proxy) for a set-up, nothing left running after a timeout.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autonoma.workflow.checks import run_check
from autonoma.workflow.confine import Confinement, Hidden, confined_argv, secrets
from autonoma.workflow.setup import SetupRunner, run_setup

pytestmark = pytest.mark.usefixtures("needs_bwrap")

FOLDER = Path("/p/.autonoma/worktrees/r/t1")
CACHE = Path("/p/.autonoma/cache")
BASE = [
    "/usr/bin/bwrap",
    "--die-with-parent",
    "--new-session",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-net",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--tmpfs",
    "/tmp",
]
ENVS = ["--setenv", "TMPDIR", "/tmp", "--unsetenv", "ALL_PROXY", "--unsetenv", "all_proxy"]


@pytest.mark.parametrize(
    ("hidden", "readable", "middle"),
    [
        ((), (), []),
        # The repository shown again (read-only) before the writable binds, so that a
        # worktree inside it stays writable.
        ((), (Path("/p"),), ["--ro-bind", "/p", "/p"]),
        # Secrets come last: they win over every bind.
        (
            (Hidden(Path("/h/.ssh"), True), Hidden(Path("/h/.netrc"), False)),
            (),
            ["--tmpfs", "/h/.ssh", "--ro-bind", "/dev/null", "/h/.netrc"],
        ),
    ],
)
def test_the_argv_of_a_test_command(
    hidden: tuple[Hidden, ...], readable: tuple[Path, ...], middle: list[str]
) -> None:
    argv = confined_argv("pytest -q", FOLDER, [CACHE], hidden, "none", readable=readable)
    binds = ["--bind", str(FOLDER), str(FOLDER), "--bind", str(CACHE), str(CACHE)]
    ro = [x for x in middle if middle and middle[0] == "--ro-bind" and middle[1] == "/p"]
    rest = [x for x in middle if not ro]
    assert argv == [
        *BASE,
        *ro,
        *binds,
        *rest,
        *ENVS,
        "--chdir",
        str(FOLDER),
        "/bin/sh",
        "-c",
        "pytest -q",
    ]


def test_a_set_up_gets_the_proxy_folder_and_the_proxy_variables() -> None:
    argv = confined_argv("npm ci", FOLDER, [], (), "registries", proxy_dir=Path("/s"))
    assert argv[argv.index("/s") - 1 : argv.index("/s") + 2] == [
        "--bind",
        "/s",
        "/tmp/.autonoma-proxy",
    ]
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "npm_config_proxy"):
        assert argv[argv.index(name) + 1] == "http://127.0.0.1:3128"
    # The command is an argument of the relay script, never spliced into it.
    assert argv[-5:] == [
        "sh",
        "npm ci",
        "3128",
        "/tmp/.autonoma-proxy/proxy.sock",
        "/usr/bin/socat",
    ]
    assert "--unshare-net" in argv


@pytest.mark.parametrize(
    ("folder", "network", "proxy_dir"),
    [
        (Path("relative"), "none", None),
        (Path("/a/../b"), "none", None),
        (FOLDER, "registries", None),
    ],
)
def test_bad_arguments_raise(folder: Path, network: str, proxy_dir: Path | None) -> None:
    with pytest.raises(ValueError):
        confined_argv("true", folder, [], (), network, proxy_dir=proxy_dir)  # type: ignore[arg-type]


def test_secrets_are_the_existing_ones(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".netrc").write_text("machine x password y\n")
    (home / ".config" / "gh").mkdir(parents=True)
    keys = tmp_path / "keys"
    found = secrets([home, home], keys)
    assert found == [
        Hidden(home / ".ssh", True),
        Hidden(home / ".netrc", False),
        Hidden(home / ".config" / "gh", True),
    ]


# --- real bubblewrap ---------------------------------------------------------------


class Place:
    """A user's repository (tracked file, .git, .autonoma/keys) with a task folder in it."""

    def __init__(self, tmp_path: Path) -> None:
        self.repo = tmp_path / "repo"
        self.folder = self.repo / ".autonoma" / "worktrees" / "r1" / "t1"
        self.folder.mkdir(parents=True)
        (self.repo / ".git").mkdir()
        (self.repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
        self.tracked = self.repo / "requirements.md"
        self.tracked.write_text("the user's words\n")
        self.keys = self.repo / ".autonoma" / "keys"
        self.keys.mkdir(mode=0o700)
        (self.keys / "inbox.key").write_text("KEY-SECRET\n")
        self.home = tmp_path / "home"
        (self.home / ".ssh").mkdir(parents=True)
        (self.home / ".ssh" / "id_ed25519").write_text("SSH-SECRET\n")
        (self.home / ".git-credentials").write_text("https://u:GIT-SECRET@host\n")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home)}
        self.confinement = Confinement(autonoma_dir=self.repo / ".autonoma", repo=self.repo)


@pytest.fixture
def place(tmp_path: Path) -> Place:
    return Place(tmp_path)


def test_a_confined_command_writes_its_folder_only(place: Place) -> None:
    command = (
        "echo mine > made.txt; echo x >> $REPO/requirements.md; touch $REPO/../pwned; "
        "touch $REPO/.git/pwned; echo x >> $HOME/.bashrc; "
        # As root, bwrap keeps every capability unless told: a remount would undo it all.
        "mount -o remount,rw / && touch $REPO/../pwned-remount; "
        "echo cached > $REPO/.autonoma/cache/c.txt; echo tmp > /tmp/t && cat /tmp/t"
    )
    env = {**place.env, "REPO": str(place.repo)}
    result = run_check(command, place.folder, env, 30, confinement=place.confinement)
    assert (place.folder / "made.txt").read_text() == "mine\n"
    assert (place.repo / ".autonoma" / "cache" / "c.txt").read_text() == "cached\n"
    assert place.tracked.read_text() == "the user's words\n"
    assert not (place.repo.parent / "pwned").exists()
    assert not (place.repo / ".git" / "pwned").exists()
    assert not (place.home / ".bashrc").exists()
    assert not (place.repo.parent / "pwned-remount").exists()
    assert "Read-only file system" in result.output
    assert "tmp\n" in result.output


def test_unconfined_the_same_command_writes_outside(place: Place) -> None:
    # The sandbox setting off: today's behaviour, which is what the test above prevents.
    env = {**place.env, "REPO": str(place.repo)}
    run_check("touch $REPO/../pwned", place.folder, env, 30)
    assert (place.repo.parent / "pwned").exists()


def test_a_confined_command_cannot_read_secrets(place: Place) -> None:
    command = (
        "cat $HOME/.ssh/id_ed25519 $HOME/.git-credentials $REPO/.autonoma/keys/inbox.key; "
        "cat $REPO/requirements.md"
    )
    env = {**place.env, "REPO": str(place.repo)}
    result = run_check(command, place.folder, env, 30, confinement=place.confinement)
    assert "SSH-SECRET" not in result.output
    assert "GIT-SECRET" not in result.output
    assert "KEY-SECRET" not in result.output
    # The rest stays readable: the tests may read the project.
    assert "the user's words" in result.output


TRY_EXAMPLE = (
    "python3 -c \"import socket; socket.create_connection(('example.com', 443), timeout=5)"
    "; print('python reached example.com')\"; "
    "curl -sS -m 10 -o /dev/null https://example.com && echo curl reached example.com"
)


TRY_HOST = (
    "python3 -c \"import socket; socket.create_connection(('127.0.0.1', $PORT), timeout=5)"
    "; print('python reached the host')\"; "
    "curl -sS -m 10 -o /dev/null https://pypi.org/simple/ && echo curl reached pypi.org"
)


def test_tests_get_no_network(place: Place, echo_server: int) -> None:
    # The host reaches both (the echo server, and pypi.org here); a confined test neither.
    env = {**place.env, "PORT": str(echo_server)}
    unconfined = run_check(TRY_HOST, place.folder, env, 60)
    assert "python reached the host" in unconfined.output
    result = run_check(TRY_HOST, place.folder, env, 60, confinement=place.confinement)
    assert "reached" not in result.output
    assert "ConnectionRefusedError" in result.output
    assert "curl: (6) Could not resolve host: pypi.org" in result.output


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP server on the host's loopback answering every line with ``echo: <line>``."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                data = conn.recv(1024)
                if data:
                    conn.sendall(b"echo: " + data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


THROUGH_PROXY = """
import os, socket
proxy = os.environ["HTTPS_PROXY"].removeprefix("http://").split(":")
s = socket.create_connection((proxy[0], int(proxy[1])), timeout=10)
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\\r\\n\\r\\n" % os.environ["PORT"].encode())
print(s.recv(200).split(b"\\r\\n")[0].decode())
s.sendall(b"hello\\n")
print(s.recv(200).decode().strip())
"""


def test_a_set_up_reaches_only_allowed_names_through_the_proxy(
    place: Place, echo_server: int
) -> None:
    # The host's loopback stands for a registry: only the proxy can reach it.
    script = place.folder / "through.py"
    script.write_text(THROUGH_PROXY)
    allowed = Confinement(
        autonoma_dir=place.repo / ".autonoma",
        repo=place.repo,
        extra_domains=(f"127.0.0.1:{echo_server}",),
    )
    env = {**place.env, "PORT": str(echo_server)}
    ran = run_setup(
        f"python3 {script}; {TRY_EXAMPLE}",
        place.folder,
        env,
        60,
        task_id="t1",
        place="task",
        confinement=allowed,
    )
    assert "HTTP/1.1 200 Connection established" in ran.output_tail
    assert "echo: hello" in ran.output_tail
    assert "reached" not in ran.output_tail
    assert "CONNECT tunnel failed, response 403" in ran.output_tail
    assert ran.output_tail.endswith(
        "\nautonoma: the set-up may reach only the package registries; refused: example.com:443"
    )
    # The journal names the model's command, not bwrap's argv.
    assert ran.command == f"python3 {script}; {TRY_EXAMPLE}"
    # Not on the allow-list: the same tunnel is refused.
    denied = run_setup(
        f"python3 {script}",
        place.folder,
        env,
        60,
        task_id="t1",
        place="task",
        confinement=place.confinement,
    )
    assert "403 Forbidden" in denied.output_tail and "echo: hello" not in denied.output_tail


def _running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if marker.encode() in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("network", ["none", "registries"])
def test_a_timeout_leaves_no_process_behind(place: Place, network: str) -> None:
    marker = f"1000.{os.getpid()}{int(time.monotonic() * 1000) % 100000}"
    command = f"sleep {marker} & setsid sleep {marker} & nohup sleep {marker} & sleep {marker}"
    began = time.monotonic()
    result = run_check(
        command,
        place.folder,
        place.env,
        2,
        confinement=place.confinement,
        network=network,  # type: ignore[arg-type]
    )
    assert result.timed_out and time.monotonic() - began < 10
    deadline = time.monotonic() + 3
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(marker) == []


def test_a_finished_command_leaves_no_daemon_behind(place: Place) -> None:
    marker = f"1001.{os.getpid()}"
    result = run_check(
        f"setsid sleep {marker} & echo done",
        place.folder,
        place.env,
        30,
        confinement=place.confinement,
    )
    assert result.passed and result.output == "done\n"
    assert _running(marker) == []


def test_a_stopped_runner_kills_a_confined_set_up(place: Place) -> None:
    marker = f"1002.{os.getpid()}"
    runner = SetupRunner(place.env, 60, place.confinement)
    assert runner.start("t1", f"setsid sleep {marker} & sleep {marker}", place.folder, print)
    deadline = time.monotonic() + 10
    while not _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(marker)
    runner.stop()
    deadline = time.monotonic() + 3
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(marker) == []


def test_without_bubblewrap_one_line_says_why(place: Place) -> None:
    missing = Confinement(
        autonoma_dir=place.repo / ".autonoma", repo=place.repo, bwrap="/nonexistent/bwrap"
    )
    result = run_check("true", place.folder, place.env, 30, confinement=missing)
    assert not result.passed and result.exit_code is None
    assert result.output == (
        "autonoma: cannot confine the command: bubblewrap (/nonexistent/bwrap) is not "
        "installed (apt-get install bubblewrap), or set sandbox = false"
    )
    ran = run_setup(
        "true", place.folder, place.env, 30, task_id="t1", place="task", confinement=missing
    )
    assert not ran.ok and ran.output_tail == result.output and ran.command == "true"
