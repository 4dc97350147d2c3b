"""The orchestrator's state machine's data: what the run was given (`Config`), its state
(`Machine`: the journal's fold plus what lives only in memory), and the pure answers
read from that state (the governor's `permit`, the agents allowed at once).

`autonoma.workflow.decide` is the function over it; `autonoma.workflow.inputs` and
`autonoma.workflow.actions` are what goes in and what comes out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from autonoma.agents.roles import Role
from autonoma.journal.fold import State
from autonoma.protocol import (
    AgentTurnFinished,
)
from autonoma.workflow.backoff import cap_reached
from autonoma.workflow.dag import TaskSpec
from autonoma.workflow.governor import Permit

PLAN_CHECKOUT = "_plan"
"""The planning turns' scratch clone, in the run's clones folder."""
REVIEW_CHECKOUTS = "_review"
"""QA's throwaway checkouts, in the run's clones folder."""


TurnKind = Literal["plan", "decompose", "develop", "review"]


# --- configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """What the run was given: fixed for the life of the orchestrator."""

    run_id: str
    repo: Path
    """The user's repository (no agent works in it)."""
    plan_path: Path
    requirements: str
    claude_md: str
    roles: Mapping[str, Role]
    """The role files by name (``ceo``, ``staff_engineer``, ``developer``, ``qa``)."""
    workers: int
    max_retries: int
    setup_command: str = ""
    """The setting: overrides the Staff Engineer's set-up command when set."""
    test_command: str = ""
    """The setting: overrides the Staff Engineer's test command when set."""
    budget_usd: float = 0.0
    task_budget_usd: float = 0.0
    main: str = "main"
    resume_command: str = "autonoma start requirements.md"
    """The command that resumes this run, as the user types it (said when it stops)."""
    policy: Literal["critical_path", "fifo"] = "critical_path"
    durations: Mapping[str, float] | None = None
    clones: Path = Path(".autonoma/clones/run")
    """The run's clones folder (``.autonoma/clones/<run>``): tasks', QA's and planning's."""
    requirements_name: str = "requirements.md"
    """The requirements file's path in the planning checkout (it is copied there)."""
    crew_backoff: bool = True
    """One backoff for the whole crew: one probe turn while a storm lasts, and the
    number of agents at once adapted to rate limits (AIMD). Off: only the governor's hold."""
    prestart: bool = False
    """Start QA's claude ahead, while the developer's turn ends (`Turn.waiting`), so its
    start-up overlaps the developer's exit and the commit check (the setting
    ``prestart_agents``; off here so that a table row says when it is on)."""

    @property
    def plan_dir(self) -> Path:
        """The CEO's and Staff Engineer's scratch clone of ``main``."""
        return self.clones / PLAN_CHECKOUT

    def review_dir(self, task_id: str, review: int) -> Path:
        """QA's throwaway checkout for review number ``review`` of ``task_id``."""
        return self.clones / REVIEW_CHECKOUTS / f"{task_id}-{review}"


# --- state --------------------------------------------------------------------------


@dataclass
class Turn:
    """A turn in flight (``pid`` 0 until its process is known to have started)."""

    agent: str
    kind: TurnKind
    task_id: str | None
    session_id: str
    pid: int = 0
    resume: bool = False
    prompt: str = ""
    finished: AgentTurnFinished | None = None
    rejected: str = ""
    """claude's reason when it rejected the turn's structured answer against the schema."""
    decided: bool = False
    """Acted on at its result line (QA's approval), before its process exited."""
    checkout: str = ""
    """QA's checkout, when decided: removed once its process has exited."""
    waiting: bool = False
    """Pre-started: its process runs and waits for its prompt (`GivePrompt`). Makes no
    request until then: not counted among the agents working; an exit before it is no
    failure of anything."""
    cwd: str = ""
    """Where it runs (a pre-started QA turn's checkout)."""
    budget: float | None = None
    """The ``--max-budget-usd`` it was started with (the task's budget left then)."""
    giving: bool = False
    """`GivePrompt` asked, not answered yet."""
    unused: bool = False
    """Pre-started and no longer wanted: stopped, its exit awaited."""


@dataclass
class Work:
    """What a task's next developer turn says, when it is not the first one."""

    prompt: str
    fresh: bool = False
    """Start a new session (the old one cannot be resumed)."""


@dataclass
class Phase:
    """A planning or decomposition step: its session and its failures so far."""

    session: str = ""
    started: bool = False
    prompt: str = ""
    failures: int = 0


@dataclass
class Machine:
    """The orchestrator's whole state: the fold plus what lives only in memory."""

    cfg: Config
    fold: State = field(default_factory=State)
    now: float = 0.0
    """Set by the caller before each event (epoch seconds)."""
    live: frozenset[str] = frozenset()
    """The agents that have an actor now; set by the caller before each event."""
    turns: dict[str, Turn] = field(default_factory=dict)
    work: dict[str, Work] = field(default_factory=dict)
    qa_failures: dict[str, int] = field(default_factory=dict)
    submitted: set[str] = field(default_factory=set)
    """Tasks handed to the merge queue (or whose conflict merge runs), not yet answered."""
    plan: Phase = field(default_factory=Phase)
    decompose: Phase = field(default_factory=Phase)
    specs: dict[str, TaskSpec] = field(default_factory=dict)
    priority: dict[str, float] = field(default_factory=dict)
    paused_by: set[str] = field(default_factory=set)
    interruptions: dict[str, int] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)
    """Tasks (or phases) whose last turn was stopped for time and resumed once."""
    waiting: set[str] = field(default_factory=set)
    retired: list[str] = field(default_factory=list)
    preparing: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    """Task -> (agent, budget left) while its worktree is made ready for a developer turn."""
    checking: set[str] = field(default_factory=set)
    """Tasks whose developer's work is being committed and checked."""
    setting_up: set[str] = field(default_factory=set)
    """Tasks whose worktree runs the project's set-up command before their first turn."""
    plan_dir: str = ""
    """The planning checkout, once made (planning turns run there)."""
    plan_preparing: bool = False
    review_dirs: dict[str, str] = field(default_factory=dict)
    """Task -> QA's checkout for its review under way (made, not yet removed)."""
    review_preparing: set[str] = field(default_factory=set)
    """Tasks whose QA checkout is being made."""
    review_set_up: set[str] = field(default_factory=set)
    """QA checkouts in which the project's set-up command succeeded."""
    review_stale: set[str] = field(default_factory=set)
    """QA checkouts made ahead (at the developer's result), not yet moved to the head of
    the branch QA reviews (`MoveCheckout`)."""
    review_tried: set[str] = field(default_factory=set)
    """QA checkouts asked for ahead: each once per attempt of its task."""
    stopping: bool = False
    """A stop was asked: nothing new starts, the turns under way are stopped; the run
    ends once they exited, the merges submitted are answered and the git work is done."""
    stop_reason: str = ""
    """How the stop is said in the run's summary (``stopped by ...``)."""
    finished: bool = False
    started_at: float = 0.0
    storm_level: int = 0
    """The governor's level of the storm under way (its last `SpawnsHeld`), 0 once a
    request went through since: while it is not 0, one turn at a time (the probe)."""
    witnesses: set[str] = field(default_factory=set)
    """Agents whose next request that goes through proves the storm over, as it was sent
    during the storm: the probe (a turn started during it), an agent whose own retry of
    a 429/529 is under way, and one answered during it (its next request follows). The
    first answer of another agent may be to a request sent before the storm began."""
    frozen: list[str] = field(default_factory=list)
    """Agents whose turn waits out the storm frozen (`FreezeTurns`), the longest first."""
    probe: str = ""
    """The frozen agent thawed to probe the API (its retry is the probe), until it is
    refused again (frozen), gets through or its turn ends."""
    due: dict[str, float] = field(default_factory=dict)
    """When each frozen agent's own retry is due (its ``api_retry`` line's delay): once
    thawed it waits until then, so the probe is the one due first."""
    probed_at: float = 0.0
    """When the last probe was thawed: the next one waits for a hold that began after."""
    new_session: Callable[[], str] = field(default=lambda: str(uuid.uuid4()), repr=False)
    """Where new claude session ids come from (random, like claude's; tests may fix it)."""


# --- the permit ------------------------------------------------------------------------


def permit(m: Machine, task_id: str | None) -> Permit:
    """The governor's answer as a pure function of what it published and the settings.

    ``wait``: the hold from its last `SpawnsHeld`; the run's cap against the run's costs;
    the task's cap against the task's costs (the governor counts the same `CostReported`).
    """
    wait = max(0.0, m.fold.held_until - m.now)
    run = m.fold.run
    spent = run.usage.usd if run is not None else m.fold.usage.usd
    reached = cap_reached(spent, m.cfg.budget_usd)
    left: float | None = None
    if task_id is not None and m.cfg.task_budget_usd > 0:
        task = m.fold.tasks.get(task_id)
        used = task.usage.usd if task is not None else 0.0
        left = max(0.0, m.cfg.task_budget_usd - used)
    return Permit(wait, reached, left)


# --- adaptive concurrency ------------------------------------------------------------

Pressure = Literal["storm", "success"]


def next_concurrency(limit: int, ceiling: int, pressure: Pressure) -> int:
    """AIMD: a storm halves the agents allowed at once (never below 1), a turn that went
    through adds one (never above ``ceiling``, the ``max_workers`` setting)."""
    if pressure == "storm":
        return max(1, min(limit, ceiling) // 2)
    return max(1, min(ceiling, limit + 1))


def agents_allowed_limit(concurrency: int | None, ceiling: int) -> int:
    """The folded limit as a number (None is the ceiling)."""
    return ceiling if concurrency is None else max(1, min(concurrency, ceiling))


def agents_allowed(m: Machine) -> int:
    """How many agents may work at once now: one (the probe) while a storm lasts, else
    the adapted limit (the ceiling with ``crew_backoff`` off)."""
    ceiling = m.cfg.workers
    if not m.cfg.crew_backoff:
        return ceiling
    if m.storm_level > 0:
        return 1
    return agents_allowed_limit(m.fold.concurrency, ceiling)
