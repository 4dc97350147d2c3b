"""Checking that ``claude`` is authenticated, before any agent is started."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from autonoma.agents.port import CLAUDE_NOT_FOUND, ExecutableNotFound, resolve_executable

NOT_AUTHENTICATED = "claude is not authenticated: set ANTHROPIC_API_KEY or run `claude /login`"
ONLY_USER_CONFIG = (
    "claude is logged in only through your own Claude settings (~/.claude/settings.json: "
    "apiKeyHelper or env), which agents do not load: set ANTHROPIC_API_KEY, or let them "
    "load it with user_claude_config = true in .autonoma/config.toml "
    "(AUTONOMA_USER_CLAUDE_CONFIG=1)"
)
AUTH_TIMEOUT = 30.0


class AuthError(Exception):
    """``claude`` is missing or not authenticated; the message is one line."""


def check_auth(
    claude: Path,
    env: Mapping[str, str],
    timeout: float = AUTH_TIMEOUT,
    *,
    options: Sequence[str] = (),
) -> None:
    """Run ``claude [options] auth status`` with ``env``; raise `AuthError` unless logged in.

    ``options`` are the global options the agents' turns get (`isolation_args`), so
    that the check sees the settings the turns will see. When it fails with them and
    passes without, the error says the login lives in the user's own settings.
    Blocks for up to ``timeout`` seconds per ``claude`` run (two at most).
    """
    try:
        executable = resolve_executable(str(claude), Path.cwd(), env)
    except ExecutableNotFound:
        raise AuthError(CLAUDE_NOT_FOUND) from None
    if _logged_in(executable, env, timeout, options):
        return
    if options and _logged_in(executable, env, timeout, ()):
        raise AuthError(ONLY_USER_CONFIG)
    raise AuthError(NOT_AUTHENTICATED)


def _logged_in(
    executable: str, env: Mapping[str, str], timeout: float, options: Sequence[str]
) -> bool:
    try:
        proc = subprocess.run(
            [executable, *options, "auth", "status"],
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
    return isinstance(status, dict) and status.get("loggedIn") is True


__all__ = ["NOT_AUTHENTICATED", "ONLY_USER_CONFIG", "AuthError", "check_auth"]
