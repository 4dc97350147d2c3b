"""The demo sample, autonoma/examples/todo: its scenario plays a company that builds real code.

Checked without claude: the structured answers fit the role schemas, the task DAG has
the shape the demo needs (a root, three parallel tasks with disjoint files, a conflict
pair), the follow-up rules answer the orchestrator's follow-up prompts, and the code
the developers write, applied in dependency order, passes its own tests, conflicts
where it should and works as a program. Then one real ``claude`` turn against the sim.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from autonoma.agents.command import build_argv
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role, render
from autonoma.config import Settings
from autonoma.demo import sample_dir
from autonoma.sim import RequestInfo, Rule, Scenario, SimServer, load_scenario
from tests.examples.samples import ancestors, rule_named, schema_errors, tools

SAMPLE = sample_dir("todo")
TEST_COMMAND = "python3 -m unittest discover -s tests -t ."
TASK_IDS = ["t1", "t2", "t3", "t4", "t5", "t6"]
PARALLEL = {"t2", "t3", "t4"}
CONFLICT_PAIR = ("t3", "t4")
REJECTED = "t2"

# The orchestrator's follow-up prompts (autonoma/workflow/prompts.py), as far as the
# scenario's rules rely on them.
CONFLICTED = "Your branch for task {} conflicts with the integration branch, which moved on."
REJECTED_PROMPT = "QA requested changes on task {} (review 1). Act on every point:\n- {}"

GIT_IDENTITY = ["-c", "user.name=Sample Test", "-c", "user.email=sample@example.invalid"]


# --- reading the scenario -------------------------------------------------------------


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SAMPLE / "scenario.toml")


def rule_index(scenario: Scenario, name: str) -> int:
    return scenario.rules.index(rule_named(scenario, name))


def structured_output(rule: Rule) -> dict[str, Any]:
    """The object a rule returns: its StructuredOutput call, which must end its last step."""
    last = rule.steps[-1]
    assert last.tools and last.tools[-1].name == "StructuredOutput", rule.name
    calls = [tool for tool in tools(rule) if tool.name == "StructuredOutput"]
    assert len(calls) == 1, rule.name
    return calls[0].input


def tasks_of(scenario: Scenario) -> dict[str, dict[str, Any]]:
    answer = structured_output(rule_named(scenario, "staff engineer tasks"))
    return {task["id"]: task for task in answer["tasks"]}


def dev_rule(scenario: Scenario, task_id: str) -> Rule:
    return rule_named(scenario, f"developer {task_id}")


def request(role: str, task: str | None, prompt: str) -> RequestInfo:
    """What the sim reads from a request of ``role`` for ``task`` with this prompt."""
    tail = f"ROLE: {role}" + (f" TASK: {task}" if task else "")
    return RequestInfo(
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


def answering(scenario: Scenario, role: str, task: str | None, prompt: str) -> str:
    found = scenario.find(request(role, task, prompt))
    assert found is not None, (role, task, prompt[:80])
    return found[1].name


# --- a minimal JSON schema check (the keywords the role schemas use) --------------------

_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "number": (int, float),
    "integer": int,
}


def test_the_schema_check_finds_problems() -> None:
    schema = load_role("qa").schema
    assert schema is not None
    good = {"verdict": "approve", "reasons": [], "test_command": "x", "test_output_summary": ""}
    assert schema_errors(good, schema) == []
    assert schema_errors({**good, "verdict": "maybe"}, schema)
    assert schema_errors({**good, "extra": 1}, schema)
    assert schema_errors({**good, "reasons": [1]}, schema)
    assert schema_errors({"verdict": "approve"}, schema)
    tasks = load_role("staff_engineer").schema
    assert tasks is not None
    commands = {"setup_command": "", "test_command": TEST_COMMAND}
    assert schema_errors({"tasks": [], **commands}, tasks) == ["$.tasks: fewer than 1 items"]
    assert schema_errors({"tasks": [{}]}, tasks)[:2] == [
        "$: missing 'setup_command'",
        "$: missing 'test_command'",
    ]


# --- the scenario --------------------------------------------------------------------------


def test_the_scenario_is_quick_and_costs_are_reported(scenario: Scenario) -> None:
    assert scenario.usage["input_tokens"] > 0 and scenario.usage["output_tokens"] > 0
    assert not scenario.windows
    for rule in scenario.rules:
        for step in rule.steps:
            assert step.latency == 0 and step.fault is None, rule.name
            assert step.text or step.tools, rule.name
            assert all(count >= 0 for count in step.usage.values()), rule.name
        # A turn ends with a text-only answer, or with StructuredOutput.
        last = rule.steps[-1]
        assert not last.tools or last.tools[-1].name == "StructuredOutput", rule.name
    assert scenario.rules[0].role == "ceo" and scenario.rules[1].role == "staff_engineer"


def test_the_structured_answers_fit_the_role_schemas(scenario: Scenario) -> None:
    answers = {"ceo": 0, "staff_engineer": 0, "qa": 0, "developer": 0}
    for rule in scenario.rules:
        assert rule.role in answers, rule.name
        schema = load_role(rule.role).schema
        assert schema is not None
        # Every turn ends with its role's structured answer (a developer's: its report).
        assert schema_errors(structured_output(rule), schema) == [], rule.name
        answers[rule.role] += 1
    developers = sum(1 for rule in scenario.rules if rule.role == "developer")
    assert answers == {
        "ceo": 1,
        "staff_engineer": 1,
        "qa": len(TASK_IDS) + 1,
        "developer": developers,
    }
    plan = structured_output(rule_named(scenario, "ceo plan"))
    assert [m["id"] for m in plan["milestones"]] == ["m1", "m2", "m3"]
    for task in tasks_of(scenario).values():
        assert re.match(r"Milestone m[1-3]\.", task["spec"]), task["id"]


def test_the_task_dag(scenario: Scenario) -> None:
    tasks = tasks_of(scenario)
    assert list(tasks) == TASK_IDS
    for tid, task in tasks.items():
        assert set(task["deps"]) <= set(tasks) - {tid}
        assert tid not in ancestors(tasks, tid), f"{tid} is in a cycle"
    assert tasks["t1"]["deps"] == []
    assert all("t1" in ancestors(tasks, tid) for tid in TASK_IDS[1:])
    # Exactly three tasks wait for t1 alone; their files are disjoint, so three
    # developers start them together from t1's commit.
    assert {tid for tid, task in tasks.items() if task["deps"] == ["t1"]} == PARALLEL
    parallel_files = [set(tasks[tid]["files"]) for tid in sorted(PARALLEL)]
    assert sum(map(len, parallel_files)) == len(set().union(*parallel_files))
    assert tasks["t5"]["deps"] == ["t2"] and set(tasks["t6"]["deps"]) == {"t3", "t4", "t5"}
    # Tasks that declare the same file never run side by side: one needs the other.
    for a in TASK_IDS:
        for b in TASK_IDS:
            if a < b and set(tasks[a]["files"]) & set(tasks[b]["files"]):
                assert a in ancestors(tasks, b), (a, b)


def appends_to_readme(rule: Rule) -> bool:
    return any(
        tool.name == "Bash" and tool.input["command"].endswith(">> README.md")
        for tool in tools(rule)
    )


def test_the_conflict_pair(scenario: Scenario) -> None:
    tasks = tasks_of(scenario)
    appending = [tid for tid in TASK_IDS if appends_to_readme(dev_rule(scenario, tid))]
    assert tuple(appending) == CONFLICT_PAIR
    for tid in CONFLICT_PAIR:
        assert "README.md" not in tasks[tid]["files"], "the conflict is over an undeclared file"
        prompt = CONFLICTED.format(tid)
        assert answering(scenario, "developer", tid, prompt) == (
            f"developer {tid} resolves the README conflict"
        )
    first, second = (
        rule_named(scenario, f"developer {tid} resolves the README conflict")
        for tid in CONFLICT_PAIR
    )
    # The same README whichever task merges second.
    assert tools(first)[0].input["command"] == tools(second)[0].input["command"]


def test_qa_rejects_the_first_review_of_one_task(scenario: Scenario) -> None:
    qa = load_role("qa")
    tasks = tasks_of(scenario)
    for tid in TASK_IDS:
        task = tasks[tid]
        for review in (1, 2):
            prompt = render(
                qa,
                task_id=tid,
                task_title=task["title"],
                spec=task["spec"],
                acceptance="\n".join(task["acceptance"]),
                files="\n".join(task["files"]),
                base_ref="main",
                attempt=str(review),
                test_command=f"run `{TEST_COMMAND}`",
                claude_md="(none)",
                developer_report="(the developer gave no report)",
                previous_review="(none: this is the first review of this task)",
            )
            name = answering(scenario, "qa", tid, prompt)
            if tid == REJECTED and review == 1:
                assert name == f"qa rejects {tid}'s first review"
            else:
                assert name == f"qa approves {tid}"
    verdicts = [structured_output(rule) for rule in scenario.rules if rule.role == "qa"]
    assert {v["test_command"] for v in verdicts} == {TEST_COMMAND}
    rejections = [v for v in verdicts if v["verdict"] == "changes_requested"]
    assert len(rejections) == 1 and len(rejections[0]["reasons"]) == 1
    follow_up = REJECTED_PROMPT.format(REJECTED, rejections[0]["reasons"][0])
    assert answering(scenario, "developer", REJECTED, follow_up) == (
        f"developer {REJECTED} acts on QA's review"
    )


def test_first_turns_get_the_generic_rules(scenario: Scenario) -> None:
    developer = load_role("developer")
    for tid, task in tasks_of(scenario).items():
        prompt = render(
            developer,
            task_id=tid,
            task_title=task["title"],
            spec=task["spec"],
            acceptance="\n".join(task["acceptance"]),
            files="\n".join(task["files"]),
            feedback="(none)",
            commands=f"- Set-up: none\n- Tests: run `{TEST_COMMAND}`",
            claude_md="(none)",
        )
        assert answering(scenario, "developer", tid, prompt) == f"developer {tid}"
    assert answering(scenario, "ceo", None, "Plan it") == "ceo plan"
    assert answering(scenario, "staff_engineer", None, "Split it") == "staff engineer tasks"


def test_every_task_runs_the_tests_and_commits(scenario: Scenario) -> None:
    follow_ups = [rule for rule in scenario.rules if rule.role == "developer" and rule.task]
    assert len(follow_ups) == len(TASK_IDS) + len(CONFLICT_PAIR) + 1
    for rule in follow_ups:
        commands = [tool.input["command"] for tool in tools(rule) if tool.name == "Bash"]
        assert TEST_COMMAND in commands, rule.name
        commits = [c for c in commands if c.startswith("git add ")]
        assert len(commits) == 1, rule.name
        assert re.search(rf'git commit -q -m "{rule.task}: ', commits[0]), rule.name
        for tool in tools(rule):
            if "file_path" in tool.input:
                assert tool.input["file_path"].startswith("{cwd}/"), rule.name
    # Follow-up rules come before the generic rule of their task (first match wins).
    for rule in follow_ups:
        if rule.prompt_contains:
            assert scenario.rules.index(rule) < rule_index(scenario, f"developer {rule.task}")
    assert rule_index(scenario, f"qa rejects {REJECTED}'s first review") < rule_index(
        scenario, f"qa approves {REJECTED}"
    )


# --- materializing the code without claude ------------------------------------------------


def apply(rule: Rule, root: Path) -> None:
    """Do what the developer's tool calls do, in ``root``: writes, edits and shell steps
    (git commands and test runs are left out)."""
    known: set[str] = set()  # the files this session has read or written
    for tool in tools(rule):
        data = {
            k: v.replace("{cwd}", str(root)) if isinstance(v, str) else v
            for k, v in tool.input.items()
        }
        if tool.name == "Read":
            known.add(data["file_path"])
        elif tool.name == "Write":
            path = Path(data["file_path"])
            # The Write tool refuses to replace a file the session has not read.
            assert not path.exists() or data["file_path"] in known, (rule.name, path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data["content"])
            known.add(data["file_path"])
        elif tool.name == "Edit":
            path = Path(data["file_path"])
            assert data["file_path"] in known, (rule.name, "Edit before Read")
            text = path.read_text()
            assert text.count(data["old_string"]) == 1, rule.name
            path.write_text(text.replace(data["old_string"], data["new_string"]))
        elif tool.name == "Bash":
            command = data["command"]
            if command.startswith("git ") or command == TEST_COMMAND:
                continue
            subprocess.run(["/bin/sh", "-c", command], cwd=root, check=True, timeout=10)
        elif tool.name != "StructuredOutput":  # the report changes no file
            raise AssertionError(f"{rule.name}: no materializer for {tool.name}")


def build(scenario: Scenario, root: Path, names: Iterable[str]) -> Path:
    root.mkdir(parents=True)
    for name in names:
        apply(rule_named(scenario, name), root)
    return root


def run_tests(root: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        shlex.split(TEST_COMMAND), cwd=root, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^OK$", proc.stderr, re.MULTILINE), proc.stderr[-3000:]
    return proc


def count_tests(proc: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"^Ran (\d+) tests? in", proc.stderr, re.MULTILINE)
    assert found, proc.stderr
    return int(found.group(1))


FINAL = [
    "developer t1",
    "developer t2",
    "developer t2 acts on QA's review",
    "developer t3",
    "developer t4",
    "developer t3 resolves the README conflict",
    "developer t5",
    "developer t6",
]


@pytest.fixture(scope="module")
def final_tree(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(scenario, tmp_path_factory.mktemp("final") / "todo", FINAL)


def test_every_branch_qa_reviews_passes_its_tests(scenario: Scenario, tmp_path: Path) -> None:
    counts = {}
    for tid in ("t1", "t2", "t3", "t4"):
        names = ["developer t1"] if tid == "t1" else ["developer t1", f"developer {tid}"]
        counts[tid] = count_tests(run_tests(build(scenario, tmp_path / tid, names)))
    assert all(counts[tid] > counts["t1"] for tid in PARALLEL)


def test_the_final_code_passes_its_tests(final_tree: Path) -> None:
    proc = run_tests(final_tree)
    assert count_tests(proc) >= 35
    names = sorted(p.name for p in (final_tree / "todo" / "commands").glob("*.py"))
    assert names == [
        "__init__.py",
        "add.py",
        "clear.py",
        "done.py",
        "edit.py",
        "list.py",
        "remove.py",
    ]
    readme = (final_tree / "README.md").read_text()
    commands = readme.split("## Commands", 1)[1]
    for name in ("add", "list", "done", "edit", "remove", "clear"):
        assert f"- `{name}" in commands, name


def todo(root: Path, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TODO_STORE": str(store)}
    return subprocess.run(
        ["python3", "-m", "todo", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_program_works_as_a_user_runs_it(final_tree: Path, tmp_path: Path) -> None:
    store = tmp_path / "todo.json"
    assert todo(final_tree, store, "list").stdout == "No open todos.\n"
    assert not store.exists()
    assert todo(final_tree, store, "add", "Buy", "milk").stdout == "Added 1: Buy milk\n"
    assert todo(final_tree, store, "add", "Fix the bike", "-p", "high").returncode == 0
    assert todo(final_tree, store, "add", "File taxes", "--priority", "low").returncode == 0
    assert todo(final_tree, store, "done", "1").stdout == "Done 1: Buy milk\n"
    assert todo(final_tree, store, "list").stdout == (
        "  2 [ ] Fix the bike (high)\n  3 [ ] File taxes (low)\n"
    )
    assert todo(final_tree, store, "list", "--done").stdout == "  1 [x] Buy milk\n"
    assert todo(final_tree, store, "edit", "3", "--title", "File the taxes").returncode == 0
    assert todo(final_tree, store, "remove", "2").stdout == "Removed 2: Fix the bike\n"
    assert todo(final_tree, store, "clear").stdout == "Cleared 1 finished todo.\n"
    assert todo(final_tree, store, "list", "--all").stdout == "  3 [ ] File the taxes (low)\n"
    assert json.loads(store.read_text())["next_id"] == 4

    missing = todo(final_tree, store, "done", "3", "99")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == "todo: error: no todo with id 99\n"
    usage = todo(final_tree, store, "add", "x", "--priority", "urgent")
    assert usage.returncode == 2 and "usage:" in usage.stderr

    store.write_text("{ this is not json")
    corrupt = todo(final_tree, store, "list")
    assert corrupt.returncode == 1 and corrupt.stdout == ""
    assert len(corrupt.stderr.splitlines()) == 1
    assert corrupt.stderr.startswith(f"todo: error: {store} is not a todo store")
    assert "Traceback" not in corrupt.stderr
    assert store.read_text() == "{ this is not json"


def test_the_readme_example_is_true(final_tree: Path, tmp_path: Path) -> None:
    """The example session in the final README gives the output it shows."""
    readme = (final_tree / "README.md").read_text()
    session = readme.split("## Example", 1)[1].split("\n## ", 1)[0]
    lines = [line.removeprefix("    ") for line in session.splitlines() if line.startswith("    ")]
    store = tmp_path / "example.json"
    expected: list[str] = []
    command: list[str] | None = None
    for line in [*lines, "$ end"]:
        if not line.startswith("$ "):
            expected.append(line)
            continue
        if command is not None:
            proc = todo(final_tree, store, *command)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout.splitlines() == expected, command
        words = shlex.split(line[2:])
        command = words[3:] if words[:3] == ["python3", "-m", "todo"] else None
        expected = []
    assert store.exists()


# --- the merge conflict, with git ------------------------------------------------------------


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=root, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.mark.parametrize("second", CONFLICT_PAIR)
def test_the_pair_conflicts_and_resolves_to_one_readme(
    scenario: Scenario, tmp_path: Path, second: str
) -> None:
    first = next(tid for tid in CONFLICT_PAIR if tid != second)
    repo = build(scenario, tmp_path / "repo", ["developer t1"])
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "t1")
    for tid in CONFLICT_PAIR:
        git(repo, "worktree", "add", "-q", "-b", tid, str(tmp_path / tid))
        apply(dev_rule(scenario, tid), tmp_path / tid)
        commit_all(tmp_path / tid, tid)
    t1_readme = (repo / "README.md").read_text()
    # The first one merges (a fast-forward); the second conflicts with the new head.
    git(repo, "merge", "-q", "--ff-only", first)
    worktree = tmp_path / second
    git(worktree, "merge", "-q", "main")
    assert git(worktree, "diff", "--name-only", "--diff-filter=U").split() == ["README.md"]
    assert "<<<<<<<" in (worktree / "README.md").read_text()
    resolution = rule_named(scenario, f"developer {second} resolves the README conflict")
    apply(resolution, worktree)
    git(worktree, "add", "README.md")
    git(worktree, "commit", "-q", "-m", f"{second}: merge integration")
    assert git(worktree, "status", "--porcelain") == ""
    assert len(git(worktree, "log", "--format=%P", "-1").split()) == 2, "a merge commit"
    readme = (worktree / "README.md").read_text()
    assert readme == t1_readme + (
        "- `done ID [ID ...]`: marks todos as done.\n- `remove ID [ID ...]`: deletes todos.\n"
    )
    run_tests(worktree)


# --- one real claude turn ----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_developer_turn_through_the_real_claude(scenario: Scenario, tmp_path: Path) -> None:
    """claude, as the developer of t2, writes the list command and commits it on its branch."""
    claude = LOCAL_INSTALL / "claude"
    assert claude.exists(), "make test installs claude"
    repo = build(scenario, tmp_path / "repo", ["developer t1"])
    git(repo, "init", "-q", "-b", "main")
    # claude's HOME is a fresh folder: the identity its git commits use is the repository's.
    git(repo, "config", "user.name", "Sample Developer")
    git(repo, "config", "user.email", "developer@example.invalid")
    commit_all(repo, "t1: package skeleton")
    worktree = tmp_path / "worktrees" / "t2"
    git(repo, "worktree", "add", "-q", "-b", "task/t2", str(worktree))

    task = tasks_of(scenario)["t2"]
    role = load_role("developer")
    prompt = render(
        role,
        task_id="t2",
        task_title=task["title"],
        spec=task["spec"],
        acceptance="\n".join(f"- {a}" for a in task["acceptance"]),
        files="\n".join(f"- {f}" for f in task["files"]),
        feedback="(none)",
        commands=f"- Set-up: none\n- Tests: run `{TEST_COMMAND}`",
        claude_md="(none)",
    )
    with SimServer(scenario) as sim:
        env = child_env(os.environ, sim_url=sim.url, config_dir=tmp_path / "home")
        argv = build_argv(
            claude,
            role,
            prompt,
            session_id=str(uuid.uuid4()),
            resume=False,
            settings=Settings(),
            task_id="t2",
            child_env=env,
        )
        proc = subprocess.run(
            argv,
            cwd=worktree,
            env=env,
            capture_output=True,
            text=True,
            timeout=50,
            stdin=subprocess.DEVNULL,
        )
        requests = list(sim.messages_requests)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    result = next(line for line in lines if line.get("type") == "result")
    assert result["is_error"] is False, result
    assert result["structured_output"]["summary"].startswith("Added todo/commands/list.py")
    assert result["total_cost_usd"] > 0
    # The turn ends with the developer's structured report: claude has nothing to nudge.
    assert [(r.rule, r.step, r.status) for r in requests] == [
        ("developer t2", step, 200) for step in range(4)
    ]
    tool_errors = [
        block
        for line in lines
        if line.get("type") == "user"
        for block in line["message"]["content"]
        if block.get("type") == "tool_result" and block.get("is_error")
    ]
    assert tool_errors == []

    expected = {"todo/commands/list.py", "tests/test_list.py"}
    for path in expected:
        assert (worktree / path).is_file(), path
    assert git(repo, "log", "--format=%s", "-1", "task/t2") == (
        "t2: list command with --all and --done\n"
    )
    changed = git(repo, "diff", "--name-only", "main", "task/t2").split()
    assert set(changed) == expected
    assert git(worktree, "status", "--porcelain") == ""
    assert git(repo, "rev-parse", "main") != git(repo, "rev-parse", "task/t2")
