"""``autonoma serve`` and ``autonoma dashboard --web``: the real command, in a process."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from autonoma.desktop import info
from tests.conftest import run_autonoma
from tests.desktop.gatewaylib import DEMO, make_project
from tests.journal.testlib import wait_for


def _serve(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "autonoma", "serve"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_serve_writes_gateway_json_0600_refuses_a_second_and_removes_it_on_exit(
    tmp_path: Path, clean_env: dict[str, str], how: signal.Signals
) -> None:
    project = make_project(tmp_path, DEMO)
    path = project.dir / "gateway.json"
    server = _serve(project.root, clean_env)
    try:
        wait_for(lambda: info.live(path) is not None, timeout=30, interval=0.05)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = json.loads(path.read_text())
        assert set(data) == {"protocol", "url", "http", "token", "pid"}
        assert data["protocol"] == 1 and data["pid"] == server.pid and len(data["token"]) >= 32
        assert data["url"].startswith("ws://127.0.0.1:") and data["url"].endswith("/ws")
        with urllib.request.urlopen(data["http"], timeout=10) as page:
            assert page.status == 200
        second = run_autonoma("serve", cwd=project.root, env=clean_env)
        assert second.returncode == 1
        assert second.stderr == (
            f"autonoma: a gateway of this project already runs (pid {server.pid}) "
            f"at {data['http']}\n"
        )
        assert json.loads(path.read_text()) == data  # the running one's file is left alone
        server.send_signal(how)
        stdout, stderr = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 0, stderr
    assert stdout.splitlines()[-1] == "autonoma serve: stopped"
    assert not path.exists()


def test_serve_outside_a_project_says_so_in_one_line(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    done = run_autonoma("serve", cwd=tmp_path, env=clean_env)
    assert done.returncode == 1
    assert done.stderr.startswith("autonoma: ") and done.stderr.count("\n") == 1


def test_dashboard_web_starts_serve_and_opens_the_browser_on_the_token_url(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    project = make_project(tmp_path, DEMO)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    env = {**clean_env, "BROWSER": str(browser)}
    done = run_autonoma("dashboard", "--web", cwd=project.root, env=env)
    assert done.returncode == 0, done.stderr
    running = info.read(project.dir / "gateway.json")
    assert running is not None
    try:
        url = f"{running.http}#token={running.token}"
        wait_for(lambda: opened.exists() and opened.read_text().strip() == url, timeout=10)
        lines = done.stdout.splitlines()
        assert lines == [
            f"Started the gateway (autonoma serve, pid {running.pid}); "
            f"`kill {running.pid}` stops it",
            f"Opened the dashboard in the browser: {url}",
        ]
        # A second time: the same gateway, no new one.
        again = run_autonoma("dashboard", "--web", cwd=project.root, env=env)
        assert again.stdout == f"Opened the dashboard in the browser: {url}\n"
        # Where no browser can show a page: the URL, to open by hand.
        bare = {k: v for k, v in clean_env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        headless = run_autonoma("dashboard", "--web", cwd=project.root, env=bare)
        assert headless.stdout == f"No browser to open here: open {url}\n"
    finally:
        os.kill(running.pid, signal.SIGTERM)
    wait_for(lambda: not (project.dir / "gateway.json").exists(), timeout=30)
    refused = run_autonoma("dashboard", "--web", "--at", "3", cwd=project.root, env=clean_env)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1


def test_the_gateway_setting_is_a_boolean(tmp_path: Path, clean_env: dict[str, str]) -> None:
    project = make_project(tmp_path, DEMO)
    env = {**clean_env, "AUTONOMA_GATEWAY": "maybe"}
    done = run_autonoma("serve", cwd=project.root, env=env)
    assert done.returncode == 2
    assert "AUTONOMA_GATEWAY" in done.stderr and done.stderr.count("\n") == 1
