"""The CEO's plan: its model, the check of the CEO's answer, and the forms it is passed on in.

`parse_plan` reads the ``structured_output`` of the CEO's turn. It never stops at the
first problem: every one is listed in a `PlanError`, because the list goes back to the
agent, which can then fix them all in one turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

# msgspec names Python types; the agent reading the error thinks in JSON's.
_JSON_NAMES = {"str": "string", "int": "number", "float": "number", "bool": "boolean"}
_EXPECTED = re.compile(r"Expected `(\w+)`, got `(\w+)`")


class Milestone(msgspec.Struct, frozen=True, kw_only=True):
    """A slice of the product the customer could try on its own."""

    id: str
    title: str
    goal: str
    acceptance: list[str]


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """The CEO's plan, as actors/ceo.md's schema describes it."""

    summary: str
    milestones: list[Milestone]
    assumptions: list[str] = []
    out_of_scope: list[str] = []


class AnswerError(Exception):
    """An agent's structured answer cannot be used; ``errors`` lists every problem, one line each.

    The errors go back to the agent as they are, so each names what to fix.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class PlanError(AnswerError):
    """The CEO's answer is not a usable plan."""


def type_error(where: str, value: object, typ: Any) -> str | None:
    """One readable line when ``value`` is not of type ``typ`` (``where`` names it), else None."""
    try:
        msgspec.convert(value, typ)
    except msgspec.ValidationError as exc:
        # msgspec says "Expected `str`, got `int` - at `$[1]`"; the path is relative to
        # the value, so it is glued to the name the reader knows.
        message, _, at = str(exc).partition(" - at `")
        path = at.rstrip("`").removeprefix("$")
        match = _EXPECTED.fullmatch(message)
        if match is not None:
            want, got = (_JSON_NAMES.get(name, name) for name in match.groups())
            message = f"expected {want}, got {got}"
        return f"{where}{path}: {message[:1].lower()}{message[1:]}"
    return None


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


def _blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def field_errors(label: str, item: dict[str, Any], fields: Iterable[tuple[str, Any]]) -> list[str]:
    """What is missing, mistyped or blank among ``fields`` of one object of an answer."""
    errors: list[str] = []
    for field, typ in fields:
        if field not in item:
            errors.append(f'{label}: missing field "{field}"')
            continue
        value = item[field]
        problem = type_error(f"{label}: {field}", value, typ)
        if problem is not None:
            errors.append(problem)
        elif _blank(value):
            errors.append(f"{label}: {field} is empty")
    return errors


def _milestone_errors(index: int, item: object) -> list[str]:
    label = f"milestones[{index}]"
    if not isinstance(item, dict):
        return [f"{label}: expected object, got {type_name(item)}"]
    mid = item.get("id")
    if isinstance(mid, str) and mid.strip():
        label = f"milestone {mid}"
    errors = field_errors(
        label, item, (("id", str), ("title", str), ("goal", str), ("acceptance", list[str]))
    )
    acceptance = item.get("acceptance")
    if isinstance(acceptance, list) and not acceptance:
        errors.append(f"{label}: acceptance is empty: give at least one checkable criterion")
    return errors


def parse_plan(obj: object) -> Plan:
    """The plan in the CEO's structured output; raises `PlanError` listing every problem."""
    if obj is None:
        raise PlanError(["no structured output: expected the plan as an object"])
    if not isinstance(obj, dict):
        raise PlanError([f"the plan must be an object, got {type_name(obj)}"])
    errors: list[str] = []
    if "summary" not in obj:
        errors.append('missing field "summary"')
    else:
        problem = type_error("summary", obj["summary"], str)
        if problem is not None:
            errors.append(problem)
        elif _blank(obj["summary"]):
            errors.append("summary is empty")
    for field in ("assumptions", "out_of_scope"):
        if field in obj:
            problem = type_error(field, obj[field], list[str])
            if problem is not None:
                errors.append(problem)
    milestones = obj.get("milestones")
    if "milestones" not in obj:
        errors.append('missing field "milestones": the plan needs at least one milestone')
    elif not isinstance(milestones, list):
        errors.append(f"milestones: expected array, got {type_name(milestones)}")
    elif not milestones:
        errors.append("milestones is empty: the plan needs at least one milestone")
    else:
        seen: dict[str, int] = {}
        for index, item in enumerate(milestones):
            errors.extend(_milestone_errors(index, item))
            mid = item.get("id") if isinstance(item, dict) else None
            if isinstance(mid, str) and mid.strip():
                if mid in seen:
                    errors.append(
                        f"duplicate milestone id {mid} (milestones[{seen[mid]}] and"
                        f" milestones[{index}])"
                    )
                else:
                    seen[mid] = index
    if errors:
        raise PlanError(errors)
    try:
        return msgspec.convert(obj, Plan)
    except msgspec.ValidationError as exc:  # pragma: no cover - the checks above cover it
        raise PlanError([str(exc)]) from exc


def _bullets(items: list[str]) -> list[str]:
    return [f"- {item}" for item in items] if items else ["- (none)"]


def plan_text(plan: Plan) -> str:
    """The plan as markdown, for the Staff Engineer's prompt."""
    lines = ["## Summary", "", plan.summary, "", "## Milestones"]
    for milestone in plan.milestones:
        lines += ["", f"### {milestone.id}: {milestone.title}", "", milestone.goal, ""]
        lines += ["Acceptance:", *_bullets(milestone.acceptance)]
    lines += ["", "## Assumptions", "", *_bullets(plan.assumptions)]
    lines += ["", "## Out of scope", "", *_bullets(plan.out_of_scope)]
    return "\n".join(lines) + "\n"


def plan_dict(plan: Plan) -> dict[str, Any]:
    """The plan as plain dicts and lists (the shape of the CEO's answer)."""
    result: dict[str, Any] = msgspec.to_builtins(plan)
    return result


def plan_json(plan: Plan) -> bytes:
    """The plan as pretty-printed JSON, for ``.autonoma/plan.json``."""
    return msgspec.json.format(msgspec.json.encode(plan), indent=2) + b"\n"
