"""What agents tell each other, what claude refuses them, and resumes that stay safe.

The real ``autonoma start``, the real ``claude`` and the scenarios in ``scenarios/``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

from autonoma import hints
from autonoma.journal.writer import Journal
from autonoma.protocol import (
    AnswerRejected,
    DeveloperReport,
    Escalation,
    PermissionDenied,
    RunStarted,
    SchemaRejected,
    TaskDefined,
)
from autonoma.runtime.bus import Bus
from tests.conftest import run_autonoma
from tests.e2e.runs import (
    SCENARIOS,
    assert_clean_exit,
    db_of,
    files_on,
    journal,
    make_project,
    messages,
    model_file,
    prompts,
    start,
    status_json,
)


def _prompts(rows: list, role: str, task: str) -> list[str]:  # type: ignore[type-arg]
    return [p for p in prompts(rows, role=role, task_id=task) if p]


def test_reports_reach_qa_a_re_review_sees_its_verdict_and_refusals_show(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    result = start(root, "talk.toml", clean_env, "--max-workers", "2")
    assert_clean_exit(result, 0)
    assert {"t1.txt", "t2.txt"} <= files_on(root, "main")
    rows = journal(root)

    # The developer's structured summary, journaled, then quoted in QA's prompt.
    reports = messages(rows, DeveloperReport, task_id="t1")
    assert [(r.summary, r.structured) for r in reports] == [
        ("Wrote t1.txt.", True),
        ("t1.txt now says hello, as QA asked.", True),
    ]
    assert reports[0].left == ["the greeting is a guess"]
    first, second = _prompts(rows, "qa", "t1")
    assert "Summary: Wrote t1.txt." in first and "the greeting is a guess" in first
    assert "(none: this is the first review of this task)" in first
    # The re-review: the first verdict, and the developer's answer to it.
    assert "Review 1 requested changes" in second and "t1.txt must say hello" in second
    assert "t1.txt now says hello, as QA asked." in second
    # A developer that ignored claude's nudge: its last words are its report.
    [plain] = messages(rows, DeveloperReport, task_id="t2")
    assert plain.summary == "I wrote t2.txt and committed it." and not plain.structured
    assert "its last words:\n\nI wrote t2.txt and committed it." in _prompts(rows, "qa", "t2")[0]

    # What claude refused, with its own reason: in the journal, the log and status.
    [denied] = messages(rows, PermissionDenied)
    assert denied.tool == "WebFetch" and denied.task_id == "t1"
    assert "requested permissions to use WebFetch" in denied.reason
    [rejected] = messages(rows, SchemaRejected)
    assert rejected.agent_id == "staff_engineer"
    assert '/tasks/0/id: must match pattern "^t[0-9]+$"' in rejected.reason
    assert [m.task_id for m in messages(rows, TaskDefined)] == ["t1", "t2"]
    assert f"developer-1 [t1] was denied WebFetch: {denied.reason}" in result.stdout
    assert "staff_engineer answer rejected by claude against the role's schema" in result.stdout
    assert "developer-2 [t2] says (no structured report): I wrote t2.txt" in result.stdout

    state = status_json(root, clean_env)
    t1 = state["tasks"]["t1"]
    assert [r["kind"] for r in t1["refusals"]] == ["permission"]
    assert any(e["state"] == "refused" and "WebFetch" in e["reason"] for e in t1["history"])
    last = state["agents"]["developer-1"]["last_refusal"]
    assert (last["kind"], last["tool"]) == ("permission", "WebFetch")
    assert last["text"] == f"was denied WebFetch: {denied.reason}"
    assert "schema" in state["agents"]["staff_engineer"]["last_refusal"]["text"]
    # status says it in the live log's words.
    text = run_autonoma("status", cwd=root, env=clean_env).stdout
    assert "refused:" in text and f"developer-1 [t1] was denied WebFetch: {denied.reason}" in text


def test_a_task_list_claude_rejects_fails_with_claudes_reason(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "0"}
    result = start(root, "schema_rejected_always.toml", env)
    assert_clean_exit(result, 1)
    [escalation] = messages(journal(root), Escalation)
    assert escalation.reason.endswith(
        "last: claude rejected the task list against the role's schema: Output does not "
        'match required schema: /tasks/0/id: must match pattern "^t[0-9]+$"'
    )
    assert "has no step" not in escalation.reason
    assert (
        "staff_engineer turn failed: claude rejected its answer against the role's schema: "
        "Output does not match required schema" in result.stdout
    )
    assert "has no step" not in result.stdout


def test_a_task_list_autonoma_rejects_is_journaled_and_shown(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "1"}
    result = start(root, "bad_tasks_always.toml", env)
    assert_clean_exit(result, 1)
    rejected = messages(journal(root), AnswerRejected)
    assert [(r.role, r.what, r.attempt, r.errors) for r in rejected] == [
        ("staff_engineer", "task list", 1, ["t1 depends on itself"]),
        ("staff_engineer", "task list", 2, ["t1 depends on itself"]),
    ]
    # One message, one line (it was a line per error).
    assert (
        "staff_engineer had its task list rejected (attempt 1): t1 depends on itself"
        in result.stdout
    )
    # status says the latest in the same words.
    text = run_autonoma("status", cwd=root, env=env).stdout
    assert "staff_engineer had its task list rejected (attempt 2): t1 depends on itself" in text


def _hint(line: str) -> list[str]:
    """The command between backticks in a printed line, as argv."""
    found = re.search(r"`([^`]+)` resumes", line)
    assert found is not None, line
    return shlex.split(found.group(1))


def test_a_resume_against_another_model_is_refused_with_the_command_that_resumes_it(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "0"}
    assert_clean_exit(start(root, "rejects_t2.toml", env, "--max-workers", "1"), 1)
    model = model_file(root, "rejects_t2.toml")
    [began] = messages(journal(root), RunStarted)
    assert began.endpoint == str(model)

    expected = [
        hints.program(),
        "start",
        str(root / "requirements.md"),
        "--scenario",
        str(model),
    ]
    other = tmp_path / "other.toml"
    other.write_text((SCENARIOS / "approves_all.toml").read_text())
    for wrong in ([], ["--scenario", str(other)]):
        refused = run_autonoma("start", "requirements.md", *wrong, cwd=root, env=env)
        assert_clean_exit(refused, 1)
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "`--new` starts over" in refused.stderr
        assert _hint(refused.stderr) == expected
    rows = len(journal(root))

    # The hint, run as printed, resumes the run (the model now approves t2).
    assert_clean_exit(run_autonoma("retry", "t2", cwd=root, env=env), 0)
    model.write_text((SCENARIOS / "approves_all.toml").read_text())
    status = run_autonoma("status", cwd=root, env=env).stdout
    line = next(x for x in status.splitlines() if "resume it" in x)
    argv = shlex.split(line.split(": ", 1)[1])
    assert argv == expected
    resumed = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert_clean_exit(resumed, 0)
    assert "Resuming run" in resumed.stdout
    assert len(messages(journal(root)[rows:], RunStarted, resumed=True)) == 1
    assert {"t1.txt", "t2.txt", "t3.txt"} <= files_on(root, "main")


def test_a_real_run_is_not_resumed_against_a_scenario(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    assert run_autonoma("init", cwd=root, env=clean_env).returncode == 0
    client = Journal.open(db_of(root))
    bus = Bus(run_id="run-1")
    bus.attach(client)
    requirements = str(root / "requirements.md")
    bus.publish(
        "orchestrator",
        RunStarted(requirements=requirements, project=str(root), max_workers=1, endpoint="api"),
        durable=True,
    )
    client.stop()
    refused = start(root, "approves_all.toml", clean_env)
    assert_clean_exit(refused, 1)
    assert "run run-1 is unfinished and was started against the real model" in refused.stderr
    assert _hint(refused.stderr) == [hints.program(), "start", requirements]
