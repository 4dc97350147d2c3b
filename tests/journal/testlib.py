"""Helpers for the journal tests: envelopes, waiting on conditions with deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from autonoma.journal.fold import Row
from autonoma.journal.schema import open_read
from autonoma.protocol import AgentText, AnyMessage, Envelope, encode_message, message_tag

T = TypeVar("T")


def env(
    message: AnyMessage,
    seq: int = 0,
    *,
    run_id: str = "r1",
    sender: str = "tester",
    recipient: str = "*",
    ts: float | None = None,
) -> Envelope:
    """An envelope as the bus makes it (seq 0) or as the journal returns it."""
    return Envelope(
        seq=seq,
        ts=float(seq) if ts is None else ts,
        run_id=run_id,
        sender=sender,
        recipient=recipient,
        message=message,
    )


def text(n: int, *, run_id: str = "r1", sender: str = "dev-1") -> Envelope:
    """A small AgentText envelope numbered ``n`` (its text is ``m<n>``)."""
    return env(
        AgentText(agent_id=sender, text=f"m{n}"), run_id=run_id, sender=sender, ts=1000.0 + n
    )


def row_of(envelope: Envelope) -> Row:
    """The journal row the writer would store for ``envelope``."""
    message = envelope.message
    return (
        envelope.seq,
        envelope.ts,
        envelope.run_id,
        envelope.sender,
        envelope.recipient,
        message_tag(message),
        encode_message(message).decode(),
    )


def numbered(envelopes: Iterable[Envelope]) -> list[Envelope]:
    """The envelopes with seq 1, 2, ... (ts left as is)."""
    return [
        Envelope(
            seq=i,
            ts=e.ts,
            run_id=e.run_id,
            sender=e.sender,
            recipient=e.recipient,
            message=e.message,
        )
        for i, e in enumerate(envelopes, 1)
    ]


def wait_for(condition: Callable[[], T], timeout: float = 5.0, interval: float = 0.002) -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        time.sleep(interval)


def seqs(path: Path) -> list[int]:
    """Every seq in the journal at ``path``, read through a fresh read-only connection."""
    conn = open_read(path)
    if conn is None:
        return []
    try:
        return [int(r[0]) for r in conn.execute("SELECT seq FROM messages ORDER BY seq")]
    finally:
        conn.close()
