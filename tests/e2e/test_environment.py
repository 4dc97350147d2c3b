"""A real run's agents, set-up and test commands get an allow-list of the environment.

The run goes the real way (no ``--scenario``: `child_env` without a sim URL): the
user points claude at a local sim with ``ANTHROPIC_BASE_URL``, as one would at a
gateway. The hostile variables in Autonoma's environment must reach no agent, no
set-up command and no merge gate.
"""

from __future__ import annotations

from pathlib import Path

from autonoma.agents.environment import SIM_API_KEY
from autonoma.protocol import RunFinished, SetupRan
from autonoma.sim import SimServer, load_scenario
from tests.conftest import run_autonoma
from tests.e2e.runs import (
    SCENARIOS,
    assert_clean_exit,
    files_on,
    git,
    journal,
    make_project,
    messages,
)

HOSTILE = {
    "GITHUB_TOKEN": "ghp_hostile_token",
    "AWS_SECRET_ACCESS_KEY": "hostile-aws-secret",
    "DATABASE_URL": "postgres://user:hostile-password@db/x",
}


def test_a_real_run_passes_only_the_allowlist_and_the_named_extras(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    with SimServer(load_scenario(SCENARIOS / "env_dump.toml")) as sim:
        env = {
            **{k: v for k, v in clean_env.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))},
            **HOSTILE,
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": sim.url,
            "ANTHROPIC_API_KEY": SIM_API_KEY,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "MY_EXTRA": "named-by-the-user",
            "AUTONOMA_AGENT_ENV": "MY_EXTRA, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        }
        result = run_autonoma("start", "requirements.md", cwd=root, env=env)
    assert_clean_exit(result, 0)
    rows = journal(root)
    assert [f.outcome for f in messages(rows, RunFinished)] == ["done"]
    assert {"env.txt", "setup-env.txt"} <= files_on(root, "main")
    setups = messages(rows, SetupRan)
    assert "task" in {s.place for s in setups}
    assert all(s.exit_code == 0 for s in setups)
    for name in ("env.txt", "setup-env.txt"):
        dumped = git(root, "show", f"main:{name}")
        assert f"ANTHROPIC_BASE_URL={sim.url}" in dumped  # what claude needs came along
        assert "MY_EXTRA=named-by-the-user" in dumped  # and what the user named
        for variable, value in HOSTILE.items():
            assert variable not in dumped, name
            assert value not in dumped, name
