"""The gateway as a child of the run's root supervisor (``autonoma start``, setting ``gateway``).

The actor owns a `GatewayThread` (the gateway's own trio loop in a thread): its mailbox
never waits on a client. It starts it in ``on_start`` (the port is listened on and
``gateway.json`` written before the run goes on) and stops it in ``on_stop`` (clients
closed, ``gateway.json`` removed). A crash of the gateway's loop crashes the actor, so
the supervisor journals it. It is a temporary child: a gateway that fails is not
restarted and the run goes on without it (the web view only watches a run, and the
journal keeps everything for a later ``autonoma serve``). When ``gateway.json`` already
names a live gateway of the project (``autonoma serve``), this one does not start a
second one: that one serves the run's journal too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pykka import ActorRef

from autonoma.config import Settings
from autonoma.desktop import info
from autonoma.desktop.gateway import Gateway, GatewayThread
from autonoma.project import Project
from autonoma.runtime.actor import Actor
from autonoma.runtime.supervisor import ChildSpec

GATEWAY = "gateway"
"""The child's name under the root."""


class GatewayCrashed(Exception):
    """The gateway's loop ended with an error."""


@dataclass(frozen=True)
class _Crashed:
    error: str


class GatewayActor(Actor):
    """Runs the project's gateway for as long as it lives."""

    def __init__(self, project: Project, settings: Settings) -> None:
        super().__init__()
        self.project = project
        self.settings = settings
        self.running: GatewayThread | None = None
        self.info: info.GatewayInfo | None = None
        self.other: info.GatewayInfo | None = None
        """A live gateway of the project found at start (then this one serves nothing)."""

    def on_start(self) -> None:
        self.other = info.live(info.path_in(self.project.dir))
        if self.other is not None:
            return
        me = self.actor_ref
        running = GatewayThread(
            Gateway(self.project, self.settings),
            on_crash=lambda err: me.tell(_Crashed(f"{type(err).__name__}: {err}")),
        )
        self.info = running.start()
        self.running = running

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Crashed):
            raise GatewayCrashed(message.error)
        return None

    def on_stop(self) -> None:
        if self.running is not None:
            self.running.stop()

    def on_kill(self) -> None:
        if self.running is not None:
            self.running.stop(timeout=2.0)


def gateway_spec(project: Project, settings: Settings) -> ChildSpec:
    """The root's ``gateway`` child for ``project``."""

    def start() -> ActorRef[Any]:
        ref: ActorRef[Any] = GatewayActor.start(project, settings)
        return ref

    return ChildSpec(GATEWAY, start=start, restart="temporary", shutdown=15.0)
