"""Telling the user something needs them while they look elsewhere: bell, OSC 9, OSC 777."""

from __future__ import annotations

from autonoma.text import inert


def escape(title: str, body: str) -> str:
    """The bell, then a desktop notification as iTerm2/kitty (OSC 9) and VTE (OSC 777) take it.

    The text is made inert and stripped of ``;`` and control characters: it cannot
    end the sequence early or steer the terminal.
    """
    clean_title = _clean(title)
    clean_body = _clean(body)
    return (
        "\a"
        f"\033]9;{clean_title}: {clean_body}\033\\"
        f"\033]777;notify;{clean_title};{clean_body}\033\\"
    )


def _clean(text: str) -> str:
    text = inert(text)
    return "".join(c for c in text if c.isprintable() and c != ";")[:200]
