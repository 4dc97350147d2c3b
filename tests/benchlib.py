"""What the benches' smoke tests share: loading a bench script as a module, and a sim
request as claude would send it for a role and a task."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from autonoma.sim import RequestInfo

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as the module ``bench_<name>`` (runs its top level), with
    ``bench/`` on ``sys.path`` as when a bench runs (`bench/scenarios.py`)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def request(role: str, task: str | None) -> RequestInfo:
    """The request a ``role`` agent working on ``task`` sends first, as the sim sees it."""
    tail = f"ROLE: {role}" + (f" TASK: {task}" if task else "")
    return RequestInfo(
        role=role,
        task=task,
        turn=1,
        step=0,
        prompt="Do it.",
        system=tail,
        system_tail=tail,
        session_id=None,
        cwd="/work",
        model="claude-sim",
        stream=True,
    )
