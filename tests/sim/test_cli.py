"""``autonoma sim``: serve a scenario on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_autonoma
from tests.sim.test_server import body, post

pytestmark = pytest.mark.timeout(30)


def test_bad_scenario_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\nname = 'x'\n")
    result = run_autonoma("sim", "--scenario", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "needs at least one [[rule.step]]" in lines[0]


def test_missing_scenario_file(tmp_path: Path) -> None:
    result = run_autonoma("sim", "--scenario", str(tmp_path / "none.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "none.toml" in result.stderr and "Traceback" not in result.stderr


def test_serves_until_ctrl_c(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[rule]]\n[[rule.step]]\ntext = "hello"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "autonoma", "sim", "--port", "0", "--scenario", str(scenario)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "http://127.0.0.1:" in first
        url = first.split(" at ")[-1].strip()
        header = [proc.stdout.readline() for _ in range(5)]
        assert any("ANTHROPIC_BASE_URL" in line for line in header)
        assert any("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1" in line for line in header)
        status, _, data = post(url, {**body("bash_tool.req1"), "stream": False})
        assert status == 200 and json.loads(data)["content"][0]["text"] == "hello"
        time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped" in out
