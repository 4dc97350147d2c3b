"""Agents' structured answers: the role's schema is the rule, then a typed struct."""

from __future__ import annotations

from typing import Any

import pytest

from autonoma.agents.roles import load_role
from autonoma.protocol import AgentTurnFinished, DeveloperReport
from autonoma.workflow.answers import AnswerError, Verdict, developer_report, verdict_of

QA = load_role("qa").schema
DEVELOPER = load_role("developer").schema


def finished(output: Any = None, result: str = "") -> AgentTurnFinished:
    return AgentTurnFinished(
        agent_id="a",
        session_id="s",
        subtype="success",
        is_error=False,
        result=result,
        structured_output=output,
    )


GOOD = {
    "verdict": "approve",
    "reasons": ["ok"],
    "test_command": "pytest -q",
    "test_output_summary": "1 passed",
}


@pytest.mark.parametrize(
    ("output", "errors"),
    [
        (None, ["no structured output: expected the verdict as an object"]),
        (
            {**GOOD, "verdict": "maybe"},
            ['verdict: "maybe" is not one of "approve", "changes_requested"'],
        ),
        ({**GOOD, "reasons": "ok"}, ["reasons: expected array, got string"]),
        ({**GOOD, "reasons": ["ok", 3]}, ["reasons[1]: expected string, got number"]),
        (
            {k: v for k, v in GOOD.items() if k != "verdict"},
            ['the verdict: missing field "verdict"'],
        ),
        ({**GOOD, "score": 9}, ['the verdict: unexpected field "score"']),
        ([GOOD], ["the verdict: expected object, got array"]),
    ],
)
def test_a_verdict_that_breaks_qa_schema_names_the_field(output: Any, errors: list[str]) -> None:
    with pytest.raises(AnswerError) as info:
        verdict_of(finished(output), QA)
    assert info.value.errors == errors


def test_a_verdict_that_fits_is_typed() -> None:
    assert verdict_of(finished(GOOD), QA) == Verdict(
        verdict="approve", reasons=["ok"], test_command="pytest -q", test_output_summary="1 passed"
    )


def test_a_project_schema_without_a_field_the_type_needs_is_one_line() -> None:
    with pytest.raises(AnswerError) as info:
        verdict_of(finished({"reasons": []}), {"type": "object"})
    assert info.value.errors == ["Object missing required field `verdict`"]


SUMMARY = {
    "summary": "Built it.",
    "changes": ["a.py: new"],
    "tests": "pytest: 3 passed",
    "left": [],
}


@pytest.mark.parametrize(
    ("output", "result", "report"),
    [
        (
            SUMMARY,
            "Done.",
            DeveloperReport(
                task_id="t1",
                agent_id="a",
                summary="Built it.",
                changes=["a.py: new"],
                tests="pytest: 3 passed",
                structured=True,
            ),
        ),
        # claude's nudge ignored: no structured output, the result text is the report.
        (None, "I built it.\n", DeveloperReport(task_id="t1", agent_id="a", summary="I built it.")),
        # An answer that does not fit the schema: the result text too.
        ({"summary": ""}, "Done.", DeveloperReport(task_id="t1", agent_id="a", summary="Done.")),
    ],
)
def test_a_developer_report_is_its_summary_or_its_last_words(
    output: Any, result: str, report: DeveloperReport
) -> None:
    assert (
        developer_report(finished(output, result), DEVELOPER, task_id="t1", agent_id="a") == report
    )
