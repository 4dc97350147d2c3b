"""`inert`: what a model writes can steer no terminal."""

from __future__ import annotations

import pytest

from autonoma.text import inert


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, ünïcödé, 日本, emoji 🎉", "plain text, ünïcödé, 日本, emoji 🎉"),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        # OSC 52 (writes the clipboard), ended by BEL or by ST
        ("a\x1b]52;c;cm0gLXJmIH4=\x07b", "ab"),
        ("a\x1b]52;c;cm0gLXJmIH4=\x1b\\b", "ab"),
        # OSC 8 hyperlink around visible text
        ("\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"),
        # OSC 0: the window title
        ("\x1b]0;pwned\x07title", "title"),
        # an unterminated OSC swallows the rest, as a terminal would
        ("ok\x1b]52;c;AAAA", "ok"),
        # CSI: clear the screen, move the cursor, colours, private modes
        ("\x1b[2J\x1b[Hhome", "home"),
        ("\x1b[1;31mred\x1b[0m", "red"),
        ("\x1b[?1049hscreen", "screen"),
        ("a\x1b[", "a"),
        # DCS, APC, PM, SOS
        ("\x1bP1$qm\x1b\\dcs", "dcs"),
        ("\x1b_apc payload\x1b\\apc", "apc"),
        ("\x1b^pm payload\x1b\\pm", "pm"),
        ("\x1bXsos payload\x1b\\sos", "sos"),
        # other escapes: reset the terminal, charset, keypad
        ("\x1bcreset", "reset"),
        ("\x1b(0line\x1b(B", "line"),
        ("\x1b=keypad", "keypad"),
        ("lone \x1b", "lone "),
        # 8-bit C1: CSI, OSC (ended by ST), NEL
        ("\x9b2Jclear", "clear"),
        ("\x9d52;c;AAAA\x9cok", "ok"),
        ("a\x85b", "ab"),
        # C0: bell, backspace, carriage return (overwrites the line), NUL, DEL
        ("safe\rEVIL", "safeEVIL"),
        ("bell\x07\x08\x00\x7f", "bell"),
        ("vt\x0bff\x0c", "vtff"),
        # bidi overrides and isolates reorder what is read
        ("\u202eevil.txt\u202c", "evil.txt"),
        ("a\u202a\u202b\u202d\u2066\u2067\u2068\u2069b", "ab"),
        ("", ""),
    ],
)
def test_inert(raw: str, shown: str) -> None:
    assert inert(raw) == shown
    assert inert(shown) == shown
