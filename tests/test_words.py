"""One message in words: every type of message, as every view says it (`autonoma.words`)."""

from __future__ import annotations

import msgspec
import pytest

from autonoma import protocol as p
from autonoma.hints import command
from autonoma.words import Said, describe, line, notable

CLONE = "/srv/p/.autonoma/clones/r1/t3"
DEV = "developer-2"
SE = "staff_engineer"

# (message, its words, level, task, agent, whether the run's log shows it). Every type in
# MESSAGE_TYPES has a row: a new type fails `test_every_message_type_has_a_row` until it
# is given words here, and a decision whether the live log shows it.
ROWS: list[tuple[p.Message, str, str, str | None, str | None, bool]] = [
    # --- the supervisor tree
    (
        p.ActorStarted(name="crew", supervisor="root", urn="u", kind="supervisor"),
        "started supervisor crew",
        "info", None, None, False,
    ),
    (
        p.ActorExited(name="gateway", supervisor="root", reason="shutdown"),
        "gateway exited (shutdown)",
        "info", None, None, False,
    ),
    (
        p.ActorCrashed(
            name="developer-1",
            supervisor="crew",
            error_type="OSError",
            error_text="pty",
            during_start=True,
        ),
        "developer-1 crashed while starting: OSError: pty",
        "bad", None, None, True,
    ),
    (
        p.ActorStopped(name="developer-1", supervisor="crew", how="killed"),
        "developer-1 killed after its shutdown timeout",
        "warn", None, None, False,
    ),
    (
        p.SupervisorGaveUp(
            name="crew", restarts=4, intensity=3, period=60.0, child="dev-1", error="OSError: pty"
        ),
        "crew gave up after 4 restarts in 60 s (last: dev-1: OSError: pty)",
        "bad", None, None, True,
    ),
    (
        p.Escalation(source="orchestrator", reason="3 attempts failed", task_id="t3"),
        "ESCALATION [t3] from orchestrator: 3 attempts failed",
        "bad", "t3", None, True,
    ),
    (p.WorkPaused(reason="crew gave up"), "PAUSED: crew gave up", "bad", None, None, True),
    (p.WorkResumed(reason="by a human"), "resumed: by a human", "good", None, None, True),
    # --- the run and its tasks
    (
        p.RunStarted(requirements="todo.md", project="/p", max_workers=2, resumed=True),
        "run resumed: todo.md (up to 2 developers at once)",
        "info", None, None, True,
    ),
    (p.RunFinished(outcome="failed", summary="x"), "run failed", "bad", None, None, True),
    (p.RunFinished(outcome="done"), "run done", "good", None, None, True),
    (p.PhaseChanged(phase="planning"), "phase: planning", "info", None, None, True),
    (
        p.PlanWritten(plan={"summary": "A todo CLI", "milestones": [{"id": "m1"}]}),
        "plan: A todo CLI (1 milestone)",
        "info", None, None, True,
    ),
    (
        p.TaskDefined(task_id="t2", title="Store todos", deps=["t1"]),
        "task t2: Store todos (after t1)",
        "info", "t2", None, True,
    ),
    (
        p.TaskStateChanged(task_id="t3", state="failed", reason="tests fail", attempt=2),
        "t3 → failed (attempt 2): tests fail",
        "warn", "t3", None, True,
    ),
    (
        p.TaskWorkspace(task_id="t3", branch="autonoma/t3", worktree=CLONE, base="abc"),
        f"t3 works in {CLONE}",
        "info", "t3", None, False,
    ),
    (
        p.TaskFeedback(task_id="t3", text="add a test\nfor empty lists"),
        "t3 feedback for the next attempt: add a test for empty lists",
        "info", "t3", None, False,
    ),
    (
        p.ReviewVerdict(
            task_id="t3", agent_id="qa", verdict="changes_requested", reasons=["no test", "typo"]
        ),
        "t3 review: changes requested: no test (+1 more)",
        "warn", "t3", None, True,
    ),
    (
        p.MergeFailed(task_id="t3", kind="conflict", files=["a.py"]),
        "t3 merge failed: conflict on a.py",
        "warn", "t3", None, True,
    ),
    (
        p.MergeFailed(
            task_id="t3",
            kind="integration_locked",
            output="/p/.git/refs/heads/autonoma/integration.lock stayed there 5 s",
        ),
        "t3 not merged yet: autonoma/integration was locked: "
        "/p/.git/refs/heads/autonoma/integration.lock stayed there 5 s; merging again",
        "warn", "t3", None, True,
    ),
    (
        p.TaskMerged(task_id="t1", commit="0123456789", tests="no_tests"),
        "t1 merged as 01234567, no tests collected yet, main moved",
        "good", "t1", None, True,
    ),
    (
        p.ProjectCommands(
            setup_command="npm ci", test_command="npm test", setup_source="config",
            test_source="config",
        ),
        "project set-up: `npm ci` (from the config); tests: `npm test` (from the config)",
        "info", None, None, True,
    ),
    (
        p.SetupRan(
            task_id="t1", command="npm ci", exit_code=1, duration_s=0.3, output_tail="boom\n",
            place="merge_gate",
        ),
        "t1 set-up (merge gate): `npm ci` FAILED (exit code 1) after 0.3 s: boom",
        "warn", "t1", None, True,
    ),
    (
        p.RetryRequested(task_id="t3", note="use sqlite", origin="user ada"),
        "t3: a human asked for a retry: use sqlite (from user ada)",
        "info", "t3", None, True,
    ),
    (
        p.PauseRequested(origin="user ada"),
        f"PAUSED by user ada: no new turn starts, turns under way finish "
        f"(`{command('resume')}` resumes)",
        "bad", None, None, True,
    ),
    (p.ResumeRequested(), "resumed by a human", "good", None, None, True),
    (
        p.StopRequested(origin="Ctrl-C"),
        "STOPPING (asked by Ctrl-C): nothing new starts, the merge under way finishes, "
        "then the run ends",
        "bad", None, None, True,
    ),
    (
        p.ResolveRequested(task_id="t4"),
        "t4: a human resolved it by hand",
        "info", "t4", None, True,
    ),
    (
        p.HumanCommandRejected(path="/p/.autonoma/inbox/1.json", reason="unsigned"),
        "REJECTED a command in the inbox, not acted on: /p/.autonoma/inbox/1.json: unsigned",
        "bad", None, None, True,
    ),
    (
        p.SpawnsHeld(until=10.0, delay=4.06, reason="429"),
        "rate limited: new agents held for 4.1 s (429)",
        "warn", None, None, True,
    ),
    (
        p.ConcurrencyChanged(limit=2, ceiling=4, reason="rate limited (429)"),
        "agents at once: 2 of 4 (lowered after rate limits) (rate limited (429))",
        "warn", None, None, True,
    ),
    (
        p.ConcurrencyChanged(limit=4, ceiling=4, reason="developer-1's turn went through"),
        "agents at once: 4 (the ceiling, max_workers) (developer-1's turn went through)",
        "info", None, None, True,
    ),
    (
        p.BudgetReached(scope="run", limit_usd=5.0, spent_usd=5.01),
        "BUDGET: run budget $5.00 reached ($5.01 spent): no new work starts",
        "bad", None, None, True,
    ),
    (
        p.BudgetReached(scope="task", limit_usd=1.0, spent_usd=1.2, task_id="t3"),
        "t3 budget $1.00 reached ($1.20 spent)",
        "warn", "t3", None, True,
    ),
    # --- an agent's own doings: the words leave the agent out, `line` puts it first
    (
        p.DeveloperReport(
            task_id="t3", agent_id=DEV, summary="Built.", left=["x"], structured=True
        ),
        "reports: Built. (1 left to do)",
        "info", "t3", DEV, True,
    ),
    (
        p.AnswerRejected(role=SE, what="task list", errors=["t1 cycles", "t2 no files"], attempt=2),
        "had its task list rejected (attempt 2): t1 cycles; t2 no files",
        "warn", None, SE, True,
    ),
    (
        p.WorkCommittedForAgent(
            task_id="t3", agent_id=DEV, commit="abcdef0123", files=["a"], left_out=[".env"]
        ),
        "left changes uncommitted: committed as abcdef01 (1 file); "
        "left out (excluded, or not in the task's files): .env",
        "info", "t3", DEV, True,
    ),
    (
        p.WorkLeftOut(task_id="t4", agent_id="developer-1", left_out=["n.md"], left_out_more=2),
        "nothing committed for it; left out (excluded, or not in the task's files): "
        "n.md and 2 more",
        "info", "t4", "developer-1", True,
    ),
    (
        p.AgentStateChanged(
            agent_id=DEV, role="developer", state="dead", task_id="t3", detail="signal 9"
        ),
        "dead: signal 9",
        "bad", "t3", DEV, True,
    ),
    (
        p.AgentStateChanged(agent_id=DEV, role="developer", state="idle"),
        "idle",
        "info", None, DEV, False,
    ),
    (
        p.AgentText(agent_id="ceo", text="Let me think\nabout it"),
        "Let me think about it",
        "info", None, "ceo", False,
    ),
    (
        p.AgentToolUse(
            agent_id=DEV, tool_use_id="u", tool="Write", input={"file_path": f"{CLONE}/a.py"},
            task_id="t3",
        ),
        "Write a.py",
        "info", "t3", DEV, True,
    ),
    (
        p.AgentToolResult(agent_id=DEV, tool_use_id="u", content="ok\n2 files", task_id="t3"),
        "→ ok 2 files",
        "info", "t3", DEV, False,
    ),
    (
        p.AgentToolResult(agent_id=DEV, tool_use_id="u", content="No such file", is_error=True),
        "error: No such file",
        "bad", None, DEV, False,
    ),
    (
        p.AgentTurnStarting(
            agent_id="qa", role="qa", session_id="s", cwd="/w/r", argv=[], resume=True,
            model="opus",
        ),
        "resumes its session on opus in /w/r",
        "info", None, "qa", False,
    ),
    (
        p.AgentTurnStarting(
            agent_id="qa", role="qa", session_id="s", cwd="/w/r", argv=[], task_id="t3",
            waits_for_prompt=True,
        ),
        "starts a turn in /w/r (started ahead, waiting for its prompt)",
        "info", "t3", "qa", False,
    ),
    (
        p.AgentPromptGiven(
            agent_id="qa", role="qa", session_id="s", prompt="Review t3.\nNow.", task_id="t3"
        ),
        "given its prompt: Review t3. Now.",
        "info", "t3", "qa", False,
    ),
    (
        p.AgentProcessStarted(agent_id="qa", pid=4242),
        "claude started (pid 4242)",
        "info", None, "qa", False,
    ),
    (
        p.AgentSessionStarted(agent_id="ceo", session_id="s", model="claude-opus-5-5"),
        "model claude-opus-5-5",
        "info", None, "ceo", True,
    ),
    (
        p.AgentApiRetry(
            agent_id="ceo", attempt=2, max_retries=10, retry_delay_ms=500, error_status=529
        ),
        "API 529, claude retries (attempt 2/10)",
        "warn", None, "ceo", True,
    ),
    (
        p.AgentTurnFinished(
            agent_id="ceo", session_id="s", subtype="success", is_error=False, num_turns=3,
            duration_ms=4200,
        ),
        "turn done (3 turns, 4.2 s)",
        "info", None, "ceo", False,
    ),
    (
        p.AgentTurnFinished(
            agent_id="ceo", session_id="s", subtype="success", is_error=True, result="Not logged in"
        ),
        "turn failed: Not logged in",
        "bad", None, "ceo", True,
    ),
    (
        p.AgentStreamLine(agent_id="ceo", kind="not_json", text="warning: x"),
        "claude printed not JSON: warning: x",
        "warn", None, "ceo", False,
    ),
    (
        p.PermissionDenied(agent_id=DEV, tool="WebFetch", reason="not granted", task_id="t3"),
        "was denied WebFetch: not granted",
        "warn", "t3", DEV, True,
    ),
    (
        p.SchemaRejected(agent_id=SE, tool_use_id="u", reason="/tasks/0/id: bad"),
        "answer rejected by claude against the role's schema: /tasks/0/id: bad",
        "warn", None, SE, True,
    ),
    (
        p.AgentProcessExited(
            agent_id=DEV, timed_out=True, timeout="idle", timeout_s=300, task_id="t3"
        ),
        "stopped: no output for 300 s (idle timeout)",
        "warn", "t3", DEV, True,
    ),
    (
        p.AgentProcessExited(agent_id=DEV, exit_code=0),
        "claude exited with code 0",
        "info", None, DEV, False,
    ),
    (
        p.CostReported(
            agent_id="qa", usd=0.25, input_tokens=1000, output_tokens=200, cache_read_tokens=5,
            task_id="t1",
        ),
        "cost $0.2500 (1,000 in, 200 out, 5 cache)",
        "info", "t1", "qa", False,
    ),
    (
        p.HoldLifted(reason="a request of developer-1's went through"),
        "the storm is over: new agents may start again (a request of developer-1's went through)",
        "info", None, None, True,
    ),
    (
        p.LeftoversKilled(pids=[41, 42], commands=["sleep 300", "claude -p go"]),
        "killed 2 process(es) an earlier run left working: sleep 300; claude -p go",
        "warn", None, None, True,
    ),
    (
        p.RefLockRemoved(path="/p/.git/refs/heads/main.lock", branch="main", age_s=75.4),
        "removed /p/.git/refs/heads/main.lock, a lock on main left by a killed git (75 s old)",
        "warn", None, None, True,
    ),
    (
        p.RefLockRemoved(path="/p/.git/refs/heads/main.lock", branch="main", ours=True),
        "removed /p/.git/refs/heads/main.lock, a lock on main left by a killed git "
        "(it named a commit this run merged)",
        "warn", None, None, True,
    ),
    (
        p.MainAdvanceFinished(branch="main", commit="0123456789abcdef" * 2 + "01234567"),
        "finished moving main to 01234567 (a stop interrupted it)",
        "warn", None, None, True,
    ),
]  # fmt: skip


def test_every_message_type_has_a_row() -> None:
    missing = {t.__name__ for t in p.MESSAGE_TYPES} - {type(row[0]).__name__ for row in ROWS}
    assert not missing, f"no words decided for {sorted(missing)}: add a row to ROWS"


@pytest.mark.parametrize(
    ("message", "text", "level", "task", "agent", "shown"),
    ROWS,
    ids=[f"{i}-{type(row[0]).__name__}" for i, row in enumerate(ROWS)],
)
def test_words_of_each_message(
    message: p.AnyMessage, text: str, level: str, task: str | None, agent: str | None, shown: bool
) -> None:
    assert describe(message) == Said(text=text, level=level, task_id=task, agent_id=agent)  # type: ignore[arg-type]
    assert notable(message) is shown


HOSTILE = "a\x1b]52;c;aGk=\x07b\nrun done\x1b[2J\u202ec\r"


@pytest.mark.parametrize("message", [row[0] for row in ROWS], ids=lambda m: type(m).__name__)
def test_text_from_anyone_is_one_inert_line(message: p.AnyMessage) -> None:
    # Every string field holds control sequences, newlines and a bidi override.
    fields = msgspec.structs.asdict(message)
    hostile = {k: HOSTILE for k, v in fields.items() if isinstance(v, str)}
    said = describe(msgspec.structs.replace(message, **hostile))
    assert said is not None
    assert "\n" not in said.text and "\r" not in said.text
    assert said.text.isprintable(), repr(said.text)


def test_the_view_says_who() -> None:
    report = p.DeveloperReport(task_id="t3", agent_id=DEV, summary="Built.", structured=True)
    assert line(describe(report)) == "developer-2 [t3] reports: Built."  # type: ignore[arg-type]
    retry = p.AgentApiRetry(agent_id="ceo", attempt=1, max_retries=3, retry_delay_ms=1)
    assert line(describe(retry)) == "ceo API error, claude retries (attempt 1/3)"  # type: ignore[arg-type]
    merged = p.TaskMerged(task_id="t1", commit="0123456789")
    assert line(describe(merged)) == "t1 merged as 01234567, main moved"  # type: ignore[arg-type]


def test_tool_paths_are_relative_to_the_folder_the_view_knows() -> None:
    call = p.AgentToolUse(
        agent_id=DEV, tool_use_id="u", tool="Bash", input={"command": "ls /w/t3 /w/t3/src\nx"}
    )
    assert describe(call, cwd="/w/t3") == Said(text="Bash: ls . src", agent_id=DEV)
    assert describe(call) == Said(text="Bash: ls /w/t3 /w/t3/src", agent_id=DEV)


def test_said_travels_as_json_beside_its_message() -> None:
    said = describe(p.Escalation(source="root", reason="gave up", task_id="t1"))
    wire = msgspec.json.encode(said)
    assert msgspec.json.decode(wire) == {
        "text": "ESCALATION [t1] from root: gave up",
        "level": "bad",
        "task_id": "t1",
        "agent_id": None,
    }
    assert msgspec.json.decode(wire, type=Said) == said
