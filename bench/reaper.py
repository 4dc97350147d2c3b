"""Reaper bench: one developer turn (sandboxed, five Bash calls), claude in a PID
namespace of its own (what Autonoma does) vs not.

Both go through `Turn` against the same sim scenario as ``bench/sandbox.py``; the only
difference is `Port.own_namespace` (``unshare(CLONE_NEWPID)`` before the forks: a
reaper is pid 1 of the namespace, ``claude`` pid 2, and everything its tools start dies
with it). Measured per run: from just before ``Turn.start`` to the end of the turn. The two
kinds alternate; the medians and their ratio (namespace / none) are printed, and the
median cost of the spawn itself (``Popen`` of ``true``, with and without the namespace).

Run: ``.venv/bin/python bench/reaper.py [-n 5]`` (as root; needs bubblewrap and socat).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The same turn as bench/sandbox.py (this folder is first on sys.path when a bench runs).
from sandbox import CALLS, one_turn, scenario

from autonoma.agents import process
from autonoma.sim import SimServer, loads_scenario


def spawn(namespace: bool) -> float:
    """Seconds to spawn and reap ``true``, in a namespace of its own (its reaper started
    and reaped too) or not."""
    setup = process.die_with_parent(9)
    began = time.perf_counter()
    with process.own_pid_namespace() if namespace else contextlib.nullcontext(None) as space:
        child = subprocess.Popen(["true"], start_new_session=True, preexec_fn=setup)
    child.wait()
    if space is not None:
        space.reap()
    return time.perf_counter() - began


def main() -> None:
    """Alternate turns with and without the namespace; print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="turns of each kind")
    args = parser.parse_args()
    if shutil.which("bwrap") is None or shutil.which("socat") is None:
        sys.exit("bench/reaper.py: needs bubblewrap and socat (apt install bubblewrap socat)")
    with process.own_pid_namespace() as works:
        pass
    if works is None:
        sys.exit("bench/reaper.py: this machine gives no PID namespace (run as root)")
    works.reap()
    times: dict[bool, list[float]] = {True: [], False: []}
    spawns: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(200):
        for namespace in (True, False):
            spawns[namespace].append(spawn(namespace))
    with tempfile.TemporaryDirectory(prefix="autonoma-bench-") as folder:
        work = Path(folder)
        repo = work / "repo"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        with SimServer(loads_scenario(scenario())) as sim:
            one_turn(True, repo, work, sim.url, namespace=False)  # warm the caches
            for _ in range(args.n):
                for namespace in (True, False):
                    times[namespace].append(
                        one_turn(True, repo, work, sim.url, namespace=namespace)
                    )
    on, off = statistics.median(times[True]), statistics.median(times[False])
    s_on, s_off = statistics.median(spawns[True]), statistics.median(spawns[False])
    print(f"sandboxed developer turn with {CALLS} Bash calls, median of {args.n}:")
    print(f"  own PID namespace: {on:.3f} s")
    print(f"  none             : {off:.3f} s")
    print(f"  ratio: {on / off:.3f}  ({(on - off) * 1000:+.0f} ms per turn)")
    print(f"spawn + reap of `true`, median of 200: {s_on * 1000:.2f} ms vs {s_off * 1000:.2f} ms")


if __name__ == "__main__":
    main()
