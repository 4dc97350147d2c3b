"""The chaos suite's harness: real runs of ``autonoma start``, things killed at random
moments, and the invariants that must hold afterwards.

A trial is one fresh repository (`make_project`) and a sim scenario of a few small tasks
(`Company`), run by the real ``autonoma start`` (real ``claude``, real git, the sim
in-process) in a child process of its own session, so that the whole group can be
killed. The moments are drawn from a `random.Random` seeded per trial; the seed is
printed and kept in the per-trial table, and ``AUTONOMA_CHAOS_SEED`` sets the first one
(``make chaos SEED=...``). ``AUTONOMA_CHAOS_TRIALS`` sets the long scenarios' trial
count (``make chaos TRIALS=40``).

After every trial, each invariant is a function of its own returning what is wrong
(an empty list: it holds): `tree_differences` (main's tree against an uninterrupted
run's), `double_merges` (journal and main's history), `survivors` (no process of the
run once its owner is gone, read from ``/proc``), `leftover_worktrees`, `status_word`
(what ``autonoma status`` says of the run) and `run_problems` (every task merged, no
escalation); a run that does not end within its bound is stuck (`Trial.wait`).

`record` keeps a row for the session's tables; ``tests/chaos/conftest.py`` prints them.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autonoma.agents import process
from autonoma.journal import reader
from autonoma.journal.schema import JournalError
from autonoma.protocol import (
    AgentProcessStarted,
    AgentToolResult,
    AgentToolUse,
    Envelope,
    Escalation,
    RunFinished,
    RunStarted,
    TaskMerged,
    TaskStateChanged,
)
from autonoma.sim import toml_value
from tests.e2e.runs import git, make_project

TRIALS_VARIABLE = "AUTONOMA_CHAOS_TRIALS"
SEED_VARIABLE = "AUTONOMA_CHAOS_SEED"
DEFAULT_SEED = 1313


def _read_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise SystemExit(f"{name}={text!r}: must be a whole number") from None
    if value < 1:
        raise SystemExit(f"{name}={text!r}: must be at least 1")
    return value


# Read once at import: conftest then takes them out of the environment, where autonoma
# would refuse them as unknown settings (every AUTONOMA_* variable is one).
_TRIALS = _read_int(TRIALS_VARIABLE)
_SEED = _read_int(SEED_VARIABLE)


LENGTHS = [
    pytest.param(False, id="short"),
    pytest.param(True, id="long", marks=(pytest.mark.chaos_long, pytest.mark.timeout(4 * 3600))),
]
"""A scenario's two versions, for ``@pytest.mark.parametrize("long", LENGTHS)``: one
trial in ``make test``, the long one (marked ``chaos_long``, hours allowed) in
``make chaos``."""


def trials(long: bool, default: int) -> int:
    """How many trials a scenario runs: 1 for the short version (``make test``), else
    ``AUTONOMA_CHAOS_TRIALS`` or ``default`` (the issue's minimum)."""
    if not long:
        return 1
    return _TRIALS if _TRIALS is not None else default


def seeds(scenario: str, count: int) -> list[int]:
    """The trials' seeds: ``AUTONOMA_CHAOS_SEED`` and on (with ``TRIALS=1``, the one
    trial that a failure named is played again, its moments drawn alike), else a fixed
    base that differs per scenario."""
    if _SEED is not None:
        return [_SEED + i for i in range(count)]
    base = DEFAULT_SEED + sum(ord(c) for c in scenario) * 1000
    return [base + i for i in range(count)]


# --- the tables -------------------------------------------------------------------------

_TABLES: dict[str, list[dict[str, object]]] = {}


def record(table: str, row: dict[str, object]) -> None:
    """Keep ``row`` for the session's table ``table`` (printed at the end of the session
    by ``tests/chaos/conftest.py``; columns are the rows' keys)."""
    _TABLES.setdefault(table, []).append(dict(row))


def tables() -> dict[str, list[dict[str, object]]]:
    """Every table recorded so far, by name, in the order recorded."""
    return {name: [dict(r) for r in rows] for name, rows in _TABLES.items()}


def render(rows: list[dict[str, object]]) -> list[str]:
    """``rows`` as aligned text lines: a header (the keys, in order of first appearance),
    a rule, one line per row (a missing key is blank; floats with 1 decimal)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]

    def cell(value: object) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    cells = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for line in cells:
        out.append("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
    return out


# --- the company ------------------------------------------------------------------------

GATE_MARK = "chaos-gate"
"""In the merge gate's test command, so that its process can be found (and hit)."""

LINGER = "(setsid sh -c '(nohup sleep 120 >/dev/null 2>&1 &)' &)"
"""What each developer's command and the gate's tests leave running, as a server or a
watcher started in the background would: a double-forked ``sleep`` in a session of its
own. It must die with the turn or check that started it, however that ends; left
behind, the trial's orphan check finds it (its folder is the trial's)."""


@dataclass(frozen=True)
class Company:
    """What a trial runs: ``tasks`` small independent tasks, each developer answering
    after ``latency`` s (a little more for some), the merge gate's tests taking
    ``gate_sleep`` s, ``workers`` developers, and extra settings (``AUTONOMA_*``)."""

    tasks: int = 3
    latency: float = 0.5
    gate_sleep: float = 0.3
    workers: int = 3
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def task_ids(self) -> list[str]:
        return [f"t{n}" for n in range(1, self.tasks + 1)]

    @property
    def test_command(self) -> str:
        return f": {GATE_MARK}; {LINGER}; sleep {self.gate_sleep}; test -f requirements.md"

    def scenario(self) -> str:
        """The sim scenario (TOML): the CEO's plan, the Staff Engineer's tasks, one
        developer rule per task (write ``<task>.txt`` holding its name and commit it, a
        command that may run again harmlessly, leaving a `LINGER` process), QA
        approving."""
        tasks = [
            {
                "id": t,
                "title": f"Write {t}",
                "spec": f"Create {t}.txt holding `{t}` and commit it.",
                "deps": [],
                "files": [f"{t}.txt"],
                "acceptance": [f"{t}.txt holds `{t}`"],
            }
            for t in self.task_ids
        ]
        plan = {
            "summary": "Small files.",
            "milestones": [
                {
                    "id": "m1",
                    "title": "Files",
                    "goal": "Every file holds its own name",
                    "acceptance": ["Every file holds its own name"],
                }
            ],
            "assumptions": [],
            "out_of_scope": [],
        }
        commands = {"setup_command": "", "test_command": self.test_command, "tasks": tasks}
        lines = [
            "usage = { input_tokens = 1000, output_tokens = 50 }",
            *_rule("ceo", None, [_answer(plan)]),
            *_rule("staff_engineer", None, [_answer(commands)]),
        ]
        command = (
            "echo {task} > {task}.txt && git add {task}.txt && "
            f"(git diff --cached --quiet || git commit -q -m '{{task}}: file'); {LINGER}"
        )
        report = {
            "summary": "Wrote {task}.txt.",
            "changes": ["{task}.txt"],
            "tests": "none: a text file",
            "left": [],
        }
        for n, task in enumerate(self.task_ids):
            steps = [
                {
                    # Spread a little, so that the tasks do not end in lockstep.
                    "latency": round(self.latency * (1 + 0.25 * (n % 3)), 2),
                    "tool": {"name": "Bash", "input": {"command": command, "description": "write"}},
                },
                {"text": "Done.", **_answer(report)},
            ]
            lines += _rule("developer", task, steps)
        verdict = {
            "verdict": "approve",
            "reasons": ["{task}.txt is there"],
            "test_command": "test -f {task}.txt",
            "test_output_summary": "ok",
        }
        lines += _rule("qa", None, [_answer(verdict)])
        return "\n".join(lines) + "\n"


IDLE = 20.0
"""The trials' turn idle timeout (``turn_idle_timeout``): longer than any quiet moment of
a turn here, a claude's start-up included (up to 10 s seen on the loaded machine), so
that only a stopped claude meets it."""

COMPANY = Company(gate_sleep=1.0, settings=(("AUTONOMA_TURN_IDLE_TIMEOUT", str(IDLE)),))
"""The company every scenario plays: one uninterrupted reference run per session."""


def _answer(value: dict[str, object]) -> dict[str, object]:
    """A step answering with ``value`` as the structured output."""
    return {"tool": {"name": "StructuredOutput", "input": value}}


def _rule(role: str, task: str | None, steps: list[dict[str, object]]) -> list[str]:
    out = ["", "[[rule]]", f"role = {toml_value(role)}"]
    if task is not None:
        out.append(f"task = {toml_value(task)}")
    for step in steps:
        out.append("[[rule.step]]")
        for key in ("latency", "text"):
            if key in step:
                out.append(f"{key} = {toml_value(step[key])}")
        tool = step.get("tool")
        if isinstance(tool, dict):
            out += [
                "[[rule.step.tool]]",
                f"name = {toml_value(tool['name'])}",
                f"input = {toml_value(tool['input'])}",
            ]
    return out


# --- processes, from /proc -----------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """One live process: its pid, parent, state letter, start time (ticks), argv, comm."""

    pid: int
    ppid: int
    state: str
    start: int
    argv: tuple[str, ...]
    comm: str

    @property
    def is_claude(self) -> bool:
        names = {self.comm, Path(self.argv[0]).name if self.argv else ""}
        return bool(names & {"claude", "claude.exe"})

    def describe(self) -> str:
        return f"{self.pid} [{self.state}] {' '.join(self.argv)[:160]}"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _with_command(entry: process.ProcEntry) -> Proc:
    comm = (_read(f"/proc/{entry.pid}/comm") or b"").decode("utf-8", "replace").strip()
    argv = (_read(f"/proc/{entry.pid}/cmdline") or b"").split(b"\0")
    return Proc(
        pid=entry.pid,
        ppid=entry.ppid,
        state=entry.state,
        start=entry.start,
        argv=tuple(a.decode("utf-8", "replace") for a in argv if a),
        comm=comm,
    )


def all_processes() -> list[Proc]:
    """Every process but zombies (a zombie runs nothing; its parent reaps it)."""
    return [_with_command(e) for e in process.processes() if e.alive]


def _points_into(pid: int, where: str) -> bool:
    """Whether process ``pid`` works under the folder ``where``: its cwd, or a path in
    its command line or environment (claude's config folder is in the project)."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = ""
    if cwd == where or cwd.startswith(where + "/"):
        return True
    needle = (where + "/").encode()
    for name in ("cmdline", "environ"):
        raw = _read(f"/proc/{pid}/{name}")
        if raw is not None and needle in raw.replace(b"\0", b" ") + b" ":
            return True
    return False


def run_processes(where: Path) -> list[Proc]:
    """The live processes of the run(s) in folder ``where`` (a trial's own), this
    process excluded."""
    base = str(where.resolve())
    me = os.getpid()
    return [p for p in all_processes() if p.pid != me and _points_into(p.pid, base)]


def descendants(pid: int, among: Iterable[Proc] | None = None) -> list[Proc]:
    """The processes below ``pid`` (children, theirs, ...), at this moment."""
    return process.descendants({pid}, all_processes() if among is None else among)


def still_alive(procs: Iterable[Proc]) -> list[Proc]:
    """Those of ``procs`` still running (same pid and start time, not a zombie)."""
    out = []
    for p in procs:
        entry = process.read_entry(p.pid)
        if entry is not None and entry.start == p.start and entry.alive:
            out.append(_with_command(entry))
    return out


def poll(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Whether ``condition`` became truthy within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --- the invariants -----------------------------------------------------------------------


def main_tree(root: Path) -> dict[str, str]:
    """``main``'s files: path -> mode and blob id (``git ls-tree -r``)."""
    out = {}
    for line in git(root, "ls-tree", "-r", "main").splitlines():
        meta, _, path = line.partition("\t")
        mode, _, blob = meta.split()
        out[path] = f"{mode} {blob}"
    return out


def tree_differences(root: Path, reference: dict[str, str]) -> list[str]:
    """How main's tree differs from ``reference`` (an uninterrupted run's)."""
    tree = main_tree(root)
    problems = [f"missing on main: {p}" for p in sorted(set(reference) - set(tree))]
    problems += [f"extra on main: {p}" for p in sorted(set(tree) - set(reference))]
    problems += [
        f"differs on main: {p} ({git(root, 'show', f'main:{p}')[:80]!r})"
        for p in sorted(set(tree) & set(reference))
        if tree[p] != reference[p]
    ]
    return problems


def journal(root: Path) -> list[Envelope]:
    """The project's journal (empty while there is none yet)."""
    db = root / ".autonoma" / "state.db"
    if not db.exists():
        return []
    return list(reader.read(db))


def double_merges(root: Path, tasks: list[str]) -> list[str]:
    """Tasks merged more than once: ``TaskMerged`` journaled twice, or two merge commits
    of the task on main's history."""
    rows = journal(root)
    merged = Counter(e.message.task_id for e in rows if isinstance(e.message, TaskMerged))
    subjects = git(root, "log", "--format=%s", "main").splitlines()
    problems = [f"{t}: TaskMerged journaled {n} times" for t, n in merged.items() if n > 1]
    for task in tasks:
        n = sum(1 for s in subjects if s.startswith(f"Merge {task}: "))
        if n > 1:
            problems.append(f"{task}: merged {n} times on main")
    return problems


def run_problems(root: Path, tasks: list[str]) -> list[str]:
    """What the journal says went wrong: a task not merged (on main's history once), an
    escalation, a last run that did not end done."""
    rows = journal(root)
    merged = {e.message.task_id for e in rows if isinstance(e.message, TaskMerged)}
    problems = [f"{t}: never merged" for t in tasks if t not in merged]
    subjects = git(root, "log", "--format=%s", "main").splitlines()
    problems += [
        f"{t}: no merge commit on main"
        for t in tasks
        if not any(s.startswith(f"Merge {t}: ") for s in subjects)
    ]
    problems += [f"escalated: {e.message}" for e in rows if isinstance(e.message, Escalation)]
    problems += [
        f"{m.task_id} escalated: {m.reason}"
        for m in (e.message for e in rows)
        if isinstance(m, TaskStateChanged) and m.state == "escalated"
    ]
    ends = [e.message for e in rows if isinstance(e.message, RunFinished)]
    if not ends or ends[-1].outcome != "done":
        problems.append(f"the last run ended {ends[-1].outcome if ends else 'without a word'}")
    return problems


def survivors(where: Path, grace: float = 5.0) -> list[str]:
    """Processes of the run still alive ``grace`` s from now (call once their owner is
    gone); each found is then SIGKILLed, so that it does not spoil the next trial."""
    poll(lambda: not run_processes(where), grace, 0.1)
    left = run_processes(where)
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    return [p.describe() for p in left]


def leftover_worktrees(root: Path) -> list[str]:
    """Worktrees, clones and turns' temp folders an ended run left: ``git worktree
    list`` may hold only the repository and the merge gate's worktree,
    ``.autonoma/worktrees`` only ``_merge``, ``.autonoma/clones/<run>`` and
    ``.autonoma/tmp/<run>`` nothing."""
    listed = git(root, "worktree", "list", "--porcelain").split("\n\n")
    paths = {b.split("\n")[0].removeprefix("worktree ") for b in listed if b.strip()}
    allowed = {str(root), str(root / ".autonoma" / "worktrees" / "_merge")}
    problems = [f"worktree left: {p}" for p in sorted(paths - allowed)]
    worktrees = root / ".autonoma" / "worktrees"
    if worktrees.exists():
        problems += [f"left: {p}" for p in sorted(worktrees.iterdir()) if p.name != "_merge"]
    clones = root / ".autonoma" / "clones"
    if clones.exists():
        for run in sorted(clones.iterdir()):
            problems += [f"clone left: {p}" for p in sorted(run.iterdir())]
    temp = root / ".autonoma" / "tmp"
    if temp.exists():
        for run in sorted(temp.iterdir()):
            problems += [f"turn temp folder left: {p}" for p in sorted(run.iterdir())]
    return problems


def status_word(root: Path, env: dict[str, str]) -> str:
    """What ``autonoma status`` says of the latest run in one word (done, stopped,
    interrupted, running, failed), or its whole first line when it says none."""
    shown = subprocess.run(
        [sys.executable, "-m", "autonoma", "status"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    first = (shown.stdout.splitlines() or [shown.stderr.strip()])[0]
    if not first.startswith("Run ") or ": " not in first:
        return first
    return first.split(": ", 1)[1].split(",", 1)[0]


# --- a trial ---------------------------------------------------------------------------------


def base_env(company: Company) -> dict[str, str]:
    """The environment of a trial's ``autonoma``: this one without any ``AUTONOMA_*``
    variable, plus the company's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    env.update(dict(company.settings))
    return env


@dataclass
class Trial:
    """One repository and the ``autonoma start`` processes run in it, one after another.

    ``kills`` counts what the trial did to the run (signals delivered); ``problems``
    collects every broken invariant, by name (`Tally` counts them).
    """

    where: Path
    company: Company
    seed: int
    bound: float
    index: int = 0
    root: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    model: Path = field(init=False)
    rng: random.Random = field(init=False)
    kills: int = 0
    starts: int = 0
    stuck: int = 0
    began: float = 0.0
    ended: float = 0.0
    problems: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _rows: list[Envelope] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.where.mkdir(parents=True, exist_ok=True)
        self.root = make_project(self.where)
        self.env = base_env(self.company)
        self.model = self.where / "model.toml"
        self.model.write_text(self.company.scenario())
        self.rng = random.Random(self.seed)

    # -- driving -------------------------------------------------------------------------

    def launch(self) -> subprocess.Popen[bytes]:
        """``autonoma start`` (a new run, or the resumed one) in its own session; its
        output goes to ``start-<n>.log`` beside the repository."""
        if not self.began:
            self.began = time.monotonic()
        self.starts += 1
        with open(self.where / f"start-{self.starts}.log", "wb") as log:
            return subprocess.Popen(
                [
                    *(sys.executable, "-m", "autonoma", "start", "requirements.md"),
                    *("--scenario", str(self.model)),
                    *("--max-workers", str(self.company.workers)),
                ],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self, n: int | None = None) -> str:
        """The output of start number ``n`` (the last one by default)."""
        path = self.where / f"start-{n or self.starts}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, active: subprocess.Popen[bytes], timeout: float | None = None) -> int | None:
        """Its exit code; None when it is still running after ``timeout`` (default: the
        trial's bound), in which case it is stuck: counted, and its group SIGKILLed."""
        try:
            code = active.wait(self.bound if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            if timeout is not None:
                return None
            self.stuck += 1
            self.fail("stuck", f"start {self.starts} still running after {self.bound:.0f} s")
            kill_group(active)
            return None
        self.ended = time.monotonic()
        return code

    def ends_within(self, active: subprocess.Popen[bytes], seconds: float) -> bool:
        """Whether the run ends by itself within ``seconds``."""
        return self.wait(active, timeout=seconds) is not None

    def until(self, active: subprocess.Popen[bytes], condition: Callable[[], object]) -> bool:
        """Wait for ``condition`` while the run goes on: False when the run ended (or
        the trial's bound passed) first."""
        deadline = time.monotonic() + self.bound
        while time.monotonic() < deadline:
            if condition():
                return True
            if active.poll() is not None:
                return bool(condition())
            time.sleep(0.05)
        return False

    def moment(self, ref: Reference, start: float = 0.0, end: float = 0.95) -> int:
        """A random moment of the run: a journal row between ``start`` and ``end`` of
        the uninterrupted run's rows."""
        return self.rng.randint(max(1, int(start * ref.rows)), max(1, int(end * ref.rows)))

    def reach(self, active: subprocess.Popen[bytes], row: int) -> bool:
        """Wait until the journal holds ``row`` rows (the rows of earlier starts count),
        then a random fraction of a second; False when the run ended first."""
        if not self.until(active, lambda: len(self.journal()) >= row):
            return False
        time.sleep(self.rng.uniform(0, 0.3))
        return active.poll() is None

    def journal(self) -> list[Envelope]:
        """The journal so far (read on from the last row seen: polled often)."""
        db = self.root / ".autonoma" / "state.db"
        if db.exists():
            after = self._rows[-1].seq if self._rows else 0
            # A journal being made (its tables not there yet) reads as nothing new.
            with contextlib.suppress(JournalError):
                self._rows += reader.read(db, after_seq=after)
        return list(self._rows)

    def outcome(self) -> str | None:
        """The latest run's journaled outcome; None while it has none."""
        rows = self.journal()
        if not rows:
            return None
        last = rows[-1].run_id
        ends = [
            e.message.outcome
            for e in rows
            if e.run_id == last and isinstance(e.message, RunFinished)
        ]
        return ends[-1] if ends else None

    def expected_status(self) -> str | None:
        """What ``status`` must say once the process is gone: the run's outcome, or
        interrupted; None when no run was journaled yet (killed at start-up)."""
        if not any(isinstance(e.message, RunStarted) for e in self.journal()):
            return None
        return self.outcome() or "interrupted"

    def merging(self) -> int:
        """How many times a task entered ``merging`` so far (the merge gate started)."""
        return sum(
            1
            for e in self.journal()
            if isinstance(e.message, TaskStateChanged) and e.message.state == "merging"
        )

    def claudes(self) -> list[Proc]:
        """The run's ``claude`` processes of agents' turns now (not the short
        ``claude auth status`` of a start: a turn is journaled with its pid)."""
        turns = self.turn_pids()
        return sorted(
            (p for p in run_processes(self.where) if p.is_claude and p.pid in turns),
            key=lambda p: p.pid,
        )

    def turn_pids(self) -> dict[int, int]:
        """Each turn's claude pid -> the seq of its `AgentProcessStarted`."""
        return {
            e.message.pid: e.seq
            for e in self.journal()
            if isinstance(e.message, AgentProcessStarted)
        }

    def tool_running(self, pid: int) -> bool:
        """Whether the turn of claude ``pid`` has a tool call without its result yet."""
        rows = self.journal()
        since = self.turn_pids().get(pid)
        agent = next(
            (
                e.message.agent_id
                for e in rows
                if e.seq == since and isinstance(e.message, AgentProcessStarted)
            ),
            None,
        )
        used: set[str] = set()
        for e in rows:
            if since is None or e.seq <= since or getattr(e.message, "agent_id", None) != agent:
                continue
            if isinstance(e.message, AgentToolUse):
                used.add(e.message.tool_use_id)
            elif isinstance(e.message, AgentToolResult):
                used.discard(e.message.tool_use_id)
        return bool(used)

    def gate_tests(self) -> list[Proc]:
        """The merge gate's test command (its shell, not the sandbox around it)."""
        return [
            p
            for p in run_processes(self.where)
            if len(p.argv) >= 3
            and p.argv[1] == "-c"
            and GATE_MARK in p.argv[2]
            and Path(p.argv[0]).name in ("sh", "bash", "dash")
        ]

    # -- checking ------------------------------------------------------------------------

    def fail(self, invariant: str, *problems: str) -> None:
        """Note broken ``invariant`` (one of `INVARIANTS`)."""
        self.problems.setdefault(invariant, []).extend(problems)

    def check(self, invariant: str, problems: list[str]) -> None:
        if problems:
            self.fail(invariant, *problems)

    def check_owner_gone(self, *, status: str | None) -> None:
        """Once ``autonoma start`` ended: no process of the run survives; ``status``
        says ``status`` (None: not checked)."""
        self.check("orphans", survivors(self.where))
        if status is not None:
            word = status_word(self.root, self.env)
            if word != status:
                said = f"after start {self.starts}: status says {word!r}, not {status!r}"
                self.fail("status", said)

    def finish(self, code: int | None, reference: dict[str, str]) -> None:
        """The last start ended with ``code``: check every invariant of an ended run."""
        if code is None:
            return  # stuck: counted already
        if code != 0:
            self.fail("run", f"the last start exited {code}: {self.log()[-600:]}")
        self.check_owner_gone(status="done")
        self.check("trees", tree_differences(self.root, reference))
        self.check("double merges", double_merges(self.root, self.company.task_ids))
        self.check("leftovers", leftover_worktrees(self.root))
        self.check("run", run_problems(self.root, self.company.task_ids))

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.began


INVARIANTS = ("trees", "double merges", "orphans", "leftovers", "stuck", "status", "run")


def kill_group(active: subprocess.Popen[bytes], signum: int = signal.SIGKILL) -> None:
    """Send ``signum`` to the whole process group of ``active`` (a session leader) and
    wait for it, when that signal ends it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(active.pid, signum)
    if signum == signal.SIGKILL:
        active.wait(30)


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run of a company: main's tree, how long it took, and how many
    rows it journaled (a moment of a run is drawn as a row: a wall-clock moment would
    mean another point of the run on a busier machine)."""

    tree: dict[str, str]
    seconds: float
    rows: int


_REFERENCES: dict[Company, Reference] = {}


def reference(company: Company, folder: Callable[[], Path]) -> Reference:
    """The uninterrupted run of ``company`` (made once per session, in ``folder()``).

    Raises AssertionError when even that run does not end well.
    """
    if company not in _REFERENCES:
        trial = Trial(folder(), company, seed=0, bound=600)
        code = trial.wait(trial.launch())
        trial.finish(code, reference={})
        trial.problems.pop("trees", None)  # nothing to compare with: this is the reference
        assert not trial.problems, f"the uninterrupted run failed: {trial.problems}"
        rows = len(trial.journal())
        _REFERENCES[company] = Reference(main_tree(trial.root), trial.seconds, rows)
    return _REFERENCES[company]


@dataclass
class Tally:
    """A scenario's trials: its table row (`row`) and what went wrong (`failures`)."""

    scenario: str
    uninterrupted: float
    done: list[Trial] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    """Failures outside the trials (the uninterrupted run that follows them)."""

    def add(self, trial: Trial) -> None:
        """Count ``trial``, note it in the per-trial table, and print its line."""
        trial.ended = trial.ended or time.monotonic()  # killed after its end: not waited for
        self.done.append(trial)
        broken = ", ".join(f"{k}: {len(v)}" for k, v in trial.problems.items()) or "ok"
        record(
            "chaos trials",
            {
                "scenario": self.scenario,
                "trial": len(self.done),
                "seed": trial.seed,
                "kills": trial.kills,
                "starts": trial.starts,
                "seconds": round(trial.seconds, 1),
                "result": broken,
                "notes": "; ".join(trial.notes)[:100],
            },
        )
        print(
            f"chaos {self.scenario} trial {len(self.done)} seed {trial.seed}: kills "
            f"{trial.kills}, {trial.seconds:.1f} s, {broken} ({'; '.join(trial.notes)})"
        )
        if not trial.problems:
            shutil.rmtree(trial.where, ignore_errors=True)  # keep only failed trials

    def count(self, invariant: str) -> int:
        """Trials that broke ``invariant``."""
        return sum(1 for t in self.done if invariant in t.problems)

    def row(self) -> dict[str, object]:
        """The scenario's line of the ``chaos`` table."""
        times = [t.seconds for t in self.done] or [0.0]
        return {
            "scenario": self.scenario,
            "trials": len(self.done),
            "kills": sum(t.kills for t in self.done),
            "identical trees": len(self.done) - self.count("trees") - self.count("stuck"),
            "double merges": self.count("double merges"),
            "orphans": self.count("orphans"),
            "leftovers": self.count("leftovers"),
            "stuck runs": self.count("stuck"),
            "other failures": self.count("status") + self.count("run"),
            "mean s": round(statistics.mean(times), 1),
            "max s": round(max(times), 1),
            "uninterrupted s": round(self.uninterrupted, 1),
        }

    def failures(self) -> list[str]:
        """One line per broken invariant of each failed trial (its seed and folder)."""
        return self.extra + [
            f"trial {n} (seed {t.seed}, {t.where}): {name}: {'; '.join(problems)[:800]}"
            for n, t in enumerate(self.done, start=1)
            for name, problems in t.problems.items()
        ]

    def record_and_check(self) -> None:
        """Record the scenario's row, then fail on any loss (after, so the table prints)."""
        record("chaos", self.row())
        failures = self.failures()
        assert not failures, "\n".join(failures)


@contextlib.contextmanager
def cleanup(trial: Trial) -> Iterator[Trial]:
    """Whatever happens in the block, no process of the trial outlives it."""
    try:
        yield trial
    finally:
        for p in run_processes(trial.where):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)


def play_trials(
    name: str,
    company: Company,
    count: int,
    where: Path,
    ref: Reference,
    play: Callable[[Trial, Reference], None],
    slack: float = 0.0,
) -> None:
    """Play ``count`` trials of scenario ``name`` (``play`` drives one), each in a
    folder of its own under ``where`` and bound to 6x the uninterrupted run (at least
    2 minutes) plus ``slack``; record the scenario's row, then fail on any loss.

    With more than one trial, an uninterrupted run follows them (the machine's load
    changes over a long suite): the row compares with the mean of it and ``ref``.
    """
    tally = Tally(name, ref.seconds)
    bound = max(120.0, 6 * ref.seconds) + slack
    for n, seed in enumerate(seeds(name, count)):
        trial = Trial(where / f"trial-{n}", company, seed, bound, index=n)
        with cleanup(trial):
            play(trial, ref)
        tally.add(trial)
    if count > 1:
        control = Trial(where / "uninterrupted", company, 0, bound)
        with cleanup(control):
            control.finish(control.wait(control.launch()), ref.tree)
        tally.uninterrupted = statistics.mean([ref.seconds, control.seconds])
        for invariant, problems in control.problems.items():
            tally.extra.append(f"the uninterrupted run: {invariant}: {'; '.join(problems)}")
    tally.record_and_check()
