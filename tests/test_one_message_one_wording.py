"""One message reads the same in the live log, in ``status`` and in ``logs``."""

from __future__ import annotations

from autonoma import protocol as p
from autonoma import views
from autonoma.journal.fold import fold
from autonoma.progress import Progress
from autonoma.report import envelope_text, state_text
from autonoma.words import describe, line

ORIGIN = "user ada (uid 1000), pid 7, tty none, host box"
MESSAGES: list[p.AnyMessage] = [
    p.RunStarted(requirements="r.md", project="/p", max_workers=1),
    p.TaskDefined(task_id="t1", title="Parse"),
    p.TaskStateChanged(task_id="t1", state="running", attempt=1),
    p.AgentToolUse(
        agent_id="developer-1",
        tool_use_id="u",
        tool="Write",
        input={"file_path": "todo/cli.py", "content": "x"},
        task_id="t1",
    ),
    p.DeveloperReport(task_id="t1", agent_id="developer-1", summary="Half done.", left=["x"]),
    p.TaskStateChanged(task_id="t1", state="failed", attempt=1, reason="tests fail"),
    p.TaskStateChanged(task_id="t1", state="escalated", attempt=1, reason="1 attempt failed"),
    p.Escalation(source="orchestrator", reason="t1: 1 attempt failed", task_id="t1"),
    p.HumanCommandRejected(path="/p/.autonoma/inbox/1-1.json.bad", reason="unsigned"),
    p.RetryRequested(task_id="t1", note="use sqlite", origin=ORIGIN),
]


def _envelopes() -> list[p.Envelope]:
    return [
        p.Envelope(seq=i, ts=100.0 + i, run_id="r1", sender="s", recipient="*", message=m)
        for i, m in enumerate(MESSAGES, start=1)
    ]


def test_the_log_status_and_logs_use_the_same_words() -> None:
    envelopes = _envelopes()
    live: list[str] = []
    progress = Progress(live.append, started=100.0)
    for envelope in envelopes:
        progress.feed(envelope)
    status = state_text(fold(envelopes))
    logs = [envelope_text(e) for e in envelopes]
    for envelope in envelopes:
        said = describe(envelope.message)
        assert said is not None
        words = line(said)
        assert logs[envelope.seq - 1].endswith(f" {words}"), words
        assert any(words in shown for shown in live), words
    # status tells the task's history, its report, what an agent did last, the inbox's
    # refusals and the escalations in these words (its own layout around them).
    for message in MESSAGES[3:9]:
        said = describe(message)
        assert said is not None and said.text in status, said.text


REFUSED_AND_CRASHED: list[p.AnyMessage] = [
    p.RunStarted(requirements="r.md", project="/p", max_workers=1),
    p.TaskDefined(task_id="t1", title="Parse"),
    p.TaskStateChanged(task_id="t1", state="running", attempt=1),
    p.PermissionDenied(agent_id="developer-1", tool="WebFetch", reason="not granted", task_id="t1"),
    p.AnswerRejected(
        role="staff_engineer", what="task list", errors=["a", "b"], attempt=2, agent_id=""
    ),
    p.SchemaRejected(agent_id="staff_engineer", tool_use_id="u", reason="bad id"),
    p.ActorCrashed(name="qa-1", supervisor="crew", error_type="RuntimeError", error_text="boom"),
    p.SupervisorGaveUp(
        name="crew", restarts=4, intensity=3, period=5.0, child="qa-1", error="RuntimeError"
    ),
    p.TaskStateChanged(task_id="t1", state="escalated", attempt=1, reason="1 attempt failed"),
]


def test_what_the_fold_records_is_said_in_the_words_of_its_message() -> None:
    # Refusals and supervision events are kept by the fold as their messages: status,
    # its JSON and the dashboard say them as the live log and `logs` do.
    envelopes = [
        p.Envelope(seq=i, ts=100.0 + i, run_id="r1", sender="s", recipient="*", message=m)
        for i, m in enumerate(REFUSED_AND_CRASHED, start=1)
    ]
    state = fold(envelopes)
    status = state_text(state)
    data = state.to_dict()
    said = {type(m).__name__: describe(m) for m in REFUSED_AND_CRASHED[3:8]}
    assert all(s is not None for s in said.values())
    denied, answer, schema, crashed, gave_up = (s for s in said.values() if s is not None)
    # The escalated task's history, the refusals outside tasks, the crashes.
    for words in (line(denied), line(answer), line(schema), crashed.text, gave_up.text):
        assert words in status, words
    # An agent's last refusal, in the words of its message.
    assert f"(refused 2x, last: {schema.text})" in status
    assert data["tasks"]["t1"]["refusals"][0]["text"] == denied.text
    assert data["agents"]["staff_engineer"]["last_refusal"]["text"] == schema.text
    assert [e["text"] for e in data["supervision"]] == [crashed.text, gave_up.text]
    # The dashboard's escalation panel tells the task's history the same way.
    escalated = "\n".join(text for text, _ in views.escalations(state))
    assert line(denied) in escalated
