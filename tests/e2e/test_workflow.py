"""The workflow's own checks, end to end: a bad task list sent back with its errors, work
left uncommitted, tests that fail only on the merged result, and the run's budget.

The real ``autonoma start``, the real ``claude`` and the scenarios in ``scenarios/``.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

from autonoma.protocol import (
    AgentToolResult,
    AgentToolUse,
    AgentTurnStarting,
    BudgetReached,
    Escalation,
    MergeFailed,
    PhaseChanged,
    RetryRequested,
    ReviewVerdict,
    RunFinished,
    TaskDefined,
    TaskStateChanged,
    WorkCommittedForAgent,
    WorkLeftOut,
)
from tests.conftest import run_autonoma
from tests.e2e.runs import (
    SCENARIOS,
    assert_clean_exit,
    files_on,
    git,
    journal,
    make_project,
    messages,
    start,
    status_json,
)
from tests.journal.testlib import wait_for


def test_a_task_list_with_a_cycle_goes_back_with_its_errors_and_the_fixed_one_runs(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    result = start(root, "redecompose.toml", clean_env, "--max-workers", "2")
    assert_clean_exit(result, 0)
    rows = journal(root)
    asked = [
        m.argv[-1] for m in messages(rows, AgentTurnStarting) if m.agent_id == "staff_engineer"
    ]
    assert len(asked) == 2
    # The exact validation errors went back to the same session.
    assert asked[1].startswith("Your task list was rejected")
    assert "cycle: t1 -> t2 -> t1" in asked[1]
    assert "t2 depends on t9, which is not a task" in asked[1]
    assert [
        m.resume for m in messages(rows, AgentTurnStarting) if m.agent_id == "staff_engineer"
    ] == [
        False,
        True,
    ]
    # Only the valid list was defined.
    assert [(m.task_id, m.deps) for m in messages(rows, TaskDefined)] == [
        ("t1", []),
        ("t2", ["t1"]),
    ]
    assert {"t1.txt", "t2.txt"} <= files_on(root, "main")


def test_work_a_developer_left_uncommitted_is_committed_for_it_and_journaled(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    assert_clean_exit(start(root, "redecompose.toml", clean_env), 0)
    [committed] = messages(journal(root), WorkCommittedForAgent)
    assert committed.task_id == "t2" and committed.files == ["t2.txt"]
    message = git(root, "log", "-1", "--format=%s", committed.commit)
    assert message.strip() == "t2: work developer-1 left uncommitted"
    assert "t2.txt" in files_on(root, "main")


def test_caches_secrets_and_undeclared_files_stay_out_of_main_and_are_reported(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    (root / "tracked.txt").write_text("tracked\n")
    git(root, "add", "tracked.txt")
    git(root, "commit", "-q", "-m", "A tracked file")

    result = start(root, "leftovers.toml", clean_env, "--max-workers", "2")

    assert_clean_exit(result, 0)
    # main: the declared file, the tracked change, t2's own commit; no cache, no
    # virtual environment, no node_modules, no .env, no undeclared file.
    assert files_on(root, "main") == {"requirements.md", "tracked.txt", "declared.txt", "t2.txt"}
    assert git(root, "show", "main:tracked.txt") == "tracked\nchanged\n"
    left = [".env", ".venv/", "__pycache__/", "node_modules/", "undeclared.txt"]
    rows = journal(root)
    [committed] = messages(rows, WorkCommittedForAgent)
    assert committed.task_id == "t1"
    assert (committed.files, committed.left_out) == (["declared.txt", "tracked.txt"], left)
    # t2 committed itself with `git add -A`: its git did not see .env or __pycache__/.
    [looked] = [
        m
        for m in messages(rows, AgentToolUse, tool="Bash", task_id="t2")
        if "git status" in m.input.get("command", "")
    ]
    [seen] = messages(rows, AgentToolResult, tool_use_id=looked.tool_use_id)
    assert seen.content.strip() == "?? t2.txt", seen.content
    [kept] = messages(rows, WorkLeftOut)
    assert (kept.task_id, kept.left_out) == ("t2", [".env", "__pycache__/"])
    # What was left out is in the log, in status, and in status --json.
    assert f"committed as {committed.commit[:8]} (2 files); left out" in result.stdout
    assert "[t2] nothing committed for it; left out" in result.stdout
    status = run_autonoma("status", cwd=root, env=clean_env)
    shown = "left out (excluded, or not in the task's files): "
    assert shown + ", ".join(left) in status.stdout
    assert shown + ".env, __pycache__/" in status.stdout
    assert status_json(root, clean_env)["tasks"]["t1"]["left_out"] == left
    # The user's own repository config and working tree are untouched.
    assert "excludesfile" not in git(root, "config", "--list").lower()
    assert git(root, "status", "--porcelain") == ""


def test_a_task_list_that_stays_invalid_stops_the_run_with_an_escalation(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "1"}
    result = start(root, "bad_tasks_always.toml", env)
    assert_clean_exit(result, 1)
    assert "the task list was rejected 2 times; last: t1 depends on itself" in result.stdout
    rows = journal(root)
    [escalation] = messages(rows, Escalation)
    assert escalation.source == "orchestrator" and "t1 depends on itself" in escalation.reason
    assert messages(rows, TaskDefined) == []
    assert [m.phase for m in messages(rows, PhaseChanged)] == [
        "planning",
        "decomposition",
        "stopped",
    ]
    assert messages(rows, RunFinished)[-1].outcome == "failed"
    state = status_json(root, env)
    assert state["escalations"][0]["reason"] == escalation.reason


def test_tests_red_on_the_merged_result_send_the_task_back_with_their_output(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    result = start(root, "red_merge.toml", clean_env, "--max-workers", "2")
    assert_clean_exit(result, 0)
    rows = journal(root)
    [red] = messages(rows, MergeFailed)
    assert red.task_id == "t2" and red.kind == "tests_failed"
    assert "$ test ! -f a.txt || test ! -f b.txt || test -f fix.txt" in red.output
    # main never held the red result: t2 merged only with its fix.
    assert {"a.txt", "b.txt", "fix.txt"} <= files_on(root, "main")
    followup = [
        m for m in messages(rows, AgentTurnStarting) if m.task_id == "t2" and m.role == "developer"
    ][1]
    assert followup.resume
    assert "the tests failed on the merged result" in followup.argv[-1]
    assert "test ! -f a.txt || test ! -f b.txt || test -f fix.txt" in followup.argv[-1]
    states = [(m.task_id, m.state) for m in messages(rows, TaskStateChanged)]
    assert ("t2", "failed") in states and states[-1] in (("t2", "merged"), ("t1", "merged"))


def test_a_run_past_its_budget_starts_no_new_work_and_says_so(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_BUDGET_USD": "0.03"}
    result = start(root, "approves_all.toml", env, "--max-workers", "1")
    assert_clean_exit(result, 1)
    assert "run budget $0.0300 reached" in result.stdout
    assert "raise budget_usd (AUTONOMA_BUDGET_USD)" in result.stdout
    rows = journal(root)
    [reached] = messages(rows, BudgetReached)
    assert reached.scope == "run" and reached.spent_usd >= 0.03
    reached_at = next(e.seq for e in rows if isinstance(e.message, BudgetReached))
    started_after = [
        e for e in rows if e.seq > reached_at and isinstance(e.message, AgentTurnStarting)
    ]
    assert started_after == []
    # No task failed because of the budget; the rest waits to be resumed.
    assert all(m.state != "failed" for m in messages(rows, TaskStateChanged))
    assert "BUDGET: run budget $0.0300 reached" in status_text(root, env)


def status_text(root: Path, env: dict[str, str]) -> str:
    """What ``autonoma status`` prints."""
    result = run_autonoma("status", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_human_retry_reaches_the_active_run_and_the_task_is_merged(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "0"}
    active = subprocess.Popen(
        [
            *(sys.executable, "-m", "autonoma", "start", "requirements.md"),
            *("--scenario", str(SCENARIOS / "retry_live.toml"), "--max-workers", "2"),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: messages(journal(root), TaskStateChanged, task_id="t2", state="escalated"),
            timeout=60,
            interval=0.05,
        )
        sent = run_autonoma("retry", "t2", "--note", "It must say hello.", cwd=root, env=env)
        assert_clean_exit(sent, 0)
        assert "sent to the active run" in sent.stdout
        stdout, stderr = active.communicate(timeout=90)
    finally:
        active.kill()
    assert active.returncode == 0, stdout + stderr
    rows = journal(root)
    (request,) = messages(rows, RetryRequested, task_id="t2")
    assert request.note == "It must say hello."
    # Signed by the command line, checked by the run, journaled with where it came from.
    assert request.origin.startswith(f"user {pwd.getpwuid(os.getuid()).pw_name} ")
    assert f"host {socket.gethostname()}" in request.origin
    logs = run_autonoma("logs", "--limit", "100000", cwd=root, env=env).stdout.splitlines()
    (shown,) = [line for line in logs if " RetryRequested " in line]
    assert shown.endswith(
        f"t2: a human asked for a retry: It must say hello. (from {request.origin})"
    )
    assert not [line for line in logs if " HumanCommandRejected " in line]
    retried = [m for m in messages(rows, AgentTurnStarting, task_id="t2") if m.role == "developer"][
        -1
    ]
    assert "It must say hello." in retried.argv[-1]
    assert git(root, "show", "main:t2.txt") == "hello\n"
    assert messages(rows, RunFinished)[-1].outcome == "done"


def test_a_follow_up_that_never_started_is_still_told_when_the_run_resumes(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    # The run budget is reached by QA's rejection of t2: the run stops before t2's
    # developer hears why. Resumed with more budget, that turn says it.
    root = make_project(tmp_path)
    # The budget is set for claude's prices of this model (the opus alias costs less).
    env = {
        **clean_env,
        "AUTONOMA_BUDGET_USD": "0.03",
        "AUTONOMA_MAX_RETRIES": "1",
        "AUTONOMA_CLAUDE_MODEL": "claude-opus-4-5-20251101",
    }
    stopped = start(root, "rejects_t2.toml", env, "--max-workers", "1")
    assert_clean_exit(stopped, 1)
    before = journal(root)
    assert [m.verdict for m in messages(before, ReviewVerdict)] == ["changes_requested"]
    assert len([m for m in messages(before, AgentTurnStarting) if m.role == "developer"]) == 1

    resumed = start(root, "approves_all.toml", clean_env, "--max-workers", "1")
    assert_clean_exit(resumed, 0)
    assert "Resuming run" in resumed.stdout
    after = journal(root)[len(before) :]
    told = next(m for m in messages(after, AgentTurnStarting) if m.task_id == "t2")
    assert told.role == "developer" and told.resume
    assert told.argv[-1].startswith("QA requested changes on task t2")
    assert "t2.txt must say hello" in told.argv[-1]


def test_a_resumed_run_moves_its_own_branch_whatever_is_checked_out_now(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "0"}
    assert_clean_exit(start(root, "rejects_t2.toml", env, "--max-workers", "1"), 1)
    git(root, "checkout", "-q", "-b", "elsewhere")
    elsewhere = git(root, "rev-parse", "elsewhere")
    assert_clean_exit(run_autonoma("retry", "t2", cwd=root, env=env), 0)

    resumed = start(root, "approves_all.toml", env, "--max-workers", "1")

    assert_clean_exit(resumed, 0)
    assert {"t1.txt", "t2.txt", "t3.txt"} <= files_on(root, "main")
    assert git(root, "rev-parse", "elsewhere") == elsewhere
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
