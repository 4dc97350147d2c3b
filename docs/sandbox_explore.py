"""Run the real claude against the sim with N Bash commands; print each tool_result.

Used for the findings in docs/sandbox.md: ``run(cwd, [bash commands], settings)`` from
``.venv/bin/python`` in a checkout (claude is the local install, ``.tools/claude``).
Blocks until claude ends (at most two minutes); raises what `subprocess.run` raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autonoma.agents.executable import LOCAL_INSTALL
from autonoma.sim import SimServer, loads_scenario

CLAUDE = LOCAL_INSTALL / "claude"


def run(
    cwd: Path,
    cmds: Sequence[str],
    settings: dict[str, Any] | None,
    tools: Sequence[str] = ("Bash",),
    extra_args: Sequence[str] = (),
    env_extra: Mapping[str, str] | None = None,
    path: str | None = None,
    tool_calls: Sequence[tuple[str, dict[str, Any]]] | None = None,
) -> subprocess.CompletedProcess[str]:
    """One ``claude -p go`` turn in ``cwd`` making ``cmds`` (or ``tool_calls``), printed.

    ``settings``: the ``--settings`` JSON (``PORT`` in it becomes the sim's port), or None.
    """
    calls = tool_calls or [("Bash", {"command": c, "description": "x"}) for c in cmds]
    steps = ""
    for name, payload in calls:
        steps += f"[[rule.step]]\n[[rule.step.tool]]\nname = {json.dumps(name)}\n"
        steps += f"input = {toml_inline(payload)}\n"
    scenario = (
        "usage = { input_tokens = 10, output_tokens = 2 }\n"
        '[[rule]]\nname = "x"\nprompt_contains = "go"\n'
        f'{steps}[[rule.step]]\ntext = "Done."\n'
    )
    home = Path(tempfile.mkdtemp(prefix="sandbox-explore-home-"))
    with SimServer(loads_scenario(scenario)) as sim:
        env = {
            "PATH": path or os.environ["PATH"],
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": sim.url,
            "ANTHROPIC_API_KEY": "dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            **(env_extra or {}),
        }
        argv = [
            str(CLAUDE),
            *("-p", "go", "--output-format", "stream-json", "--verbose"),
            *("--setting-sources", "project,local", "--strict-mcp-config"),
        ]
        if settings is not None:
            port = sim.url.rsplit(":", 1)[1].strip("/")
            argv += ["--settings", json.dumps(settings).replace("PORT", port)]
        argv += [*extra_args, "--allowedTools", *tools]
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    print("rc", done.returncode, "stderr:", done.stderr[-800:])
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            _show(json.loads(line))
    return done


def _show(event: dict[str, Any]) -> None:
    """Print a tool call (``>>``), a tool result (``<<``) or the result of one stream line."""
    kind = event.get("type")
    if kind == "assistant":
        for block in event["message"]["content"]:
            if block.get("type") == "tool_use":
                print("  >>", block["name"], json.dumps(block["input"])[:200])
    elif kind == "user":
        for block in event["message"]["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                said = str(block.get("content"))[:400].replace("\n", " | ")
                print("  <<", ("ERR " if block.get("is_error") else "") + said)
    elif kind == "result":
        result = str(event.get("result"))[:300]
        print("  result:", event.get("subtype"), event.get("is_error"), result)
        print("  denials:", event.get("permission_denials"))


def toml_inline(table: Mapping[str, Any]) -> str:
    """``table`` as a TOML inline table (values written as JSON, which TOML reads for these)."""
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in table.items()) + " }"
