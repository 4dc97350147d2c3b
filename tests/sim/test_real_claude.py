"""The real ``claude`` binary against the simulated Messages API, in a scratch git git_repo."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.sim import SimServer, loads_scenario

CLAUDE = LOCAL_INSTALL / "claude"  # installed by make test

pytestmark = [
    pytest.mark.timeout(40),
]

DEV = "ROLE: developer TASK: t1"

SCENARIO = """
usage = { input_tokens = 1000, output_tokens = 20 }

[[rule]]
name = "write and check"
role = "developer"
task = "t1"
prompt_contains = "hello"
[[rule.step]]
text = "Creating it."
[[rule.step.tool]]
name = "Write"
input = { file_path = "{cwd}/hello.txt", content = "hi from the sim\\n" }
[[rule.step.tool]]
name = "Bash"
input = { command = "cat hello.txt && git status --short", description = "check" }
[[rule.step]]
text = "Done."
usage = { input_tokens = 2000, output_tokens = 5 }

[[rule]]
name = "plan"
prompt_contains = "Plan it"
[[rule.step]]
[[rule.step.tool]]
name = "StructuredOutput"
input = { milestones = ["a", "b"] }

[[rule]]
name = "loop"
prompt_contains = "Keep going"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "true", description = "again" }
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "true", description = "again" }

[[rule]]
name = "limited"
prompt_contains = "Rate limit me"
[[rule.step]]
fault = "429"
retry_after = 0

[[rule]]
name = "dropped"
prompt_contains = "Drop me"
[[rule.step]]
text = "Back again."
fault = "drop"
times = 1

[[rule]]
name = "hung"
prompt_contains = "Hang me"
[[rule.step]]
text = "Back again."
fault = "hang"
times = 1

[[rule]]
name = "garbled"
prompt_contains = "Garble me"
[[rule.step]]
fault = "bad_json"
[[rule.step.tool]]
name = "Bash"
input = { command = "echo hi", description = "x" }
[[rule.step]]
text = "Sorry."

[[rule]]
name = "summary asked again"
prompt_contains = "[structured-output-enforce]"
system_contains = "TASK: obliging"
[[rule.step]]
[[rule.step.tool]]
name = "StructuredOutput"
input = { summary = "Wrote it." }

[[rule]]
name = "no summary"
role = "developer"
task = "forgetful"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "echo once >> ran.txt", description = "runs once" }
[[rule.step]]
text = "I wrote ran.txt."

[[rule]]
name = "summary on request"
role = "developer"
task = "obliging"
[[rule.step]]
text = "I wrote nothing."

[[rule]]
name = "remember"
prompt_contains = "remember"
[[rule.step]]
text = "Remembered."
"""


def run_claude(
    sim: SimServer, home: Path, git_repo: Path, *args: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": sim.url,
        "ANTHROPIC_API_KEY": "dummy",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **(extra_env or {}),
    }
    proc = subprocess.run(
        [str(CLAUDE), *args, "--output-format", "stream-json", "--verbose"],
        cwd=git_repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, lines


@pytest.fixture(scope="module")
def sim() -> Any:
    with SimServer(loads_scenario(SCENARIO)) as server:
        yield server


def result_of(lines: list[dict[str, Any]]) -> dict[str, Any]:
    results = [line for line in lines if line.get("type") == "result"]
    assert results, lines
    return results[-1]


def session_requests(sim: SimServer, session: str) -> list[Any]:
    return [r for r in sim.messages_requests if r.session_id == session]


def test_write_and_bash(sim: SimServer, git_repo: Path, tmp_path: Path) -> None:
    proc, lines = run_claude(
        sim,
        tmp_path,
        git_repo,
        "-p",
        "Create hello.txt",
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        "Write",
        "Bash",
        "--append-system-prompt",
        DEV,
    )
    assert proc.returncode == 0, proc.stderr
    assert (git_repo / "hello.txt").read_text() == "hi from the sim\n"
    result = result_of(lines)
    assert result["subtype"] == "success" and result["is_error"] is False
    assert result["result"] == "Done."
    assert result["total_cost_usd"] > 0
    assert result["usage"]["input_tokens"] == 3000
    bash_results = [
        block
        for line in lines
        if line.get("type") == "user"
        for block in line["message"]["content"]
        if block.get("type") == "tool_result" and "hi from the sim" in str(block.get("content"))
    ]
    assert bash_results, "the Bash tool ran and saw the file"
    requests = session_requests(sim, result["session_id"])
    assert [(r.rule, r.step, r.role, r.task) for r in requests] == [
        ("write and check", 0, "developer", "t1"),
        ("write and check", 1, "developer", "t1"),
    ]
    assert requests[0].info is not None and requests[0].info.cwd == str(git_repo.resolve())
    assert requests[0].headers["x-app"] == "cli"
    last = requests[1].body["messages"][-1]["content"]
    assert {block["type"] for block in last} == {"tool_result"}


def test_structured_answer(sim: SimServer, git_repo: Path, tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"milestones": {"type": "array", "items": {"type": "string"}}},
        "required": ["milestones"],
    }
    proc, lines = run_claude(
        sim, tmp_path, git_repo, "-p", "Plan it", "--json-schema", json.dumps(schema)
    )
    assert proc.returncode == 0, proc.stderr
    result = result_of(lines)
    assert result["is_error"] is False
    assert result["structured_output"] == {"milestones": ["a", "b"]}
    requests = session_requests(sim, result["session_id"])
    assert len(requests) == 1
    assert requests[0].role is None
    assert any(t["name"] == "StructuredOutput" for t in requests[0].body["tools"])


def test_max_turns_reached(sim: SimServer, git_repo: Path, tmp_path: Path) -> None:
    proc, lines = run_claude(
        sim,
        tmp_path,
        git_repo,
        "-p",
        "Keep going",
        "--max-turns",
        "1",
        "--permission-mode",
        "acceptEdits",
        "--allowedTools",
        "Bash",
    )
    result = result_of(lines)
    assert result["subtype"] == "error_max_turns", result
    assert proc.returncode != 0 or result["is_error"] is True


def test_rate_limit_until_retries_are_exhausted(
    sim: SimServer, git_repo: Path, tmp_path: Path
) -> None:
    _proc, lines = run_claude(
        sim,
        tmp_path,
        git_repo,
        "-p",
        "Rate limit me",
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"},
    )
    retries = [
        line
        for line in lines
        if line.get("type") == "system" and line.get("subtype") == "api_retry"
    ]
    assert retries, lines
    result = result_of(lines)
    assert result["is_error"] is True
    assert result["api_error_status"] == 429
    requests = session_requests(sim, result["session_id"])
    assert [r.status for r in requests] == [429, 429]
    assert all(r.fault == "429" for r in requests)


def test_resumed_session_resends_earlier_turns(
    sim: SimServer, git_repo: Path, tmp_path: Path
) -> None:
    session = str(uuid.uuid4())
    first, _ = run_claude(
        sim, tmp_path, git_repo, "-p", "Please remember the word apple", "--session-id", session
    )
    assert first.returncode == 0, first.stderr
    second, lines = run_claude(
        sim, tmp_path, git_repo, "-p", "What did I ask you to remember?", "--resume", session
    )
    assert second.returncode == 0, second.stderr
    assert result_of(lines)["is_error"] is False
    requests = session_requests(sim, session)
    assert len(requests) == 2
    resent = json.dumps(requests[1].body["messages"])
    assert "Please remember the word apple" in resent
    assert "Remembered." in resent
    assert requests[1].info is not None and requests[1].info.turn == 2


@pytest.mark.parametrize(("prompt", "kind"), [("Drop me", "drop"), ("Hang me", "hang")])
def test_dropped_or_hung_answer_is_retried(
    sim: SimServer, git_repo: Path, tmp_path: Path, prompt: str, kind: str
) -> None:
    proc, lines = run_claude(
        sim,
        tmp_path,
        git_repo,
        "-p",
        prompt,
        extra_env={"CLAUDE_CODE_MAX_RETRIES": "2", "API_TIMEOUT_MS": "2000"},
    )
    assert proc.returncode == 0, proc.stderr
    assert any(line.get("subtype") == "api_retry" for line in lines)
    result = result_of(lines)
    assert result["is_error"] is False and result["result"] == "Back again."
    requests = session_requests(sim, result["session_id"])
    assert [r.fault for r in requests] == [kind, None]


def test_malformed_tool_input_comes_back_as_a_tool_error(
    sim: SimServer, git_repo: Path, tmp_path: Path
) -> None:
    proc, lines = run_claude(sim, tmp_path, git_repo, "-p", "Garble me", "--allowedTools", "Bash")
    assert proc.returncode == 0, proc.stderr
    result = result_of(lines)
    requests = session_requests(sim, result["session_id"])
    assert [r.fault for r in requests] == ["bad_json", None]
    tool_result = requests[1].body["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result"
    assert "could not be parsed as JSON" in str(tool_result["content"])


SUMMARY = {
    "type": "object",
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
}


def test_the_structured_output_nudge_gets_plain_text_unless_a_rule_asks_for_it(
    sim: SimServer, git_repo: Path, tmp_path: Path
) -> None:
    # A turn that ends without StructuredOutput: claude nudges once, the sim answers
    # with the model's last words (not the rule's step 0 again: the Bash runs once).
    args = ["--json-schema", json.dumps(SUMMARY), "--allowedTools", "Bash"]
    proc, lines = run_claude(
        sim,
        tmp_path,
        git_repo,
        "-p",
        "Write ran.txt",
        *args,
        "--append-system-prompt",
        "ROLE: developer TASK: forgetful",
    )
    assert proc.returncode == 0, proc.stderr
    result = result_of(lines)
    assert result["is_error"] is False and result.get("structured_output") is None
    assert result["result"] == "I wrote ran.txt."
    assert (git_repo / "ran.txt").read_text() == "once\n"
    requests = session_requests(sim, result["session_id"])
    assert [(r.rule, r.step) for r in requests] == [
        ("no summary", 0),
        ("no summary", 1),
        ("structured-output-enforce", 0),
    ]
    assert requests[-1].info is not None
    assert requests[-1].info.prompt.startswith("[structured-output-enforce] You MUST call")

    # A rule that names the nudge answers it.
    proc, lines = run_claude(
        sim,
        tmp_path,
        git_repo,
        "-p",
        "Write it",
        *args,
        "--append-system-prompt",
        "ROLE: developer TASK: obliging",
    )
    assert proc.returncode == 0, proc.stderr
    result = result_of(lines)
    assert result["structured_output"] == {"summary": "Wrote it."}
    assert [r.rule for r in session_requests(sim, result["session_id"])] == [
        "summary on request",
        "summary asked again",
    ]
