"""The one place where the dashboard turns a message into words: `autonoma.words`."""

from __future__ import annotations

from autonoma import protocol as p
from autonoma.words import Level, describe


def said(message: p.Message) -> tuple[str, Level]:
    """One inert line for ``message`` and how it reads (info, good, warn or bad).

    Shown in an agent's own stream: the words of what the agent did itself leave the
    agent out (`words.describe`), and keep its task."""
    words = describe(message)
    if words is None:
        return type(message).__name__, "info"
    if words.agent_id and words.task_id:
        # The agent is the stream's own; which task it was on still matters.
        return f"[{words.task_id}] {words.text}", words.level
    return words.text, words.level


__all__ = ["Level", "said"]
