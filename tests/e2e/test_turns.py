"""Turns as a real model has them, end to end (the real ``autonoma``, ``claude`` and the
sim): a developer that goes silent is stopped by the idle timeout and resumed once, told
so (a developer's, and the CEO's planning turn); silent twice, that is a failed attempt
with the reason; and every turn of a resumed session is booked once."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from autonoma.protocol import (
    AgentProcessExited,
    AgentTurnFinished,
    AgentTurnStarting,
    CostReported,
    RunFinished,
    TaskMerged,
    TaskStateChanged,
)
from tests.e2e.runs import (
    assert_clean_exit,
    files_on,
    journal,
    make_project,
    messages,
    start,
    status_json,
)

pytestmark = [pytest.mark.timeout(120)]

IDLE = "4"
"""The test's idle timeout, seconds: the silent steps answer after 12."""

STOPPED = "Your previous turn was stopped by Autonoma's idle timeout: it wrote no output for 4 s"
REASON = "no output for 4 s (idle timeout)"


def idle_env(clean_env: dict[str, str]) -> dict[str, str]:
    return {**clean_env, "AUTONOMA_TURN_IDLE_TIMEOUT": IDLE}


def test_a_silent_turn_is_stopped_resumed_once_and_the_task_merges(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)

    result = start(root, "idle_once.toml", idle_env(clean_env))

    assert_clean_exit(result, 0)
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}
    rows = journal(root)
    assert [f.outcome for f in messages(rows, RunFinished)] == ["done"]
    assert [m.task_id for m in messages(rows, TaskMerged)] == ["t1"]
    # The follow-up turn was stopped for its silence, then resumed in its session, told so.
    stops = [e for e in messages(rows, AgentProcessExited, task_id="t1") if e.timed_out]
    assert [(e.timeout, e.timeout_s) for e in stops] == [("idle", 4.0)]
    turns = messages(rows, AgentTurnStarting, role="developer", task_id="t1")
    assert len(turns) == 3
    assert [t.resume for t in turns] == [False, True, True]
    assert len({t.session_id for t in turns}) == 1
    assert turns[2].argv[-1].startswith(STOPPED)
    assert "Continue where you left off and finish task t1" in turns[2].argv[-1]
    # Not a failed attempt: shown as resumed, in the log and in status.
    states = messages(rows, TaskStateChanged, task_id="t1")
    failed = [s.reason for s in states if s.state == "failed"]
    assert failed == ["QA requested changes: write it again"]
    assert max(s.attempt for s in states) == 2
    assert f"developer-1 [t1] stopped: {REASON}" in result.stdout
    history = status_json(root, clean_env)["tasks"]["t1"]["history"]
    assert any(h["reason"] == f"resumed: the turn was stopped: {REASON}" for h in history)
    # Every turn booked once: the journal's cost is the sum over sessions of claude's
    # last running total (the developer's session reported three growing totals).
    last_total: dict[str, float] = defaultdict(float)
    for finished in messages(rows, AgentTurnFinished):
        last_total[finished.session_id] = max(
            last_total[finished.session_id], finished.total_cost_usd
        )
    costs = messages(rows, CostReported)
    assert sum(c.usd for c in costs) == pytest.approx(sum(last_total.values()))
    developer = [c for c in costs if c.session_id == turns[0].session_id]
    assert len(developer) == 2 and developer[1].session_usd > developer[0].session_usd
    assert status_json(root, clean_env)["usage"]["usd"] == pytest.approx(sum(last_total.values()))


def test_a_turn_silent_twice_is_a_failed_attempt_with_the_reason(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)

    result = start(root, "idle_twice.toml", idle_env(clean_env))

    assert_clean_exit(result, 0)
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}
    rows = journal(root)
    stops = [e for e in messages(rows, AgentProcessExited) if e.timed_out]
    assert [(e.agent_id, e.timeout) for e in stops] == [
        ("ceo", "idle"),
        ("developer-1", "idle"),
        ("developer-1", "idle"),
    ]
    turns = messages(rows, AgentTurnStarting, role="developer", task_id="t1")
    assert turns[1].resume and turns[1].argv[-1].startswith(STOPPED)
    failed = [s for s in messages(rows, TaskStateChanged, task_id="t1") if s.state == "failed"]
    assert [(f.reason, f.attempt) for f in failed] == [(f"the turn was stopped again: {REASON}", 1)]
    assert "did not finish the task: the turn was stopped again" in turns[2].argv[-1]
    status = status_json(root, clean_env)["tasks"]["t1"]
    assert status["state"] == "merged" and status["attempts"] == 2
    assert any(
        h["state"] == "failed" and h["reason"] == f"the turn was stopped again: {REASON}"
        for h in status["history"]
    )
    assert f"t1 → failed (attempt 1): the turn was stopped again: {REASON}" in result.stdout
    # The CEO's silent turn was resumed in its session, told so; the plan came from it.
    ceo = messages(rows, AgentTurnStarting, role="ceo")
    assert [t.resume for t in ceo] == [False, True]
    assert ceo[0].session_id == ceo[1].session_id
    assert ceo[1].argv[-1].startswith(STOPPED)
    assert "end with your complete answer" in ceo[1].argv[-1]
    assert "ceo stopped: " + REASON in result.stdout
