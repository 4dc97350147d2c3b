"""Helpers of the end-to-end tests: a project to run in, the command, the journal's rows."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from autonoma.journal import reader
from autonoma.protocol import AgentPromptGiven, AgentTurnStarting, Envelope
from tests.conftest import run_autonoma

SCENARIOS = Path(__file__).parent / "scenarios"
REQUIREMENTS = "Write a few small text files, one per task.\n"


def git(cwd: Path, *args: str) -> str:
    """Run git (the real one) and return its output."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def make_project(parent: Path, name: str = "project") -> Path:
    """A git repository on ``main`` with one commit holding ``requirements.md``."""
    root = parent / name
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Tester")
    git(root, "config", "user.email", "tester@example.invalid")
    (root / "requirements.md").write_text(REQUIREMENTS)
    git(root, "add", "requirements.md")
    git(root, "commit", "-q", "-m", "Requirements")
    return root


def start(
    root: Path, scenario: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """``autonoma start requirements.md --scenario MODEL ARGS`` in ``root``.

    MODEL is one file beside the project holding ``scenarios/<scenario>``: a run
    remembers its scenario file and refuses to resume against another one, so a test
    that changes what the model does between two runs rewrites that file.
    """
    return run_autonoma(
        "start",
        "requirements.md",
        "--scenario",
        str(model_file(root, scenario)),
        *args,
        cwd=root,
        env=env,
    )


def model_file(root: Path, scenario: str) -> Path:
    """The project's scenario file (beside it), now holding ``scenarios/<scenario>``."""
    model = root.parent / f"{root.name}-model.toml"
    model.write_text((SCENARIOS / scenario).read_text())
    return model


def db_of(root: Path) -> Path:
    return root / ".autonoma" / "state.db"


def journal(root: Path, after_seq: int = 0) -> list[Envelope]:
    """Every envelope of the project's journal after ``after_seq``, in order."""
    return list(reader.read(db_of(root), after_seq=after_seq))


M = TypeVar("M")


@dataclass(frozen=True)
class Row(Generic[M]):
    """A journal envelope whose message is known to be an ``M``."""

    seq: int
    ts: float
    run_id: str
    sender: str
    message: M


def envelopes(rows: Iterable[Envelope], kind: type[M], **fields: Any) -> list[Row[M]]:
    """The envelopes whose message is a ``kind`` with these field values."""
    return [
        Row(e.seq, e.ts, e.run_id, e.sender, e.message)
        for e in rows
        if isinstance(e.message, kind)
        and all(getattr(e.message, name) == value for name, value in fields.items())
    ]


def messages(rows: Iterable[Envelope], kind: type[M], **fields: Any) -> list[M]:
    """The messages of `envelopes`."""
    return [e.message for e in envelopes(rows, kind, **fields)]


def files_on(root: Path, ref: str) -> set[str]:
    """The files committed on ``ref``."""
    return set(git(root, "ls-tree", "-r", "--name-only", ref).split())


def autonoma_branches(root: Path) -> list[str]:
    return git(root, "for-each-ref", "--format=%(refname)", "refs/heads/autonoma").split()


def developer_turns(rows: Iterable[Envelope], task_id: str) -> list[AgentTurnStarting]:
    return messages(rows, AgentTurnStarting, role="developer", task_id=task_id)


def prompts(rows: Iterable[Envelope], **fields: Any) -> list[str]:
    """The prompt of each turn whose `AgentTurnStarting` has these field values, in order:
    its last argument, or for a turn started ahead (``waits_for_prompt``) what its
    `AgentPromptGiven` gave it ("" if none did: it was stopped unused)."""
    rows = list(rows)
    given = {m.session_id: m.prompt for m in messages(rows, AgentPromptGiven)}
    return [
        given.get(m.session_id, "") if m.waits_for_prompt else m.argv[-1]
        for m in messages(rows, AgentTurnStarting, **fields)
    ]


def status_json(root: Path, env: dict[str, str]) -> dict[str, Any]:
    result = run_autonoma("status", "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    state: dict[str, Any] = json.loads(result.stdout)
    return state


def assert_clean_exit(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
