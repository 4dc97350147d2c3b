"""The CEO's plan: what parse_plan accepts, every problem it reports, and the forms it gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autonoma.workflow.plan import (
    Milestone,
    Plan,
    PlanError,
    parse_plan,
    plan_dict,
    plan_json,
    plan_text,
)


def milestone(mid: str = "m1", **fields: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "title": "Skeleton",
        "goal": "A package with one passing test.",
        "acceptance": ["`pytest` passes"],
        **fields,
    }


def answer(**fields: Any) -> dict[str, Any]:
    return {
        "summary": "A todo list CLI.",
        "milestones": [milestone("m1"), milestone("m2", title="Add items")],
        "assumptions": ["Python 3.11"],
        "out_of_scope": ["A web UI"],
        **fields,
    }


def errors_of(obj: object) -> list[str]:
    with pytest.raises(PlanError) as info:
        parse_plan(obj)
    return info.value.errors


def test_a_valid_answer_becomes_a_plan() -> None:
    plan = parse_plan(answer())
    assert plan.summary == "A todo list CLI."
    assert [m.id for m in plan.milestones] == ["m1", "m2"]
    assert plan.milestones[1] == Milestone(
        id="m2",
        title="Add items",
        goal="A package with one passing test.",
        acceptance=["`pytest` passes"],
    )
    assert plan.assumptions == ["Python 3.11"]
    assert plan.out_of_scope == ["A web UI"]


def test_assumptions_and_out_of_scope_are_required_by_the_role_schema() -> None:
    obj = answer()
    del obj["assumptions"], obj["out_of_scope"]
    assert errors_of(obj) == [
        'the plan: missing field "assumptions"',
        'the plan: missing field "out_of_scope"',
    ]


def test_fields_the_schema_does_not_name_are_refused_by_it() -> None:
    assert errors_of(answer(notes="extra")) == ['the plan: unexpected field "notes"']


def test_a_project_schema_is_the_rule_when_given() -> None:
    loose = {"type": "object", "required": ["summary", "milestones"]}
    obj = answer()
    del obj["assumptions"], obj["out_of_scope"]
    assert parse_plan(obj, loose).assumptions == []


def test_no_structured_output_is_an_error() -> None:
    assert errors_of(None) == ["no structured output: expected the plan as an object"]


def test_an_answer_that_is_not_an_object_is_an_error() -> None:
    assert errors_of(["m1"]) == ["the plan: expected object, got array"]


def test_missing_milestones_is_an_error() -> None:
    obj = answer()
    del obj["milestones"]
    assert errors_of(obj) == ['the plan: missing field "milestones"']


def test_empty_milestones_is_an_error() -> None:
    assert errors_of(answer(milestones=[])) == ["milestones is empty: at least 1 item needed"]


def test_milestones_that_are_not_a_list_is_an_error() -> None:
    assert errors_of(answer(milestones="m1")) == ["milestones: expected array, got string"]


def test_a_milestone_that_is_not_an_object_is_an_error() -> None:
    assert errors_of(answer(milestones=[milestone(), 3])) == [
        "milestones[1]: expected object, got number"
    ]


def test_duplicate_milestone_ids_are_an_error() -> None:
    obj = answer(milestones=[milestone("m1"), milestone("m2"), milestone("m1")])
    assert errors_of(obj) == ["milestones[2].id: duplicate id m1 (milestones[0] has it too)"]


def test_an_empty_acceptance_list_is_an_error() -> None:
    assert errors_of(answer(milestones=[milestone(acceptance=[])])) == [
        "milestones[0].acceptance is empty: at least 1 item needed"
    ]


def test_a_missing_milestone_field_is_named() -> None:
    item = milestone()
    del item["goal"]
    assert errors_of(answer(milestones=[item])) == ['milestones[0]: missing field "goal"']


def test_a_wrong_type_names_the_field_and_both_types() -> None:
    assert errors_of(answer(summary=42)) == ["summary: expected string, got number"]


def test_a_wrong_item_type_names_its_position() -> None:
    item = milestone(acceptance=["ok", 7])
    assert errors_of(answer(milestones=[item])) == [
        "milestones[0].acceptance[1]: expected string, got number"
    ]


def test_a_milestone_without_a_usable_id_is_named_by_position() -> None:
    assert errors_of(answer(milestones=[milestone(), milestone(mid="")])) == [
        "milestones[1].id is empty"
    ]


def test_empty_text_fields_are_errors() -> None:
    assert errors_of(answer(summary=" ", milestones=[milestone(title="", goal="")])) == [
        "summary is empty",
        "milestones[0].title is empty",
        "milestones[0].goal is empty",
    ]


def test_every_problem_is_reported_at_once() -> None:
    obj = answer(
        summary=None,
        assumptions="none",
        milestones=[milestone(acceptance=[]), milestone("m1"), "x"],
    )
    assert errors_of(obj) == [
        "summary: expected string, got null",
        "milestones[0].acceptance is empty: at least 1 item needed",
        "milestones[2]: expected object, got string",
        "assumptions: expected array, got string",
    ]


def test_the_error_message_is_one_line_joining_every_problem() -> None:
    error = PlanError(["first problem", "second problem"])
    assert str(error) == "first problem; second problem"


def test_plan_text_is_markdown_with_every_part() -> None:
    text = plan_text(parse_plan(answer()))
    assert text.startswith("## Summary\n\nA todo list CLI.\n")
    assert "### m1: Skeleton\n\nA package with one passing test.\n" in text
    assert "### m2: Add items" in text
    assert "Acceptance:\n- `pytest` passes" in text
    assert "## Assumptions\n\n- Python 3.11" in text
    assert "## Out of scope\n\n- A web UI" in text


def test_plan_text_says_when_a_list_is_empty() -> None:
    text = plan_text(parse_plan(answer(assumptions=[], out_of_scope=[])))
    assert "## Assumptions\n\n- (none)" in text
    assert "## Out of scope\n\n- (none)" in text


def test_plan_dict_has_the_shape_of_the_answer() -> None:
    assert plan_dict(parse_plan(answer())) == answer()


def test_plan_json_is_pretty_and_reads_back_as_the_same_plan() -> None:
    plan = parse_plan(answer())
    data = plan_json(plan)
    assert data.startswith(b'{\n  "summary"')
    assert parse_plan(json.loads(data)) == plan


def test_a_plan_is_frozen() -> None:
    plan = Plan(summary="s", milestones=[])
    with pytest.raises(AttributeError):
        plan.summary = "other"  # type: ignore[misc]
