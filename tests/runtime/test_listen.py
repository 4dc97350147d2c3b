"""`Actor.listen`: an actor hears the bus for as long as it lives, and not a moment longer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from autonoma.protocol import Envelope, PhaseChanged
from autonoma.runtime.actor import Actor, spawn
from autonoma.runtime.bus import Bus

WAIT = 5.0


class Listener(Actor):
    """Keeps every envelope it hears; crashes when told ``"crash"``."""

    def __init__(self, bus: Bus) -> None:
        super().__init__()
        self.bus = bus
        self.heard: list[Envelope] = []

    def on_start(self) -> None:
        self.listen(self.bus, self.actor_ref.tell)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        if isinstance(message, Envelope):
            self.heard.append(message)
        return None


def listeners(bus: Bus) -> int:
    return len(bus._listeners)


def started(bus: Bus) -> Any:
    link = spawn(lambda: Listener.start(bus), "listener")
    link.ping(WAIT)
    return link


def test_a_listening_actor_hears_what_is_published() -> None:
    bus = Bus()
    link = started(bus)
    bus.publish("test", PhaseChanged(phase="planning"))
    heard = link.ref.proxy().heard.get(timeout=WAIT)
    assert [e.message for e in heard] == [PhaseChanged(phase="planning")]
    link.ref.stop()


@pytest.mark.parametrize(
    "end",
    [
        lambda link: link.ref.stop(block=True),
        lambda link: (link.ref.tell("crash"), link.wait(WAIT)),
        lambda link: link.kill(),
    ],
    ids=["stopped", "crashed", "killed"],
)
def test_an_actor_stops_listening_however_it_ends(end: Callable[[Any], object]) -> None:
    bus = Bus()
    link = started(bus)
    assert listeners(bus) == 1
    end(link)
    link.wait(WAIT)
    assert listeners(bus) == 0
    bus.publish("test", PhaseChanged(phase="after"))  # nobody left to tell: no error
