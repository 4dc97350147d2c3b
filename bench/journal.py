"""Journal benchmarks: figures against baselines measured in the same run.

1. Write: messages/s through the `Journal` actor with group commit (from the first
   append until the last is committed) vs the same envelopes, encoded the same way,
   inserted by a bare apsw loop in one transaction into the same schema.
   Target: journal >= 0.5 x bare.
2. Fold: CPU time to fold a journal of 1,000,000 messages (``fold_rows`` over the
   SELECT) vs the CPU time to merely iterate that SELECT's rows. Target: fold <= 1.5 x read.

Run: ``.venv/bin/python bench/journal.py`` (``--quick`` for smaller counts,
``--fold-only`` for the second alone).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from autonoma.journal.fold import fold_rows
from autonoma.journal.schema import COLUMNS, open_read, open_write
from autonoma.journal.writer import Journal
from autonoma.protocol import (
    ActorStarted,
    AgentStateChanged,
    AgentText,
    AgentToolResult,
    AgentToolUse,
    AnyMessage,
    CostReported,
    Envelope,
    PhaseChanged,
    RunStarted,
    TaskDefined,
    TaskStateChanged,
    encode_message,
)

_WORDS = (
    "the",
    "test",
    "module",
    "function",
    "returns",
    "value",
    "error",
    "file",
    "path",
    "import",
    "class",
    "self",
    "assert",
    "None",
    "True",
    "False",
    "def",
    "return",
    "if",
    "else",
    "for",
    "in",
    "range",
    "len",
    "print",
    "raise",
    "with",
    "open",
    "read",
    "write",
    "json",
    "dict",
    "list",
    "str",
    "int",
    "float",
    "ok",
    "passed",
    "failed",
    "src/app.py",
    "tests/test_app.py",
    "pytest",
    "git",
    "commit",
    "branch",
    "merge",
)
_CODE = [
    "def load(path: str) -> dict:\n    with open(path) as f:\n        return json.load(f)\n",
    'print("hello, world")\n',
    '    assert result == {"status": "ok", "count": 3}\n',
    "FAILED tests/test_app.py::test_load - KeyError: 'name'\n",
    '\tpath = "C:\\\\Users\\\\dev"  # a Windows path\n',
]


def _text(rng: random.Random, size: int) -> str:
    """Prose mixed with code: quotes, newlines and backslashes, as real output has."""
    parts: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.15:
            part = rng.choice(_CODE)
        else:
            part = " ".join(rng.choices(_WORDS, k=rng.randint(4, 14))) + rng.choice(".\n")
        parts.append(part)
        length += len(part) + 1
    return " ".join(parts)[:size]


def _size(rng: random.Random) -> int:
    # Most agent messages are a few hundred bytes; a tail goes to several KB.
    return int(min(6000, max(80, rng.lognormvariate(6.2, 0.9))))


def make_messages(count: int, seed: int = 7) -> list[tuple[str, AnyMessage]]:
    """``count`` (sender, message) pairs in the proportions of a real run, reusing a pool."""
    rng = random.Random(seed)
    tasks = [f"t{i}" for i in range(1, 41)]
    agents = [f"developer-{i}" for i in range(1, 5)] + ["qa", "staff_engineer"]
    pool: list[tuple[str, AnyMessage]] = []
    for i in range(min(count, 20_000)):
        agent, task = rng.choice(agents), rng.choice(tasks)
        r = rng.random()
        message: AnyMessage
        if r < 0.30:
            message = AgentText(agent_id=agent, text=_text(rng, _size(rng)), task_id=task)
        elif r < 0.58:
            command = _text(rng, max(20, _size(rng) // 4))
            message = AgentToolUse(
                agent_id=agent,
                tool_use_id=f"toolu_{i:08d}",
                tool=rng.choice(["Bash", "Edit", "Write", "Read", "Grep"]),
                input={"command": command, "description": "run it"},
                task_id=task,
            )
        elif r < 0.88:
            message = AgentToolResult(
                agent_id=agent,
                tool_use_id=f"toolu_{i:08d}",
                content=_text(rng, _size(rng) * 2),
                is_error=rng.random() < 0.1,
                task_id=task,
            )
        elif r < 0.92:
            message = AgentStateChanged(
                agent_id=agent, role=agent.split("-")[0], state="working", task_id=task
            )
        elif r < 0.95:
            message = CostReported(
                agent_id=agent,
                usd=rng.random() / 10,
                input_tokens=rng.randint(100, 9000),
                output_tokens=rng.randint(10, 2000),
                cache_read_tokens=rng.randint(0, 50_000),
                task_id=task,
            )
        elif r < 0.98:
            message = TaskStateChanged(
                task_id=task, state=rng.choice(["ready", "running", "review", "merged"]), attempt=1
            )
        elif r < 0.99:
            message = PhaseChanged(phase="development")
        else:
            message = ActorStarted(name=agent, supervisor="crew", urn=f"urn:{i}", restart=True)
        sender = getattr(message, "agent_id", "orchestrator")
        pool.append((sender, message))
    head: list[tuple[str, AnyMessage]] = [
        ("orchestrator", RunStarted(requirements="requirements.md", project=".", max_workers=4)),
        *(("staff_engineer", TaskDefined(task_id=t, title=f"task {t}")) for t in tasks),
    ]
    body = [pool[i % len(pool)] for i in range(count - len(head))]
    return head + body


def make_envelopes(count: int) -> list[Envelope]:
    """Envelopes as the bus makes them (seq 0, the journal numbers them)."""
    now = time.time()
    return [
        Envelope(seq=0, ts=now + i * 1e-4, run_id="run-1", sender=s, recipient="*", message=m)
        for i, (s, m) in enumerate(make_messages(count))
    ]


FOLD_TARGET = 1.5
"""The fold of the rows may take at most this many times the bare read of them."""

_INSERT = (
    "INSERT INTO messages(seq, ts, run_id, sender, recipient, type, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def bare_insert(path: Path, envelopes: Sequence[Envelope]) -> float:
    """Seconds to encode and insert ``envelopes`` in one transaction, one execute per row."""
    conn = open_write(path)
    start = time.perf_counter()
    conn.execute("BEGIN")
    for seq, env in enumerate(envelopes, 1):
        message = env.message
        conn.execute(
            _INSERT,
            (
                seq,
                env.ts,
                env.run_id,
                env.sender,
                env.recipient,
                type(message).__name__,
                encode_message(message).decode(),
            ),
        )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def journal_insert(path: Path, envelopes: Sequence[Envelope]) -> float:
    """Seconds from the first append through the journal until the last is committed."""
    client = Journal.open(path)
    start = time.perf_counter()
    append = client.append
    for env in envelopes[:-1]:
        append(env)
    client.append_durable(envelopes[-1], timeout=600)
    elapsed = time.perf_counter() - start
    client.stop()
    return elapsed


def _fresh(folder: Path, name: str) -> Path:
    for suffix in ("", "-wal", "-shm", ".lock"):
        (folder / (name + suffix)).unlink(missing_ok=True)
    return folder / name


def bench_write(folder: Path, count: int, rounds: int) -> float:
    """Print and return the journal/bare write ratio (medians of ``rounds``)."""
    envelopes = make_envelopes(count)
    size = sum(len(encode_message(e.message)) for e in envelopes) / len(envelopes)
    print(f"write: {count:,} messages, {size:,.0f} bytes of JSON on average, {rounds} rounds")
    bare: list[float] = []
    journal: list[float] = []
    for _ in range(rounds):
        bare.append(bare_insert(_fresh(folder, "bare.db"), envelopes))
        journal.append(journal_insert(_fresh(folder, "journal.db"), envelopes))
        print(
            f"  bare apsw loop {count / bare[-1]:>10,.0f} msgs/s   "
            f"journal {count / journal[-1]:>10,.0f} msgs/s"
        )
    ratio = statistics.median(bare) / statistics.median(journal)
    print(
        f"  median: bare {count / statistics.median(bare):,.0f} msgs/s, "
        f"journal {count / statistics.median(journal):,.0f} msgs/s"
    )
    print(f"  journal / bare = {ratio:.2f}   (target >= 0.5)  {'OK' if ratio >= 0.5 else 'MISSED'}")
    return ratio


def _timed(action: Callable[[], object]) -> float:
    """CPU seconds of ``action`` (this process's, on one thread).

    Both the read and the fold are one thread's work on a journal in the page cache,
    so their CPU time is their cost; wall time would add however long other work on
    the machine kept them from a core.
    """
    start = time.process_time()
    action()
    return time.process_time() - start


def bench_fold(folder: Path, count: int, rounds: int) -> float:
    """Print and return the fold/read time ratio (best of ``rounds`` each)."""
    path = _fresh(folder, "fold.db")
    envelopes = make_envelopes(count)
    print(f"fold: journaling {count:,} messages ...", flush=True)
    journal_insert(path, envelopes)
    del envelopes
    conn = open_read(path)
    assert conn is not None
    query = f"SELECT {COLUMNS} FROM messages ORDER BY seq"

    def read() -> None:
        for _row in conn.execute(query):
            pass

    def fold() -> None:
        fold_rows(conn.execute(query))

    read()  # warm the page cache
    reads: list[float] = []
    folds: list[float] = []
    for _ in range(rounds):
        reads.append(_timed(read))
        folds.append(_timed(fold))
        print(
            f"  read {count / reads[-1]:>12,.0f} rows/s ({reads[-1]:.3f} s)   "
            f"fold {count / folds[-1]:>12,.0f} rows/s ({folds[-1]:.3f} s)"
        )
    conn.close()
    ratio = min(folds) / min(reads)
    verdict = "OK" if ratio <= FOLD_TARGET else "MISSED"
    print(f"  fold / read = {ratio:.2f}   (target <= {FOLD_TARGET})  {verdict}")
    return ratio


def main(argv: Sequence[str] | None = None) -> None:
    """Run both benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller counts, fewer rounds")
    parser.add_argument("--write", type=int, help="messages for the write benchmark")
    parser.add_argument("--fold", type=int, help="messages for the fold benchmark")
    parser.add_argument("--fold-only", action="store_true", help="only the fold benchmark")
    args = parser.parse_args(argv)
    write_count = args.write or (20_000 if args.quick else 200_000)
    fold_count = args.fold or (100_000 if args.quick else 1_000_000)
    rounds = 2 if args.quick else 5
    folder = Path(tempfile.mkdtemp(prefix="autonoma-bench-"))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, files in {folder}")
        if args.fold_only:
            bench_fold(folder, fold_count, max(rounds - 2, 2))
            return
        write = bench_write(folder, write_count, rounds)
        fold = bench_fold(folder, fold_count, max(rounds - 2, 2))
        print(
            f"summary: journal/bare write {write:.2f} (>= 0.5), "
            f"fold/read {fold:.2f} (<= {FOLD_TARGET})"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
