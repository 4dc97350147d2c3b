"""How a run's process takes SIGINT, SIGTERM and SIGHUP, from its first moments on.

A signal stops a run cleanly once its actors run: the orchestrator journals the stop
and the run ends ``stopped``. Before that, three windows:

- while the command is imported (`install_early`): nothing is made yet, so the
  process exits at once, 130, with one line;
- while the run is prepared (its checks, its lock): the signal raises there, like
  Ctrl-C; nothing of the run is journaled yet, so the journal says what it said;
- from the run's first journal row until its actors run (`hold`): a first signal is
  held, and raised once they run (`release`), so that it is journaled as a later stop
  is; a second one raises at once (the user insists).

Standard library only: imported before anything else of the command.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
INTERRUPTED = 130
"""The exit code of a command stopped by a signal (128 + SIGINT), as a shell shows it."""


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt: the
    run stops the same clean way, and says which signal stopped it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


_ORIGINAL = {signum: signal.getsignal(signum) for signum in SIGNALS}
"""What each signal did as the process started (what `restore` puts back)."""

_IGNORED = frozenset({signal.SIGINT} if _ORIGINAL[signal.SIGINT] == signal.SIG_IGN else ())
"""Left ignored: SIGINT when started ignoring it (a script's ``cmd &``), as Python does.
SIGTERM and SIGHUP stop a run whatever (``kill``, a closed terminal, or `autonoma stop`'s
peers: the run must journal its end)."""

_held: list[int] | None = None
"""While a start holds signals (`hold`): those that came (None: not holding)."""


def _early(signum: int, frame: FrameType | None) -> None:
    # Still importing: nothing is made, and a KeyboardInterrupt here would escape as a
    # traceback. os.write, not print: a handler may run inside print's own buffer.
    os.write(2, b"autonoma: interrupted\n")
    os._exit(INTERRUPTED)


def install_early() -> None:
    """Exit 130 with one line on any of `SIGNALS`, until `install` or `restore`; only in
    the main thread of the ``autonoma`` program itself (not a process importing it)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    program = getattr(spec, "name", "") == "autonoma.__main__" or (
        os.path.basename(getattr(main, "__file__", "") or "") == "autonoma"
    )
    if program:
        _handle_with(_early)


def _raise(signum: int, frame: FrameType | None) -> None:
    if _held is not None and not _held:
        _held.append(signum)  # acted on in `release`, once the run can journal it
        return
    _raise_for(signum)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Signalled(signal.Signals(signum).name)


def install() -> None:
    """`kill PID` (SIGTERM) and a closed terminal (SIGHUP) stop the run as Ctrl-C does,
    as a `Signalled`; Ctrl-C as a KeyboardInterrupt; both held while `hold` says so.
    Does nothing outside the main thread (where Python runs handlers)."""
    _handle_with(_raise)


def _handle_with(handler: Callable[[int, FrameType | None], None]) -> None:
    """``handler`` for every one of `SIGNALS` not left ignored (main thread only)."""
    if _main_thread():
        for signum in SIGNALS:
            if signum not in _IGNORED:
                signal.signal(signum, handler)


def restore() -> None:
    """The handlers the process started with back (a command that stops the usual way,
    as it did before `install_early`); does nothing outside the main thread."""
    if _main_thread():
        for signum, original in _ORIGINAL.items():
            if original is not None:  # None: not set from Python (never here)
                signal.signal(signum, original)


def _main_thread() -> bool:
    # signal.signal raises ValueError elsewhere (a command run in a test's thread).
    return threading.current_thread() is threading.main_thread()


@contextmanager
def hold() -> Iterator[None]:
    """Hold the first signal (with `install`'s handlers) until `release` or the end of
    the block; one still held at the end of the block is dropped (the block ended by an
    error, which is said instead). Never blocks."""
    global _held
    _held = []
    try:
        yield
    finally:
        _held = None


def release() -> None:
    """Stop holding; raise the signal held meanwhile, if one came (KeyboardInterrupt or
    `Signalled`), as if it came now."""
    global _held
    held, _held = _held, None
    if held:
        _raise_for(held[0])
