"""The project's set-up and test commands: which ones hold, and what a test run means.

Pure decisions, tested as tables:

- `parse_task_answer`: the Staff Engineer's answer (tasks, ``setup_command``,
  ``test_command``), every problem at once;
- `choose`: the config's commands win over the Staff Engineer's; ``"none"`` is the
  user's explicit "no set-up" / "no tests";
- `judge_tests`: a test run's exit code and output as the merge gate reads them,
  where "no tests collected" is not a failure while the project has no tests yet.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from autonoma.protocol import ProjectCommands
from autonoma.workflow.dag import TaskSpec, parse_task_list

NONE = "none"
"""A config value that means "none, on purpose" (``test_command = "none"``)."""


def no_test_command(task_id: str) -> str:
    """Why ``task_id`` may not merge when there is no test command, and what to do (one line)."""
    return (
        "not merged: there is no test command (neither the Staff Engineer nor the config "
        'named one); set test_command = "..." in .autonoma/config.toml or '
        'AUTONOMA_TEST_COMMAND (test_command = "none" merges without tests), then '
        f"`autonoma retry {task_id}`"
    )


NO_TESTS_YET = "no tests collected yet"
OPTED_OUT = 'tests not run: the user opted out (test_command = "none")'


def parse_task_answer(
    obj: object, schema: Mapping[str, Any] | None = None
) -> tuple[list[TaskSpec], str, str]:
    """The tasks, set-up command and test command of the Staff Engineer's answer.

    ``schema`` is the Staff Engineer role's (the packaged one's when None): it is the rule
    for the answer's shape, commands included. Raises `DagError` with every problem at once.
    """
    answer = parse_task_list(obj, schema)
    return answer.tasks, answer.setup_command, answer.test_command


def choose(
    config_setup: str, config_test: str, proposed_setup: str, proposed_test: str
) -> ProjectCommands:
    """The effective commands: the config's when set ("none": none), else the proposed ones."""
    config_setup, config_test = config_setup.strip(), config_test.strip()
    proposed_setup, proposed_test = proposed_setup.strip(), proposed_test.strip()
    setup, setup_source = _pick(config_setup, proposed_setup)
    test, test_source = _pick(config_test, proposed_test)
    return ProjectCommands(
        setup_command=setup,
        test_command=test,
        tests_opted_out=config_test.lower() == NONE,
        setup_source=setup_source,
        test_source=test_source,
        proposed_setup_command=proposed_setup,
        proposed_test_command=proposed_test,
    )


def _pick(config: str, proposed: str) -> tuple[str, Literal["", "config", "staff_engineer"]]:
    if config.lower() == NONE:
        return "", "config"
    if config:
        return config, "config"
    if proposed:
        return proposed, "staff_engineer"
    return "", ""


Verdict = Literal["passed", "no_tests", "failed"]


@dataclass(frozen=True)
class Judgement:
    """What a test run means for the merge: its verdict, and why in a few words."""

    verdict: Verdict
    why: str


# pytest: "no tests ran in 0.01s" (exit 5); unittest from 3.12 on: "NO TESTS RAN" (exit 5).
_NOTHING_RAN = re.compile(r"no tests ran", re.IGNORECASE)
# unittest before 3.12: "Ran 0 tests in 0.000s" then "OK" (exit 0).
_RAN_ZERO = re.compile(r"^Ran 0 tests in ", re.MULTILINE)
# node --test (node 20): TAP "# tests 0", or the spec reporter's "\u2139 tests 0" (exit 0).
_NODE_ZERO = re.compile("^[#\u2139] tests 0\\s*$", re.MULTILINE)
_NODE_SOME = re.compile("^[#\u2139] tests [1-9][0-9]*\\s*$", re.MULTILINE)
# jest: "No tests found, exiting with code 1".
_JEST_NONE = "No tests found, exiting with code 1"

PYTEST_NO_TESTS = 5
"""pytest's exit code when it collected no test (unittest's too, from Python 3.12)."""


def no_tests_collected(exit_code: int | None, output: str) -> bool:
    """The run found no test at all (pytest's exit 5, an empty ``node --test``, ...)."""
    if exit_code == PYTEST_NO_TESTS:
        return bool(_NOTHING_RAN.search(output))
    if exit_code == 0:
        if _RAN_ZERO.search(output):
            return True
        return bool(_NODE_ZERO.search(output)) and not _NODE_SOME.search(output)
    return exit_code == 1 and _JEST_NONE in output


def judge_tests(
    exit_code: int | None, timed_out: bool, output: str, *, tests_seen: bool
) -> Judgement:
    """Whether a merged result passed its tests.

    ``tests_seen``: an earlier merge of the run ran tests. Until then, a run that
    collects no test is not a failure (a docs-only first task, a skeleton); after, it
    is (the tests were lost).
    """
    if timed_out:
        return Judgement("failed", "timed out")
    if no_tests_collected(exit_code, output):
        if tests_seen:
            return Judgement("failed", "no tests collected, though earlier merges had tests")
        return Judgement("no_tests", NO_TESTS_YET)
    if exit_code == 0:
        return Judgement("passed", "passed")
    return Judgement("failed", f"exit code {exit_code}")


__all__ = [
    "NONE",
    "NO_TESTS_YET",
    "OPTED_OUT",
    "Judgement",
    "choose",
    "judge_tests",
    "no_test_command",
    "no_tests_collected",
    "parse_task_answer",
]
