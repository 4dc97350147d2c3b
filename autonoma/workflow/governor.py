"""The governor: one shared backoff for rate limits, and the budget caps.

Every agent's stream reaches it through the bus: a ``system/api_retry`` line with
429 or 529, or a turn that gave up on one, holds back new spawns for everyone
(`SpawnsHeld`), with exponential backoff and jitter, so that a storm is not fed
with more processes. With ``crew_backoff`` (the default) an agent refused does not
retry on its own: the orchestrator freezes it (SIGSTOP) until a window is over, then
thaws one frozen agent, whose retry is the crew's probe, and all of them once a
request goes through (`autonoma.workflow.decide`); fewer agents work at once after a
storm (AIMD). With it the windows stop growing at
`autonoma.workflow.backoff.CREW_WINDOW` (a few seconds): one probe per window is
cheap, and work resumes within one window of the storm's end.
A limit that lasts pauses the run (`WorkPaused`): a long hold until it ends, five
storms in a row until a request goes through; then the run resumes by itself
(`WorkResumed`); no task fails because of it.

Costs come from `CostReported`; past the run's cap no new work starts, past a
task's cap that task stops.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autonoma.config import Settings
from autonoma.protocol import (
    AgentApiRetry,
    AgentToolUse,
    AgentTurnFinished,
    BudgetReached,
    CostReported,
    Envelope,
    HoldLifted,
    SpawnsHeld,
    WorkPaused,
    WorkResumed,
)
from autonoma.runtime.actor import Actor
from autonoma.runtime.bus import Bus
from autonoma.workflow.backoff import CREW_WINDOW, Backoff, Budget

GOVERNOR = "governor"
RATE_LIMITED = frozenset({429, 529})


@dataclass(frozen=True)
class Permit:
    """May a new agent turn start now? ``wait`` seconds if not; budget state either way."""

    wait: float
    run_budget_reached: bool
    task_budget_left: float | None
    """What is left of the task's cap (None: no cap)."""


def is_rate_limited(finished: AgentTurnFinished) -> bool:
    """The turn gave up on a rate limit or an overload (claude's own retries exhausted)."""
    return finished.is_error and finished.api_error_status in RATE_LIMITED


@dataclass(frozen=True, slots=True)
class _Wake:
    pass


def _tell(ref: Any, message: object) -> None:
    with contextlib.suppress(Exception):  # the governor may be gone: nothing to resume
        ref.tell(message)


class Governor(Actor):
    """Holds new spawns back after rate limits; keeps the budget."""

    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        spent: Mapping[str | None, float] | None = None,
    ) -> None:
        super().__init__()
        self.bus = bus
        self.clock = clock
        self.backoff = backoff or Backoff.for_run(settings.crew_backoff)
        self.crew_backoff = settings.crew_backoff
        self.budget = Budget(settings.budget_usd, settings.task_budget_usd)
        for task_id, usd in (spent or {}).items():  # a resumed run's costs so far
            if usd > 0:
                self.budget.add(task_id, usd)
        self._paused = False
        self._budget_told: set[str] = set()

    def on_start(self) -> None:
        ref = self.actor_ref

        def forward(envelope: Envelope) -> None:
            kinds = AgentApiRetry | AgentTurnFinished | AgentToolUse | HoldLifted | CostReported
            if isinstance(envelope.message, kinds):
                ref.tell(envelope)

        self.listen(self.bus, forward)
        self._check_budget(None)  # a resumed run may start past its cap

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Wake):
            self.permit()  # resumes the run if the limit has lifted
            return None
        if not isinstance(message, Envelope):
            return None
        event = message.message
        now = self.clock()
        if isinstance(event, AgentApiRetry):
            if event.error_status in RATE_LIMITED:
                # claude's first retry waits what the server asked (retry-after); its later
                # ones grow on their own, which the crew's backoff overrides (it thaws them).
                asked = event.retry_delay_ms / 1000.0
                if self.crew_backoff and event.attempt > 1:
                    asked = min(asked, CREW_WINDOW)
                self._hit(now, asked, f"{event.agent_id} saw {event.error_status}")
        elif isinstance(event, AgentTurnFinished):
            if is_rate_limited(event):
                self._hit(
                    now,
                    None,
                    f"{event.agent_id} gave up on {event.api_error_status} after claude's retries",
                )
            elif not event.is_error:
                self._went_through(now)
        elif isinstance(event, AgentToolUse):
            self._went_through(now)  # the model answered: a request went through
        elif isinstance(event, HoldLifted):
            # The orchestrator saw a request sent during the storm go through: a new 429
            # from now on is a new storm, held at once.
            self.backoff.lift(now)
            self.permit()
        elif isinstance(event, CostReported):
            self.budget.add(event.task_id, event.usd)
            self._check_budget(event.task_id)
        return None

    def permit(self, task_id: str | None = None) -> Permit:
        """Whether a new turn (for ``task_id``) may start now."""
        now = self.clock()
        wait = self.backoff.held(now)
        if self._paused and not self.backoff.long_limit(now):
            self._paused = False
            self.bus.publish(GOVERNOR, WorkResumed(reason="the rate limit lifted"))
        left = None if task_id is None else self.budget.task_remaining(task_id)
        return Permit(wait, self.budget.run_reached(), left)

    def _went_through(self, now: float) -> None:
        """A request went through: the next storm starts at the base again, and a pause
        for storms in a row ends."""
        if self.backoff.level == 0:
            return  # nothing to end: most answers come outside storms
        self.backoff.success(now)
        self.permit()

    def _hit(self, now: float, retry_after: float | None, reason: str) -> None:
        before = self.backoff.held(now)
        until = self.backoff.hit(now, retry_after)
        delay = until - now
        if delay > before + 1e-6:
            self.bus.publish(
                GOVERNOR,
                SpawnsHeld(until=until, delay=delay, reason=reason, level=self.backoff.level),
            )
        if not self._paused and self.backoff.long_limit(now):
            self._paused = True
            # Resume by itself even if nobody asks for a permit meanwhile.
            ref = self.actor_ref
            timer = threading.Timer(max(until - now, 0.0) + 0.05, _tell, (ref, _Wake()))
            timer.daemon = True
            timer.start()
            if self.backoff.storms_last() and until - now <= self.backoff.pause_after:
                why = (
                    f"rate limited ({reason}): {self.backoff.level} storms in a row; the run "
                    "resumes by itself once a request goes through"
                )
            else:
                resume_at = time.strftime("%H:%M:%S", time.localtime(until))
                why = (
                    f"usage limit ({reason}): paused until about {resume_at}, "
                    "then the run resumes by itself"
                )
            self.bus.publish(GOVERNOR, WorkPaused(reason=why))

    def _check_budget(self, task_id: str | None) -> None:
        if "*run*" not in self._budget_told and self.budget.run_reached():
            self._budget_told.add("*run*")
            self.bus.publish(
                GOVERNOR,
                BudgetReached(
                    scope="run", limit_usd=self.budget.run_usd, spent_usd=self.budget.spent()
                ),
            )
        if (
            task_id is not None
            and task_id not in self._budget_told
            and self.budget.task_reached(task_id)
        ):
            self._budget_told.add(task_id)
            self.bus.publish(
                GOVERNOR,
                BudgetReached(
                    scope="task",
                    limit_usd=self.budget.task_usd,
                    spent_usd=self.budget.spent_on(task_id),
                    task_id=task_id,
                ),
            )


__all__ = ["GOVERNOR", "Governor", "Permit", "is_rate_limited"]
