"""OTP's restart intensity: at most ``intensity`` restarts within ``period`` seconds.

Pure logic, no clock of its own: the caller passes the time, so tests need no sleeps.
"""

from __future__ import annotations


class RestartWindow:
    """The times of recent restarts, as OTP's ``add_restart/1`` keeps them.

    Each restart forgets the times older than ``now - period`` (the boundary is
    inclusive: a restart exactly ``period`` seconds ago still counts), then adds
    ``now``; the restart is allowed while the count stays at or below ``intensity``.
    """

    def __init__(self, intensity: int, period: float) -> None:
        if intensity < 0:
            raise ValueError(f"intensity must be >= 0, not {intensity}")
        if period <= 0:
            raise ValueError(f"period must be > 0, not {period}")
        self.intensity = intensity
        self.period = period
        self._times: list[float] = []

    def add(self, now: float) -> bool:
        """Record a restart at ``now``; False when it goes above the intensity (give up)."""
        threshold = now - self.period
        self._times = [t for t in self._times if t >= threshold]
        self._times.append(now)
        return len(self._times) <= self.intensity

    @property
    def count(self) -> int:
        """How many restarts the window holds (as of the last `add`)."""
        return len(self._times)

    def clear(self) -> None:
        """Forget every restart (a root supervisor resuming after a pause)."""
        self._times.clear()
