"""The gateway inside ``autonoma start`` (a child of the root supervisor): a real run (the
real claude, the simulated model) watched and paused through the websocket."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from autonoma.desktop import info
from autonoma.journal import reader
from autonoma.protocol import PauseRequested, ResumeRequested
from tests.desktop.gatewaylib import client, receive, request
from tests.e2e.runs import envelopes, journal, make_project, model_file


def _launch(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "autonoma", "start", "requirements.md", "--no-tui"),
            *("--scenario", str(model_file(root, "paced.toml")), "--max-workers", "1"),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _wait_for_gateway(path: Path, run: subprocess.Popen[str]) -> info.GatewayInfo:
    with trio.fail_after(90):
        while True:
            found = await trio.to_thread.run_sync(info.live, path)
            if found is not None:
                return found
            assert run.poll() is None, run.communicate()
            await trio.sleep(0.05)


@pytest.mark.trio
async def test_start_runs_the_gateway_and_a_pause_from_the_websocket_reaches_the_run(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    path = root / ".autonoma" / "gateway.json"
    run = _launch(root, clean_env)
    frames: list[dict[str, Any]] = []
    try:
        found = await _wait_for_gateway(path, run)
        assert found.pid == run.pid  # the run's own gateway
        async with client(found) as ws:
            await ws.send_message(json.dumps({"type": "subscribe", "from_seq": 0}))

            async def until(kind: str, **fields: Any) -> dict[str, Any]:
                with trio.fail_after(120):
                    while True:
                        frame = await receive(ws, timeout=120)
                        frames.append(frame)
                        if frame["type"] == "message" and frame["kind"] == kind:
                            message = frame["message"]
                            if all(message.get(k) == v for k, v in fields.items()):
                                return frame

            await until("AgentSessionStarted", agent_id="developer-1")
            paused = await request(ws, {"type": "command", "command": "pause", "id": "p"})
            assert paused["type"] == "ack", paused
            assert paused["text"].startswith("pause sent to the running run ")
            pause = await until("PauseRequested")
            assert pause["message"]["origin"].startswith("gateway, client 127.0.0.1:")
            assert pause["said"]["level"] in ("warn", "bad", "info")
            snapshot = await request(ws, {"type": "snapshot", "id": 1})
            assert snapshot["state"]["paused"] is True
            assert any(line[0].startswith("PAUSED: ") for line in snapshot["view"]["run"])
            resumed = await request(ws, {"type": "command", "command": "resume", "id": "r"})
            assert resumed["type"] == "ack", resumed
            await until("ResumeRequested")
            end = await until("RunFinished")
            assert end["message"]["outcome"] == "done"
        stdout, stderr = await trio.to_thread.run_sync(lambda: run.communicate(timeout=120))
    finally:
        run.kill()
    assert run.returncode == 0, stdout + stderr
    assert not path.exists()  # removed when the run's tree stopped
    rows = journal(root)
    (pause_row,) = envelopes(rows, PauseRequested)
    (resume_row,) = envelopes(rows, ResumeRequested)
    assert pause_row.message.origin.startswith("gateway, client 127.0.0.1:")
    assert resume_row.message.origin.startswith("gateway, client 127.0.0.1:")
    # What the client received is the journal, in order, with no gap, up to the end.
    received = [f["seq"] for f in frames if f["type"] == "message"]
    last = received[-1]
    assert received == [row[0] for row in reader.rows(root / ".autonoma" / "state.db")][:last]
    # The gateway was a child of the root, journaled as such.
    started = [
        e
        for e in rows
        if type(e.message).__name__ == "ActorStarted" and e.message.name == "gateway"  # type: ignore[attr-defined]
    ]
    assert started and started[0].sender == "root"
