"""Snapshots: a run's folded state at a seq, and what the dashboard's panels show of it.

`view_of` is pure (the views of `autonoma.views`, as plain data: the web view shows
the same rows and words as the terminal dashboard). `Snapshots` keeps one checkpointed
`autonoma.journal.timeline.Timeline` per run asked for (a few, least recently used
dropped), so time travel answers in milliseconds; its `Snapshots.take` blocks on SQLite
and on the fold: call it from a worker thread.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autonoma import views
from autonoma.config import Settings
from autonoma.desktop.frames import Snapshot, SnapshotView
from autonoma.journal import reader
from autonoma.journal.fold import State
from autonoma.journal.timeline import Timeline

KEEP_RUNS = 4
"""Timelines kept at once (each holds its run's seqs and checkpoints)."""


def _node(node: views.Node) -> dict[str, Any]:
    return {
        "name": node.name,
        "label": node.label,
        "level": node.level,
        "children": [_node(child) for child in node.children],
    }


def view_of(
    state: State, settings: Settings, *, live: bool, now: float | None = None
) -> SnapshotView:
    """The panels of the dashboard for ``state`` (``live``: the run's head, still going)."""
    return SnapshotView(
        tree=_node(views.tree(state)),
        board=[dataclasses.asdict(row) for row in views.board(state, settings.max_retries)],
        run=list(
            views.run_lines(
                state,
                live=live,
                now=now,
                budget_usd=settings.budget_usd,
                task_budget_usd=settings.task_budget_usd,
            )
        ),
        escalations=list(views.escalations(state)),
        costs=views.agent_costs(state),
    )


class NoRun(LookupError):
    """The snapshot asked for a run the journal does not have (one line)."""


class Snapshots:
    """Checkpointed timelines of the runs of one journal, shared by every client.

    Thread-safe; `take` blocks (SQLite reads and folding, bounded by the checkpoints
    once a run was read, a second per 100,000 rows the first time).
    """

    def __init__(
        self,
        db: Path,
        settings: Settings,
        keep: int = KEEP_RUNS,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.alive = alive
        """Whether a process runs the project's latest run (its lock); None: not asked."""
        self.keep = keep
        self._lock = threading.Lock()
        self._timelines: OrderedDict[str, Timeline] = OrderedDict()

    def _timeline(self, run_id: str) -> Timeline:
        with self._lock:
            timeline = self._timelines.get(run_id)
            if timeline is None:
                timeline = Timeline(self.db, run_id, catch_up=False)
                self._timelines[run_id] = timeline
                while len(self._timelines) > self.keep:
                    _, old = self._timelines.popitem(last=False)
                    old.close()
            self._timelines.move_to_end(run_id)
            return timeline

    def take(self, at_seq: int | None, run_id: str | None, request_id: Any = None) -> Snapshot:
        """The snapshot of ``run_id`` (None: the latest run) at ``at_seq`` (None: its head).

        Raises `NoRun` for a run id the journal does not have, `JournalError` for a
        broken journal.
        """
        if run_id is None:
            run_id = reader.latest_run(self.db)
            if run_id is None:
                # No run yet: the empty state, which every view shows as such.
                state = State()
                return Snapshot(
                    id=request_id,
                    run_id=None,
                    seq=0,
                    head=0,
                    seqs_total=0,
                    state=state.to_dict(),
                    view=view_of(state, self.settings, live=False),
                )
        elif run_id not in reader.run_ids(self.db):
            raise NoRun(f"no run {run_id!r} in the journal")
        timeline = self._timeline(run_id)
        timeline.refresh()
        while not timeline.caught_up:
            timeline.refresh()
        head = timeline.head
        seq = head if at_seq is None else timeline.step(at_seq, 0)
        if at_seq is not None and at_seq < (timeline.seqs[0] if timeline.seqs else 0):
            seq = at_seq  # before the run: its empty state
        state = timeline.state_at(seq)
        run = state.run
        live = seq == head and (run is None or run.outcome is None)
        if run is not None:
            # Killed without a word: only the lock says its process is gone (the state
            # may be the timeline's own, so the mark is set or cleared every time).
            run.interrupted = (
                live
                and self.alive is not None
                and run_id == reader.latest_run(self.db)
                and not self.alive()
            )
            live = live and not run.interrupted
        return Snapshot(
            id=request_id,
            run_id=run_id,
            seq=seq,
            head=head,
            seqs_total=len(timeline.seqs),
            state=state.to_dict(),
            view=view_of(state, self.settings, live=live, now=time.time() if live else None),
        )

    def close(self) -> None:
        """Close every timeline's connection."""
        with self._lock:
            for timeline in self._timelines.values():
                timeline.close()
            self._timelines.clear()
