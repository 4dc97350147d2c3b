"""The gateway's requests over real sockets: the token, bad frames, snapshots, the file
list, commands. Against the real gateway on recorded journals of real runs."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from autonoma import views
from autonoma.config import Settings
from autonoma.desktop.snapshots import view_of
from autonoma.journal import reader
from autonoma.journal.timeline import TASK_EVENTS
from autonoma.project import acquire_run_lock
from autonoma.protocol import ResolveRequested, RetryRequested
from tests.desktop.gatewaylib import (
    DEMO,
    ESCALATED,
    client,
    collect_until,
    make_project,
    receive,
    request,
    running_gateway,
    ws_url,
)


def _raw_handshake(port: int, target: str, extra: str = "") -> bytes:
    """Everything the gateway sends back to a websocket upgrade request, until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        received = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return received
            received += data


@pytest.mark.trio
async def test_a_missing_or_wrong_token_is_refused_with_403_and_no_data(tmp_path: Path) -> None:
    project = make_project(tmp_path, DEMO)
    async with running_gateway(project) as gateway:
        info = gateway.info
        assert info is not None
        for target in ("/ws", "/ws?token=", f"/ws?token={info.token[:-1]}x", "/ws?tok=x"):
            answer = await trio.to_thread.run_sync(_raw_handshake, info.port, target)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 403 "), (target, answer)
            assert body == b"no token, or a wrong one\n"  # and nothing of the journal
        wrong_bearer = await trio.to_thread.run_sync(
            _raw_handshake, info.port, "/ws", "Authorization: Bearer nope\r\n"
        )
        assert wrong_bearer.startswith(b"HTTP/1.1 403 ")
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(ws_url(info, "wrong")):
                pass
        assert rejected.value.status_code == 403
        # The right token, as a query parameter or a bearer header: hello.
        right = await trio.to_thread.run_sync(
            _raw_handshake_first_frame, info.port, f"Authorization: Bearer {info.token}\r\n"
        )
        assert right.startswith(b"HTTP/1.1 101 ")
        assert b'"type":"hello"' in right
        async with client(info):
            pass


def _raw_handshake_first_frame(port: int, extra: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        received = b""
        while b'"hello"' not in received:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        return received


@pytest.mark.trio
async def test_the_static_files_need_no_token(tmp_path: Path) -> None:
    project = make_project(tmp_path, DEMO)
    async with running_gateway(project) as gateway:
        info = gateway.info
        assert info is not None

        def get(path: str) -> tuple[int, bytes, dict[str, str]]:
            try:
                with urllib.request.urlopen(info.http + path, timeout=10) as answer:
                    headers = {k.lower(): v for k, v in answer.headers.items()}
                    return answer.status, answer.read(), headers
            except urllib.error.HTTPError as err:
                return err.code, err.read(), {}

        status, body, headers = await trio.to_thread.run_sync(get, "")
        assert status == 200 and b"<html" in body.lower()
        assert headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in headers["content-security-policy"]
        for missing in ("nope.js", "../pyproject.toml", "%2e%2e/frames.py", ".hidden"):
            status, body, _ = await trio.to_thread.run_sync(get, missing)
            assert status == 404, missing


@pytest.mark.trio
async def test_bad_frames_get_an_error_frame_and_the_connection_stays_usable(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, DEMO)
    async with running_gateway(project) as gateway:
        assert gateway.info is not None
        async with client(gateway.info) as ws:
            cases: list[tuple[str | bytes, Any, str]] = [
                ("{not json", None, "malformed frame: not JSON"),
                ("[1, 2]", None, "malformed frame: not a JSON object"),
                ('{"id": 7}', 7, 'malformed frame: no "type" string'),
                ('{"type": "fly", "id": "a"}', "a", "unknown frame type 'fly'"),
                ('{"type": "subscribe", "from_seq": -1, "id": 2}', 2, "malformed subscribe"),
                ('{"type": "subscribe", "from_seq": "x"}', None, "malformed subscribe"),
                ('{"type": "list", "path": 3}', None, "malformed list"),
                ('{"type": "list", "colour": "red"}', None, "malformed list"),
                ('{"type": "command", "command": "fly", "id": 9}', 9, "unknown command 'fly'"),
                ('{"type": "command", "command": "retry", "id": 10}', 10, "retry needs a task_id"),
                (
                    json.dumps({"type": "command", "command": "retry", "note": "x" * 9000}),
                    None,
                    "malformed command",
                ),
                (b"\x00binary", None, "binary frames are not part of the protocol"),
            ]
            for sent, request_id, error in cases:
                await ws.send_message(sent)
                answer = await receive(ws)
                assert answer["type"] == "error", sent
                assert answer["id"] == request_id, sent
                assert answer["error"].startswith(error), (sent, answer)
            # Still usable: a subscription goes on as if nothing happened.
            frames: list[dict[str, Any]] = []
            await ws.send_message(json.dumps({"type": "subscribe", "from_seq": 450}))
            await collect_until(ws, 456, frames)
            assert [f["seq"] for f in frames] == list(range(451, 457))
            again = await request(ws, {"type": "subscribe", "from_seq": 0, "id": "twice"})
            assert again == {
                "type": "error",
                "id": "twice",
                "error": "already subscribed: open another connection",
            }
        # A frame over 64 KiB closes the connection (1009, message too big).
        async with client(gateway.info) as ws:
            await ws.send_message(json.dumps({"type": "list", "path": "x" * 70_000}))
            with pytest.raises(ConnectionClosed) as closed:
                await receive(ws)
            assert closed.value.reason.code == 1009


def _plain(data: Any) -> Any:
    """``data`` as the JSON a client decodes."""
    return json.loads(msgspec.json.encode(data))


@pytest.mark.trio
async def test_the_hello_frame_names_the_task_events(tmp_path: Path) -> None:
    """The web view and the desktop shell step through task events with this list: the
    gateway sends the dashboard's own (`TASK_EVENTS`), the clients keep no copy."""
    project = make_project(tmp_path, DEMO)
    async with running_gateway(project) as gateway:
        assert gateway.info is not None
        async with open_websocket_url(ws_url(gateway.info)) as ws:
            hello = json.loads(await ws.get_message())
    assert hello["type"] == "hello" and hello["head"] == 456
    assert hello["task_events"] == sorted(TASK_EVENTS)


@pytest.mark.trio
async def test_a_snapshot_at_a_seq_is_the_replay_at_that_seq(tmp_path: Path) -> None:
    project = make_project(tmp_path, DEMO)
    db = project.state_db
    run_id = reader.latest_run(db)
    settings = Settings()
    async with running_gateway(project) as gateway:
        assert gateway.info is not None
        async with client(gateway.info) as ws:
            for at in (1, 2, 57, 120, 300, 455, 456, None):
                answer = await request(ws, {"type": "snapshot", "at_seq": at, "id": f"s{at}"})
                assert answer["type"] == "snapshot" and answer["id"] == f"s{at}"
                assert answer["run_id"] == run_id
                assert answer["seq"] == (456 if at is None else at)
                assert answer["head"] == 456 and answer["seqs_total"] == 456
                state = reader.replay(db, at, run_id)
                assert answer["state"] == _plain(state.to_dict())
                view = answer["view"]
                assert view["board"] == _plain(
                    [row.__dict__ for row in views.board(state, settings.max_retries)]
                )
                assert view["escalations"] == _plain(views.escalations(state))
                assert view["costs"] == views.agent_costs(state)
                assert view["tree"] == _plain(view_of(state, settings, live=False).tree)
                # The run is finished: its run lines do not depend on the clock.
                assert view["run"] == _plain(
                    views.run_lines(state, live=False, budget_usd=settings.budget_usd)
                )
            latest = await request(ws, {"type": "snapshot", "at_seq": None, "run_id": None})
            assert latest["seq"] == 456 and latest["view"]["board"]
            unknown = await request(ws, {"type": "snapshot", "run_id": "nope", "id": 1})
            assert unknown == {"type": "error", "id": 1, "error": "no run 'nope' in the journal"}


@pytest.mark.trio
async def test_the_file_list_is_confined_to_the_project(tmp_path: Path) -> None:
    project = make_project(tmp_path, DEMO)
    root = project.root
    (root / "docs").mkdir()
    (root / "docs" / "requirements.md").write_text("# Build it\n")
    (root / "README.md").write_text("hello\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, root / "out")  # a symlink out of the project
    os.symlink(outside / "secret.txt", root / "docs" / "secret-link")
    os.symlink(root / "docs", root / "in")  # a symlink inside it
    os.symlink(root / ".autonoma", root / "journal-link")
    async with running_gateway(project) as gateway:
        assert gateway.info is not None
        async with client(gateway.info) as ws:
            top = await request(ws, {"type": "list", "path": "", "id": 1})
            assert top["type"] == "listing" and top["path"] == ""
            assert top["entries"] == [
                {"name": "docs", "dir": True, "size": 0},
                {"name": "in", "dir": True, "size": 0},
                {"name": "README.md", "dir": False, "size": 6},
            ]
            docs = await request(ws, {"type": "list", "path": "docs", "id": 2})
            assert docs["entries"] == [{"name": "requirements.md", "dir": False, "size": 11}]
            through = await request(ws, {"type": "list", "path": "in/", "id": 3})
            assert through["entries"] == docs["entries"]
            for path in (
                "..",
                "docs/../..",
                "docs/..",
                "/etc",
                str(outside),
                "out",
                "out/",
                "journal-link",
                ".git",
                ".autonoma",
                "docs//x",
                "missing",
                "README.md",
            ):
                answer = await request(ws, {"type": "list", "path": path, "id": path})
                assert answer["type"] == "error" and answer["id"] == path, answer
                assert "secret" not in json.dumps(answer)


@pytest.mark.trio
async def test_retry_and_resolve_commands_are_journaled_and_fed_back(tmp_path: Path) -> None:
    project = make_project(tmp_path, ESCALATED)
    db = project.state_db
    head = reader.last_seq(db)
    run_id = reader.latest_run(db)
    assert reader.replay(db, run_id=run_id).tasks["t2"].state == "escalated"
    async with running_gateway(project) as gateway:
        assert gateway.info is not None
        async with client(gateway.info) as ws:
            await ws.send_message(json.dumps({"type": "subscribe", "from_seq": head}))
            assert (await receive(ws))["type"] == "live"
            # The feed may send the journaled request before the command's answer.
            frames: list[dict[str, Any]] = []
            answer = await request(
                ws,
                {
                    "type": "command",
                    "command": "retry",
                    "task_id": "t2",
                    "note": "use the other file name",
                    "id": "r",
                },
                skipped=frames,
            )
            assert answer["type"] == "ack" and answer["id"] == "r"
            assert answer["text"].startswith("t2 will be retried when the run resumes: ")
            await collect_until(ws, head + 1, frames)
            (frame,) = [f for f in frames if f["type"] == "message"]
            assert frame["kind"] == "RetryRequested" and frame["sender"] == "human"
            assert frame["message"]["note"] == "use the other file name"
            assert frame["message"]["origin"].startswith("gateway, client 127.0.0.1:")
            assert frame["said"]["text"].startswith("t2: a human asked for a retry: use the other")
            refused = await request(
                ws, {"type": "command", "command": "resolve", "task_id": "t9", "id": 2}
            )
            assert refused["type"] == "error" and refused["id"] == 2
            assert refused["error"].startswith("no task 't9' in run ")
            paused = await request(ws, {"type": "command", "command": "pause", "id": 3})
            assert paused == {
                "type": "error",
                "id": 3,
                "error": "no run is active: nothing to pause",
            }
            for bad in ("../requirements.md", "/etc/passwd", "missing.md", ""):
                started = await request(
                    ws, {"type": "command", "command": "start", "requirements": bad, "id": 4}
                )
                assert started["type"] == "error", bad
            # A run is active (its lock is held): no second one is started.
            (project.root / "requirements.md").write_text("Build it.\n")
            lock = acquire_run_lock(project)
            try:
                started = await request(
                    ws,
                    {"type": "command", "command": "start", "requirements": "requirements.md"},
                )
            finally:
                lock.release()
            assert started == {
                "type": "error",
                "id": None,
                "error": f"a run is already active (pid {os.getpid()}): stop it first",
            }
    rows = list(reader.read(db, after_seq=head))
    assert [type(e.message) for e in rows] == [RetryRequested]
    assert not [e for e in rows if isinstance(e.message, ResolveRequested)]
