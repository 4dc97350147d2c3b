"""What a model or a note writes is shown inert, and journaled exactly.

A scenario's plan summary, task titles, agent text, tool input and QA reasons carry
OSC 52, OSC 8 and CSI sequences, as does a human's ``retry --note``: no view's text
output holds a control byte, and ``logs --json`` holds every string as it was. The
Staff Engineer's first task list names files outside the worktree: it is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from autonoma.protocol import AnswerRejected, TaskDefined
from tests.conftest import run_autonoma
from tests.e2e.runs import assert_clean_exit, journal, make_project, messages, start

OSC52 = "\x1b]52;c;cHduZWQ=\x07"
OSC8 = "\x1b]8;;http://x\x1b\\"
OSC8_END = "\x1b]8;;\x1b\\"
CLEAR = "\x1b[2J"
NOTE = "look \x1b]52;c;bm90ZQ==\x07 again \x1b[2J"
# Whatever could steer a terminal: C0 but tab and newline, DEL, C1, bidi overrides.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_model_text_and_notes_are_inert_on_a_terminal_and_exact_in_the_journal(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    env = {**clean_env, "AUTONOMA_MAX_RETRIES": "1"}
    run = start(root, "hostile_text.toml", env)
    assert_clean_exit(run, 1)  # t1 escalated
    rows = journal(root)

    # The first task list was refused, one line per path, naming the task.
    (rejected,) = messages(rows, AnswerRejected, role="staff_engineer")
    assert rejected.errors == [
        'task t1: file "../../etc/passwd" is refused: a ".." component leaves the worktree',
        'task t2: file "/etc/shadow" is refused: an absolute path',
        'task t2: file ".git/config" is refused: points into .git',
    ]
    assert [(t.task_id, t.files) for t in messages(rows, TaskDefined)] == [("t1", ["t1.txt"])]
    assert 'task t1: file "../../etc/passwd" is refused' in run.stdout

    retry = run_autonoma("retry", "t1", "--note", NOTE, cwd=root, env=env)
    assert_clean_exit(retry, 0)

    outputs = {"start": run.stdout + run.stderr, "retry": retry.stdout + retry.stderr}
    for args in (("status",), ("logs", "--limit", "1000"), ("replay",)):
        shown = run_autonoma(*args, cwd=root, env=env)
        assert_clean_exit(shown, 0)
        outputs[" ".join(args)] = shown.stdout + shown.stderr
    # What was sent is seen, without its control sequences.
    assert "plan: Plan  clip  clear" in outputs["start"]
    assert "task t1: Link here" in outputs["start"]
    assert "developer-1 [t1] Bash: true #" in outputs["start"]  # the call claude refused
    assert "look  again" in outputs["status"]
    assert "Link here" in outputs["status"]
    assert "look  again" in outputs["logs --limit 1000"]
    for name, text in outputs.items():
        assert not CONTROL.search(text.replace("\n", "").replace("\t", "")), name

    # logs --json: valid JSON, every string exactly as the model or the human wrote it.
    dumped = run_autonoma("logs", "--json", "--limit", "1000", cwd=root, env=env)
    assert_clean_exit(dumped, 0)
    strings = _strings([json.loads(line) for line in dumped.stdout.splitlines()])
    for raw in (
        f"Plan {OSC52} clip {CLEAR} clear",
        f"Link {OSC8}here{OSC8_END}",
        f"Working {CLEAR}{OSC52} now",
        f"true # {OSC52}",
        f"{CLEAR} write",
        f"{CLEAR} bad {OSC52}",
        NOTE,
    ):
        assert raw in strings, raw


def _strings(value: object) -> set[str]:
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()
