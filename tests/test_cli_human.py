"""`autonoma retry` and `autonoma resolve`: a human's word, checked, then given to the run."""

from __future__ import annotations

import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autonoma import protocol as p
from autonoma.hints import command
from autonoma.journal import reader
from autonoma.journal.writer import Journal
from autonoma.project import Project, secret_key
from autonoma.runtime.bus import Bus
from autonoma.workflow import inbox
from tests.conftest import run_autonoma
from tests.journal.testlib import wait_for
from tests.test_run_lock import hold_run_lock

USER = pwd.getpwuid(os.getuid()).pw_name


def publish_escalated_run(db: Path) -> None:
    """A run with t1 merged, t2 running, t3 escalated after three attempts, t4 pending."""
    client = Journal.open(db)
    bus = Bus(run_id="run-1")
    bus.attach(client)
    say = bus.publish
    say("orchestrator", p.RunStarted(requirements="requirements.md", project="/p", max_workers=2))
    for task, deps in (("t1", []), ("t2", ["t1"]), ("t3", ["t1"]), ("t4", ["t3"])):
        say("orchestrator", p.TaskDefined(task_id=task, title=f"Task {task}", deps=deps))
    say("orchestrator", p.TaskStateChanged(task_id="t1", state="merged", attempt=1))
    say("orchestrator", p.TaskStateChanged(task_id="t2", state="running", attempt=1))
    for attempt in (1, 2, 3):
        say("orchestrator", p.TaskStateChanged(task_id="t3", state="running", attempt=attempt))
        say(
            "orchestrator",
            p.TaskStateChanged(
                task_id="t3",
                state="failed",
                attempt=attempt,
                reason=f"QA: test_store fails (try {attempt})",
            ),
        )
    say(
        "orchestrator",
        p.TaskStateChanged(
            task_id="t3", state="escalated", attempt=3, reason="3 attempts failed review"
        ),
    )
    say(
        "orchestrator",
        p.Escalation(source="orchestrator", reason="t3: 3 attempts failed review", task_id="t3"),
        durable=True,
    )
    client.stop()


@pytest.fixture
def project(git_repo: Path, clean_env: dict[str, str]) -> Path:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    return git_repo


@pytest.fixture
def escalated(project: Path) -> Path:
    publish_escalated_run(project / ".autonoma" / "state.db")
    return project


def last_row(project: Path) -> p.Envelope:
    db = project / ".autonoma" / "state.db"
    return next(reader.read(db, limit_last=1))


def test_retry_without_an_active_run_goes_to_the_journal(
    escalated: Path, clean_env: dict[str, str]
) -> None:
    before = reader.last_seq(escalated / ".autonoma" / "state.db")
    result = run_autonoma("retry", "t3", "--note", "use sqlite", cwd=escalated, env=clean_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"t3 will be retried when the run resumes: {command('start', 'requirements.md')}\n"
    )
    row = last_row(escalated)
    assert row.seq == before + 1
    message = row.message
    assert isinstance(message, p.RetryRequested)
    assert (message.task_id, message.note) == ("t3", "use sqlite")
    # Where it came from: the command line's user, process and host.
    assert message.origin.startswith(f"user {USER} (uid {os.getuid()}), pid ")
    assert f"host {socket.gethostname()}" in message.origin
    assert (row.run_id, row.sender, row.recipient) == ("run-1", "human", "orchestrator")
    assert not (escalated / ".autonoma" / "inbox").exists()

    status = run_autonoma("status", cwd=escalated, env=clean_env).stdout
    assert "note: use sqlite" in status
    assert f"retry requested (from {message.origin}): the run has not acted on it" in status
    logs = run_autonoma("logs", cwd=escalated, env=clean_env).stdout.splitlines()
    assert logs[-1].endswith(f"t3: a human asked for a retry: use sqlite (from {message.origin})")
    state = json.loads(run_autonoma("status", "--json", cwd=escalated, env=clean_env).stdout)
    assert state["tasks"]["t3"]["requested"] == "retry"
    assert state["tasks"]["t3"]["notes"] == ["use sqlite"]


def test_resolve_a_task_finished_by_hand(escalated: Path, clean_env: dict[str, str]) -> None:
    for task in ("t3", "t4"):  # escalated, and pending (no agent has started it)
        result = run_autonoma("resolve", task, cwd=escalated, env=clean_env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"{task} will be marked resolved when the run resumes")
        message = last_row(escalated).message
        assert isinstance(message, p.ResolveRequested)
        assert message.task_id == task and message.origin.startswith(f"user {USER} ")
    state = json.loads(run_autonoma("status", "--json", cwd=escalated, env=clean_env).stdout)
    assert state["tasks"]["t4"]["requested"] == "resolve"
    assert state["tasks"]["t4"]["notes"] == []


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ("retry", "t9"),
            "autonoma: no task 't9' in run run-1 (its tasks: t1, t2, t3, t4)\n",
        ),
        (("retry", "t1"), "autonoma: t1 is already merged: nothing to retry\n"),
        (("resolve", "t1"), "autonoma: t1 is already merged: nothing to resolve\n"),
        (
            ("retry", "t4"),
            "autonoma: t4 is pending: it has not been tried yet, so there is nothing to retry\n",
        ),
        (
            ("retry", "t2"),
            "autonoma: t2 is running (work on it goes on): "
            "retry applies to a task escalated or failed\n",
        ),
        (
            ("resolve", "t2"),
            "autonoma: t2 is running (work on it goes on): "
            "resolve applies to a task escalated, failed, pending or ready\n",
        ),
    ],
)
def test_refusals_are_one_line(
    escalated: Path, clean_env: dict[str, str], args: tuple[str, ...], error: str
) -> None:
    before = reader.last_seq(escalated / ".autonoma" / "state.db")
    result = run_autonoma(*args, cwd=escalated, env=clean_env)
    assert result.returncode == 1
    assert result.stderr == error
    assert result.stdout == ""
    assert reader.last_seq(escalated / ".autonoma" / "state.db") == before


def test_a_resolved_task_is_refused(escalated: Path, clean_env: dict[str, str]) -> None:
    client = Journal.open(escalated / ".autonoma" / "state.db")
    bus = Bus(run_id="run-1")
    bus.attach(client)
    bus.publish("orchestrator", p.TaskStateChanged(task_id="t3", state="resolved"), durable=True)
    client.stop()
    result = run_autonoma("retry", "t3", cwd=escalated, env=clean_env)
    assert result.returncode == 1
    assert result.stderr == "autonoma: t3 was already resolved by hand: nothing to retry\n"


def test_no_run_at_all(project: Path, clean_env: dict[str, str]) -> None:
    result = run_autonoma("retry", "t3", cwd=project, env=clean_env)
    assert result.returncode == 1
    assert result.stderr == "autonoma: no run in this project yet: there is no task to retry\n"


def test_outside_a_project(tmp_path: Path, git_repo: Path, clean_env: dict[str, str]) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = run_autonoma("retry", "t3", cwd=outside, env=clean_env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not a git repository" in result.stderr
    result = run_autonoma("resolve", "t3", cwd=git_repo, env=clean_env)  # git, no init
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "autonoma init" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_an_active_run_the_request_goes_to_its_inbox(
    escalated: Path, clean_env: dict[str, str]
) -> None:
    db = escalated / ".autonoma" / "state.db"
    before = reader.last_seq(db)
    with hold_run_lock(escalated) as holder:
        result = run_autonoma("retry", "t3", "--note", "use sqlite", cwd=escalated, env=clean_env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"t3: retry sent to the active run (pid {holder.pid})\n"
    assert reader.last_seq(db) == before  # the journal is the run's to write
    folder = escalated / ".autonoma" / "inbox"
    (name,) = os.listdir(folder)
    assert b"hmac-sha256:" in (folder / name).read_bytes()  # signed
    # The run, with the project's key, believes it, and sees where it came from.
    proj = Project(escalated)
    key = proj.keys / "inbox.key"
    assert stat.S_IMODE(proj.keys.stat().st_mode) == 0o700
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    taker = inbox.Taker(folder, secret_key(proj), "run-1", proj.keys / "inbox-taken")
    (taken,) = taker.take()
    message = taken.message
    assert isinstance(message, p.RetryRequested)
    assert (message.task_id, message.note) == ("t3", "use sqlite")
    assert message.origin.startswith(f"user {USER} (uid {os.getuid()}), pid ")
    # The key is nowhere in the command, the journal or the environment.
    secret = key.read_text().strip()
    assert secret not in (folder / name).read_text()
    assert secret.encode() not in db.read_bytes()


def test_a_note_too_long_for_the_inbox_is_one_line(
    escalated: Path, clean_env: dict[str, str]
) -> None:
    with hold_run_lock(escalated):
        result = run_autonoma("retry", "t3", "--note", "x" * 70_000, cwd=escalated, env=clean_env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "shorten the note" in result.stderr
    assert not (escalated / ".autonoma" / "inbox").exists()


def test_a_journal_held_by_another_writer_is_one_line(
    escalated: Path, clean_env: dict[str, str]
) -> None:
    # A writer without the run lock (an older version, a tool): the journal lock says no.
    client = Journal.open(escalated / ".autonoma" / "state.db")
    try:
        result = run_autonoma("retry", "t3", cwd=escalated, env=clean_env)
    finally:
        client.stop()
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "is writing this journal" in result.stderr


def test_status_and_logs_show_rejected_commands_and_who_resolved(
    escalated: Path, clean_env: dict[str, str]
) -> None:
    origin = "user alice (uid 1000), pid 4242, tty /dev/pts/3, host box"
    client = Journal.open(escalated / ".autonoma" / "state.db")
    bus = Bus(run_id="run-1")
    bus.attach(client)
    bad = "/p/.autonoma/inbox/1-1.json.bad"
    bus.publish(
        "orchestrator",
        p.HumanCommandRejected(path=bad, reason="unsigned: no hmac-sha256 line"),
    )
    bus.publish("orchestrator", p.ResolveRequested(task_id="t3", origin=origin))
    bus.publish("orchestrator", p.TaskStateChanged(task_id="t3", state="resolved"), durable=True)
    client.stop()
    status = run_autonoma("status", cwd=escalated, env=clean_env)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    at = lines.index("Commands rejected from the inbox (not acted on): 1 (latest last)")
    assert lines[at + 1].endswith(f" {bad}: unsigned: no hmac-sha256 line")
    assert f"      resolved by hand (from {origin})" in lines
    state = json.loads(run_autonoma("status", "--json", cwd=escalated, env=clean_env).stdout)
    (rejected,) = state["rejected_commands"]
    assert (rejected["path"], rejected["reason"]) == (bad, "unsigned: no hmac-sha256 line")
    assert state["tasks"]["t3"]["requested_by"] == origin
    logs = run_autonoma("logs", "--limit", "3", cwd=escalated, env=clean_env).stdout.splitlines()
    assert "HumanCommandRejected" in logs[0]
    assert logs[0].endswith(f"not acted on: {bad}: unsigned: no hmac-sha256 line")
    assert logs[1].endswith(f"t3: a human resolved it by hand (from {origin})")


def test_a_key_autonoma_did_not_make_is_one_line(
    escalated: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    key = escalated / ".autonoma" / "keys" / "inbox.key"
    key.write_text("not hex\n")
    with hold_run_lock(escalated):
        result = run_autonoma("retry", "t3", cwd=escalated, env=clean_env)
        assert result.returncode == 1
        assert result.stderr == (
            f"autonoma: {key}: not a key Autonoma made (64 hex digits): remove it\n"
        )
        key.unlink()
        elsewhere = tmp_path / "planted.key"
        elsewhere.write_text("00" * 32 + "\n")
        key.symlink_to(elsewhere)  # planted: never read through
        result = run_autonoma("retry", "t3", cwd=escalated, env=clean_env)
        assert result.returncode == 1
        assert result.stderr.startswith(f"autonoma: {key}: cannot read the inbox key")
        assert result.stderr.count("\n") == 1
        key.unlink()
        result = run_autonoma("retry", "t3", cwd=escalated, env=clean_env)  # made anew
        assert result.returncode == 0, result.stderr
    assert len(bytes.fromhex(key.read_text())) == 32


# --- pause, resume, stop: for the active run only ---------------------------------------

RUN_COMMANDS = {"pause": p.PauseRequested, "resume": p.ResumeRequested, "stop": p.StopRequested}


@pytest.mark.parametrize("name", list(RUN_COMMANDS))
def test_pause_resume_and_stop_with_no_active_run_say_so(
    name: str, escalated: Path, project: Path, clean_env: dict[str, str]
) -> None:
    db = escalated / ".autonoma" / "state.db"
    before = reader.last_seq(db)
    result = run_autonoma(name, cwd=escalated, env=clean_env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"autonoma: no run is active: nothing to {name}\n"
    # Nothing kept for a later start: a pause waiting there would only surprise.
    assert reader.last_seq(db) == before
    assert not (escalated / ".autonoma" / "inbox").exists()


@pytest.mark.parametrize("name", ["pause", "resume"])
def test_pause_and_resume_go_to_the_active_runs_inbox_signed(
    name: str, escalated: Path, clean_env: dict[str, str]
) -> None:
    db = escalated / ".autonoma" / "state.db"
    before = reader.last_seq(db)
    with hold_run_lock(escalated) as holder:
        result = run_autonoma(name, cwd=escalated, env=clean_env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{name} sent to the running run run-1 (pid {holder.pid})\n"
    assert reader.last_seq(db) == before  # the journal is the run's to write
    proj = Project(escalated)
    taker = inbox.Taker(proj.inbox, secret_key(proj), "run-1", proj.keys / "inbox-taken")
    (taken,) = taker.take()
    assert isinstance(taken.message, RUN_COMMANDS[name])
    assert taken.message.origin.startswith(f"user {USER} (uid {os.getuid()}), pid ")


def test_stop_waits_for_the_run_to_end_and_says_how(
    escalated: Path, clean_env: dict[str, str]
) -> None:
    proj = Project(escalated)
    with hold_run_lock(escalated) as holder:
        stopping = subprocess.Popen(
            [sys.executable, "-m", "autonoma", "stop"],
            cwd=escalated,
            env=clean_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: proj.inbox.exists() and list(proj.inbox.glob("[0-9]*.json")), timeout=30
            )
            taker = inbox.Taker(proj.inbox, secret_key(proj), "run-1", proj.keys / "inbox-taken")
            (taken,) = taker.take()
            assert isinstance(taken.message, p.StopRequested)
            time.sleep(0.5)
            assert stopping.poll() is None  # still waiting: the run has not ended
            # The run ends, journaled as stopped, and lets the lock go.
            client = Journal.open(proj.state_db)
            bus = Bus(run_id="run-1")
            bus.attach(client)
            bus.publish(
                "orchestrator",
                p.RunFinished(outcome="stopped", summary="stopped by `autonoma stop`"),
                durable=True,
            )
            client.stop()
            holder.kill()
            stdout, stderr = stopping.communicate(timeout=30)
        finally:
            stopping.kill()
    assert stopping.returncode == 0, stderr
    assert stdout == (
        f"stop sent to the running run run-1 (pid {holder.pid})\n"
        "Run run-1: stopped. stopped by `autonoma stop`\n"
    )
