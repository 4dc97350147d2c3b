"""Time-travel bench: `Timeline.state_at` on a 100,000-message run, against a full replay.

The journal is made from a recorded run of the demo (``autonoma demo`` is run into a
temporary folder first, or ``--journal`` names a recorded one): its messages are
repeated with fresh task ids and session ids until the run holds ``--messages``
messages, written through the real journal writer (`Journal`). So the state grows as
a long run's does (hundreds of tasks with their histories, verdicts and costs).

Printed, each against a baseline measured in the same run:

1. how a State is copied: ``copy.deepcopy`` against the msgpack round trip the
   checkpoints use, on the run's final state;
2. open: ``Timeline(db)`` (reading and folding the whole run, making checkpoints) and
   the first head state, against ``reader.replay`` of the whole run;
3. ``state_at`` at random seqs (median, p99, max) against ``reader.replay(db, seq)``
   at the same seqs (the ratio of medians), for several checkpoint intervals K, with the
   checkpoints' memory: what chose `CHECKPOINT_EVERY`. Each State is kept until the
   next call, as the dashboard keeps the one it shows, so the figure holds freeing the
   previous State and the cyclic GC walking the new one. The slowest call is shown with
   its CPU time (this thread's: the rest of its wall time was spent waiting for a core
   on a loaded machine) and the GC's part of it, and the CPU time's median and max;
4. ``step`` by task event, then the state there (what the dashboard's key does);
5. memory: what the Timeline keeps (tracemalloc), against the head State's objects.

Figures only, no pass/fail exit code; the target is state_at < 100 ms at any seq.
Run: ``.venv/bin/python bench/timetravel.py [--messages N] [--journal PATH] [--samples N]``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from autonoma.journal import reader
from autonoma.journal.timeline import CHECKPOINT_EVERY, Timeline, copy_state
from autonoma.journal.writer import Journal
from autonoma.protocol import Envelope

_ONCE = {"RunStarted", "RunFinished", "PlanWritten", "ProjectCommands"}


def record_demo(folder: Path) -> Path:
    """Run ``autonoma demo`` into ``folder``; its journal."""
    where = folder / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    done = subprocess.run(
        [sys.executable, "-m", "autonoma", "demo", "--dir", str(where)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        sys.exit(f"the demo failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return where / ".autonoma" / "state.db"


def _renamed(value: Any, rep: int) -> Any:
    """``value`` (builtins of a message) with fresh task ids and session ids for ``rep``."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("task_id", "session_id") and isinstance(item, str) and item:
                out[key] = f"{item}-r{rep}"
            elif key == "deps" and isinstance(item, list):
                out[key] = [f"{d}-r{rep}" for d in item]
            else:
                out[key] = _renamed(item, rep)
        return out
    if isinstance(value, list):
        return [_renamed(v, rep) for v in value]
    return value


def synthesize(source: Path, target: Path, count: int) -> int:
    """Write a run of ``count`` messages to ``target``, repeating ``source``'s run; its seqs."""
    run_id = reader.latest_run(source)
    recorded = list(reader.read(source, run_id=run_id))
    envelopes: list[Envelope] = []
    now = time.time()
    rep = 0
    while len(envelopes) < count:
        for env in recorded:
            message = env.message
            name = type(message).__name__
            if rep and name in _ONCE:
                continue
            if rep:
                builtins = _renamed(msgspec.to_builtins(message), rep)
                message = msgspec.convert(builtins, type(message))
            envelopes.append(
                Envelope(
                    seq=0,
                    ts=now + len(envelopes) * 1e-3,
                    run_id="bench-run",
                    sender=env.sender,
                    recipient=env.recipient,
                    message=message,
                )
            )
            if len(envelopes) == count:
                break
        rep += 1
    client = Journal.open(target)
    for env in envelopes[:-1]:
        client.append(env)
    client.append_durable(envelopes[-1], timeout=600)
    client.stop()
    return rep


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class GcClock:
    """Time spent in the cyclic garbage collector (``gc.callbacks``), per call measured."""

    def __init__(self) -> None:
        self.spent = 0.0
        self.full = 0
        self._start = 0.0

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._tick)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._tick)

    def _tick(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.spent += time.perf_counter() - self._start
            self.full += info["generation"] == 2


@dataclass
class Calls:
    """What each call took: wall time, this thread's CPU time, the GC's part."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    gc: list[float] = field(default_factory=list)
    full_gcs: int = 0

    def worst(self) -> str:
        """The slowest call: wall, CPU (the rest is waiting for a core), GC."""
        at = max(range(len(self.wall)), key=self.wall.__getitem__)
        return f"max {_ms(self.wall[at])} (CPU {_ms(self.cpu[at])}, GC {_ms(self.gc[at])})"


def kept_states(timeline: Timeline, seqs: Sequence[int]) -> Calls:
    """``state_at`` at each seq, each State kept until the next call, as the dashboard
    keeps the one it shows: the previous State is freed, and the collector walks the new
    one, within the figure."""
    calls = Calls()
    kept = None
    with GcClock() as clock:
        for seq in seqs:
            clock.spent = 0.0
            start, cpu = time.perf_counter(), time.thread_time()
            kept = timeline.state_at(seq)
            calls.wall.append(time.perf_counter() - start)
            calls.cpu.append(time.thread_time() - cpu)
            calls.gc.append(clock.spent)
    del kept
    calls.full_gcs = clock.full
    return calls


def bench_copy(db: Path) -> None:
    state = reader.replay(db)
    deep = min(_timed(lambda: copy.deepcopy(state)) for _ in range(5))
    packed = min(_timed(lambda: copy_state(state)) for _ in range(20))
    size = len(msgspec.msgpack.encode(state))
    print(
        f"copy of the final state ({len(state.tasks)} tasks, {size / 1e6:.2f} MB as msgpack):"
        f" deepcopy {_ms(deep)}, msgpack round trip {_ms(packed)},"
        f" deepcopy / msgpack = {deep / packed:.1f}"
    )


def bench_open(db: Path) -> None:
    full = _timed(lambda: reader.replay(db))
    start = time.perf_counter()
    timeline = Timeline(db)
    opened = time.perf_counter() - start
    timeline.state_at()
    first = time.perf_counter() - start
    print(
        f"open: Timeline(db) {_ms(opened)}, + first head state {_ms(first)};"
        f" full replay {_ms(full)}; open / replay = {first / full:.2f}"
    )
    timeline.close()


def bench_state_at(db: Path, samples: int, intervals: Sequence[int]) -> None:
    rng = random.Random(11)
    probe = Timeline(db, checkpoint_every=10**9)
    seqs = list(probe.seqs)
    probe.close()
    del probe  # its objects would lengthen every full GC of what follows
    picks = [rng.choice(seqs) for _ in range(samples)]
    replays = [_timed(lambda s=s: reader.replay(db, s)) for s in picks[: max(5, samples // 20)]]
    replay = statistics.median(replays)
    print(
        f"state_at at {samples} random seqs of {len(seqs):,}; full replay from 0 at"
        f" {len(replays)} of them: median {_ms(replay)}"
    )
    for every in intervals:
        timeline = Timeline(db, checkpoint_every=every)
        calls = kept_states(timeline, picks)
        median = statistics.median(calls.wall)
        mark = " <- CHECKPOINT_EVERY" if every == CHECKPOINT_EVERY else ""
        print(
            f"  K={every:>5}: median {_ms(median)}  p99 {_ms(_p(calls.wall, 0.99))}"
            f"  {calls.worst()}; CPU median {_ms(statistics.median(calls.cpu))}"
            f" max {_ms(max(calls.cpu))}; {calls.full_gcs} full GCs"
            f"  replay / state_at = {replay / median:5.1f}"
            f"  checkpoints {timeline.checkpoints:>4} = {timeline.checkpoint_bytes() / 1e6:5.1f} MB"
            f"{mark}"
        )
        timeline.close()


def bench_step(db: Path, samples: int) -> None:
    """``step`` by one task event from random places, then the state there."""
    rng = random.Random(12)
    timeline = Timeline(db)
    steps: list[float] = []
    events = 0
    seq = timeline.seqs[0]
    while seq != timeline.head:
        seq = timeline.step(seq, 1, task_events=True)
        events += 1
    targets: list[int] = []
    for _ in range(samples):
        seq = rng.choice(timeline.seqs)
        by = rng.choice((1, -1))
        start = time.perf_counter()
        targets.append(timeline.step(seq, by, task_events=True))
        steps.append(time.perf_counter() - start)
    calls = kept_states(timeline, targets)
    print(
        f"step by one task event ({events:,} in the run) from {samples} random seqs:"
        f" step median {statistics.median(steps) * 1e6:.1f} us;"
        f" then state_at: median {_ms(statistics.median(calls.wall))},"
        f" p99 {_ms(_p(calls.wall, 0.99))}, {calls.worst()}"
    )
    timeline.close()


def bench_memory(db: Path) -> None:
    tracemalloc.start()
    timeline = Timeline(db)
    kept, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    state = reader.replay(db)
    head, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"memory: the Timeline keeps {kept / 1e6:.1f} MB (peak {peak / 1e6:.1f} MB while opening;"
        f" checkpoints {timeline.checkpoint_bytes() / 1e6:.1f} MB in {timeline.checkpoints});"
        f" one head State alone: {head / 1e6:.1f} MB; Timeline / State = {kept / head:.1f}"
    )
    del state
    timeline.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Make the journal, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--journal", type=Path, help="a recorded run's journal (else: a demo)")
    parser.add_argument("--samples", type=int, default=200, help="random seqs for state_at")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="autonoma-bench-"))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, files in {folder}")
        source = args.journal or record_demo(folder)
        db = folder / "state.db"
        reps = synthesize(source, db, args.messages)
        print(f"journal: {args.messages:,} messages, the recorded run repeated {reps} times")
        bench_copy(db)
        bench_open(db)
        bench_state_at(db, args.samples, [250, 1000, 5000])
        bench_step(db, args.samples // 2)
        bench_memory(db)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
