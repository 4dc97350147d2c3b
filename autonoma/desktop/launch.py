"""``autonoma dashboard --web``: find the project's gateway, or start one, and open the browser.

The gateway named by ``.autonoma/gateway.json`` is used when it is live (``autonoma serve``,
or the one inside an active ``autonoma start``). Otherwise ``autonoma serve`` is started in
a session of its own (it outlives the terminal; its output goes to
``.autonoma/logs/serve-*.log``) and waited for. The browser is opened with `webbrowser`
only where one can show a page: a graphical session (``DISPLAY`` or ``WAYLAND_DISPLAY``),
macOS, or ``BROWSER`` set; never a text browser taking over the terminal. The URL is
printed either way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import webbrowser
from dataclasses import dataclass

from autonoma.desktop import info
from autonoma.project import Project

START_TIMEOUT = 30.0
"""Seconds to wait for a background ``autonoma serve`` to listen."""


class LaunchError(Exception):
    """The gateway could not be started; one line."""


@dataclass(frozen=True)
class Found:
    """The gateway to open, and whether it was started now (its pid then)."""

    info: info.GatewayInfo
    started: int | None


def find_or_start(project: Project, timeout: float = START_TIMEOUT) -> Found:
    """The project's live gateway, or a new ``autonoma serve`` in the background.

    Blocks until it listens (at most ``timeout`` s). Raises `LaunchError` with the
    server's own one-line error if it exits first, or on timeout.
    """
    path = info.path_in(project.dir)
    running = info.live(path)
    if running is not None:
        return Found(running, None)
    project.logs.mkdir(parents=True, exist_ok=True)
    log = project.logs / time.strftime("serve-%Y%m%d-%H%M%S.log")
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "autonoma", "serve"],
            cwd=project.root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = info.read(path)
        if found is not None and found.pid == child.pid and info.live(path) is not None:
            return Found(found, child.pid)
        code = child.poll()
        if code is not None:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            said = lines[-1].removeprefix("autonoma: ") if lines else f"exit code {code}"
            raise LaunchError(f"autonoma serve did not start: {said} (its log: {log})")
        time.sleep(0.05)
    child.terminate()
    raise LaunchError(f"autonoma serve did not listen within {timeout:.0f} s (its log: {log})")


def can_show_pages(environ: dict[str, str] | None = None, platform: str = sys.platform) -> bool:
    """Whether a graphical browser can be opened here (pure: from the environment)."""
    env = os.environ if environ is None else environ
    if env.get("BROWSER"):
        return True
    if platform in ("darwin", "win32"):
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def open_browser(url: str) -> bool:
    """Open ``url`` in the user's browser; False where there is none to open."""
    if not can_show_pages():
        return False
    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False
