"""Gateway bench: messages per second delivered to 1, 10 and 50 websocket clients, against
the journal's own write and read rates, and the delay from a row's commit to a client.

A project gets an empty journal; ``autonoma serve`` runs on it (a process of its own);
for each client count, a writer process (as a run: the real journal writer) appends
``--rows`` real messages (those of a recorded demo run, ``tests/tui/data/demo.db`` or
``--journal``) as fast as it can, while the clients, subscribed and live, read every
one. Printed for each count:

- the writer's rate (rows committed per second), with those clients reading;
- what each client received per second (first row written to the last row received),
  and the frames per second the gateway sent in all;
- the delay from a row's time stamp (taken when it was appended, a batch before its
  commit) to its arrival at a client: median, p99, max.

The baselines: the writer's rate with no gateway at all, and ``reader.rows`` reading
the whole journal (the journal's own read rate). Figures only, no pass/fail.
Run: ``.venv/bin/python bench/gateway.py [--rows N] [--clients 1,10,50] [--journal PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

from autonoma.desktop import info
from autonoma.journal import reader
from autonoma.journal.writer import Journal
from autonoma.protocol import Envelope

DEMO = Path(__file__).parent.parent / "tests" / "tui" / "data" / "demo.db"


def write(db: Path, source: Path, rows: int, pace: float) -> None:
    """The writer process: append ``rows`` messages of ``source`` (``pace`` rows/s in
    bursts of 10, 0: as fast as it can); print its rate."""
    envelopes = list(reader.read(source))
    client = Journal.open(db)
    began = time.perf_counter()
    last = 0
    for index in range(rows):
        old = envelopes[index % len(envelopes)]
        envelope = Envelope(
            seq=0,
            ts=time.time(),
            run_id=old.run_id,
            sender=old.sender,
            recipient=old.recipient,
            message=old.message,
        )
        if index == rows - 1:
            last = client.append_durable(envelope, timeout=120)
        else:
            client.append(envelope)
        if pace and index % 10 == 9:
            time.sleep(max(0.0, began + (index + 1) / pace - time.perf_counter()))
    rate = rows / (time.perf_counter() - began)
    client.stop()
    print(f"{rate} {last}")


def run_writer(db: Path, source: Path, rows: int, pace: float = 0.0) -> tuple[float, int]:
    """The writer in a process of its own; its rate and the last seq it wrote."""
    done = subprocess.run(
        [
            *(sys.executable, __file__, "--write", str(db), "--journal", str(source)),
            *("--rows", str(rows), "--pace", str(pace)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rate, last = done.stdout.split()
    return float(rate), int(last)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks


async def measure(
    found: info.GatewayInfo, db: Path, source: Path, clients: int, rows: int, pace: float
) -> dict[str, float]:
    """One round: ``clients`` live clients while the writer writes ``rows`` rows."""
    start = reader.last_seq(db)
    target = start + rows
    delays: list[float] = []
    finished: list[float] = []
    ready = trio.Semaphore(0)

    async def one() -> None:
        url = f"{found.url}?token={found.token}"
        async with open_websocket_url(url, max_message_size=2**24) as ws:
            await ws.get_message()  # hello
            await ws.send_message(json.dumps({"type": "subscribe", "from_seq": start}))
            while json.loads(await ws.get_message())["type"] != "live":
                pass
            ready.release()
            while True:
                frame = json.loads(await ws.get_message())
                if frame["type"] != "message":
                    continue
                delays.append(time.time() - frame["ts"])
                if frame["seq"] >= target:
                    finished.append(time.perf_counter())
                    return

    written: list[tuple[float, int]] = []
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(one)
        for _ in range(clients):
            await ready.acquire()
        began = time.perf_counter()
        cpu = cpu_seconds(found.pid)
        written.append(await trio.to_thread.run_sync(run_writer, db, source, rows, pace))
    elapsed = max(finished) - began
    cpu = cpu_seconds(found.pid) - cpu
    delays.sort()
    return {
        "writer": written[0][0],
        "per_client": rows / elapsed,
        "frames": rows * clients / elapsed,
        "median_ms": statistics.median(delays) * 1000,
        "p99_ms": delays[int(len(delays) * 0.99) - 1] * 1000,
        "max_ms": delays[-1] * 1000,
        "cpu_us_per_frame": cpu / (rows * clients) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--journal", type=Path, default=DEMO)
    parser.add_argument("--pace", type=float, default=500.0, help="rows/s of the delay round")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write is not None:
        write(args.write, args.journal, args.rows, args.pace)
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "project"
        root.mkdir()
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / ".autonoma").mkdir()
        db = root / ".autonoma" / "state.db"
        alone, _ = run_writer(db, args.journal, args.rows)
        began = time.perf_counter()
        count = sum(1 for _ in reader.rows(db))
        read_rate = count / (time.perf_counter() - began)
        print(
            f"journal: writer {alone:,.0f} rows/s, no gateway; reader.rows {read_rate:,.0f} rows/s"
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "autonoma", "serve"], cwd=root, stdout=subprocess.DEVNULL
        )
        try:
            path = info.path_in(root / ".autonoma")
            deadline = time.monotonic() + 30
            found = info.live(path)
            while found is None and time.monotonic() < deadline:
                time.sleep(0.05)
                found = info.live(path)
            assert found is not None, "autonoma serve did not start"
            for clients in [int(n) for n in args.clients.split(",")]:
                burst = trio.run(measure, found, db, args.journal, clients, args.rows, 0.0)
                paced = trio.run(
                    measure, found, db, args.journal, clients, int(args.pace * 2), args.pace
                )
                print(
                    f"{clients:3d} clients, a burst of {args.rows} rows: writer "
                    f"{burst['writer']:,.0f} rows/s ({burst['writer'] / alone:.2f} of alone); "
                    f"each client {burst['per_client']:,.0f} msgs/s, "
                    f"{burst['frames']:,.0f} frames/s in all, gateway CPU "
                    f"{burst['cpu_us_per_frame']:.0f} us/frame"
                )
                print(
                    f"{clients:3d} clients, {args.pace:.0f} rows/s for 2 s: append to client "
                    f"median {paced['median_ms']:.0f} ms, p99 {paced['p99_ms']:.0f} ms, "
                    f"max {paced['max_ms']:.0f} ms"
                )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
