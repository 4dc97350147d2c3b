"""The CEO's plan: its model, the check of the CEO's answer, and the forms it is passed on in.

`parse_plan` reads the ``structured_output`` of the CEO's turn, checked against the
CEO role's schema (`autonoma.workflow.answers`). It never stops at the first problem:
every one is listed in a `PlanError`, because the list goes back to the agent, which
can then fix them all in one turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from autonoma.agents.roles import load_role
from autonoma.workflow.answers import AnswerError, decode


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


class PlanError(AnswerError):
    """The CEO's answer is not a usable plan."""


def role_schema(role: str) -> dict[str, Any] | None:
    """The packaged role's schema: the rule when no project role is at hand."""
    return load_role(role).schema


def parse_plan(obj: object, schema: Mapping[str, Any] | None = None) -> Plan:
    """The plan in the CEO's structured output; raises `PlanError` listing every problem.

    ``schema`` is the CEO role's (the packaged one's when None): the shape is checked
    against it; duplicate milestone ids, which it cannot express, here.
    """
    plan = decode(obj, role_schema("ceo") if schema is None else schema, Plan, "plan", PlanError)
    errors: list[str] = []
    seen: dict[str, int] = {}
    for index, milestone in enumerate(plan.milestones):
        first = seen.get(milestone.id)
        if first is not None:
            errors.append(
                f"milestones[{index}].id: duplicate id {milestone.id}"
                f" (milestones[{first}] has it too)"
            )
        else:
            seen[milestone.id] = index
    if errors:
        raise PlanError(errors)
    return plan


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
