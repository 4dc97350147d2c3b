"""What the dashboard reads: one run of the journal, followed as rows are committed.

`Source` is the small interface the app codes against (the contract of
`autonoma.journal.timeline.Timeline`): ``refresh``, ``head``, ``seqs``,
``state_at`` and ``step``. `JournalSource` implements it over `autonoma.journal.reader`
until the checkpointed timeline is merged in; then `open_source` returns a Timeline.
Nothing here blocks for long: ``refresh`` reads only the rows committed since the last
call, and ``state_at`` folds from the nearest kept state.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from autonoma.journal import reader
from autonoma.journal.fold import Row, State, fold_rows

TASK_EVENTS = frozenset(
    {
        "TaskDefined",
        "TaskStateChanged",
        "TaskMerged",
        "MergeFailed",
        "ReviewVerdict",
        "Escalation",
        "RetryRequested",
        "ResolveRequested",
        "RunStarted",
        "RunFinished",
        "PhaseChanged",
    }
)
"""The message types `step` stops at with ``task_events=True``."""


class Source(Protocol):
    """A run's journal as the dashboard sees it."""

    @property
    def head(self) -> int:
        """The seq of the run's last row read so far (0 before any)."""
        ...

    @property
    def seqs(self) -> Sequence[int]:
        """This run's seqs read so far, ascending."""
        ...

    def refresh(self) -> int:
        """Read the rows committed since the last call; returns the head seq."""
        ...

    def state_at(self, seq: int | None = None) -> State:
        """The state once ``seq`` was folded (None: the head); the caller's to keep."""
        ...

    def step(self, seq: int, by: int = 1, *, task_events: bool = False) -> int:
        """The seq ``by`` messages (or task events) after (before, if negative) ``seq``."""
        ...


class JournalSource:
    """`Source` over the reader: the head state folded as rows come, older ones replayed."""

    CHECKPOINT_EVERY = 2000
    """Rows between two kept states (what an older ``state_at`` folds from)."""

    def __init__(self, db: Path, run_id: str | None = None) -> None:
        self.db = db
        self.run_id = run_id if run_id is not None else reader.latest_run(db)
        self._seqs: list[int] = []
        self._task_seqs: list[int] = []
        self._state = State()
        # (seq, state) pairs: a deep copy of the head state every CHECKPOINT_EVERY rows.
        self._checkpoints: list[tuple[int, State]] = []
        self._since_checkpoint = 0

    @property
    def head(self) -> int:
        """The seq of the last row of the run read so far."""
        return self._seqs[-1] if self._seqs else 0

    @property
    def seqs(self) -> Sequence[int]:
        """The run's seqs read so far."""
        return self._seqs

    def refresh(self) -> int:
        """Fold the rows committed since the last call (at most 5000 at once)."""
        if self.run_id is None:
            self.run_id = reader.latest_run(self.db)
            if self.run_id is None:
                return 0
        rows: list[Row] = []
        for row in reader.rows(self.db, after_seq=self.head, run_id=self.run_id):
            rows.append(row)
            if len(rows) >= 5000:
                break
        for row in rows:
            fold_rows((row,), self._state)
            self._seqs.append(row[0])
            if row[5] in TASK_EVENTS:
                self._task_seqs.append(row[0])
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.CHECKPOINT_EVERY:
                self._checkpoints.append((row[0], copy.deepcopy(self._state)))
                self._since_checkpoint = 0
        return self.head

    def state_at(self, seq: int | None = None) -> State:
        """The state at ``seq`` (clamped to the run), a copy the caller may keep."""
        if seq is None or seq >= self.head:
            return copy.deepcopy(self._state)
        at = bisect.bisect_right([s for s, _ in self._checkpoints], seq)
        if at:
            base_seq, base = self._checkpoints[at - 1]
            state = copy.deepcopy(base)
        else:
            base_seq, state = 0, State()
        return fold_rows(
            reader.rows(self.db, after_seq=base_seq, until_seq=seq, run_id=self.run_id), state
        )

    def step(self, seq: int, by: int = 1, *, task_events: bool = False) -> int:
        """The seq ``by`` messages or task events away from ``seq``, clamped to the run."""
        seqs = self._task_seqs if task_events else self._seqs
        if not self._seqs:
            return 0
        if not seqs:
            return seq
        if by >= 0:
            index = bisect.bisect_right(seqs, seq) + by - 1
        else:
            index = bisect.bisect_left(seqs, seq) + by
        index = max(0, min(len(seqs) - 1, index))
        return seqs[index]

    def rows_of(self, agent: str, until_seq: int, limit: int = 200) -> list[Row]:
        """The last ``limit`` rows sent by or to ``agent`` up to ``until_seq``."""
        return list(
            reader.rows(
                self.db,
                until_seq=until_seq,
                run_id=self.run_id,
                sender_or_recipient=agent,
                limit_last=limit,
            )
        )


def open_source(db: Path, run_id: str | None = None) -> JournalSource:
    """The dashboard's source for ``run_id`` (None: the latest run) of the journal ``db``."""
    return JournalSource(db, run_id)
