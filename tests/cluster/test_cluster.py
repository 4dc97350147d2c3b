"""The demo's sample on a Ray cluster of three nodes on this machine (a head and two
workers, `ray.cluster_utils.Cluster`): the developers and QA run on the worker nodes, the
merged tree is the one a local run makes, and a worker node killed mid-task loses
nothing. The real ``claude``, the sim, the real git; the run is ``autonoma start`` in a
child process that joins the cluster as Ray's driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# `make test` installs the ray extra: without it this module fails, never skips.
from ray.cluster_utils import Cluster

from autonoma import demo
from autonoma.protocol import (
    ActorCrashed,
    ActorStarted,
    AgentProcessStarted,
    AgentStateChanged,
    AgentTurnStarting,
    Envelope,
)
from tests.cluster.shim import MARK_VARIABLE, blocking_path
from tests.e2e.runs import journal, messages
from tests.e2e.test_demo import main_tree

# Three runs of the sample on 2 shared cores: beyond the suite's 300 s default.
pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

SAMPLE = demo.sample_dir("todo")
SCENARIO = SAMPLE / "scenario.toml"
WORKERS = "3"
DEADLINE = 420.0
NODE_CPUS = 6
"""Logical CPUs of a worker node: one node alone holds the 6 agents (3 developers, 3 QA)
once the other is gone."""


def start_cluster() -> Cluster:
    """A head (no CPUs: no agent lands on it) and two worker nodes, small and quiet."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "object_store_memory": 100 * 2**20,
            "include_dashboard": False,
            # A killed node is known dead in seconds, not the default half-minute.
            "_system_config": {"health_check_period_ms": 1000, "health_check_failure_threshold": 3},
        },
    )
    for _ in range(2):
        cluster.add_node(num_cpus=NODE_CPUS, object_store_memory=100 * 2**20)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    made = start_cluster()
    try:
        yield made
    finally:
        made.shutdown()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTONOMA_", "RAY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_run(root: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``autonoma start`` on the sample, as the demo runs it."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "autonoma", "start", "requirements.md", "--no-tui"),
            *("--scenario", str(SCENARIO), "--max-workers", WORKERS, *args),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = proc.communicate(timeout=DEADLINE)
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The merged tree of the run on this machine alone, with Ray made unimportable: it
    would leave a mark had the run tried to import it."""
    where = tmp_path_factory.mktemp("local")
    root = demo.make_repository(SAMPLE, where / "todo")
    mark = where / "ray-imported"
    env = _env(PYTHONPATH=str(blocking_path(where)), **{MARK_VARIABLE: str(mark)})
    code, stdout, stderr = finish(start_run(root, env=env))
    assert code == 0, stdout[-2000:] + stderr
    assert "6 tasks: 6 merged" in stdout
    assert not mark.exists(), "a run without --cluster imported Ray"
    return main_tree(root)


def node_ids(cluster: Cluster) -> set[str]:
    return {node.node_id for node in cluster.worker_nodes}


def placements(rows: list[Envelope]) -> dict[str, set[str]]:
    """Agent -> the Ray nodes its turns ran on (from its journaled ``working`` states)."""
    out: dict[str, set[str]] = {}
    for state in messages(rows, AgentStateChanged, state="working"):
        if state.detail.startswith("on node "):
            out.setdefault(state.agent_id, set()).add(state.detail.split()[2])
    return out


def test_developers_on_worker_nodes_merge_the_same_tree_as_a_local_run(
    cluster: Cluster, local: dict[str, bytes], tmp_path: Path
) -> None:
    root = demo.make_repository(SAMPLE, tmp_path / "todo")
    code, stdout, stderr = finish(start_run(root, "--cluster", cluster.address, env=_env()))
    assert code == 0, stdout[-2000:] + stderr
    assert "6 tasks: 6 merged" in stdout
    assert main_tree(root) == local
    rows = journal(root)
    where = placements(rows)
    workers = node_ids(cluster)
    developers = {a for a in where if a.startswith("developer-")}
    assert developers and {a for a in where if a.startswith("qa-")}
    assert set().union(*where.values()) <= workers  # never on the head
    # Their turns ran in clones of the nodes' own, not in the head's.
    for turn in messages(rows, AgentTurnStarting):
        if turn.agent_id in developers:
            assert "/autonoma-clones-" in turn.cwd, turn.cwd
            assert not turn.cwd.startswith(str(root))


def test_a_worker_node_killed_mid_task_loses_nothing(
    cluster: Cluster, local: dict[str, bytes], tmp_path: Path
) -> None:
    root = demo.make_repository(SAMPLE, tmp_path / "todo")
    proc = start_run(root, "--cluster", cluster.address, env=_env())
    victim, agent, seen = _running_developer(root, cluster, proc)
    node = next(n for n in cluster.worker_nodes if n.node_id == victim)
    cluster.remove_node(node, allow_graceful=False)
    removed = journal(root)[-1].seq  # its processes are gone: nothing can start there
    code, stdout, stderr = finish(proc)
    assert code == 0, stdout[-2000:] + stderr
    assert "6 tasks: 6 merged" in stdout
    assert main_tree(root) == local
    after = journal(root, after_seq=seen)
    # The exit of that agent's link, and its restart by the crew supervisor.
    crashed = messages(after, ActorCrashed, name=agent)
    assert crashed and crashed[0].supervisor == "crew", [m for m in after if "Crash" in str(m)]
    assert "NodeLost" in crashed[0].error_type
    assert messages(after, ActorStarted, name=agent, restart=True)
    # Nothing ran on the dead node after it was gone.
    later = placements(journal(root, after_seq=removed))
    assert victim not in set().union(*later.values())


def _running_developer(
    root: Path, cluster: Cluster, proc: subprocess.Popen[str]
) -> tuple[str, str, int]:
    """Wait for a developer's turn running on a worker node; (its node, the agent, the
    journal's last seq then)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        rows = journal(root)
        working: dict[str, str] = {}
        running: dict[str, str] = {}
        for envelope in rows:
            message: Any = envelope.message
            if isinstance(message, AgentStateChanged):
                running.pop(message.agent_id, None)
                working.pop(message.agent_id, None)
                if message.state == "working" and message.detail.startswith("on node "):
                    working[message.agent_id] = message.detail.split()[2]
            elif isinstance(message, AgentProcessStarted) and message.agent_id in working:
                running[message.agent_id] = working[message.agent_id]
        live = node_ids(cluster)
        for agent, node in sorted(running.items()):
            if agent.startswith("developer-") and node in live:
                return node, agent, rows[-1].seq
        time.sleep(0.05)
    raise AssertionError("no developer's turn ever ran on a worker node")
