"""Agents' structured answers: checked against the role's own schema, then typed.

The role file's ``schema`` is the one rule for an answer's shape: claude is given it
(``--json-schema``) and checks the answer with it, and Autonoma checks what it gets
back with the same schema (JSON Schema Draft 2020-12, the ``jsonschema`` library)
before decoding it into a `msgspec.Struct`. What a schema cannot say (unknown deps,
cycles, duplicate ids) is checked after, in `autonoma.workflow.dag` and `.plan`.

Every problem is one line naming the field path (``tasks[0].id: ...``), because the
list goes back to the agent, which fixes them all in one turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import jsonschema
import msgspec

from autonoma.protocol import AgentTurnFinished, DeveloperReport

T = TypeVar("T")


class AnswerError(Exception):
    """An agent's structured answer cannot be used; ``errors`` lists every problem, one line each.

    The errors go back to the agent as they are, so each names what to fix.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """QA's verdict, as actors/qa.md's schema describes it."""

    verdict: Literal["approve", "changes_requested"]
    reasons: list[str] = []
    test_command: str = ""
    test_output_summary: str = ""


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """A developer's summary of its turn, as actors/developer.md's schema describes it."""

    summary: str
    changes: list[str] = []
    tests: str = ""
    left: list[str] = []


def type_name(value: object) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def field_path(path: Any) -> str:
    """``tasks[0].id`` for the path ``("tasks", 0, "id")``; ``""`` for the top level."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(value: object) -> str:
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:59] + "…"


def _line(error: jsonschema.ValidationError, what: str) -> str:
    """One readable line for one schema error, naming the field path (or ``the {what}``)."""
    where = field_path(error.absolute_path) or f"the {what}"
    at = f"{where}: "
    value: Any = error.instance
    rule: Any = error.validator_value
    kind = error.validator
    schema: Any = error.schema
    if kind == "required":
        # One error per missing name, which only its message gives: "'x' is a required ..."
        name = error.message.partition(" is a required")[0].strip("'\"")
        return f'{at}missing field "{name}"'
    if kind == "type":
        wanted = " or ".join(rule) if isinstance(rule, list) else str(rule)
        return f"{at}expected {wanted}, got {type_name(value)}"
    if kind == "minItems" and isinstance(value, list) and not value:
        return f"{where} is empty: at least {rule} item{'' if rule == 1 else 's'} needed"
    if kind in ("minLength", "pattern") and isinstance(value, str) and not value.strip():
        return f"{where} is empty"
    if kind == "pattern":
        return f"{at}{_shown(value)} does not match the pattern {rule}"
    if kind == "enum":
        return f"{at}{_shown(value)} is not one of {', '.join(_shown(v) for v in rule)}"
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = schema.get("properties", {}) if isinstance(schema, dict) else {}
        extra = [k for k in value if k not in allowed]
        return f'{at}unexpected field "{extra[0] if extra else "?"}"'
    return f"{at}{error.message}"


def _position(answer: object, path: Any) -> list[int]:
    """Where a path leads in ``answer``: the index of each key or item on the way."""
    where: list[int] = []
    node = answer
    for part in path:
        if isinstance(node, dict) and part in node:
            where.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            where.append(part)
            node = node[part]
        else:
            where.append(1 << 30)
            break
    return where


def schema_errors(schema: Mapping[str, Any], answer: object, what: str = "answer") -> list[str]:
    """Every way ``answer`` breaks ``schema``, one line each, in the answer's order."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(answer),
        key=lambda e: (_position(answer, e.absolute_path), str(e.validator)),
    )
    lines: list[str] = []
    for error in errors:
        line = _line(error, what)
        if line not in lines:
            lines.append(line)
    return lines


def decode(
    answer: object,
    schema: Mapping[str, Any] | None,
    typ: type[T],
    what: str,
    error: type[AnswerError] = AnswerError,
) -> T:
    """``answer`` checked against ``schema`` (when the role has one), then as a ``typ``.

    Raises ``error`` with every problem, one line each.
    """
    if answer is None:
        raise error([f"no structured output: expected the {what} as an object"])
    problems = [] if schema is None else schema_errors(schema, answer, what)
    if problems:
        raise error(problems)
    try:
        return msgspec.convert(answer, typ)
    except msgspec.ValidationError as exc:
        # The role's schema lets through what the type cannot hold (a project override).
        message, _, at = str(exc).partition(" - at `")
        path = at.rstrip("`").removeprefix("$").lstrip(".")
        raise error([f"{path + ': ' if path else ''}{message}"]) from None


def verdict_of(finished: AgentTurnFinished | None, schema: Mapping[str, Any] | None) -> Verdict:
    """QA's verdict from its turn's structured output; `AnswerError` when there is none usable."""
    return decode(
        None if finished is None else finished.structured_output, schema, Verdict, "verdict"
    )


def developer_report(
    finished: AgentTurnFinished, schema: Mapping[str, Any] | None, *, task_id: str, agent_id: str
) -> DeveloperReport:
    """What the developer said at the end of its turn.

    Its structured summary when claude gave one that fits the schema; else (the model
    ignored claude's nudge, or the role has no schema) the turn's result text.
    """
    try:
        summary = decode(finished.structured_output, schema, Summary, "summary")
    except AnswerError:
        text = finished.result.strip()
        if not text and finished.structured_output is not None:
            text = msgspec.json.encode(finished.structured_output).decode()
        return DeveloperReport(task_id=task_id, agent_id=agent_id, summary=text)
    return DeveloperReport(
        task_id=task_id,
        agent_id=agent_id,
        summary=summary.summary,
        changes=list(summary.changes),
        tests=summary.tests,
        left=list(summary.left),
        structured=True,
    )


__all__ = [
    "AnswerError",
    "Summary",
    "Verdict",
    "decode",
    "developer_report",
    "field_path",
    "schema_errors",
    "type_name",
    "verdict_of",
]
