"""Sandbox bench: one developer turn with five Bash calls, claude's sandbox on vs off.

Both kinds of run go through `Turn` (so the port, the PTY, the decoding and the turn's
private temp folder are the same) against the same sim scenario: five ``Bash`` calls
(``echo``), then a text answer. Measured per run: from just before ``Turn.start`` to
the end of the turn (`Turn.wait`). The two kinds alternate; the medians and their
ratio (on / off) are printed, and the extra seconds per Bash call.

Run: ``.venv/bin/python bench/sandbox.py [-n 5]`` (needs bubblewrap and socat).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from autonoma.agents import process
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role
from autonoma.agents.turn import Turn
from autonoma.config import Settings
from autonoma.runtime.bus import Bus
from autonoma.sim import SimServer, loads_scenario

CALLS = 5
CLAUDE = LOCAL_INSTALL / "claude"
TIMEOUT = 120.0


def scenario(calls: int = CALLS) -> str:
    """The sim scenario: ``calls`` Bash calls, then a text answer."""
    steps = "".join(
        '[[rule.step]]\n[[rule.step.tool]]\nname = "Bash"\n'
        f'input = {{ command = "echo {i}", description = "call {i}" }}\n'
        for i in range(calls)
    )
    return (
        'usage = { input_tokens = 10, output_tokens = 2 }\n[[rule]]\nname = "bash"\n'
        f'{steps}[[rule.step]]\ntext = "Done."\n'
    )


def one_turn(
    sandbox: bool, repo: Path, work: Path, sim_url: str, *, namespace: bool = True
) -> float:
    """Seconds one developer turn takes, with the sandbox on or off, and claude in a PID
    namespace of its own (what Autonoma does where it can) or not (bench/reaper.py)."""
    home = work / f"home-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    turn = Turn(
        Bus(run_id="bench"),
        agent_id="developer-1",
        role=dataclasses.replace(load_role("developer"), schema=None),
        prompt="go",
        session_id=str(uuid.uuid4()),
        resume=False,
        cwd=repo,
        settings=Settings(sandbox=sandbox),
        env=child_env(dict(os.environ), sim_url=sim_url, config_dir=home),
        claude=CLAUDE,
        task_id="t1",
        tmpdir=work / "tmp" / "developer-1",
    )
    turn.port.own_namespace = namespace
    began = time.perf_counter()
    pid = turn.start()
    if namespace is False and process.in_own_namespace(pid):
        raise SystemExit("claude is in a PID namespace of its own: expected none")
    outcome = turn.wait(TIMEOUT)
    took = time.perf_counter() - began
    if outcome is None or outcome.failed:
        raise SystemExit(f"a turn with sandbox={sandbox}, namespace={namespace} failed: {outcome}")
    return took


def main() -> None:
    """Alternate sandboxed and unsandboxed turns; print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="turns of each kind")
    args = parser.parse_args()
    if shutil.which("bwrap") is None or shutil.which("socat") is None:
        sys.exit("bench/sandbox.py: needs bubblewrap and socat (apt install bubblewrap socat)")
    times: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="autonoma-bench-") as folder:
        work = Path(folder)
        repo = work / "repo"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        with SimServer(loads_scenario(scenario())) as sim:
            one_turn(False, repo, work, sim.url)  # warm the caches
            for _ in range(args.n):
                for sandbox in (True, False):
                    times[sandbox].append(one_turn(sandbox, repo, work, sim.url))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"turn with {CALLS} Bash calls, median of {args.n}:")
    print(f"  sandbox on : {on:.3f} s")
    print(f"  sandbox off: {off:.3f} s")
    print(f"  ratio on/off: {on / off:.2f}  (+{(on - off) / CALLS * 1000:.0f} ms per Bash call)")


if __name__ == "__main__":
    main()
