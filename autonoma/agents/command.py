"""The argv of one ``claude`` turn, from the role, the prompt and the settings."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from autonoma.agents.roles import Role
from autonoma.config import Settings

# One argv string may not exceed MAX_ARG_STRLEN (32 pages: 128 KiB) on Linux.
MAX_PROMPT_BYTES = 120_000


class CommandError(Exception):
    """A turn cannot be started as asked; the message is one line saying what to do."""


# Where claude reads settings (hooks, permissions, env, CLAUDE.md) from when the
# user's own configuration is left out: the project's .claude/settings.json and
# .claude/settings.local.json and its CLAUDE.md files, not ~/.claude (user hooks,
# ~/.claude/CLAUDE.md, plugins). Managed (policy) settings always apply.
PROJECT_SETTING_SOURCES = "project,local"


def isolation_args(settings: Settings) -> list[str]:
    """The options that keep the user's own Claude configuration out of an agent.

    Without ``user_claude_config``: ``--setting-sources project,local`` (no user
    hooks, settings or ``~/.claude/CLAUDE.md``) and ``--strict-mcp-config`` with no
    ``--mcp-config`` (no MCP server starts: the roles' allowed tools name none, so
    a server would only run someone's command for tools an agent may not call).
    They are global options: they go before a subcommand such as ``auth status``.
    """
    if settings.user_claude_config:
        return []
    return ["--setting-sources", PROJECT_SETTING_SOURCES, "--strict-mcp-config"]


def fallback_args(model: str, settings: Settings) -> list[str]:
    """``--fallback-model`` unless none is set or it is the main model itself."""
    fallback = settings.fallback_model
    if not fallback or fallback == "none" or fallback == model:
        return []
    return ["--fallback-model", fallback]


def role_line(role: str, task_id: str | None) -> str:
    """The ``--append-system-prompt`` line the simulated model tells requests apart by."""
    return f"ROLE: {role}" if task_id is None else f"ROLE: {role} TASK: {task_id}"


def root_bypass_problem(
    role: Role, settings: Settings, env: Mapping[str, str], euid: int
) -> str | None:
    """Why claude would refuse this role's permissions for user ``euid``, or None.

    claude refuses to skip permission checks as root unless IS_SANDBOX=1 is set; the
    run checks this at start, so that it is one line, not a failed turn per agent.
    """
    skip = settings.dangerously_skip_permissions
    bypass = skip or role.permission_mode == "bypassPermissions"
    if not bypass or euid != 0 or env.get("IS_SANDBOX") == "1":
        return None
    what = (
        "--dangerously-skip-permissions"
        if skip
        else f"permission_mode bypassPermissions (role file {role.path})"
    )
    return (
        f"claude refuses {what} when run as root: set IS_SANDBOX=1 if this is a "
        "disposable sandbox, or turn it off (unset AUTONOMA_DANGEROUSLY_SKIP_PERMISSIONS; "
        "roles then run with their permission_mode and allowed tools)"
    )


def check_prompt(role: Role, prompt: str) -> None:
    """`CommandError` when ``prompt`` cannot be given to claude (a NUL, or too long)."""
    if "\0" in prompt:
        raise CommandError(f"the prompt of role {role.name} contains a NUL character")
    if len(prompt.encode("utf-8")) > MAX_PROMPT_BYTES:
        raise CommandError(
            f"the prompt of role {role.name} is over {MAX_PROMPT_BYTES} bytes, "
            "more than one command-line argument may hold: shorten what it includes"
        )


def stream_message(prompt: str) -> bytes:
    """The one stdin line (``--input-format stream-json``) that gives ``prompt`` as the
    user's message, as the ``-p`` argument would."""
    message = {"type": "user", "message": {"role": "user", "content": prompt}}
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def build_argv(
    claude: Path,
    role: Role,
    prompt: str | None,
    *,
    session_id: str,
    resume: bool,
    settings: Settings,
    task_id: str | None = None,
    child_env: Mapping[str, str] | None = None,
    budget_usd: float | None = None,
) -> list[str]:
    """The argv of one turn: ``--session-id`` for a first turn, ``--resume`` for a follow-up.

    ``child_env`` is the environment the process will get (``IS_SANDBOX`` is read
    from it); None means this process's own. ``budget_usd`` is this turn's
    ``--max-budget-usd`` (what is left of the task's budget); None means
    ``settings.task_budget_usd`` (0: no cap). claude compares it with this
    invocation's own cost, not the resumed session's running total (checked with
    2.1.331), so what is left is passed as it is.

    ``prompt`` None: the turn is started before its prompt is known (a pre-started
    process): ``--input-format stream-json`` and no prompt argument; the prompt is then
    written to its stdin as `stream_message` (and stdin closed). Everything else is the
    same argv.
    """
    env = os.environ if child_env is None else child_env
    try:
        uuid.UUID(session_id)
    except ValueError:
        raise CommandError(f"session id {session_id!r} is not a UUID") from None
    for label, value in (("role", role.name), ("task id", task_id or "x")):
        if not value or any(c.isspace() for c in value):
            raise CommandError(f"{label} {value!r} must be one word (no spaces or newlines)")
    if prompt is not None:
        check_prompt(role, prompt)

    problem = root_bypass_problem(role, settings, env, os.geteuid())
    if problem is not None:
        raise CommandError(problem)
    skip = settings.dangerously_skip_permissions

    argv = [str(claude), "-p", "--output-format", "stream-json", "--verbose"]
    if prompt is None:
        argv += ["--input-format", "stream-json"]
    argv += ["--resume", session_id] if resume else ["--session-id", session_id]
    model = role.model_for(settings)
    for label, value in (("model", model), ("fallback model", settings.fallback_model or "x")):
        if any(c.isspace() for c in value) or value.startswith("-"):
            raise CommandError(f"{label} {value!r} must be one word (a model alias or id)")
    argv += ["--model", model, *fallback_args(model, settings)]
    argv += isolation_args(settings)
    if skip:
        argv.append("--dangerously-skip-permissions")
    else:
        argv += ["--permission-mode", role.permission_mode]
    argv += ["--max-turns", str(role.max_turns)]
    if role.schema is not None:
        argv += ["--json-schema", json.dumps(role.schema, separators=(",", ":"))]
    argv += ["--append-system-prompt", role_line(role.name, task_id)]
    budget = settings.task_budget_usd if budget_usd is None else budget_usd
    if budget > 0:
        argv += ["--max-budget-usd", repr(round(float(budget), 4))]
    # --allowedTools takes several values, so it comes last among the options,
    # and "--" ends them: a prompt that starts with "-" stays the prompt.
    argv += ["--allowedTools", *role.allowed_tools]
    if prompt is not None:
        argv += ["--", prompt]
    return argv
