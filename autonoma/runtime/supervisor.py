"""OTP supervisors on pykka: strategies, restart types, intensity, shutdown policies.

The rules are OTP's ``supervisor`` (see SUPERVISION.md), so anyone who knows OTP can
predict them. Every start, restart, crash, exit, stop, kill and give-up is published
on the bus, with the supervisor's name as sender, in the order it happened.

Child specs and supervisor flags are checked when made, as OTP's ``check_childspecs``
and ``init`` do: a misspelt restart type, strategy or shutdown raises `BadSpec` at
once, naming the field, and nothing starts.

Threads: a supervisor's state is changed by its own thread only, except that
`Link.kill` runs ``on_kill`` in the killer's thread; the children table and the
link being stopped are guarded by one lock, and a killed supervisor starts nothing
more (a child started meanwhile is killed, never left running).

Significant children and ``auto_shutdown`` (OTP 24+) are not implemented, on purpose.
OTP allows them only for transient or temporary children, and only to end a
supervisor from inside when that child ends. A run's end is not an actor's exit: the
orchestrator (permanent: a crash restarts it, and it goes on from the journal) decides
the end and journals `RunFinished` first; the run's main thread, which waits for that,
then stops the root from outside, in reverse start order, with the merge queue's grace
for a merge in flight. A root ending itself from its own thread would race that
ordered stop and leave the main thread to notice a vanished root; the crew and the
gateway have no child whose end should end their parent.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from pykka import ActorRef

from autonoma.protocol import (
    ActorCrashed,
    ActorExited,
    ActorStarted,
    ActorStopped,
    AnyMessage,
    ChildKind,
    Escalation,
    SupervisorGaveUp,
    WorkPaused,
    WorkResumed,
)
from autonoma.runtime.actor import (
    SHUTDOWN,
    Actor,
    ChildExit,
    ExitReason,
    Link,
    Refusal,
    StartFailed,
    spawn,
)
from autonoma.runtime.bus import Bus
from autonoma.runtime.intensity import RestartWindow

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
Restart = Literal["permanent", "transient", "temporary"]
Shutdown = float | Literal["brutal_kill", "infinity"]
ChildState = Literal["running", "restarting", "stopped"]

STRATEGIES: tuple[Strategy, ...] = ("one_for_one", "one_for_all", "rest_for_one")
RESTARTS: tuple[Restart, ...] = ("permanent", "transient", "temporary")
KINDS: tuple[ChildKind, ...] = ("worker", "supervisor")


class BadSpec(Refusal, ValueError):
    """A child spec or supervisor flag is invalid; the message names the field.

    A `Refusal`: `Supervisor.start_child` with a bad spec refuses, the supervisor
    keeps running.
    """


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_flags(name: str, strategy: object, intensity: object, period: object) -> None:
    """Raise `BadSpec` unless the supervisor flags are valid (OTP's ``check_flags``)."""
    if strategy not in STRATEGIES:
        raise BadSpec(
            f"supervisor {name!r}: strategy must be one of {', '.join(STRATEGIES)}, "
            f"not {strategy!r}"
        )
    if not isinstance(intensity, int) or isinstance(intensity, bool) or intensity < 0:
        raise BadSpec(f"supervisor {name!r}: intensity must be an integer >= 0, not {intensity!r}")
    if not _is_number(period) or not 0 < period < math.inf:  # type: ignore[operator]
        raise BadSpec(f"supervisor {name!r}: period must be a number > 0, not {period!r}")


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child and what to do when it ends (OTP's child spec).

    ``start`` is a zero-argument function that starts one `Actor` and returns its
    ref. ``shutdown`` None means OTP's default: 5 s for a worker, infinity for a
    supervisor.
    """

    name: str
    start: Callable[[], ActorRef[Any]]
    restart: Restart = "permanent"
    shutdown: Shutdown | None = None
    kind: ChildKind = "worker"

    def __post_init__(self) -> None:
        """Raise `BadSpec` naming the first invalid field (OTP's ``check_childspec``)."""
        if not isinstance(self.name, str) or not self.name:
            raise BadSpec(f"child spec: name must be a non-empty string, not {self.name!r}")
        where = f"child {self.name!r}"
        if not callable(self.start):
            raise BadSpec(f"{where}: start must be callable, not {self.start!r}")
        if self.restart not in RESTARTS:
            raise BadSpec(
                f"{where}: restart must be one of {', '.join(RESTARTS)}, not {self.restart!r}"
            )
        if self.kind not in KINDS:
            raise BadSpec(f"{where}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        shutdown = self.shutdown
        valid = (
            shutdown is None
            or shutdown in ("brutal_kill", "infinity")
            or (_is_number(shutdown) and shutdown >= 0)  # type: ignore[operator]
        )
        if not valid:
            raise BadSpec(
                f"{where}: shutdown must be brutal_kill, infinity or a number of seconds "
                f">= 0, not {shutdown!r}"
            )

    @property
    def shutdown_policy(self) -> Shutdown:
        """The shutdown policy, OTP's default filled in."""
        if self.shutdown is not None:
            return self.shutdown
        return "infinity" if self.kind == "supervisor" else 5.0


@dataclass(frozen=True)
class ChildInfo:
    """One row of `Supervisor.which_children`; ``urn`` is None when not running.

    ``state`` is ``restarting`` (OTP shows the atom in place of the pid) while a
    restart attempt failed and is retried, or a root's pause keeps the child stopped.
    """

    name: str
    urn: str | None
    kind: ChildKind
    restart: Restart
    state: ChildState = "running"


class NoSuchChild(Refusal):
    """No child of that name."""


class ChildExists(Refusal):
    """A child of that name is already present (`Supervisor.start_child`)."""


class ChildRunning(Refusal):
    """The child is running (`Supervisor.restart_child`, `Supervisor.delete_child`)."""


class ChildRestarting(Refusal):
    """The child is being restarted (OTP's ``{error, restarting}``): `Supervisor.restart_child`
    and `Supervisor.delete_child` leave it to the retry (or to a root's `Supervisor.resume`)."""


class ChildStartRefused(Refusal):
    """The child failed to start (`Supervisor.start_child`, `Supervisor.restart_child`)."""

    def __init__(self, failure: StartFailed) -> None:
        super().__init__(str(failure))
        self.reason = failure.reason


class SupervisorStartFailed(Exception):
    """A child failed to start while the supervisor started: the supervisor fails too."""


@dataclass(frozen=True, slots=True)
class _TryAgainRestart:
    """A restart attempt failed; retry from the mailbox (OTP's try_again_restart).

    Going through the mailbox lets other requests in between, e.g. a stop.
    """

    name: str


class _Child:
    """A child's spec and its running instance, if any."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.link: Link | None = None
        # Should be running but is not: a restart attempt failed, or root paused it.
        self.restarting = False
        self.last_error = ""  # how its last instance ended, for SupervisorGaveUp

    @property
    def name(self) -> str:
        return self.spec.name


class Supervisor(Actor):
    """Starts its children in order, restarts them by policy, gives up past the intensity.

    Run-time API (through ``ref.proxy()`` or asks): `start_child`, `terminate_child`,
    `restart_child`, `delete_child`, `which_children`, `child_ref`, and `resume`
    for a root. Errors are `Refusal` subclasses: the caller gets them, the
    supervisor keeps running.

    A ``root`` supervisor never gives up: where another would, it publishes an
    `Escalation` and `WorkPaused` and leaves the failing child stopped until
    `resume`. It also escalates every child supervisor that gave up.

    A child's ``on_start`` must not call its supervisor: the supervisor waits for it
    (OTP's synchronous start), so the call would deadlock.
    """

    def __init__(
        self,
        bus: Bus,
        name: str,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = "one_for_one",
        intensity: int = 1,
        period: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        root: bool = False,
    ) -> None:
        # Checked before Actor.__init__ takes the link: a bad spec starts nothing.
        check_flags(name, strategy, intensity, period)
        for spec in children:
            if not isinstance(spec, ChildSpec):
                raise BadSpec(f"supervisor {name!r}: a child spec must be a ChildSpec: {spec!r}")
        names = [spec.name for spec in children]
        if len(set(names)) != len(names):
            raise BadSpec(f"supervisor {name!r}: duplicate child names in {names}")
        window = RestartWindow(intensity, period)
        super().__init__()
        self._bus = bus
        self._name = name
        self._strategy: Strategy = strategy
        self._window = window
        self._clock = clock
        self._root = root
        self._paused = False
        # Guards _children, each child's link and _stopping against on_kill, which runs
        # in the killer's thread (reentrant: a stop may happen while it is held).
        self._guard = threading.RLock()
        # The child being stopped, if any: out of _children but maybe still running.
        self._stopping: tuple[str, Link] | None = None
        # In start order, which is spec order; dicts keep insertion order.
        self._children: dict[str, _Child] = {spec.name: _Child(spec) for spec in children}

    # --- life cycle -------------------------------------------------------------------

    def on_start(self) -> None:
        """Start every child in order; if one fails, stop the others and fail."""
        try:
            for child in self._snapshot():
                self._start(child, restart=False)
        except StartFailed as failure:
            self._stop_children(list(self._children.values()))
            raise SupervisorStartFailed(str(failure)) from None
        except BaseException:
            self._stop_children(list(self._children.values()))
            raise

    def on_stop(self) -> None:
        """Stop every child, in reverse start order, each by its shutdown policy."""
        self._stop_children(list(self._children.values()))

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """The supervisor itself crashed: its children end with it, as in OTP."""
        self._stop_children(list(self._children.values()))

    def on_kill(self) -> None:
        """Killed: kill every child too (OTP's link propagation); runs in the killer's thread."""
        # The link is marked killed already: from here on `_start` links no new child,
        # so this snapshot holds every instance there is.
        with self._guard:
            links = [(child.name, child.link) for child in self._children.values()]
            stopping = self._stopping  # maybe being waited for by this supervisor's thread
            if stopping is not None:
                links.append(stopping)
        for name, link in reversed(links):
            if link is not None and link.kill():
                self._publish(ActorStopped(name=name, supervisor=self._name, how="killed"))

    def on_receive(self, message: Any) -> Any:
        """Handle the exits of children and retried restarts."""
        if isinstance(message, ChildExit):
            self._on_child_exit(message)
        elif isinstance(message, _TryAgainRestart):
            child = self._children.get(message.name)
            # Only if it still waits for its restart (it may have been terminated since).
            if child is not None and child.restarting and child.link is None:
                self._restart(child, child.last_error)
        else:
            return super().on_receive(message)
        return None

    # --- run-time API -----------------------------------------------------------------

    def start_child(self, spec: ChildSpec) -> str:
        """Add ``spec`` as the last child and start it; its URN."""
        if not isinstance(spec, ChildSpec):
            raise BadSpec(f"{self._name}: a child spec must be a ChildSpec, not {spec!r}")
        if spec.name in self._children:
            raise ChildExists(f"{self._name} already has a child {spec.name!r}")
        child = _Child(spec)
        with self._guard:
            # In the table before it starts, so that a kill meanwhile finds it.
            self._children[spec.name] = child
        try:
            self._start(child, restart=False)
        except StartFailed as failure:
            self._forget(child)
            raise ChildStartRefused(failure) from None
        if child.link is None:
            self._forget(child)  # this supervisor was killed meanwhile
        return self._urn(child)

    def terminate_child(self, name: str) -> None:
        """Stop a child by its shutdown policy, not to be restarted; a temporary one is deleted."""
        child = self._get(name)
        if child.restarting:
            # Ends its retry loop, as OTP's terminate_child does. The siblings its
            # strategy would have started after it are left stopped (OTP: undefined),
            # not waiting for a retry that will never come.
            for member in self._group(child):
                if member.link is None:
                    member.restarting = False
        self._stop_child(child)
        if child.spec.restart == "temporary":
            self._forget(child)

    def restart_child(self, name: str) -> str:
        """Start a stopped child again (does not count as a restart for the intensity).

        Refuses a running child (`ChildRunning`) and one being restarted (`ChildRestarting`).
        """
        child = self._get(name)
        if child.link is not None:
            raise ChildRunning(f"{name!r} is running")
        if child.restarting:
            raise ChildRestarting(f"{name!r} is restarting")
        try:
            self._start(child, restart=True)
        except StartFailed as failure:
            raise ChildStartRefused(failure) from None
        return self._urn(child)

    def delete_child(self, name: str) -> None:
        """Forget a stopped child's spec; refuses a running or restarting one."""
        child = self._get(name)
        if child.link is not None:
            raise ChildRunning(f"{name!r} is running")
        if child.restarting:
            raise ChildRestarting(f"{name!r} is restarting")
        self._forget(child)

    def which_children(self) -> list[ChildInfo]:
        """Every child in start order, with its URN when running and its state."""
        return [
            ChildInfo(
                name=child.name,
                urn=child.link.urn if child.link is not None else None,
                kind=child.spec.kind,
                restart=child.spec.restart,
                state=(
                    "running"
                    if child.link is not None
                    else "restarting"
                    if child.restarting
                    else "stopped"
                ),
            )
            for child in self._snapshot()
        ]

    def child_ref(self, name: str) -> ActorRef[Any] | None:
        """The running instance's ref, or None when the child is not running."""
        link = self._get(name).link
        return link.ref if link is not None else None

    def is_paused(self) -> bool:
        """True from a root's escalation until `resume`."""
        return self._paused

    def resume(self, reason: str = "resumed") -> bool:
        """Root: end a pause; publish WorkResumed and start any child the pause left stopped.

        Past restarts are forgotten. False (and nothing published) when not paused.
        """
        if not self._paused:
            return False
        self._paused = False
        self._window.clear()
        self._publish(WorkResumed(reason=reason))
        for child in self._snapshot():
            if child.restarting and child.link is None:
                try:
                    self._start(child, restart=True)
                except StartFailed:
                    # From here on a failed restart like any other: counted and retried,
                    # with what its strategy restarts along (the ones after it wait).
                    self.actor_ref.tell(_TryAgainRestart(child.name))
                    break
        return True

    # --- restarts ---------------------------------------------------------------------

    def _on_child_exit(self, message: ChildExit) -> None:
        child = self._children.get(message.name)
        if child is None or child.link is None or child.link.urn != message.urn:
            return  # an instance already stopped, killed or replaced
        with self._guard:
            child.link = None
        reason = message.reason
        self._publish_exit(child, reason)
        if self._root and reason.gave_up:
            # A subtree gave up: a human should look before new work starts. The subtree
            # itself is restarted by the usual rules, so it is ready when work resumes.
            self._escalate_and_pause(child.name, f"{child.name} gave up: {reason.error_text}")
        restart = child.spec.restart
        if restart == "temporary":
            self._forget(child)
        elif restart == "permanent" or reason.abnormal:
            self._restart(child, str(reason))

    def _restart(self, child: _Child, error: str) -> None:
        """OTP's restart/2: count the restart, give up past the intensity, else restart."""
        if not self._window.add(self._clock()):
            self._give_up(child, error)
            return
        failed = self._restart_group(child)
        if failed is not None:
            self.actor_ref.tell(_TryAgainRestart(failed.name))

    def _restart_group(self, child: _Child) -> _Child | None:
        """Restart ``child`` and the siblings its strategy takes along; the one that failed."""
        group = self._stop_group(child)
        for member in group:
            if self._link.killed:
                return None  # killed meanwhile: start nothing more
            try:
                self._start(member, restart=True)
            except StartFailed:
                return member
        return None

    def _stop_group(self, child: _Child) -> list[_Child]:
        """Stop ``child`` and the siblings its strategy takes along, last started first,
        and mark them restarting; the ones left to start again, in start order."""
        group = self._group(child)
        for other in reversed(group):
            if other.link is not None:
                self._stop_child(other)
                # A temporary child is never restarted, even when a sibling took it down.
                if other.spec.restart == "temporary":
                    self._forget(other)
        group = [member for member in group if member.name in self._children]
        for member in group:
            # Until started: the ones after a failed start wait for the retry (or resume).
            member.restarting = True
        return group

    def _group(self, child: _Child) -> list[_Child]:
        """``child`` and the siblings its strategy restarts along, in start order."""
        children = self._snapshot()
        if self._strategy == "one_for_one":
            return [child]
        if self._strategy == "one_for_all":
            return children
        return children[children.index(child) :]

    def _give_up(self, child: _Child, error: str) -> None:
        window = self._window
        detail = (
            f"{child.name} restarted more than {window.intensity} times in "
            f"{window.period:g}s; last: {error}"
        )
        if self._root:
            # The root has nobody to escalate to: pause and wait for a human. What the
            # strategy restarts along with the child (rest_for_one: the ones after it)
            # stays stopped with it until `resume` starts them again, in order.
            self._stop_group(child)
            self._escalate_and_pause(child.name, detail)
            return
        self._stop_children(list(self._children.values()))
        self._publish(
            SupervisorGaveUp(
                name=self._name,
                restarts=window.count,
                intensity=window.intensity,
                period=window.period,
                child=child.name,
                error=error,
            )
        )
        self._exit_with(ExitReason("shutdown", error_text=detail, gave_up=True))

    def _escalate_and_pause(self, source: str, detail: str) -> None:
        self._publish(Escalation(source=source, reason=detail))
        if not self._paused:
            self._paused = True
            self._publish(WorkPaused(reason=detail))

    # --- starting and stopping one child ----------------------------------------------

    def _start(self, child: _Child, *, restart: bool) -> None:
        """Start ``child`` and wait for its on_start; raises StartFailed (published).

        Once this supervisor is killed it starts nothing: it returns with the child
        not running.
        """
        spec = child.spec
        if self._link.killed:
            return
        try:
            link = spawn(spec.start, spec.name, self.actor_ref)
            link.ping()
        except StartFailed as failure:
            self._publish_crash(child, failure.reason)
            raise
        except Exception as error:
            # The start function itself raised: a failed start too.
            reason = ExitReason.crash(error, during_start=True)
            self._publish_crash(child, reason)
            raise StartFailed(spec.name, reason) from None
        with self._guard:
            # The check and the link are one step: on_kill (which runs after `killed` is
            # set, and takes the guard) either sees this link or it is killed here.
            orphan = self._link.killed
            if not orphan:
                child.link = link
                child.restarting = False
        if orphan:
            link.kill()  # this supervisor was killed meanwhile; leave no orphan
            return
        self._publish(
            ActorStarted(
                name=spec.name,
                supervisor=self._name,
                urn=link.urn,
                kind=spec.kind,
                restart=restart,
            )
        )

    def _stop_children(self, children: Sequence[_Child]) -> None:
        for child in reversed(children):
            self._stop_child(child)

    def _stop_child(self, child: _Child) -> None:
        """Stop one running child by its shutdown policy; publish how it ended."""
        with self._guard:
            link = child.link
            if link is None:
                return
            child.link = None  # from now on its ChildExit is stale
            # Still on_kill's to kill while it is being stopped.
            self._stopping = (child.name, link)
        try:
            self._stop_link(child, link)
        finally:
            with self._guard:
                self._stopping = None

    def _stop_link(self, child: _Child, link: Link) -> None:
        policy = child.spec.shutdown_policy
        if policy != "brutal_kill":
            link.ref.stop(block=False)
            timeout = None if policy == "infinity" else float(policy)
            finished = link.done.wait(timeout)
            if link.killed:
                return  # this supervisor was killed meanwhile, and the child with it
            if finished:
                self._publish_exit(child, link.reason or SHUTDOWN, asked=True)
                return
        if link.kill():
            self._publish(ActorStopped(name=child.name, supervisor=self._name, how="killed"))
        else:
            # It finished between the wait and the kill.
            self._publish_exit(child, link.reason or SHUTDOWN, asked=True)

    # --- events -----------------------------------------------------------------------

    def _publish(self, message: AnyMessage) -> None:
        self._bus.publish(self._name, message)

    def _publish_exit(self, child: _Child, reason: ExitReason, *, asked: bool = False) -> None:
        """Publish how a child ended; ``asked``: the supervisor asked it to stop."""
        child.last_error = str(reason)
        if reason.abnormal:
            self._publish_crash(child, reason)
        elif asked and reason.kind == "shutdown":
            self._publish(ActorStopped(name=child.name, supervisor=self._name, how="shutdown"))
        else:
            kind: Literal["normal", "shutdown"] = (
                "normal" if reason.kind == "normal" else "shutdown"
            )
            self._publish(ActorExited(name=child.name, supervisor=self._name, reason=kind))

    def _publish_crash(self, child: _Child, reason: ExitReason) -> None:
        child.last_error = str(reason)
        self._publish(
            ActorCrashed(
                name=child.name,
                supervisor=self._name,
                error_type=reason.error_type,
                error_text=reason.error_text,
                during_start=reason.during_start,
            )
        )

    # --- helpers ----------------------------------------------------------------------

    def _snapshot(self) -> list[_Child]:
        """The children in start order, copied under the guard."""
        with self._guard:
            return list(self._children.values())

    def _forget(self, child: _Child) -> None:
        """Drop ``child``'s spec (a temporary child that ended, `delete_child`)."""
        with self._guard:
            if self._children.get(child.name) is child:
                del self._children[child.name]

    def _get(self, name: str) -> _Child:
        child = self._children.get(name)
        if child is None:
            raise NoSuchChild(f"{self._name} has no child {name!r}")
        return child

    @staticmethod
    def _urn(child: _Child) -> str:
        return child.link.urn if child.link is not None else ""
