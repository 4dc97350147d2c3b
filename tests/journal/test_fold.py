"""The fold: one test per message type, and the envelope and row paths agreeing."""

from __future__ import annotations

import json

import pytest

from autonoma import protocol as p
from autonoma.journal.fold import (
    HANDLED_TYPES,
    State,
    apply,
    apply_row,
    fold,
    fold_rows,
)
from autonoma.protocol import (
    MESSAGE_TYPES,
    ActorCrashed,
    ActorExited,
    ActorStarted,
    ActorStopped,
    AgentStateChanged,
    AgentText,
    AgentToolResult,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
    AnswerRejected,
    AnyMessage,
    CostReported,
    DeveloperReport,
    Envelope,
    Escalation,
    PermissionDenied,
    PhaseChanged,
    ProjectCommands,
    ReviewVerdict,
    RunFinished,
    RunStarted,
    SchemaRejected,
    SetupRan,
    SupervisorGaveUp,
    TaskDefined,
    TaskFeedback,
    TaskMerged,
    TaskStateChanged,
    WorkCommittedForAgent,
    WorkLeftOut,
    WorkPaused,
    WorkResumed,
)
from autonoma.report import state_text
from autonoma.words import pause_reason

from .testlib import env, numbered, row_of


def folded(*messages: AnyMessage, run_id: str = "r1") -> State:
    """Fold the messages both ways, check both agree, return the state."""
    envelopes = numbered(env(m, run_id=run_id) for m in messages)
    envelopes = [
        Envelope(
            seq=e.seq,
            ts=100.0 + e.seq,
            run_id=e.run_id,
            sender="s",
            recipient="*",
            message=e.message,
        )
        for e in envelopes
    ]
    by_envelope = fold(envelopes)
    by_row = fold_rows(row_of(e) for e in envelopes)
    assert by_envelope.to_dict() == by_row.to_dict()
    assert by_envelope == by_row
    json.dumps(by_row.to_dict())  # status --json prints it as is
    assert by_row.last_seq == len(messages)
    return by_row


def test_every_message_type_is_handled() -> None:
    assert {cls.__name__ for cls in MESSAGE_TYPES} == HANDLED_TYPES


def test_empty_state() -> None:
    state = State()
    assert state.run is None and state.last_seq == 0
    assert json.loads(json.dumps(state.to_dict()))["runs"] == {}


def test_actor_started_and_restarted() -> None:
    state = folded(
        ActorStarted(name="developer-1", supervisor="crew", urn="u1"),
        ActorStarted(name="developer-1", supervisor="crew", urn="u2", restart=True),
    )
    actor = state.actors["developer-1"]
    assert (actor.supervisor, actor.status, actor.starts, actor.restarts) == (
        "crew",
        "running",
        2,
        1,
    )
    [event] = state.supervision
    assert (event.seq, event.kind, event.supervisor, event.child) == (
        2,
        "restarted",
        "crew",
        "developer-1",
    )


def test_actor_exited() -> None:
    state = folded(
        ActorStarted(name="a", supervisor="root", urn="u"),
        ActorExited(name="a", supervisor="root", reason="normal"),
        ActorStarted(name="b", supervisor="root", urn="u", kind="supervisor"),
        ActorExited(name="b", supervisor="root", reason="shutdown"),
    )
    assert state.actors["a"].status == "exited"
    assert (state.actors["b"].status, state.actors["b"].kind) == ("shutdown", "supervisor")
    assert state.supervision == []


def test_actor_crashed() -> None:
    state = folded(
        ActorStarted(name="gateway", supervisor="root", urn="u"),
        ActorCrashed(
            name="gateway", supervisor="root", error_type="OSError", error_text="port busy"
        ),
    )
    actor = state.actors["gateway"]
    assert (actor.status, actor.crashes, actor.last_error) == ("crashed", 1, "OSError: port busy")
    [event] = state.supervision
    assert (event.kind, event.child, event.error) == ("crashed", "gateway", "OSError: port busy")


def test_actor_stopped() -> None:
    state = folded(
        ActorStopped(name="a", supervisor="root", how="shutdown"),
        ActorStopped(name="b", supervisor="root", how="killed"),
    )
    assert state.actors["a"].status == "shutdown"
    assert state.actors["b"].status == "killed"
    assert [(e.kind, e.child) for e in state.supervision] == [("killed", "b")]


def test_supervisor_gave_up() -> None:
    state = folded(
        SupervisorGaveUp(
            name="crew", restarts=4, intensity=3, period=5.0, child="developer-2", error="boom"
        )
    )
    [event] = state.supervision
    assert (event.kind, event.supervisor, event.child) == ("gave_up", "crew", "developer-2")
    assert event.error == "boom"
    assert state.to_dict()["supervision"][0]["text"] == (
        "crew gave up after 4 restarts in 5 s (last: developer-2: boom)"
    )


def test_escalation() -> None:
    state = folded(
        Escalation(source="crew", reason="gave up"),
        Escalation(source="orchestrator", reason="3 failed attempts", task_id="t2"),
    )
    assert [(e.seq, e.source, e.reason, e.task_id, e.run_id) for e in state.escalations] == [
        (1, "crew", "gave up", None, "r1"),
        (2, "orchestrator", "3 failed attempts", "t2", "r1"),
    ]


PAUSE_CASES = [
    # (messages, paused, pause_reason, stopping)
    ((p.PauseRequested(origin="user a"),), True, "paused by user a", False),
    ((p.PauseRequested(origin="user a"), p.ResumeRequested(origin="user b")), False, "", False),
    (
        (p.PauseRequested(origin="user a"), p.WorkPaused(reason="crew gave up")),
        True,
        "paused by user a; crew gave up",
        False,
    ),
    # A human's resume ends the human's pause; the root's ends with its WorkResumed.
    (
        (p.WorkPaused(reason="crew gave up"), p.ResumeRequested(origin="user b")),
        True,
        "crew gave up",
        False,
    ),
    ((p.WorkPaused(reason="crew gave up"), p.WorkResumed(reason="by b")), False, "", False),
    ((p.PauseRequested(), p.StopRequested(origin="user c")), True, "paused by a human", True),
    # The run ended: neither paused nor stopping any more.
    (
        (p.PauseRequested(), p.StopRequested(), p.RunFinished(outcome="stopped")),
        False,
        "",
        False,
    ),
    # A command that came as the run ended changes nothing.
    ((p.RunFinished(outcome="done"), p.PauseRequested(), p.StopRequested()), False, "", False),
    # A new process (the root starts the journal first): an earlier pause is gone.
    (
        (
            p.PauseRequested(),
            p.StopRequested(),
            p.ActorStarted(name="journal", supervisor="root", urn="u"),
        ),
        False,
        "",
        False,
    ),
    # The journal restarted in the same process: the pause holds.
    (
        (
            p.PauseRequested(origin="user a"),
            p.ActorStarted(name="journal", supervisor="root", urn="u", restart=True),
        ),
        True,
        "paused by user a",
        False,
    ),
]


@pytest.mark.parametrize(("given", "paused", "reason", "stopping"), PAUSE_CASES)
def test_a_humans_pause_and_stop_and_the_systems_pause(
    given: tuple[AnyMessage, ...], paused: bool, reason: str, stopping: bool
) -> None:
    state = folded(p.RunStarted(requirements="r", project="/p", max_workers=1), *given)
    assert (state.paused, why_paused(state), state.stopping) == (paused, reason, stopping)


def why_paused(state: State) -> str:
    """The fold keeps who paused and why; `autonoma.words` says it."""
    return pause_reason(state.human_pause, state.paused_by, state.work_pause)


def test_work_paused_and_resumed() -> None:
    state = folded(WorkPaused(reason="rate limited until 12:00"))
    assert (state.paused, why_paused(state)) == (True, "rate limited until 12:00")
    assert state.to_dict()["pause_reason"] == "rate limited until 12:00"
    state = folded(WorkPaused(reason="x"), WorkResumed(reason="limit reset"))
    assert (state.paused, why_paused(state)) == (False, "")


def test_run_started_finished_resumed() -> None:
    state = folded(
        RunStarted(requirements="req.md", project="/p", max_workers=3),
        PhaseChanged(phase="planning"),
        RunFinished(outcome="stopped", summary="user stopped it"),
    )
    run = state.runs["r1"]
    assert state.current_run == "r1" and state.run is run
    assert (run.requirements, run.project, run.max_workers) == ("req.md", "/p", 3)
    assert (run.phase, run.outcome, run.summary) == ("planning", "stopped", "user stopped it")
    assert (run.started, run.ended, run.resumes) == (101.0, 103.0, 0)

    state = folded(
        RunStarted(requirements="req.md", project="/p", max_workers=3),
        RunFinished(outcome="stopped"),
        RunStarted(requirements="req.md", project="/p", max_workers=5, resumed=True),
    )
    run = state.runs["r1"]
    assert (run.started, run.ended, run.outcome, run.resumes, run.max_workers) == (
        101.0,
        None,
        None,
        1,
        5,
    )


def test_phase_changed() -> None:
    state = folded(PhaseChanged(phase="planning"), PhaseChanged(phase="development"))
    assert state.runs["r1"].phase == "development"


def test_tasks() -> None:
    state = folded(
        TaskDefined(task_id="t1", title="models", files=["a.py"]),
        TaskDefined(task_id="t2", title="api", deps=["t1"]),
        TaskStateChanged(task_id="t2", state="running", attempt=1),
        TaskStateChanged(task_id="t2", state="failed", reason="QA: no tests", attempt=1),
        TaskStateChanged(task_id="t2", state="running", attempt=2),
        TaskStateChanged(task_id="t2", state="review"),
    )
    t1, t2 = state.tasks["t1"], state.tasks["t2"]
    assert (t1.title, t1.deps, t1.files, t1.state, t1.attempts) == (
        "models",
        [],
        ["a.py"],
        "pending",
        0,
    )
    assert (t2.title, t2.deps, t2.state, t2.attempts, t2.since) == (
        "api",
        ["t1"],
        "review",
        2,
        106.0,
    )
    assert t2.reason == ""


def test_agent_state_changed() -> None:
    state = folded(
        AgentStateChanged(agent_id="developer-1", role="developer", state="starting"),
        AgentStateChanged(agent_id="developer-1", role="developer", state="working", task_id="t3"),
        AgentStateChanged(
            agent_id="developer-1", role="developer", state="working", task_id="t3", detail="tests"
        ),
    )
    agent = state.agents["developer-1"]
    assert (agent.role, agent.state, agent.task_id, agent.detail) == (
        "developer",
        "working",
        "t3",
        "tests",
    )
    assert agent.since == 102.0  # entered "working" at seq 2
    assert state.tasks["t3"].agent == "developer-1"


def test_agent_restarts_and_errors_come_from_its_supervisor() -> None:
    state = folded(
        ActorStarted(name="developer-1", supervisor="crew", urn="u"),
        ActorCrashed(
            name="developer-1", supervisor="crew", error_type="PtyError", error_text="eof"
        ),
        ActorStarted(name="developer-1", supervisor="crew", urn="u", restart=True),
        AgentStateChanged(agent_id="developer-1", role="developer", state="working"),
        ActorCrashed(name="developer-1", supervisor="crew", error_type="KeyError", error_text=""),
        ActorStarted(name="developer-1", supervisor="crew", urn="u", restart=True),
    )
    agent = state.agents["developer-1"]
    assert (agent.restarts, agent.crashes, agent.last_error) == (2, 2, "KeyError")


@pytest.mark.parametrize(
    ("message", "summary"),
    [
        (
            AgentText(agent_id="dev", text="\n  Running the tests now.\nThen commit."),
            "Running the tests now. Then commit.",
        ),
        (AgentText(agent_id="dev", text="x" * 500), "x" * 239 + "…"),
        (
            AgentToolUse(
                agent_id="dev", tool_use_id="u", tool="Bash", input={"command": "pytest -q"}
            ),
            "Bash: pytest -q",
        ),
        (
            AgentToolUse(agent_id="dev", tool_use_id="u", tool="Edit", input={"file_path": "a.py"}),
            "Edit a.py",
        ),
        (AgentToolUse(agent_id="dev", tool_use_id="u", tool="TodoWrite"), "TodoWrite"),
        (AgentToolResult(agent_id="dev", tool_use_id="u", content="3 passed\n"), "→ 3 passed"),
        (
            AgentToolResult(agent_id="dev", tool_use_id="u", content="boom", is_error=True),
            "error: boom",
        ),
    ],
)
def test_agent_last_action(message: AnyMessage, summary: str) -> None:
    state = folded(AgentText(agent_id="dev", text="earlier"), message)
    action = state.agents["dev"].last_action
    assert action is not None
    assert (action.seq, action.ts, action.type) == (2, 102.0, type(message).__name__)
    assert action.message == message
    # JSON readers get the words of autonoma.words, as the log says them.
    assert state.to_dict()["agents"]["dev"]["last_action"]["summary"] == summary


def test_agent_id_that_needs_escaping() -> None:
    state = folded(
        AgentText(agent_id='we"ird\\name', text="hi"),
        AgentToolResult(agent_id="ünïcode", tool_use_id="u", content="ok"),
    )
    assert set(state.agents) == {'we"ird\\name', "ünïcode"}


def test_costs_per_agent_task_run_and_total() -> None:
    state = folded(
        CostReported(agent_id="dev-1", usd=0.5, input_tokens=10, output_tokens=5, task_id="t1"),
        CostReported(agent_id="dev-1", usd=0.25, cache_read_tokens=100, task_id="t2"),
        CostReported(agent_id="ceo", usd=1.0, cache_creation_tokens=7),
    )
    assert state.agents["dev-1"].usage.usd == 0.75
    assert state.agents["dev-1"].usage.tokens == 115
    assert state.agents["ceo"].usage.turns == 1
    assert state.tasks["t1"].usage.usd == 0.5 and state.tasks["t2"].usage.usd == 0.25
    assert state.runs["r1"].usage.usd == 1.75
    usage = state.usage
    assert (usage.usd, usage.input_tokens, usage.output_tokens) == (1.75, 10, 5)
    assert (usage.cache_read_tokens, usage.cache_creation_tokens, usage.tokens, usage.turns) == (
        100,
        7,
        122,
        3,
    )


def test_apply_mutates_and_returns_the_state() -> None:
    state = State()
    envelope = env(PhaseChanged(phase="x"), 7)
    assert apply(state, envelope) is state
    assert apply_row(state, row_of(env(PhaseChanged(phase="y"), 8))) is state
    assert (state.last_seq, state.runs["r1"].phase) == (8, "y")


def test_fold_continues_from_a_state() -> None:
    first = [env(TaskDefined(task_id="t1", title="a"), 1)]
    second = [env(TaskStateChanged(task_id="t1", state="merged"), 2)]
    state = fold(second, fold(first))
    assert state.tasks["t1"].state == "merged" and state.last_seq == 2


def test_unknown_types_are_counted_and_skipped() -> None:
    rows = [
        (1, 1.0, "r1", "s", "*", "FromTheFuture", '{"type":"FromTheFuture"}'),
        row_of(env(PhaseChanged(phase="p"), 2)),
    ]
    state = fold_rows(rows)
    assert (state.unknown, state.last_seq, state.runs["r1"].phase) == (1, 2, "p")


def test_a_body_that_does_not_decode() -> None:
    rows = [(5, 1.0, "r1", "s", "*", "PhaseChanged", '{"type":"PhaseChanged"}')]
    with pytest.raises(ValueError, match="seq 5: cannot read the PhaseChanged message"):
        fold_rows(rows)


def test_runs_are_kept_apart() -> None:
    envelopes = numbered(
        [
            env(RunStarted(requirements="a.md", project=".", max_workers=1), run_id="a"),
            env(CostReported(agent_id="x", usd=1.0), run_id="a"),
            env(RunStarted(requirements="b.md", project=".", max_workers=1), run_id="b"),
            env(CostReported(agent_id="x", usd=2.0), run_id="b"),
        ]
    )
    state = fold(envelopes)
    assert state.current_run == "b"
    assert (state.runs["a"].usage.usd, state.runs["b"].usage.usd, state.usage.usd) == (
        1.0,
        2.0,
        3.0,
    )


def test_an_agent_turn_from_spawn_to_exit() -> None:
    from autonoma.protocol import (
        AgentApiRetry,
        AgentProcessExited,
        AgentProcessStarted,
        AgentSessionStarted,
        AgentStreamLine,
        AgentTurnFinished,
        AgentTurnStarting,
    )

    argv = ["claude", "-p", "do t1"]
    starting = AgentTurnStarting(
        agent_id="dev-1", role="developer", session_id="s-1", cwd="/w", argv=argv, task_id="t1"
    )
    state = folded(
        starting,
        AgentProcessStarted(agent_id="dev-1", pid=4242, task_id="t1"),
        AgentSessionStarted(agent_id="dev-1", session_id="s-1", model="m"),
        AgentApiRetry(agent_id="dev-1", attempt=1, max_retries=3, retry_delay_ms=1000.0),
        AgentStreamLine(agent_id="dev-1", kind="not_json", text="Warning: something odd"),
    )
    agent = state.agents["dev-1"]
    assert (agent.role, agent.session_id, agent.task_id, agent.pid) == (
        "developer",
        "s-1",
        "t1",
        4242,
    )
    assert agent.api_retries == 1
    assert agent.last_action is not None
    assert agent.last_action.message == AgentStreamLine(
        agent_id="dev-1", kind="not_json", text="Warning: something odd"
    )

    failed = AgentTurnFinished(
        agent_id="dev-1",
        session_id="s-1",
        subtype="success",
        is_error=True,
        api_error_status=429,
        result="API Error: Request rejected (429)",
    )
    state = folded(starting, failed, AgentProcessExited(agent_id="dev-1", exit_code=1))
    agent = state.agents["dev-1"]
    assert (agent.turns, agent.failed_turns, agent.pid) == (1, 1, None)
    assert agent.last_error == "API Error: Request rejected (429)"


@pytest.mark.parametrize(
    ("asked", "argv", "reported", "shown"),
    [
        ("opus", ["claude", "--model", "opus", "--", "x"], "", "opus"),  # before system/init
        ("opus", ["claude", "--model", "opus", "--", "x"], "claude-opus-5-5", "claude-opus-5-5"),
        ("", ["claude", "--model", "haiku", "--", "x"], "", "haiku"),  # an older journal
        ("", ["claude", "--", "--model"], "", ""),  # the prompt is not an option
    ],
)
def test_an_agents_model_is_what_claude_reported_else_what_was_asked(
    asked: str, argv: list[str], reported: str, shown: str
) -> None:
    from autonoma.protocol import AgentSessionStarted, AgentTurnStarting

    starting = AgentTurnStarting(
        agent_id="dev-1", role="developer", session_id="s", cwd="/w", argv=argv, model=asked
    )
    session = AgentSessionStarted(agent_id="dev-1", session_id="s", model=reported)
    assert folded(starting, session).agents["dev-1"].model == shown


def test_a_task_keeps_what_its_next_turn_will_be_told_until_that_turn_starts() -> None:
    state = fold(
        [
            env(TaskDefined(task_id="t1", title="x"), 1),
            env(TaskFeedback(task_id="t1", text="QA requested changes: add a test"), 2),
        ]
    )
    assert state.tasks["t1"].feedback == "QA requested changes: add a test"
    turn = AgentTurnStarting(
        agent_id="developer-1",
        role="developer",
        session_id="00000000-0000-0000-0000-000000000001",
        cwd="/w",
        argv=["claude", "--", "QA requested changes: add a test"],
        task_id="t1",
    )
    fold([env(turn, 3)], state)
    assert state.tasks["t1"].feedback == ""
    assert state.tasks["t1"].prompt == "QA requested changes: add a test"


def _finished(session: str, total: float, *, is_error: bool = False) -> AgentTurnFinished:
    return AgentTurnFinished(
        agent_id="developer-1",
        session_id=session,
        subtype="success",
        is_error=is_error,
        total_cost_usd=total,
    )


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        pytest.param([], {}, id="no turn"),
        pytest.param([("s1", 0.5)], {"s1": 0.5}, id="a new session"),
        pytest.param(
            [("s1", 0.5), ("s1", 1.0), ("s1", 1.5)], {"s1": 1.5}, id="resumed twice: the last"
        ),
        pytest.param(
            [("s1", 0.5), ("s2", 0.2), ("s1", 1.0)], {"s1": 1.0, "s2": 0.2}, id="sessions apart"
        ),
        # A resume that found no session, or a turn that failed before claude counted
        # anything, reports 0: the total already known stays, so nothing counts twice.
        pytest.param([("s1", 0.5), ("s1", 0.0)], {"s1": 0.5}, id="a zero report keeps it"),
        pytest.param([("", 0.3)], {}, id="no session id"),
    ],
)
def test_each_session_keeps_claudes_last_running_total(
    turns: list[tuple[str, float]], expected: dict[str, float]
) -> None:
    state = folded(*(_finished(session, total) for session, total in turns))
    assert state.session_usd == expected
    assert state.to_dict()["session_usd"] == expected


def test_a_task_shows_what_its_last_turn_left_out_until_a_new_attempt_starts() -> None:
    state = folded(
        TaskDefined(task_id="t1", title="x"),
        TaskStateChanged(task_id="t1", state="running", attempt=1),
        WorkCommittedForAgent(
            task_id="t1", agent_id="d", commit="c1", files=["a"], left_out=[".env"]
        ),
    )
    task = state.tasks["t1"]
    assert (task.left_out, task.left_out_more) == ([".env"], 0)
    assert task.to_dict()["left_out"] == [".env"]
    fold([env(WorkLeftOut(task_id="t1", agent_id="d", left_out=["x/"], left_out_more=3), 9)], state)
    assert (task.left_out, task.left_out_more) == (["x/"], 3)
    assert "left out (excluded, or not in the task's files): x/ and 3 more" in state_text(state)
    fold([env(TaskStateChanged(task_id="t1", state="running", attempt=2), 10)], state)
    assert (task.left_out, task.left_out_more) == ([], 0)
    assert "left out" not in state_text(state)


def test_the_project_commands_and_each_set_up_are_folded() -> None:
    commands = ProjectCommands(setup_command="npm ci", test_command="npm test")
    ok = SetupRan(task_id="t1", command="npm ci", exit_code=0, worktree="/w/t1")
    failed = SetupRan(task_id="t2", command="npm ci", exit_code=1, worktree="/w/t2")
    gate = SetupRan(task_id="t3", command="npm ci", exit_code=0, place="merge_gate", worktree="/m")
    state = folded(
        RunStarted(requirements="r.md", project="/p", max_workers=1),
        commands,
        ok,
        failed,
        gate,
        TaskMerged(task_id="t1", commit="c1", tests="no_tests"),
    )
    run = state.run
    assert run is not None and run.commands == commands and run.test_command == "npm test"
    # Only a successful set-up in the task's own worktree counts as its set-up.
    assert state.tasks["t1"].setup_worktree == "/w/t1"
    assert state.tasks["t2"].setup_worktree == "" and not state.tasks["t2"].setups[0].ok
    assert state.tasks["t3"].setup_worktree == ""
    # "No tests collected" does not make the run one with tests; a pass does.
    assert not run.tests_seen
    folded_again = folded(
        RunStarted(requirements="r.md", project="/p", max_workers=1),
        TaskMerged(task_id="t1", commit="c1", tests="passed"),
    )
    assert folded_again.run is not None and folded_again.run.tests_seen
    assert json.loads(json.dumps(state.to_dict()))["runs"]["r1"]["commands"]["setup_command"] == (
        "npm ci"
    )


def test_what_agents_say_and_what_is_refused_them() -> None:
    state = folded(
        RunStarted(requirements="/r.md", project="/p", max_workers=1, endpoint="/s.toml"),
        DeveloperReport(task_id="t1", agent_id="developer-1", summary="Built.", left=["docs"]),
        ReviewVerdict(task_id="t1", agent_id="qa-1", verdict="changes_requested", reasons=["x"]),
        PermissionDenied(
            agent_id="developer-1", tool="WebFetch", reason="not granted", task_id="t1"
        ),
        SchemaRejected(agent_id="staff_engineer", tool_use_id="u1", reason="bad id"),
        AnswerRejected(role="staff_engineer", what="task list", errors=["a", "b"], attempt=2),
    )
    assert state.run is not None and state.run.endpoint == "/s.toml"
    task = state.tasks["t1"]
    assert task.report is not None and (task.report.summary, task.report.left) == (
        "Built.",
        ["docs"],
    )
    assert [(v.verdict, v.reasons) for v in task.verdicts] == [("changes_requested", ["x"])]
    # The fold keeps what was refused; its words are autonoma.words' (for JSON too).
    assert [(r.agent, r.tool, r.reason) for r in task.refusals] == [
        ("developer-1", "WebFetch", "not granted")
    ]
    event = task.history[-1]
    assert (event.state, event.reason, event.refusal) == (
        "refused",
        "not granted",
        task.refusals[0],
    )
    assert state.agents["developer-1"].refusals == 1
    assert state.agents["staff_engineer"].refusals == 2
    last = state.agents["staff_engineer"].last_refusal
    assert last is not None and (last.agent, last.kind, last.reason) == (
        "staff_engineer",
        "answer",
        "a; b",
    )
    shown = state.to_dict()["agents"]["staff_engineer"]["last_refusal"]
    assert (shown["what"], shown["attempt"]) == ("task list", 2)
    assert shown["text"] == "had its task list rejected (attempt 2): a; b"
    assert state.to_dict()["tasks"]["t1"]["refusals"][0]["text"] == (
        "was denied WebFetch: not granted"
    )
    assert [r.kind for r in state.refusals] == ["permission", "schema", "answer"]


def test_an_agents_last_action_is_whom_the_body_names_whoever_sent_it() -> None:
    # The row path takes an activity row's sender for its agent once the body is seen to
    # name it: a sender whose rows name another agent (one whose name starts with the
    # sender's, one with an escape, one that is not an agent) must not fool it.
    said = [
        ("dev", AgentText(agent_id="dev", text="1")),
        ("dev", AgentToolUse(agent_id="dev", tool_use_id="u1", tool="Bash", input={})),
        ("dev", AgentToolResult(agent_id="dev", tool_use_id="u1", content="2")),
        ("orchestrator", AgentText(agent_id="dev", text="3")),
        ("dev-2", AgentText(agent_id="dev-2", text="4")),
        ('q"a', AgentText(agent_id='q"a', text="5")),
        ('q"a', AgentText(agent_id='q"a', text="6")),
        ("dev-2", AgentText(agent_id="dev", text="7")),
        ("dev", AgentText(agent_id="dev", text="8")),
        ("dev", AgentText(agent_id="de", text="9")),
        ("a\\b", AgentText(agent_id="a\\b", text="10")),
        ("a\\b", AgentText(agent_id="a\\b", text="11")),
        ("a\\b", AgentText(agent_id="a\b", text="12")),  # a backspace: JSON "a\b"
        ("dev", AgentText(agent_id="dev-2", text="13")),  # relayed by dev for dev-2
    ]
    envelopes = [
        env(message, seq, sender=sender, ts=100.0 + seq)
        for seq, (sender, message) in enumerate(said, start=1)
    ]
    by_envelope = fold(envelopes)
    by_row = fold_rows(row_of(e) for e in envelopes)
    assert by_row == by_envelope and by_row.to_dict() == by_envelope.to_dict()
    last = {}
    for name, agent in by_row.agents.items():
        action = agent.last_action
        assert action is not None
        last[name] = action.message
    # In order of first appearance.
    assert list(last) == ["dev", "dev-2", 'q"a', "de", "a\\b", "a\b"]
    assert last == {
        "dev": said[8][1],
        "dev-2": said[13][1],
        'q"a': said[6][1],
        "de": said[9][1],
        "a\\b": said[11][1],
        "a\b": said[12][1],
    }
    # Folding on from a state (as the timeline does) gives the same.
    first = fold_rows(row_of(e) for e in envelopes[:6])
    split = fold_rows((row_of(e) for e in envelopes[6:]), first)
    assert split.to_dict() == by_row.to_dict()


def test_one_merge_said_twice_is_counted_once() -> None:
    # As journals before the fix hold it: merged, stopped, resumed, merged again.
    state = folded(
        RunStarted(requirements="r.md", project="/p", max_workers=1),
        TaskDefined(task_id="t1", title="one"),
        TaskStateChanged(task_id="t1", state="merging"),
        TaskMerged(task_id="t1", commit="c1", tests="passed"),
        TaskStateChanged(task_id="t1", state="merged"),
        RunStarted(requirements="r.md", project="/p", max_workers=1),
        TaskMerged(task_id="t1", commit="c1", tests="passed"),
        TaskStateChanged(task_id="t1", state="merged", reason="again"),
    )
    task = state.tasks["t1"]
    assert (task.state, task.commit, task.reason) == ("merged", "c1", "")
    assert [e.state for e in task.history] == ["merging", "merged"]
