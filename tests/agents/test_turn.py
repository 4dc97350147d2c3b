"""A `Turn` with the real ``claude`` binary against the sim: journal, kill and resume, timeout."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from autonoma.agents import process
from autonoma.agents.auth import NOT_AUTHENTICATED, AuthError, check_auth
from autonoma.agents.environment import SIM_API_KEY, child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.port import CLAUDE_NOT_FOUND, PortError
from autonoma.agents.roles import Role, load_role
from autonoma.agents.turn import Turn
from autonoma.config import Settings
from autonoma.journal import reader
from autonoma.journal.fold import State, apply
from autonoma.journal.writer import Journal
from autonoma.protocol import (
    AgentApiRetry,
    AgentProcessExited,
    AgentProcessStarted,
    AgentPromptGiven,
    AgentSessionStarted,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
    CostReported,
    Envelope,
    Message,
)
from autonoma.runtime.bus import Bus
from autonoma.sim import SimServer, loads_scenario
from autonoma.workflow.governor import Governor

CLAUDE = LOCAL_INSTALL / "claude"  # installed by make test

pytestmark = [pytest.mark.timeout(60)]

HOSTILE = {
    "ANTHROPIC_API_KEY": "sk-ant-hostile-key",
    "ANTHROPIC_AUTH_TOKEN": "hostile-token",
    "ANTHROPIC_BASE_URL": "http://hostile.invalid",
    "ANTHROPIC_MODEL": "hostile-model",
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "CLAUDE_CONFIG_DIR": "/hostile-config",
}

SCENARIO = """
usage = { input_tokens = 1000, output_tokens = 20 }

[[rule]]
name = "write"
task = "write"
[[rule.step]]
text = "Creating it."
[[rule.step.tool]]
name = "Write"
input = { file_path = "{cwd}/hello.txt", content = "hi from the sim\\n" }
[[rule.step.tool]]
name = "Bash"
input = { command = "cat hello.txt", description = "check" }
[[rule.step]]
text = "Done."

# A resumed session keeps the system prompt of its first turn (TASK: first), so the
# follow-up turns are told apart by the model turn: the stalled stream is answered
# once, the turn after it gets the text. Whether the killed turn's partial answer
# (its message_start) was saved in the session depends on timing: the turn after
# it is model turn 2 or 3.
[[rule]]
name = "resumed"
task = "first"
turn = 2
[[rule.step]]
fault = "stall"
times = 1
text = "Here again."

[[rule]]
name = "resumed later"
task = "first"
turn = 3
[[rule.step]]
text = "Here again."

[[rule]]
name = "first"
task = "first"
[[rule.step]]
text = "Remembered."

[[rule]]
name = "verdict"
task = "verdict"
[[rule.step]]
[[rule.step.tool]]
name = "StructuredOutput"
[rule.step.tool.input]
verdict = "changes_requested"
reasons = ["no test for an empty list"]
test_command = "pytest -q"
test_output_summary = "3 passed"

[[rule]]
name = "busy model"
task = "turns"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "echo one", description = "one" }
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "echo two", description = "two" }

[[rule]]
name = "limited"
task = "limited"
[[rule.step]]
fault = "429"
retry_after = 0

# One call per turn at a fixed usage: every turn of the session costs the same.
[[rule]]
name = "costly"
task = "cost"
[[rule.step]]
text = "Counted."
usage = { input_tokens = 100000, output_tokens = 1000 }

# A tool that runs longer than the idle limit, silently (a test suite, an install).
[[rule]]
name = "slow tool"
task = "slow"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "sleep 3 && echo built", description = "build" }
[[rule.step]]
text = "Built."

[[rule]]
name = "sleepy"
task = "sleepy"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "echo waiting; sleep 600", description = "wait" }
[[rule.step]]
text = "Woke up."
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(loads_scenario(SCENARIO)) as server:
        yield server


@pytest.fixture
def env(sim: SimServer, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return child_env({**os.environ, **HOSTILE}, sim_url=sim.url, config_dir=home)


class Run:
    """A bus with a journal in ``tmp_path``; `messages` reads it back once stopped."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "state.db"
        self.client = Journal.open(self.db, batch_ms=1)
        self.bus = Bus(run_id="test")
        self.bus.attach(self.client)
        self.sessions = threading.Event()
        self.bus.subscribe(
            lambda e: self.sessions.set() if isinstance(e.message, AgentSessionStarted) else None
        )

    def messages(self) -> list[Message]:
        self.client.stop()
        return [e.message for e in reader.read(self.db)]


def make_turn(
    run: Run,
    git_repo: Path,
    env: dict[str, str],
    task: str,
    session: str,
    *,
    resume: bool = False,
    settings: Settings | None = None,
    role: Role | None = None,
    budget_usd: float | None = None,
    session_usd: float = 0.0,
    ahead: bool = False,
    tmpdir: Path | None = None,
) -> Turn:
    return Turn(
        run.bus,
        agent_id="dev-1",
        # Without the developer's --json-schema: these tests are about the turn itself,
        # and each answer of the sim's would be asked again by claude's nudge.
        role=role or dataclasses.replace(load_role("developer"), schema=None),
        prompt=None if ahead else f"Do task {task}",
        session_id=session,
        resume=resume,
        cwd=git_repo,
        settings=settings or Settings(),
        env=env,
        claude=CLAUDE,
        task_id=task,
        transcript=git_repo.parent / f"{task}.jsonl",
        budget_usd=budget_usd,
        session_usd=session_usd,
        tmpdir=tmpdir,
    )


def test_auth_against_the_sim_passes(env: dict[str, str]) -> None:
    check_auth(CLAUDE, env)


def test_auth_without_a_key_fails(tmp_path: Path) -> None:
    bare = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": str(tmp_path / ".claude"),
    }
    with pytest.raises(AuthError) as err:
        check_auth(CLAUDE, bare)
    assert str(err.value) == NOT_AUTHENTICATED


def test_auth_without_claude(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(AuthError) as err:
        check_auth(tmp_path / "missing" / "claude", env)
    assert str(err.value) == CLAUDE_NOT_FOUND


def test_turn_writes_runs_bash_and_is_journaled(
    sim: SimServer, git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    run = Run(tmp_path)
    session = str(uuid.uuid4())
    turn = make_turn(run, git_repo, env, "write", session)
    turn.start()
    outcome = turn.wait(40)
    assert outcome is not None
    assert outcome.exit_code == 0 and not outcome.failed and not outcome.timed_out
    assert outcome.finished is not None and outcome.finished.result == "Done."
    assert (git_repo / "hello.txt").read_text() == "hi from the sim\n"

    messages = run.messages()
    kinds = [type(m) for m in messages]
    assert kinds[:3] == [AgentTurnStarting, AgentProcessStarted, AgentSessionStarted]
    assert kinds[-3:] == [AgentTurnFinished, CostReported, AgentProcessExited], " ".join(
        type(m).__name__ for m in messages
    )
    starting, started, session_started = messages[:3]
    assert isinstance(starting, AgentTurnStarting) and starting.session_id == session
    assert isinstance(started, AgentProcessStarted) and started.pid > 0
    assert isinstance(session_started, AgentSessionStarted)
    assert session_started.session_id == session
    tools = [m.tool for m in messages if isinstance(m, AgentToolUse)]
    assert tools == ["Write", "Bash"]
    finished, cost, exited = messages[-3:]
    assert isinstance(finished, AgentTurnFinished) and finished.is_error is False
    assert isinstance(cost, CostReported) and cost.usd > 0
    assert isinstance(exited, AgentProcessExited) and exited.exit_code == 0
    assert (git_repo.parent / "write.jsonl").read_bytes().count(b'"type":"result"') == 1

    requests = [r for r in sim.messages_requests if r.session_id == session]
    assert len(requests) == 2
    for request in requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers.get("x-api-key") == SIM_API_KEY
        assert "authorization" not in headers
        seen = json.dumps(headers) + json.dumps(request.body)
        for value in HOSTILE.values():
            assert len(value) < 4 or value not in seen, value
        assert request.body["model"] != HOSTILE["ANTHROPIC_MODEL"]


def test_killed_turn_is_resumed_with_its_history(
    sim: SimServer, git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    run = Run(tmp_path)
    session = str(uuid.uuid4())
    first = make_turn(run, git_repo, env, "first", session)
    first.start()
    done = first.wait(30)
    assert done is not None and not done.failed

    run.sessions.clear()
    slow = make_turn(run, git_repo, env, "slow", session, resume=True)
    slow.start()
    assert run.sessions.wait(20), "the resumed turn did not start its session"

    def slow_request_arrived() -> bool:
        return any(r.fault == "stall" for r in sim.messages_requests if r.session_id == session)

    for _ in range(200):
        if slow_request_arrived():
            break
        time.sleep(0.05)
    assert slow_request_arrived(), [(r.rule, r.session_id, r.status) for r in sim.messages_requests]
    slow.kill()
    killed = slow.wait(15)
    assert killed is not None
    assert killed.signal == signal.SIGKILL and killed.finished is None and killed.failed

    again = make_turn(run, git_repo, env, "again", session, resume=True)
    again.start()
    resumed = again.wait(30)
    assert resumed is not None and not resumed.failed, resumed
    history = [
        (r.rule, r.step, r.fault, r.info.turn if r.info else None)
        for r in sim.messages_requests
        if r.session_id == session
    ]
    assert resumed.finished is not None and resumed.finished.result == "Here again.", history

    last = [r for r in sim.messages_requests if r.session_id == session][-1]
    assert last.rule in ("resumed", "resumed later") and last.fault is None
    sent = json.dumps(last.body["messages"])
    assert "Do task first" in sent and "Remembered." in sent
    exits = [m for m in run.messages() if isinstance(m, AgentProcessExited)]
    assert [e.signal for e in exits] == [None, signal.SIGKILL, None]


def _our_sleepers() -> list[int]:
    """The ``sleep 600`` processes (or shells running one) among this process's descendants."""
    entries = {e.pid: e for e in process.processes()}
    me = os.getpid()

    def ours(pid: int) -> bool:
        seen: set[int] = set()
        while pid in entries and pid not in seen and pid > 1:
            if entries[pid].ppid == me:
                return True
            seen.add(pid)
            pid = entries[pid].ppid
        return False

    found = []
    for pid, entry in entries.items():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"sleep 600" in cmdline and entry.alive and ours(pid):
            found.append(pid)
    return found


def test_timeout_stops_the_whole_tree(
    sim: SimServer, git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    run = Run(tmp_path)
    role = dataclasses.replace(load_role("developer"), timeout=None)
    settings = Settings(task_timeout=3.0)
    turn = make_turn(run, git_repo, env, "sleepy", str(uuid.uuid4()), settings=settings, role=role)
    pid = turn.start()
    deadline = time.monotonic() + 10
    while not _our_sleepers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _our_sleepers(), "the Bash tool's sleep 600 never ran"
    outcome = turn.wait(30)
    assert outcome is not None
    assert outcome.timed_out and outcome.failed and outcome.finished is None
    assert process.tree(pid) == []
    assert _our_sleepers() == []
    exited = [m for m in run.messages() if isinstance(m, AgentProcessExited)]
    assert len(exited) == 1 and exited[0].timed_out
    assert (exited[0].timeout, exited[0].timeout_s) == ("wall", 3.0)
    requests = [r for r in sim.messages_requests if r.rule == "sleepy"]
    assert [r.step for r in requests] == [0], "the Bash tool was running when the turn stopped"


def test_a_silent_tool_is_not_taken_for_a_stuck_turn(
    sim: SimServer, git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # claude prints nothing while its Bash tool runs: an idle limit shorter than the tool
    # must not stop the turn (the limit is then at least TOOL_QUIET_LIMIT).
    run = Run(tmp_path)
    role = dataclasses.replace(load_role("developer"), schema=None, idle_timeout=1.5)
    turn = make_turn(run, git_repo, env, "slow", str(uuid.uuid4()), role=role)
    turn.start()
    outcome = turn.wait(40)
    assert outcome is not None
    assert not outcome.timed_out and not outcome.failed, outcome
    assert outcome.finished is not None and outcome.finished.result == "Built."


def test_structured_answer_and_failures_read_from_is_error(
    sim: SimServer, tmp_path: Path, git_repo: Path, env: dict[str, str]
) -> None:
    run = Run(tmp_path)
    qa = load_role("qa")
    verdict = make_turn(run, git_repo, env, "verdict", str(uuid.uuid4()), role=qa)
    verdict.start()
    outcome = verdict.wait(30)
    assert outcome is not None and not outcome.failed
    assert outcome.finished is not None
    assert outcome.finished.structured_output == {
        "verdict": "changes_requested",
        "reasons": ["no test for an empty list"],
        "test_command": "pytest -q",
        "test_output_summary": "3 passed",
    }

    one_turn = dataclasses.replace(load_role("developer"), max_turns=1)
    turns = make_turn(run, git_repo, env, "turns", str(uuid.uuid4()), role=one_turn)
    turns.start()
    outcome = turns.wait(30)
    assert outcome is not None and outcome.failed and outcome.exit_code == 1
    assert outcome.finished is not None and outcome.finished.subtype == "error_max_turns"

    limited_env = {**env, "CLAUDE_CODE_MAX_RETRIES": "1"}
    limited = make_turn(run, git_repo, limited_env, "limited", str(uuid.uuid4()))
    limited.start()
    outcome = limited.wait(30)
    assert outcome is not None and outcome.failed
    assert outcome.finished is not None
    assert outcome.finished.api_error_status == 429
    messages = run.messages()
    retries = [m for m in messages if isinstance(m, AgentApiRetry) and m.task_id == "limited"]
    assert [(r.attempt, r.error_status) for r in retries] == [(1, 429)]


# --- true costs: a resumed session's running total is booked once ------------------------


class Costs:
    """The fold and the governor of a run, fed by its bus, as the orchestrator has them."""

    def __init__(self, run: Run, task_budget_usd: float = 0.0) -> None:
        self.state = State()
        self.lock = threading.Lock()
        run.bus.subscribe(self._apply)
        self.governor = Governor.start(run.bus, Settings(task_budget_usd=task_budget_usd))

    def _apply(self, envelope: Envelope) -> None:
        with self.lock:
            apply(self.state, envelope)

    def before(self, session: str) -> float:
        """What the orchestrator hands a resumed turn: the session's last running total."""
        with self.lock:
            return self.state.session_usd.get(session, 0.0)

    def left(self, task: str) -> float | None:
        """What the orchestrator passes as --max-budget-usd: the governor's permit."""
        time.sleep(0.2)  # the governor hears the last CostReported through its mailbox
        left: float | None = self.governor.proxy().permit(task).get(timeout=10).task_budget_left
        return left

    def stop(self) -> None:
        self.governor.stop()


def run_turns(
    run: Run, costs: Costs, git_repo: Path, env: dict[str, str], session: str, n: int, budget: bool
) -> list[Turn]:
    turns = []
    for i in range(n):
        turn = make_turn(
            run,
            git_repo,
            env,
            "cost",
            session,
            resume=i > 0,
            session_usd=costs.before(session) if i > 0 else 0.0,
            budget_usd=costs.left("cost") if budget else None,
        )
        turn.start()
        assert turn.wait(30) is not None
        turns.append(turn)
    return turns


def test_a_session_resumed_twice_is_booked_once(
    git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    run = Run(tmp_path)
    costs = Costs(run)
    session = str(uuid.uuid4())
    try:
        turns = run_turns(run, costs, git_repo, env, session, 3, budget=False)
    finally:
        costs.stop()
    totals = [t.outcome.finished.total_cost_usd for t in turns if t.outcome and t.outcome.finished]
    # claude reports the running total: three equal turns, three growing totals.
    assert len(totals) == 3 and totals[0] > 0
    assert totals == pytest.approx([totals[0], 2 * totals[0], 3 * totals[0]])
    reported = [m for m in run.messages() if isinstance(m, CostReported)]
    assert [c.usd for c in reported] == pytest.approx([totals[0]] * 3)
    assert sum(c.usd for c in reported) == pytest.approx(totals[-1])
    assert [c.session_usd for c in reported] == totals
    assert {c.session_id for c in reported} == {session}
    # Tokens are claude's usage of each turn: not running totals.
    assert [c.input_tokens for c in reported] == [100000] * 3


def test_max_budget_usd_gets_what_is_left_and_claude_ends_the_turn_over_it(
    git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    # The price of one turn, from a session of its own.
    probe = Run(tmp_path / "probe")
    one = make_turn(probe, git_repo, env, "cost", str(uuid.uuid4()))
    one.start()
    outcome = one.wait(30)
    assert outcome is not None and outcome.finished is not None
    price = outcome.finished.total_cost_usd
    probe.messages()

    run = Run(tmp_path)
    costs = Costs(run, task_budget_usd=2.3 * price)
    session = str(uuid.uuid4())
    try:
        turns = run_turns(run, costs, git_repo, env, session, 3, budget=True)
    finally:
        costs.stop()
    budgets = [
        float(t.argv[t.argv.index("--max-budget-usd") + 1]) if "--max-budget-usd" in t.argv else 0
        for t in turns
    ]
    # What is left of the task's budget, counted from the turns' own costs. claude
    # compares it with this turn's cost, not the session's running total: the second
    # turn ends well under a cap of 1.3 prices although its running total is 2 prices.
    assert budgets == pytest.approx([2.3 * price, 1.3 * price, 0.3 * price], abs=1e-4)
    second = turns[1].outcome
    assert second is not None and second.finished is not None and not second.failed
    assert second.finished.total_cost_usd == pytest.approx(2 * price)
    # The third turn's one call costs more than the 0.3 prices left: claude's own stop.
    third = turns[2].outcome
    assert third is not None and third.failed and third.finished is not None
    assert third.finished.subtype == "error_max_budget_usd"
    assert third.finished.terminal_reason == "budget_exhausted"
    assert third.finished.errors == [f"Reached maximum budget (${budgets[2]:g})"]
    reported = [m for m in run.messages() if isinstance(m, CostReported)]
    assert sum(c.usd for c in reported) == pytest.approx(3 * price)


# --- a turn started ahead of its prompt ---------------------------------------------------


def test_a_turn_started_ahead_waits_for_its_prompt_then_is_the_turn_it_would_have_been(
    sim: SimServer, git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    run = Run(tmp_path)
    session = str(uuid.uuid4())
    turn = make_turn(run, git_repo, env, "write", session, ahead=True)
    plain = make_turn(run, git_repo, env, "write", session)
    # The same command but the prompt, which comes on stdin (stream-json).
    at = turn.argv.index("--input-format")
    assert turn.argv[at : at + 2] == ["--input-format", "stream-json"]
    assert turn.argv[:at] + turn.argv[at + 2 :] == plain.argv[:-2]
    assert plain.argv[-2:] == ["--", "Do task write"]
    pid = turn.start()
    time.sleep(3)  # claude starts and waits: no request, no answer
    assert not [r for r in sim.messages_requests if r.session_id == session]
    assert turn.outcome is None and process.read_entry(pid) is not None
    turn.give("Do task write")
    outcome = turn.wait(40)
    assert outcome is not None and outcome.exit_code == 0 and not outcome.failed
    assert (git_repo / "hello.txt").read_text() == "hi from the sim\n"
    with pytest.raises(PortError):
        turn.give("again")

    messages = run.messages()
    kinds = [type(m) for m in messages]
    assert kinds[:3] == [AgentTurnStarting, AgentProcessStarted, AgentPromptGiven]
    assert kinds[-3:] == [AgentTurnFinished, CostReported, AgentProcessExited]
    starting, _, given = messages[:3]
    assert isinstance(starting, AgentTurnStarting) and starting.waits_for_prompt
    assert isinstance(given, AgentPromptGiven)
    assert (given.prompt, given.session_id, given.task_id) == ("Do task write", session, "write")
    # The fold knows the developer's prompt from it, as from a prompt argument.
    state = State()
    for envelope in reader.read(run.db):
        apply(state, envelope)
    assert state.tasks["write"].prompt == "Do task write"
    [first] = [r for r in sim.messages_requests if r.session_id == session][:1]
    assert "Do task write" in json.dumps(first.body["messages"][0])


def test_a_turn_started_ahead_and_never_given_a_prompt_is_stopped_and_leaves_nothing(
    git_repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    run = Run(tmp_path)
    tmp = tmp_path / "agent-tmp"
    turn = make_turn(run, git_repo, env, "write", str(uuid.uuid4()), ahead=True, tmpdir=tmp)
    pid = turn.start()
    time.sleep(1)
    assert tmp.is_dir()
    tree = [pid, *(e.pid for e in process.descendants({pid}, list(process.processes())))]
    turn.stop()
    outcome = turn.wait(20)
    assert outcome is not None and outcome.failed and outcome.finished is None
    assert all(process.read_entry(p) is None or not process.read_entry(p).alive for p in tree)  # type: ignore[union-attr]
    assert not tmp.exists()
    kinds = [type(m) for m in run.messages()]
    assert kinds[0] is AgentTurnStarting and kinds[-1] is AgentProcessExited
    assert AgentPromptGiven not in kinds and AgentTurnFinished not in kinds
