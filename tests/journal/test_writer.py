"""The journal actor: group commit by count and by time, durability, seq numbering."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pykka
import pytest

from autonoma.journal import reader
from autonoma.journal.schema import JournalError
from autonoma.journal.writer import Journal, JournalClient, JournalTimeout
from autonoma.protocol import AgentText, PhaseChanged
from autonoma.runtime.bus import Bus

from .testlib import seqs, text, wait_for

FOREVER_MS = 600_000.0  # a batch interval no test waits for


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / ".autonoma" / "state.db"


@pytest.fixture(autouse=True)
def _stop_actors() -> Any:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


def test_durable_append_returns_the_committed_seq(db: Path) -> None:
    client = Journal.open(db, batch_size=256, batch_ms=5)
    got = [client.append_durable(text(n), timeout=5) for n in range(1, 6)]
    assert got == [1, 2, 3, 4, 5]
    assert client.committed_seq == 5
    # Committed means another connection sees it now, with the right content.
    assert [(e.seq, e.message) for e in reader.read(db)] == [
        (n, AgentText(agent_id="dev-1", text=f"m{n}")) for n in range(1, 6)
    ]
    client.stop()


def test_commit_by_count(db: Path) -> None:
    client = Journal.open(db, batch_size=10, batch_ms=FOREVER_MS)
    for n in range(1, 26):
        client.append(text(n))
    # Two full batches are committed at once; the other 5 wait for their interval.
    wait_for(lambda: len(seqs(db)) == 20)
    wait_for(lambda: client.committed_seq == 20)  # set just after the COMMIT returns
    time.sleep(0.2)  # nothing else may show up without a commit
    assert seqs(db) == list(range(1, 21))
    client.stop()  # stopping commits the rest
    assert seqs(db) == list(range(1, 26))


def test_commit_by_time(db: Path) -> None:
    client = Journal.open(db, batch_size=10_000, batch_ms=80)
    start = time.monotonic()
    for n in range(1, 6):
        client.append(text(n))
    found = wait_for(lambda: seqs(db), timeout=5)
    elapsed = time.monotonic() - start
    # The batch became visible all at once, not before its interval, and soon after.
    assert found == [1, 2, 3, 4, 5]
    assert 0.075 <= elapsed < 1.0, elapsed
    # A later message opens a new batch, with its own interval.
    start = time.monotonic()
    seq = client.append_durable(text(6), timeout=5)
    assert seq == 6 and 0.075 <= time.monotonic() - start < 1.0
    client.stop()


def test_durable_append_with_batches_of_one_is_prompt(db: Path) -> None:
    client = Journal.open(db, batch_size=1, batch_ms=FOREVER_MS)
    start = time.monotonic()
    assert client.append_durable(text(1), timeout=5) == 1
    assert time.monotonic() - start < 0.5
    client.stop()


def test_seq_is_gap_free_across_reopen(db: Path) -> None:
    for round_ in range(3):
        client = Journal.open(db, batch_size=7, batch_ms=2)
        for n in range(10):
            client.append(text(n))
        assert client.append_durable(text(99), timeout=5) == 11 * (round_ + 1)
        client.stop()
    assert seqs(db) == list(range(1, 34))


def test_many_publishers(db: Path) -> None:
    client = Journal.open(db, batch_size=64, batch_ms=2)
    durable: dict[int, str] = {}
    lock = threading.Lock()

    def publish(worker: int) -> None:
        for n in range(2000):
            envelope = text(n, sender=f"w{worker}")
            if n % 100 == 0:
                seq = client.append_durable(envelope, timeout=10)
                with lock:
                    durable[seq] = f"w{worker}/m{n}"
            else:
                client.append(envelope)

    threads = [threading.Thread(target=publish, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.stop()
    envelopes = list(reader.read(db))
    assert [e.seq for e in envelopes] == list(range(1, 8001))
    for seq, label in durable.items():
        envelope = envelopes[seq - 1]
        assert isinstance(envelope.message, AgentText)
        assert f"{envelope.sender}/{envelope.message.text}" == label
    # Each publisher's messages keep their order.
    for worker in range(4):
        mine = [e.message for e in envelopes if e.sender == f"w{worker}"]
        assert [m.text for m in mine if isinstance(m, AgentText)] == [f"m{n}" for n in range(2000)]


def test_through_the_bus(db: Path) -> None:
    client = Journal.open(db, batch_ms=2)
    bus = Bus(run_id="run-7", clock=lambda: 123.0)
    bus.attach(client)
    bus.publish("orchestrator", PhaseChanged(phase="planning"))
    envelope = bus.publish("orchestrator", PhaseChanged(phase="development"), durable=True)
    assert envelope.seq == 2
    [first, second] = list(reader.read(db))
    assert (first.seq, first.run_id, first.sender, first.ts) == (1, "run-7", "orchestrator", 123.0)
    assert second == envelope
    client.stop()


def test_one_writer_per_journal(db: Path) -> None:
    client = Journal.open(db)
    with pytest.raises(JournalError, match=r"another process .* is writing"):
        Journal.open(db)
    client.stop()
    Journal.open(db).stop()  # the lock went with the first journal


def test_after_stop(db: Path) -> None:
    client = Journal.open(db, batch_ms=FOREVER_MS)
    client.append(text(1))
    client.stop()
    assert seqs(db) == [1]
    client.append(text(2))  # dropped: publishers must not fail because the journal ended
    with pytest.raises(JournalError, match="stopped"):
        client.append_durable(text(3), timeout=1)
    assert seqs(db) == [1]


def test_durable_timeout(db: Path) -> None:
    client = Journal.open(db, batch_size=1000, batch_ms=FOREVER_MS)
    with pytest.raises(JournalTimeout):
        client.append_durable(text(1), timeout=0.05)
    client.stop()
    assert seqs(db) == [1]  # a timeout says "not yet", not "never"


def test_bad_arguments(db: Path) -> None:
    with pytest.raises(ValueError):
        Journal.open(db, batch_size=0)
    with pytest.raises(ValueError):
        Journal.open(db, batch_ms=0)


def test_a_bad_file_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(JournalError, match="not an Autonoma journal"):
        Journal.open(path)


class _FlakyJournal(Journal):
    """Fails its next commit once told to, as a full disk would."""

    fail_next = False

    def _commit(self) -> None:
        if _FlakyJournal.fail_next and self._batch:
            _FlakyJournal.fail_next = False
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("ROLLBACK")
            batch, waiters = self._batch, self._waiters
            self._batch, self._waiters = [], []
            self._batch_no += 1
            error = OSError("disk full")
            self._requeue(batch, waiters, error)
            raise error
        super()._commit()


def test_restart_with_the_same_client_keeps_plain_envelopes(db: Path) -> None:
    client = JournalClient()
    ref = _FlakyJournal.start(db, client=client, batch_size=1000, batch_ms=30)
    assert client.append_durable(text(0), timeout=5) == 1

    # A commit fails: its durable append is told so, the actor crashes.
    _FlakyJournal.fail_next = True
    client.append(text(1))
    client.append(text(2))
    with pytest.raises(JournalError, match="disk full"):
        client.append_durable(text(5), timeout=5)
    wait_for(lambda: client.actor_ref is None)  # detached once all its cleanup is done
    assert not ref.is_alive()

    # While no actor is attached, plain envelopes wait and durable ones are refused.
    client.append(text(3))
    with pytest.raises(JournalError, match="down"):
        client.append_durable(text(4), timeout=1)

    # A new actor on the same client writes what waited, in order, gap-free; the
    # durable envelopes that were told they failed are not written.
    Journal.start(db, client=client, batch_size=1000, batch_ms=30)
    assert client.append_durable(text(6), timeout=5) == 5
    client.stop()
    texts = [e.message.text for e in reader.read(db) if isinstance(e.message, AgentText)]
    assert texts == ["m0", "m1", "m2", "m3", "m6"]
    assert seqs(db) == list(range(1, 6))
