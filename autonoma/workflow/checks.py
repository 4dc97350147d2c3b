"""Running the project's own test command on a worktree, bounded in time and output.

Confined by bubblewrap when given a `Confinement` (the ``sandbox`` setting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from autonoma.agents.process import claim, die_with_parent, own_pid_namespace, release
from autonoma.workflow.confine import Confinement, Network

OUTPUT_TAIL = 4000
TERM_GRACE = 2.0
# Processes a check leaves behind after its shell exits get this long to finish writing.
LEFTOVER_GRACE = 1.0
_CHUNK = 65536
# Bytes kept while reading: enough for OUTPUT_TAIL characters of multi-byte text.
_KEEP = OUTPUT_TAIL * 4


@dataclass(frozen=True)
class CheckResult:
    """How a check command ended and the tail of what it printed."""

    passed: bool
    exit_code: int | None
    timed_out: bool
    output: str


def _exited(pid: int) -> bool:
    # WNOWAIT leaves the shell a zombie, so its pid (and process group id) cannot be
    # reused before the group is signalled.
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _signal_group(pgid: int, signum: int) -> None:
    # The group may be gone already; that is the outcome wanted.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _watch(
    process: subprocess.Popen[bytes],
    pipe: int,
    timeout: float,
    exited_first: Callable[[], None] = lambda: None,
) -> tuple[bytes, bool]:
    # One thread reads the pipe and watches the clock, so a flood of output can neither
    # fill the pipe nor hold the timeout off. The shell's exit ends the check, not the
    # pipe's end: a command may close its output and keep working. ``exited_first`` is
    # called once, when the shell's exit is first seen.
    tail = bytearray()
    timed_out = False
    reading = True
    deadline = time.monotonic() + timeout
    stop_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            exited = _exited(process.pid)
            if stop_at is None:
                if now >= deadline:
                    timed_out = True
                    _signal_group(process.pid, signal.SIGTERM)
                    stop_at = now + TERM_GRACE
                elif exited:
                    stop_at = now + LEFTOVER_GRACE
                    exited_first()
            if (exited and not reading) or (stop_at is not None and now >= stop_at):
                break
            wait = min(max((stop_at or deadline) - now, 0.0), 0.1)
            if not reading:
                # The output ended first: the shell's exit is only a moment away, and a
                # long sleep here would add to every check's time.
                time.sleep(min(wait, 0.005))
            elif selector.select(wait):
                chunk = os.read(pipe, _CHUNK)
                if not chunk:
                    reading = False
                    selector.unregister(pipe)
                    continue
                tail += chunk
                if len(tail) > _KEEP:
                    del tail[:-_KEEP]
    return bytes(tail), timed_out


def run_check(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    started: Callable[[int], None] | None = None,
    *,
    confinement: Confinement | None = None,
    network: Network = "none",
) -> CheckResult:
    """Run ``command`` with /bin/sh in ``cwd``; kill its whole process group on timeout.

    With ``confinement`` it runs under bubblewrap (`autonoma.workflow.confine`): writes
    only in ``cwd`` and the caches, ``network`` "none" (the tests) or "registries" (a
    set-up, through the registry proxy, which runs until the command ends), and killing
    it (timeout, `kill_check`) kills every process it started. A machine that cannot
    confine gets a failed result whose output is one line saying why.

    ``started`` gets the process group id as soon as it runs, for whoever must be able
    to kill the check from another thread (`kill_check`). Blocks until the command ends
    or is killed. Raises ValueError for an empty command, OSError if it cannot start.
    """
    if not command.strip():
        raise ValueError("the check command is empty")
    if confinement is None:
        return _run(["/bin/sh", "-c", command], cwd, env, timeout, started, namespace=True)
    why_not = confinement.unavailable(network)
    if why_not is not None:
        output = f"autonoma: {why_not}"
        return CheckResult(passed=False, exit_code=None, timed_out=False, output=output)
    with confinement.argv(command, cwd, env, network) as (argv, refused):
        # bwrap makes the PID namespace itself (--unshare-pid --die-with-parent).
        result = _run(argv, cwd, env, timeout, started, namespace=False)
        if not refused:
            return result
        # Said once, after the command's own words (pip's and npm's are obscure).
        names = ", ".join(dict.fromkeys(refused))
        note = f"\nautonoma: the set-up may reach only the package registries; refused: {names}"
        return dataclasses.replace(result, output=(result.output + note)[-OUTPUT_TAIL:])


def _run(
    argv: list[str],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    started: Callable[[int], None] | None,
    *,
    namespace: bool,
) -> CheckResult:
    # Unconfined, the shell runs in a PID namespace of its own (whose pid 1 reaps what the
    # command orphans): when the shell ends or dies with Autonoma, the namespace ends and
    # the kernel kills everything the command started.
    setup = die_with_parent(signal.SIGKILL)  # before: nothing else may fork in the block
    with own_pid_namespace() if namespace else contextlib.nullcontext(None) as space:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=setup,
        )
        if space is not None:
            claim(process.pid)
    assert process.stdout is not None
    if started is not None:
        started(process.pid)
    try:
        ended = space.end if space is not None else (lambda: None)
        tail, timed_out = _watch(process, process.stdout.fileno(), timeout, ended)
    finally:
        # Whatever is left of the group (a server the tests started, a child that ignored
        # SIGTERM) goes with the check, so nothing outlives it. Confined, the group is
        # bwrap itself: its death ends the sandbox's PID namespace, setsid'd children too.
        _signal_group(process.pid, signal.SIGKILL)
        if space is not None:
            space.end()
        process.stdout.close()
        returncode = process.wait()
        release(process.pid)
        if space is not None:
            space.reap()  # after the shell: the kernel keeps pid 1 until then
    output = tail.decode("utf-8", errors="replace")[-OUTPUT_TAIL:]
    if timed_out:
        note = f"\nautonoma: the check timed out after {timeout:g}s; its processes were killed"
        output = (output + note)[-OUTPUT_TAIL:]
        return CheckResult(passed=False, exit_code=None, timed_out=True, output=output)
    return CheckResult(passed=returncode == 0, exit_code=returncode, timed_out=False, output=output)


def kill_check(group: int) -> None:
    """SIGKILL a running check's whole process group (from another thread)."""
    _signal_group(group, signal.SIGKILL)
