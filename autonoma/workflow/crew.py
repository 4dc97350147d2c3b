"""The crew: every agent of a run under one ``one_for_one`` supervisor.

``ceo``, ``staff_engineer``, ``qa-1`` … ``qa-N`` and ``developer-1`` … ``developer-N``
are `AgentActor`s. A crashed agent is restarted alone (its turn's process dies with
it; the orchestrator resumes the task); too many crashes in the window and the crew
supervisor gives up, which the root turns into an escalation and a pause.

The orchestrator reaches the agents through `AgentRefs`, which each child's start
function keeps up to date: asking the supervisor instead could deadlock while it is
stopping the orchestrator.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pykka

from autonoma.agents.agent import AgentActor
from autonoma.config import Settings
from autonoma.runtime.bus import Bus
from autonoma.runtime.supervisor import ChildSpec, Supervisor

CREW = "crew"
CEO = "ceo"
STAFF_ENGINEER = "staff_engineer"

# An agent's turn is SIGTERMed on stop; this leaves claude its grace to exit.
AGENT_SHUTDOWN = 8.0


def developer_names(workers: int) -> list[str]:
    """``developer-1`` … ``developer-N``."""
    return [f"developer-{i}" for i in range(1, workers + 1)]


def qa_names(workers: int) -> list[str]:
    """``qa-1`` … ``qa-N``: a review holds its task's worker slot, so N QA agents suffice."""
    return [f"qa-{i}" for i in range(1, workers + 1)]


def is_remote(agent: str) -> bool:
    """Whether ``agent`` runs on the cluster when there is one: developers and QA (the CEO
    and the Staff Engineer plan in the head's checkout)."""
    return agent.startswith(("developer-", "qa-"))


def role_of(agent: str) -> str:
    """The role an agent of the crew plays: ``developer-2`` is a developer, ``qa-1`` QA."""
    return agent.rsplit("-", 1)[0] if agent[-1:].isdigit() and "-" in agent else agent


class AgentRefs:
    """The current actor of each agent, kept by the start functions (thread-safe)."""

    def __init__(self) -> None:
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._lock = threading.Lock()

    def set(self, name: str, ref: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        """Record ``ref`` as ``name``'s actor; returns it."""
        with self._lock:
            self._refs[name] = ref
        return ref

    def get(self, name: str) -> pykka.ActorRef[Any] | None:
        """``name``'s actor if it is alive."""
        with self._lock:
            ref = self._refs.get(name)
        return ref if ref is not None and ref.is_alive() else None


def crew_intensity(settings: Settings, names: list[str]) -> int:
    """Restarts the crew supervisor allows within ``restart_period``.

    On a cluster, a node lost crashes every agent it held (each link raises `NodeLost`):
    one incident, which must not use up the whole allowance and pause the run. So a
    cluster's crew may also lose each of its remote agents once in the period, on top of
    ``restart_intensity``; an agent crashing again and again still exhausts it.
    """
    if not settings.cluster:
        return settings.restart_intensity
    return settings.restart_intensity + sum(1 for name in names if is_remote(name))


def crew_spec(
    bus: Bus,
    refs: AgentRefs,
    *,
    settings: Settings,
    workers: int,
    env: Mapping[str, str],
    claude: Path,
    project_dir: Path,
) -> ChildSpec:
    """The crew supervisor's child spec, for the root."""

    kind: Any = AgentActor
    if settings.cluster:
        # Only with a cluster: the link imports Ray (docs/scale-out.md).
        from autonoma.cluster.link import RemoteAgentActor

        kind = RemoteAgentActor

    def agent(name: str) -> ChildSpec:
        actor = kind if is_remote(name) else AgentActor
        return ChildSpec(
            name,
            start=lambda: refs.set(
                name,
                actor.start(
                    bus,
                    name,
                    settings=settings,
                    env=env,
                    claude=claude,
                    project_dir=project_dir,
                ),
            ),
            shutdown=AGENT_SHUTDOWN,
        )

    names = [CEO, STAFF_ENGINEER, *qa_names(workers), *developer_names(workers)]
    children = [agent(name) for name in names]
    return ChildSpec(
        CREW,
        start=lambda: Supervisor.start(
            bus,
            CREW,
            children,
            strategy="one_for_one",
            intensity=crew_intensity(settings, names),
            period=settings.restart_period,
        ),
        kind="supervisor",
    )


__all__ = [
    "CEO",
    "CREW",
    "STAFF_ENGINEER",
    "AgentRefs",
    "crew_intensity",
    "crew_spec",
    "developer_names",
    "is_remote",
    "qa_names",
    "role_of",
]
