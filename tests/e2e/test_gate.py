"""The project's set-up and test commands, end to end: one test gate on every merge.

The real ``autonoma start``, the real ``claude`` and the scenarios ``scenarios/gate_*``.
The tests' own Python (with pytest) comes first on the PATH, as in the demo.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from autonoma.protocol import (
    AgentTurnStarting,
    Escalation,
    MergeFailed,
    ProjectCommands,
    RunFinished,
    SetupRan,
    TaskMerged,
    TaskStateChanged,
)
from autonoma.workflow.commands import no_test_command
from tests.conftest import run_autonoma
from tests.e2e.runs import (
    assert_clean_exit,
    files_on,
    git,
    journal,
    make_project,
    messages,
    prompts,
    start,
    status_json,
)


def with_python(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this Python's folder (pytest installed) first on the PATH."""
    return {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])}


def status_text(root: Path, env: dict[str, str]) -> str:
    result = run_autonoma("status", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_docs_only_first_task_merges_although_pytest_collects_nothing(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = with_python(clean_env)
    result = start(root, "gate_docs_first.toml", env)
    assert_clean_exit(result, 0)
    rows = journal(root)
    [commands] = messages(rows, ProjectCommands)
    assert commands.test_command == "python3 -m pytest -q -p no:cacheprovider"
    assert commands.test_source == "staff_engineer" and commands.setup_command == ""
    merged = {m.task_id: m for m in messages(rows, TaskMerged)}
    # pytest exited 5 on t1's merge: no test existed yet. t2's test ran and passed.
    assert merged["t1"].tests == "no_tests"
    assert "no tests collected yet" in merged["t1"].detail
    assert merged["t2"].tests == "passed" and merged["t2"].detail == ""
    assert messages(rows, MergeFailed) == []
    assert {"README.md", "test_hello.py"} <= files_on(root, "main")
    # QA was told the exact command, and that no tests yet is no failure.
    qa = [p for p in prompts(rows, role="qa") if p]
    assert "run `python3 -m pytest -q -p no:cacheprovider`" in qa[0]
    assert "pytest's exit code 5" in qa[0]
    assert "tests: `python3 -m pytest -q -p no:cacheprovider` (from the Staff Engineer)" in (
        status_text(root, env)
    )
    state = status_json(root, env)
    run = state["runs"][state["current_run"]]
    assert run["commands"]["test_command"] == commands.test_command
    assert run["tests_seen"] is True


def test_without_a_test_command_nothing_merges_until_one_is_set(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = with_python(clean_env)
    result = start(root, "gate_no_tests.toml", env)
    assert_clean_exit(result, 1)
    rows = journal(root)
    [refused] = messages(rows, MergeFailed)
    assert refused.kind == "no_test_command"
    reason = no_test_command("t1")
    assert "test_command" in reason and '"none"' in reason
    assert messages(rows, TaskMerged) == []
    assert "t1.txt" not in files_on(root, "main")
    [escalation] = messages(rows, Escalation)
    assert escalation.task_id == "t1" and escalation.reason == f"t1: {reason}"
    assert messages(rows, TaskStateChanged)[-1].state == "escalated"
    assert reason in result.stdout
    assert "tests: NONE known: merging is refused" in status_text(root, env)

    # The user names the tests, as the reason says: the resumed run uses them.
    (root / ".autonoma" / "config.toml").write_text('test_command = "test -f t1.txt"\n')
    assert_clean_exit(run_autonoma("retry", "t1", cwd=root, env=env), 0)
    resumed = start(root, "gate_no_tests.toml", env)
    assert_clean_exit(resumed, 0)
    after = journal(root)
    latest = messages(after, ProjectCommands)[-1]
    assert (latest.test_command, latest.test_source) == ("test -f t1.txt", "config")
    assert [m.tests for m in messages(after, TaskMerged)] == ["passed"]
    assert "t1.txt" in files_on(root, "main")


def test_a_user_who_opted_out_of_tests_gets_merges_that_say_so(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**with_python(clean_env), "AUTONOMA_TEST_COMMAND": "none"}
    result = start(root, "gate_no_tests.toml", env)
    assert_clean_exit(result, 0)
    rows = journal(root)
    [commands] = messages(rows, ProjectCommands)
    assert commands.tests_opted_out and commands.test_command == ""
    [merged] = messages(rows, TaskMerged)
    assert merged.tests == "opted_out"
    assert merged.detail == 'tests not run: the user opted out (test_command = "none")'
    assert messages(rows, MergeFailed) == []
    assert "t1.txt" in files_on(root, "main")
    assert "tests: none, by the user's choice" in status_text(root, env)
    qa = [p for p in prompts(rows, role="qa") if p]
    assert "the user opted out of automated tests" in qa[0]


def test_a_failing_set_up_is_retried_then_escalated_with_its_output(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**with_python(clean_env), "AUTONOMA_MAX_RETRIES": "1"}
    result = start(root, "gate_setup_fails.toml", env)
    assert_clean_exit(result, 1)
    rows = journal(root)
    setups = messages(rows, SetupRan, task_id="t1")
    assert [(s.place, s.exit_code, s.timed_out) for s in setups] == [("task", 3, False)] * 2
    assert "No matching distribution found for left-pad==9.9" in setups[0].output_tail
    assert all(s.worktree.endswith("/t1") and s.duration_s >= 0 for s in setups)
    # The turn never started.
    assert [m for m in messages(rows, AgentTurnStarting) if m.role == "developer"] == []
    states = [(m.state, m.attempt) for m in messages(rows, TaskStateChanged, task_id="t1")]
    assert states[-4:] == [("failed", 1), ("running", 2), ("failed", 2), ("escalated", 0)]
    [escalation] = messages(rows, Escalation)
    assert escalation.reason.startswith("t1: failed 2 times; last: the set-up command `echo")
    assert "(exit code 3): ERROR: No matching distribution found for left-pad" in (
        escalation.reason
    )
    assert "last set-up (worktree) failed, exit code 3" in status_text(root, env)


def test_the_set_up_runs_in_each_worktree_and_in_the_merge_gate_before_the_tests(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    # What the set-up installs stays out of git.
    (root / ".gitignore").write_text(".venv/\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-q", "-m", "Ignore the venv")
    env = with_python(clean_env)
    result = start(root, "gate_setup_venv.toml", env, "--max-workers", "2")
    assert_clean_exit(result, 0)
    rows = journal(root)
    setups = messages(rows, SetupRan)
    assert all(s.exit_code == 0 for s in setups), [s.output_tail for s in setups]
    assert sorted(s.task_id or "" for s in setups if s.place == "task") == ["t1", "t2"]
    assert sorted(s.task_id or "" for s in setups if s.place == "merge_gate") == ["t1", "t2"]
    # The developers found the venv in their worktrees; the merge gate's tests found it
    # (and pip's shared cache folder) in the check worktree.
    assert [m.tests for m in messages(rows, TaskMerged)] == ["passed", "passed"]
    assert messages(rows, MergeFailed) == []
    assert {"t1.txt", "t2.txt"} <= files_on(root, "main")
    assert not any(f.startswith(".venv") for f in files_on(root, "main"))
    assert messages(rows, RunFinished)[-1].outcome == "done"
