"""Supervisors: the cases of OTP's supervisor_SUITE.erl, ported one by one, and more.

Tests never sleep and hope: they wait, with a deadline, for events on the bus or
for futures. Restart windows run on a fake clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pykka
import pytest
from pykka import ActorProxy, ActorRef, ActorRegistry

from autonoma.protocol import (
    ActorCrashed,
    ActorExited,
    ActorStarted,
    ActorStopped,
    AnyMessage,
    Envelope,
    Escalation,
    SupervisorGaveUp,
    WorkPaused,
    WorkResumed,
)
from autonoma.runtime.actor import Actor, ChildExit, ExitReason, Link, StartFailed, spawn
from autonoma.runtime.bus import Bus
from autonoma.runtime.supervisor import (
    BadSpec,
    ChildExists,
    ChildInfo,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    NoSuchChild,
    Restart,
    Shutdown,
    Strategy,
    Supervisor,
)

WAIT = 5.0  # seconds: the longest any test waits for something that should happen


# --- test actors and helpers ------------------------------------------------------------


class Worker(Actor):
    """A child that does what the test tells it: crash, exit, ignore a shutdown."""

    def __init__(self, name: str, world: World, *, fail_start: bool = False) -> None:
        super().__init__()
        self.label = name
        self.world = world
        self.fail_start = fail_start

    def on_start(self) -> None:
        self.world.log(f"start {self.label}")
        self.world.links[self.label] = self._link
        gate = self.world.gates.get(self.label)
        if gate is not None:
            gate.wait(WAIT)  # a slow start: the test opens the gate
        if self.fail_start:
            raise RuntimeError(f"{self.label} cannot start")

    def on_stop(self) -> None:
        self.world.log(f"stop {self.label}")
        if self.label in self.world.stubborn:
            self.world.hold.wait(WAIT)  # ignores the shutdown until the test ends

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.world.log(f"failure {self.label}")

    def on_kill(self) -> None:
        self.world.log(f"kill {self.label}")

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise ValueError("boom")
        if message in ("normal", "shutdown"):
            self.exit(message)
        return message

    def fail(self) -> None:
        """A proxy call that raises."""
        raise KeyError("no such thing")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    """The bus, everything published on it, and what the workers did."""

    bus: Bus = field(default_factory=Bus)
    envelopes: list[Envelope] = field(default_factory=list)
    journal: list[str] = field(default_factory=list)
    stubborn: set[str] = field(default_factory=set)
    hold: threading.Event = field(default_factory=threading.Event)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)  # each worker's latest instance
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.bus.subscribe(self._on_envelope)

    def _on_envelope(self, envelope: Envelope) -> None:
        with self.changed:
            self.envelopes.append(envelope)
            self.changed.notify_all()

    @property
    def messages(self) -> list[AnyMessage]:
        with self.changed:
            return [e.message for e in self.envelopes]

    def log(self, line: str) -> None:
        with self.changed:
            self.journal.append(line)
            self.changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool], what: str) -> None:
        """Wait until ``predicate`` (over messages and journal) holds, or fail after WAIT."""
        deadline = time.monotonic() + WAIT
        with self.changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"timed out waiting for {what}; events: {self.messages}")
                self.changed.wait(remaining)

    def wait_for(self, match: Callable[[AnyMessage], bool], count: int = 1) -> AnyMessage:
        """Wait until ``count`` published messages match; the last of them."""
        self.wait_until(lambda: len(self.matching(match)) >= count, f"{count} x {match}")
        return self.matching(match)[count - 1]

    def matching(self, match: Callable[[AnyMessage], bool]) -> list[AnyMessage]:
        return [m for m in self.messages if match(m)]

    def events(self, supervisor: str = "sup") -> list[tuple[str, ...]]:
        """What ``supervisor`` published, as short tuples, in order."""
        with self.changed:
            return [summary(e.message) for e in self.envelopes if e.sender == supervisor]

    def spec(
        self,
        name: str,
        *,
        restart: Restart = "permanent",
        shutdown: Shutdown | None = None,
        fail_start: Callable[[], bool] = lambda: False,
    ) -> ChildSpec:
        return ChildSpec(
            name,
            start=lambda: Worker.start(name, self, fail_start=fail_start()),
            restart=restart,
            shutdown=shutdown,
        )


def summary(message: AnyMessage) -> tuple[str, ...]:
    """An event without its URN, for comparing sequences."""
    match message:
        case ActorStarted(name=name, restart=restart):
            return ("started", name, "restart" if restart else "first")
        case ActorCrashed(name=name, error_type=t, error_text=text, during_start=during_start):
            return ("crashed", name, t, text, "during_start" if during_start else "running")
        case ActorExited(name=name, reason=reason):
            return ("exited", name, reason)
        case ActorStopped(name=name, how=how):
            return ("stopped", name, how)
    return (type(message).__name__,)


def started(name: str, *, restart: bool = True) -> Callable[[AnyMessage], bool]:
    return lambda m: isinstance(m, ActorStarted) and m.name == name and m.restart == restart


def gave_up(name: str) -> Callable[[AnyMessage], bool]:
    return lambda m: isinstance(m, SupervisorGaveUp) and m.name == name


def of_type(kind: type[Any], **fields: Any) -> Callable[[AnyMessage], bool]:
    return lambda m: isinstance(m, kind) and all(getattr(m, k) == v for k, v in fields.items())


@dataclass
class Sup:
    """A started supervisor: its link (to see it exit) and its proxy."""

    link: Link
    proxy: ActorProxy[Supervisor]

    def urn(self, name: str) -> str | None:
        return self.urns()[name]

    def urns(self) -> dict[str, str | None]:
        rows: list[ChildInfo] = self.proxy.which_children().get(timeout=WAIT)
        return {row.name: row.urn for row in rows}

    def child(self, name: str) -> ActorRef[Any]:
        ref: ActorRef[Any] | None = self.proxy.child_ref(name).get(timeout=WAIT)
        assert ref is not None, f"{name} is not running"
        return ref

    def crash(self, name: str) -> None:
        self.child(name).tell("crash")


def sup_spec(
    name: str,
    bus: Bus,
    children: Sequence[ChildSpec],
    *,
    strategy: Strategy = "one_for_one",
    intensity: int = 1,
    period: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> ChildSpec:
    return ChildSpec(
        name,
        start=lambda: Supervisor.start(
            bus,
            name,
            children,
            strategy=strategy,
            intensity=intensity,
            period=period,
            clock=clock,
        ),
        kind="supervisor",
    )


def start_sup(
    world: World,
    children: Sequence[ChildSpec] = (),
    *,
    name: str = "sup",
    strategy: Strategy = "one_for_one",
    intensity: int = 1,
    period: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    root: bool = False,
) -> Sup:
    """Start a top-level supervisor and wait for its children, as OTP's start_link does."""
    link = spawn(
        lambda: Supervisor.start(
            world.bus,
            name,
            children,
            strategy=strategy,
            intensity=intensity,
            period=period,
            clock=clock,
            root=root,
        ),
        name,
    )
    link.ping(timeout=WAIT)
    return Sup(link, link.ref.proxy())


def assert_gave_up(world: World, sup: Sup, name: str = "sup") -> None:
    world.wait_for(gave_up(name))
    reason = sup.link.wait(WAIT)
    assert reason is not None, "the supervisor did not exit"
    assert reason.kind == "shutdown"
    assert reason.gave_up


@pytest.fixture
def world() -> Iterator[World]:
    """A fresh bus; afterwards every actor is stopped, top-level supervisors first."""
    w = World()
    yield w
    w.hold.set()
    for ref in ActorRegistry.get_all():  # registration order: parents before children
        with contextlib.suppress(pykka.Timeout):
            ref.stop(block=True, timeout=WAIT)
    ActorRegistry.stop_all(block=True, timeout=WAIT)


# --- restart types -------------------------------------------------------------------------


def test_permanent_normal(world: World) -> None:
    sup = start_sup(world, [world.spec("child1")])
    old = sup.urn("child1")
    sup.child("child1").tell("normal")
    new = world.wait_for(started("child1"))
    assert isinstance(new, ActorStarted)
    assert new.urn != old
    assert sup.urn("child1") == new.urn
    assert world.events()[-2:] == [("exited", "child1", "normal"), ("started", "child1", "restart")]


def test_transient_normal(world: World) -> None:
    sup = start_sup(world, [world.spec("child1", restart="transient")])
    sup.child("child1").tell("normal")
    world.wait_for(of_type(ActorExited, name="child1"))
    assert sup.urns() == {"child1": None}  # not restarted; the spec stays
    assert world.events()[-1] == ("exited", "child1", "normal")


def test_transient_shutdown(world: World) -> None:
    sup = start_sup(world, [world.spec("child1", restart="transient")])
    sup.child("child1").tell("shutdown")
    world.wait_for(of_type(ActorExited, name="child1"))
    assert sup.urns() == {"child1": None}
    assert world.events()[-1] == ("exited", "child1", "shutdown")


def test_transient_abnormal(world: World) -> None:
    sup = start_sup(world, [world.spec("child1", restart="transient")])
    old = sup.urn("child1")
    sup.crash("child1")
    world.wait_for(started("child1"))
    assert sup.urn("child1") not in (None, old)


def check_temporary(world: World, how: str) -> None:
    sup = start_sup(world, [world.spec("child1", restart="temporary")])
    sup.child("child1").tell(how)
    world.wait_for(lambda m: isinstance(m, ActorExited | ActorCrashed))
    assert sup.urns() == {}  # never restarted, spec gone
    assert not world.matching(started("child1"))


def test_temporary_normal(world: World) -> None:
    check_temporary(world, "normal")


def test_temporary_abnormal(world: World) -> None:
    check_temporary(world, "crash")


@pytest.mark.parametrize("temporary_first", [False, True])
def test_temporary_bystander(world: World, temporary_first: bool) -> None:
    permanent = world.spec("child1")
    temporary = world.spec("child2", restart="temporary")
    children = [temporary, permanent] if temporary_first else [permanent, temporary]
    sup = start_sup(world, children, strategy="one_for_all", intensity=2, period=300)
    sup.child("child1").tell("normal")
    world.wait_for(started("child1"))
    assert list(sup.urns()) == ["child1"]  # the bystander was stopped and dropped
    assert ("stopped", "child2", "shutdown") in world.events()
    assert not world.matching(started("child2"))
    assert not sup.link.done.is_set()


# --- strategies ----------------------------------------------------------------------------


def test_one_for_one(world: World) -> None:
    sup = start_sup(world, intensity=2, period=3600)
    sup.proxy.start_child(world.spec("child1")).get(timeout=WAIT)
    sup.proxy.start_child(world.spec("child2")).get(timeout=WAIT)
    before = sup.urns()
    sup.crash("child1")
    world.wait_for(started("child1"))
    after = sup.urns()
    assert after["child1"] != before["child1"]
    assert after["child2"] == before["child2"]
    # Restart intensity: two restarts are allowed, the third failure kills the supervisor.
    sup.crash("child2")
    world.wait_for(started("child2"))
    sup.crash("child2")
    assert_gave_up(world, sup)
    assert world.events()[-2:] == [("stopped", "child1", "shutdown"), ("SupervisorGaveUp",)]


def test_one_for_one_escalation(world: World) -> None:
    starts = itertools.count()
    # child1 starts once; every restart attempt then fails in on_start.
    failing = world.spec("child1", fail_start=lambda: next(starts) > 0)
    sup = start_sup(world, intensity=4, period=3600)
    sup.proxy.start_child(failing).get(timeout=WAIT)
    sup.proxy.start_child(world.spec("child2")).get(timeout=WAIT)
    sup.crash("child1")
    assert_gave_up(world, sup)
    failed_starts = world.matching(of_type(ActorCrashed, name="child1", during_start=True))
    assert len(failed_starts) == 4  # 1 crash + 4 failed restarts = 5 restarts > 4
    give_up = world.wait_for(gave_up("sup"))
    assert isinstance(give_up, SupervisorGaveUp)
    assert (give_up.restarts, give_up.intensity, give_up.child) == (5, 4, "child1")
    assert "cannot start" in give_up.error
    assert ("stopped", "child2", "shutdown") in world.events()
    assert "stop child2" in world.journal


def test_one_for_all(world: World) -> None:
    sup = start_sup(world, strategy="one_for_all", intensity=2, period=3600)
    sup.proxy.start_child(world.spec("child1")).get(timeout=WAIT)
    sup.proxy.start_child(world.spec("child2")).get(timeout=WAIT)
    before = sup.urns()
    sup.crash("child1")
    world.wait_for(started("child2"))
    after = sup.urns()
    assert after["child1"] not in (None, before["child1"])
    assert after["child2"] not in (None, before["child2"])
    sup.crash("child2")
    world.wait_for(started("child2"), count=2)
    sup.crash("child1")
    assert_gave_up(world, sup)


def test_rest_for_one(world: World) -> None:
    names = ["child1", "child2", "child3"]
    sup = start_sup(world, [world.spec(n) for n in names], strategy="rest_for_one", intensity=2)
    before = sup.urns()
    sup.crash("child2")
    world.wait_for(started("child3"))
    after = sup.urns()
    assert after["child1"] == before["child1"]
    assert after["child2"] not in (None, before["child2"])
    assert after["child3"] not in (None, before["child3"])
    assert world.events()[-4:] == [
        ("crashed", "child2", "ValueError", "boom", "running"),
        ("stopped", "child3", "shutdown"),
        ("started", "child2", "restart"),
        ("started", "child3", "restart"),
    ]
    # The last child takes nobody along.
    sup.crash("child3")
    world.wait_for(started("child3"), count=2)
    assert sup.urn("child2") == after["child2"]


# --- shutdown ------------------------------------------------------------------------------


def test_sup_stop_timeout(world: World) -> None:
    world.stubborn.add("child1")
    sup = start_sup(world, [world.spec("child1", shutdown=0.2)])
    began = time.monotonic()
    sup.link.ref.stop(block=False)
    assert sup.link.wait(WAIT) is not None
    took = time.monotonic() - began
    # Killed after its timeout, not before, and not much later (a runtime waiting
    # 5x the timeout fails here; the slack is for a loaded machine).
    assert 0.2 <= took < 1.0, took
    assert world.events()[-1] == ("stopped", "child1", "killed")
    assert world.journal[-2:] == ["stop child1", "kill child1"]


def test_sup_stop_brutal_kill(world: World) -> None:
    sup = start_sup(world, [world.spec("child1", shutdown="brutal_kill")])
    sup.link.ref.stop(block=False)
    assert sup.link.wait(WAIT) is not None
    assert world.events()[-1] == ("stopped", "child1", "killed")
    assert "kill child1" in world.journal
    assert "stop child1" not in world.journal  # killed at once: never asked to stop


def test_sup_stop_infinity(world: World) -> None:
    world.stubborn.add("child1")
    sup = start_sup(world, [world.spec("child1", shutdown="infinity")])
    sup.link.ref.stop(block=False)
    world.wait_until(lambda: "stop child1" in world.journal, "child1 asked to stop")
    assert sup.link.wait(0.3) is None  # still waiting for its child, not killing it
    world.hold.set()
    assert sup.link.wait(WAIT) is not None
    assert world.events()[-1] == ("stopped", "child1", "shutdown")
    assert "kill child1" not in world.journal


def test_killing_a_supervisor_kills_its_children(world: World) -> None:
    inner = sup_spec("inner", world.bus, [world.spec("w1"), world.spec("w2")])
    outer = start_sup(world, [dataclasses.replace(inner, shutdown="brutal_kill")], name="outer")
    workers = [world.links["w1"], world.links["w2"]]
    outer.link.ref.stop(block=False)
    assert outer.link.wait(WAIT) is not None
    assert world.events("outer")[-1] == ("stopped", "inner", "killed")
    assert world.events("inner")[-2:] == [("stopped", "w2", "killed"), ("stopped", "w1", "killed")]
    assert "stop w1" not in world.journal
    # Each worker's own instance was killed (its on_kill ran, its thread ended), not
    # merely forgotten by a registry.
    assert world.journal[-2:] == ["kill w2", "kill w1"]
    for worker in workers:
        assert worker.killed
        assert worker.done.wait(WAIT)
        assert not worker.ref.is_alive()


def test_order_of_children(world: World) -> None:
    names = ["child1", "child2", "child3"]
    sup = start_sup(world, [world.spec(n) for n in names], strategy="one_for_all")
    assert world.journal == ["start child1", "start child2", "start child3"]
    sup.crash("child2")
    world.wait_for(started("child3"))
    assert world.journal[3:] == [
        "failure child2",
        "stop child3",
        "stop child1",
        "start child1",
        "start child2",
        "start child3",
    ]
    del world.journal[:]
    sup.link.ref.stop(block=True, timeout=WAIT)
    assert world.journal == ["stop child3", "stop child2", "stop child1"]
    assert world.events()[-3:] == [("stopped", n, "shutdown") for n in reversed(names)]


def test_tree(world: World) -> None:
    """An inner supervisor that gives up is a failed child of the outer one."""
    inner1 = sup_spec("inner1", world.bus, [world.spec("w1a"), world.spec("w1b")], period=3600)
    inner2 = sup_spec("inner2", world.bus, [world.spec("w2a"), world.spec("w2b")], period=3600)
    outer = start_sup(
        world, [inner1, inner2], name="outer", strategy="one_for_all", intensity=4, period=3600
    )
    before = outer.urns()
    inner1_proxy = outer.child("inner1").proxy()
    first_w2a = outer.child("inner2").proxy().child_ref("w2a").get(timeout=WAIT)
    w1a = inner1_proxy.child_ref("w1a").get(timeout=WAIT)
    w1a.tell("crash")
    world.wait_for(started("w1a"))
    inner1_proxy.child_ref("w1a").get(timeout=WAIT).tell("crash")  # past intensity 1
    world.wait_for(gave_up("inner1"))
    world.wait_for(started("inner2"))
    after = outer.urns()
    assert after["inner1"] not in (None, before["inner1"])
    assert after["inner2"] not in (None, before["inner2"])
    assert world.events("outer") == [
        ("started", "inner1", "first"),
        ("started", "inner2", "first"),
        ("exited", "inner1", "shutdown"),
        ("stopped", "inner2", "shutdown"),
        ("started", "inner1", "restart"),
        ("started", "inner2", "restart"),
    ]
    # The new inner2 runs new workers.
    new_w2a = outer.child("inner2").proxy().child_ref("w2a").get(timeout=WAIT)
    assert new_w2a is not None and first_w2a is not None
    assert new_w2a.actor_urn != first_w2a.actor_urn
    assert not outer.link.done.is_set()


# --- restart intensity on a fake clock -----------------------------------------------------


def test_restarts_outside_the_window_are_forgotten(world: World) -> None:
    clock = FakeClock()
    sup = start_sup(world, [world.spec("child1")], intensity=1, period=1, clock=clock)
    for n in range(1, 6):
        sup.crash("child1")
        world.wait_for(started("child1"), count=n)
        clock.now += 2  # one crash every 2 s never adds up
    assert not world.matching(gave_up("sup"))


@pytest.mark.parametrize(("third_at", "gives_up"), [(10.0, True), (10.5, False)])
def test_intensity_boundary(world: World, third_at: float, gives_up: bool) -> None:
    clock = FakeClock()
    start = clock.now
    sup = start_sup(world, [world.spec("child1")], intensity=2, period=10, clock=clock)
    sup.crash("child1")
    world.wait_for(started("child1"))
    clock.now = start + 5
    sup.crash("child1")
    world.wait_for(started("child1"), count=2)
    clock.now = start + third_at  # the restart at `start` is in the window at 10.0, not 10.5
    sup.crash("child1")
    if gives_up:
        assert_gave_up(world, sup)
    else:
        world.wait_for(started("child1"), count=3)
        assert not world.matching(gave_up("sup"))


# --- what counts as a crash ----------------------------------------------------------------


def test_crash_in_ask_handler_is_a_crash(world: World) -> None:
    sup = start_sup(world, [world.spec("child1")])
    old = sup.urn("child1")
    with pytest.raises(ValueError, match="boom"):
        sup.child("child1").ask("crash", timeout=WAIT)  # the asker still gets the error
    world.wait_for(started("child1"))
    assert sup.urn("child1") not in (None, old)
    assert ("crashed", "child1", "ValueError", "boom", "running") in world.events()
    assert "failure child1" in world.journal  # on_failure runs for an ask crash too


def test_crash_in_proxy_call_is_a_crash(world: World) -> None:
    sup = start_sup(world, [world.spec("child1")])
    with pytest.raises(KeyError):
        sup.child("child1").proxy().fail().get(timeout=WAIT)
    world.wait_for(started("child1"))
    assert ("crashed", "child1", "KeyError", "'no such thing'", "running") in world.events()


def test_start_function_must_start_an_autonoma_actor(world: World) -> None:
    plain = ChildSpec("plain", start=lambda: pykka.ThreadingActor.start())
    with pytest.raises(StartFailed):
        start_sup(world, [plain])
    assert world.events()[0][:3] == ("crashed", "plain", "TypeError")


def test_crash_in_on_start_fails_the_supervisor_start(world: World) -> None:
    children = [
        world.spec("child1"),
        world.spec("child2", fail_start=lambda: True),
        world.spec("child3"),
    ]
    with pytest.raises(StartFailed) as failure:
        start_sup(world, children)
    assert failure.value.reason.error_type == "SupervisorStartFailed"
    assert "child2 cannot start" in failure.value.reason.error_text
    assert world.events() == [
        ("started", "child1", "first"),
        ("crashed", "child2", "RuntimeError", "child2 cannot start", "during_start"),
        ("stopped", "child1", "shutdown"),
    ]
    assert "start child3" not in world.journal


def test_child_ignoring_shutdown_is_killed_after_its_timeout(world: World) -> None:
    world.stubborn.add("child1")
    sup = start_sup(world, [world.spec("child1", shutdown=0.2), world.spec("child2")])
    began = time.monotonic()
    sup.proxy.terminate_child("child1").get(timeout=WAIT)
    took = time.monotonic() - began
    assert 0.2 <= took < 1.0, took  # waited its timeout, then killed it at once
    assert world.events()[-1] == ("stopped", "child1", "killed")
    assert "kill child1" in world.journal
    assert sup.urn("child1") is None  # not restarted
    assert sup.urn("child2") is not None


# --- the actor base, without a supervisor ------------------------------------------------


class Parent(Actor):
    """Stands in for a supervisor: logs the exits it is told."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildExit):
            self.world.log(f"exit {message.name} {message.reason}")
        return None


def test_exit_is_told_once_after_cleanup(world: World) -> None:
    parent = Parent.start(world)
    link = spawn(lambda: Worker.start("w", world), "w", parent)
    link.ping(timeout=WAIT)
    with pytest.raises(ValueError):
        link.ref.ask("crash", timeout=WAIT)
    assert link.wait(WAIT) == ExitReason("crash", "ValueError", "boom")
    parent.ask("flush", timeout=WAIT)  # the exit was told before link.done was set
    assert world.journal == ["start w", "failure w", "exit w ValueError: boom"]


def test_ping_fails_with_the_on_start_error(world: World) -> None:
    link = spawn(lambda: Worker.start("w", world, fail_start=True), "w")
    with pytest.raises(StartFailed) as failure:
        link.ping(timeout=WAIT)
    assert failure.value.reason == ExitReason(
        "crash", "RuntimeError", "w cannot start", during_start=True
    )
    assert "failure w" not in world.journal  # pykka runs no on_failure after on_start


def test_killed_actor_reports_nothing(world: World) -> None:
    parent = Parent.start(world)
    link = spawn(lambda: Worker.start("w", world), "w", parent)
    link.ping(timeout=WAIT)
    assert link.kill()
    assert not link.kill()  # once
    assert not link.ref.is_alive()
    assert link.done.wait(WAIT)  # its thread ended...
    assert link.reason is None  # ...and recorded no reason
    parent.ask("flush", timeout=WAIT)
    assert world.journal == ["start w", "kill w"]


# --- run-time API --------------------------------------------------------------------------


def test_runtime_api(world: World) -> None:
    sup = start_sup(world, [world.spec("child1")])
    urn = sup.proxy.start_child(world.spec("child2")).get(timeout=WAIT)
    assert sup.urns() == {"child1": sup.urn("child1"), "child2": urn}
    with pytest.raises(ChildExists):
        sup.proxy.start_child(world.spec("child2")).get(timeout=WAIT)
    with pytest.raises(ChildRunning):
        sup.proxy.delete_child("child2").get(timeout=WAIT)
    with pytest.raises(NoSuchChild):
        sup.proxy.terminate_child("nobody").get(timeout=WAIT)
    sup.proxy.terminate_child("child2").get(timeout=WAIT)
    assert sup.proxy.child_ref("child2").get(timeout=WAIT) is None
    again = sup.proxy.restart_child("child2").get(timeout=WAIT)
    assert again not in (None, urn)
    sup.proxy.terminate_child("child2").get(timeout=WAIT)
    sup.proxy.delete_child("child2").get(timeout=WAIT)
    assert list(sup.urns()) == ["child1"]
    assert not sup.link.done.is_set()  # refusals did not crash it
    rows = sup.proxy.which_children().get(timeout=WAIT)
    assert [(r.name, r.kind, r.restart) for r in rows] == [("child1", "worker", "permanent")]


# --- the root supervisor -------------------------------------------------------------------


def test_root_escalation_pauses_instead_of_dying(world: World) -> None:
    crew = sup_spec("crew", world.bus, [world.spec("dev1")], intensity=0, period=3600)
    root = start_sup(
        world,
        [world.spec("journal"), crew],
        name="root",
        strategy="rest_for_one",
        intensity=1,
        period=3600,
        root=True,
    )
    journal_urn = root.urn("journal")

    def crash_dev() -> None:
        dev = root.child("crew").proxy().child_ref("dev1").get(timeout=WAIT)
        assert dev is not None
        dev.tell("crash")

    crash_dev()  # crew gives up (intensity 0): root escalates, pauses work, restarts crew
    world.wait_for(started("crew"))
    escalation = world.wait_for(of_type(Escalation, source="crew"))
    assert isinstance(escalation, Escalation)
    assert "gave up" in escalation.reason
    paused = world.wait_for(lambda m: isinstance(m, WorkPaused))
    assert isinstance(paused, WorkPaused)
    assert "crew" in paused.reason
    assert root.proxy.is_paused().get(timeout=WAIT)
    assert root.urn("crew") is not None

    crash_dev()  # again: root's own intensity (1) is exceeded, so crew stays down
    # crew's second give-up, then root's own: "crew restarted more than 1 times"
    last = world.wait_for(of_type(Escalation, source="crew"), count=3)
    assert isinstance(last, Escalation)
    assert last.reason.startswith("crew restarted more than 1 times in 3600s")
    assert len(world.matching(lambda m: isinstance(m, WorkPaused))) == 1  # paused once
    assert root.urns() == {"journal": journal_urn, "crew": None}  # others untouched
    assert root.proxy.is_paused().get(timeout=WAIT)
    assert not root.link.done.is_set()
    assert not world.matching(gave_up("root"))

    root.proxy.resume("a human looked").get(timeout=WAIT)
    assert world.matching(lambda m: isinstance(m, WorkResumed))
    world.wait_for(started("crew"), count=2)
    assert root.urn("crew") is not None
    assert not root.proxy.is_paused().get(timeout=WAIT)


# --- the bus -------------------------------------------------------------------------------


def test_every_event_is_on_the_bus_in_order(world: World) -> None:
    sup = start_sup(world, [world.spec("a"), world.spec("b")], intensity=10)
    sup.crash("a")
    world.wait_for(started("a"))
    sup.child("b").tell("normal")
    world.wait_for(started("b"))
    sup.proxy.terminate_child("b").get(timeout=WAIT)
    starts = itertools.count()
    flaky = world.spec("c", restart="transient", fail_start=lambda: next(starts) == 1)
    sup.proxy.start_child(flaky).get(timeout=WAIT)
    sup.crash("c")  # its restart fails once, then is retried and succeeds
    world.wait_for(started("c"))
    sup.link.ref.stop(block=True, timeout=WAIT)
    assert world.events() == [
        ("started", "a", "first"),
        ("started", "b", "first"),
        ("crashed", "a", "ValueError", "boom", "running"),
        ("started", "a", "restart"),
        ("exited", "b", "normal"),
        ("started", "b", "restart"),
        ("stopped", "b", "shutdown"),
        ("started", "c", "first"),
        ("crashed", "c", "ValueError", "boom", "running"),
        ("crashed", "c", "RuntimeError", "c cannot start", "during_start"),
        ("started", "c", "restart"),
        ("stopped", "c", "shutdown"),
        ("stopped", "a", "shutdown"),
    ]
    assert {e.sender for e in world.envelopes} == {"sup"}


def test_a_root_pause_stops_what_rest_for_one_takes_along_and_resume_starts_it_in_order(
    world: World,
) -> None:
    root = start_sup(
        world,
        [world.spec("journal"), world.spec("orchestrator"), world.spec("crew")],
        name="root",
        strategy="rest_for_one",
        intensity=0,
        period=3600,
        root=True,
    )
    journal_urn = root.urn("journal")
    orchestrator = root.child("orchestrator")
    orchestrator.tell("crash")  # intensity 0: the root pauses at once
    world.wait_for(lambda m: isinstance(m, WorkPaused))
    # The crew, started after the orchestrator, is stopped with it (OTP's rest_for_one).
    world.wait_for(of_type(ActorStopped, name="crew"))
    assert root.urns() == {"journal": journal_urn, "orchestrator": None, "crew": None}
    assert states(root) == {
        "journal": "running",
        "orchestrator": "restarting",
        "crew": "restarting",
    }
    with pytest.raises(ChildRestarting):  # `resume` starts them, in order
        root.proxy.restart_child("crew").get(timeout=WAIT)

    assert root.proxy.resume("a human looked").get(timeout=WAIT)
    world.wait_for(started("crew"))
    order = [m.name for m in world.matching(of_type(ActorStarted, restart=True))]
    assert order == ["orchestrator", "crew"]  # in start order
    assert root.urn("journal") == journal_urn  # before the failed child: untouched
    assert not root.proxy.is_paused().get(timeout=WAIT)


# --- a child in its restart-retry loop (OTP's hanging_restart_loop) -------------------------


def failing_while(broken: threading.Event) -> Callable[[], bool]:
    """A fail_start that fails while ``broken`` is set (a little slowly: the retry loop
    goes through the mailbox, and need not spin the CPU)."""

    def fail() -> bool:
        if broken.is_set():
            time.sleep(0.005)
            return True
        return False

    return fail


def states(sup: Sup) -> dict[str, str]:
    rows: list[ChildInfo] = sup.proxy.which_children().get(timeout=WAIT)
    return {row.name: row.state for row in rows}


def test_hanging_restart_loop(world: World) -> None:
    broken = threading.Event()
    clock = FakeClock()  # never moves: the loop stays within the intensity
    spec = world.spec("child1", fail_start=failing_while(broken))
    sup = start_sup(world, [spec], intensity=10**9, period=10, clock=clock)
    broken.set()
    sup.crash("child1")
    world.wait_for(of_type(ActorCrashed, name="child1", during_start=True), count=2)
    with pytest.raises(ChildExists):
        sup.proxy.start_child(spec).get(timeout=WAIT)
    with pytest.raises(ChildRestarting):
        sup.proxy.restart_child("child1").get(timeout=WAIT)
    with pytest.raises(ChildRestarting):
        sup.proxy.delete_child("child1").get(timeout=WAIT)
    assert states(sup) == {"child1": "restarting"}
    assert sup.urns() == {"child1": None}

    sup.proxy.terminate_child("child1").get(timeout=WAIT)  # ends the loop
    assert states(sup) == {"child1": "stopped"}
    broken.clear()
    assert sup.proxy.restart_child("child1").get(timeout=WAIT)
    assert states(sup) == {"child1": "running"}

    broken.set()
    sup.crash("child1")  # in the loop again: a stop still ends the supervisor at once
    world.wait_for(of_type(ActorCrashed, name="child1", during_start=True), count=4)
    sup.link.ref.stop(block=False)
    assert sup.link.wait(WAIT) is not None


def test_rest_for_one_restarting_child_is_refused_and_the_later_ones_start_again(
    world: World,
) -> None:
    broken = threading.Event()
    clock = FakeClock()
    children = [
        world.spec("child1"),
        world.spec("child2", fail_start=failing_while(broken)),
        world.spec("child3"),
    ]
    sup = start_sup(world, children, strategy="rest_for_one", intensity=10**9, clock=clock)
    child1 = sup.urn("child1")
    broken.set()
    sup.crash("child2")
    world.wait_for(of_type(ActorCrashed, name="child2", during_start=True), count=2)
    assert states(sup) == {"child1": "running", "child2": "restarting", "child3": "restarting"}
    with pytest.raises(ChildRestarting):
        sup.proxy.restart_child("child2").get(timeout=WAIT)
    with pytest.raises(ChildRestarting):
        sup.proxy.restart_child("child3").get(timeout=WAIT)
    broken.clear()
    world.wait_for(started("child3"))
    assert states(sup) == {"child1": "running", "child2": "running", "child3": "running"}
    assert sup.urn("child1") == child1


def test_terminating_a_restarting_child_leaves_the_later_ones_stopped(world: World) -> None:
    broken = threading.Event()
    children = [world.spec("child1", fail_start=failing_while(broken)), world.spec("child2")]
    sup = start_sup(world, children, strategy="rest_for_one", intensity=10**9, clock=FakeClock())
    broken.set()
    sup.crash("child1")
    world.wait_for(of_type(ActorCrashed, name="child1", during_start=True), count=2)
    sup.proxy.terminate_child("child1").get(timeout=WAIT)
    assert states(sup) == {"child1": "stopped", "child2": "stopped"}  # nobody waits now
    broken.clear()
    assert sup.proxy.restart_child("child2").get(timeout=WAIT)
    assert states(sup) == {"child1": "stopped", "child2": "running"}


# --- child specs and supervisor flags (OTP's child_specs, sup_flags) -----------------------


def noop_start() -> ActorRef[Any]:
    raise AssertionError("a bad spec must start nothing")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"name": ""}, "name"),
        ({"start": "not callable"}, "start"),
        ({"restart": "prmanent"}, "restart must be one of permanent, transient, temporary"),
        ({"shutdown": -10}, "shutdown"),
        ({"shutdown": "soon"}, "shutdown"),
        ({"shutdown": True}, "shutdown"),
        ({"kind": "wrker"}, "kind"),
    ],
)
def test_child_specs_bad(fields: dict[str, Any], named: str) -> None:
    args: dict[str, Any] = {"name": "child", "start": noop_start, **fields}
    with pytest.raises(BadSpec, match=named):
        ChildSpec(**args)


@pytest.mark.parametrize(
    "fields",
    [
        {"shutdown": "infinity", "kind": "supervisor"},
        {"shutdown": 1, "kind": "supervisor"},
        {"restart": "temporary", "shutdown": 1.5},
        {"restart": "transient", "shutdown": 0},
        {"shutdown": "infinity"},
        {"shutdown": "brutal_kill"},
    ],
)
def test_child_specs_good(fields: dict[str, Any]) -> None:
    ChildSpec("child", start=noop_start, **fields)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ({"strategy": "none_for_one"}, "strategy"),
        ({"intensity": float("inf")}, "intensity"),
        ({"intensity": -1}, "intensity"),
        ({"intensity": "2"}, "intensity"),
        ({"period": 0}, "period"),
        ({"period": float("inf")}, "period"),
        ({"period": "3600"}, "period"),
    ],
)
def test_sup_flags(world: World, flags: dict[str, Any], named: str) -> None:
    with pytest.raises(BadSpec, match=named) as bad:
        Supervisor.start(world.bus, "sup", [world.spec("child1")], **flags)
    assert str(bad.value).startswith("supervisor 'sup': ")
    assert world.journal == []  # nothing started
    assert ActorRegistry.get_all() == []


def test_duplicate_child_names(world: World) -> None:
    with pytest.raises(BadSpec, match="duplicate"):
        Supervisor.start(world.bus, "sup", [world.spec("child"), world.spec("child")])
    assert world.journal == []


def test_start_child_with_a_bad_spec_is_refused(world: World) -> None:
    sup = start_sup(world, [world.spec("child1")])
    with pytest.raises(BadSpec):
        sup.proxy.start_child("hej").get(timeout=WAIT)
    assert not sup.link.done.is_set()


# --- races and refusals --------------------------------------------------------------------


def test_a_refusal_after_a_tell_does_not_crash_the_supervisor(world: World) -> None:
    sup = start_sup(world, [world.spec("child1")])
    urn = sup.urn("child1")
    sup.link.ref.proxy().terminate_child.defer("chlid1")  # a typo, fire and forget
    assert sup.urns() == {"child1": urn}  # answered after the tell: still running
    assert not sup.link.done.is_set()
    assert not any(e[0] == "stopped" for e in world.events())


def test_a_killed_supervisor_starts_no_more_children(world: World) -> None:
    world.gates["child1"] = threading.Event()
    names = ["child1", "child2", "child3"]
    link = spawn(lambda: Supervisor.start(world.bus, "sup", [world.spec(n) for n in names]), "sup")
    world.wait_until(lambda: "start child1" in world.journal, "child1 starting")
    assert link.kill()  # while its on_start waits for child1
    world.gates["child1"].set()
    assert link.done.wait(WAIT)
    assert "start child2" not in world.journal
    assert world.journal[-1] == "kill child1"  # started meanwhile: killed, not orphaned
    assert world.links["child1"].done.wait(WAIT)
    assert not any(e[0] == "started" for e in world.events())


def test_a_listener_stopping_while_the_supervisor_reports_a_crash(world: World) -> None:
    sup = start_sup(world, [world.spec("child1")], intensity=10)
    stopping = threading.Event()
    release = threading.Event()

    class Slow(Actor):
        """Listens to the bus and takes its time to stop."""

        def on_start(self) -> None:
            self.listen(world.bus, self.actor_ref.tell)

        def on_stop(self) -> None:
            stopping.set()
            release.wait(WAIT)

    listener = spawn(Slow.start, "listener")
    listener.ping(WAIT)
    listener.ref.stop(block=False)
    assert stopping.wait(WAIT)  # stopping: a tell to it raises ActorDeadError now
    try:
        sup.crash("child1")  # the supervisor publishes the crash and the restart
        world.wait_for(started("child1"))
        assert not sup.link.done.is_set()
        assert sup.urn("child1") is not None
    finally:
        release.set()


def test_killing_a_supervisor_while_it_waits_for_a_child_to_stop(world: World) -> None:
    """on_kill (in the killer's thread) finds the child the supervisor is stopping."""
    world.stubborn.add("child1")
    sup = start_sup(world, [world.spec("child1", shutdown="infinity"), world.spec("child2")])
    child1 = world.links["child1"]
    pending = sup.proxy.terminate_child("child1")  # the supervisor now waits for child1
    world.wait_until(lambda: "stop child1" in world.journal, "child1 asked to stop")
    assert sup.link.kill()
    assert child1.killed  # killed with its supervisor, though out of the table
    assert world.links["child2"].killed
    assert "kill child1" in world.journal
    with contextlib.suppress(Exception):
        pending.get(timeout=0.1)


# --- OTP's *_other_child_fails_restart and do_not_save_child_specs_for_temporary_children ---


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # rest_for_one: the retry restarts child2 only; child1 keeps its new instance.
        (
            "rest_for_one",
            [
                ("crashed", "child1", "ValueError", "boom", "running"),
                ("stopped", "child2", "shutdown"),
                ("started", "child1", "restart"),
                ("crashed", "child2", "RuntimeError", "child2 cannot start", "during_start"),
                ("started", "child2", "restart"),
            ],
        ),
        # one_for_all: the retry is a group restart again: child1 is stopped and started.
        (
            "one_for_all",
            [
                ("crashed", "child1", "ValueError", "boom", "running"),
                ("stopped", "child2", "shutdown"),
                ("started", "child1", "restart"),
                ("crashed", "child2", "RuntimeError", "child2 cannot start", "during_start"),
                ("stopped", "child1", "shutdown"),
                ("started", "child1", "restart"),
                ("started", "child2", "restart"),
            ],
        ),
    ],
)
def test_other_child_fails_restart(
    world: World, strategy: Strategy, expected: list[tuple[str, ...]]
) -> None:
    starts = itertools.count()
    children = [world.spec("child1"), world.spec("child2", fail_start=lambda: next(starts) == 1)]
    sup = start_sup(world, children, strategy=strategy, intensity=3, period=3600)
    sup.crash("child1")
    world.wait_for(started("child2"))
    assert world.events()[2:] == expected
    assert set(states(sup).values()) == {"running"}


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
@pytest.mark.parametrize(
    ("restart", "how", "after"),
    [
        ("permanent", "crash", "restarted"),
        ("permanent", "normal", "restarted"),
        ("permanent", "terminate_child", "present"),
        ("transient", "crash", "restarted"),
        ("transient", "normal", "present"),
        ("transient", "shutdown", "present"),
        ("transient", "terminate_child", "present"),
        ("temporary", "crash", "gone"),
        ("temporary", "normal", "gone"),
        ("temporary", "terminate_child", "gone"),
    ],
)
def test_do_not_save_child_specs_for_temporary_children(
    world: World, strategy: Strategy, restart: Restart, how: str, after: str
) -> None:
    sup = start_sup(world, [], strategy=strategy, intensity=2, period=3600)
    spec = world.spec("child", restart=restart)
    first = sup.proxy.start_child(spec).get(timeout=WAIT)
    if how == "terminate_child":
        sup.proxy.terminate_child("child").get(timeout=WAIT)
    else:
        sup.child("child").tell(how)
        world.wait_for(lambda m: isinstance(m, ActorCrashed | ActorExited) and m.name == "child")
    if after == "restarted":
        world.wait_for(started("child"))
        assert sup.urn("child") not in (None, first)
        with pytest.raises(ChildExists):  # OTP: {error, {already_started, _}}
            sup.proxy.start_child(spec).get(timeout=WAIT)
    elif after == "present":
        assert states(sup) == {"child": "stopped"}
        with pytest.raises(ChildExists):  # OTP: {error, already_present}
            sup.proxy.start_child(spec).get(timeout=WAIT)
        assert sup.proxy.restart_child("child").get(timeout=WAIT)
    else:
        assert states(sup) == {}
        assert sup.proxy.start_child(spec).get(timeout=WAIT)
