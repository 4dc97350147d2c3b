"""The agent actor under a supervisor: turns through the real claude, a free mailbox, no orphan."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from autonoma.agents import process
from autonoma.agents.agent import AgentActor, AgentBusy, TurnRequest
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.config import Settings
from autonoma.protocol import AgentStateChanged, AnyMessage
from autonoma.runtime.bus import Bus
from autonoma.runtime.supervisor import ChildSpec, Supervisor
from autonoma.sim import SimServer, loads_scenario
from tests.journal.testlib import wait_for

CLAUDE = LOCAL_INSTALL / "claude"  # installed by make test

pytestmark = [pytest.mark.timeout(60)]

SCENARIO = """
usage = { input_tokens = 800, output_tokens = 10 }

[[rule]]
task = "quick"
[[rule.step]]
text = "All done."

[[rule]]
task = "stuck"
[[rule.step]]
fault = "stall"
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(loads_scenario(SCENARIO)) as server:
        yield server


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


class Crew:
    """A one_for_one supervisor with one developer agent; what the bus saw."""

    def __init__(self, sim: SimServer, tmp_path: Path) -> None:
        self.bus = Bus(run_id="test")
        self.seen: list[AnyMessage] = []
        self.bus.subscribe(lambda e: self.seen.append(e.message))
        home = tmp_path / "home"
        home.mkdir()
        env = child_env(dict(os.environ), sim_url=sim.url, config_dir=home)
        spec = ChildSpec(
            "developer-1",
            start=lambda: AgentActor.start(
                self.bus, "developer-1", settings=Settings(), env=env, claude=CLAUDE
            ),
            shutdown="brutal_kill",
        )
        self.sup = Supervisor.start(self.bus, "crew", [spec])
        self.agent = self.sup.proxy().child_ref("developer-1").get(timeout=10).proxy()

    def states(self) -> list[str]:
        return [m.state for m in self.seen if isinstance(m, AgentStateChanged)]


def request(git_repo: Path, task: str) -> TurnRequest:
    return TurnRequest(
        role="developer",
        prompt=f"Do {task}",
        session_id=str(uuid.uuid4()),
        cwd=git_repo,
        task_id=task,
    )


def test_a_turn_runs_and_the_agent_goes_idle(
    sim: SimServer, git_repo: Path, tmp_path: Path
) -> None:
    crew = Crew(sim, tmp_path)
    crew.agent.run_turn(request(git_repo, "quick")).get(timeout=10)
    wait_for(lambda: "idle" in crew.states(), timeout=30)
    assert crew.states() == ["starting", "working", "idle"]
    outcome = crew.agent.last_outcome().get(timeout=5)
    assert outcome is not None and not outcome.failed
    assert outcome.finished is not None and outcome.finished.result == "All done."


def test_the_mailbox_stays_free_and_a_kill_leaves_no_process(
    sim: SimServer, git_repo: Path, tmp_path: Path
) -> None:
    crew = Crew(sim, tmp_path)
    pid = crew.agent.run_turn(request(git_repo, "stuck")).get(timeout=10)
    # The model's stream stalls: the turn goes on, yet the actor answers at once.
    assert crew.agent.busy().get(timeout=2) is True
    with pytest.raises(AgentBusy):  # never a duplicate turn for the same agent
        crew.agent.run_turn(request(git_repo, "stuck")).get(timeout=5)
    assert process.tree(pid)
    crew.sup.proxy().terminate_child("developer-1").get(timeout=10)  # brutal_kill
    wait_for(lambda: not process.tree(pid), timeout=10)
    assert not any(e.pid == pid for e in process.processes())
