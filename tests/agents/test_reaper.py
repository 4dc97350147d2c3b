"""What a child starts dies with its owner (`process.own_pid_namespace`), and what an
earlier run left in the project's folders is found and killed (`process.kill_leftovers`).

Real processes: a Python owner spawns a shell whose command leaves a ``setsid``,
double-forked ``sleep`` (marked in its environment), the owner is SIGKILLed, and /proc is
searched for the marker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autonoma.agents import process

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace needs root here")

OWNER = """
import signal, subprocess, sys, time
from autonoma.agents import process
mark, namespace = sys.argv[1], sys.argv[2] == "1"
command = (
    "(setsid sh -c '(REAPER_MARK=%s nohup sleep 300 >/dev/null 2>&1 &)' &);"
    " REAPER_MARK=%s sleep 300" % (mark, mark)
)
setup = process.die_with_parent(signal.SIGKILL)
with process.own_pid_namespace() if namespace else open("/dev/null"):
    subprocess.Popen(["/bin/sh", "-c", command], start_new_session=True, preexec_fn=setup)
print("spawned", flush=True)
time.sleep(300)
"""


def marked(mark: str) -> list[int]:
    needle = f"REAPER_MARK={mark}".encode()
    found = []
    for entry in process.processes():
        try:
            with open(f"/proc/{entry.pid}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0") and entry.alive:
                    found.append(entry.pid)
        except OSError:
            continue
    return found


@pytest.fixture(autouse=True)
def _reap_what_the_test_orphaned() -> Iterator[None]:
    """The processes these tests kill on purpose may be reparented to this one (a child
    subreaper once a port ran here) and left as zombies: reap the new ones after each
    test, so that the later no-zombie checks (tests/agents/test_sandbox.py) see only theirs."""
    me = os.getpid()
    before = {e.pid for e in process.processes() if e.ppid == me}
    yield
    for entry in process.processes():
        if entry.ppid == me and not entry.alive and entry.pid not in before:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(entry.pid, os.WNOHANG)


def wait(condition: object, timeout: float) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())


@pytest.mark.parametrize(("namespace", "survivors"), [(True, False), (False, True)])
def test_a_double_forked_setsid_child_dies_with_its_sigkilled_owner_only_in_a_namespace(
    namespace: bool, survivors: bool
) -> None:
    """Without the namespace (the fault) the grandchild survives: the check can see it."""
    mark = uuid.uuid4().hex
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, mark, "1" if namespace else "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "spawned\n"
        assert wait(lambda: len(marked(mark)) == 2, 10)
        owner.kill()
        owner.wait()
        assert wait(lambda: not marked(mark), 3) is not survivors
    finally:
        owner.kill()
        owner.wait()
        for pid in marked(mark):
            os.kill(pid, signal.SIGKILL)


def test_the_namespace_is_only_for_the_children_forked_in_the_block() -> None:
    with process.own_pid_namespace() as space:
        child = subprocess.Popen(["sleep", "5"])
    other = subprocess.Popen(["sleep", "5"])
    try:
        assert space is not None
        assert process.in_own_namespace(child.pid)
        assert not process.in_own_namespace(other.pid)
        assert _namespace_of(child.pid) == _namespace_of(space.pid) != _namespace_of(other.pid)
        space.end()  # its end kills every process of the namespace
        assert child.wait(5) == -signal.SIGKILL
        assert other.poll() is None
    finally:
        for proc in (child, other):
            proc.kill()
            proc.wait()
        if space is not None:
            space.reap()


def _namespace_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/pid")


def lingering_zombies(pid: int, samples: list[dict[int, int]]) -> set[int]:
    """Add to ``samples`` the zombies (pid: start time) whose parent is in the PID
    namespace of ``pid``; those in every sample since the first are returned."""
    space = _namespace_of(pid)
    now: dict[int, int] = {}
    for entry in process.processes():
        if entry.alive:
            continue
        with contextlib.suppress(OSError):
            if _namespace_of(entry.ppid) == space:
                now[entry.pid] = entry.start
    samples.append(now)
    return {z for z, start in samples[0].items() if all(s.get(z) == start for s in samples)}


# The child is pid 2 of its namespace; its pid 1 reaps. A Python child does not reap
# children it did not start: as pid 1 (before) it kept the zombie of every orphan.
ORPHANS = """
import os, subprocess, sys, time
for _ in range(3):
    subprocess.run(["sh", "-c", "(setsid sleep 0.05 &)"])
print("orphaned", flush=True)
time.sleep(30)
"""


def test_orphans_of_a_port_in_its_own_namespace_are_reaped_while_it_runs(
    tmp_path: Path,
) -> None:
    """Orphans (a setsid background job of a shell that exited) end as zombies of the
    namespace's pid 1: reaped at once, not kept until the port's child ends."""
    from autonoma.agents.port import Port

    lines: list[bytes] = []
    port = Port(
        [sys.executable, "-c", ORPHANS],
        tmp_path,
        dict(os.environ),
        on_line=lines.append,
        on_exit=lambda *_: None,
        own_namespace=True,
    )
    pid = port.start()
    try:
        assert wait(lambda: lines == [b"orphaned"], 10)
        assert process.in_own_namespace(pid)
        time.sleep(0.3)  # the sleeps have ended
        samples: list[dict[int, int]] = []
        lingering_zombies(pid, samples)
        time.sleep(1.0)
        assert lingering_zombies(pid, samples) == set(), samples
        assert port.result is None  # still running
    finally:
        port.kill()
        result = port.wait(10)
    assert result is not None and result.signal == signal.SIGKILL


def test_leftovers_are_the_processes_working_in_the_projects_agent_folders(
    tmp_path: Path,
) -> None:
    autonoma = tmp_path / ".autonoma"
    clone = autonoma / "clones" / "r1" / "t1"
    clone.mkdir(parents=True)
    (autonoma / "tmp" / "r1").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": os.environ["PATH"]}
    in_clone = subprocess.Popen(["sleep", "300"], cwd=clone, start_new_session=True, env=env)
    by_env = subprocess.Popen(
        ["sleep", "301"],
        cwd=elsewhere,
        env={**env, "TMPDIR": str(autonoma / "tmp" / "r1")},
        start_new_session=True,
    )
    unrelated = subprocess.Popen(["sleep", "302"], cwd=elsewhere, env=env)
    try:
        found = {x.pid: x for x in process.leftovers(autonoma)}
        assert set(found) == {in_clone.pid, by_env.pid}
        assert found[in_clone.pid].command == "sleep 300"
        assert found[in_clone.pid].where == str(clone.resolve())
        assert found[by_env.pid].where == f"TMPDIR={autonoma / 'tmp' / 'r1'}"
        killed = process.kill_leftovers(autonoma)
        assert {x.pid for x in killed} == {in_clone.pid, by_env.pid}
        assert in_clone.wait(2) == by_env.wait(2) == -signal.SIGKILL
        assert unrelated.poll() is None
        assert process.kill_leftovers(autonoma) == []
    finally:
        for proc in (in_clone, by_env, unrelated):
            proc.kill()
            proc.wait()


def test_a_port_in_its_own_namespace_stops_its_child_and_everything_it_started(
    tmp_path: Path,
) -> None:
    """A turn's child (pid 1 of its namespace) handles SIGTERM as claude does; the
    setsid, double-forked grandchild goes with it, though no group or session holds it."""
    from autonoma.agents.port import Port

    mark = uuid.uuid4().hex
    script = (
        f"trap 'exit 3' TERM; (setsid sh -c '(REAPER_MARK={mark} sleep 300 &)' &);"
        " echo ready; while :; do sleep 0.05; done"
    )
    lines: list[bytes] = []
    port = Port(
        ["bash", "-c", script],
        tmp_path,
        dict(os.environ),
        on_line=lines.append,
        on_exit=lambda *_: None,
        own_namespace=True,
        grace=30,
    )
    pid = port.start()
    try:
        assert wait(lambda: len(marked(mark)) == 1 and lines == [b"ready"], 10)
        assert process.in_own_namespace(pid)
        port.stop()
        result = port.wait(10)
        assert result is not None and (result.exit_code, result.signal) == (3, None)
        assert wait(lambda: not marked(mark), 3)
    finally:
        port.kill()
        for left in marked(mark):
            os.kill(left, signal.SIGKILL)


def test_a_process_with_a_terminal_in_a_clone_is_a_persons_and_is_spared(tmp_path: Path) -> None:
    autonoma = tmp_path / ".autonoma"
    clone = autonoma / "clones" / "r1" / "t1"
    clone.mkdir(parents=True)
    # `script` gives its shell a terminal of its own, as a person's shell has.
    person = subprocess.Popen(
        ["script", "-qc", "sleep 300", "/dev/null"],
        cwd=clone,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    shell: list[int] = []
    try:
        assert wait(lambda: any(e.tty != 0 for e in process.processes() if e.ppid == person.pid), 5)
        found = process.leftovers(autonoma)
        assert person.pid in {x.pid for x in found}  # `script` itself has no terminal
        shell[:] = [e.pid for e in process.processes() if e.ppid == person.pid]
        assert not set(shell) & {x.pid for x in found}
    finally:
        person.kill()
        person.wait()
        for pid in shell:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


TURN = """
usage = { input_tokens = 10, output_tokens = 2 }
[[rule]]
name = "orphans"
prompt_contains = "go"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "(setsid sleep 0.05 &); echo one", description = "an orphan" }
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "echo two", description = "another call" }
[[rule.step]]
latency = 4
text = "Done."
"""


@pytest.mark.timeout(90)
@pytest.mark.usefixtures("needs_bwrap")
@pytest.mark.parametrize("sandbox", [True, False])
def test_a_turns_bash_calls_leave_no_zombie_in_its_namespace_while_it_runs(
    sandbox: bool, git_repo: Path, tmp_path: Path
) -> None:
    """The real claude's Bash tool orphans a background job (and, sandboxed, each call's
    inner bwrap): while the turn still runs (the model's next answer takes 4 s), no zombie
    of claude's PID namespace lingers. Before, claude was its pid 1 and reaped none."""
    import dataclasses

    from autonoma.agents.environment import child_env
    from autonoma.agents.executable import LOCAL_INSTALL
    from autonoma.agents.roles import load_role
    from autonoma.agents.turn import Turn
    from autonoma.config import Settings
    from autonoma.protocol import AgentToolResult
    from autonoma.runtime.bus import Bus
    from autonoma.sim import SimServer, loads_scenario

    home = tmp_path / "home"
    home.mkdir()
    seen: list[object] = []
    with SimServer(loads_scenario(TURN)) as sim:
        bus = Bus(run_id="test")
        bus.subscribe(lambda envelope: seen.append(envelope.message))
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
            claude=LOCAL_INSTALL / "claude",
            task_id="t1",
        )
        pid = turn.start()
        results = lambda: [m for m in seen if isinstance(m, AgentToolResult)]  # noqa: E731
        assert wait(lambda: len(results()) == 2, 40), seen
        time.sleep(0.5)  # the orphan's sleep has ended
        samples: list[dict[int, int]] = []
        lingering_zombies(pid, samples)
        time.sleep(1.0)
        lingering = lingering_zombies(pid, samples)
        running = turn.port.result is None
        outcome = turn.wait(30)
    assert running
    assert lingering == set(), samples
    assert [r.content.strip() for r in results()] == ["one", "two"]
    assert outcome is not None and outcome.exit_code == 0 and not outcome.failed
