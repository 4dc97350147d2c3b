"""Forged, replayed and hostile commands in the inbox of a real run (real claude, the sim).

A developer's Bash drops a forged ``ResolveRequested`` for another task into
``.autonoma/inbox/`` (the sandbox is off: the write lands), and then the test drops
worse: a command signed with the wrong key, one signed for an earlier run, a symlink to a
genuine command, a fifo, an 8 GiB file, a genuine command writable by others, one owned
by another user, and a replay of a genuine command already taken. None acts: the task
stays escalated, and each is journaled as `HumanCommandRejected` with why, and shown.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autonoma.project import Project, secret_key
from autonoma.protocol import (
    HumanCommandRejected,
    ResolveRequested,
    RetryRequested,
    RunFinished,
    TaskStateChanged,
)
from autonoma.workflow import inbox
from tests.conftest import run_autonoma
from tests.e2e.runs import journal, make_project, messages, model_file, status_json
from tests.journal.testlib import wait_for

EXPECTED = [
    "unsigned: no hmac-sha256 line",  # the developer's forgery
    "bad signature: not signed with this project's key",
    "posted for run run-earlier, not the active run ",
    "a symbolic link, not a file",
    "not a regular file (a fifo)",
    f"{8 << 30} bytes, over the limit of 65536",
    "writable by group or others (mode 0666)",
]


def rejections(root: Path) -> list[HumanCommandRejected]:
    return messages(journal(root), HumanCommandRejected)


def test_forged_and_hostile_commands_never_act(tmp_path: Path, clean_env: dict[str, str]) -> None:
    root = make_project(tmp_path)
    # The sandbox off (it would stop the agent's write): the check alone must hold.
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "0", "AUTONOMA_SANDBOX": "0"}
    active = subprocess.Popen(
        [
            *(sys.executable, "-m", "autonoma", "start", "requirements.md"),
            *("--scenario", str(model_file(root, "forged_inbox.toml")), "--max-workers", "2"),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    folder = root / ".autonoma" / "inbox"
    try:
        # t2 escalated, and t1's developer forged its resolve: refused.
        wait_for(
            lambda: (
                messages(journal(root), TaskStateChanged, task_id="t2", state="escalated")
                and rejections(root)
            ),
            timeout=90,
            interval=0.05,
        )
        (forged,) = rejections(root)
        assert forged.reason == EXPECTED[0]
        assert forged.path == str(folder / "1-1.json.bad")
        run_id = journal(root)[-1].run_id
        key = secret_key(Project(root))

        resolve = ResolveRequested(task_id="t2", origin="forged")
        hostile = {
            "2-1.json": inbox.encode(os.urandom(32), run_id, resolve),
            "3-1.json": inbox.encode(key, "run-earlier", resolve),
        }
        for name, body in hostile.items():
            # Made whole beside the inbox, then moved in: the run takes a file as soon
            # as it appears, before a chmod after the write could run.
            made = folder.parent / f"made-{name}"
            made.write_bytes(body)
            os.chmod(made, 0o600)
            os.replace(made, folder / name)
        genuine = tmp_path / "genuine.json"
        genuine.write_bytes(inbox.encode(key, run_id, resolve))
        (folder / "4-1.json").symlink_to(genuine)
        os.mkfifo(folder / "5-1.json")
        with (folder / "6-1.json").open("wb") as huge:
            huge.truncate(8 << 30)
        (folder / "7-1.json").write_bytes(inbox.encode(key, run_id, resolve))
        os.chmod(folder / "7-1.json", 0o666)
        expected = list(EXPECTED)
        if os.geteuid() == 0:
            (folder / "8-1.json").write_bytes(inbox.encode(key, run_id, resolve))
            os.chmod(folder / "8-1.json", 0o600)
            os.chown(folder / "8-1.json", 12345, 12345)
            expected.append("owned by uid 12345, not the run's uid 0")
        wait_for(lambda: len(rejections(root)) == len(expected), timeout=30, interval=0.05)
        reasons = [r.reason for r in rejections(root)]
        assert [r[: len(e)] for r, e in zip(reasons, expected, strict=True)] == expected
        # Nothing acted: t2 is still escalated, t3 never left pending.
        tasks = status_json(root, env)["tasks"]
        assert (tasks["t2"]["state"], tasks["t3"]["state"]) == ("escalated", "pending")
        assert not messages(journal(root), ResolveRequested)

        # A genuine command (as `autonoma retry` posts it) acts; its replay does not.
        posted = inbox.post(
            folder, key, run_id, RetryRequested(task_id="t2", origin=inbox.origin())
        )
        body = posted.read_bytes()
        wait_for(lambda: messages(journal(root), RetryRequested), timeout=30, interval=0.05)
        (folder / "9-1.json").write_bytes(body)
        os.chmod(folder / "9-1.json", 0o600)
        wait_for(lambda: len(rejections(root)) == len(expected) + 1, timeout=30, interval=0.05)
        assert rejections(root)[-1].reason == "replayed: this command was taken already"

        (tmp_path / "t1-may-finish").touch()  # t1's developer may end its turn
        stdout, stderr = active.communicate(timeout=120)
    finally:
        (tmp_path / "t1-may-finish").touch()
        active.kill()
    assert active.returncode == 0, stdout + stderr
    rows = journal(root)
    # The one genuine command acted once; no forged one ever did.
    (retry,) = messages(rows, RetryRequested)
    assert retry.task_id == "t2" and retry.origin.startswith("user ")
    assert not messages(rows, ResolveRequested)
    assert "resolved" not in {m.state for m in messages(rows, TaskStateChanged)}
    assert messages(rows, RunFinished)[-1].outcome == "done"
    # Every file refused is set aside, none is left pending.
    assert all(name.endswith(".bad") for name in os.listdir(folder)), os.listdir(folder)
    # The human sees each refusal, live and in `status` and `logs`.
    assert "REJECTED a command in the inbox, not acted on:" in stdout
    assert "1-1.json.bad: unsigned: no hmac-sha256 line" in stdout
    status = run_autonoma("status", cwd=root, env=env).stdout
    count = len(expected) + 1
    assert f"Commands rejected from the inbox (not acted on): {count} (latest last)" in status
    assert "replayed: this command was taken already" in status
    logs = run_autonoma("logs", "--limit", "100000", cwd=root, env=env).stdout.splitlines()
    assert len([line for line in logs if " HumanCommandRejected " in line]) == count
    (shown,) = [line for line in logs if " RetryRequested " in line]
    assert shown.endswith(f"t2: a human asked for a retry (from {retry.origin})")
