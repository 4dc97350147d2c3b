"""The governor's pure core: one shared rate-limit backoff, and the cost budget.

Every agent reports the rate limits (HTTP 429/529) it sees to the governor, which holds
new spawns back for all of them: agents backing off on their own would each retry into
the same storm. Time is always passed in, so the rules are tested without a clock.
"""

from __future__ import annotations

import random

# Storms in a row (as counted by the level, see `Backoff.hit`) after which the limit
# "lasts" and the run shows Paused until a request goes through.
PAUSE_LEVEL = 5

# The longest hold between two probes with the crew's backoff (seconds, before jitter).
# One probe turn per window costs the API one request and its capped retries, so the
# windows need not grow the way each agent's own retries must: capped, work resumes
# within one window of a storm's end (an exponential 16 s window cost a run 16 s after a
# 20 s storm). A server that asks for longer still gets it: its retry-after wins.
CREW_WINDOW = 4.0

# The cap without the crew's backoff (claude's own retries, only new spawns held).
SOLO_WINDOW = 120.0

# Costs add up in floats: 0.7 + 0.1 is 0.7999999999999999, which must still reach a 0.8 cap.
_EPSILON = 1e-9


def cap_reached(spent: float, cap: float) -> bool:
    """Whether ``spent`` (USD) reached ``cap`` (0 or less: no cap), float sums allowed for."""
    return cap > 0 and spent >= cap - _EPSILON


class Backoff:
    """Exponential backoff with jitter, shared by every agent.

    The level counts storms, not reports. A hit raises the level only when no hold is in
    force (or the level is 0 after a success during the hold). A hit during a hold belongs
    to the same storm, which many agents see at once: it leaves the level alone and only
    lengthens the hold when its own ``retry_after`` asks for more.
    """

    def __init__(
        self,
        base: float = 2.0,
        cap: float = SOLO_WINDOW,
        jitter: float = 0.25,
        pause_after: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self.pause_after = pause_after
        self._rng = rng if rng is not None else random.Random()
        self._level = 0
        self._until = 0.0
        # Latched for the current hold: a long hold stays one until it ends, even though
        # the time left shrinks below pause_after on the way.
        self._long = False

    @classmethod
    def for_run(
        cls, crew_backoff: bool, *, jitter: float = 0.25, rng: random.Random | None = None
    ) -> Backoff:
        """The run's backoff: windows capped at `CREW_WINDOW` with the crew's backoff (the
        probes), at `SOLO_WINDOW` without it."""
        return cls(cap=CREW_WINDOW if crew_backoff else SOLO_WINDOW, jitter=jitter, rng=rng)

    @property
    def level(self) -> int:
        """Storms seen since the last success."""
        return self._level

    @property
    def until(self) -> float:
        """When the current hold ends (in the past when free)."""
        return self._until

    def hit(self, now: float, retry_after: float | None = None) -> float:
        """A rate limit was seen at ``now``; returns when new spawns may start again."""
        held = now < self._until
        if held and self._level > 0:
            delay = 0.0
        else:
            if not held:
                self._long = False
            self._level += 1
            raw = min(self.cap, self.base * 2 ** (self._level - 1))
            delay = raw * self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._until = max(self._until, now + delay)
        if self._until - now > self.pause_after:
            self._long = True
        return self._until

    def success(self, now: float) -> None:
        """A turn went through at ``now``: the next storm starts again at ``base``."""
        del now  # the rule does not depend on time; the argument keeps callers uniform
        self._level = 0

    def lift(self, now: float) -> None:
        """The storm is over (a request sent during it went through): the hold ends at
        ``now``, and the next storm starts at ``base`` again."""
        self._until = min(self._until, now)
        self._level = 0

    def held(self, now: float) -> float:
        """Seconds left before a new spawn may start (0 when free)."""
        return max(0.0, self._until - now)

    def long_limit(self, now: float) -> bool:
        """True while a long hold lasts (over ``pause_after``), and from the fifth storm in
        a row until a request goes through (`success`): the run is Paused meanwhile."""
        return (self.held(now) > 0 and self._long) or self.storms_last()

    def storms_last(self) -> bool:
        """The fifth storm in a row (or more) since a request went through."""
        return self._level >= PAUSE_LEVEL


class Budget:
    """Cost caps in USD for the whole run and for each task; a cap of 0 means none."""

    def __init__(self, run_usd: float, task_usd: float) -> None:
        if run_usd < 0 or task_usd < 0:
            raise ValueError(f"budgets cannot be negative, got run={run_usd} task={task_usd}")
        self.run_usd = run_usd
        self.task_usd = task_usd
        self._total = 0.0
        self._by_task: dict[str, float] = {}

    def add(self, task_id: str | None, usd: float) -> None:
        """Count ``usd`` spent, on ``task_id`` or on the run alone (planning, None)."""
        if usd < 0:
            raise ValueError(f"a cost cannot be negative, got {usd}")
        self._total += usd
        if task_id is not None:
            self._by_task[task_id] = self._by_task.get(task_id, 0.0) + usd

    def spent(self) -> float:
        """USD spent by the whole run."""
        return self._total

    def spent_on(self, task_id: str) -> float:
        """USD spent on one task (0 when none yet)."""
        return self._by_task.get(task_id, 0.0)

    def run_reached(self) -> bool:
        """True when the run's cap is set and reached."""
        return cap_reached(self._total, self.run_usd)

    def task_reached(self, task_id: str) -> bool:
        """True when the per-task cap is set and this task reached it."""
        return cap_reached(self.spent_on(task_id), self.task_usd)

    def task_remaining(self, task_id: str) -> float | None:
        """USD this task may still spend (never below 0), or None when tasks have no cap."""
        if self.task_usd <= 0:
            return None
        return max(0.0, self.task_usd - self.spent_on(task_id))
