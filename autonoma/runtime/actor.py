"""The actor base: pykka actors with OTP-style links, exit reasons and kill.

pykka has no links or monitors, so every supervised actor derives from `Actor`. It
records why it ended (``normal``, ``shutdown``, or a crash with the exception's type
and text) and, once all its cleanup has run, tells its supervisor exactly once with
a `ChildExit`. An exception escaping any handler (tell, ask or proxy call) crashes
the actor, as in OTP; the asker of an ask still gets the exception. A `Refusal` is
OTP's error reply, not a crash: the asker gets it, and after a tell it is dropped.

A supervisor starts a child with `spawn`, which hands the child a `Link`: the
supervisor's side of that one instance (its reason, a ``done`` event, `Link.ping`
to wait for ``on_start``, `Link.kill`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import pykka
from pykka import ActorDeadError, ActorRef, ActorRegistry

# Private pykka names, pinned by pyproject (pykka>=4.1,<5): the stop message, to know
# a stop asked from outside, and the envelope, to wake a killed actor's thread.
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from autonoma.protocol import Envelope as BusEnvelope
from autonoma.runtime.bus import Bus, Listener

logger = logging.getLogger("autonoma.runtime")

ExitKind = Literal["normal", "shutdown", "crash"]
ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


@dataclass(frozen=True, slots=True)
class ExitReason:
    """Why an actor ended: ``normal``, ``shutdown``, or ``crash`` with the exception."""

    kind: ExitKind
    error_type: str = ""
    error_text: str = ""
    during_start: bool = False
    # A supervisor that gave up exits with ``shutdown`` (as in OTP) and says so here,
    # with the error that made it give up in ``error_text``.
    gave_up: bool = False

    @classmethod
    def crash(cls, error: BaseException | None, *, during_start: bool = False) -> ExitReason:
        """The reason for an actor that raised ``error``."""
        if error is None:
            return cls("crash", "Unknown", "no exception recorded", during_start)
        return cls("crash", type(error).__name__, str(error), during_start)

    @property
    def abnormal(self) -> bool:
        """True for a crash: what makes a transient child restart."""
        return self.kind == "crash"

    def __str__(self) -> str:
        if self.kind == "crash":
            return f"{self.error_type}: {self.error_text}" if self.error_text else self.error_type
        if self.gave_up:
            return f"{self.kind} (gave up: {self.error_text})"
        return self.kind


NORMAL = ExitReason("normal")
SHUTDOWN = ExitReason("shutdown")


@dataclass(frozen=True, slots=True)
class ChildExit:
    """Told to a supervisor once a linked child has ended and cleaned up.

    ``urn`` names the instance: a supervisor ignores exits of instances it no
    longer runs (one it killed, or one it already replaced).
    """

    name: str
    urn: str
    reason: ExitReason


class StartFailed(Exception):
    """A child's ``on_start`` (or its start function) raised: the child never ran."""

    def __init__(self, name: str, reason: ExitReason) -> None:
        super().__init__(f"{name} failed to start: {reason}")
        self.name = name
        self.reason = reason


class Refusal(Exception):
    """Raise in a handler to refuse a request without crashing (OTP's error reply).

    The asker of an ask gets the exception and the actor keeps running. After a
    tell there is nobody to refuse to: the refusal is logged and dropped, and the
    actor keeps running too (a typo in a fire-and-forget ``terminate_child`` must
    not take a subtree down).
    """


class _Ping:
    """Answered once ``on_start`` has run: the loop only reads messages after it."""


class _Wake:
    """Put in a killed actor's inbox so a thread waiting for a message ends."""


# Set by `spawn` around the start function, read by `Actor.__init__` in the same
# thread: the child is linked before it runs, so even a crash in on_start is reported.
_pending = threading.local()

# How often `Link.ping` looks whether the actor ended without answering (see there).
_PING_SLICE = 0.02


class Link:
    """The supervisor's side of one started instance of a child."""

    def __init__(self, name: str, supervisor: ActorRef[Any] | None) -> None:
        self.name = name
        self.supervisor = supervisor
        self.done = threading.Event()
        """Set when the actor's thread has finished, all its cleanup included."""
        self.reason: ExitReason | None = None
        self.killed = False
        self._lock = threading.Lock()
        self._finished = False
        self._actor: weakref.ref[Actor] | None = None
        self._ref: ActorRef[Any] | None = None

    @property
    def ref(self) -> ActorRef[Any]:
        """The instance's pykka ref."""
        if self._ref is None:
            raise RuntimeError(f"link {self.name!r} has no actor yet")
        return self._ref

    @property
    def urn(self) -> str:
        """The instance's URN: a restart is a new instance with a new URN."""
        return self.ref.actor_urn

    def ping(self, timeout: float | None = None) -> None:
        """Wait until the actor has run ``on_start``: OTP's start_link is synchronous.

        Raises `StartFailed` with the reason when ``on_start`` raised. An actor that
        ended otherwise counts as started; its `ChildExit` follows as usual.
        Raises `pykka.Timeout` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        future = self.ref.ask(_Ping(), block=False)
        while True:
            try:
                future.get(timeout=_PING_SLICE)
                return
            except ActorDeadError:
                break
            except pykka.Timeout:
                # pykka can lose an ask put in the inbox just after the actor drained
                # it for the last time; once the thread is done nobody will answer.
                if self.done.is_set() or self.killed:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise
        reason = self.reason
        if reason is not None and reason.abnormal and reason.during_start:
            raise StartFailed(self.name, reason)

    def wait(self, timeout: float | None = None) -> ExitReason | None:
        """Wait until the actor's thread has finished; its reason, or None on timeout."""
        if not self.done.wait(timeout):
            return None
        return self.reason

    def kill(self) -> bool:
        """Kill the instance now; False if it had already finished (nothing to kill).

        A thread cannot be killed: the actor is unregistered, marked stopped and
        treated as dead at once; its ``on_kill`` runs in the caller's thread (to end
        what it owns, e.g. an OS process), and nothing it does later is reported.
        """
        with self._lock:
            if self._finished or self.killed:
                return False
            self.killed = True
        ref = self.ref
        ActorRegistry.unregister(ref)
        ref.actor_stopped.set()
        actor = self._actor() if self._actor is not None else None
        if actor is not None:
            actor._stop_listening()
            try:
                actor.on_kill()
            except Exception:
                logger.debug("on_kill of %s raised", actor, exc_info=True)
        # A thread waiting for a message would wait forever; this ends it.
        ref.actor_inbox.put(Envelope(_Wake()))
        return True

    def _bind(self, actor: Actor) -> None:
        self._actor = weakref.ref(actor)
        self._ref = actor.actor_ref

    @property
    def _bound(self) -> bool:
        return self._ref is not None

    def _set_reason(self, reason: ExitReason) -> bool:
        """Record the exit reason: the first one, except that a crash beats normal/shutdown."""
        with self._lock:
            current = self.reason
            if current is None or (reason.abnormal and not current.abnormal):
                self.reason = reason
                return True
            return False

    def _finish(self) -> bool:
        """Mark the thread finished; True if the exit is to be reported (not killed)."""
        with self._lock:
            self._finished = True
            return not self.killed


def spawn(
    start: Callable[[], ActorRef[Any]],
    name: str,
    supervisor: ActorRef[Any] | None = None,
) -> Link:
    """Call ``start`` (which starts one `Actor`) with the new actor linked to ``supervisor``.

    The first `Actor` constructed by ``start`` in this thread takes the link, so
    that actor must be the one whose ref ``start`` returns. Follow with `Link.ping`
    to wait for its ``on_start``.
    """
    link = Link(name, supervisor)
    previous = getattr(_pending, "link", None)
    _pending.link = link
    try:
        ref = start()
    except BaseException:
        if link._bound:
            link.kill()
        raise
    finally:
        _pending.link = previous
    if not link._bound or link.urn != ref.actor_urn:
        if link._bound:
            link.kill()
        ref.stop(block=False)
        raise TypeError(
            f"the start function of {name!r} must start an autonoma Actor, it returned {ref}"
        )
    return link


class Actor(pykka.ThreadingActor):
    """Base of every supervised actor: reports its exit to its supervisor exactly once.

    End yourself with `exit`; let an exception escape to crash (the supervisor
    restarts you by its rules); override `on_kill` if you own something that must
    die with you, such as an OS process.
    """

    # A stuck actor thread must never keep the program from exiting.
    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        link: Link | None = getattr(_pending, "link", None)
        if link is not None and not link._bound:
            _pending.link = None
        else:
            link = Link(type(self).__name__, None)
        link._bind(self)
        self._link = link
        self._starting = False
        # exc_info of a crash in an ask handler, for on_failure (see teardown).
        self._unreported: ExcInfo | None = None
        self._unsubscribes: list[Callable[[], None]] = []
        self._listen_lock = threading.Lock()

    def listen(self, bus: Bus, listener: Listener) -> None:
        """Call ``listener`` with every envelope on ``bus`` until this actor ends, however.

        The listener runs in the publisher's thread: it should only ``tell`` this actor.
        Once this actor is stopping, a ``tell`` raises `pykka.ActorDeadError`: the
        listener is unsubscribed as soon as the actor stops (not only at teardown), and
        an envelope that still reaches it in between is dropped, never raised into the
        publisher (e.g. a supervisor reporting a crash).
        """

        def shielded(envelope: BusEnvelope) -> None:
            with contextlib.suppress(ActorDeadError):
                listener(envelope)

        unsubscribe = bus.subscribe(shielded)
        with self._listen_lock:
            self._unsubscribes.append(unsubscribe)

    def _stop_listening(self) -> None:
        with self._listen_lock:
            unsubscribes, self._unsubscribes = self._unsubscribes, []
        for unsubscribe in unsubscribes:
            unsubscribe()

    def exit(self, reason: Literal["normal", "shutdown"] = "normal") -> None:
        """End this actor with ``reason`` when the current handler returns.

        Call it last: ``on_stop`` runs at once, and the messages still queued are
        answered with `pykka.ActorDeadError`.
        """
        self._exit_with(NORMAL if reason == "normal" else SHUTDOWN)

    def on_kill(self) -> None:
        """Hook: the supervisor is killing this actor (no ``on_stop`` will run).

        Runs in the supervisor's thread, maybe while this actor's thread is busy:
        keep it short and thread-safe, e.g. SIGKILL a process group you own.
        """

    def _exit_with(self, reason: ExitReason) -> None:
        self._link._set_reason(reason)
        self._stop()

    def _crash(self, error: BaseException | None) -> None:
        reason = ExitReason.crash(error, during_start=self._starting)
        # Before on_failure and teardown: from here on a tell raises ActorDeadError.
        self._stop_listening()
        if self._link._set_reason(reason):
            # Debug only: the CLI must never print a traceback; the bus carries the error.
            logger.debug("%s crashed", self, exc_info=error)
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    # --- pykka internals ------------------------------------------------------------
    # These override private methods of pykka.Actor (pinned: pykka>=4.1,<5; read
    # pykka/_actor.py when upgrading). pykka's loop: _actor_loop_setup (on_start),
    # _actor_loop_running (calls _handle_receive per message, and _handle_failure +
    # on_failure when a tell handler raised), then _actor_loop_teardown, always.

    def _stop(self) -> None:
        # Stop listening before on_stop: from here on a tell raises ActorDeadError.
        self._stop_listening()
        super()._stop()

    def _actor_loop_running(self) -> None:
        # pykka's loop (pykka/_actor.py), but a `Refusal` raised after a tell is
        # dropped instead of crashing the actor: nobody waits for that answer.
        while not self.actor_stopped.is_set():
            envelope = self.actor_inbox.get()
            try:
                response = self._handle_receive(envelope.message)
                if envelope.reply_to is not None:
                    envelope.reply_to.set(response)
            except Refusal as refusal:
                if envelope.reply_to is not None:
                    envelope.reply_to.set_exception()
                else:
                    logger.info("%s refused a told %r: %s", self, envelope.message, refusal)
            except Exception:
                if envelope.reply_to is not None:
                    envelope.reply_to.set_exception()
                else:
                    self._handle_failure(*sys.exc_info())
                    try:
                        self.on_failure(*sys.exc_info())
                    except Exception:
                        self._handle_failure(*sys.exc_info())
            except BaseException:
                logger.debug("%r in %s: stopping all actors", sys.exc_info()[1], self)
                self._stop()
                ActorRegistry.stop_all()

    def _actor_loop_setup(self) -> None:
        # Tells a crash in on_start (the child never ran) from a later one.
        self._starting = True
        try:
            super()._actor_loop_setup()
        finally:
            self._starting = False

    def _handle_receive(self, message: Any) -> Any:
        if self._link.killed:
            return None  # already dead to its supervisor: drop what is left
        if isinstance(message, _Ping):
            return None
        if isinstance(message, _ActorStop):
            self._link._set_reason(SHUTDOWN)
        try:
            return super()._handle_receive(message)
        except Refusal:
            raise
        except BaseException as error:
            # pykka would keep running after an ask handler raised; OTP semantics is
            # a crash. After a tell, pykka also calls _handle_failure and on_failure.
            self._crash(error)
            self._unreported = sys.exc_info()
            raise

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Replaces pykka's, which logs the traceback at error level (to stderr).
        # pykka calls on_failure right after this one when a tell handler raised.
        self._unreported = None
        self._crash(exception_value)

    def _actor_loop_teardown(self) -> None:
        self._stop_listening()
        unreported, self._unreported = self._unreported, None
        if unreported is not None and not self._link.killed:
            # pykka calls on_failure only after a tell; a crashed ask gets it here.
            try:
                self.on_failure(*unreported)
            except Exception:
                self._handle_failure(*sys.exc_info())
        del unreported  # holds a traceback, hence frames
        super()._actor_loop_teardown()
        link = self._link
        if link._finish() and link.supervisor is not None:
            message = ChildExit(link.name, self.actor_urn, link.reason or SHUTDOWN)
            # A supervisor that is stopping waits on link.done instead.
            with contextlib.suppress(ActorDeadError):
                link.supervisor.tell(message)
        link.done.set()
