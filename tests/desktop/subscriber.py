"""A websocket client in a process of its own, to be killed mid-stream by a test:
``python -m tests.desktop.subscriber URL FROM_SEQ`` prints one line per frame received
(``message SEQ`` or ``live SEQ``), flushed, until it is killed."""

from __future__ import annotations

import json
import sys

import trio
from trio_websocket import open_websocket_url


async def main(url: str, from_seq: int) -> None:
    async with open_websocket_url(url, max_message_size=2**24) as ws:
        await ws.get_message()  # hello
        await ws.send_message(json.dumps({"type": "subscribe", "from_seq": from_seq}))
        while True:
            frame = json.loads(await ws.get_message())
            print(frame["type"], frame.get("seq", ""), flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
