"""Without the extra: ``--cluster`` (or the setting) says in one line how to get Ray and
exits 2; without a cluster, nothing imports Ray. Ray is blocked with a real import
failure (a shim first on PYTHONPATH), not by patching Autonoma."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.shim import MARK_VARIABLE, blocking_path
from tests.conftest import run_autonoma
from tests.e2e.runs import make_project

LINE = (
    "running agents on a Ray cluster needs Ray, which is not installed: pip install 'autonoma[ray]'"
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    env["PYTHONPATH"] = str(blocking_path(tmp_path))
    env[MARK_VARIABLE] = str(tmp_path / "ray-imported")
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("args", "settings", "named"),
    [
        (("--cluster", "auto"), {}, "--cluster"),
        ((), {"AUTONOMA_CLUSTER": "auto"}, "cluster (AUTONOMA_CLUSTER)"),
    ],
)
def test_a_cluster_without_ray_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], settings: dict[str, str], named: str
) -> None:
    root = make_project(tmp_path)
    result = run_autonoma(
        "start", "requirements.md", "--no-tui", *args, cwd=root, env=_env(tmp_path, **settings)
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"autonoma: {named}: {LINE}\n"
    assert result.stdout == ""
    # It stopped before making anything: no lock, no journal.
    assert not (root / ".autonoma" / "state.db").exists()


def test_nothing_imports_ray_without_a_cluster(tmp_path: Path) -> None:
    """Every module a local run loads (all of autonoma but the cluster's link) imports
    without Ray; the demo's run without a cluster is checked the same way in test_cluster."""
    code = (
        "import importlib, pkgutil, sys, autonoma\n"
        "for m in pkgutil.walk_packages(autonoma.__path__, 'autonoma.'):\n"
        "    if m.name not in ('autonoma.cluster.link', 'autonoma.__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "assert 'ray' not in sys.modules\n"
    )
    env = _env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert not Path(env[MARK_VARIABLE]).exists()
