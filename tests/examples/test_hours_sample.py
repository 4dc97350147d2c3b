"""The hours sample: a Python package with dependencies from PyPI, played by the company.

Checked without claude: the structured answers fit the role schemas (the Staff
Engineer's carries the set-up and test commands), the task DAG, which rule answers each
prompt of the run (first turns, the resumed turn after an idle stop, QA's rejection and
the developer's answer to it), what the scenario plays of a real model (a long steady
turn, a silent one, a permission denial, an uncommitted turn with a `.env` and caches).
Then the code the developers write, set up with the sample's own set-up command (a
real venv, real packages from PyPI) and tested with its own test command, at every
branch QA reviews and at the end; and one real ``claude`` turn, the long one.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from autonoma import demo
from autonoma.agents.command import build_argv
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role, render
from autonoma.config import Settings
from autonoma.sim import Scenario, SimServer, load_scenario
from autonoma.workflow import prompts
from autonoma.workflow.dag import parse_tasks
from tests.examples.samples import (
    DEVELOPER_FIELDS,
    E2E_IDLE_TIMEOUT,
    ancestors,
    answer_errors,
    answering,
    apply,
    build,
    check_prompts_get_their_rules,
    rule_named,
    shell,
    staff_answer,
    structured_output,
    tasks_of,
    tools,
    tracked_after_add_all,
    unwanted,
)

SAMPLE = demo.sample_dir("hours")
TASK_IDS = ["t1", "t2", "t3", "t4", "t5"]
PARALLEL = {"t2", "t3"}
LONG = "developer t2"  # streams steadily, and is refused WebFetch
SILENT = "developer t3"  # goes silent before its commit
RESUMED = "developer t3 after its turn was stopped"
FALLBACK = "developer stopped for time"
REJECTED = "t3"
ANSWER = "developer t3 acts on QA's review"
UNCOMMITTED = "developer t4"  # leaves .env and caches, and no commit

# The developer rules each QA review sees, in the order the run applies them.
BRANCHES = {
    "t1": ["developer t1"],
    "t2": ["developer t1", "developer t2"],
    "t3": ["developer t1", SILENT, RESUMED],
    "t4": ["developer t1", "developer t2", UNCOMMITTED],
}
FINAL = ["developer t1", "developer t2", SILENT, RESUMED, ANSWER, UNCOMMITTED, "developer t5"]
GIT_IDENTITY = ["-c", "user.name=Sample Test", "-c", "user.email=sample@example.invalid"]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(SAMPLE / "scenario.toml")


@pytest.fixture(scope="module")
def commands(scenario: Scenario) -> tuple[str, str]:
    answer = staff_answer(scenario)
    return answer["setup_command"], answer["test_command"]


# --- the scenario ----------------------------------------------------------------------------


def test_the_structured_answers_fit_the_role_schemas(scenario: Scenario) -> None:
    answered = {"ceo": 0, "staff_engineer": 0, "qa": 0, "developer": 0}
    for rule in scenario.rules:
        assert rule.role in answered, rule.name
        assert answer_errors(rule) == [], rule.name
        answered[rule.role] += 1
    assert answered == {"ceo": 1, "staff_engineer": 1, "qa": 6, "developer": 8}
    setup, test = staff_answer(scenario)["setup_command"], staff_answer(scenario)["test_command"]
    assert setup.startswith("python3 -m venv .venv") and "pip install" in setup
    assert test == ".venv/bin/python -m pytest -q"
    verdicts = [structured_output(r) for r in scenario.rules if r.role == "qa"]
    assert {v["test_command"] for v in verdicts} == {test}
    assert [v["verdict"] for v in verdicts].count("changes_requested") == 1


def test_the_task_dag(scenario: Scenario) -> None:
    parsed = parse_tasks(staff_answer(scenario))  # Autonoma's own check of a task list
    assert [task.id for task in parsed] == TASK_IDS
    tasks = tasks_of(scenario)
    assert all("t1" in ancestors(tasks, tid) for tid in TASK_IDS[1:])
    assert {tid for tid, task in tasks.items() if task["deps"] == ["t1"]} == PARALLEL
    assert tasks["t4"]["deps"] == ["t2"] and tasks["t5"]["deps"] == ["t3", "t4"]
    for a in TASK_IDS:
        for b in TASK_IDS:
            if a < b and set(tasks[a]["files"]) & set(tasks[b]["files"]):
                assert a in ancestors(tasks, b), (a, b)


def test_each_prompt_of_the_run_gets_its_rule(scenario: Scenario) -> None:
    check_prompts_get_their_rules(
        scenario, rejected=REJECTED, answer=ANSWER, silent="t3", resumed=RESUMED, fallback=FALLBACK
    )
    assert answering(scenario, "ceo", None, "Plan it") == "ceo plan"


def test_what_a_real_model_does_is_played(scenario: Scenario) -> None:
    assert not scenario.windows
    latencies = {
        rule.name: [step.latency for step in rule.steps if step.latency] for rule in scenario.rules
    }
    # A long turn that streams steadily: short pauses, more than the idle timeout in all.
    long = latencies.pop(LONG)
    assert len(long) == len(rule_named(scenario, LONG).steps) >= 15
    assert max(long) <= E2E_IDLE_TIMEOUT / 5 and sum(long) > E2E_IDLE_TIMEOUT * 1.5
    # A silent turn: one pause far over the idle timeout, before the commit.
    assert latencies.pop(SILENT) == [30.0]
    silent = rule_named(scenario, SILENT)
    paused = next(i for i, step in enumerate(silent.steps) if step.latency)
    assert "git commit" in silent.steps[paused].tools[0].input["command"]
    assert all(not pauses for pauses in latencies.values()), latencies
    assert all(step.fault is None for rule in scenario.rules for step in rule.steps)
    # A permission denial: the developer asks for a tool its role does not allow.
    role = load_role("developer")
    asked = [tool.name for tool in tools(rule_named(scenario, LONG))]
    assert "WebFetch" in asked and "WebFetch" not in role.allowed_tools
    assert role.permission_mode != "bypassPermissions"
    # Every developer turn ends with the summary; every one but t4's commits named files.
    for rule in scenario.rules:
        if rule.role != "developer":
            continue
        assert set(structured_output(rule)) == set(DEVELOPER_FIELDS)
        commits = [
            t.input["command"] for t in tools(rule) if "git commit" in t.input.get("command", "")
        ]
        assert all(c.startswith("git add ") and " -A" not in c for c in commits), rule.name
        assert len(commits) == (0 if rule.name in (UNCOMMITTED, FALLBACK) else 1), rule.name
    # t4 leaves a .env with a (fake) secret that t1's .gitignore does not cover.
    written = [t.input.get("file_path") for t in tools(rule_named(scenario, UNCOMMITTED))]
    assert "{cwd}/.env" in written


# --- the code, set up and tested with the sample's own commands ------------------------------


def _set_up(root: Path, setup: str) -> None:
    proc = shell(setup, root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _test(root: Path, test: str, python: Path | None = None) -> str:
    """The test command's output in ``root`` (the project's own, or with another venv's
    python when ``python`` is given); it must pass."""
    command = test if python is None else test.replace(".venv/bin/python", str(python))
    proc = shell(command, root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def final_tree(
    scenario: Scenario, commands: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The final code, set up with the sample's set-up command (a venv, pip, PyPI)."""
    root = build(scenario, tmp_path_factory.mktemp("final") / "hours", FINAL, SAMPLE)
    _set_up(root, commands[0])
    return root


def test_the_set_up_command_works_before_the_first_task(
    commands: tuple[str, str], tmp_path: Path
) -> None:
    """Before t1 there is no pyproject.toml: the set-up makes the venv and installs nothing."""
    (tmp_path / "requirements.md").write_text("# hours\n")
    _set_up(tmp_path, commands[0])
    assert (tmp_path / ".venv" / "bin" / "python").exists()
    assert not (tmp_path / ".venv" / "bin" / "hours").exists()


def test_the_final_code_passes_its_tests(final_tree: Path, commands: tuple[str, str]) -> None:
    output = _test(final_tree, commands[1])
    passed = int(output.strip().splitlines()[-1].split()[0])
    assert passed >= 40, output
    # Installed by pip from PyPI into the project's venv, in the pinned ranges.
    python = final_tree / ".venv" / "bin" / "python"
    versions = subprocess.run(
        [
            str(python),
            "-c",
            "import click, tabulate; print(click.__version__, tabulate.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert versions[0].startswith("8.") and versions[1].startswith(("0.9", "0.10")), versions


def test_the_program_works_as_a_user_runs_it(final_tree: Path, tmp_path: Path) -> None:
    log = tmp_path / "march.log"
    log.write_text(
        "# March\n2026-03-02 09:00-12:30 acme Spec\n2026-03-02 12:30-13:00 globex Call\n"
        "2026-03-03 09:00-10:00 acme Review\n"
    )
    hours = final_tree / ".venv" / "bin" / "hours"

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(hours), *args], capture_output=True, text=True, env={**os.environ, **env}
        )

    report = run("report", str(log))
    assert report.returncode == 0, report.stderr
    assert [line.split() for line in report.stdout.splitlines()[2:]] == [
        ["acme", "4:30"],
        ["globex", "0:30"],
        ["total", "5:00"],
    ]
    assert run("check", str(log)).stdout == "OK: 3 entries\n"  # 12:30 touches 12:30
    invoice = run("invoice", str(log), "--from", "2026-03-03", HOURS_RATE="90")
    assert invoice.stdout.splitlines()[-1].split() == ["total", "1.00", "90.00"]
    log.write_text("2026-03-02 09:00-12:00 acme\n2026-03-02 11:00-11:30 acme\nbad\n")
    check = run("check", str(log))
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        f"{log}:2: overlaps line 1",
        f"{log}:3: expected YYYY-MM-DD HH:MM-HH:MM PROJECT [NOTE]",
    ]
    assert run("report", str(log)).stderr == (
        f"Error: {log}:3: expected YYYY-MM-DD HH:MM-HH:MM PROJECT [NOTE]\n"
    )


def test_nothing_generated_is_tracked_in_the_final_tree(final_tree: Path) -> None:
    # The tree holds a venv, an egg-info, a .env and, once the tests ran, their caches.
    shell(".venv/bin/python -m pytest -q", final_tree)
    for leftover in (".venv", "hours.egg-info", ".env", ".pytest_cache", "hours/__pycache__"):
        assert (final_tree / leftover).exists(), leftover
    tracked = tracked_after_add_all(final_tree)
    assert unwanted(tracked) == []
    assert {"pyproject.toml", "hours/cli.py", "tests/test_period.py", ".gitignore"} <= set(tracked)


def test_t1s_gitignore_alone_would_let_t4s_leftovers_in(
    scenario: Scenario, commands: tuple[str, str], tmp_path: Path
) -> None:
    """Why Autonoma's own exclusions matter: t4 ends without a commit, and what t1's
    .gitignore lets through includes its .env and the caches of its test runs."""
    root = build(scenario, tmp_path / "t4", BRANCHES["t4"], SAMPLE)
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text("")
    (root / ".pytest_cache").mkdir()
    (root / ".pytest_cache" / "README.md").write_text("")
    assert set(unwanted(tracked_after_add_all(root))) == {
        ".env",
        ".pytest_cache/README.md",
        ".venv/bin/python",
    }


def test_every_branch_qa_reviews_passes_its_tests(
    scenario: Scenario, final_tree: Path, commands: tuple[str, str], tmp_path: Path
) -> None:
    # One venv for all (the final tree's): `python -m pytest` imports the package from the
    # folder it runs in, before the installed one.
    python = final_tree / ".venv" / "bin" / "python"
    counts = {}
    for tid, names in BRANCHES.items():
        output = _test(build(scenario, tmp_path / tid, names, SAMPLE), commands[1], python)
        counts[tid] = int(output.strip().splitlines()[-1].split()[0])
    assert all(counts[tid] > counts["t1"] for tid in PARALLEL)
    # QA's rejection of t3 is true of what it reviewed, and the answer fixes it.
    touching = (
        "from hours.commands.check import problems; "
        "print(problems('2026-03-02 09:00-12:00 a\\n2026-03-02 12:00-13:00 b\\n', 'x.log')[1])"
    )
    before = subprocess.run(
        [str(python), "-c", touching], cwd=tmp_path / "t3", capture_output=True, text=True
    )
    assert before.stdout == "['x.log:2: overlaps line 1']\n", before.stderr
    apply(rule_named(scenario, ANSWER), tmp_path / "t3")
    after = subprocess.run(
        [str(python), "-c", touching], cwd=tmp_path / "t3", capture_output=True, text=True
    )
    assert after.stdout == "[]\n", after.stderr


# --- the long turn through the real claude ------------------------------------------------------


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=root, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.timeout(120)
def test_the_long_turn_streams_steadily_through_the_real_claude(
    scenario: Scenario, final_tree: Path, tmp_path: Path
) -> None:
    """claude, as t2's developer: a turn longer than the idle timeout that is never silent
    for long, a WebFetch that claude denies, a commit, and the summary answer."""
    claude = LOCAL_INSTALL / "claude"
    assert claude.exists(), "make test installs claude"
    repo = build(scenario, tmp_path / "repo", ["developer t1"], SAMPLE)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Sample Developer")
    git(repo, "config", "user.email", "developer@example.invalid")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "t1: package skeleton")
    worktree = tmp_path / "worktrees" / "t2"
    git(repo, "worktree", "add", "-q", "-b", "task/t2", str(worktree))
    # The final tree's venv (set up by the sample's command above) serves the turn's test
    # runs: `python -m pytest` imports the package from the worktree it runs in.
    (worktree / ".venv").symlink_to(final_tree / ".venv")

    task = tasks_of(scenario)["t2"]
    role = load_role("developer")
    prompt = render(
        role,
        task_id="t2",
        task_title=task["title"],
        spec=task["spec"],
        acceptance=prompts.bullets(task["acceptance"]),
        files=prompts.bullets(task["files"]),
        feedback="(none)",
        claude_md="(none)",
        commands=prompts.commands_text(None),
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
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, cwd=worktree, env=env, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
        )
        assert proc.stdout is not None
        stamps: list[float] = []
        lines = []
        for line in proc.stdout:
            stamps.append(time.monotonic())
            if line.startswith("{"):
                lines.append(json.loads(line))
        assert proc.wait(timeout=60) == 0
        requests = list(sim.messages_requests)
    rule = rule_named(scenario, LONG)
    assert [(r.rule, r.step, r.status) for r in requests] == [
        (LONG, step, 200) for step in range(len(rule.steps))
    ]
    # Longer than the idle timeout, never silent for more than a fraction of it.
    gaps = [b - a for a, b in zip([started, *stamps], stamps, strict=False)]
    assert stamps[-1] - started > E2E_IDLE_TIMEOUT * 1.5
    assert max(gaps[1:]) < E2E_IDLE_TIMEOUT * 0.8, max(gaps[1:])
    result = lines[-1]
    assert result["type"] == "result" and result["is_error"] is False, result
    assert [d["tool_name"] for d in result["permission_denials"]] == ["WebFetch"]
    assert result["structured_output"] == structured_output(rule)
    changed = git(repo, "diff", "--name-only", "main", "task/t2").split()
    assert set(changed) == set(task["files"])
    assert git(repo, "log", "--format=%s", "-1", "task/t2").startswith("t2: report command")
