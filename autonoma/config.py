"""Settings: ``AUTONOMA_*`` environment variables, then ``.autonoma/config.toml``, then defaults.

Every option is declared once in `OPTIONS`; the loader, the commented ``config.toml``
that ``autonoma init`` writes and the README's table all come from it.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from autonoma import inputfile


class ConfigError(Exception):
    """A setting is invalid; the message is one line naming the variable or file."""


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one Autonoma process."""

    claude_model: str = "opus"
    fallback_model: str = "sonnet"
    user_claude_config: bool = False
    max_workers: int = 5
    max_retries: int = 3
    task_timeout: float = 3600.0
    turn_idle_timeout: float = 600.0
    test_timeout: float = 1800.0
    dangerously_skip_permissions: bool = False
    sandbox: bool = True
    agent_network: str = "registries"
    agent_domains: str = ""
    restart_intensity: int = 3
    restart_period: float = 60.0
    journal_batch_size: int = 256
    journal_batch_ms: float = 20.0
    claude_path: str = ""
    budget_usd: float = 0.0
    task_budget_usd: float = 0.0
    setup_command: str = ""
    test_command: str = ""
    agent_env: str = ""
    gateway: bool = True
    crew_backoff: bool = True
    agent_api_retries: int = 8
    cluster: str = ""
    prestart_agents: bool = True


@dataclass(frozen=True)
class Option:
    """One setting: its TOML key, its kind, its bounds and what it means."""

    key: str
    kind: type
    doc: str
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    """The upper bound (inclusive); a float is always finite besides."""
    word: bool = False
    """A str that must be one word (no spaces); with ``optional``, "" is allowed too."""
    optional: bool = False
    names: bool = False
    """A str that is a comma-separated list of environment variable names ("" for none)."""
    choices: tuple[str, ...] = ()
    """A str that must be one of these."""
    domains: bool = False
    """A str that is a comma-separated list of host names ("" for none)."""

    @property
    def env(self) -> str:
        """The environment variable that sets it."""
        return "AUTONOMA_" + self.key.upper()

    @property
    def default(self) -> Any:
        """Its default, from `Settings`."""
        return getattr(Settings(), self.key)


# Upper bounds: far above any real use, below what exhausts the machine (threads and
# memory per worker) or turns a limit off (a timeout of inf never fires).
MAX_WORKERS = 64
_WEEK = 7 * 24 * 3600.0

OPTIONS: tuple[Option, ...] = (
    Option(
        "claude_model",
        str,
        "Model every agent uses unless its role file names another: an alias "
        "(opus, sonnet, haiku) or a full model id.",
        word=True,
    ),
    Option(
        "fallback_model",
        str,
        "Model claude switches to when the main one is overloaded, as --fallback-model "
        '("" or "none": none).',
        word=True,
        optional=True,
    ),
    Option(
        "user_claude_config",
        bool,
        "Let agents load your own Claude settings (~/.claude: hooks, MCP servers, CLAUDE.md); "
        "off: only the project's .claude settings and CLAUDE.md apply.",
    ),
    Option("max_workers", int, "Developer agents working at once.", minimum=1, maximum=MAX_WORKERS),
    Option(
        "max_retries",
        int,
        "Attempts after the first before a task is escalated.",
        minimum=0,
        maximum=100,
    ),
    Option(
        "task_timeout",
        float,
        "Seconds one agent turn may run in all before its process group is stopped "
        "(a role file's `timeout` wins).",
        minimum=0,
        exclusive_minimum=True,
        maximum=_WEEK,
    ),
    Option(
        "turn_idle_timeout",
        float,
        "Seconds an agent turn may go without a line of output before its process group "
        "is stopped (a role file's `idle_timeout` wins).",
        minimum=0,
        exclusive_minimum=True,
        maximum=_WEEK,
    ),
    Option(
        "dangerously_skip_permissions",
        bool,
        "Pass --dangerously-skip-permissions to claude (off: explicit allowed tools).",
    ),
    Option(
        "sandbox",
        bool,
        "Run every agent's Bash in claude's own sandbox (bubblewrap and socat on Linux): "
        "writes only in the turn's folder and its temp folder, no network but what "
        "agent_network and agent_domains allow, your secret dotfiles unreadable. false: "
        "the explicit opt-out, said at every start (docs/sandbox.md).",
    ),
    Option(
        "agent_network",
        str,
        'What developers\' sandboxed Bash may reach: "registries" (PyPI, npm, to install '
        'packages) or "none". Other roles never reach the network.',
        choices=("registries", "none"),
    ),
    Option(
        "agent_domains",
        str,
        "Comma-separated host names developers' and QA's sandboxed Bash may reach too "
        '(e.g. "github.com,*.example.org").',
        domains=True,
    ),
    Option(
        "restart_intensity",
        int,
        "Restarts a supervisor allows within the period.",
        minimum=0,
        maximum=1000,
    ),
    Option(
        "restart_period",
        float,
        "Seconds of the sliding window restarts are counted in.",
        minimum=0,
        exclusive_minimum=True,
        maximum=_WEEK,
    ),
    Option(
        "journal_batch_size",
        int,
        "Messages per journal group commit, at most.",
        minimum=1,
        maximum=100_000,
    ),
    Option(
        "journal_batch_ms",
        float,
        "Milliseconds a journal batch may wait before it is committed.",
        minimum=0,
        exclusive_minimum=True,
        maximum=1000,
    ),
    Option(
        "claude_path", str, "The claude executable (empty: the project-local install, then PATH)."
    ),
    Option(
        "budget_usd",
        float,
        "Cost cap of a whole run in USD (0: no cap).",
        minimum=0,
        maximum=1_000_000,
    ),
    Option(
        "task_budget_usd",
        float,
        "Cost cap of one task in USD over all its turns; each turn gets what is left "
        "as --max-budget-usd (0: no cap).",
        minimum=0,
        maximum=1_000_000,
    ),
    Option(
        "setup_command",
        str,
        "Shell command that installs the project's dependencies in each new worktree "
        '(empty: the Staff Engineer\'s; "none": no set-up).',
    ),
    Option(
        "test_command",
        str,
        "Shell command that runs the project's tests: QA runs it, and the merge gate on "
        'every merged result (empty: the Staff Engineer\'s; "none": merge without tests).',
    ),
    Option(
        "agent_env",
        str,
        "Comma-separated names of your environment variables that agents and the "
        "set-up and test commands also get in a real run, beside what claude needs to "
        'reach the model (e.g. "NPM_TOKEN,PIP_INDEX_URL"); every other variable of '
        "yours is withheld.",
        names=True,
    ),
    Option(
        "test_timeout",
        float,
        "Seconds the merge gate's tests, or one set-up command, may run.",
        minimum=0,
        exclusive_minimum=True,
        maximum=_WEEK,
    ),
    Option(
        "gateway",
        bool,
        "Run the gateway (the web view and its websocket feed, on 127.0.0.1) inside "
        "`autonoma start`; its address and token go to .autonoma/gateway.json "
        "(docs/gateway.md).",
    ),
    Option(
        "crew_backoff",
        bool,
        "One backoff for the whole crew: during a storm of rate limits (429/529) an agent "
        "refused waits frozen (SIGSTOP) instead of retrying, one of them probes the API "
        "every few seconds, all resume at once when a request goes through, and fewer agents "
        "work at once after it (halved, then one more per request that goes through, up to "
        "max_workers). Off: claude's own retries.",
    ),
    Option(
        "agent_api_retries",
        int,
        "With crew_backoff: how many times claude retries a failed API request "
        "(CLAUDE_CODE_MAX_RETRIES; the crew's backoff paces them: each is a probe) before "
        "its turn ends and waits for the crew's backoff.",
        minimum=0,
        maximum=10,
    ),
    Option(
        "cluster",
        str,
        "Run developer and QA agents as actors on a Ray cluster (docs/scale-out.md): "
        '"auto" joins the cluster running on this machine, or a Ray address '
        "(host:6379, ray://host:10001); empty: every agent on this machine, Ray never "
        "imported. Needs `pip install 'autonoma[ray]'`.",
        word=True,
        optional=True,
    ),
    Option(
        "prestart_agents",
        bool,
        "Start QA's claude while the developer's turn ends, before its prompt is ready "
        "(it waits for it on its stdin), so that claude's start-up (a second or more) is "
        "not added to every task. Off: each turn's claude starts when its prompt is ready.",
    ),
)

_BY_KEY = {option.key: option for option in OPTIONS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

assert {f.name for f in fields(Settings)} == set(_BY_KEY), "OPTIONS and Settings disagree"


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _describe(option: Option) -> str:
    if option.kind is bool:
        return "true or false"
    if option.names:
        return 'comma-separated variable names (e.g. "FOO,BAR")'
    if option.choices:
        return " or ".join(f'"{c}"' for c in option.choices)
    if option.domains:
        return 'comma-separated host names (e.g. "github.com,*.example.org")'
    if option.word:
        return "one word (a model alias or id)" + (' or ""' if option.optional else "")
    noun = "a whole number" if option.kind is int else "a number"
    if option.minimum is None:
        return noun if option.kind is not str else "text"
    bound = f"> {option.minimum:g}" if option.exclusive_minimum else f">= {option.minimum:g}"
    top = "" if option.maximum is None else f" and <= {_number(option.maximum)}"
    return f"{noun} {bound}{top}"


def _number(value: float) -> str:
    """A bound as a reader writes it: 1000000, not 1e+06."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _check_bound(option: Option, value: float) -> bool:
    # NaN fails every comparison but would pass a "not below" test; inf is no bound.
    if not math.isfinite(value):
        return False
    if option.maximum is not None and value > option.maximum:
        return False
    if option.minimum is None:
        return True
    return value > option.minimum if option.exclusive_minimum else value >= option.minimum


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def variable_names(text: str) -> tuple[str, ...]:
    """The names in a comma-separated list (``agent_env``); raises ValueError on a bad one."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return names


_DOMAIN = re.compile(
    r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def domain_names(text: str) -> tuple[str, ...]:
    """The host names in a comma-separated list (``agent_domains``); ValueError on a bad one."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    for name in names:
        if len(name) > 253 or not _DOMAIN.fullmatch(name):
            raise ValueError(f"{name!r} is not a host name")
    return names


def _word(option: Option, text: str) -> str | None:
    """``text``, unless the option takes one word and it is not one."""
    if option.choices:
        return text if text in option.choices else None
    if option.domains:
        try:
            return ",".join(domain_names(text))
        except ValueError:
            return None
    if option.names:
        try:
            return ",".join(variable_names(text))
        except ValueError:
            return None
    if not option.word:
        return text
    if not text:
        return text if option.optional else None
    # A leading "-" would read as another option on claude's command line.
    return None if any(c.isspace() for c in text) or text.startswith("-") else text


def _from_text(option: Option, text: str) -> Any:
    """Parse an environment variable's text; None when it does not fit."""
    text = text.strip()
    if option.kind is str:
        return _word(option, text)
    if option.kind is bool:
        low = text.lower()
        return True if low in _TRUE else False if low in _FALSE else None
    try:
        value: float = int(text) if option.kind is int else float(text)
    except ValueError:
        return None
    return value if _check_bound(option, value) else None


def _from_toml(option: Option, value: Any) -> Any:
    """Check a TOML value's type and bound; None when it does not fit."""
    if option.kind is str:
        if type(value) is not str:
            return None
        special = option.word or option.names or option.choices or option.domains
        return _word(option, value.strip()) if special else value
    if option.kind is bool:
        return value if type(value) is option.kind else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if option.kind is int and not isinstance(value, int):
        return None
    return option.kind(value) if _check_bound(option, value) else None


def read_toml(path: Path) -> dict[str, Any]:
    """The settings in a config.toml (empty when there is none), checked key by key."""
    try:
        text = inputfile.read_text(path, "config")
    except FileNotFoundError:
        return {}
    except inputfile.InputFileError as err:
        raise ConfigError(str(err)) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deep") from None
    values: dict[str, Any] = {}
    for key, value in table.items():
        option = _BY_KEY.get(key)
        if option is None:
            raise ConfigError(f"{path}: unknown key '{key}'{_suggest(key, list(_BY_KEY))}")
        parsed = _from_toml(option, value)
        if parsed is None:
            raise ConfigError(f"{path}: '{key}' = {value!r} must be {_describe(option)}")
        values[key] = parsed
    return values


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``AUTONOMA_*`` variables; an empty variable counts as unset."""
    by_env = {option.env: option for option in OPTIONS}
    values: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith("AUTONOMA_") or name in _INTERNAL_VARIABLES:
            continue
        option = by_env.get(name)
        if option is None:
            raise ConfigError(f"unknown variable {name}{_suggest(name, list(by_env))}")
        if not text.strip():
            continue
        parsed = _from_text(option, text)
        if parsed is None:
            raise ConfigError(f"{name}={text!r}: must be {_describe(option)}")
        values[option.key] = parsed
    return values


# Variables Autonoma sets for its own children; they are not settings.
_INTERNAL_VARIABLES: frozenset[str] = frozenset()


def config_path(project_root: Path) -> Path:
    """Where a project's config.toml lives."""
    return project_root / ".autonoma" / "config.toml"


def load_settings(
    project_root: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the environment, then the project's config.toml, then defaults."""
    merged: dict[str, Any] = {}
    if project_root is not None:
        merged.update(read_toml(config_path(project_root)))
    merged.update(read_environment(os.environ if environ is None else environ))
    return Settings(**merged)


def setting_source(
    key: str, project_root: Path | None, environ: Mapping[str, str] | None = None
) -> str:
    """Where setting ``key`` comes from, for messages: its variable, config.toml, or defaults."""
    environ = os.environ if environ is None else environ
    option = _BY_KEY[key]
    if environ.get(option.env, "").strip():
        return option.env
    if project_root is not None:
        path = config_path(project_root)
        try:
            if key in read_toml(path):
                return str(path)
        except ConfigError:
            return str(path)
    return "the defaults"


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def commented_defaults() -> str:
    """The text of a config.toml that lists every option, commented out, at its default."""
    lines = [
        "# Autonoma settings for this project. Uncomment a line to change it.",
        "# Environment variables (AUTONOMA_<KEY in upper case>) win over this file.",
        "",
    ]
    for option in OPTIONS:
        lines.append(
            f"# {option.doc}"
            + ("" if option.maximum is None else f" At most {_number(option.maximum)}.")
        )
        lines.append(f"# {option.key} = {_toml_literal(option.default)}")
        lines.append("")
    return "\n".join(lines)


def markdown_table() -> str:
    """The configuration table of README.md."""
    rows = ["| Variable | config.toml key | Default | Meaning |", "| --- | --- | --- | --- |"]
    for option in OPTIONS:
        default = _toml_literal(option.default)
        doc = option.doc + (
            "" if option.maximum is None else f" At most {_number(option.maximum)}."
        )
        rows.append(f"| `{option.env}` | `{option.key}` | `{default}` | {doc} |")
    return "\n".join(rows)
