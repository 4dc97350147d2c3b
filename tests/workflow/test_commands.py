"""The project's commands as tables: which command holds, and what a test run means."""

from __future__ import annotations

from typing import Any

import pytest

from autonoma.protocol import ProjectCommands
from autonoma.workflow.commands import (
    NO_TESTS_YET,
    choose,
    judge_tests,
    no_tests_collected,
    parse_task_answer,
)
from autonoma.workflow.dag import DagError

PYTEST = "pytest -q"


@pytest.mark.parametrize(
    ("config_setup", "config_test", "proposed_setup", "proposed_test", "expected"),
    [
        # Nothing in the config: the Staff Engineer's answer.
        (
            "",
            "",
            "npm ci",
            "npm test",
            ("npm ci", "staff_engineer", "npm test", "staff_engineer", False),
        ),
        # The config wins, command by command.
        ("", PYTEST, "npm ci", "npm test", ("npm ci", "staff_engineer", PYTEST, "config", False)),
        (
            "make deps",
            "",
            "",
            "npm test",
            ("make deps", "config", "npm test", "staff_engineer", False),
        ),
        # "none": the user's explicit choice; tests opted out.
        ("", "none", "", "npm test", ("", "", "", "config", True)),
        ("", " None ", "", "", ("", "", "", "config", True)),
        ("none", "", "npm ci", "npm test", ("", "config", "npm test", "staff_engineer", False)),
        # Nobody named tests: none, and not by choice (merging is refused).
        ("", "", "", "", ("", "", "", "", False)),
        ("", "  ", "  ", "  ", ("", "", "", "", False)),
    ],
)
def test_the_config_wins_over_the_staff_engineer_and_none_opts_out(
    config_setup: str,
    config_test: str,
    proposed_setup: str,
    proposed_test: str,
    expected: tuple[str, str, str, str, bool],
) -> None:
    chosen = choose(config_setup, config_test, proposed_setup, proposed_test)
    assert (
        chosen.setup_command,
        chosen.setup_source,
        chosen.test_command,
        chosen.test_source,
        chosen.tests_opted_out,
    ) == expected
    # The Staff Engineer's answer is kept, for a config changed later.
    assert (chosen.proposed_setup_command, chosen.proposed_test_command) == (
        proposed_setup.strip(),
        proposed_test.strip(),
    )


def test_the_same_inputs_make_an_equal_message() -> None:
    # The orchestrator journals the commands again only when they differ.
    assert choose("", "", "a", "b") == choose("", "", "a", "b")
    assert choose("", "", "a", "b") != ProjectCommands()


PYTEST_EMPTY = "\nno tests ran in 0.01s\n"
UNITTEST_312_EMPTY = "\n----\nRan 0 tests in 0.000s\n\nNO TESTS RAN\n"
UNITTEST_311_EMPTY = "\n----\nRan 0 tests in 0.000s\n\nOK\n"
NODE_TAP_EMPTY = "TAP version 13\n1..0\n# tests 0\n# suites 0\n# pass 0\n# fail 0\n"
NODE_SPEC_EMPTY = "\u2139 tests 0\n\u2139 suites 0\n\u2139 pass 0\n"
NODE_TAP_ONE = "TAP version 13\nok 1 - a\n1..1\n# tests 1\n# pass 1\n# fail 0\n"
JEST_EMPTY = "No tests found, exiting with code 1\nRun with `--passWithNoTests` to exit with code 0"
NPM_NO_SCRIPT = "Error: no test specified\n"


@pytest.mark.parametrize(
    ("exit_code", "output", "collected_none"),
    [
        (5, PYTEST_EMPTY, True),  # pytest
        (5, "=== no tests ran in 0.00s ===", True),
        (5, UNITTEST_312_EMPTY, True),  # python -m unittest, 3.12 on
        (0, UNITTEST_311_EMPTY, True),  # python -m unittest, 3.11
        (0, NODE_TAP_EMPTY, True),  # node --test / npm test with node --test
        (0, NODE_SPEC_EMPTY, True),
        (1, JEST_EMPTY, True),
        (0, NODE_TAP_ONE, False),
        (0, "1 passed in 0.02s", False),
        (1, "1 failed in 0.02s", False),
        (5, "some other tool exits 5", False),  # exit 5 alone is not pytest's "no tests"
        (1, NPM_NO_SCRIPT, False),  # npm's placeholder script is a failure
        (None, PYTEST_EMPTY, False),  # killed
        (1, NODE_TAP_EMPTY, False),
    ],
)
def test_no_tests_collected(exit_code: int | None, output: str, collected_none: bool) -> None:
    assert no_tests_collected(exit_code, output) is collected_none


@pytest.mark.parametrize(
    ("exit_code", "timed_out", "output", "tests_seen", "verdict", "why"),
    [
        (0, False, "3 passed", False, "passed", "passed"),
        (0, False, "3 passed", True, "passed", "passed"),
        (1, False, "1 failed", False, "failed", "exit code 1"),
        # No tests yet: not a failure (a docs-only first task).
        (5, False, PYTEST_EMPTY, False, "no_tests", NO_TESTS_YET),
        (0, False, NODE_TAP_EMPTY, False, "no_tests", NO_TESTS_YET),
        # Once a merge ran tests, collecting none means the tests were lost.
        (
            5,
            False,
            PYTEST_EMPTY,
            True,
            "failed",
            "no tests collected, though earlier merges had tests",
        ),
        (
            0,
            False,
            NODE_TAP_EMPTY,
            True,
            "failed",
            "no tests collected, though earlier merges had tests",
        ),
        (None, True, PYTEST_EMPTY, False, "failed", "timed out"),
        (2, False, "usage error", False, "failed", "exit code 2"),
    ],
)
def test_judge_tests(
    exit_code: int | None, timed_out: bool, output: str, tests_seen: bool, verdict: str, why: str
) -> None:
    judged = judge_tests(exit_code, timed_out, output, tests_seen=tests_seen)
    assert (judged.verdict, judged.why) == (verdict, why)


TASK = {
    "id": "t1",
    "title": "Skeleton",
    "spec": "s",
    "deps": [],
    "files": ["a.py"],
    "acceptance": ["ok"],
}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            {"tasks": [TASK], "setup_command": " npm ci ", "test_command": "npm test"},
            ("npm ci", "npm test"),
        ),
        ({"tasks": [TASK], "setup_command": "", "test_command": ""}, ("", "")),
    ],
)
def test_the_staff_engineers_answer_carries_both_commands(
    answer: dict[str, Any], expected: tuple[str, str]
) -> None:
    specs, setup, test = parse_task_answer(answer)
    assert [s.id for s in specs] == ["t1"]
    assert (setup, test) == expected


@pytest.mark.parametrize(
    ("answer", "errors"),
    [
        (
            {"tasks": [TASK]},
            [
                'the task list: missing field "setup_command"',
                'the task list: missing field "test_command"',
            ],
        ),
        (
            {"tasks": [TASK], "setup_command": 1, "test_command": ["pytest"]},
            [
                "setup_command: expected string, got number",
                "test_command: expected string, got array",
            ],
        ),
        # The tasks' problems and the commands' come back together.
        (
            {"tasks": [], "test_command": "x"},
            [
                'the task list: missing field "setup_command"',
                "tasks is empty: at least 1 item needed",
            ],
        ),
    ],
)
def test_every_problem_of_the_answer_is_reported_at_once(
    answer: dict[str, Any], errors: list[str]
) -> None:
    with pytest.raises(DagError) as caught:
        parse_task_answer(answer)
    assert caught.value.errors == errors
