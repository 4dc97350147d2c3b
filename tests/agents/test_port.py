"""The PTY port, with real processes: lines, exits, timeouts, process trees, leaks."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autonoma.agents import process
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.port import (
    CLAUDE_NOT_FOUND,
    ExecutableNotFound,
    Port,
    PortError,
    PortExit,
)

DEADLINE = 10.0


class Recorder:
    """Collects a port's events; waits for them with deadlines."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.exits: list[tuple[int | None, int | None, bool]] = []
        self.cond = threading.Condition()

    def on_line(self, line: bytes) -> None:
        with self.cond:
            self.lines.append(line)
            self.cond.notify_all()

    def on_exit(self, code: int | None, sig: int | None, timed_out: bool) -> None:
        with self.cond:
            self.exits.append((code, sig, timed_out))
            self.cond.notify_all()

    def until(self, check: Callable[[], bool], deadline: float = DEADLINE) -> None:
        with self.cond:
            assert self.cond.wait_for(check, deadline), "event did not come in time"

    def exited(self, deadline: float = DEADLINE) -> tuple[int | None, int | None, bool]:
        self.until(lambda: bool(self.exits), deadline)
        assert len(self.exits) == 1
        return self.exits[0]


def make_port(tmp_path: Path, script: str, rec: Recorder, **kwargs: object) -> Port:
    return Port(
        ["bash", "-c", script],
        tmp_path,
        dict(os.environ),
        on_line=rec.on_line,
        on_exit=rec.on_exit,
        **kwargs,  # type: ignore[arg-type]
    )


def tree_left(pid: int) -> list[process.ProcEntry]:
    return process.tree(pid)


def wait_file(path: Path, deadline: float = DEADLINE) -> str:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.01)
    raise AssertionError(f"{path} never written")


def test_lines_are_exact_bytes_and_partial_last_line_kept(tmp_path: Path) -> None:
    rec = Recorder()
    transcript = tmp_path / "t" / "turn.jsonl"
    script = (
        'printf \'{"type":"system","subtype":"init"}\\n\'; '
        'printf \'{"type":"assistant","x":"caf\\xc3\\xa9\\t"}\\n\\n\'; '
        "echo to-stderr >&2; "
        "printf 'partial-no-newline'"
    )
    port = make_port(tmp_path, script, rec, transcript=transcript)
    pid = port.start()
    assert pid > 0
    assert rec.exited() == (0, None, False)
    expected = [
        b'{"type":"system","subtype":"init"}',
        '{"type":"assistant","x":"café\t"}'.encode(),
        b"",
        b"to-stderr",
        b"partial-no-newline",
    ]
    assert rec.lines == expected
    assert transcript.read_bytes() == b"\n".join(expected)
    assert port.wait(1) == PortExit(0, None, False)


def test_the_pty_is_the_raw_controlling_terminal(tmp_path: Path) -> None:
    rec = Recorder()
    # /dev/tty only opens for a process with a controlling terminal: the PTY is it.
    script = (
        "test -t 0 && test -t 1 && echo tty; echo via-dev-tty > /dev/tty; "
        "stty -a | tr ' ' '\\n' | grep -x -e -echo -e -opost -e -icanon"
    )
    port = make_port(tmp_path, script, rec)
    port.start()
    assert rec.exited() == (0, None, False)
    assert rec.lines[:2] == [b"tty", b"via-dev-tty"]
    assert sorted(rec.lines[2:]) == [b"-echo", b"-icanon", b"-opost"]


def test_a_line_written_in_two_parts_is_one_line(tmp_path: Path) -> None:
    rec = Recorder()
    port = make_port(tmp_path, "printf 'first half '; sleep 0.3; printf 'second half\\n'", rec)
    port.start()
    assert rec.exited() == (0, None, False)
    assert rec.lines == [b"first half second half"]


def test_exit_code_is_reported(tmp_path: Path) -> None:
    rec = Recorder()
    make_port(tmp_path, "echo bye; exit 7", rec).start()
    assert rec.exited() == (7, None, False)
    assert rec.lines == [b"bye"]


def test_signal_is_reported(tmp_path: Path) -> None:
    rec = Recorder()
    make_port(tmp_path, "kill -USR1 $$", rec).start()
    assert rec.exited() == (None, signal.SIGUSR1, False)


def test_timeout_stops_the_whole_tree(tmp_path: Path) -> None:
    rec = Recorder()
    pids = tmp_path / "pids"
    script = f"sleep 600 & sleep 600 & echo $! > {pids}; wait"
    port = make_port(tmp_path, script, rec, timeout=0.5, grace=5.0)
    pid = port.start()
    wait_file(pids)
    assert len([e for e in tree_left(pid) if e.alive]) >= 3
    started = time.monotonic()
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert time.monotonic() - started < 4.0  # SIGTERM did it, not the SIGKILL after grace
    assert port.stop_reason == "timeout"
    assert tree_left(pid) == []


def test_a_child_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    rec = Recorder()
    ready = tmp_path / "ready"
    script = f"trap '' TERM; sleep 600 & echo ok > {ready}; while :; do sleep 0.05; done"
    port = make_port(tmp_path, script, rec, grace=0.5)
    pid = port.start()
    wait_file(ready)
    stopped = time.monotonic()
    port.stop("test")
    assert rec.exited() == (None, signal.SIGKILL, False)
    assert time.monotonic() - stopped >= 0.45
    assert tree_left(pid) == []


def test_kill_kills_the_group_at_once(tmp_path: Path) -> None:
    rec = Recorder()
    ready = tmp_path / "ready"
    script = f"trap '' TERM; sleep 600 & echo ok > {ready}; wait"
    port = make_port(tmp_path, script, rec, grace=30.0)
    pid = port.start()
    wait_file(ready)
    killed = time.monotonic()
    port.kill()
    assert rec.exited(deadline=3.0) == (None, signal.SIGKILL, False)
    assert time.monotonic() - killed < 3.0
    assert tree_left(pid) == []


def test_a_background_grandchild_is_killed_after_the_child_exits(tmp_path: Path) -> None:
    rec = Recorder()
    grandchild = tmp_path / "grandchild"
    # Ignores SIGHUP (the terminal hang-up at the leader's exit), so only the port ends it.
    script = f"(trap '' HUP; exec sleep 600) > /dev/null 2>&1 & echo $! > {grandchild}; echo done"
    port = make_port(tmp_path, script, rec, grace=2.0)
    pid = port.start()
    assert rec.exited() == (0, None, False)
    assert rec.lines == [b"done"]
    orphan = int(wait_file(grandchild))
    assert process.read_entry(orphan) is None
    assert tree_left(pid) == []


def test_a_job_in_its_own_group_is_killed_too(tmp_path: Path) -> None:
    rec = Recorder()
    job = tmp_path / "job"
    script = f"set -m; sleep 600 & echo $! > {job}; wait"
    port = make_port(tmp_path, script, rec, timeout=0.3, grace=1.0)
    pid = port.start()
    entry = process.read_entry(int(wait_file(job)))
    assert entry is not None and entry.pgid != pid and entry.sid == pid
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert tree_left(pid) == []


def test_missing_executable_is_one_line_error(tmp_path: Path) -> None:
    rec = Recorder()
    env = {"PATH": str(tmp_path)}
    port = Port(["claude", "-p", "hi"], tmp_path, env, on_line=rec.on_line, on_exit=rec.on_exit)
    with pytest.raises(ExecutableNotFound) as caught:
        port.start()
    assert str(caught.value) == CLAUDE_NOT_FOUND
    assert "\n" not in CLAUDE_NOT_FOUND
    assert port.pid is None

    not_exec = tmp_path / "claude"
    not_exec.write_text("#!/bin/sh\n")
    with pytest.raises(ExecutableNotFound, match="Claude Code not found"):
        Port([str(not_exec)], tmp_path, env, on_line=rec.on_line, on_exit=rec.on_exit).start()

    with pytest.raises(ExecutableNotFound, match=r"^/nonexistent/tool: not found"):
        Port(["/nonexistent/tool"], tmp_path, env, on_line=rec.on_line, on_exit=rec.on_exit).start()
    assert rec.exits == []


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _zombie_children() -> list[process.ProcEntry]:
    me = os.getpid()
    return [e for e in process.processes() if e.ppid == me and not e.alive]


def test_many_ports_leak_no_fd_and_leave_no_zombie(tmp_path: Path) -> None:
    before = _fds()
    recs: list[Recorder] = []
    ports: list[Port] = []
    for i in range(30):
        rec = Recorder()
        script = "echo up; sleep 600" if i % 2 else "echo up; exit 3"
        port = make_port(tmp_path, script, rec, grace=0.5, transcript=tmp_path / f"{i}.log")
        port.start()
        rec.until(lambda rec=rec: bool(rec.lines))  # type: ignore[misc]
        if i % 2:
            port.stop("loop")
        recs.append(rec)
        ports.append(port)
    for i, rec in enumerate(recs):
        assert rec.exited() == ((None, signal.SIGTERM, False) if i % 2 else (3, None, False))
        assert rec.lines == [b"up"]
    for port in ports:
        assert port.wait(DEADLINE) is not None
        assert port.pid is not None and tree_left(port.pid) == []
    end = time.monotonic() + DEADLINE
    while _fds() != before and time.monotonic() < end:
        time.sleep(0.01)  # the reader thread closes the master just after on_exit
    assert _fds() == before
    assert _zombie_children() == []


def test_stop_after_exit_is_harmless(tmp_path: Path) -> None:
    rec = Recorder()
    port = make_port(tmp_path, "exit 0", rec)
    port.start()
    assert rec.exited() == (0, None, False)
    port.stop("late")
    port.kill()
    assert rec.exits == [(0, None, False)]


def test_python_child_sees_raw_bytes(tmp_path: Path) -> None:
    rec = Recorder()
    code = "import sys; sys.stdout.buffer.write(b'a\\r\\nb\\n\\x00c'); sys.stdout.flush()"
    port = Port(
        [sys.executable, "-c", code],
        tmp_path,
        dict(os.environ),
        on_line=rec.on_line,
        on_exit=rec.on_exit,
    )
    port.start()
    assert rec.exited() == (0, None, False)
    assert rec.lines == [b"a\r", b"b", b"\x00c"]


def test_much_output_just_before_exit_is_not_lost(tmp_path: Path) -> None:
    rec = Recorder()
    script = "seq 1 50000; head -c 300000 /dev/zero | tr '\\0' x; echo; printf end"
    make_port(tmp_path, script, rec).start()
    assert rec.exited() == (0, None, False)
    assert rec.lines[:50000] == [str(n).encode() for n in range(1, 50001)]
    assert rec.lines[50000:] == [b"x" * 300000, b"end"]


def test_a_process_that_left_the_session_does_not_hang_the_port(tmp_path: Path) -> None:
    # setsid is the one way out of the tree; it may keep the PTY open, but the
    # port still ends the turn (after a bounded drain) and closes its side.
    rec = Recorder()
    escapee = tmp_path / "escapee"
    script = f"setsid sh -c 'echo $$ > {escapee}; exec sleep 600' & sleep 0.2; echo bye"
    port = make_port(tmp_path, script, rec)
    pid = port.start()
    try:
        assert rec.exited(deadline=DEADLINE) == (0, None, False)
        assert rec.lines[-1] == b"bye"
        assert tree_left(pid) == []
    finally:
        stray = int(wait_file(escapee))
        os.kill(stray, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(stray, 0)  # reparented to us: the port made this process a subreaper


def test_a_missing_working_folder_is_one_line_error(tmp_path: Path) -> None:
    rec = Recorder()
    before = _fds()
    port = Port(
        ["bash", "-c", "true"],
        tmp_path / "missing",
        dict(os.environ),
        on_line=rec.on_line,
        on_exit=rec.on_exit,
    )
    with pytest.raises(PortError, match=r"^could not start bash: ") as caught:
        port.start()
    assert "\n" not in str(caught.value)
    assert _fds() == before


def test_a_grandchild_ignoring_sigterm_after_exit_is_killed_after_grace(tmp_path: Path) -> None:
    rec = Recorder()
    grandchild = tmp_path / "grandchild"
    script = f"(trap '' HUP TERM; exec sleep 600) > /dev/null 2>&1 & echo $! > {grandchild}"
    port = make_port(tmp_path, script, rec, grace=0.3)
    pid = port.start()
    assert rec.exited() == (0, None, False)
    assert process.read_entry(int(wait_file(grandchild))) is None
    assert tree_left(pid) == []


def test_the_real_claude_runs_in_the_port(tmp_path: Path) -> None:
    rec = Recorder()
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(tmp_path)}
    port = Port(
        [str(LOCAL_INSTALL / "claude"), "--version"],
        tmp_path,
        env,
        on_line=rec.on_line,
        on_exit=rec.on_exit,
    )
    pid = port.start()
    assert rec.exited(deadline=30.0) == (0, None, False)
    assert any(b"Claude Code" in line for line in rec.lines), rec.lines
    assert all(b"\r" not in line for line in rec.lines)
    assert tree_left(pid) == []


# --- the idle limit beside the wall clock ----------------------------------------------


def test_a_silent_child_is_stopped_by_the_idle_limit(tmp_path: Path) -> None:
    rec = Recorder()
    script = "echo started; sleep 600"
    port = make_port(tmp_path, script, rec, timeout=30.0, idle_timeout=0.5, grace=5.0)
    pid = port.start()
    started = time.monotonic()
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert 0.45 <= time.monotonic() - started < 4.0
    assert port.result == PortExit(None, signal.SIGTERM, True, timeout="idle", timeout_s=0.5)
    assert port.stop_reason == "idle timeout"
    assert rec.lines == [b"started"]
    assert tree_left(pid) == []


def test_a_child_printing_steadily_past_the_idle_limit_is_not_stopped(tmp_path: Path) -> None:
    rec = Recorder()
    # 2 s in all, a line every 0.1 s: four times the idle limit, within the wall clock.
    script = "for i in $(seq 20); do echo $i; sleep 0.1; done"
    port = make_port(tmp_path, script, rec, timeout=30.0, idle_timeout=0.5)
    port.start()
    assert rec.exited() == (0, None, False)
    assert port.result is not None and port.result.timeout == ""
    assert rec.lines == [str(i).encode() for i in range(1, 21)]


def test_a_running_tool_stretches_the_idle_limit_until_it_ends(tmp_path: Path) -> None:
    rec = Recorder()
    # Silent for 1.5 s (three idle limits) while a tool runs, then silent again after it.
    script = "echo tool; sleep 1.5; echo result; sleep 600"
    port = make_port(tmp_path, script, rec, timeout=30.0, idle_timeout=0.5)

    def on_line(line: bytes) -> None:
        rec.on_line(line)
        port.tool_running(line == b"tool")

    port._on_line = on_line
    port.start()
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert rec.lines == [b"tool", b"result"]
    assert port.result is not None
    assert (port.result.timeout, port.result.timeout_s) == ("idle", 0.5)


def test_a_child_stopped_by_someone_during_a_tool_is_idle_and_ends_by_its_handler(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    # SIGSTOP from outside while a tool runs: nothing runs, so the tool's longer quiet
    # limit must not apply; continued after SIGTERM, it ends by its own handler.
    script = "trap 'echo bye; exit 3' TERM; echo tool; while :; do sleep 0.05; done"
    port = make_port(tmp_path, script, rec, timeout=60.0, idle_timeout=0.5, grace=5.0)

    def on_line(line: bytes) -> None:
        rec.on_line(line)
        port.tool_running(line == b"tool")

    port._on_line = on_line
    pid = port.start()
    rec.until(lambda: rec.lines == [b"tool"])
    os.kill(pid, signal.SIGSTOP)
    assert rec.exited(deadline=4.0)[0] == 3
    assert rec.lines == [b"tool", b"bye"]
    assert port.result is not None
    assert (port.result.timeout, port.result.timeout_s) == ("idle", 0.5)


def test_the_wall_clock_stops_a_child_that_prints_steadily(tmp_path: Path) -> None:
    rec = Recorder()
    script = "while :; do echo tick; sleep 0.05; done"
    port = make_port(tmp_path, script, rec, timeout=1.0, idle_timeout=0.5)
    port.start()
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert port.result is not None
    assert (port.result.timeout, port.result.timeout_s) == ("wall", 1.0)
    assert len(rec.lines) > 5


# --- a child started before its input (a pre-started turn) ----------------------------


def test_a_pre_started_child_reads_what_is_sent_then_eof(tmp_path: Path) -> None:
    rec = Recorder()
    # stdin is the pipe, not the terminal; the PTY stays the controlling terminal.
    script = (
        "test -t 0 || echo stdin-is-a-pipe; test -t 1 && echo stdout-is-the-pty; "
        "echo via-dev-tty > /dev/tty; echo waiting; cat; echo eof"
    )
    port = make_port(tmp_path, script, rec, stdin_pipe=True)
    port.start()
    rec.until(lambda: b"waiting" in rec.lines)
    time.sleep(0.2)
    assert rec.exits == []  # it waits for its input
    big = b"x" * 200_000 + b"\n"  # more than a pipe holds: written by a thread
    port.send(b"hello\n" + big)
    assert rec.exited() == (0, None, False)
    assert rec.lines == [
        b"stdin-is-a-pipe",
        b"stdout-is-the-pty",
        b"via-dev-tty",
        b"waiting",
        b"hello",
        big.rstrip(b"\n"),
        b"eof",
    ]
    with pytest.raises(PortError):
        port.send(b"again")  # written once: stdin is closed


def test_a_port_without_a_stdin_pipe_refuses_to_send(tmp_path: Path) -> None:
    rec = Recorder()
    port = make_port(tmp_path, "echo up", rec)
    port.start()
    with pytest.raises(PortError):
        port.send(b"nothing")
    assert rec.exited() == (0, None, False)


def test_the_wall_clock_of_a_pre_started_child_starts_at_send(tmp_path: Path) -> None:
    rec = Recorder()
    script = "echo up; cat; while :; do echo tick; sleep 0.05; done"
    port = make_port(tmp_path, script, rec, timeout=1.0, stdin_pipe=True)
    port.start()
    time.sleep(1.5)  # longer than its wall clock, waiting for its input
    assert rec.exits == []
    sent = time.monotonic()
    port.send(b"go\n")
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert 0.9 <= time.monotonic() - sent < 4.0
    assert port.result is not None and port.result.timeout == "wall"


def test_a_pre_started_child_never_given_its_input_ends_by_its_idle_limit(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    port = make_port(tmp_path, "echo up; cat", rec, idle_timeout=0.5, stdin_pipe=True)
    pid = port.start()
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert port.result is not None and port.result.timeout == "idle"
    assert tree_left(pid) == []


def test_stopping_a_pre_started_child_leaks_no_fd(tmp_path: Path) -> None:
    before = _fds()
    rec = Recorder()
    port = make_port(tmp_path, "echo up; cat; sleep 600", rec, grace=0.5, stdin_pipe=True)
    pid = port.start()
    rec.until(lambda: bool(rec.lines))
    port.stop("unused")
    assert rec.exited() == (None, signal.SIGTERM, False)
    assert tree_left(pid) == []
    end = time.monotonic() + DEADLINE
    while _fds() != before and time.monotonic() < end:
        time.sleep(0.01)
    assert _fds() == before


def test_a_frozen_child_sends_nothing_outlives_the_idle_limit_and_goes_on_once_thawed(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    # It handles SIGTERM itself, as claude does: a stopped process runs no handler.
    script = "trap 'echo bye; exit 3' TERM; while :; do echo tick; sleep 0.05; done"
    port = make_port(tmp_path, script, rec, timeout=30.0, idle_timeout=0.5, grace=5.0)
    port.start()
    rec.until(lambda: len(rec.lines) >= 3)
    port.freeze(True)
    time.sleep(0.2)  # a line on its way when frozen may still come
    seen = len(rec.lines)
    time.sleep(1.2)  # more than twice the idle limit
    assert len(rec.lines) == seen and rec.exits == []  # silent, and not stopped for it
    port.freeze(False)
    rec.until(lambda: len(rec.lines) >= seen + 3)  # it goes on where it was
    assert rec.exits == []
    port.freeze(True)
    port.stop()  # a frozen child still handles SIGTERM: continued after it
    assert rec.exited(deadline=4.0)[0] == 3  # its handler ran, before the grace period
    assert rec.lines[-1] == b"bye"


def test_time_frozen_does_not_count_against_the_wall_clock_and_the_rest_still_applies(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    script = "while :; do echo tick; sleep 0.05; done"
    port = make_port(tmp_path, script, rec, timeout=2.0, grace=1.0)
    port.start()
    rec.until(lambda: bool(rec.lines))
    time.sleep(1.0)  # half its wall clock used
    port.freeze(True)
    time.sleep(2.5)  # frozen for longer than its whole wall clock (a long storm)
    assert rec.exits == [] and port.stop_reason is None  # not stopped for the timeout
    seen = len(rec.lines)
    port.freeze(False)
    thawed = time.monotonic()
    rec.until(lambda: len(rec.lines) > seen)  # it goes on
    assert rec.exited(deadline=5.0) == (None, signal.SIGTERM, True)
    after = time.monotonic() - thawed
    # What it had left (about 1 s) still applied: not the whole 2 s again, nor none.
    assert 0.7 <= after <= 1.8, after
    assert port.result is not None and port.result.timeout == "wall"
    assert port.result.timeout_s == 2.0


def test_a_child_given_its_input_while_frozen_starts_its_wall_clock_once_thawed(
    tmp_path: Path,
) -> None:
    rec = Recorder()
    port = make_port(tmp_path, "echo up; cat; sleep 600", rec, timeout=0.5, stdin_pipe=True)
    port.start()
    rec.until(lambda: bool(rec.lines))
    port.freeze(True)  # pre-started, and a storm came before its prompt
    port.send(b"go\n")
    time.sleep(1.0)
    assert rec.exits == []  # its wall clock waits for the thaw
    port.freeze(False)
    thawed = time.monotonic()
    assert rec.exited() == (None, signal.SIGTERM, True)
    assert 0.3 <= time.monotonic() - thawed <= 2.0
