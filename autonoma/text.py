"""Text from models, notes and files made inert before a terminal shows it.

Every string a view prints may hold what a model, a scenario, a note or a file name
put there. A terminal obeys control sequences in it: an OSC 52 writes the user's
clipboard, an OSC 8 turns text into a link to anywhere, a CSI clears the screen or
moves the cursor to overwrite what Autonoma said, a bidi override reorders what is
read. `inert` removes them all; the views call it where their text becomes terminal
output (the live log, ``status``, ``replay``, ``logs``, the run's summary). The journal,
and ``--json`` (where JSON escapes every control character), keep the exact text.
"""

from __future__ import annotations

import re

# String sequences, 7-bit (ESC ] / P / X / ^ / _) and 8-bit (U+009D, U+0090, U+0098,
# U+009E, U+009F): everything up to their terminator (BEL or ST, ESC \ or U+009C) goes,
# to the end of the text when there is none (a terminal would swallow what follows too).
_STRING = re.compile(
    r"(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
)
# CSI, 7-bit (ESC [) and 8-bit (U+009B): parameters, intermediates, one final byte.
_CSI = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?")
# Any other escape: ESC, intermediates, one final byte (ESC c resets the terminal).
_ESCAPE = re.compile(r"\x1b[ -/]*[0-~]?")
# What is left: C0 controls but tab and newline, DEL, C1 controls, bidi overrides and
# isolates (U+202A-U+202E, U+2066-U+2069).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert(text: str) -> str:
    """``text`` without control sequences or controls; tabs and newlines are kept.

    Pure; never raises. Printable text, other Unicode included, is left as it is.
    """
    if text.isprintable():  # the common case: nothing to look for
        return text
    text = _STRING.sub("", text)
    text = _CSI.sub("", text)
    text = _ESCAPE.sub("", text)
    return _CONTROL.sub("", text)


__all__ = ["inert"]
