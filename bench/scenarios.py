"""The sim scenario the benches share: a company whose every task writes one file.

The CEO's plan, the Staff Engineer's tasks (given), developers that commit
``{task}.txt`` (after whatever steps a bench adds), and QA approving everything. Each
function returns TOML lines; a bench joins them with its own (usage, faults, steps).
Imported by the benches as ``from scenarios import ...`` (a bench's folder is first on
``sys.path`` when it runs; ``tests/benchlib.py`` puts it there for the smoke tests).
"""

from __future__ import annotations

from typing import Any

from autonoma.sim import toml_value

COMMIT = "echo {task} > {task}.txt && git add {task}.txt && git commit -q -m '{task}'"
"""A developer's one command: write its task's file and commit it."""


def file_task(task_id: str, spec: str | None = None) -> dict[str, Any]:
    """An independent task that writes ``<task_id>.txt`` holding its own name."""
    return {
        "id": task_id,
        "title": f"Write {task_id}.txt",
        "spec": spec or f"Create {task_id}.txt holding `{task_id}` and commit it.",
        "deps": [],
        "files": [f"{task_id}.txt"],
        "acceptance": [f"{task_id}.txt holds `{task_id}`"],
    }


def planning(summary: str, goal: str, tasks: list[dict[str, Any]], test_command: str) -> list[str]:
    """The CEO's plan (one milestone) and the Staff Engineer's ``tasks``."""
    out = [
        "[[rule]]",
        'name = "ceo plan"',
        'role = "ceo"',
        "[[rule.step]]",
        "[[rule.step.tool]]",
        'name = "StructuredOutput"',
        "[rule.step.tool.input]",
        f"summary = {toml_value(summary)}",
        "assumptions = []",
        "out_of_scope = []",
        "[[rule.step.tool.input.milestones]]",
        'id = "m1"',
        'title = "All files"',
        f"goal = {toml_value(goal)}",
        f"acceptance = {toml_value(['Every file holds its own name'])}",
        "",
        "[[rule]]",
        'name = "staff engineer tasks"',
        'role = "staff_engineer"',
        "[[rule.step]]",
        "[[rule.step.tool]]",
        'name = "StructuredOutput"',
        "[rule.step.tool.input]",
        'setup_command = ""',
        f"test_command = {toml_value(test_command)}",
    ]
    for task in tasks:
        out.append("[[rule.step.tool.input.tasks]]")
        out += [f"{key} = {toml_value(value)}" for key, value in task.items()]
    return out


def commit_steps(latency: float, say: str | None = None) -> list[str]:
    """A developer's last steps: after ``latency`` s (saying ``say``), write and commit;
    then give the developer role's structured summary."""
    return [
        "[[rule.step]]",
        f"latency = {toml_value(float(latency))}",
        *([] if say is None else [f"text = {toml_value(say)}"]),
        "[[rule.step.tool]]",
        'name = "Bash"',
        f"input = {toml_value({'command': COMMIT, 'description': 'Write and commit'})}",
        # The closing answer is the role's structured summary, as a real model gives it:
        # a text answer would cost one more request (claude asks for the summary).
        "[[rule.step]]",
        "[[rule.step.tool]]",
        'name = "StructuredOutput"',
        "[rule.step.tool.input]",
        'summary = "{task}.txt is committed."',
        f"changes = {toml_value(['{task}.txt: new, holds its name'])}",
        'tests = "none: nothing to test"',
        "left = []",
    ]


def developer(task_id: str, latency: float) -> list[str]:
    """The rule of ``task_id``'s developer: it commits its file after ``latency`` s."""
    head = ["", "[[rule]]", f'name = "developer {task_id}"', 'role = "developer"']
    return [*head, f"task = {toml_value(task_id)}", *commit_steps(latency)]


def qa_approves(test_command: str) -> list[str]:
    """QA approves every task."""
    return [
        "",
        "[[rule]]",
        'name = "qa approves"',
        'role = "qa"',
        "[[rule.step]]",
        "[[rule.step.tool]]",
        'name = "StructuredOutput"',
        "[rule.step.tool.input]",
        'verdict = "approve"',
        f"reasons = {toml_value(['{task}.txt is committed'])}",
        f"test_command = {toml_value(test_command)}",
        'test_output_summary = "nothing to test"',
    ]
