"""Checking that ``claude`` is authenticated, before any agent is started."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path

from autonoma.agents.port import CLAUDE_NOT_FOUND, ExecutableNotFound, resolve_executable

NOT_AUTHENTICATED = "claude is not authenticated: set ANTHROPIC_API_KEY or run `claude /login`"
AUTH_TIMEOUT = 30.0


class AuthError(Exception):
    """``claude`` is missing or not authenticated; the message is one line."""


def check_auth(claude: Path, env: Mapping[str, str], timeout: float = AUTH_TIMEOUT) -> None:
    """Run ``claude auth status`` with ``env``; raise `AuthError` unless it is logged in."""
    try:
        executable = resolve_executable(str(claude), Path.cwd(), env)
    except ExecutableNotFound:
        raise AuthError(CLAUDE_NOT_FOUND) from None
    try:
        proc = subprocess.run(
            [executable, "auth", "status"],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise AuthError(CLAUDE_NOT_FOUND) from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AuthError(f"`claude auth status` failed: {exc}") from None
    try:
        status = json.loads(proc.stdout)
    except ValueError:
        first = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
        detail = first[0] if first else f"exit code {proc.returncode}"
        raise AuthError(f"`claude auth status` did not answer JSON: {detail}") from None
    if not isinstance(status, dict) or status.get("loggedIn") is not True:
        raise AuthError(NOT_AUTHENTICATED)


__all__ = ["NOT_AUTHENTICATED", "AuthError", "check_auth"]
