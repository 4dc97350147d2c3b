"""A real terminal for the tests: a tmux server of their own, read with capture-pane."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class Terminal:
    """One tmux session (on a private socket) running one command in ``cwd``."""

    def __init__(
        self, argv: list[str], cwd: Path, env: dict[str, str], size: tuple[int, int] = (100, 30)
    ) -> None:
        self.socket = f"autonoma-test-{os.getpid()}-{time.monotonic_ns()}"
        self.name = "t"
        # The exit code is printed after the command, and the pane stays for reading it.
        script = f"cd {shlex.quote(str(cwd))} && {shlex.join(argv)}; echo EXIT=$?; sleep 600"
        self._tmux(
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            str(size[0]),
            "-y",
            str(size[1]),
            script,
            env={**env, "TERM": "xterm-256color"},
        )

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout

    def screen(self) -> str:
        """What the pane shows now (with what scrolled off its top)."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", self.name)

    def keys(self, *keys: str) -> None:
        """Type these keys (tmux key names)."""
        self._tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, seen: Callable[[str], bool], what: str, timeout: float = 120.0) -> str:
        """Poll the screen until ``seen`` holds; the screen then."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if seen(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"never saw {what} on the screen:\n{screen}")

    def close(self) -> None:
        """End the session and its server."""
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
