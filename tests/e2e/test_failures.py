"""What goes wrong in a run, end to end: the real ``autonoma`` command (or `run.execute`
in this process for the crash tests), the real ``claude`` binary and the simulated model
playing the scenarios in ``scenarios/``. Each test looks at what a user sees: the files
on ``main``, the journal's rows, the exit code and ``autonoma status``.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pykka
import pytest

from autonoma import project
from autonoma.agents.agent import AgentActor
from autonoma.config import Settings
from autonoma.journal import reader
from autonoma.protocol import (
    ActorCrashed,
    ActorStarted,
    AgentApiRetry,
    AgentSessionStarted,
    AgentStateChanged,
    AgentToolResult,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
    Envelope,
    Escalation,
    HoldLifted,
    ResumeRequested,
    RetryRequested,
    ReviewVerdict,
    RunFinished,
    SpawnsHeld,
    SupervisorGaveUp,
    TaskMerged,
    TaskStateChanged,
    WorkPaused,
    WorkResumed,
)
from autonoma.vcs.workspace import PUSH_REFUSED
from autonoma.workflow import run
from autonoma.workflow.decide import (
    _Step,
)
from autonoma.workflow.run import RunOptions, RunResult
from tests.conftest import run_autonoma
from tests.e2e.runs import (
    REQUIREMENTS,
    SCENARIOS,
    M,
    Row,
    assert_clean_exit,
    autonoma_branches,
    db_of,
    developer_turns,
    envelopes,
    files_on,
    git,
    journal,
    make_project,
    messages,
    start,
    status_json,
)
from tests.journal.testlib import wait_for
from tests.test_run_lock import hold_run_lock

RUN_TIMEOUT = 90.0
"""Seconds an in-process run may take before the test gives up on it."""


# --- 1. escalation, then the human's retry or resolve ---------------------------------

NOTE = "Write the word hello into t2.txt"


def test_a_task_out_of_retries_is_escalated_while_the_rest_merges_then_a_human_retry_finishes_it(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "1"}

    first = start(root, "rejects_t2.toml", env, "--max-workers", "2")

    assert_clean_exit(first, 1)
    # t1 is merged (and main's checkout moved with it); nothing of t2 or t3 is.
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}
    assert (root / "t1.txt").read_text() == "t1\n"
    rows = journal(root)
    (run_id,) = reader.run_ids(db_of(root))
    assert messages(rows, TaskMerged, task_id="t1")
    # t2: two reviews, both rejected; one retry (max_retries 1), then escalated.
    verdicts = messages(rows, ReviewVerdict, task_id="t2")
    assert [v.verdict for v in verdicts] == ["changes_requested", "changes_requested"]
    t2_states = messages(rows, TaskStateChanged, task_id="t2")
    assert [s.state for s in t2_states if s.state in ("failed", "escalated")] == [
        "failed",
        "failed",
        "escalated",
    ]
    assert t2_states[-1].state == "escalated"
    assert "QA requested changes: t2.txt must say hello" in t2_states[-1].reason
    (escalation,) = messages(rows, Escalation)
    assert escalation.task_id == "t2"
    assert "t2.txt must say hello" in escalation.reason
    # t3 needs t2: it never ran and never left pending.
    assert developer_turns(rows, "t3") == []
    assert not messages(rows, AgentTurnStarting, task_id="t3")
    assert {s.state for s in messages(rows, TaskStateChanged, task_id="t3")} == {"pending"}
    (finished,) = messages(rows, RunFinished)
    assert finished.outcome == "failed"
    assert "1 escalated: t2 (" in finished.summary
    assert "1 waiting on escalated tasks" in finished.summary
    assert f"Run {run_id}: failed." in first.stdout

    # What `autonoma status` shows the human.
    state = status_json(root, env)
    tasks = state["tasks"]
    assert (tasks["t1"]["state"], tasks["t2"]["state"], tasks["t3"]["state"]) == (
        "merged",
        "escalated",
        "pending",
    )
    history = tasks["t2"]["history"]
    assert [h["state"] for h in history if h["state"] in ("failed", "escalated")] == [
        "failed",
        "failed",
        "escalated",
    ]
    assert all(
        h["reason"] == "QA requested changes: t2.txt must say hello"
        for h in history
        if h["state"] == "failed"
    )
    assert [e["task_id"] for e in state["escalations"]] == ["t2"]
    text = run_autonoma("status", cwd=root, env=env)
    assert text.returncode == 0, text.stderr
    assert "escalated (1)" in text.stdout
    assert "history (latest last)" in text.stdout
    assert "QA requested changes: t2.txt must say hello" in text.stdout
    assert "1 waiting on escalated tasks" in text.stdout
    t3_line = next(line for line in text.stdout.splitlines() if line.strip().startswith("t3 "))
    assert "pending" in t3_line

    # The human sends t2 back with a note; no run is active, so it is journaled at once.
    retry = run_autonoma("retry", "t2", "--note", NOTE, cwd=root, env=env)
    assert_clean_exit(retry, 0)
    assert retry.stdout.startswith("t2 will be retried when the run resumes")
    (request,) = envelopes(journal(root), RetryRequested)
    assert (request.run_id, request.sender) == (run_id, "human")
    assert (request.message.task_id, request.message.note) == ("t2", NOTE)
    before = reader.last_seq(db_of(root))
    last_t2_session = developer_turns(rows, "t2")[-1].session_id

    # Nothing else changes; the model now approves t2.
    second = start(root, "approves_all.toml", env, "--max-workers", "2")

    assert_clean_exit(second, 0)
    assert second.stdout.startswith(f"Resuming run {run_id} ")
    assert reader.run_ids(db_of(root)) == [run_id]
    assert files_on(root, "main") == {"requirements.md", "t1.txt", "t2.txt", "t3.txt"}
    rows = journal(root, after_seq=before)
    assert developer_turns(rows, "t1") == []  # t1 is not redone
    assert not messages(rows, TaskStateChanged, task_id="t1")
    t2_turn = developer_turns(rows, "t2")[0]
    assert NOTE in t2_turn.argv[-1]  # the prompt: the human's note reached the developer
    assert t2_turn.resume and t2_turn.session_id == last_t2_session
    assert messages(rows, TaskMerged, task_id="t2") and messages(rows, TaskMerged, task_id="t3")
    assert [f.outcome for f in messages(rows, RunFinished)] == ["done"]
    state = status_json(root, env)
    assert {t["state"] for t in state["tasks"].values()} == {"merged"}


def test_a_task_resolved_by_a_human_lets_its_dependents_run(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "0"}  # escalated at the first rejection
    assert_clean_exit(start(root, "rejects_t2.toml", env, "--max-workers", "2"), 1)
    assert status_json(root, env)["tasks"]["t2"]["state"] == "escalated"

    resolve = run_autonoma("resolve", "t2", "--note", "I wrote t2.txt myself", cwd=root, env=env)
    assert_clean_exit(resolve, 0)
    assert resolve.stdout.startswith("t2 will be marked resolved when the run resumes")
    before = reader.last_seq(db_of(root))

    second = start(root, "rejects_t2.toml", env, "--max-workers", "2")

    assert_clean_exit(second, 0)
    assert second.stdout.startswith("Resuming run ")
    rows = journal(root, after_seq=before)
    assert developer_turns(rows, "t2") == []  # resolved, not worked on again
    assert [s.state for s in messages(rows, TaskStateChanged, task_id="t2")] == ["resolved"]
    assert len(developer_turns(rows, "t3")) == 1
    assert messages(rows, TaskMerged, task_id="t3")
    # t2's branch was never merged: the human said it is done.
    assert files_on(root, "main") == {"requirements.md", "t1.txt", "t3.txt"}
    (finished,) = messages(rows, RunFinished)
    assert finished.outcome == "done"
    assert "1 resolved by hand" in finished.summary
    tasks = status_json(root, env)["tasks"]
    assert (tasks["t1"]["state"], tasks["t2"]["state"], tasks["t3"]["state"]) == (
        "merged",
        "resolved",
        "merged",
    )


# --- 2. a rate-limit storm -----------------------------------------------------------


def test_a_429_storm_holds_new_agents_back_and_fails_no_task(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)

    result = start(root, "storm.toml", clean_env, "--max-workers", "2")

    assert_clean_exit(result, 0)
    assert files_on(root, "main") == {"requirements.md", "t1.txt", "t2.txt", "t3.txt", "t4.txt"}
    rows = journal(root)
    # claude does not retry by itself: refused, it waits frozen, and each of its retries
    # is the crew's probe, one per window, until one goes through; its turn goes on.
    retries = envelopes(rows, AgentApiRetry, error_status=429)
    assert retries and {r.message.task_id for r in retries} == {"t1"}
    assert [r.message.attempt for r in retries] == [1, 2, 3]
    assert all(r.message.max_retries == Settings().agent_api_retries for r in retries)
    frozen = envelopes(rows, AgentStateChanged, task_id="t1", state="waiting")
    assert [f.sender for f in frozen] == ["developer-1"] * 3  # frozen after each refusal
    gave_up = [
        f for f in messages(rows, AgentTurnFinished, task_id="t1") if f.api_error_status == 429
    ]
    assert gave_up == []
    t1_turns = messages(rows, AgentTurnStarting, task_id="t1", role="developer")
    assert len(t1_turns) == 1  # never started again: no start-up, no work done twice
    holds = envelopes(rows, SpawnsHeld)
    assert holds, "the governor never held spawns back"
    assert holds[0].ts >= retries[0].ts
    starts = envelopes(rows, AgentTurnStarting)
    # A hold ends when its window does, or when the journal says it was lifted (a request
    # sent during the storm went through): the held turns then resume at once.
    through = [e.ts for e in envelopes(rows, HoldLifted)]

    def held(began: float, until: float, at: float) -> bool:
        return began <= at < until and not any(began <= ts <= at for ts in through)

    spawned_while_held = [
        (s.message.agent_id, s.message.task_id)
        for s in starts
        if held(retries[0].ts, holds[0].message.until, s.ts)
        or any(held(h.ts, h.message.until, s.ts) for h in holds)
    ]
    assert spawned_while_held == []
    # What was held back showed as waiting on the governor, not as busy nor dead.
    # A refused agent is frozen when its refusal arrives, which may be journaled just
    # before the orchestrator's hold; every other wait comes after the hold.
    waiting = envelopes(rows, AgentStateChanged, state="waiting")
    assert waiting and all(w.ts >= retries[0].ts for w in waiting)
    frozen_seqs = {f.seq for f in frozen}
    assert all(w.ts >= holds[0].ts for w in waiting if w.seq not in frozen_seqs)
    assert {w.message.task_id for w in waiting} <= {"t1", "t2", "t3", "t4"}  # t1: resumed
    # Work was waiting when the storm hit (two workers, four tasks): t3 and t4 were
    # ready before it, and started only once the first hold was over: its window ended,
    # or a request went through (developer-2's own work may, before the window's end).
    over = min([holds[0].message.until, *(ts for ts in through if ts >= holds[0].ts)])
    for task_id in ("t3", "t4"):
        (ready,) = envelopes(rows, TaskStateChanged, task_id=task_id, state="ready")
        assert ready.ts < retries[0].ts
        assert envelopes(rows, AgentTurnStarting, task_id=task_id)[0].ts >= over
    # The limit failed nothing and was short: no pause.
    assert not messages(rows, TaskStateChanged, state="failed")
    assert not messages(rows, TaskStateChanged, state="escalated")
    assert not messages(rows, WorkPaused)
    assert {m.task_id for m in messages(rows, TaskMerged)} == {"t1", "t2", "t3", "t4"}
    assert [f.outcome for f in messages(rows, RunFinished)] == ["done"]


# --- 3. a crashed developer actor ----------------------------------------------------


class InProcessRun:
    """`run.execute` of a prepared run in a thread of this process, as `autonoma start` does."""

    def __init__(self, root: Path, scenario: str) -> None:
        self.root = root
        proj, _ = project.init(root)
        self.prepared = run.prepare(
            proj,
            RunOptions(
                requirements=root / "requirements.md",
                scenario=SCENARIOS / scenario,
                max_workers=1,
            ),
        )
        self.results: list[RunResult] = []
        self.thread = threading.Thread(
            target=lambda: self.results.append(run.execute(self.prepared)),
            name="test-run",
            daemon=True,
        )
        self.thread.start()

    def first(self, kind: type[M], **fields: Any) -> Row[M]:
        """The first such envelope in the journal, waited for."""
        found: list[Row[M]] = wait_for(
            lambda: envelopes(journal(self.root), kind, **fields), timeout=60, interval=0.05
        )
        return found[0]

    def result(self) -> RunResult:
        self.thread.join(RUN_TIMEOUT)
        assert not self.thread.is_alive(), "the run did not end"
        (result,) = self.results
        return result


def crash_agent(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the agent actor ``name`` crash on a call (its handler raises), as a bug would."""
    (ref,) = [
        r
        for r in pykka.ActorRegistry.get_by_class(AgentActor)
        if r.is_alive() and r.proxy().agent_id.get(timeout=10) == name
    ]
    with monkeypatch.context() as patch:
        patch.setattr(AgentActor, "busy", lambda self: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            ref.proxy().busy().get(timeout=10)


def check_restart(rows: list[Envelope]) -> Row[ActorCrashed]:
    """developer-1 crashed once and the crew supervisor restarted it; the crash envelope."""
    (crash,) = envelopes(rows, ActorCrashed, name="developer-1")
    assert (crash.message.supervisor, crash.message.error_type) == ("crew", "ZeroDivisionError")
    restarts = envelopes(rows, ActorStarted, name="developer-1", restart=True)
    assert len(restarts) == 1
    assert restarts[0].sender == "crew" and restarts[0].message.supervisor == "crew"
    assert restarts[0].seq > crash.seq
    return crash


def check_task_merged_unfailed(root: Path, rows: list[Envelope], result: RunResult) -> None:
    assert result.outcome == "done", result.summary
    assert [f.outcome for f in messages(rows, RunFinished)] == ["done"]
    assert messages(rows, TaskMerged, task_id="t1")
    t1_states = messages(rows, TaskStateChanged, task_id="t1")
    assert "failed" not in {s.state for s in t1_states}
    # The crash was not counted as a failed attempt.
    assert {s.attempt for s in t1_states if s.state == "running"} == {1}


def test_a_crashed_developer_is_restarted_and_resumes_its_session_in_the_same_worktree(
    tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path)
    running = InProcessRun(root, "crash_mid_turn.toml")
    first = running.first(AgentTurnStarting, agent_id="developer-1").message
    # The developer wrote t1.txt (its first answer), and claude saved that much of the
    # session; its second answer is slow: the turn is in flight.
    running.first(AgentToolResult, agent_id="developer-1")
    home = root / ".autonoma" / "claude-home" / running.prepared.run_id
    wait_for(
        lambda: any(
            "written before the crash" in path.read_text(errors="replace")
            for path in home.rglob(f"{first.session_id}.jsonl")
        ),
        timeout=30,
        interval=0.05,
    )

    crash_agent("developer-1", monkeypatch)
    result = running.result()

    rows = journal(root)
    crash = check_restart(rows)
    turns = [
        e.message
        for e in envelopes(rows, AgentTurnStarting, role="developer", task_id="t1")
        if e.seq > crash.seq
    ]
    assert len(turns) == 1
    resumed = turns[0]
    assert resumed.agent_id == "developer-1"
    assert resumed.resume and resumed.session_id == first.session_id
    assert resumed.cwd == first.cwd  # the same worktree
    assert "was interrupted before it finished" in resumed.argv[-1]
    check_task_merged_unfailed(root, rows, result)
    # Nothing was lost: the resumed turn only committed what the first one wrote.
    assert git(root, "show", "main:t1.txt") == "written before the crash\n"


def test_a_developer_crashed_before_claude_saved_its_session_starts_a_new_one(
    tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path)
    running = InProcessRun(root, "crash_before_first_answer.toml")
    # claude reported its session, but its first answer takes 2 s: nothing is saved yet.
    running.first(AgentSessionStarted, agent_id="developer-1")

    crash_agent("developer-1", monkeypatch)
    result = running.result()

    rows = journal(root)
    crash = check_restart(rows)
    first = developer_turns(rows, "t1")[0]
    later = [e for e in rows if e.seq > crash.seq]
    starts = messages(later, AgentTurnStarting, agent_id="developer-1")
    ends = messages(later, AgentTurnFinished, agent_id="developer-1")
    assert starts and len(starts) == len(ends)
    assert all(s.cwd == first.cwd for s in starts)  # always the same worktree
    for (turn, end), following in zip(zip(starts, ends, strict=True), starts[1:], strict=False):
        if turn.resume and any("No conversation found" in e for e in end.errors):
            # claude could not resume what it never saved: a new session, not a failure.
            assert not following.resume and following.session_id != turn.session_id
    assert not ends[-1].is_error
    check_task_merged_unfailed(root, rows, result)


def test_an_orchestrator_that_keeps_crashing_ends_the_run_instead_of_hanging(
    tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: _Step) -> None:
        raise RuntimeError("a bug in development")

    monkeypatch.setattr(_Step, "_develop", broken)
    root = make_project(tmp_path)
    running = InProcessRun(root, "approves_all.toml")
    result = running.result()

    assert result.outcome == "failed"
    assert "orchestrator kept crashing" in result.summary
    rows = journal(root)
    crashes = messages(rows, ActorCrashed, name="orchestrator")
    assert len(crashes) == 4  # the root allows 3 restarts in its window
    assert {c.error_text for c in crashes} == {"a bug in development"}
    assert messages(rows, Escalation, source="orchestrator")
    assert messages(rows, RunFinished)[-1].outcome == "failed"


def test_too_many_crashes_make_the_crew_give_up_the_root_pause_and_autonoma_resume_go_on(
    tmp_path: Path, clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTONOMA_RESTART_INTENSITY", "1")
    root = make_project(tmp_path)
    running = InProcessRun(root, "crash_mid_turn.toml")
    running.first(AgentSessionStarted, agent_id="developer-1")
    crash_agent("developer-1", monkeypatch)
    running.first(ActorStarted, name="developer-1", restart=True)
    crash_agent("developer-1", monkeypatch)  # the second within the period: too many

    gave_up = running.first(SupervisorGaveUp, name="crew")
    paused = running.first(WorkPaused)
    assert paused.sender == "root"
    running.first(Escalation, source="crew")
    # The root restarts the crew, but starts no new work: no turn after the pause.
    running.first(ActorStarted, name="crew", restart=True)
    time.sleep(1.0)  # five ticks of the orchestrator
    assert not [e for e in envelopes(journal(root), AgentTurnStarting) if e.seq > paused.seq]
    state = status_json(root, clean_env)
    assert state["paused"] and state["escalations"][0]["source"] == "crew"
    assert "crew" in state["pause_reason"]

    # A human resumes it from another terminal: no stop and start needed.
    resumed = run_autonoma("resume", cwd=root, env=clean_env)
    assert resumed.returncode == 0, resumed.stderr
    result = running.result()
    assert result.outcome == "done", result.summary
    rows = journal(root)
    (human,) = envelopes(rows, ResumeRequested)
    (again,) = envelopes(rows, WorkResumed)
    assert again.sender == "root" and again.message.reason == f"by {human.message.origin}"
    assert [e for e in envelopes(rows, AgentTurnStarting) if e.seq > again.seq]
    assert gave_up.seq < paused.seq < human.seq < again.seq
    assert messages(rows, TaskMerged, task_id="t1")
    assert not status_json(root, clean_env)["paused"]


# --- 4. bad input for `autonoma start` ------------------------------------------------


def _write(name: str, data: bytes) -> Any:
    def setup(root: Path) -> None:
        (root / name).write_bytes(data)

    return setup


def _folder(root: Path) -> None:
    (root / "specs").mkdir()
    (root / "specs" / "requirements.md").write_text(REQUIREMENTS)


def _dirty(root: Path) -> None:
    (root / "notes.txt").write_text("tracked\n")
    git(root, "add", "notes.txt")
    git(root, "commit", "-q", "-m", "Notes")
    (root / "notes.txt").write_text("changed\n")


def _broken_scenario(root: Path) -> None:
    (root.parent / "broken.toml").write_text('[[rule]]\nrole = "developer"\n')


def _nothing(root: Path) -> None:
    pass


BAD_STARTS = [
    ("missing", _nothing, ["nothere.md"], {}, "nothere.md: no such file"),
    ("empty", _write("empty.md", b" \n"), ["empty.md"], {}, "empty.md: is empty"),
    ("binary", _write("bin.md", b"PK\x03\x04\0\0\x01"), ["bin.md"], {}, "holds NUL bytes"),
    ("folder", _folder, ["specs"], {}, "specs: is a folder, not a requirements file"),
    ("dirty", _dirty, ["requirements.md"], {}, "uncommitted changes"),
    (
        "no workers",
        _nothing,
        ["requirements.md", "--max-workers", "0"],
        {},
        "--max-workers must be from 1 to 64, not 0",
    ),
    (
        "broken scenario",
        _broken_scenario,
        ["requirements.md", "--scenario", "../broken.toml"],
        {},
        "broken.toml: ",
    ),
    (
        "claude not found",
        _nothing,
        ["requirements.md"],
        {"AUTONOMA_CLAUDE_PATH": "/nonexistent"},
        "claude_path '/nonexistent' (AUTONOMA_CLAUDE_PATH or config.toml): no executable",
    ),
]


def worktree_status(root: Path) -> str:
    """``git status`` of the user's files (Autonoma's own folder left out)."""
    lines = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    return "\n".join(line for line in lines if ".autonoma/" not in line)


def check_refused(
    root: Path, result: subprocess.CompletedProcess[str], expected: str, head: str, status: str
) -> None:
    """One line on stderr, no traceback, a non-zero exit, and no run, branch or commit."""
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith("autonoma: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    if "uncommitted" in expected:
        assert "notes.txt" in result.stderr
    assert reader.run_ids(db_of(root)) == []
    assert autonoma_branches(root) == []
    assert git(root, "rev-parse", "HEAD") == head
    assert worktree_status(root) == status


@pytest.mark.parametrize(
    ("setup", "args", "env_extra", "expected"),
    [case[1:] for case in BAD_STARTS],
    ids=[case[0] for case in BAD_STARTS],
)
def test_bad_input_for_start_is_one_line_and_changes_nothing(
    tmp_path: Path,
    clean_env: dict[str, str],
    setup: Any,
    args: list[str],
    env_extra: dict[str, str],
    expected: str,
) -> None:
    root = make_project(tmp_path)
    setup(root)
    head = git(root, "rev-parse", "HEAD")
    status = worktree_status(root)
    scenario = [] if "--scenario" in args else ["--scenario", str(SCENARIOS / "approves_all.toml")]

    result = run_autonoma("start", *args, *scenario, cwd=root, env={**clean_env, **env_extra})

    check_refused(root, result, expected, head, status)


def test_start_while_a_run_is_active_is_refused(tmp_path: Path, clean_env: dict[str, str]) -> None:
    root = make_project(tmp_path)
    head = git(root, "rev-parse", "HEAD")
    with hold_run_lock(root) as holder:
        status = worktree_status(root)
        result = start(root, "approves_all.toml", clean_env)
        check_refused(
            root,
            result,
            f"a run is already active in this project (pid {holder.pid})",
            head,
            status,
        )


def test_start_outside_a_git_repository_is_refused(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "requirements.md").write_text(REQUIREMENTS)

    result = start(folder, "approves_all.toml", clean_env)

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.startswith("autonoma: not a git repository")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["requirements.md"]


# --- 5. agents never push ------------------------------------------------------------


def test_agents_never_push(tmp_path: Path, clean_env: dict[str, str]) -> None:
    root = make_project(tmp_path)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(root, "remote", "add", "origin", str(remote))

    result = start(root, "push.toml", clean_env, "--max-workers", "1")

    assert_clean_exit(result, 0)
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}
    # The remote has no refs at all: neither the run nor the agent pushed anything.
    assert git(remote, "for-each-ref") == ""
    rows = journal(root)
    pushes = [
        m
        for m in messages(rows, AgentToolUse, tool="Bash", task_id="t1")
        if "git push" in m.input.get("command", "")
    ]
    assert len(pushes) == 2
    # The task's clone has no remote: "origin" is taken as a URL, and the guard refuses
    # every push URL, as it does the remote's path.
    for push in pushes:
        (answer,) = messages(rows, AgentToolResult, tool_use_id=push.tool_use_id)
        assert answer.is_error
        assert PUSH_REFUSED in answer.content, answer.content
    assert "agents never push" in PUSH_REFUSED
