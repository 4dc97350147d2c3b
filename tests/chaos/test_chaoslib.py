"""The chaos suite's own checks catch what they name (no claude: real git, real processes).

Each invariant is given the fault it exists for (a changed file on main, a task merged
twice, a process left working in the trial's folder, a leftover worktree and clone) and
must report it; the table printer lines up what `record` kept.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.chaos import chaoslib
from tests.e2e.runs import git, make_project


def commit(root: Path, path: str, text: str, message: str) -> None:
    (root / path).write_text(text)
    git(root, "add", path)
    git(root, "commit", "-q", "-m", message)


def test_a_changed_missing_or_extra_file_on_main_is_a_different_tree(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    commit(root, "t1.txt", "t1\n", "t1: file")
    commit(root, "t2.txt", "t2\n", "t2: file")
    reference = chaoslib.main_tree(root)
    assert chaoslib.tree_differences(root, reference) == []
    commit(root, "t1.txt", "t1\nt1\n", "t1: replayed")
    git(root, "rm", "-q", "t2.txt")
    commit(root, "t3.txt", "t3\n", "t3: stray")
    assert chaoslib.tree_differences(root, reference) == [
        "missing on main: t2.txt",
        "extra on main: t3.txt",
        "differs on main: t1.txt ('t1\\nt1\\n')",
    ]


def test_a_task_merged_twice_on_main_is_found(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    commit(root, "t1.txt", "t1\n", "Merge t1: Write t1")
    commit(root, "t2.txt", "t2\n", "Merge t2: Write t2")
    assert chaoslib.double_merges(root, ["t1", "t2"]) == []
    commit(root, "t1.txt", "again\n", "Merge t1: Write t1")
    assert chaoslib.double_merges(root, ["t1", "t2"]) == ["t1: merged 2 times on main"]


def test_a_process_working_in_the_trials_folder_survives_and_is_then_killed(
    tmp_path: Path,
) -> None:
    where = tmp_path / "trial"
    (where / "project").mkdir(parents=True)
    stray = subprocess.Popen(["sleep", "60"], cwd=where / "project", start_new_session=True)
    beside = subprocess.Popen(["sleep", "60"], cwd=tmp_path, start_new_session=True)
    try:
        assert [p.pid for p in chaoslib.run_processes(where)] == [stray.pid]
        (left,) = chaoslib.survivors(where, grace=0.3)
        assert left.startswith(f"{stray.pid} [S] sleep 60")
        assert stray.wait(5) == -9  # killed, so that it spoils no later trial
        assert beside.poll() is None  # not the trial's
    finally:
        for proc in (stray, beside):
            proc.kill()
            proc.wait()


def test_a_task_worktree_clone_or_temp_folder_left_behind_is_found(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    merge = root / ".autonoma" / "worktrees" / "_merge"
    git(root, "worktree", "add", "-q", "--detach", str(merge))
    (root / ".autonoma" / "clones" / "run1").mkdir(parents=True)
    assert chaoslib.leftover_worktrees(root) == []
    task = root / ".autonoma" / "worktrees" / "t1"
    git(root, "worktree", "add", "-q", "--detach", str(task))
    (root / ".autonoma" / "clones" / "run1" / "t2").mkdir()
    (root / ".autonoma" / "tmp" / "run1" / "turn-1").mkdir(parents=True)
    assert chaoslib.leftover_worktrees(root) == [
        f"worktree left: {task}",
        f"left: {task}",
        f"clone left: {root / '.autonoma' / 'clones' / 'run1' / 't2'}",
        f"turn temp folder left: {root / '.autonoma' / 'tmp' / 'run1' / 'turn-1'}",
    ]


def test_the_tables_line_up_every_column_rows_name() -> None:
    rows: list[dict[str, object]] = [{"scenario": "a", "trials": 20}, {"scenario": "bbb", "s": 1.3}]
    assert chaoslib.render(rows) == [
        "scenario  trials  s",
        "--------  ------  ---",
        "a         20",
        "bbb               1.3",
    ]
