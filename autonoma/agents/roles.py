"""Agent roles as data: ``autonoma/actors/<role>.md``, front matter plus a prompt template.

A role file starts with TOML front matter between two ``+++`` lines (as in Hugo),
then the prompt template, a `string.Template` (``$task_id``, ``${spec}``, ``$$``)::

    +++
    description = "Implements one task in its own worktree"
    allowed_tools = ["Read", "Write", "Edit", "Bash"]
    max_turns = 60
    # optional: model (an alias such as "opus", "sonnet", "haiku", or a model id;
    # default: the claude_model setting), permission_mode (default "default": only the
    # allowed tools, the file tools scoped to the turn's folder),
    # timeout (seconds of wall clock per turn), idle_timeout (seconds without output),
    # schema (a JSON object schema: a TOML table, or a JSON string)
    +++
    You are ...

A project overrides a packaged role with ``.autonoma/actors/<role>.md``. Any problem
with a role file is a `RoleError` whose message is one line naming the file.
"""

from __future__ import annotations

import json
import math
import re
import string
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from autonoma import inputfile
from autonoma.config import Settings
from autonoma.resources import packaged

# The packaged roles: package data, so a wheel has them (pyproject.toml's package-data).
PACKAGED_ACTORS = packaged("actors")

ROLE_NAMES: tuple[str, ...] = ("ceo", "staff_engineer", "developer", "qa")

PERMISSION_MODES: frozenset[str] = frozenset(
    {"acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "manual", "plan"}
)

_FENCE = "+++"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOOL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\(.*\))?$")  # Bash, or a rule like Bash(git:*)
_KEYS = (
    "model",
    "allowed_tools",
    "permission_mode",
    "max_turns",
    "timeout",
    "idle_timeout",
    "schema",
)
_KNOWN_KEYS = frozenset((*_KEYS, "description"))


class RoleError(Exception):
    """A role file is missing or invalid; the message is one line naming the file."""


@dataclass(frozen=True)
class Role:
    """One agent role, as its file defines it."""

    name: str
    path: Path
    description: str
    allowed_tools: tuple[str, ...]
    max_turns: int
    prompt: str
    permission_mode: str = "default"
    model: str | None = None
    timeout: float | None = None
    idle_timeout: float | None = None
    schema: dict[str, Any] | None = None

    def model_for(self, settings: Settings) -> str:
        """The model this role runs: its own, or the configured default."""
        return self.model or settings.claude_model

    def timeout_for(self, settings: Settings) -> float:
        """Seconds one turn of this role may run: its own, or the configured default."""
        return self.timeout if self.timeout is not None else settings.task_timeout

    def idle_timeout_for(self, settings: Settings) -> float:
        """Seconds one turn of this role may go without output: its own, or the default."""
        return self.idle_timeout if self.idle_timeout is not None else settings.turn_idle_timeout

    @property
    def placeholders(self) -> frozenset[str]:
        """The names the prompt template needs."""
        return frozenset(string.Template(self.prompt).get_identifiers())


def role_path(name: str, project_dir: Path | None) -> Path:
    """The file a role is read from: the project's override, else the packaged one."""
    if not _NAME.match(name):
        raise RoleError(f"role '{name}': not a role name (lower case letters, digits, _)")
    if project_dir is not None:
        override = project_dir / ".autonoma" / "actors" / f"{name}.md"
        if override.exists():
            return override
    return PACKAGED_ACTORS / f"{name}.md"


def load_role(name: str, project_dir: Path | None = None) -> Role:
    """The role ``name``: ``.autonoma/actors/<name>.md`` of the project over the packaged one."""
    path = role_path(name, project_dir)
    try:
        text = inputfile.read_text(path, "role")
    except FileNotFoundError:
        raise RoleError(f"{path}: no such role file (role '{name}')") from None
    except inputfile.InputFileError as err:
        raise RoleError(str(err)) from None
    return parse_role(name, path, text)


def parse_role(name: str, path: Path, text: str) -> Role:
    """A role from the text of its file; ``path`` names the file in errors (`RoleError`)."""
    try:
        return _parse_role(name, path, text)
    except RecursionError:
        # TOML front matter or a JSON schema nested thousands deep.
        raise RoleError(f"{path}: front matter or 'schema' nested too deep") from None


def _parse_role(name: str, path: Path, text: str) -> Role:

    def fail(problem: str) -> RoleError:
        return RoleError(f"{path}: {' '.join(problem.split())}")

    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != _FENCE:
        raise fail(f"must start with a '{_FENCE}' line (TOML front matter)")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == _FENCE), None)
    if end is None:
        raise fail(f"front matter has no closing '{_FENCE}' line")
    try:
        meta = tomllib.loads("".join(lines[1:end]))
    except tomllib.TOMLDecodeError as err:
        raise fail(f"invalid TOML front matter: {err}") from None
    prompt = "".join(lines[end + 1 :]).strip()
    if not prompt:
        raise fail("no prompt after the front matter")

    unknown = sorted(set(meta) - _KNOWN_KEYS)
    if unknown:
        raise fail(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(_KNOWN_KEYS))})")
    template = string.Template(prompt)
    if not template.is_valid():
        raise fail("prompt has an invalid placeholder (write $$ for a literal $)")

    return Role(
        name=name,
        path=path,
        description=_text(meta, "description", fail, required=False) or "",
        allowed_tools=_tools(meta, fail),
        max_turns=_max_turns(meta, fail),
        prompt=prompt + "\n",
        permission_mode=_permission_mode(meta, fail),
        model=_model(meta, fail),
        timeout=_timeout(meta, "timeout", fail),
        idle_timeout=_timeout(meta, "idle_timeout", fail),
        schema=_schema(meta, fail),
    )


def render(role: Role, **values: str) -> str:
    """The role's prompt with its placeholders filled; a missing one is a `RoleError`."""
    missing = sorted(role.placeholders - set(values))
    if missing:
        names = ", ".join(f"${m}" for m in missing)
        raise RoleError(f"{role.path}: the prompt needs {names}, which was not given")
    return string.Template(role.prompt).substitute(values)


# --- checking the front matter --------------------------------------------------

_Fail = Callable[[str], RoleError]  # the `fail` closure of parse_role


def _text(meta: dict[str, Any], key: str, fail: _Fail, *, required: bool) -> str | None:
    if key not in meta:
        if required:
            raise fail(f"missing key '{key}'")
        return None
    value = meta[key]
    if not isinstance(value, str) or not value.strip():
        raise fail(f"'{key}' must be a non-empty string")
    return value.strip()


def _model(meta: dict[str, Any], fail: _Fail) -> str | None:
    value = _text(meta, "model", fail, required=False)
    if value is not None and (any(c.isspace() for c in value) or value.startswith("-")):
        raise fail(
            f"'model' = {value!r} must be one word: an alias (opus, sonnet, haiku) or a model id"
        )
    return value


def _tools(meta: dict[str, Any], fail: _Fail) -> tuple[str, ...]:
    if "allowed_tools" not in meta:
        raise fail("missing key 'allowed_tools' (a list of tool names)")
    tools = meta["allowed_tools"]
    if not isinstance(tools, list) or not tools:
        raise fail("'allowed_tools' must be a non-empty list of tool names")
    for tool in tools:
        if not isinstance(tool, str) or not _TOOL.match(tool) or "," in tool:
            raise fail(f"'allowed_tools' has an invalid tool name {tool!r}")
    if len(set(tools)) != len(tools):
        raise fail("'allowed_tools' names a tool twice")
    return tuple(tools)


def _max_turns(meta: dict[str, Any], fail: _Fail) -> int:
    if "max_turns" not in meta:
        raise fail("missing key 'max_turns' (a whole number >= 1)")
    value = meta["max_turns"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(f"'max_turns' = {value!r} must be a whole number >= 1")
    return value


def _permission_mode(meta: dict[str, Any], fail: _Fail) -> str:
    value = meta.get("permission_mode", "default")
    if value not in PERMISSION_MODES:
        raise fail(
            f"'permission_mode' = {value!r} must be one of {', '.join(sorted(PERMISSION_MODES))}"
        )
    return str(value)


def _timeout(meta: dict[str, Any], key: str, fail: _Fail) -> float | None:
    if key not in meta:
        return None
    value = meta[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise fail(f"'{key}' = {value!r} must be a number of seconds > 0")
    return float(value)


def _schema(meta: dict[str, Any], fail: _Fail) -> dict[str, Any] | None:
    if "schema" not in meta:
        return None
    value = meta["schema"]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise fail(f"'schema' is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise fail("'schema' must be a JSON object schema (a TOML table or a JSON string)")
    try:
        # TOML dates and times have no JSON form; NaN and infinities neither.
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise fail(f"'schema' cannot be written as JSON: {err}") from None
    problem = _schema_problem(value, "schema")
    if problem:
        raise fail(f"invalid 'schema': {problem}")
    if value.get("type") != "object":
        raise fail('invalid \'schema\': the top level must have "type": "object"')
    try:
        # The answers are checked with it (Draft 2020-12), as claude checks them.
        jsonschema.Draft202012Validator.check_schema(value)
    except jsonschema.SchemaError as err:
        where = ".".join(str(p) for p in err.absolute_path)
        raise fail(f"invalid 'schema': {where + ': ' if where else ''}{err.message}") from None
    return value


_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})


def _schema_problem(node: Any, where: str) -> str | None:
    """A structural check of a JSON schema (the keywords Autonoma's roles use)."""
    if not isinstance(node, dict):
        return f"{where} must be an object"
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for k in kinds:
        if k not in _TYPES:
            return f"{where}.type {k!r} is not a JSON schema type"
    properties = node.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            return f"{where}.properties must be an object"
        for key, sub in properties.items():
            problem = _schema_problem(sub, f"{where}.properties.{key}")
            if problem:
                return problem
    required = node.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            return f"{where}.required must be a list of property names"
        absent = [r for r in required if r not in (properties or {})]
        if absent:
            return f"{where}.required names '{absent[0]}', which is not in properties"
    items = node.get("items")
    if items is not None:
        problem = _schema_problem(items, f"{where}.items")
        if problem:
            return problem
    enum = node.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        return f"{where}.enum must be a non-empty list"
    extra = node.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool | dict):
        return f"{where}.additionalProperties must be true, false or a schema"
    return None
