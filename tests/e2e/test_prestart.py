"""Agents started ahead (``prestart_agents``), end to end: QA's claude started while
the developer's turn ends and given its prompt once the work is checked; the same
prompts and the same merged result as without; one not wanted any more is stopped, and
every process started is journaled as ended.

The real ``autonoma start``, the real ``claude`` and the scenarios in ``scenarios/``.
"""

from __future__ import annotations

from pathlib import Path

from autonoma.protocol import (
    AgentProcessExited,
    AgentProcessStarted,
    AgentPromptGiven,
    AgentTurnStarting,
    Envelope,
    ReviewVerdict,
    TaskMerged,
    TaskStateChanged,
    TaskWorkspace,
)
from tests.e2e.runs import (
    assert_clean_exit,
    envelopes,
    files_on,
    journal,
    make_project,
    messages,
    prompts,
    start,
)


def every_process_ended(rows: list[Envelope]) -> None:
    """Each claude the run started was seen to end (the port reaped it and said so)."""
    started = {(m.agent_id, m.pid) for m in messages(rows, AgentProcessStarted)}
    ended = {(m.agent_id, m.pid) for m in messages(rows, AgentProcessExited)}
    assert started and started <= ended


def test_qa_starts_ahead_gets_its_prompt_at_the_review_and_the_result_is_the_same(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    ahead = make_project(tmp_path, "ahead")
    result = start(ahead, "approves_all.toml", clean_env, "--max-workers", "2")
    assert_clean_exit(result, 0)
    rows = journal(ahead)
    qa = envelopes(rows, AgentTurnStarting, role="qa")
    assert {e.message.task_id for e in qa} == {"t1", "t2", "t3"}
    for turn in qa:
        task = turn.message.task_id
        assert turn.message.waits_for_prompt
        assert "--input-format" in turn.message.argv and "--" not in turn.message.argv
        [review] = envelopes(rows, TaskStateChanged, task_id=task, state="review")
        [given] = envelopes(rows, AgentPromptGiven, session_id=turn.message.session_id)
        # Started before the task reached review; told what to do only after.
        assert turn.seq < review.seq < given.seq
        assert f"## The task: {task}" in given.message.prompt
    assert len(messages(rows, ReviewVerdict)) == 3
    # A developer started ahead (t3's, while t2 was reviewed and merged) was given its
    # prompt only once its dependency had merged, or was stopped unused.
    merged = {e.message.task_id: e for e in envelopes(rows, TaskMerged)}
    prompted = {e.message.session_id: e for e in envelopes(rows, AgentPromptGiven)}
    for turn in envelopes(rows, AgentTurnStarting, role="developer", waits_for_prompt=True):
        given = prompted.get(turn.message.session_id)
        if given is not None:
            assert turn.message.task_id == "t3" and given.seq > merged["t2"].seq
    # However it started, t3's branch holds t2's work: its clone began after t2 merged.
    [workspace] = [m for m in messages(rows, TaskWorkspace, task_id="t3")][-1:]
    assert "t2.txt" in files_on(ahead, workspace.branch)
    every_process_ended(rows)
    assert not list((ahead / ".autonoma" / "clones").glob("*/_review/*"))

    clean_env = {**clean_env, "AUTONOMA_PRESTART_AGENTS": "0"}
    plain = make_project(tmp_path, "plain")
    result = start(plain, "approves_all.toml", clean_env, "--max-workers", "2")
    assert_clean_exit(result, 0)
    plain_rows = journal(plain)
    assert not [m for m in messages(plain_rows, AgentTurnStarting) if m.waits_for_prompt]
    assert messages(plain_rows, AgentPromptGiven) == []
    # What QA and the developers were told and what was merged are the same either way.
    for role in ("qa", "developer"):
        told = sorted(p for p in prompts(rows, role=role) if p)
        assert told == sorted(prompts(plain_rows, role=role))
    assert files_on(ahead, "main") == files_on(plain, "main")


def test_qa_started_ahead_for_work_that_is_refused_is_stopped_unused(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    result = start(root, "prestart_unused.toml", clean_env, "--max-workers", "1")
    assert_clean_exit(result, 0)
    rows = journal(root)
    refused = [
        e
        for e in envelopes(rows, TaskStateChanged, task_id="t1", state="failed")
        if "no change was committed" in e.message.reason
    ]
    assert len(refused) == 1
    qa = envelopes(rows, AgentTurnStarting, role="qa", task_id="t1")
    assert len(qa) == 2 and all(e.message.waits_for_prompt for e in qa)
    unused, used = qa
    assert unused.seq < refused[0].seq < used.seq
    # The first was never given a prompt, and its process was stopped and ended.
    given = {m.session_id for m in messages(rows, AgentPromptGiven)}
    assert unused.message.session_id not in given and used.message.session_id in given
    [pid] = [
        e.message.pid
        for e in envelopes(rows, AgentProcessStarted, agent_id=unused.message.agent_id)
        if e.seq > unused.seq
    ][:1]
    [end] = [
        e for e in envelopes(rows, AgentProcessExited, agent_id=unused.message.agent_id, pid=pid)
    ]
    assert end.seq < used.seq
    every_process_ended(rows)
    assert len(messages(rows, ReviewVerdict)) == 1  # the unused one reviewed nothing
    assert "t1.txt" in files_on(root, "main")
    assert not list((root / ".autonoma" / "clones").glob("*/_review/*"))
