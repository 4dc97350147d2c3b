"""What the dashboard reads: one run of the journal, followed as rows are committed.

`JournalSource` is `autonoma.journal.timeline.Timeline` (``refresh``, ``head``, ``seqs``,
``state_at``, ``step``: checkpointed time travel) plus each agent's own rows for its
stream. Nothing here blocks for long once open: ``refresh`` reads at most a bounded
number of rows committed since the last call.

An agent's stream is kept from what ``refresh`` reads anyway: each agent's latest rows
(between `STREAM_KEEP` and twice that many) stay in memory, so a redraw of the stream
panel reads nothing from SQLite; only a look further back than that (time travel far
into the past of a busy agent) queries the journal.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from autonoma.journal import reader
from autonoma.journal.fold import Row
from autonoma.journal.timeline import CHECKPOINT_EVERY, Timeline

STREAM_ROWS = 200
"""Rows of an agent that its stream panel shows (the last ones up to the seq shown)."""

STREAM_KEEP = 2 * STREAM_ROWS
"""Each agent's latest rows kept in memory: at least this many (when it has them), at
most twice as many (the oldest half is dropped at once: amortized constant work)."""


def _seq(row: Row) -> int:
    return row[0]


class JournalSource(Timeline):
    """A run's journal as the dashboard sees it (opening it reads the run so far)."""

    def __init__(
        self,
        db: Path,
        run_id: str | None = None,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        catch_up: bool = True,
        stream_keep: int = STREAM_KEEP,
    ) -> None:
        """``stream_keep``: each agent's rows kept in memory (see `STREAM_KEEP`)."""
        if stream_keep < 1:
            raise ValueError(f"stream_keep must be at least 1, not {stream_keep}")
        self.stream_keep = stream_keep
        # Filled by _read, which the Timeline's constructor already calls.
        self._streams: dict[str, list[Row]] = {}
        self._trimmed: set[str] = set()
        """Agents whose oldest rows were dropped from their stream buffer."""
        super().__init__(db, run_id, checkpoint_every=checkpoint_every, catch_up=catch_up)

    def _read(self, rows: list[Row]) -> None:
        streams = self._streams
        for row in rows:
            sender, recipient = row[3], row[4]
            for agent in (sender, recipient) if sender != recipient else (sender,):
                kept = streams.get(agent)
                if kept is None:
                    streams[agent] = [row]
                    continue
                kept.append(row)
                if len(kept) > 2 * self.stream_keep:
                    del kept[: self.stream_keep]
                    self._trimmed.add(agent)

    def rows_of(self, agent: str, until_seq: int, limit: int = STREAM_ROWS) -> list[Row]:
        """The last ``limit`` rows of the run sent by or to ``agent``, up to ``until_seq``
        (rows read by `refresh` only: ``until_seq`` past the head counts as the head).

        From memory when the agent's kept rows reach back far enough, else from the
        journal (blocking on SQLite; raises `JournalError` for a broken journal).
        """
        with self._lock:
            if self.run_id is None:
                return []
            until_seq = min(until_seq, self.head)
            kept = self._streams.get(agent, [])
            end = bisect.bisect_right(kept, until_seq, key=_seq)
            if end >= limit or agent not in self._trimmed:
                return kept[max(0, end - limit) : end]
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
