"""Makespan bench: the whole company on a DAG of known durations, against its lower bound.

A seeded generator makes a DAG of 20 tasks (ids t1..t20): a spine of five long tasks
(6-8 s each, one after the other: the critical path) and fifteen others of 2-8 s,
some depending on each other. A task's duration is the sim's ``latency`` on its
developer's first answer, so the model "works" exactly that long. The tasks are
defined shortest critical path first (a topological order), so the spine's head comes
late in the list: a first-in-first-out scheduler starts it only once the short tasks
before it have been taken, while critical-path-first starts it at once.

The whole company then runs in-process twice per repeat, each time in a fresh
temporary repository against the in-process sim, with 4 developers and the known
durations given to the scheduler: once with ``policy="critical_path"``, once with
``policy="fifo"``. Measured:

- run: wall time of `execute`, start to return (system start, the CEO's and the Staff
  Engineer's turns, development, shutdown);
- dev: the development phase alone, from the first ``TaskStateChanged(running)`` to
  the last ``TaskStateChanged(merged)`` in the journal. The lower bound covers this
  phase only (planning and decomposition are a constant overhead it does not hold),
  so the target applies to it: dev <= 1.10 x max(critical path, total work / 4).

Also printed: what a zero-overhead list scheduler would achieve with each policy (the
scheduler's own `pick` played on a simulated clock), and, for the critical-path runs,
where the time goes per task (spawn, the model's latency, the tool, QA, the merge,
the waits between), read from the journal and the sim's request log.

Figures only, no pass/fail exit code. Run: ``.venv/bin/python bench/makespan.py
[--repeat N] [--seed S] [--scale X] [--keep] [--critical-path-only]``. ``--scale``
multiplies every duration (the per-task overhead does not scale, so a larger scale shows
the ratio it tends to).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scenarios import developer, planning, qa_approves

from autonoma import project
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.journal import reader
from autonoma.protocol import (
    AgentProcessExited,
    AgentProcessStarted,
    AgentPromptGiven,
    AgentSessionStarted,
    AgentTurnFinished,
    AgentTurnStarting,
    Envelope,
    PhaseChanged,
    ReviewVerdict,
    TaskMerged,
    TaskStateChanged,
    WorkCommittedForAgent,
)
from autonoma.sim import SimServer
from autonoma.workflow import scheduler
from autonoma.workflow.dag import TaskSpec, critical_path, lower_bound, topological_order
from autonoma.workflow.run import RunOptions, execute, prepare

Policy = Literal["critical_path", "fifo"]
POLICIES: tuple[Policy, ...] = ("critical_path", "fifo")

TASKS = 20
WORKERS = 4
SPINE = 5
SPINE_DURATIONS = (6.0, 8.0)
OTHER_DURATIONS = (2.0, 8.0)
DEFAULT_SEED = 7
TARGET = 1.10
TEST_COMMAND = "true"
GIT = ["git", "-c", "user.name=Makespan Bench", "-c", "user.email=bench@autonoma.invalid"]

REQUIREMENTS = """\
# Makespan bench

Twenty small files, t1.txt to t20.txt, each holding its own name. Some must come
after others. Nothing else.
"""


# --- the DAG ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dag:
    """The tasks in definition order and each one's duration (seconds)."""

    tasks: list[TaskSpec]
    durations: dict[str, float]

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.tasks]


def _half(rng: random.Random, low: float, high: float) -> float:
    """A uniform draw in [low, high] rounded to half a second."""
    return round(rng.uniform(low, high) * 2) / 2


def make_dag(seed: int = DEFAULT_SEED, scale: float = 1.0) -> Dag:
    """A DAG of `TASKS` tasks: a spine of `SPINE` long ones in a chain, the rest shorter.

    Each non-spine task depends on 0 to 2 earlier non-spine tasks (about a third have
    none), never on the spine, so the spine is the critical path. The definition order
    is topological, taking among the tasks whose deps are defined the one with the
    shortest critical path first (ties: generation order): every short task comes
    before the spine's head. Ids are t1..tN in that order.
    """
    rng = random.Random(seed)
    raw_deps: dict[int, list[int]] = {}
    raw_dur: dict[int, float] = {}
    others = TASKS - SPINE
    for i in range(others):
        raw_dur[i] = _half(rng, *OTHER_DURATIONS)
        earlier = list(range(i))
        count = 0 if i < 3 or rng.random() < 0.3 else rng.choice((1, 1, 2))
        raw_deps[i] = sorted(rng.sample(earlier, min(count, len(earlier))))
    for k in range(SPINE):
        i = others + k
        raw_dur[i] = _half(rng, *SPINE_DURATIONS)
        raw_deps[i] = [i - 1] if k else []
    # The definition order: topological, shortest critical path first.
    unit = [
        TaskSpec(id=f"r{i}", title="", spec="", deps=[f"r{d}" for d in raw_deps[i]])
        for i in raw_deps
    ]
    lengths = critical_path(unit, {f"r{i}": raw_dur[i] for i in raw_dur})
    below: dict[int, list[int]] = defaultdict(list)
    waiting = {i: len(deps) for i, deps in raw_deps.items()}
    for i, deps in raw_deps.items():
        for d in deps:
            below[d].append(i)
    heap = [(lengths[f"r{i}"], i) for i, n in waiting.items() if n == 0]
    heapq.heapify(heap)
    order: list[int] = []
    while heap:
        _, i = heapq.heappop(heap)
        order.append(i)
        for j in below[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(heap, (lengths[f"r{j}"], j))
    name = {raw: f"t{n}" for n, raw in enumerate(order, start=1)}
    tasks = [
        TaskSpec(
            id=name[i],
            title=f"Write {name[i]}.txt",
            spec=f"Create {name[i]}.txt holding the line `{name[i]}` and commit it.",
            deps=[name[d] for d in raw_deps[i]],
            files=[f"{name[i]}.txt"],
            acceptance=[f"{name[i]}.txt holds `{name[i]}`"],
        )
        for i in order
    ]
    return Dag(tasks, {name[i]: raw_dur[i] * scale for i in order})


def ideal_makespan(dag: Dag, policy: Policy, workers: int = WORKERS) -> float:
    """The makespan of the package's scheduler (`ready` then `pick`) with zero overhead.

    A simulated clock: whenever a task ends, it counts as merged at once and the free
    workers are given the tasks `scheduler.pick` chooses.
    """
    specs = {t.id: t for t in dag.tasks}
    priority = critical_path(dag.tasks, dag.durations)
    states: dict[str, str] = {t.id: "pending" for t in dag.tasks}
    running: list[tuple[float, str]] = []
    now = 0.0
    while True:
        busy = [tid for _, tid in running]
        candidates = scheduler.ready(dag.tasks, states)
        for tid in scheduler.pick(
            candidates, specs, busy, workers - len(busy), priority, policy=policy
        ):
            states[tid] = "running"
            heapq.heappush(running, (now + dag.durations[tid], tid))
        if not running:
            break
        now, tid = heapq.heappop(running)
        states[tid] = "merged"
        while running and running[0][0] == now:
            states[heapq.heappop(running)[1]] = "merged"
    if any(s != "merged" for s in states.values()):
        raise AssertionError("the simulated schedule left tasks undone")
    return now


# --- the scenario ------------------------------------------------------------------------


def scenario_toml(dag: Dag) -> str:
    """The sim scenario: CEO plan, Staff Engineer tasks, one developer rule per task, QA."""
    tasks = [
        {
            "id": task.id,
            "title": task.title,
            "spec": task.spec,
            "deps": task.deps,
            "files": task.files,
            "acceptance": task.acceptance,
        }
        for task in dag.tasks
    ]
    out = [
        "# Generated by bench/makespan.py.",
        "usage = { input_tokens = 1200, output_tokens = 40 }",
        "",
        *planning(
            "Write twenty files, some after others.",
            "Every file t1.txt..t20.txt exists.",
            tasks,
            TEST_COMMAND,
        ),
    ]
    for task in dag.tasks:
        out += developer(task.id, dag.durations[task.id])
    return "\n".join([*out, *qa_approves(TEST_COMMAND), ""])


# --- one run -------------------------------------------------------------------------------


@dataclass
class Run:
    """One run of the company: its times and what the journal and the sim recorded."""

    policy: Policy
    outcome: str
    summary: str
    wall: float
    dev: float
    envelopes: list[Envelope] = field(repr=False)
    requests: list[tuple[float, str | None, str | None, int | None]] = field(repr=False)


def make_repository(root: Path) -> None:
    """A git repository with the requirements committed on ``main``, and `.autonoma/`."""
    root.mkdir(parents=True)
    (root / "requirements.md").write_text(REQUIREMENTS)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "config", "user.name", "Makespan Bench"], check=True)
    subprocess.run(
        ["git", "-C", str(root), "config", "user.email", "bench@autonoma.invalid"], check=True
    )
    subprocess.run(["git", "-C", str(root), "add", "requirements.md"], check=True)
    subprocess.run([*GIT, "-C", str(root), "commit", "-q", "-m", "Requirements"], check=True)
    project.init(root)


def run_once(dag: Dag, policy: Policy, scenario: Path, work: Path) -> Run:
    """The whole company on a fresh repository; wall time of `execute`, journal, sim log."""
    root = work / f"repo-{policy}-{time.monotonic_ns()}"
    make_repository(root)
    proj = project.find(root)
    options = RunOptions(
        requirements=root / "requirements.md",
        max_workers=WORKERS,
        scenario=scenario,
        new=True,
        policy=policy,
        durations=dag.durations,
    )
    with contextlib.chdir(root):
        prepared = prepare(proj, options)
        sim: SimServer | None = prepared.sim
        start = time.perf_counter()
        result = execute(prepared)
        wall = time.perf_counter() - start
    envelopes = list(reader.read(proj.state_db, run_id=result.run_id))
    states = [e for e in envelopes if isinstance(e.message, TaskStateChanged)]
    first = min((e.ts for e in states if e.message.state == "running"), default=0.0)
    last = max((e.ts for e in states if e.message.state == "merged"), default=0.0)
    requests = [
        (r.time, r.role, r.task, r.step) for r in (sim.messages_requests if sim is not None else [])
    ]
    return Run(policy, result.outcome, result.summary, wall, last - first, envelopes, requests)


# --- where the time goes --------------------------------------------------------------------


PHASES: tuple[tuple[str, str, str, str], ...] = (
    # (name, from mark, to mark, what it holds)
    ("ready -> running", "ready", "running", "deps merged (dev start for roots) to running"),
    ("running -> dev go", "running", "spawn", "worktree, prompt, the agent asked to spawn"),
    ("dev go -> request", "spawn", "req1", "spawn (or prompt given) to the first API request"),
    ("Bash tool (beyond D)", "req1", "tool_end", "1st to 2nd request minus the latency D"),
    ("dev answer -> exit", "req2", "exit", "the closing answer, the result, the exit"),
    ("dev exit -> review", "exit", "review", "commit check, branch checks"),
    ("review -> QA go", "review", "qa_spawn", "QA spawned, or started ahead and given its prompt"),
    ("QA go -> request", "qa_spawn", "qa_req", "spawn (or prompt given) to QA's API request"),
    ("QA answer -> exit", "qa_req", "qa_exit", "the verdict, claude's exit"),
    ("QA exit -> merging", "qa_exit", "merging", "verdict handled, sent to the merge queue"),
    ("merging -> merged", "merging", "merged", "merge, check worktree, `true`, move branches"),
)


def _first(events: Sequence[tuple[float, Any]], test: Any) -> float | None:
    for ts, message in events:
        if test(message):
            return ts
    return None


def task_marks(run: Run, dag: Dag) -> dict[str, dict[str, float | None]]:
    """For each task, when each step of its life happened (journal and sim clocks agree)."""
    by_task: dict[str, list[tuple[float, Any]]] = defaultdict(list)
    for e in run.envelopes:
        tid = getattr(e.message, "task_id", None)
        if tid is not None:
            by_task[tid].append((e.ts, e.message))
    requests: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ts, role, task, _step in run.requests:
        if role and task:
            requests[(role, task)].append(ts)
    merged_at: dict[str, float] = {}
    for tid, events in by_task.items():
        at = _first(events, lambda m: isinstance(m, TaskMerged))
        if at is not None:
            merged_at[tid] = at
    dev_start = min(
        (ts for events in by_task.values() for ts, m in events if _is_state(m, "running")),
        default=0.0,
    )
    marks: dict[str, dict[str, float | None]] = {}
    for task in dag.tasks:
        events = by_task.get(task.id, [])
        dev_reqs = sorted(requests.get(("developer", task.id), []))
        qa_reqs = sorted(requests.get(("qa", task.id), []))

        def agent_exit(
            prefix: str, after: float | None, events: list[tuple[float, Any]] = events
        ) -> float | None:
            # The exit of the turn that made the requests: not of one started ahead and
            # stopped unused before.
            return _first(
                [(ts, m) for ts, m in events if after is None or ts >= after],
                lambda m: isinstance(m, AgentProcessExited) and m.agent_id.startswith(prefix),
            )

        def turn_start(role: str, events: list[tuple[float, Any]] = events) -> float | None:
            # A turn started ahead goes when it is given its prompt.
            given = _first(events, lambda m: isinstance(m, AgentPromptGiven) and m.role == role)
            if given is not None:
                return given
            return _first(events, lambda m: isinstance(m, AgentTurnStarting) and m.role == role)

        req2 = dev_reqs[1] if len(dev_reqs) > 1 else None
        marks[task.id] = {
            "ready": max((merged_at.get(d, 0.0) for d in task.deps), default=dev_start),
            "running": _first(events, lambda m: _is_state(m, "running")),
            "spawn": turn_start("developer"),
            "req1": dev_reqs[0] if dev_reqs else None,
            # The sim answers the first request D seconds after receiving it.
            "tool_end": None if req2 is None else req2 - dag.durations[task.id],
            "req2": req2,
            "exit": agent_exit("developer", req2),
            "review": _first(events, lambda m: _is_state(m, "review")),
            "qa_spawn": turn_start("qa"),
            "qa_req": qa_reqs[0] if qa_reqs else None,
            "qa_exit": agent_exit("qa", qa_reqs[0] if qa_reqs else None),
            "merging": _first(events, lambda m: _is_state(m, "merging")),
            "merged": merged_at.get(task.id),
        }
    return marks


def breakdown(run: Run, dag: Dag) -> dict[str, list[float]]:
    """Per phase of a task's life (see `PHASES`), the seconds it took, one value per task.

    The developer's latency D is taken out, so every phase is overhead or waiting.
    """
    result: dict[str, list[float]] = {name: [] for name, *_ in PHASES}
    for marks in task_marks(run, dag).values():
        for name, a, b, _ in PHASES:
            start, end = marks[a], marks[b]
            if start is not None and end is not None:
                result[name].append(end - start)
    return result


def _is_state(message: Any, state: str) -> bool:
    return isinstance(message, TaskStateChanged) and message.state == state


@dataclass(frozen=True)
class ChainLink:
    """One task of the chain that ended last."""

    task_id: str
    duration: float
    wait: float
    """Ready (its last dep merged) to running."""
    life: float
    """Running to merged."""
    took_slot: list[str]
    """Tasks that started while its last dep was merging: the slot it could have had."""


def critical_chain(run: Run, dag: Dag) -> list[ChainLink]:
    """The chain of tasks that ended last, followed back through each one's last-merged dep."""
    at: dict[str, dict[str, float]] = defaultdict(dict)
    for e in run.envelopes:
        m = e.message
        if isinstance(m, TaskStateChanged):
            at[m.task_id].setdefault(m.state, e.ts)
        elif isinstance(m, TaskMerged):
            at[m.task_id].setdefault("merged", e.ts)
    merged = {tid: marks["merged"] for tid, marks in at.items() if "merged" in marks}
    specs = {t.id: t for t in dag.tasks}
    dev_start = min((m["running"] for m in at.values() if "running" in m), default=0.0)
    tid: str | None = max(merged, key=merged.__getitem__) if merged else None
    chain: list[ChainLink] = []
    while tid is not None:
        deps = specs[tid].deps
        last = max(deps, key=lambda d: merged.get(d, 0.0)) if deps else None
        ready = merged.get(last, 0.0) if last else dev_start
        running = at[tid].get("running", ready)
        took: list[str] = []
        if last is not None and "merging" in at[last]:
            took = [
                other
                for other, marks in at.items()
                if other != tid and at[last]["merging"] <= marks.get("running", -1.0) <= ready
            ]
        chain.append(
            ChainLink(tid, dag.durations[tid], running - ready, merged[tid] - running, took)
        )
        tid = last
    chain.reverse()
    return chain


def overheads(run: Run, dag: Dag) -> dict[str, float]:
    """For each merged task, running -> merged minus its latency D: what the company adds."""
    result: dict[str, float] = {}
    for tid, marks in task_marks(run, dag).items():
        running, merged = marks["running"], marks["merged"]
        if running is not None and merged is not None:
            result[tid] = merged - running - dag.durations[tid]
    return result


def with_overhead(dag: Dag, extra: float) -> Dag:
    """The same DAG with ``extra`` seconds added to every task's duration."""
    return Dag(dag.tasks, {tid: d + extra for tid, d in dag.durations.items()})


def phase_times(run: Run) -> dict[str, float]:
    """Seconds from `execute`'s first journaled message to each phase change, and to the end."""
    start = run.envelopes[0].ts if run.envelopes else 0.0
    marks: dict[str, float] = {}
    for e in run.envelopes:
        if isinstance(e.message, PhaseChanged):
            marks.setdefault(e.message.phase, e.ts - start)
    return marks


def counts(run: Run) -> dict[str, int]:
    """How many of a few telling messages the run journaled."""
    kinds = (
        AgentTurnStarting,
        AgentPromptGiven,
        AgentProcessStarted,
        AgentSessionStarted,
        AgentTurnFinished,
        WorkCommittedForAgent,
        ReviewVerdict,
        TaskMerged,
    )
    found = {k.__name__: 0 for k in kinds}
    for e in run.envelopes:
        name = type(e.message).__name__
        if name in found:
            found[name] += 1
    found["journal rows"] = len(run.envelopes)
    return found


# --- the report --------------------------------------------------------------------------------


def describe(dag: Dag) -> list[str]:
    lengths = critical_path(dag.tasks, dag.durations)
    lines = []
    for task in dag.tasks:
        deps = ",".join(task.deps) or "-"
        duration, length = dag.durations[task.id], lengths[task.id]
        lines.append(f"  {task.id:>4} {duration:5.1f} s  cp {length:5.1f}  deps {deps}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--repeat", type=int, default=1, help="runs per policy (median; default 1)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the DAG's seed")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every duration (default 1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary repositories")
    parser.add_argument("--quiet", action="store_true", help="no DAG listing, no breakdown")
    parser.add_argument(
        "--critical-path-only",
        action="store_true",
        help="run the critical_path policy alone (no fifo comparison)",
    )
    args = parser.parse_args(argv)
    policies: tuple[Policy, ...] = ("critical_path",) if args.critical_path_only else POLICIES
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be at least 1 and --scale positive")
    if not (LOCAL_INSTALL / "claude").exists():
        print(f"no claude at {LOCAL_INSTALL / 'claude'}: run `make claude`", file=sys.stderr)
        return 2

    dag = make_dag(args.seed, args.scale)
    lengths = critical_path(dag.tasks, dag.durations)
    path = max(lengths.values())
    bound = lower_bound(dag.tasks, dag.durations, WORKERS)
    ideal = {p: ideal_makespan(dag, p) for p in POLICIES}
    assert topological_order(dag.tasks)  # a valid DAG

    print(
        f"makespan bench: {TASKS} tasks, {WORKERS} workers, seed {args.seed}, "
        f"scale {args.scale:g}, {args.repeat} run(s) per policy"
    )
    if not args.quiet:
        print("the DAG (definition order; duration = the developer's latency):")
        print("\n".join(describe(dag)))
    print(f"critical path          {path:7.1f} s")
    total = sum(dag.durations.values())
    print(f"total work / workers   {total / WORKERS:7.1f} s  ({total:.1f} s / {WORKERS})")
    print(f"lower bound            {bound:7.1f} s")
    for p in POLICIES:
        print(f"zero-overhead {p:13}{ideal[p]:6.1f} s  ({ideal[p] / bound:.3f} x bound)")

    work = Path(tempfile.mkdtemp(prefix="autonoma-bench-makespan-"))
    runs: dict[Policy, list[Run]] = {p: [] for p in policies}
    try:
        scenario = work / "scenario.toml"
        scenario.write_text(scenario_toml(dag))
        for i in range(args.repeat):
            for p in policies if i % 2 == 0 else tuple(reversed(policies)):
                run = run_once(dag, p, scenario, work)
                runs[p].append(run)
                print(
                    f"  run {i + 1} {p:13} {run.outcome:8} wall {run.wall:6.1f} s  "
                    f"dev {run.dev:6.1f} s  ({run.summary})",
                    flush=True,
                )
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    failed = [r for rs in runs.values() for r in rs if r.outcome != "done"]
    if failed:
        print(f"{len(failed)} run(s) did not finish: the figures below include them")
    wall = {p: statistics.median(r.wall for r in runs[p]) for p in policies}
    dev = {p: statistics.median(r.dev for r in runs[p]) for p in policies}
    print()
    print(f"{'medians':22}{'run (s)':>10}{'dev (s)':>10}{'dev/bound':>11}{'dev/ideal':>11}")
    for p in policies:
        print(f"{p:22}{wall[p]:10.1f}{dev[p]:10.1f}{dev[p] / bound:11.3f}{dev[p] / ideal[p]:11.3f}")
    if "fifo" in policies:
        print(
            f"critical_path / fifo: run {wall['critical_path'] / wall['fifo']:.3f}, "
            f"dev {dev['critical_path'] / dev['fifo']:.3f} "
            f"(zero-overhead {ideal['critical_path'] / ideal['fifo']:.3f})"
        )
    ratio = dev["critical_path"] / bound
    verdict = "within" if ratio <= TARGET else "over"
    print(f"target: dev(critical_path) <= {TARGET} x lower bound: {ratio:.3f}, {verdict} target")

    if not args.quiet:
        run = sorted(runs["critical_path"], key=lambda r: r.dev)[len(runs["critical_path"]) // 2]
        print()
        print("critical_path run: phases since the first journaled message (s):")
        print("  " + ", ".join(f"{k} {v:.1f}" for k, v in phase_times(run).items()))
        print(f"  planning + decomposition: {run.wall - run.dev:.1f} s of the run outside dev")
        print(
            "where a task's time goes beyond its latency D "
            "(critical_path run; s; median / mean / max over the tasks):"
        )
        for (name, _, _, what), values in zip(PHASES, breakdown(run, dag).values(), strict=True):
            if values:
                print(
                    f"  {name:22}{statistics.median(values):6.2f}{statistics.fmean(values):6.2f}"
                    f"{max(values):6.2f}   {what}"
                )
        over = overheads(run, dag)
        floor, typical = min(over.values()), statistics.median(over.values())
        print(
            f"per-task overhead (running -> merged, minus D): floor {floor:.2f} s, "
            f"median {typical:.2f} s, max {max(over.values()):.2f} s"
        )
        for label, extra in (("floor", floor), ("median", typical)):
            padded = with_overhead(dag, extra)
            print(
                f"  with the {label} overhead added to every task: lower bound "
                f"{lower_bound(padded.tasks, padded.durations, WORKERS):.1f} s, "
                f"zero-wait critical_path schedule {ideal_makespan(padded, 'critical_path'):.1f} s"
            )
        chain = critical_chain(run, dag)
        print("the chain that ended last (wait = ready -> running; life = running -> merged):")
        for link in chain:
            took = (
                f"  slot taken during its dep's merge by {', '.join(link.took_slot)}"
                if link.took_slot
                else ""
            )
            print(
                f"  {link.task_id:>4}  D {link.duration:4.1f}  wait {link.wait:5.2f}  "
                f"life {link.life:5.2f}  over {link.life - link.duration:5.2f}{took}"
            )
        print(
            f"  total: wait {sum(c.wait for c in chain):.2f} s, overhead beyond D "
            f"{sum(c.life - c.duration for c in chain):.2f} s"
        )
        print("  journal: " + ", ".join(f"{k} {v}" for k, v in counts(run).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
