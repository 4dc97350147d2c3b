"""Write real protocol messages into a journal through the real writer, in a process of
its own (as a run does): ``python -m tests.desktop.write_journal DB COUNT BURST PAUSE``.

Prints ``<rows per second> <last seq>``. The messages are those of a recorded demo run,
repeated as needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.desktop.gatewaylib import Writer, recorded


def main() -> None:
    db, count, burst, pause = (
        Path(sys.argv[1]),
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
    )
    envelopes = recorded()
    writer = Writer(
        db, (envelopes * (count // len(envelopes) + 1))[:count], burst=burst, pause=pause
    )
    writer.start()
    last = writer.finish()
    print(f"{writer.rate} {last}")


if __name__ == "__main__":
    main()
