"""Which systems Autonoma runs on, checked before anything that needs them is imported.

Autonoma needs Linux: the process table in ``/proc``, ``prctl`` (``PR_SET_PDEATHSIG``
and ``PR_SET_CHILD_SUBREAPER``) so that no agent outlives it, pseudo-terminals with
``TIOCSCTTY`` for each ``claude``, and ``flock`` for the journal's single writer. This
module imports only the standard library's portable parts, so it works everywhere.
"""

from __future__ import annotations

import platform
import sys

NEEDS = (
    "Autonoma runs on Linux only (x86_64 or aarch64): it needs /proc, "
    "prctl(PR_SET_PDEATHSIG), pseudo-terminals and flock"
)


def unsupported_reason(system: str, name: str) -> str | None:
    """One line saying why ``system`` (``sys.platform``) cannot run Autonoma; None on Linux.

    ``name`` is the system's name for people (``platform.system()``).
    """
    if system.startswith("linux"):
        return None
    return f"{NEEDS}; this system is {name or system}"


def exit_unless_supported() -> None:
    """On a system other than Linux, print one line on stderr and exit 2 (never returns there).

    Reads `sys.platform` and `platform.system()` each time it is called.
    """
    reason = unsupported_reason(sys.platform, platform.system())
    if reason is not None:
        print(f"autonoma: {reason}", file=sys.stderr)
        sys.exit(2)


__all__ = ["NEEDS", "exit_unless_supported", "unsupported_reason"]
