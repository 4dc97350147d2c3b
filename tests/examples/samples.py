"""What the tests of the realistic samples (examples/hours, examples/notes) share.

Reading a scenario (rules, their tool calls, their structured answers), a small JSON
schema check, what the sim would answer to a prompt, and a builder that does what the
developers' Write and Edit calls do, so that the final code can be set up and tested
with the sample's own commands, without claude.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from autonoma import demo
from autonoma.agents.roles import load_role
from autonoma.journal.fold import Task
from autonoma.sim import RequestInfo, Rule, Scenario, ToolCall
from autonoma.workflow import prompts

DEVELOPER_FIELDS = ("summary", "changes", "tests", "left")
"""What a developer's report holds (its role's schema requires them)."""

# The phrase of the prompt that resumes a turn stopped for time (contracts).
STOPPED = "Your previous turn was stopped"
# The idle timeout the end-to-end test of the samples sets (AUTONOMA_TURN_IDLE_TIMEOUT).
E2E_IDLE_TIMEOUT = 5.0

# What must never be tracked: caches, virtual environments, vendor folders, secrets.
UNWANTED = re.compile(
    r"(^|/)(__pycache__|\.pytest_cache|\.venv|venv|node_modules|[^/]*\.egg-info|build)/"
    r"|(^|/)\.env$|\.pyc$"
)


def rule_named(scenario: Scenario, name: str) -> Rule:
    found = [rule for rule in scenario.rules if rule.name == name]
    assert len(found) == 1, f"expected one rule named {name!r}"
    return found[0]


def tools(rule: Rule) -> list[ToolCall]:
    return [tool for step in rule.steps for tool in step.tools]


def structured_output(rule: Rule) -> dict[str, Any]:
    """The object a rule returns: its one StructuredOutput call, which ends its last step."""
    last = rule.steps[-1]
    assert last.tools and last.tools[-1].name == "StructuredOutput", rule.name
    calls = [tool for tool in tools(rule) if tool.name == "StructuredOutput"]
    assert len(calls) == 1, rule.name
    return calls[0].input


def staff_answer(scenario: Scenario) -> dict[str, Any]:
    return structured_output(rule_named(scenario, "staff engineer tasks"))


def tasks_of(scenario: Scenario) -> dict[str, dict[str, Any]]:
    return {task["id"]: task for task in staff_answer(scenario)["tasks"]}


def ancestors(tasks: Mapping[str, Mapping[str, Any]], task_id: str) -> set[str]:
    found: set[str] = set()
    pending = list(tasks[task_id]["deps"])
    while pending:
        dep = pending.pop()
        if dep not in found:
            found.add(dep)
            pending += tasks[dep]["deps"]
    return found


def answering(scenario: Scenario, role: str, task: str | None, prompt: str) -> str | None:
    """The name of the rule the sim answers this first request with (None: no rule)."""
    tail = f"ROLE: {role}" + (f" TASK: {task}" if task else "")
    info = RequestInfo(
        role=role,
        task=task,
        turn=1,
        step=0,
        prompt=prompt,
        system=tail,
        system_tail=tail,
        session_id=None,
        cwd="/work",
        model="claude-sim",
        stream=True,
    )
    found = scenario.find(info)
    return None if found is None else found[1].name


# --- a minimal JSON schema check (the keywords the role schemas use) --------------------

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "number": (int, float),
    "integer": int,
}


def schema_errors(value: Any, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (type, required, additionalProperties false,
    properties, items, minItems, enum, pattern), one line each."""
    kind = schema.get("type")
    if kind is not None:
        expected = _JSON_TYPES[kind]
        if not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool)):
            return [f"{where}: expected {kind}, got {type(value).__name__}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [
            f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value
        ]
        if schema.get("additionalProperties") is False:
            errors += [f"{where}: unexpected {key!r}" for key in value if key not in properties]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], f"{where}.{key}")
    return errors


def answer_errors(rule: Rule) -> list[str]:
    """How the structured answer of a rule breaks its role file's schema."""
    assert rule.role is not None
    schema = load_role(rule.role).schema
    assert schema is not None, rule.role
    return schema_errors(structured_output(rule), schema)


def check_prompts_get_their_rules(
    scenario: Scenario,
    *,
    rejected: str,
    answer: str,
    silent: str,
    resumed: str,
    fallback: str,
) -> None:
    """Each prompt a run of the sample asks (made by Autonoma's own prompt functions) gets
    the rule meant for it: first turns, both reviews (QA rejects ``rejected``'s first),
    the answer to QA, the resumed silent turn, and any other turn stopped for time."""
    developer, qa = load_role("developer"), load_role("qa")
    for tid, spec in tasks_of(scenario).items():
        task = Task(
            tid,
            title=spec["title"],
            spec=spec["spec"],
            acceptance=list(spec["acceptance"]),
            files=list(spec["files"]),
        )
        first = prompts.developer_prompt(developer, task, "")
        assert answering(scenario, "developer", tid, first) == f"developer {tid}"
        for review in (1, 2):
            prompt = prompts.qa_prompt(qa, task, "main", review, "")
            expected = (
                f"qa rejects {tid}'s first review" if (tid, review) == (rejected, 1) else None
            )
            assert answering(scenario, "qa", tid, prompt) == (expected or f"qa approves {tid}")
    reasons = structured_output(rule_named(scenario, f"qa rejects {rejected}'s first review"))[
        "reasons"
    ]
    assert answering(scenario, "developer", rejected, prompts.rejected(rejected, 1, reasons)) == (
        answer
    )
    stopped = f"{STOPPED} after 5 s without output. Look at `git status` and go on."
    assert answering(scenario, "developer", silent, stopped) == resumed
    # Any other turn stopped for time (a slow install, say) gets a turn that leaves its
    # work for Autonoma to commit.
    for tid in tasks_of(scenario):
        if tid != silent:
            assert answering(scenario, "developer", tid, stopped) == fallback
    assert answering(scenario, "staff_engineer", None, "Split it") == "staff engineer tasks"


# --- what a rule's tool calls do, without claude ------------------------------------------

# Shell commands a developer rule may run: they read, test, install or commit, and change
# no file the builder would have to reproduce.
_WRITES = re.compile(r"(^|[^0-9&|-])>|(^|[;&|(]\s*)(tee|sed -i|mv|cp|rm|touch|mkdir)\b")


def writes_no_file(command: str) -> bool:
    """True for a shell command that writes no file of the project (reads, tests, git)."""
    return _WRITES.search(command) is None


def apply(rule: Rule, root: Path) -> None:
    """Do in ``root`` what the rule's Write and Edit calls do; Read is checked against them
    (claude's Write and Edit refuse a file the session has not read), the rest is skipped."""
    known: set[str] = set()  # the files this session has read or written
    for tool in tools(rule):
        data = {
            k: v.replace("{cwd}", str(root)) if isinstance(v, str) else v
            for k, v in tool.input.items()
        }
        if tool.name == "Read":
            assert Path(data["file_path"]).exists(), (rule.name, data["file_path"])
            known.add(data["file_path"])
        elif tool.name == "Write":
            path = Path(data["file_path"])
            assert not path.exists() or data["file_path"] in known, (rule.name, path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data["content"])
            known.add(data["file_path"])
        elif tool.name == "Edit":
            path = Path(data["file_path"])
            assert data["file_path"] in known, (rule.name, "Edit before Read", path)
            text = path.read_text()
            assert text.count(data["old_string"]) == 1, (rule.name, data["old_string"])
            path.write_text(text.replace(data["old_string"], data["new_string"]))
        elif tool.name == "Bash":
            assert writes_no_file(data["command"]), (rule.name, data["command"])


def build(scenario: Scenario, root: Path, names: Iterable[str], sample: Path) -> Path:
    """A folder holding the sample's requirements.md (the demo's first commit) and what
    these developer rules write, applied in this order."""
    root.mkdir(parents=True)
    (root / "requirements.md").write_text((sample / "requirements.md").read_text())
    for name in names:
        apply(rule_named(scenario, name), root)
    return root


def shell(command: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``command`` through /bin/sh in ``cwd``, as Autonoma runs the set-up and test commands
    in the demo: the Python running Autonoma comes first on the PATH."""
    # As an agent's shell would: bytecode and pytest's cache get written.
    drop = ("PYTEST_", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = f"{demo.python_bin()}:{env.get('PATH', '')}"
    return subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def tracked_after_add_all(root: Path) -> list[str]:
    """What ``git add -A`` would track in ``root`` under its own .gitignore."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True, capture_output=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True, capture_output=True)
    listed = subprocess.run(
        [*git, "ls-files"], cwd=root, check=True, capture_output=True, text=True
    )
    subprocess.run(["rm", "-rf", str(root / ".git")], check=True)
    return listed.stdout.split()


def unwanted(paths: Iterable[str]) -> list[str]:
    """The caches, virtual environments, vendor folders and secrets among ``paths``."""
    return sorted(p for p in paths if UNWANTED.search(p))
