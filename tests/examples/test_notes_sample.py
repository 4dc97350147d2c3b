"""The notes sample: a Node HTTP service with one dependency from npm, played by the company.

Checked without claude: the structured answers fit the role schemas (the Staff
Engineer's carries the set-up and test commands), the task DAG, which rule answers each
prompt of the run, and what the scenario plays of a real model (a permission denial, a
long steady turn, a silent one that leaves a `.env` and no commit, a QA rejection).
Then the code the developers write, set up with the sample's own set-up command (a real
`npm install` from the registry) and tested with `npm test`, at every branch QA reviews
and at the end; and the Staff Engineer's turn through the real ``claude``, whose `npm view`
is denied and whose task list claude accepts against the role's schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from autonoma import demo
from autonoma.agents.command import build_argv
from autonoma.agents.environment import child_env
from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.agents.roles import load_role, render
from autonoma.config import Settings
from autonoma.sim import Scenario, SimServer, load_scenario
from autonoma.workflow.dag import parse_tasks
from tests.examples.samples import (
    DEVELOPER_FIELDS,
    E2E_IDLE_TIMEOUT,
    ancestors,
    answer_errors,
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

SAMPLE = demo.sample_dir("notes")
TASK_IDS = ["t1", "t2", "t3", "t4"]
PARALLEL = {"t2", "t3"}
LONG = "developer t2"
SILENT = "developer t3"  # goes silent at its end, leaves a .env and no commit
RESUMED = "developer t3 after its turn was stopped"
FALLBACK = "developer stopped for time"
ANSWER = "developer t4 acts on QA's review"
TOKEN = "test-token-0123456789"

BRANCHES = {
    "t1": ["developer t1"],
    "t2": ["developer t1", LONG],
    "t3": ["developer t1", SILENT, RESUMED],
    "t4": ["developer t1", LONG, SILENT, RESUMED, "developer t4"],
}
FINAL = [*BRANCHES["t4"], ANSWER]


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
    assert answered == {"ceo": 1, "staff_engineer": 1, "qa": 5, "developer": 7}
    answer = staff_answer(scenario)
    assert answer["setup_command"] == (
        "if [ -f package.json ]; then npm install --no-audit --no-fund; fi"
    )
    assert answer["test_command"] == "npm test"
    verdicts = [structured_output(r) for r in scenario.rules if r.role == "qa"]
    assert {v["test_command"] for v in verdicts} == {"npm test"}
    assert [v["verdict"] for v in verdicts].count("changes_requested") == 1


def test_the_task_dag(scenario: Scenario) -> None:
    assert [task.id for task in parse_tasks(staff_answer(scenario))] == TASK_IDS
    tasks = tasks_of(scenario)
    assert {tid for tid, task in tasks.items() if task["deps"] == ["t1"]} == PARALLEL
    assert tasks["t4"]["deps"] == ["t2", "t3"]
    for a in TASK_IDS:
        for b in TASK_IDS:
            if a < b and set(tasks[a]["files"]) & set(tasks[b]["files"]):
                assert a in ancestors(tasks, b), (a, b)
    # The lock file npm writes in t1 is t1's to commit.
    assert "package-lock.json" in tasks["t1"]["files"]


def test_each_prompt_of_the_run_gets_its_rule(scenario: Scenario) -> None:
    check_prompts_get_their_rules(
        scenario, rejected="t4", answer=ANSWER, silent="t3", resumed=RESUMED, fallback=FALLBACK
    )


def test_what_a_real_model_does_is_played(scenario: Scenario) -> None:
    assert not scenario.windows
    latencies = {
        rule.name: [step.latency for step in rule.steps if step.latency] for rule in scenario.rules
    }
    long = latencies.pop(LONG)
    assert len(long) == len(rule_named(scenario, LONG).steps) >= 12
    assert max(long) <= E2E_IDLE_TIMEOUT / 5 and sum(long) > E2E_IDLE_TIMEOUT
    assert latencies.pop(SILENT) == [30.0]
    assert rule_named(scenario, SILENT).steps[-1].latency == 30.0  # silent at its end
    assert all(not pauses for pauses in latencies.values()), latencies
    # The Staff Engineer runs `npm view`, which none of its Bash rules allows (claude lets
    # read-only commands such as `cat` through by itself; checked with 2.1.331).
    staff = load_role("staff_engineer")
    first = tools(rule_named(scenario, "staff engineer tasks"))[0]
    assert first.name == "Bash" and first.input["command"] == "npm view dotenv version"
    allowed = [t[len("Bash(") : -len(":*)")] for t in staff.allowed_tools if t.startswith("Bash(")]
    assert allowed and not any(first.input["command"].startswith(p) for p in allowed)
    assert "Bash" not in staff.allowed_tools and staff.permission_mode == "default"
    # Developers end with the summary; t3 commits nothing and leaves a .env behind.
    for rule in scenario.rules:
        if rule.role != "developer":
            continue
        assert set(structured_output(rule)) == set(DEVELOPER_FIELDS)
        commits = [
            t.input["command"] for t in tools(rule) if "git commit" in t.input.get("command", "")
        ]
        assert all(c.startswith("git add ") and " -A" not in c for c in commits), rule.name
        uncommitted = rule.name in (SILENT, RESUMED, FALLBACK)
        assert len(commits) == (0 if uncommitted else 1), rule.name
    written = [t.input.get("file_path") for t in tools(rule_named(scenario, SILENT))]
    assert "{cwd}/.env" in written


# --- the code, set up and tested with the sample's own commands ------------------------------


def _set_up(root: Path, setup: str) -> None:
    proc = shell(setup, root)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _test(root: Path, test: str) -> int:
    """Run the test command in ``root``; it must pass. The number of tests."""
    proc = shell(test, root)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    found = re.search(r"^# pass (\d+)$", proc.stdout, re.MULTILINE)
    assert found and re.search(r"^# fail 0$", proc.stdout, re.MULTILINE), proc.stdout[-2000:]
    return int(found.group(1))


@pytest.fixture(scope="module")
def final_tree(
    scenario: Scenario, commands: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The final code, set up with the sample's set-up command (npm install, the registry)."""
    root = build(scenario, tmp_path_factory.mktemp("final") / "notes", FINAL, SAMPLE)
    _set_up(root, commands[0])
    return root


def test_the_set_up_command_works_before_the_first_task(
    commands: tuple[str, str], tmp_path: Path
) -> None:
    """Before t1 there is no package.json: the set-up does nothing, and leaves nothing."""
    (tmp_path / "requirements.md").write_text("# notes\n")
    _set_up(tmp_path, commands[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requirements.md"]


def test_the_final_code_passes_its_tests(final_tree: Path, commands: tuple[str, str]) -> None:
    assert _test(final_tree, commands[1]) >= 22
    lock = json.loads((final_tree / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/dotenv"]["version"].startswith("16.")


def _fetch(url: str, method: str = "GET", body: bytes | None = None, **headers: str) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_the_service_works_as_a_user_runs_it(final_tree: Path, tmp_path: Path) -> None:
    env = {**os.environ, "NOTES_TOKEN": TOKEN, "PORT": "0", "NOTES_FILE": str(tmp_path / "n.json")}
    server = subprocess.Popen(
        ["npm", "start", "--silent"], cwd=final_tree, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"listening on port (\d+)", line)
        assert found, line
        base = f"http://127.0.0.1:{found.group(1)}"
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        assert _fetch(f"{base}/health")[::2] == (200, {"ok": True})
        status, _, note = _fetch(f"{base}/notes", "POST", b'{"text": " Ship it "}', **auth)
        assert (status, note["id"], note["text"]) == (201, 1, "Ship it")
        assert _fetch(f"{base}/notes", **auth)[2] == {"notes": [note]}
        status, headers, error = _fetch(f"{base}/notes")
        assert (status, headers.get("www-authenticate"), error) == (
            401,
            "Bearer",
            {"error": "a valid bearer token is required"},
        )
        assert _fetch(f"{base}/notes/1", "DELETE", **auth)[0] == 204
        assert _fetch(f"{base}/notes/1", **auth)[0] == 404
    finally:
        server.terminate()
        server.wait(timeout=10)
    # The .env that t3 left (a development token) is read when the environment has none.
    env.pop("NOTES_TOKEN")
    env["PORT"] = "70000"
    refused = subprocess.run(
        ["node", "src/main.js"], cwd=final_tree, env=env, capture_output=True, text=True
    )
    assert (refused.returncode, refused.stderr) == (
        2,
        'notes-api: PORT must be a port number (0-65535), not "70000"\n',
    )


def test_nothing_generated_is_tracked_in_the_final_tree(final_tree: Path) -> None:
    for leftover in ("node_modules/dotenv/package.json", ".env"):
        assert (final_tree / leftover).exists(), leftover
    tracked = tracked_after_add_all(final_tree)
    assert unwanted(tracked) == []
    assert {"package.json", "package-lock.json", ".env.example", "src/server.js"} <= set(tracked)


def test_t1s_gitignore_alone_would_let_t3s_env_in(scenario: Scenario, tmp_path: Path) -> None:
    """Why Autonoma's own exclusions matter: t3 commits nothing, and t1's .gitignore does
    not cover the .env it leaves (node_modules it does)."""
    root = build(scenario, tmp_path / "t3", BRANCHES["t3"], SAMPLE)
    (root / "node_modules" / "dotenv").mkdir(parents=True)
    (root / "node_modules" / "dotenv" / "package.json").write_text("{}")
    assert unwanted(tracked_after_add_all(root)) == [".env"]


def test_every_branch_qa_reviews_passes_its_tests(
    scenario: Scenario, final_tree: Path, commands: tuple[str, str], tmp_path: Path
) -> None:
    counts = {}
    for tid, names in BRANCHES.items():
        root = build(scenario, tmp_path / tid, names, SAMPLE)
        (root / "node_modules").symlink_to(final_tree / "node_modules")
        counts[tid] = _test(root, commands[1])
    assert all(counts[tid] > counts["t1"] for tid in PARALLEL)
    # QA's rejection of t4 is true of what it reviewed, and the answer fixes it.
    probe = (
        "import { createApp } from './src/server.js';"
        "const s = createApp({ token: 'x'.repeat(16), store: null }).listen(0, async () => {"
        "const r = await fetch(`http://127.0.0.1:${s.address().port}/notes`);"
        "console.log(r.status, r.headers.get('www-authenticate')); s.close(); });"
    )

    def unauthorized() -> str:
        proc = subprocess.run(
            ["node", "--input-type=module", "-e", probe],
            cwd=tmp_path / "t4",
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.stdout + proc.stderr

    assert unauthorized() == "401 null\n"
    apply(rule_named(scenario, ANSWER), tmp_path / "t4")
    assert unauthorized() == "401 Bearer\n"
    assert _test(tmp_path / "t4", commands[1]) == counts["t4"]


# --- the Staff Engineer through the real claude -------------------------------------------------


@pytest.mark.timeout(90)
def test_the_staff_engineer_is_denied_npm_and_its_task_list_is_accepted(
    scenario: Scenario, tmp_path: Path
) -> None:
    claude = LOCAL_INSTALL / "claude"
    assert claude.exists(), "make test installs claude"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.md").write_text((SAMPLE / "requirements.md").read_text())
    role = load_role("staff_engineer")
    prompt = render(role, requirements="(see requirements.md)", plan="(the plan)", claude_md="")
    with SimServer(scenario) as sim:
        env = child_env(os.environ, sim_url=sim.url, config_dir=tmp_path / "home")
        argv = build_argv(
            claude,
            role,
            prompt,
            session_id=str(uuid.uuid4()),
            resume=False,
            settings=Settings(),
            child_env=env,
        )
        started = time.monotonic()
        proc = subprocess.run(
            argv,
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=80,
            stdin=subprocess.DEVNULL,
        )
        requests = list(sim.messages_requests)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 80
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    result = lines[-1]
    assert result["type"] == "result" and result["is_error"] is False, result
    assert [d["tool_name"] for d in result["permission_denials"]] == ["Bash"]
    assert result["permission_denials"][0]["tool_input"]["command"] == "npm view dotenv version"
    # claude checked the answer against the role's schema, set-up and test commands included.
    assert result["structured_output"] == staff_answer(scenario)
    assert [(r.rule, r.step, r.status) for r in requests] == [
        ("staff engineer tasks", step, 200) for step in range(3)
    ]
