"""`autonoma status`, `logs` and `replay` read what a run journaled, from another process."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autonoma import protocol as p
from autonoma.hints import command as hint_command
from autonoma.journal.writer import Journal
from autonoma.runtime.bus import Bus
from tests.conftest import run_autonoma
from tests.test_run_lock import hold_run_lock


def publish_run(db: Path) -> None:
    """A small run as the workflow would journal it."""
    client = Journal.open(db)
    bus = Bus(run_id="run-1")
    bus.attach(client)
    say = bus.publish
    say("orchestrator", p.RunStarted(requirements="requirements.md", project="/p", max_workers=2))
    say("orchestrator", p.PhaseChanged(phase="planning"))
    say("orchestrator", p.TaskDefined(task_id="t1", title="Parse arguments"))
    say("orchestrator", p.TaskDefined(task_id="t2", title="Store todos", deps=["t1"]))
    say("orchestrator", p.PhaseChanged(phase="development"))
    say("orchestrator", p.TaskStateChanged(task_id="t1", state="running", attempt=1))
    say("crew", p.ActorStarted(name="developer-1", supervisor="crew", urn="u1"))
    say(
        "developer-1",
        p.AgentStateChanged(
            agent_id="developer-1", role="developer", state="working", task_id="t1"
        ),
    )
    say(
        "developer-1",
        p.AgentToolUse(
            agent_id="developer-1",
            tool_use_id="tu1",
            tool="Write",
            input={"file_path": "todo/cli.py"},
        ),
    )
    say(
        "developer-1",
        p.CostReported(
            agent_id="developer-1", task_id="t1", usd=0.25, input_tokens=1000, output_tokens=200
        ),
    )
    say(
        "crew",
        p.ActorCrashed(
            name="developer-1",
            supervisor="crew",
            error_type="RuntimeError",
            error_text="pty closed",
        ),
    )
    say("crew", p.ActorStarted(name="developer-1", supervisor="crew", urn="u2", restart=True))
    say("orchestrator", p.TaskStateChanged(task_id="t1", state="merged", attempt=1))
    say(
        "orchestrator",
        p.TaskStateChanged(
            task_id="t2", state="escalated", reason="tests fail after 3 retries", attempt=4
        ),
    )
    say(
        "orchestrator",
        p.Escalation(source="orchestrator", reason="t2: tests fail after 3 retries", task_id="t2"),
        durable=True,
    )
    client.stop()


@pytest.fixture
def project(git_repo: Path, clean_env: dict[str, str]) -> Path:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    return git_repo


def test_status_on_an_empty_journal(project: Path, clean_env: dict[str, str]) -> None:
    result = run_autonoma("status", cwd=project, env=clean_env)
    assert result.returncode == 0, result.stderr
    assert "no run has started" in result.stdout
    as_json = json.loads(run_autonoma("status", "--json", cwd=project, env=clean_env).stdout)
    assert as_json["last_seq"] == 0 and as_json["tasks"] == {}
    assert run_autonoma("logs", cwd=project, env=clean_env).stdout == ""
    assert run_autonoma("replay", cwd=project, env=clean_env).returncode == 0


def test_status_shows_the_run(project: Path, clean_env: dict[str, str]) -> None:
    publish_run(project / ".autonoma" / "state.db")
    with hold_run_lock(project):  # its process goes on
        result = run_autonoma("status", cwd=project, env=clean_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Run run-1: running, phase development" in out
    assert "Tasks: 1 escalated, 1 merged" in out
    assert "t2" in out and "tests fail after 3 retries" in out
    assert "developer-1" in out and "Write todo/cli.py" in out  # as the live log says it
    assert "ESCALATION [t2] from orchestrator: t2: tests fail after 3 retries" in out
    assert " developer-1 crashed: RuntimeError: pty closed" in out  # as the live log says it
    assert "$0.2500" in out

    state = json.loads(run_autonoma("status", "--json", cwd=project, env=clean_env).stdout)
    assert state["current_run"] == "run-1"
    assert state["tasks"]["t1"]["state"] == "merged"
    assert state["tasks"]["t1"]["usage"]["usd"] == 0.25
    assert state["agents"]["developer-1"]["restarts"] == 1
    assert state["escalations"][0]["task_id"] == "t2"
    assert state["usage"]["input_tokens"] == 1000


def test_a_run_whose_process_was_killed_is_interrupted(
    project: Path, clean_env: dict[str, str]
) -> None:
    # A SIGKILLed run journals nothing of its end: only the lock it held says it is gone.
    publish_run(project / ".autonoma" / "state.db")
    with hold_run_lock(project) as holder:
        running = run_autonoma("status", "--json", cwd=project, env=clean_env)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        result = run_autonoma("status", cwd=project, env=clean_env)
        as_json = json.loads(run_autonoma("status", "--json", cwd=project, env=clean_env).stdout)
    assert json.loads(running.stdout)["runs"]["run-1"]["interrupted"] is False
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Run run-1: interrupted, phase development")
    assert "process:" not in result.stdout  # no pid of a process that is gone
    assert any(line.startswith("  resume it (in /p): ") for line in lines)
    run = as_json["runs"]["run-1"]
    assert run["interrupted"] is True and run["outcome"] is None


def test_logs_filters_and_limits(project: Path, clean_env: dict[str, str]) -> None:
    publish_run(project / ".autonoma" / "state.db")
    everything = run_autonoma(
        "logs", "--limit", "100", cwd=project, env=clean_env
    ).stdout.splitlines()
    assert len(everything) == 15
    assert everything[0].split()[0] == "1" and "RunStarted" in everything[0]

    last_two = run_autonoma("logs", "--limit", "2", cwd=project, env=clean_env).stdout.splitlines()
    assert last_two == everything[-2:]

    agent = run_autonoma("logs", "--agent", "developer-1", cwd=project, env=clean_env).stdout
    lines = agent.splitlines()
    assert len(lines) == 3
    assert all("developer-1" in line for line in lines)
    assert "Write" in lines[1] and "todo/cli.py" in lines[1]

    rows = [
        json.loads(line)
        for line in run_autonoma("logs", "--json", cwd=project, env=clean_env).stdout.splitlines()
    ]
    assert [row["seq"] for row in rows] == list(range(1, 16))
    assert rows[0]["message"]["type"] == "RunStarted"
    assert rows[0]["run_id"] == "run-1" and rows[0]["time"].endswith("+00:00")


def test_replay_rebuilds_a_past_moment(project: Path, clean_env: dict[str, str]) -> None:
    publish_run(project / ".autonoma" / "state.db")
    early = json.loads(
        run_autonoma("replay", "--at", "3", "--json", cwd=project, env=clean_env).stdout
    )
    assert early["runs"]["run-1"]["phase"] == "planning"
    assert list(early["tasks"]) == ["t1"]
    assert early["last_seq"] == 3
    text = run_autonoma("replay", "--at", "6", cwd=project, env=clean_env).stdout
    assert "phase development" in text and "1 running" in text
    run = json.loads(
        run_autonoma("replay", "--run", "run-1", "--json", cwd=project, env=clean_env).stdout
    )
    assert run["tasks"]["t2"]["state"] == "escalated"


def test_replay_refuses_what_is_not_there(project: Path, clean_env: dict[str, str]) -> None:
    publish_run(project / ".autonoma" / "state.db")
    beyond = run_autonoma("replay", "--at", "99", cwd=project, env=clean_env)
    assert beyond.returncode == 2
    assert beyond.stderr == "autonoma: --at 99: the journal ends at seq 15\n"
    nope = run_autonoma("replay", "--run", "nope", cwd=project, env=clean_env)
    assert nope.returncode == 2
    assert nope.stderr.startswith("autonoma: --run nope: no such run")


def test_a_file_that_is_not_a_journal_is_one_line(project: Path, clean_env: dict[str, str]) -> None:
    db = project / ".autonoma" / "state.db"
    db.unlink()
    db.write_text("this is not a database, it is a poem\n" * 200)
    for command in ("status", "logs", "replay"):
        result = run_autonoma(command, cwd=project, env=clean_env)
        assert result.returncode == 1, command
        assert result.stderr.startswith(f"autonoma: {db}")
        assert result.stderr.count("\n") == 1
    assert db.read_text().startswith("this is not a database")  # nothing lost


def read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if selector.select(timeout=max(0.0, deadline - time.monotonic())):
            return process.stdout.readline()
    raise AssertionError("no line before the deadline")


def test_logs_follow_sees_new_messages_within_a_fraction_of_a_second(
    project: Path, clean_env: dict[str, str]
) -> None:
    db = project / ".autonoma" / "state.db"
    publish_run(db)
    follow = subprocess.Popen(
        [sys.executable, "-m", "autonoma", "logs", "--follow", "--limit", "1"],
        cwd=project,
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = read_line(follow, time.monotonic() + 20)
        assert "Escalation" in first  # the last message already there
        client = Journal.open(db)
        bus = Bus(run_id="run-1")
        bus.attach(client)
        for phase in ("review", "merging"):
            bus.publish("orchestrator", p.PhaseChanged(phase=phase), durable=True, timeout=5)
            committed = time.monotonic()
            line = read_line(follow, committed + 2)
            seen = time.monotonic() - committed
            assert "PhaseChanged" in line and phase in line
            assert seen < 1.0, f"took {seen:.2f}s"
        client.stop()
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=10)
        assert follow.returncode == 0
        assert "Traceback" not in err
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert os.path.exists(db)


def publish_busy_run(db: Path) -> None:
    """A run in development: a plan, work in flight, the governor holding, a budget, a pause."""
    t0 = 1_700_000_000.0  # 22:13:20 UTC
    clock = iter(t0 + n for n in range(100))
    client = Journal.open(db)
    bus = Bus(run_id="run-2", clock=lambda: next(clock))
    bus.attach(client)
    say = bus.publish
    say("orchestrator", p.RunStarted(requirements="todo.md", project="/p", max_workers=3))
    say("orchestrator", p.PhaseChanged(phase="development"))
    plan = {
        "summary": "A todo CLI backed by a JSON file",
        "milestones": [{"id": "m1"}, {"id": "m2"}],
    }
    say("orchestrator", p.PlanWritten(plan=plan, path=".autonoma/plan.json"))
    for task, title in (("t1", "Parse arguments"), ("t2", "Store todos"), ("t3", "Report")):
        say("orchestrator", p.TaskDefined(task_id=task, title=title))
    say("orchestrator", p.TaskStateChanged(task_id="t1", state="running", attempt=2))
    say(
        "developer-1",
        p.AgentStateChanged(
            agent_id="developer-1", role="developer", state="working", task_id="t1"
        ),
    )
    say(
        "developer-1",
        p.AgentToolUse(
            agent_id="developer-1",
            tool_use_id="tu1",
            tool="Bash",
            input={"command": "python3 -m unittest"},
            task_id="t1",
        ),
    )
    say(
        "developer-1",
        p.CostReported(
            agent_id="developer-1", task_id="t1", usd=1.5, input_tokens=10, output_tokens=5
        ),
    )
    say(
        "developer-2",
        p.AgentStateChanged(
            agent_id="developer-2",
            role="developer",
            state="dead",
            task_id="t2",
            detail="claude exited with signal 9",
        ),
    )
    long_reason = "QA: " + "the store loses todos on concurrent writes " * 10
    for attempt in (1, 2):
        say("orchestrator", p.TaskStateChanged(task_id="t2", state="running", attempt=attempt))
        say(
            "orchestrator",
            p.TaskStateChanged(task_id="t2", state="failed", attempt=attempt, reason=long_reason),
        )
    say(
        "orchestrator",
        p.TaskStateChanged(task_id="t2", state="escalated", attempt=2, reason="2 attempts failed"),
    )
    say("human", p.RetryRequested(task_id="t2", note="use sqlite"))
    say("governor", p.SpawnsHeld(until=t0 + 100, delay=80.0, reason="API 429 seen by developer-1"))
    say("governor", p.BudgetReached(scope="run", limit_usd=1.0, spent_usd=1.5))
    say("human", p.PauseRequested(origin="user alice (uid 1000)"))
    say("root", p.WorkPaused(reason="the crew supervisor gave up"))
    say("human", p.StopRequested(origin="user bob (uid 1001)"), durable=True)
    client.stop()


def test_status_shows_what_a_user_needs(project: Path, clean_env: dict[str, str]) -> None:
    publish_busy_run(project / ".autonoma" / "state.db")
    with hold_run_lock(project):  # its process goes on
        result = run_autonoma("status", cwd=project, env=clean_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Run run-2: running, phase development, started ")
    assert "Plan: A todo CLI backed by a JSON file (2 milestones)" in lines
    # A human's pause and the root's, each with why; who asked for the stop under way.
    assert (
        "PAUSED: paused by user alice (uid 1000); the crew supervisor gave up "
        f"(no new turn starts: `{hint_command('resume')}` resumes)"
    ) in lines
    assert (
        "STOPPING (asked by user bob (uid 1001)): nothing new starts; the run ends once the "
        "merge under way is done"
    ) in lines
    assert "Governor: spawns held until 22:15:00: API 429 seen by developer-1" in lines
    assert "BUDGET: run budget $1.00 reached ($1.50 spent): no new work starts" in lines
    assert "Tasks: 1 escalated, 1 running, 1 pending" in lines
    # Grouped, what needs a human first; each line: id, state, attempts, agent, cost, title.
    escalated = lines.index("  escalated (1):")
    running = lines.index("  running (1):")
    pending = lines.index("  pending (1):")
    assert escalated < running < pending
    assert lines[running + 1].split() == [
        "t1", "running", "attempt", "2", "developer-1", "$1.50", "Parse", "arguments",
    ]  # fmt: skip
    assert lines[pending + 1].split() == ["t3", "pending", "-", "-", "-", "Report"]
    t2 = lines[escalated + 1].split()
    assert t2[:5] == ["t2", "escalated", "attempt", "2", "developer-2"]
    assert lines[escalated + 1].endswith("Store todos: 2 attempts failed")
    # Its history, latest last, long reasons cut; then the human's note and request.
    history = lines[escalated + 2 : running]
    assert history[0] == "      history (latest last):"
    # Each event in the words of its TaskStateChanged: "#seq hh:mm:ss t2 → state ...".
    states = [line.split()[4] for line in history[1:6]]
    assert states == ["running", "failed", "running", "failed", "escalated"]
    assert history[2].endswith("…") and len(history[2]) < 250
    assert history[6:] == [
        "      note: use sqlite",
        "      retry requested: the run has not acted on it yet",
    ]
    agents = lines.index("Agents:")
    assert lines[agents + 1].split()[:5] == [
        "developer-1", "working", "[t1]", "$1.50", "Bash:",
    ]  # fmt: skip
    assert lines[agents + 2].split()[:3] == ["developer-2", "dead", "[t2]"]
    assert "(claude exited with signal 9)" in lines[agents + 2]
    assert any(line.startswith("Cost: $1.50, 15 tokens") for line in lines)


def test_status_after_the_hold_has_passed(project: Path, clean_env: dict[str, str]) -> None:
    db = project / ".autonoma" / "state.db"
    client = Journal.open(db)
    bus = Bus(run_id="run-3")
    bus.attach(client)
    bus.publish("o", p.RunStarted(requirements="r.md", project="/p", max_workers=1))
    bus.publish("g", p.SpawnsHeld(until=time.time() - 5, delay=1.0, reason="API 529"))
    bus.publish("o", p.PlanWritten(plan={"milestones": []}), durable=True)
    client.stop()
    out = run_autonoma("status", cwd=project, env=clean_env).stdout
    assert "held" not in out and "Plan:" not in out and "BUDGET" not in out
    assert "PAUSED" not in out


@pytest.mark.parametrize(
    ("started", "shown"),
    [
        (p.RunStarted(requirements="r.md", project="/p", max_workers=1, sandbox=True), "on"),
        # A journal from before the field: the sandbox was off by default then.
        (p.RunStarted(requirements="r.md", project="/p", max_workers=1), "OFF"),
    ],
)
def test_status_says_whether_agents_ran_in_the_sandbox(
    started: p.RunStarted, shown: str, project: Path, clean_env: dict[str, str]
) -> None:
    client = Journal.open(project / ".autonoma" / "state.db")
    bus = Bus(run_id="run-4")
    bus.attach(client)
    bus.publish("orchestrator", started, durable=True)
    client.stop()
    out = run_autonoma("status", cwd=project, env=clean_env).stdout
    assert f"  sandbox: {shown} " in out
    as_json = json.loads(run_autonoma("status", "--json", cwd=project, env=clean_env).stdout)
    assert json.dumps(as_json).count(f'"sandbox": {str(shown == "on").lower()}') == 1
