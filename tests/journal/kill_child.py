"""Child process for the SIGKILL test: publishes through the journal until it is killed.

Usage: ``python kill_child.py DB RUN_ID BATCH_SIZE BATCH_MS``. The main thread appends
durably and prints ``<seq> <tag>`` once each is committed (so every printed seq must be
in the journal after the kill); a second thread appends without waiting, so batches mix
durable and plain envelopes and commits happen by count and by time.
"""

from __future__ import annotations

import sys
import threading
import time

from autonoma.journal.writer import Journal
from autonoma.protocol import AgentText, AgentToolResult, CostReported, Envelope


def main() -> None:
    path, run_id, batch_size, batch_ms = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    client = Journal.open(path, batch_size=int(batch_size), batch_ms=float(batch_ms))
    print("ready", flush=True)

    def noise() -> None:
        n = 0
        while True:
            n += 1
            client.append(
                Envelope(
                    seq=0,
                    ts=time.time(),
                    run_id=run_id,
                    sender="noise",
                    recipient="*",
                    message=AgentToolResult(
                        agent_id="noise", tool_use_id=f"n{n}", content="x" * (n % 700)
                    ),
                )
            )
            if n % 50 == 0:
                time.sleep(0.001)

    threading.Thread(target=noise, daemon=True).start()
    n = 0
    while True:
        n += 1
        tag = f"{run_id}/{n}"
        message = (
            AgentText(agent_id="dev-1", text=tag)
            if n % 3
            else CostReported(agent_id="dev-1", usd=0.01, input_tokens=n, task_id=tag)
        )
        seq = client.append_durable(
            Envelope(
                seq=0, ts=time.time(), run_id=run_id, sender="dev-1", recipient="*", message=message
            ),
            timeout=30,
        )
        sys.stdout.write(f"{seq} {tag}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
