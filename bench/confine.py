"""Bubblewrap's overhead on the commands Autonoma runs for a model, against unconfined.

Each command runs unconfined and confined (`autonoma.workflow.checks.run_check`, the
merge gate's own runner), alternately, ``--rounds`` times in one run; the figures are
the medians and their ratio:

1. a trivial command (``true``), as a test (no network) and as a set-up (the registry
   proxy and socat started and stopped around it);
2. a project's tests (``--project``, e.g. the folder ``autonoma demo --dir`` made:
   ``python3 -m unittest discover -s tests -t .``).

Run: ``.venv/bin/python bench/confine.py [--project DIR] [--command CMD] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from autonoma.workflow.checks import run_check
from autonoma.workflow.confine import Confinement, Network


def _once(command: str, folder: Path, confinement: Confinement | None, network: Network) -> float:
    env = dict(os.environ)
    began = time.perf_counter()
    result = run_check(command, folder, env, 600, confinement=confinement, network=network)
    spent = time.perf_counter() - began
    if not result.passed:
        sys.exit(f"bench/confine.py: `{command}` failed: {result.output[-500:]}")
    return spent


def _compare(
    label: str, command: str, folder: Path, confinement: Confinement, network: Network, rounds: int
) -> None:
    plain: list[float] = []
    boxed: list[float] = []
    for _ in range(rounds):
        plain.append(_once(command, folder, None, "none"))
        boxed.append(_once(command, folder, confinement, network))
    a, b = statistics.median(plain), statistics.median(boxed)
    print(
        f"{label:<34} unconfined {a * 1000:8.1f} ms   confined {b * 1000:8.1f} ms   "
        f"ratio {b / a:5.2f}   (+{(b - a) * 1000:.1f} ms, median of {rounds})"
    )


def main() -> None:
    """Parse the options, run the comparisons, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=None)
    parser.add_argument("--command", default="python3 -m unittest discover -s tests -t .")
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autonoma-bench-") as place:
        folder = Path(place)
        confinement = Confinement(autonoma_dir=folder / ".autonoma", repo=folder)
        _compare("trivial, as a test", "true", folder, confinement, "none", options.rounds)
        _compare("trivial, as a set-up", "true", folder, confinement, "registries", options.rounds)
    if options.project is not None:
        project = options.project.absolute()
        confinement = Confinement(autonoma_dir=project / ".autonoma", repo=project)
        rounds = max(options.rounds // 4, 3)
        _compare(f"tests of {project.name}", options.command, project, confinement, "none", rounds)


if __name__ == "__main__":
    main()
