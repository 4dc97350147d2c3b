"""The journal: every message, in order, in SQLite; state is a fold over it.

- `autonoma.journal.schema`: the file (WAL, append-only table, schema version) and
  `JournalError`.
- `autonoma.journal.writer`: the `Journal` actor (group commit) and its thread-safe
  `JournalClient`, the bus's store.
- `autonoma.journal.reader`: rows, envelopes, runs, `follow` and `replay`, from any process.
- `autonoma.journal.fold`: the pure fold from messages to `State`.

Nothing is re-exported here: ``autonoma.journal.fold`` is a module, and a function of
the same name in this namespace would hide it.
"""
