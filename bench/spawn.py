"""Spawn bench: a ``claude`` turn through `Turn`/`Port` vs a bare ``claude -p`` pipe.

Both run the same argv (built by `build_argv` for the developer role) in the same
folder with the same environment, against the same sim answering one text step.
Measured per run, from just before the spawn (``Turn.start`` / ``Popen``):

- first: until the first decoded message (through the port: the first message
  published from an output line; bare: the first stdout line read);
- result: until the result (through the port: `AgentTurnFinished` published;
  bare: the ``"type":"result"`` line read).

The two kinds of run alternate. The medians and their ratio (port / bare) are
printed. Target: ratio <= 1.05. The bus has no journal attached (the journal has
its own bench), so this measures the port, the PTY and the decoding.

Run: ``.venv/bin/python bench/spawn.py [-n 10]``.
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
import uuid
from pathlib import Path

from autonoma.agents.command import build_argv
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role
from autonoma.agents.turn import Turn
from autonoma.config import Settings
from autonoma.protocol import AgentProcessStarted, AgentTurnFinished, AgentTurnStarting, Envelope
from autonoma.runtime.bus import Bus
from autonoma.sim import SimServer, loads_scenario

SCENARIO = """
[[rule]]
name = "answer"
[[rule.step]]
text = "Hello from the sim."
"""
CLAUDE = LOCAL_INSTALL / "claude"
PROMPT = "Say hello."
TIMEOUT = 60.0


def through_port(bus: Bus, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first decoded message and to the result, through `Turn`."""
    marks: dict[str, float] = {}
    done = threading.Event()

    def listener(envelope: Envelope) -> None:
        message = envelope.message
        if isinstance(message, AgentTurnStarting | AgentProcessStarted):
            return
        now = time.perf_counter()
        marks.setdefault("first", now)
        if isinstance(message, AgentTurnFinished):
            marks.setdefault("result", now)
            done.set()

    unsubscribe = bus.subscribe(listener)
    try:
        turn = Turn(
            bus,
            agent_id="bench",
            role=load_role("developer"),
            prompt=PROMPT,
            session_id=str(uuid.uuid4()),
            resume=False,
            cwd=cwd,
            settings=Settings(),
            env=env,
            claude=CLAUDE,
            task_id="bench",
        )
        start = time.perf_counter()
        turn.start()
        if not done.wait(TIMEOUT):
            turn.kill()
            raise SystemExit("the turn through the port gave no result")
        outcome = turn.wait(TIMEOUT)
        if outcome is None or outcome.failed:
            raise SystemExit(f"the turn through the port failed: {outcome}")
    finally:
        unsubscribe()
    return marks["first"] - start, marks["result"] - start


def bare(cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first stdout line and to the result line, with a bare pipe."""
    argv = build_argv(
        CLAUDE,
        load_role("developer"),
        PROMPT,
        session_id=str(uuid.uuid4()),
        resume=False,
        settings=Settings(),
        task_id="bench",
        child_env=env,
    )
    first = result = None
    start = time.perf_counter()
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter()
            if first is None and line.strip():
                first = now
            if b'"type":"result"' in line:
                result = now
    if first is None or result is None or proc.returncode != 0:
        raise SystemExit(f"the bare run failed (exit code {proc.returncode})")
    return first - start, result - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("-n", type=int, default=10, help="runs of each kind (default 10)")
    args = parser.parse_args(argv)
    if not CLAUDE.exists():
        print(f"no claude at {CLAUDE}: run `make claude`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="autonoma-bench-spawn-"))
    try:
        cwd = work / "project"
        cwd.mkdir()
        subprocess.run(["git", "init", "-q", str(cwd)], check=True)
        with SimServer(loads_scenario(SCENARIO)) as sim:
            env = child_env(os.environ, sim_url=sim.url, config_dir=work / "home")
            bus = Bus(run_id="bench")
            through_port(bus, cwd, env)  # warm-up: disk caches, the config folder
            bare(cwd, env)
            port_runs: list[tuple[float, float]] = []
            bare_runs: list[tuple[float, float]] = []
            for _ in range(args.n):
                port_runs.append(through_port(bus, cwd, env))
                bare_runs.append(bare(cwd, env))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"claude spawn bench: {args.n} runs each, medians in ms")
    print(f"{'':20}{'port':>10}{'bare':>10}{'ratio':>8}")
    for index, label in ((0, "to first message"), (1, "to result")):
        port_median = statistics.median(r[index] for r in port_runs) * 1000
        bare_median = statistics.median(r[index] for r in bare_runs) * 1000
        ratio = port_median / bare_median
        verdict = "ok" if ratio <= 1.05 else "over target 1.05"
        print(f"{label:20}{port_median:10.1f}{bare_median:10.1f}{ratio:8.3f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
