"""The inbox: signed commands other processes leave for the active run, as whole files.

Every file here is real (a fifo, a symlink, an 8 GiB sparse file, another owner's);
each refused one is renamed ``.bad`` and becomes a `HumanCommandRejected`, never a command.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from autonoma.protocol import (
    HumanCommandRejected,
    ResolveRequested,
    RetryRequested,
    TaskStateChanged,
)
from autonoma.workflow import inbox

KEY = bytes(range(32))
RUN = "run-1"


def taker(folder: Path, run_id: str = RUN, key: bytes = KEY) -> inbox.Taker:
    return inbox.Taker(folder, key, run_id, folder.parent / "keys" / "inbox-taken")


def take(t: inbox.Taker) -> list[inbox.Taken]:
    """`take`, which must not block (a fifo's writer never comes)."""
    got: list[list[inbox.Taken]] = []
    thread = threading.Thread(target=lambda: got.append(t.take()), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert got, "take() blocked"
    return got[0]


def messages(items: list[inbox.Taken]) -> list[object]:
    return [item.message for item in items]


def test_post_take_done(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    t = taker(folder)
    assert t.take() == []  # no folder yet: nothing pending, nothing created
    assert not folder.exists()
    first = inbox.post(folder, KEY, RUN, RetryRequested(task_id="t3", note="use sqlite"))
    second = inbox.post(folder, KEY, RUN, ResolveRequested(task_id="t4", origin="user x"))
    assert first.parent == second.parent == folder
    assert first.name.endswith(f"-{os.getpid()}.json")
    assert sorted(os.listdir(folder)) == sorted([first.name, second.name])  # no temporary left
    # Only this user may read or write them.
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    taken = t.take()
    assert [(item.path, item.message) for item in taken] == [
        (first, RetryRequested(task_id="t3", note="use sqlite")),
        (second, ResolveRequested(task_id="t4", origin="user x")),
    ]
    t.done(taken[0])
    t.done(taken[0])  # already gone: nothing happens
    assert sorted(os.listdir(folder)) == [second.name]


def test_many_posts_in_a_row_keep_their_order(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    for n in range(inbox.MAX_PENDING):
        inbox.post(folder, KEY, RUN, RetryRequested(task_id=f"t{n}"))
    assert messages(taker(folder).take()) == [
        RetryRequested(task_id=f"t{n}") for n in range(inbox.MAX_PENDING)
    ]


def test_order_is_by_time_then_pid_not_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    # "999..." sorts after "1000..." as text; the time is compared as a number.
    for name, task in (("1000-5.json", "later"), ("999-7.json", "earlier"), ("1000-40.json", "x")):
        (folder / name).write_bytes(inbox.encode(KEY, RUN, RetryRequested(task_id=task)))
    taken = [m for m in messages(taker(folder).take()) if isinstance(m, RetryRequested)]
    assert [m.task_id for m in taken] == ["earlier", "later", "x"]


def signed_payload(run_id: str, message: object) -> bytes:
    return msgspec.json.encode({"run_id": run_id, "nonce": "n1", "posted": 1.0, "message": message})


FORGED = b'{"type":"ResolveRequested","task_id":"t2","origin":"user root (uid 0)"}\n'


def _write(body: bytes, mode: int = 0o600) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_bytes(body)
        os.chmod(path, mode)

    return make


def _symlink(path: Path) -> None:
    # To a genuine command outside the inbox: followed, it would act.
    target = path.parent.parent / "elsewhere.json"
    target.write_bytes(inbox.encode(KEY, RUN, ResolveRequested(task_id="t2")))
    path.symlink_to(target)


def _huge(path: Path) -> None:
    # 8 GiB (sparse): read whole, it would exhaust the memory of the test.
    with path.open("wb") as f:
        f.truncate(8 << 30)


def _owned_by_another(path: Path) -> None:
    path.write_bytes(inbox.encode(KEY, RUN, ResolveRequested(task_id="t2")))
    os.chmod(path, 0o600)
    os.chown(path, 12345, 12345)


MERGED = TaskStateChanged(task_id="t2", state="merged")
GENUINE = inbox.encode(KEY, RUN, ResolveRequested(task_id="t2"))
CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("unsigned", _write(FORGED), "unsigned: no hmac-sha256 line"),
    (
        "wrong key",
        _write(inbox.encode(bytes(32), RUN, ResolveRequested(task_id="t2"))),
        "bad signature: not signed with this project's key",
    ),
    (
        "tampered",
        _write(GENUINE.replace(b'"t2"', b'"t3"')),
        "bad signature: not signed with this project's key",
    ),
    (
        "earlier run",
        _write(inbox.encode(KEY, "run-0", ResolveRequested(task_id="t2"))),
        "posted for run run-0, not the active run run-1",
    ),
    ("symlink", _symlink, "a symbolic link, not a file"),
    ("fifo", lambda path: os.mkfifo(path), "not a regular file (a fifo)"),
    ("folder", lambda path: path.mkdir(), "not a regular file (a folder)"),
    ("huge", _huge, f"{8 << 30} bytes, over the limit of 65536"),
    ("group writable", _write(GENUINE, 0o620), "writable by group or others (mode 0620)"),
    ("world writable", _write(GENUINE, 0o602), "writable by group or others (mode 0602)"),
    (
        "not a command",
        _write(
            inbox.sign(KEY, signed_payload(RUN, TaskStateChanged(task_id="t2", state="merged")))
        ),
        "a TaskStateChanged is not a command a human sends",
    ),
    (
        "signed garbage",
        _write(inbox.sign(KEY, b"{not json")),
        "signed but does not decode",
    ),
    ("not json", _write(b"\xff\xfe"), "unsigned: no hmac-sha256 line"),
]


@pytest.mark.parametrize(("name", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_a_file_not_believed_is_set_aside_and_reported(
    tmp_path: Path, name: str, make: Callable[[Path], None], reason: str
) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = inbox.post(folder, KEY, RUN, RetryRequested(task_id="t1"))
    make(folder / "1-1.json")
    t = taker(folder)
    started = time.monotonic()
    taken = take(t)
    assert time.monotonic() - started < 2  # nothing was read whole, nothing waited
    bad = folder / "1-1.json.bad"
    assert [item.path for item in taken] == [bad, good]
    rejected, command = messages(taken)
    assert command == RetryRequested(task_id="t1")
    assert isinstance(rejected, HumanCommandRejected)
    assert rejected.path == str(bad)
    assert rejected.reason.startswith(reason)
    assert os.path.lexists(bad) and not os.path.lexists(folder / "1-1.json")
    t.done(taken[1])
    assert take(t) == []  # never looked at again


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_set_aside(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    _owned_by_another(folder / "1-1.json")
    (rejected,) = messages(take(taker(folder)))
    assert rejected == HumanCommandRejected(
        path=str(folder / "1-1.json.bad"), reason="owned by uid 12345, not the run's uid 0"
    )


def test_a_command_taken_is_refused_when_replayed_even_after_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    posted = inbox.post(folder, KEY, RUN, ResolveRequested(task_id="t2"))
    body = posted.read_bytes()
    t = taker(folder)
    (taken,) = t.take()
    t.done(taken)
    assert not posted.exists()
    replayed = folder / "2-2.json"
    replayed.write_bytes(body)
    os.chmod(replayed, 0o600)
    (rejected,) = messages(t.take())
    assert rejected == HumanCommandRejected(
        path=str(folder / "2-2.json.bad"), reason="replayed: this command was taken already"
    )
    # A new taker (the run restarted) remembers it too.
    (folder / "3-3.json").write_bytes(body)
    os.chmod(folder / "3-3.json", 0o600)
    (rejected,) = messages(taker(folder).take())
    assert isinstance(rejected, HumanCommandRejected)
    assert rejected.reason == "replayed: this command was taken already"
    # Another run forgets this run's nonces (they are refused for their run id anyway).
    record = tmp_path / "keys" / "inbox-taken"
    assert record.read_text().startswith(f"{RUN} ")
    taker(folder, run_id="run-2")
    assert record.read_text() == ""
    assert stat.S_IMODE(record.stat().st_mode) == 0o600


def test_a_second_copy_in_the_same_batch_is_a_replay(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    posted = inbox.post(folder, KEY, RUN, RetryRequested(task_id="t2"))
    copy = folder / f"{int(posted.name.split('-')[0]) + 1}-1.json"
    copy.write_bytes(posted.read_bytes())
    os.chmod(copy, 0o600)
    first, second = messages(taker(folder).take())
    assert first == RetryRequested(task_id="t2")
    assert isinstance(second, HumanCommandRejected) and second.reason.startswith("replayed")


def test_too_many_pending_at_once_none_is_believed(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    for n in range(inbox.MAX_PENDING + 1):
        inbox.post(folder, KEY, RUN, ResolveRequested(task_id=f"t{n}"))
    (rejected,) = messages(taker(folder).take())
    assert rejected == HumanCommandRejected(
        path=str(folder),
        reason=f"more than {inbox.MAX_PENDING} commands pending at once: none believed, "
        f"{inbox.MAX_PENDING + 1} set aside as .bad",
    )
    assert all(name.endswith(".json.bad") for name in os.listdir(folder))


def test_other_names_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    good = inbox.post(folder, KEY, RUN, RetryRequested(task_id="t1"))
    (folder / ".4-1.json.tmp").write_text("being written")  # a post in progress: not seen
    (folder / "notes.txt").write_text("not a command")
    (folder / "5-1.json.bad").write_text("set aside before")
    assert messages(taker(folder).take()) == [RetryRequested(task_id="t1")]
    assert sorted(os.listdir(folder)) == sorted(
        [good.name, ".4-1.json.tmp", "notes.txt", "5-1.json.bad"]
    )


def test_a_command_too_large_is_not_posted(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    with pytest.raises(inbox.CommandTooLarge, match="shorten the note"):
        inbox.post(folder, KEY, RUN, RetryRequested(task_id="t1", note="x" * inbox.MAX_BYTES))
    assert not folder.exists() or os.listdir(folder) == []


def test_origin_names_the_user_the_process_and_the_host() -> None:
    import pwd
    import socket

    text = inbox.origin()
    user = pwd.getpwuid(os.getuid()).pw_name
    assert text.startswith(f"user {user} (uid {os.getuid()}), pid {os.getpid()}, tty ")
    assert text.endswith(f", host {socket.gethostname()}") or ", ssh from " in text


def test_posts_from_other_processes(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    script = (
        "import sys; from pathlib import Path; from autonoma.workflow import inbox; "
        "from autonoma.protocol import RetryRequested; "
        "[inbox.post(Path(sys.argv[1]), bytes(range(32)), 'run-1', "
        "RetryRequested(task_id=f'{sys.argv[2]}-{n}')) for n in range(8)]"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(folder), f"p{k}"]) for k in range(4)
    ]
    for child in children:
        assert child.wait(timeout=30) == 0
    taken = taker(folder).take()
    assert len(taken) == 32
    by_process: dict[str, list[int]] = {}
    for item in taken:
        assert isinstance(item.message, RetryRequested)
        process, n = item.message.task_id.split("-")
        by_process.setdefault(process, []).append(int(n))
    # Each process's commands stay in the order it posted them.
    assert by_process == {f"p{k}": list(range(8)) for k in range(4)}


def test_an_inbox_that_is_not_a_folder_is_reported_once_and_never_followed(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    inbox.post(elsewhere, KEY, RUN, ResolveRequested(task_id="t2"))
    folder = tmp_path / "inbox"
    folder.symlink_to(elsewhere)  # planted: a genuine command waits behind it
    t = taker(folder)
    (rejected,) = messages(take(t))
    assert rejected == HumanCommandRejected(
        path=str(folder), reason="the inbox cannot be read: a symbolic link, not a folder"
    )
    assert take(t) == []  # said once, not at every tick
    with pytest.raises(inbox.InboxError, match="not a folder of this user's"):
        inbox.post(folder, KEY, RUN, RetryRequested(task_id="t1"))
    assert len(os.listdir(elsewhere)) == 1
