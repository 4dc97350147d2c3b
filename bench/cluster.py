"""Cluster bench: the demo's development phase on 1, 2 and 3 Ray nodes against the local run.

The todo sample (``autonoma/examples/todo``, 3 developers, the sim, the real ``claude``)
runs with ``autonoma start`` in a child process, first on this machine alone (the
baseline), then with ``--cluster`` on a `ray.cluster_utils.Cluster` of a head (no CPUs:
no agent lands on it) and 1, 2, then 3 worker nodes, all on this machine. Measured in
the one run of this script:

- dev: the development phase, from the first ``TaskStateChanged(running)`` to the last
  ``TaskStateChanged(merged)`` in the journal; printed as a ratio to the local run's;
- head CPU: the CPU seconds of the ``autonoma start`` process (the journal, the
  orchestrator, the governor, the merge queue, the links), per agent turn;
- node memory and CPU per agent: the Ray worker processes hosting a ``NodeAgent`` and
  the ``claude`` processes under them, sampled every 0.5 s (peak RSS, CPU seconds);
- shipping: one task's clone shipped to a node and back, as a remote turn does it
  (capture, ``ray.put``, clone on the node, capture there, restore on the head): the
  bundle and patch sizes and the times, against the same clone copied locally with
  ``git clone`` (the overhead ratio).

Figures only, no pass/fail exit code. Heavy: run it with ``nice`` on an idle machine.
Run: ``.venv/bin/python bench/cluster.py [--nodes 1,2,3] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autonoma import demo
from autonoma.journal import reader
from autonoma.protocol import AgentTurnStarting, TaskStateChanged

SAMPLE = demo.sample_dir("todo")
WORKERS = 3
NODE_CPUS = 6
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sample:
    """What the sampler saw of one group of processes."""

    peak_rss: dict[int, int] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)


def _stat(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, RSS bytes) of ``pid``, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


class Sampler(threading.Thread):
    """Samples the head process, the NodeAgent workers and the claude processes."""

    def __init__(self, head: int) -> None:
        super().__init__(daemon=True)
        self.head = head
        self.head_cpu = 0.0
        self.nodes = Sample()
        self.claudes = Sample()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            got = _stat(self.head)
            if got is not None:
                self.head_cpu = got[0]
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                pid = int(entry)
                line = _cmdline(pid)
                if line.startswith("ray::NodeAgent"):
                    group = self.nodes
                elif "claude" in line and " -p " in f" {line} " and "autonoma-clones-" in _cwd(pid):
                    group = self.claudes
                else:
                    continue
                got = _stat(pid)
                if got is None:
                    continue
                group.cpu[pid] = got[0]
                group.peak_rss[pid] = max(group.peak_rss.get(pid, 0), got[1])


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


@dataclass
class Run:
    """One run of the sample: its development phase, turns and samples."""

    dev: float
    wall: float
    turns: int
    sampler: Sampler


def run_sample(where: Path, cluster: str | None) -> Run:
    """``autonoma start`` on a fresh copy of the sample, to its end."""
    root = demo.make_repository(SAMPLE, where)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTONOMA_", "RAY_"))}
    argv = [sys.executable, "-m", "autonoma", "start", "requirements.md", "--no-tui"]
    argv += ["--scenario", str(SAMPLE / "scenario.toml"), "--max-workers", str(WORKERS)]
    if cluster is not None:
        argv += ["--cluster", cluster]
    began = time.monotonic()
    proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.PIPE, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate(timeout=900)
    sampler.done.set()
    sampler.join()
    wall = time.monotonic() - began
    if proc.returncode != 0 or "6 tasks: 6 merged" not in out:
        raise SystemExit(f"the run in {root} did not merge every task:\n{out[-2000:]}")
    rows = list(reader.read(root / ".autonoma" / "state.db"))
    running = [
        e.ts
        for e in rows
        if isinstance(e.message, TaskStateChanged) and e.message.state == "running"
    ]
    merged = [
        e.ts
        for e in rows
        if isinstance(e.message, TaskStateChanged) and e.message.state == "merged"
    ]
    turns = sum(1 for e in rows if isinstance(e.message, AgentTurnStarting))
    return Run(max(merged) - min(running), wall, turns, sampler)


def start_cluster(nodes: int) -> Any:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "object_store_memory": 150 * 2**20,
            "include_dashboard": False,
        },
    )
    for _ in range(nodes):
        cluster.add_node(num_cpus=NODE_CPUS, object_store_memory=150 * 2**20)
    cluster.wait_for_nodes()
    return cluster


def shipping(clone: Path, repeats: int = 5) -> dict[str, float]:
    """One clone to a node and back, as a remote turn ships it; times in seconds."""
    import ray

    from autonoma.cluster.bundle import capture, clone_into, restore
    from autonoma.cluster.node import NodeAgent

    @ray.remote(num_cpus=1)
    class Shipper:
        def __init__(self) -> None:
            self.node = NodeAgent("bench")

        def round(self, state: Any, branch: str) -> tuple[Any, float]:
            began = time.perf_counter()
            where = Path(tempfile.mkdtemp(prefix="autonoma-bench-"))
            clone_into(where / "c", state, branch)
            (where / "c" / "bench.txt").write_text("a change\n")
            back = capture(where / "c", known=state.commit)
            shutil.rmtree(where)
            return back, time.perf_counter() - began

    branch = subprocess.run(
        ["git", "symbolic-ref", "--short", "HEAD"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shipper = Shipper.remote()  # type: ignore[attr-defined]
    ray.get(shipper.__ray_ready__.remote())
    figures: dict[str, list[float]] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        state = capture(clone)
        t1 = time.perf_counter()
        back, on_node = ray.get(shipper.round.remote(ray.put(state), branch))
        t2 = time.perf_counter()
        restore(clone, back, branch)
        t3 = time.perf_counter()
        local = Path(tempfile.mkdtemp(prefix="autonoma-bench-"))
        t4 = time.perf_counter()
        subprocess.run(["git", "clone", "-q", str(clone), str(local / "c")], check=True)
        t5 = time.perf_counter()
        shutil.rmtree(local)
        for key, value in {
            "capture_s": t1 - t0,
            "round_trip_s": t2 - t1,
            "on_node_s": on_node,
            "restore_s": t3 - t2,
            "total_s": t3 - t0,
            "local_clone_s": t5 - t4,
            "bundle_bytes": len(state.bundle),
            "return_bytes": len(back.bundle) + len(back.patch),
        }.items():
            figures.setdefault(key, []).append(float(value))
    return {k: statistics.median(v) for k, v in figures.items()}


def _mb(value: float) -> str:
    return f"{value / 2**20:.0f} MB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,2,3", help="Worker node counts to run on.")
    parser.add_argument("--keep", action="store_true", help="Keep the runs' folders.")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.nodes.split(",") if n]
    base = Path(tempfile.mkdtemp(prefix="autonoma-bench-cluster-"))
    print(f"demo sample todo, {WORKERS} developers; folders in {base}", flush=True)
    local = run_sample(base / "local", None)
    print(
        f"local      dev {local.dev:6.1f} s  wall {local.wall:6.1f} s  head CPU "
        f"{local.sampler.head_cpu:5.1f} s ({local.sampler.head_cpu / local.turns:.2f} s/turn, "
        f"{local.turns} turns)",
        flush=True,
    )
    ship: dict[str, float] = {}
    for count in counts:
        cluster = start_cluster(count)
        try:
            run = run_sample(base / f"nodes-{count}", cluster.address)
            if not ship:
                import ray

                ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
                try:
                    # A copy of the merged project stands for a task's clone on the head.
                    work = base / "ship"
                    subprocess.run(
                        ["git", "clone", "-q", str(base / f"nodes-{count}"), str(work)], check=True
                    )
                    ship = shipping(work)
                finally:
                    ray.shutdown()
        finally:
            cluster.shutdown()
        s = run.sampler
        agents = max(1, len(s.nodes.peak_rss))
        claude_rss = statistics.median(s.claudes.peak_rss.values()) if s.claudes.peak_rss else 0
        actor_rss = statistics.median(s.nodes.peak_rss.values()) if s.nodes.peak_rss else 0
        print(
            f"{count} node(s) dev {run.dev:6.1f} s  ratio {run.dev / local.dev:4.2f}  "
            f"wall {run.wall:6.1f} s  head CPU {s.head_cpu:5.1f} s "
            f"({s.head_cpu / run.turns:.2f} s/turn, {run.turns} turns; local "
            f"{local.sampler.head_cpu / local.turns:.2f})",
            flush=True,
        )
        print(
            f"           per agent on the nodes: actor {_mb(actor_rss)} peak RSS, "
            f"{sum(s.nodes.cpu.values()) / agents:.1f} CPU s; claude {_mb(claude_rss)} "
            f"peak RSS, {sum(s.claudes.cpu.values()) / agents:.1f} CPU s "
            f"({len(s.claudes.peak_rss)} claude processes, {agents} agents)",
            flush=True,
        )
    if ship:
        ms = {k: v * 1000 for k, v in ship.items() if k.endswith("_s")}
        print(
            f"shipping one clone (median of 5): bundle {ship['bundle_bytes'] / 1024:.1f} KiB out, "
            f"{ship['return_bytes'] / 1024:.1f} KiB back; capture {ms['capture_s']:.0f} ms, "
            f"to the node, clone, capture and back {ms['round_trip_s']:.0f} ms "
            f"(on the node {ms['on_node_s']:.0f} ms), restore {ms['restore_s']:.0f} ms; "
            f"total {ms['total_s']:.0f} ms = "
            f"{ship['total_s'] / ship['local_clone_s']:.1f}x a local git clone "
            f"({ms['local_clone_s']:.0f} ms), {ship['total_s'] / (local.dev / 6):.3f} of a "
            "task's share of the local dev phase",
            flush=True,
        )
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
