"""The realistic samples, end to end: `autonoma demo --sample NAME` through the real ``claude``.

hours (Python, click and tabulate from PyPI, pytest) and notes (Node, dotenv from npm,
`npm test`) each need their dependencies installed by the project's set-up command, and
their scenarios play what a real model does: a long turn that streams steadily, a turn
that goes silent (stopped by the idle timeout this test sets, then resumed), a
permission denial, caches and a `.env` left in a worktree, a QA rejection that resumes
the developer's session. A run must end with every task merged, the sample's own tests
passing on `main` after its own set-up, nothing generated on `main`, and a journal whose
cost is claude's, counted once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from autonoma import demo
from autonoma.protocol import (
    AgentProcessExited,
    AgentTurnFinished,
    AgentTurnStarting,
    CostReported,
    Envelope,
    ReviewVerdict,
    TaskDefined,
    TaskStateChanged,
)
from autonoma.sim import load_scenario
from tests.e2e.runs import files_on, git, journal, messages
from tests.examples.samples import E2E_IDLE_TIMEOUT, STOPPED, shell, staff_answer, unwanted

# What each sample plays: the task whose turn goes silent, the task QA rejects once, the
# tool claude denies.
SAMPLES = {
    "hours": {"silent": "t3", "rejected": "t3", "denied": "WebFetch", "long": "t2"},
    "notes": {"silent": "t3", "rejected": "t4", "denied": "Bash", "long": "t2"},
}
DEADLINE = 900.0  # pip and npm installs in every worktree, on a shared machine


@dataclass
class Finished:
    """A demo run that ended: where, what it printed, its exit code, its journal."""

    sample: str
    root: Path
    stdout: str
    stderr: str
    code: int
    envelopes: list[Envelope]


def run_demo(sample: str, where: Path) -> Finished:
    """``autonoma demo --sample SAMPLE --dir WHERE`` with a short idle timeout, to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    env["AUTONOMA_TURN_IDLE_TIMEOUT"] = str(E2E_IDLE_TIMEOUT)
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "autonoma", "demo", "--sample", sample, "--dir", str(where)],
        cwd=where.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    return Finished(sample, where, proc.stdout, proc.stderr, proc.returncode, journal(where))


@pytest.fixture(scope="module", params=sorted(SAMPLES))
def finished(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Finished:
    sample: str = request.param
    return run_demo(sample, tmp_path_factory.mktemp(sample) / sample)


def test_the_run_merges_every_task(finished: Finished) -> None:
    assert finished.code == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "Traceback" not in finished.stdout + finished.stderr
    defined = {m.task_id for m in messages(finished.envelopes, TaskDefined)}
    merged = {
        m.task_id for m in messages(finished.envelopes, TaskStateChanged) if m.state == "merged"
    }
    assert defined and merged == defined
    assert f"{len(defined)} tasks: {len(defined)} merged" in finished.stdout


def test_the_samples_tests_pass_on_main_after_its_set_up(
    finished: Finished, tmp_path: Path
) -> None:
    answer = staff_answer(load_scenario(demo.sample_dir(finished.sample) / "scenario.toml"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "main", str(finished.root), str(clone))
    setup = shell(answer["setup_command"], clone)
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
    tests = shell(answer["test_command"], clone)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]


def test_main_holds_no_cache_virtual_environment_vendor_folder_or_env(
    finished: Finished,
) -> None:
    on_main = files_on(finished.root, "main")
    assert unwanted(on_main) == []
    assert ".gitignore" in on_main


def test_the_journal_cost_is_claudes_counted_once_per_session(finished: Finished) -> None:
    """claude's total_cost_usd is a session's running total: the journal's cost must be
    the sum over sessions of the last total claude reported (a resumed session, after an
    idle stop or a QA rejection, is not counted twice)."""
    last: dict[str, float] = {}
    for m in messages(finished.envelopes, AgentTurnFinished):
        last[m.session_id] = m.total_cost_usd
    journaled = sum(m.usd for m in messages(finished.envelopes, CostReported))
    assert journaled == pytest.approx(sum(last.values()), rel=1e-9, abs=1e-9)
    assert journaled > 0


def test_a_permission_denial_was_journaled(finished: Finished) -> None:
    denied = [
        d["tool_name"]
        for m in messages(finished.envelopes, AgentTurnFinished)
        for d in m.permission_denials
    ]
    assert SAMPLES[finished.sample]["denied"] in denied


def test_the_silent_turn_was_stopped_for_idleness_and_resumed(finished: Finished) -> None:
    plays = SAMPLES[finished.sample]
    stopped = [
        m
        for m in messages(finished.envelopes, AgentProcessExited)
        if getattr(m, "timeout", "") == "idle"
    ]
    # The silent turn was stopped. (On a busy machine another turn may be too: claude
    # prints nothing while a tool runs, an install say; its scenario resumes it.)
    assert plays["silent"] in {m.task_id for m in stopped}
    turns = messages(
        finished.envelopes, AgentTurnStarting, role="developer", task_id=plays["silent"]
    )
    resumed = [t for t in turns if t.resume and STOPPED in t.argv[-1]]
    assert len(resumed) == 1 and resumed[0].session_id == turns[0].session_id
    # The long turn streamed for longer than the idle timeout and was not stopped.
    assert plays["long"] not in {m.task_id for m in stopped}
    long_turns = messages(
        finished.envelopes, AgentTurnStarting, role="developer", task_id=plays["long"]
    )
    assert len(long_turns) == 1


def test_qas_rejection_resumed_the_developers_session(finished: Finished) -> None:
    task = SAMPLES[finished.sample]["rejected"]
    verdicts = [m.verdict for m in messages(finished.envelopes, ReviewVerdict) if m.task_id == task]
    assert verdicts == ["changes_requested", "approve"]
    turns = messages(finished.envelopes, AgentTurnStarting, role="developer", task_id=task)
    answer = [t for t in turns if "QA requested changes" in t.argv[-1]]
    assert len(answer) == 1 and answer[0].resume
    assert answer[0].session_id == turns[0].session_id
