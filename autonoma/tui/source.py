"""What the dashboard reads: one run of the journal, followed as rows are committed.

`JournalSource` is `autonoma.journal.timeline.Timeline` (``refresh``, ``head``, ``seqs``,
``state_at``, ``step``: checkpointed time travel) plus an agent's own rows for its
stream. Nothing here blocks for long once open: ``refresh`` reads at most a bounded
number of rows committed since the last call.
"""

from __future__ import annotations

from pathlib import Path

from autonoma.journal import reader
from autonoma.journal.fold import Row
from autonoma.journal.timeline import Timeline


class JournalSource(Timeline):
    """A run's journal as the dashboard sees it (opening it reads the run so far)."""

    def rows_of(self, agent: str, until_seq: int, limit: int = 200) -> list[Row]:
        """The last ``limit`` rows of the run sent by or to ``agent``, up to ``until_seq``."""
        if self.run_id is None:
            return []
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
