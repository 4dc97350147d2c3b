"""`Actor.listen`: an actor hears the bus for as long as it lives, and not a moment longer.

And one listener's failure never reaches the publisher (say a supervisor reporting a
crash while the orchestrator, which listens, is stopping).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pytest

from autonoma.protocol import Envelope, PhaseChanged
from autonoma.runtime.actor import Actor, Link, spawn
from autonoma.runtime.bus import Bus

WAIT = 5.0


class Listener(Actor):
    """Keeps every envelope it hears; crashes when told ``"crash"``.

    Its on_stop and on_failure wait for ``release`` after setting ``ending``: the test
    looks at the bus while the actor is ending, not only once it has ended.
    """

    def __init__(self, bus: Bus, ending: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.bus = bus
        self.heard: list[Envelope] = []
        self.ending = ending
        self.release = release

    def on_start(self) -> None:
        self.listen(self.bus, self.actor_ref.tell)

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        if isinstance(message, Envelope):
            self.heard.append(message)
        return None

    def _linger(self) -> None:
        self.ending.set()
        self.release.wait(WAIT)

    def on_stop(self) -> None:
        self._linger()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._linger()


def listeners(bus: Bus) -> int:
    return len(bus._listeners)


def started(bus: Bus, ending: threading.Event, release: threading.Event) -> Link:
    link = spawn(lambda: Listener.start(bus, ending, release), "listener")
    link.ping(WAIT)
    return link


def test_a_listening_actor_hears_what_is_published() -> None:
    bus = Bus()
    release = threading.Event()
    release.set()
    link = started(bus, threading.Event(), release)
    bus.publish("test", PhaseChanged(phase="planning"))
    heard = link.ref.proxy().heard.get(timeout=WAIT)
    assert [e.message for e in heard] == [PhaseChanged(phase="planning")]
    link.ref.stop()


@pytest.mark.parametrize(
    "end",
    [
        lambda link: link.ref.stop(block=False),
        lambda link: link.ref.tell("crash"),
        lambda link: link.kill(),
    ],
    ids=["stopped", "crashed", "killed"],
)
def test_an_actor_stops_listening_however_it_ends(end: Callable[[Link], object]) -> None:
    bus = Bus()
    ending, release = threading.Event(), threading.Event()
    link = started(bus, ending, release)
    assert listeners(bus) == 1
    try:
        end(link)
        if not link.killed:
            # Still in on_stop / on_failure: a tell already raises ActorDeadError, so
            # it must be off the bus by now, not only after its teardown.
            assert ending.wait(WAIT)
            assert not link.done.is_set()
        assert listeners(bus) == 0
        bus.publish("test", PhaseChanged(phase="after"))  # nobody left to tell: no error
    finally:
        release.set()
    link.wait(WAIT)


def test_a_failing_listener_never_reaches_the_publisher() -> None:
    bus = Bus()
    heard: list[Envelope] = []

    def broken(envelope: Envelope) -> None:
        raise RuntimeError("listener broke")

    bus.subscribe(broken)
    bus.subscribe(heard.append)
    envelope = bus.publish("test", PhaseChanged(phase="planning"))  # does not raise
    assert heard == [envelope]  # the listeners after the broken one still hear it
