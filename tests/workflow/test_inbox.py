"""The inbox: commands other processes leave for the active run, as whole files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from autonoma.protocol import ResolveRequested, RetryRequested, encode_message
from autonoma.workflow import inbox


def test_post_take_done(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    assert inbox.take(folder) == []  # no folder yet: nothing pending, nothing created
    assert not folder.exists()
    first = inbox.post(folder, RetryRequested(task_id="t3", note="use sqlite"))
    second = inbox.post(folder, ResolveRequested(task_id="t4"))
    assert first.parent == second.parent == folder
    assert first.name.endswith(f"-{os.getpid()}.json")
    assert sorted(os.listdir(folder)) == sorted([first.name, second.name])  # no temporary left
    taken = inbox.take(folder)
    assert taken == [
        (first, RetryRequested(task_id="t3", note="use sqlite")),
        (second, ResolveRequested(task_id="t4")),
    ]
    assert inbox.take(folder) == taken  # taking does not remove: done() does
    inbox.done(first)
    inbox.done(first)  # already gone: nothing happens
    assert inbox.take(folder) == [(second, ResolveRequested(task_id="t4"))]


def test_many_posts_in_a_row_keep_their_order(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    for n in range(200):
        inbox.post(folder, RetryRequested(task_id=f"t{n}"))
    messages = [message for _, message in inbox.take(folder)]
    assert messages == [RetryRequested(task_id=f"t{n}") for n in range(200)]


def test_order_is_by_time_then_pid_not_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    # "999..." sorts after "1000..." as text; the time is compared as a number.
    for name, task in (("1000-5.json", "later"), ("999-7.json", "earlier"), ("1000-40.json", "x")):
        (folder / name).write_bytes(encode_message(RetryRequested(task_id=task)))
    taken = [m for _, m in inbox.take(folder) if isinstance(m, RetryRequested)]
    assert [m.task_id for m in taken] == ["earlier", "later", "x"]


def test_a_file_that_does_not_decode_is_set_aside(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    good = inbox.post(folder, RetryRequested(task_id="t1"))
    (folder / "1-1.json").write_text("{not json")
    (folder / "2-1.json").write_text('{"type": "NoSuchMessage"}')
    (folder / "3-1.json").write_bytes(b"\xff\xfe")
    (folder / ".4-1.json.tmp").write_text("being written")  # a post in progress: not seen
    (folder / "notes.txt").write_text("not a command")
    assert inbox.take(folder) == [(good, RetryRequested(task_id="t1"))]
    assert sorted(os.listdir(folder)) == sorted(
        [
            good.name,
            "1-1.json.bad",
            "2-1.json.bad",
            "3-1.json.bad",
            ".4-1.json.tmp",
            "notes.txt",
        ]
    )
    assert inbox.take(folder) == [(good, RetryRequested(task_id="t1"))]


def test_posts_from_other_processes(tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    script = (
        "import sys; from pathlib import Path; from autonoma.workflow import inbox; "
        "from autonoma.protocol import RetryRequested; "
        "[inbox.post(Path(sys.argv[1]), RetryRequested(task_id=f'{sys.argv[2]}-{n}')) "
        "for n in range(20)]"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(folder), f"p{k}"]) for k in range(4)
    ]
    for child in children:
        assert child.wait(timeout=30) == 0
    taken = inbox.take(folder)
    assert len(taken) == 80
    by_process: dict[str, list[int]] = {}
    for _, message in taken:
        assert isinstance(message, RetryRequested)
        process, n = message.task_id.split("-")
        by_process.setdefault(process, []).append(int(n))
    # Each process's commands stay in the order it posted them.
    assert by_process == {f"p{k}": list(range(20)) for k in range(4)}
