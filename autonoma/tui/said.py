"""The one place where the dashboard turns a message into words: `autonoma.words`."""

from __future__ import annotations

from autonoma import protocol as p
from autonoma.words import Level, describe


def said(message: p.Message) -> tuple[str, Level]:
    """One inert line for ``message`` and how it reads (info, good, warn or bad).

    Shown in an agent's own stream, so the words leave the agent out (`words.describe`
    does for what an agent does itself)."""
    words = describe(message)
    if words is None:
        return type(message).__name__, "info"
    return words.text, words.level


__all__ = ["Level", "said"]
