"""The Staff Engineer's set-up and test commands cannot write outside their folder.

The real ``autonoma start`` and ``claude``, the sandbox setting on, scenario
``gate_escape.toml``: both commands try to change the user's repository (a tracked
file, ``.git``, a new branch, a file beside it). The repository must be unchanged but
for what the merge brings, and the journal names the model's commands.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autonoma.protocol import SetupRan, TaskMerged
from tests.e2e.runs import (
    REQUIREMENTS,
    assert_clean_exit,
    files_on,
    git,
    journal,
    make_project,
    messages,
    start,
)

pytestmark = pytest.mark.usefixtures("needs_bwrap")


def test_commands_from_the_model_cannot_write_the_users_repository(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    result = start(root, "gate_escape.toml", {**clean_env, "AUTONOMA_SANDBOX": "1"})
    assert_clean_exit(result, 0)
    rows = journal(root)
    places = {ran.place: ran for ran in messages(rows, SetupRan)}
    assert set(places) == {"task", "review", "merge_gate"}
    for ran in places.values():
        # The model's command as written, not bubblewrap's argv; its writes refused.
        assert ran.command.startswith('d=$PWD; while [ "$d" != / ]')
        assert f"repo={root}" in ran.output_tail
        assert "Read-only file system" in ran.output_tail
    [merged] = messages(rows, TaskMerged)
    assert merged.tests == "passed"
    # The user's repository: the tracked file as it was, no file beside it or in .git,
    # no branch but main and Autonoma's.
    assert (root / "requirements.md").read_text() == REQUIREMENTS
    assert git(root, "show", "main:requirements.md") == REQUIREMENTS
    assert "t1.txt" in files_on(root, "main")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("pwned")) == []
    assert sorted(p.name for p in (root / ".git").iterdir() if p.name.startswith("pwned")) == []
    branches = git(root, "branch", "--format=%(refname:short)").split()
    assert [b for b in branches if "pwned" in b] == []
