"""The live view of ``autonoma start --no-tui``: envelopes in, readable lines out."""

from __future__ import annotations

import threading

import pytest

from autonoma import protocol as p
from autonoma.hints import command, start_command
from autonoma.progress import Progress, elapsed
from autonoma.runtime.bus import Bus

T0 = 1_700_000_000.0
WORKTREE = "/home/ada/todo/.autonoma/worktrees/t3"


def envelope(message: p.AnyMessage, at: float = 0.0, seq: int = 0) -> p.Envelope:
    return p.Envelope(
        seq=seq, ts=T0 + at, run_id="run-1", sender="x", recipient="*", message=message
    )


def show(*messages: tuple[float, p.AnyMessage], color: bool = False) -> list[str]:
    lines: list[str] = []
    progress = Progress(lines.append, color=color, started=T0)
    for at, message in messages:
        progress.feed(envelope(message, at))
    return lines


def tool(name: str, task: str | None = "t3", **tool_input: object) -> p.AgentToolUse:
    return p.AgentToolUse(
        agent_id="developer-2", tool_use_id="tu", tool=name, input=tool_input, task_id=task
    )


def test_elapsed() -> None:
    assert elapsed(0) == "00:00"
    assert elapsed(75.9) == "01:15"
    assert elapsed(3599) == "59:59"
    assert elapsed(3723) == "1:02:03"
    assert elapsed(-3) == "00:00"


def test_a_run_from_start_to_finish() -> None:
    lines = show(
        (0, p.RunStarted(requirements="todo.md", project="/p", max_workers=2)),
        (1, p.PhaseChanged(phase="planning")),
        (
            12,
            p.PlanWritten(
                plan={"summary": "A todo CLI", "milestones": [{"id": "m1"}, {"id": "m2"}]}
            ),
        ),
        (13, p.TaskDefined(task_id="t1", title="Parse arguments")),
        (13, p.TaskDefined(task_id="t2", title="Store todos", deps=["t1"])),
        (14, p.TaskStateChanged(task_id="t1", state="running", attempt=1)),
        (20, p.CostReported(agent_id="developer-1", usd=0.5, input_tokens=100, task_id="t1")),
        (21, p.ReviewVerdict(task_id="t1", agent_id="qa", verdict="approve", attempt=1)),
        (22, p.CostReported(agent_id="qa", usd=0.25, output_tokens=20, task_id="t1")),
        (25, p.TaskMerged(task_id="t1", commit="0123456789abcdef")),
        (
            30,
            p.TaskMerged(
                task_id="t2", commit="fedcba9876543210", main_moved=False, detail="main is dirty"
            ),
        ),
        (75, p.RunFinished(outcome="done", summary="2 tasks merged.\nmain is at fedcba98.")),
    )
    assert lines == [
        "[00:00] run started: todo.md (up to 2 developers at once)",
        "[00:01] phase: planning",
        "[00:12] plan: A todo CLI (2 milestones)",
        "[00:13] task t1: Parse arguments",
        "[00:13] task t2: Store todos (after t1)",
        "[00:14] t1 → running (attempt 1)",
        "[00:21] t1 review: approved (attempt 1)",
        "[00:25] t1 merged as 01234567, main moved ($0.7500 so far)",
        "[00:30] t2 merged as fedcba98, main not moved: main is dirty ($0.7500 so far)",
        # The summary is the caller's to print: it holds the whole run's figures.
        "[01:15] run done (this session: $0.7500, 120 tokens)",
    ]


def test_what_went_wrong_is_said() -> None:
    lines = show(
        (
            1,
            p.TaskStateChanged(
                task_id="t3", state="failed", attempt=2, reason="tests fail:\n" + "x" * 400
            ),
        ),
        (
            2,
            p.ReviewVerdict(
                task_id="t3",
                agent_id="qa",
                verdict="changes_requested",
                reasons=["no test for an empty list", "names are unclear", "typo"],
                attempt=2,
            ),
        ),
        (3, p.MergeFailed(task_id="t3", kind="conflict", files=["todo/store.py", "README.md"])),
        (
            4,
            p.MergeFailed(
                task_id="t3",
                kind="tests_failed",
                output="\nFAILED test_store.py::test_add\n2 failed",
            ),
        ),
        (5, p.Escalation(source="orchestrator", reason="3 attempts failed", task_id="t3")),
        (6, p.WorkPaused(reason="crew gave up")),
        (7, p.WorkResumed(reason="by a human")),
        (8, p.SpawnsHeld(until=T0 + 12.1, delay=4.06, reason="")),
        (9, p.BudgetReached(scope="run", limit_usd=5.0, spent_usd=5.01)),
        (9, p.BudgetReached(scope="task", limit_usd=1.0, spent_usd=1.2, task_id="t3")),
        (10, p.RetryRequested(task_id="t3", note="use sqlite")),
        (11, p.ResolveRequested(task_id="t4")),
        (11, p.ResolveRequested(task_id="t4", origin=ORIGIN)),
        (11, p.HumanCommandRejected(path="/p/.autonoma/inbox/1-1.json.bad", reason=FORGED)),
        # A file's name is anyone's: it can fake no line and steer no terminal.
        (11, p.HumanCommandRejected(path="x\nrun done\x1b]52;c;aGk=\x07.json", reason="r")),
        (
            12,
            p.WorkCommittedForAgent(
                task_id="t3", agent_id="developer-2", commit="abcdef0123", files=["a", "b"]
            ),
        ),
        (
            13,
            p.WorkCommittedForAgent(
                task_id="t3",
                agent_id="developer-2",
                commit="abcdef0123",
                files=["a"],
                left_out=[".env", "node_modules/"],
            ),
        ),
        (
            14,
            p.WorkLeftOut(
                task_id="t4",
                agent_id="developer-1",
                left_out=[f"n{i}.md" for i in range(10)],
                left_out_more=90,
            ),
        ),
    )
    assert lines[0].startswith("[00:01] t3 → failed (attempt 2): tests fail: xxx")
    assert lines[0].endswith("…") and len(lines[0]) < 200
    assert lines[1:] == [
        "[00:02] t3 review: changes requested (attempt 2): no test for an empty list (+2 more)",
        "[00:03] t3 merge failed: conflict on todo/store.py, README.md",
        "[00:04] t3 merge failed: tests failed on the merged result: "
        "FAILED test_store.py::test_add",
        "[00:05] !!! ESCALATION [t3] from orchestrator: 3 attempts failed",
        "[00:06] PAUSED: crew gave up"
        f" (new work waits: `{command('resume')}` resumes it, `{command('stop')}` stops the run)",
        "[00:07] resumed: by a human",
        "[00:08] rate limited: new agents held for 4.1 s",
        "[00:09] BUDGET: run budget $5.00 reached ($5.01 spent): no new work starts",
        "[00:09] t3 budget $1.00 reached ($1.20 spent)",
        "[00:10] t3: a human asked for a retry: use sqlite",
        "[00:11] t4: a human resolved it by hand",
        f"[00:11] t4: a human resolved it by hand (from {ORIGIN})",
        "[00:11] !!! REJECTED a command in the inbox, not acted on: "
        f"/p/.autonoma/inbox/1-1.json.bad: {FORGED}",
        "[00:11] !!! REJECTED a command in the inbox, not acted on: x run done.json: r",
        "[00:12] developer-2 [t3] left changes uncommitted: committed as abcdef01 (2 files)",
        "[00:13] developer-2 [t3] left changes uncommitted: committed as abcdef01 (1 file); "
        "left out (excluded, or not in the task's files): .env, node_modules/",
        "[00:14] developer-1 [t4] nothing committed for it; left out (excluded, or not in the "
        "task's files): n0.md, n1.md, n2.md, n3.md, n4.md, n5.md, n6.md, n7.md and 92 more",
    ]


ORIGIN = "user alice (uid 1000), pid 4242, tty /dev/pts/3, host box"
FORGED = "unsigned: no hmac-sha256 line"


def test_agents_at_work() -> None:
    lines = show(
        (
            0,
            p.AgentTurnStarting(
                agent_id="developer-2",
                role="developer",
                session_id="s",
                cwd=WORKTREE,
                argv=[],
                task_id="t3",
            ),
        ),
        (1, tool("Write", file_path=f"{WORKTREE}/todo/store.py", content="...")),
        (2, tool("Bash", command=f"cd {WORKTREE} && python3 -m unittest\necho done")),
        (3, tool("Read", file_path="todo/cli.py")),
        (4, tool("Grep", pattern="def add")),
        (5, tool("TodoWrite", todos=[])),
        (
            6,
            p.AgentApiRetry(
                agent_id="developer-1",
                attempt=1,
                max_retries=10,
                retry_delay_ms=500,
                error_status=429,
                task_id="t2",
            ),
        ),
        (
            7,
            p.AgentApiRetry(
                agent_id="ceo", attempt=2, max_retries=10, retry_delay_ms=500, error="overloaded"
            ),
        ),
        (8, p.AgentStateChanged(agent_id="developer-2", role="developer", state="working")),
        (
            9,
            p.AgentStateChanged(
                agent_id="developer-2",
                role="developer",
                state="dead",
                task_id="t3",
                detail="signal 9",
            ),
        ),
        (10, p.AgentStateChanged(agent_id="qa", role="qa", state="waiting", detail="held")),
        (
            11,
            p.AgentTurnFinished(
                agent_id="ceo",
                session_id="s",
                subtype="success",
                is_error=True,
                result="Not logged in · Please run /login",
            ),
        ),
        (
            12,
            p.AgentTurnFinished(agent_id="ceo", session_id="s", subtype="success", is_error=False),
        ),
    )
    assert lines == [
        "[00:01]   developer-2 [t3] Write todo/store.py",
        "[00:02]   developer-2 [t3] Bash: cd . && python3 -m unittest",
        "[00:03]   developer-2 [t3] Read todo/cli.py",
        "[00:04]   developer-2 [t3] Grep def add",
        "[00:05]   developer-2 [t3] TodoWrite",
        "[00:06] developer-1 [t2] API 429, claude retries (attempt 1/10)",
        "[00:07] ceo API overloaded, claude retries (attempt 2/10)",
        "[00:09] developer-2 [t3] dead: signal 9",
        "[00:10] qa waiting: held",
        "[00:11] ceo turn failed: Not logged in · Please run /login",
    ]


@pytest.mark.parametrize(
    "other",
    [
        "/srv/p/.autonoma/worktrees/t7",
        "/srv/p/.autonoma/clones/r1/t7",
        "/srv/p/.autonoma/clones/r1/_review/t7-2",
    ],
)
def test_worktree_paths_are_shortened_without_knowing_the_cwd(other: str) -> None:
    lines = show(
        (1, tool("Edit", task="t7", file_path=f"{other}/src/app.py")),
        (2, tool("Bash", task="t7", command=f"ls '{other}' {other}/tests")),
    )
    assert lines == [
        "[00:01]   developer-2 [t7] Edit src/app.py",
        "[00:02]   developer-2 [t7] Bash: ls '.' tests",
    ]


def test_the_task_workspace_gives_the_folder_too() -> None:
    lines = show(
        (0, p.TaskWorkspace(task_id="t3", branch="autonoma/t3", worktree="/w/t3", base="abc")),
        (1, tool("Write", file_path="/w/t3/a.py")),
        (2, tool("Write", task="t4", file_path="/w/t3/a.py")),  # another task: left alone
    )
    assert lines == [
        "[00:01]   developer-2 [t3] Write a.py",
        "[00:02]   developer-2 [t4] Write /w/t3/a.py",
    ]


def test_chatter_is_left_out() -> None:
    assert (
        show(
            (1, p.AgentText(agent_id="ceo", text="Let me think")),
            (2, p.AgentToolResult(agent_id="ceo", tool_use_id="t", content="ok")),
            (3, p.AgentStreamLine(agent_id="ceo", kind="not_json", text="warning")),
            (4, p.AgentStateChanged(agent_id="ceo", role="ceo", state="idle")),
            (5, p.ActorStarted(name="ceo", supervisor="crew", urn="u")),
            (6, p.CostReported(agent_id="ceo", usd=1.0)),
        )
        == []
    )


def test_the_model_is_said_once_per_agent_and_model() -> None:
    def started(agent: str, model: str, task: str | None = None) -> p.AgentSessionStarted:
        return p.AgentSessionStarted(agent_id=agent, session_id="s", model=model, task_id=task)

    lines = show(
        (1, started("ceo", "claude-opus-5-5")),
        (2, started("developer-1", "claude-opus-5-5", "t1")),
        (3, started("ceo", "claude-opus-5-5")),  # a resumed turn: nothing new
        (4, started("developer-1", "claude-haiku-5-5", "t2")),
        (5, started("qa", "")),  # claude said nothing: nothing to say
    )
    assert lines == [
        "[00:01]   ceo model claude-opus-5-5",
        "[00:02]   developer-1 [t1] model claude-opus-5-5",
        "[00:04]   developer-1 [t2] model claude-haiku-5-5",
    ]


def test_crashes_are_said() -> None:
    lines = show(
        (
            1,
            p.ActorCrashed(
                name="developer-1", supervisor="crew", error_type="OSError", error_text="pty"
            ),
        ),
        (
            2,
            p.SupervisorGaveUp(
                name="crew", restarts=4, intensity=3, period=60.0, child="developer-1"
            ),
        ),
    )
    assert lines == [
        "[00:01] developer-1 crashed: OSError: pty",
        "[00:02] crew gave up after 4 restarts in 60 s (last: developer-1)",
    ]


def test_color_and_the_first_envelope_as_the_start() -> None:
    lines: list[str] = []
    progress = Progress(lines.append, color=True)
    progress.feed(envelope(p.PhaseChanged(phase="planning"), at=100))
    progress.feed(envelope(p.Escalation(source="root", reason="gave up"), at=161))
    assert lines == [
        "[00:00] \033[36mphase: planning\033[0m",
        "[01:01] \033[1;31m!!! ESCALATION from root: gave up\033[0m",
    ]


def test_it_never_raises_into_the_publisher() -> None:
    def broken(line: str) -> None:
        raise BrokenPipeError("stdout is gone")

    progress = Progress(broken, started=T0)
    progress.feed(envelope(p.PhaseChanged(phase="planning")))  # nothing raised

    lines: list[str] = []
    progress = Progress(lines.append, started=T0)
    weird = p.PlanWritten(plan={"summary": "ok", "milestones": None})
    progress.feed(envelope(weird))
    assert lines == ["[00:00] plan: ok (0 milestones)"]


@pytest.mark.timeout(60)
def test_lines_from_many_threads_never_interleave() -> None:
    written: list[str] = []
    in_write = threading.Lock()

    def write(line: str) -> None:
        # Fails the test if two writes ever overlap.
        assert in_write.acquire(blocking=False), "two writes at once"
        try:
            written.append(line)
        finally:
            in_write.release()

    progress = Progress(write)
    bus = Bus(run_id="run-1")
    bus.subscribe(progress.feed)

    def publish(n: int) -> None:
        for k in range(300):
            bus.publish(f"a{n}", p.CostReported(agent_id=f"a{n}", usd=0.01))
            bus.publish(f"a{n}", p.TaskStateChanged(task_id=f"t{n}", state="running", attempt=k))

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(written) == 8 * 300
    assert progress.total_usd == pytest.approx(8 * 300 * 0.01)


def test_the_projects_commands_set_ups_and_the_test_gate_are_said() -> None:
    commands = p.ProjectCommands(
        setup_command="npm ci",
        test_command="npm test",
        setup_source="staff_engineer",
        test_source="config",
    )
    opted_out = p.ProjectCommands(tests_opted_out=True, test_source="config")
    lines = show(
        (1, commands),
        (2, opted_out),
        (3, p.ProjectCommands()),
        (4, p.SetupRan(task_id="t1", command="npm ci", exit_code=0, duration_s=2.51)),
        (
            5,
            p.SetupRan(
                task_id="t2",
                command="npm ci",
                exit_code=1,
                duration_s=0.3,
                output_tail="npm ERR! 404\nnpm ERR! left-pad not found\n",
                place="merge_gate",
            ),
        ),
        (6, p.MergeFailed(task_id="t2", kind="no_test_command", output="x")),
        (7, p.MergeFailed(task_id="t2", kind="setup_failed", output="$ npm ci\nexit 1\nboom")),
        (8, p.MergeFailed(task_id="t2", kind="tests_failed", output="$ npm test\nexit code 1\nx")),
        (9, p.TaskMerged(task_id="t1", commit="abcdef1234", tests="no_tests")),
        (10, p.TaskMerged(task_id="t3", commit="abcdef1234", tests="opted_out")),
    )
    assert lines == [
        "[00:01] project set-up: `npm ci` (from the Staff Engineer); tests: `npm test` "
        "(from the config)",
        '[00:02] project set-up: none; tests: none, by the user\'s choice (test_command = "none"):'
        " merged untested",
        "[00:03] project set-up: none; tests: NONE known: merging is refused; set test_command "
        'in .autonoma/config.toml (or "none" to opt out)',
        "[00:04] t1 set-up: `npm ci` ok in 2.5 s",
        "[00:05] t2 set-up (merge gate): `npm ci` FAILED (exit code 1) after 0.3 s: "
        "npm ERR! left-pad not found",
        "[00:06] t2 not merged: no test command (set test_command)",
        "[00:07] t2 merge failed: the set-up failed on the merged result: boom",
        "[00:08] t2 merge failed: tests failed on the merged result: $ npm test → exit code 1",
        "[00:09] t1 merged as abcdef12, no tests collected yet, main moved ($0.0000 so far)",
        "[00:10] t3 merged as abcdef12, tests not run (opted out), main moved ($0.0000 so far)",
    ]


SE = "staff_engineer"


def test_reports_and_refusals_are_said_with_claudes_reason() -> None:
    failed = p.AgentTurnFinished(
        agent_id=SE, session_id="s", subtype="success", is_error=True, result="API Error: 400"
    )
    lines = show(
        (0, p.RunStarted(requirements="/r.md", project="/p", max_workers=1, endpoint="/s.toml")),
        (1, p.WorkPaused(reason="crew gave up")),
        (
            2,
            p.DeveloperReport(
                task_id="t3", agent_id="developer-2", summary="Built.", left=["x"], structured=True
            ),
        ),
        (3, p.DeveloperReport(task_id="t3", agent_id="developer-2", summary="I built it.")),
        (4, p.PermissionDenied(agent_id="developer-2", tool="WebFetch", reason="no", task_id="t3")),
        (5, p.AnswerRejected(role=SE, what="task list", errors=["t1 cycles"], attempt=2)),
        (6, p.SchemaRejected(agent_id=SE, tool_use_id="u", reason="/tasks/0/id: bad")),
        (7, failed),
    )
    assert lines == [
        "[00:00] run started: /r.md (up to 1 developers at once)",
        "[00:01] PAUSED: crew gave up (new work waits: "
        f"`{command('resume')}` resumes it, `{command('stop')}` stops the run)",
        "[00:02] developer-2 [t3] reports: Built. (1 left to do)",
        "[00:03] developer-2 [t3] says (no structured report): I built it.",
        "[00:04] developer-2 [t3] was denied WebFetch: no",
        # One message, one line (it was a line per error).
        "[00:05] staff_engineer had its task list rejected (attempt 2): t1 cycles",
        "[00:06] staff_engineer answer rejected by claude against the role's schema: "
        "/tasks/0/id: bad",
        "[00:07] staff_engineer turn failed: claude rejected its answer against the role's "
        "schema: /tasks/0/id: bad",
    ]


def test_a_humans_pause_resume_and_stop_are_said_with_who_asked() -> None:
    lines = show(
        (0, p.RunStarted(requirements="/r.md", project="/p", max_workers=1)),
        (1, p.PauseRequested(origin=ORIGIN)),
        (2, p.ResumeRequested(origin=ORIGIN)),
        (3, p.StopRequested()),
    )
    assert lines[1:] == [
        f"[00:01] PAUSED by {ORIGIN}: no new turn starts, turns under way finish "
        f"(`{command('resume')}` resumes)",
        f"[00:02] resumed by {ORIGIN}",
        "[00:03] STOPPING (asked by a human): nothing new starts, the merge under way "
        f"finishes, then the run ends; `{start_command('/r.md')}` resumes it",
    ]
