"""SIGKILL a real writer process at random moments: nothing reported committed is lost.

A child (``kill_child.py``) publishes through the `Journal` as fast as it can, plain
and durable envelopes from two threads, and prints each durable seq once committed.
The parent kills it with SIGKILL after a random delay (sometimes while it is still
opening or creating the journal), then checks the journal: integrity, every reported
seq present with its content, seqs gap-free, and the fold runs. The next child writes
on after the killed one's last commit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from autonoma.journal import reader
from autonoma.journal.schema import integrity_check, open_read

CHILD = Path(__file__).with_name("kill_child.py")
ROOT = Path(__file__).resolve().parents[2]
KILLS = 24
BUDGET = 25.0  # seconds; the test stops killing early rather than run longer


def _check(db: Path, reported: dict[int, str]) -> int:
    """Check the journal after a kill; returns how many rows it has."""
    assert integrity_check(db) == ["ok"]
    conn = open_read(db)
    if conn is None:  # killed before the schema was committed
        assert not reported
        return 0
    try:
        seqs = [int(r[0]) for r in conn.execute("SELECT seq FROM messages ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)), "seqs are not gap-free"
        for seq, tag in reported.items():
            found = conn.execute("SELECT body FROM messages WHERE seq = ?", (seq,)).fetchall()
            assert found, f"seq {seq} was reported committed but is missing"
            assert f'"{tag}"' in str(found[0][0]), f"seq {seq} holds another message"
        costs = conn.execute("SELECT count(*) FROM messages WHERE type = 'CostReported'")
        [(cost_rows,)] = costs.fetchall()
    finally:
        conn.close()
    state = reader.replay(db)  # the same fold as status and recovery
    assert state.last_seq == len(seqs)
    turns = state.agents["dev-1"].usage.turns if "dev-1" in state.agents else 0
    assert turns == cost_rows, (turns, cost_rows)
    return len(seqs)


def test_sigkill_at_random_moments_loses_nothing_committed(tmp_path: Path) -> None:
    db = tmp_path / ".autonoma" / "state.db"
    seed = int(os.environ.get("JOURNAL_KILL_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    reported: dict[int, str] = {}
    started = time.monotonic()
    kills = 0
    rows = 0
    while kills < KILLS and time.monotonic() - started < BUDGET:
        batch_size = rng.choice([1, 16, 256])
        batch_ms = rng.choice([1.0, 5.0, 20.0])
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), f"run{kills}", str(batch_size), str(batch_ms)],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=ROOT,
        )
        # Any moment: while importing, opening or creating the journal, or mid-stream.
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL, f"child ended by itself (seed {seed}): {out}"
        kills += 1
        complete = out.split("\n")[:-1]  # the last line may have been cut by the kill
        for line in complete:
            if line == "ready":
                continue
            seq_text, tag = line.split()
            seq = int(seq_text)
            assert seq not in reported, f"seq {seq} reported twice (seed {seed})"
            reported[seq] = tag
        new_rows = _check(db, reported)
        assert new_rows >= rows, f"rows went from {rows} to {new_rows} (seed {seed})"
        rows = new_rows
    print(f"{kills} kills, {len(reported)} durable commits reported, {rows} rows, seed {seed}")
    assert kills >= 20, f"only {kills} kills in {BUDGET} s"
    assert len(reported) > 100, f"too few commits reported to mean anything (seed {seed})"
