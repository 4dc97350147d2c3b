"""The gateway's live feed over real sockets: catch-up then live, resubscribing, slow
clients, many clients. The journal is written meanwhile by the real journal writer with
real protocol messages (those of a recorded demo run)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from autonoma.desktop.feed import BATCH, Feed, Outbox
from autonoma.journal import reader
from autonoma.protocol import decode_message
from autonoma.words import describe
from tests.desktop.gatewaylib import (
    Writer,
    client,
    collect_until,
    journal_seqs,
    make_project,
    receive,
    recorded,
    running_gateway,
    seqs,
    ws_url,
)


@pytest.mark.trio
async def test_catch_up_then_live_with_no_gap_and_no_duplicate_across_a_kill(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path)
    envelopes = recorded() * 3  # 1368 rows
    writer = Writer(project.state_db, envelopes, burst=10, pause=0.01)
    async with running_gateway(project) as gateway:
        assert gateway.info is not None
        writer.start()
        # Subscribed while the journal is being written: part catch-up, part live.
        await trio.to_thread.run_sync(lambda: _wait_rows(project.state_db, 200))
        # The first client, in a process of its own, is killed (SIGKILL) mid-stream.
        first: list[dict[str, object]] = []
        killed = subprocess.Popen(
            [sys.executable, "-m", "tests.desktop.subscriber", ws_url(gateway.info), "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert killed.stdout is not None
            # Killed once live, at least 400 rows in: part catch-up, part live.
            while len(seqs(first)) < 400 or not [f for f in first if f["type"] == "live"]:
                line = await trio.to_thread.run_sync(killed.stdout.readline)
                assert line, "the subscriber ended"
                kind, seq = line.split()
                first.append({"type": kind, "seq": int(seq)})
        finally:
            killed.kill()
            killed.wait()
        last_received = seqs(first)[-1]
        second: list[dict[str, object]] = []
        async with client(gateway.info) as ws:
            await ws.send_message(json.dumps({"type": "subscribe", "from_seq": last_received}))
            last = await trio.to_thread.run_sync(writer.finish)
            await collect_until(ws, last, second)
    written = journal_seqs(project.state_db)
    assert len(written) == len(envelopes)
    # Every row once, in order, across the two connections.
    assert seqs(first) + seqs(second) == written
    # Each connection says once when it is live, after its catch-up.
    for frames in (first, second):
        lives = [i for i, f in enumerate(frames) if f["type"] == "live"]
        assert len(lives) == 1
        live = frames[lives[0]]
        before = seqs(frames[: lives[0]])
        assert not before or live["seq"] >= before[-1]
    # Each frame is its row: the envelope, the message as journaled, its words.
    rows = {row[0]: row for row in reader.rows(project.state_db)}
    for frame in [f for f in second if f["type"] == "message"][::37]:
        _, ts, run_id, sender, recipient, kind, body = rows[frame["seq"]]  # type: ignore[index]
        assert (frame["ts"], frame["run_id"], frame["sender"], frame["recipient"]) == (
            ts,
            run_id,
            sender,
            recipient,
        )
        assert frame["kind"] == kind and frame["message"] == json.loads(body)
        said = describe(decode_message(body))
        assert frame["said"] == (
            None
            if said is None
            else {
                "text": said.text,
                "level": said.level,
                "task_id": said.task_id,
                "agent_id": said.agent_id,
            }
        )


def _wait_rows(db: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if db.exists() and reader.last_seq(db) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"the journal did not reach {count} rows")


@pytest.mark.trio
async def test_fifty_clients_at_once_each_receive_everything(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    envelopes = recorded() * 2
    writer = Writer(project.state_db, envelopes, burst=20, pause=0.01)
    results: dict[int, list[dict[str, object]]] = {}
    async with running_gateway(project) as gateway:
        info = gateway.info
        assert info is not None
        ready = trio.Semaphore(0)
        finished = trio.Event()
        final: list[int] = []

        async def one(n: int) -> None:
            frames: list[dict[str, object]] = []
            async with client(info) as ws:
                await ws.send_message(json.dumps({"type": "subscribe", "from_seq": 0}))
                ready.release()
                await finished.wait()
                await collect_until(ws, final[0], frames, timeout=120)
            results[n] = frames

        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(one, n)
            for _ in range(50):
                await ready.acquire()
            writer.start()
            final.append(await trio.to_thread.run_sync(writer.finish))
            finished.set()
    written = journal_seqs(project.state_db)
    assert len(written) == len(envelopes)
    assert len(results) == 50
    for frames in results.values():
        assert seqs(frames) == written


def _raw_subscriber(info_url: str, token: str, from_seq: int) -> socket.socket:
    """A client that does the handshake, subscribes, and then reads nothing."""
    host, port = info_url.removeprefix("ws://").split("/")[0].split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        (
            f"GET /ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps({"type": "subscribe", "from_seq": from_seq}).encode()
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


def _write_rate(db: Path, count: int) -> float:
    """Rows per second the real journal writer commits, in a process of its own as a run,
    paced as a busy run (bursts)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.desktop.write_journal", str(db), str(count), "20", "0.005"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.split()[0])


async def _write_while_reading(
    ws: WebSocketConnection, db: Path, rows: int
) -> tuple[float, list[dict[str, object]]]:
    """Write ``rows`` rows while ``ws`` (subscribed) reads them all; the writer's rate."""
    target = reader.last_seq(db) + rows
    frames: list[dict[str, object]] = []
    rate: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect_until, ws, target, frames, 120)
        rate.append(await trio.to_thread.run_sync(_write_rate, db, rows))
    return rate[0], frames


@pytest.mark.trio
async def test_a_client_that_never_reads_is_dropped_and_slows_neither_the_run_nor_others(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path)
    rows = 5000
    async with running_gateway(project, outbox_frames=2000, drop_grace=60) as gateway:
        info = gateway.info
        assert info is not None
        # The writer's rate with one reading client only...
        async with client(info) as ws:
            await ws.send_message(json.dumps({"type": "subscribe", "from_seq": 0}))
            await receive(ws)  # live
            alone, _ = await _write_while_reading(ws, project.state_db, rows)
        # ...and with a client that never reads beside it.
        first = reader.last_seq(project.state_db)
        stuck = _raw_subscriber(info.url, info.token, first)
        try:
            async with client(info) as ws:
                await ws.send_message(json.dumps({"type": "subscribe", "from_seq": 0}))
                beside, others = await _write_while_reading(ws, project.state_db, rows)
            last = reader.last_seq(project.state_db)
            assert seqs(others) == journal_seqs(project.state_db)
            print(
                f"\nwriter: {alone:,.0f} rows/s with one reader, {beside:,.0f} rows/s with a "
                f"client that never reads beside it: ratio {beside / alone:.2f}"
            )
            # The stuck client now reads: what was on the wire, then why it was dropped.
            stuck.settimeout(30)
            frames, code = _read_until_close(stuck)
        finally:
            stuck.close()
    dropped = [f for f in frames if f["type"] == "dropped"]
    assert len(dropped) == 1, [f["type"] for f in frames][-5:]
    assert dropped[0]["reason"].startswith("fell behind")
    received = seqs(frames)
    # In order, no gap, from where it subscribed until it was dropped.
    assert received == list(range(first + 1, first + len(received) + 1))
    assert dropped[0]["last_seq"] == received[-1] < last
    assert code == 4000

    # Resubscribed from its last seq, it gets the rest: nothing missed, nothing twice.
    async with running_gateway(project) as gateway:
        assert gateway.info is not None
        rest: list[dict[str, object]] = []
        async with client(gateway.info) as ws:
            await ws.send_message(
                json.dumps({"type": "subscribe", "from_seq": dropped[0]["last_seq"]})
            )
            await collect_until(ws, last, rest)
    assert received + seqs(rest) == journal_seqs(project.state_db)[first:]


def _read_until_close(sock: socket.socket) -> tuple[list[dict[str, object]], int]:
    """Read server frames (unmasked) until a close frame; the text frames and the code."""
    buffer = b""
    frames: list[dict[str, object]] = []

    def need(n: int) -> bytes:
        nonlocal buffer
        while len(buffer) < n:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed without a close frame")
            buffer += data
        taken, buffer = buffer[:n], buffer[n:]
        return taken

    while True:
        first, second = need(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(need(2), "big")
        elif length == 127:
            length = int.from_bytes(need(8), "big")
        payload = need(length)
        opcode = first & 0x0F
        if opcode == 0x1:
            frames.append(json.loads(payload))
        elif opcode == 0x8:
            return frames, int.from_bytes(payload[:2], "big")


@pytest.mark.trio
async def test_a_slow_client_catching_up_is_paced_not_dropped(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    # 2,280 rows: a catch-up of several batches, more than the outbox holds.
    await trio.to_thread.run_sync(Writer(project.state_db, recorded() * 5, pause=0).run)
    async with running_gateway(project, outbox_frames=1000, drop_grace=30) as gateway:
        info = gateway.info
        assert info is not None
        frames: list[dict[str, object]] = []
        async with open_websocket_url(ws_url(info)) as ws:
            await ws.send_message(json.dumps({"type": "subscribe", "from_seq": 0}))
            # Not read for a while: the catch-up waits for the client, so nothing is
            # dropped (only the live feed drops, and a client that stops reading).
            await trio.sleep(0.5)
            with trio.fail_after(30):
                try:
                    while True:
                        frames.append(json.loads(await ws.get_message()))
                        if frames[-1]["type"] == "live":
                            break
                except ConnectionClosed:
                    pass
        assert seqs(frames) == journal_seqs(project.state_db)
        assert not [f for f in frames if f["type"] == "dropped"]


@pytest.mark.trio
async def test_a_client_that_stops_reading_during_its_catch_up_is_dropped(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    await trio.to_thread.run_sync(Writer(project.state_db, recorded() * 5, pause=0).run)
    async with running_gateway(project, outbox_frames=1000, stall=1.0, drop_grace=30) as gateway:
        info = gateway.info
        assert info is not None
        stuck = _raw_subscriber(info.url, info.token, 0)
        try:
            await trio.sleep(2.5)
            stuck.settimeout(30)
            frames, code = await trio.to_thread.run_sync(_read_until_close, stuck)
        finally:
            stuck.close()
    (dropped,) = [f for f in frames if f["type"] == "dropped"]
    assert dropped["reason"] == "not reading: 1000 frames waited 1 s"
    assert seqs(frames) == list(range(1, dropped["last_seq"] + 1))
    assert code == 4000


@pytest.mark.trio
async def test_a_client_that_caught_up_at_its_own_pace_joins_with_room_for_a_burst(
    tmp_path: Path,
) -> None:
    # The catch-up waits for the client, so when it ends the outbox may be full; joining
    # the live feed then, the run's next burst would drop a client that reads fine.
    project = make_project(tmp_path)
    await trio.to_thread.run_sync(Writer(project.state_db, recorded() * 3, pause=0).run)
    feed = Feed(project.state_db)
    feed.cursor = reader.last_seq(project.state_db)
    feed.started.set()
    outbox = Outbox(limit=2 * BATCH)
    received: list[int] = []
    async with trio.open_nursery() as nursery:
        joined = trio.Event()

        async def subscribe() -> None:
            await feed.subscribe(outbox, 0)
            joined.set()

        nursery.start_soon(subscribe)
        await trio.sleep(0.2)  # not read yet: the catch-up fills the outbox and waits
        assert len(outbox) == outbox.limit
        while not joined.is_set():  # read one frame at a time
            item = await outbox.get()
            assert item is not None
            received.append(item[0])
            await trio.sleep(0)
    # A burst of the run as large as half the outbox, at once: nothing is dropped.
    burst = [(feed.cursor + i, "{}") for i in range(1, outbox.limit // 2 - 1)]
    feed._broadcast(burst)
    assert outbox.closed_reason is None
    while len(outbox):
        item = await outbox.get()
        assert item is not None
        received.append(item[0])
    catch_up = journal_seqs(project.state_db)
    assert [s for s in received if s] == catch_up + [seq for seq, _ in burst]
