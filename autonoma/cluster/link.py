"""The link actor: a remote agent's stand-in in the crew supervisor, on the head.

`RemoteAgentActor` answers the orchestrator exactly as a local `AgentActor` does
(`run_turn`, `stop_turn`, `busy`, `last_outcome`, the same `AgentStateChanged`), but its
turn runs in a Ray actor (`autonoma.cluster.node.NodeAgent`) on a node of the cluster:

- `run_turn` captures the task's clone on the head as a `State` (a git bundle and a
  patch), puts it in Ray's object store and has the node start ``claude`` there;
- the link polls the node for the turn's messages (a long poll whose future is told to
  the link's mailbox, which never blocks) and publishes them on the head's bus in order,
  where the journal keeps them as a local agent's;
- at the end the node's work comes back as a `State` that is restored into the head's
  clone before the end of the turn is published, so the orchestrator sees the commits as
  it would see a local agent's.

A dead node or a dead Ray actor is a crash of this link (Ray's own restarts are off):
the crew supervisor restarts it by its policy, the new link makes a new Ray actor, and
the orchestrator resumes the task from the commits the head last took in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import ray
from ray.exceptions import GetTimeoutError, RayError, RayTaskError

from autonoma.agents.agent import AgentBusy, TurnRefused, TurnRequest
from autonoma.agents.port import PortError
from autonoma.agents.roles import RoleError, load_role
from autonoma.agents.turn import TurnOutcome
from autonoma.cluster.bundle import BundleError, capture, git, git_env, restore
from autonoma.cluster.node import Batch, NodeAgent, TurnResult, TurnSpec, shipped_files
from autonoma.config import Settings
from autonoma.protocol import AgentState, AgentStateChanged, AgentText, SetupRan
from autonoma.runtime.actor import Actor
from autonoma.runtime.bus import Bus
from autonoma.workflow.setup import failure_reason

AGENT_CPUS = 1.0
"""Logical CPUs a remote agent asks of the cluster: one build or test run at a time."""

START_TIMEOUT = 120.0
"""Seconds the node may take to clone and spawn (an actor waiting for a free node)."""

POLL_WAIT = 1.0
"""Seconds one poll waits on the node for a message before it comes back empty."""

_RemoteNode: Any = ray.remote(NodeAgent)


class NodeLost(Exception):
    """The node or the Ray actor of a remote agent is gone: this link crashes with it."""


@dataclass(frozen=True)
class _Polled:
    future: Future[Batch]
    generation: int


@dataclass(frozen=True)
class _Lost:
    error: BaseException


@dataclass(frozen=True)
class _Prepared:
    future: Future[SetupRan | None]


class RemoteAgentActor(Actor):
    """``developer-1``, ``qa-2``, ...: an agent whose turns run on a cluster's node."""

    def __init__(
        self,
        bus: Bus,
        agent_id: str,
        *,
        settings: Settings,
        env: Mapping[str, str],
        claude: Path,
        project_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.bus = bus
        self.agent_id = agent_id
        self.settings = settings
        self.env = dict(env)
        self.claude = claude
        self.project_dir = project_dir
        self._remote: Any = None
        self._where = ""
        self._request: TurnRequest | None = None
        self._cursor = 0
        self._generation = 0
        self._last_outcome: TurnOutcome | None = None
        self._role = ""
        self._preparing = False
        self._setup_failed = ""
        """Why the last set-up on the node failed, until the next turn is refused for it."""

    def on_start(self) -> None:
        # max_restarts=0: a dead actor is this link's crash, for the crew supervisor to
        # handle by its policy (Ray's own restarts are not relied on).
        # SPREAD: agents over as many nodes as there are, so one node lost costs few.
        self._remote = _RemoteNode.options(
            num_cpus=AGENT_CPUS,
            max_concurrency=4,
            max_restarts=0,
            max_task_retries=0,
            scheduling_strategy="SPREAD",
        ).remote(self.agent_id)

    # --- what the orchestrator asks (as of an AgentActor) -----------------------------

    def run_turn(self, request: TurnRequest) -> int:
        """Ship the clone's state to the node and spawn the turn there; its pid on the node.

        Blocks for the capture and the node's clone and spawn (seconds). `AgentBusy` if
        a turn runs; `TurnRefused` if the role, the clone or the spawn fails; a node that
        is gone makes this link crash (after `AgentBusy` to the asker: it is retried).
        """
        if self._request is not None:
            raise AgentBusy(f"{self.agent_id} is already running a turn")
        try:
            role = load_role(request.role, self.project_dir)
            self._role = role.name
            self._publish("starting", request.task_id)
            spec = self._spec(request, role)
            state = capture(request.cwd, env=self.env)
        except (RoleError, BundleError, OSError) as error:
            self._publish("idle", request.task_id, f"could not start a turn: {error}")
            raise TurnRefused(str(error)) from None
        if self._preparing:
            raise AgentBusy(f"{self.agent_id} is running the set-up on its node")
        if self._setup_failed:
            # Counted as a failed turn of the task (retried, then escalated), as a failed
            # set-up on the head is; the node runs the set-up again before the next turn.
            why, self._setup_failed = self._setup_failed, ""
            self._publish("idle", request.task_id, f"could not start a turn: {why}")
            raise TurnRefused(why)
        try:
            if not self._where:
                where = ray.get(self._remote.where.remote(), timeout=START_TIMEOUT)
                self._where = f"node {where['node']} ({where['host']}, pid {where['pid']})"
            shipped = ray.put(state)
            if spec.setup_command and ray.get(
                self._remote.needs_setup.remote(spec), timeout=START_TIMEOUT
            ):
                # Minutes, maybe: not waited for here. The orchestrator hears "busy" and
                # asks again; by then the clone is set up.
                self._preparing = True
                ref = self.actor_ref
                future = self._remote.prepare.remote(spec, shipped).future()
                future.add_done_callback(lambda f: _tell(ref, _Prepared(f)))
                self._publish("idle", request.task_id, f"running the set-up on {self._where}")
                raise AgentBusy(f"{self.agent_id} is running the set-up on its node")
            pid: int = ray.get(self._remote.start_turn.remote(spec, shipped), timeout=START_TIMEOUT)
        except (BundleError, PortError) as error:
            self._publish("idle", request.task_id, f"could not start a turn: {error}")
            raise TurnRefused(str(error)) from None
        except (RayError, GetTimeoutError) as error:
            self._lose(error)
            raise AgentBusy(f"{self.agent_id}: its node is gone: {error}") from None
        self._request = request
        self._cursor = 0
        self._generation += 1
        self._publish("working", request.task_id, f"on {self._where}")
        self._poll()
        return pid

    def stop_turn(self) -> None:
        """Ask the node to stop the turn (SIGTERM, SIGKILL after the grace); never blocks.
        Its end comes back as any end does."""
        if self._request is not None and self._remote is not None:
            with contextlib.suppress(RayError):
                self._remote.stop.remote()

    def busy(self) -> bool:
        """Whether a turn is running on the node."""
        return self._request is not None

    def last_outcome(self) -> TurnOutcome | None:
        """How the last finished turn ended."""
        return self._last_outcome

    # --- the turn's messages ------------------------------------------------------------

    def _poll(self) -> None:
        ref = self.actor_ref
        generation = self._generation
        future: Future[Batch] = self._remote.next_batch.remote(self._cursor, POLL_WAIT).future()
        future.add_done_callback(lambda f: _tell(ref, _Polled(f, generation)))

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Lost):
            raise NodeLost(f"{self.agent_id} on {self._where or 'its node'}: {message.error}")
        if isinstance(message, _Prepared):
            self._preparing = False
            try:
                ran = message.future.result()
            except RayTaskError as error:  # the node's own error (git), not a lost node
                text = f"autonoma: could not set up: {_first_line(error)}"
                ran = SetupRan(task_id=None, command="", output_tail=text, place="node")
            except RayError as error:
                raise NodeLost(
                    f"{self.agent_id} on {self._where or 'its node'}: {_first_line(error)}"
                ) from None
            if ran is not None:
                self.bus.publish(self.agent_id, ran)
                if not ran.ok:
                    where = self._where or "its node"
                    self._setup_failed = f"the set-up failed on {where}: {failure_reason(ran)}"
        elif isinstance(message, _Polled) and message.generation == self._generation:
            try:
                batch = message.future.result()
            except RayError as error:
                raise NodeLost(
                    f"{self.agent_id} on {self._where or 'its node'}: {_first_line(error)}"
                ) from None
            self._take(batch)
        return None

    def _take(self, batch: Batch) -> None:
        request = self._request
        if request is None:
            return
        self._cursor = batch.next
        result = batch.result
        if result is not None:
            self._bring_home(request, result)
        for message in batch.messages:
            self.bus.publish(self.agent_id, message)
        if result is None:
            self._poll()
            return
        self._request = None
        self._last_outcome = result.outcome
        self._publish("idle", request.task_id)

    def _bring_home(self, request: TurnRequest, result: TurnResult) -> None:
        """The node's work into the head's clone, before the end of the turn is published."""
        error = result.error
        if not error:
            try:
                branch = _branch_of(request.cwd, self.env)
                restore(request.cwd, result.state, branch, self.env)
            except BundleError as failed:
                error = str(failed)
        if error:
            self.bus.publish(
                self.agent_id,
                AgentText(
                    agent_id=self.agent_id,
                    text=f"autonoma: the work on {self._where} did not come back: {error}",
                    task_id=request.task_id,
                ),
            )
        if result.transcript and request.transcript is not None:
            with contextlib.suppress(OSError):
                request.transcript.parent.mkdir(parents=True, exist_ok=True)
                with request.transcript.open("ab") as out:
                    out.write(result.transcript)

    def _spec(self, request: TurnRequest, role: Any) -> TurnSpec:
        cwd = request.cwd
        if request.prompt is None:
            # A turn started ahead of its prompt (prestart_agents) is local only: the
            # orchestrator never asks it of a cluster (the clone ships with the prompt).
            raise RoleError("a turn on a cluster node cannot start before its prompt")
        identity: dict[str, str] = {}
        for key in ("user.name", "user.email"):
            with contextlib.suppress(BundleError):
                value = git(cwd, "config", "--get", key, env=git_env(self.env)).decode().strip()
                if value:
                    identity[key] = value
        exclude = b""
        with contextlib.suppress(OSError, BundleError):
            common = git(cwd, "rev-parse", "--git-common-dir", env=git_env(self.env)).decode()
            path = (cwd / common.strip() / "info" / "exclude").resolve()
            if path.is_file():
                exclude = path.read_bytes()
        return TurnSpec(
            agent_id=self.agent_id,
            run_id=self.bus.run_id,
            role=role,
            prompt=request.prompt,
            session_id=request.session_id,
            resume=request.resume,
            task_id=request.task_id,
            budget_usd=request.budget_usd,
            session_usd=request.session_usd,
            settings=self.settings,
            env=self.env,
            claude=str(self.claude),
            setup_command=request.setup_command,
            branch=_branch_of(cwd, self.env),
            git_config=identity,
            info_exclude=exclude,
            shipped=shipped_files(self.env),
        )

    # --- ends ----------------------------------------------------------------------------

    def _lose(self, error: BaseException) -> None:
        _tell(self.actor_ref, _Lost(error))

    def on_stop(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(self._remote.stop.remote(5.0), timeout=8.0)
                batch: Batch = ray.get(self._remote.next_batch.remote(self._cursor, 0.0), timeout=2)
                for message in batch.messages:
                    self.bus.publish(self.agent_id, message)
            self._publish("dead", request.task_id, "stopped")
        if self._remote is not None:
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.get(self._remote.cleanup.remote(self.bus.run_id), timeout=5.0)
        self._kill_remote()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        request, self._request = self._request, None
        self._kill_remote()
        if request is not None:
            self._publish("dead", request.task_id, f"crashed: {exception_value}")

    def on_kill(self) -> None:
        self._kill_remote()

    def _kill_remote(self) -> None:
        remote, self._remote = self._remote, None
        if remote is not None:
            # The node's claude dies with its actor's process (PR_SET_PDEATHSIG).
            with contextlib.suppress(Exception):
                ray.kill(remote, no_restart=True)

    def _publish(self, state: AgentState, task_id: str | None, detail: str = "") -> None:
        self.bus.publish(
            self.agent_id,
            AgentStateChanged(
                agent_id=self.agent_id, role=self._role, state=state, task_id=task_id, detail=detail
            ),
        )


def _branch_of(cwd: Path, env: Mapping[str, str]) -> str:
    """The branch checked out in ``cwd``; "" when it is detached."""
    try:
        return git(cwd, "symbolic-ref", "-q", "--short", "HEAD", env=git_env(env)).decode().strip()
    except BundleError:  # exit 1: detached
        return ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _tell(ref: Any, message: object) -> None:
    with contextlib.suppress(pykka.ActorDeadError):  # the link is gone: nobody to tell
        ref.tell(message)


__all__ = ["AGENT_CPUS", "NodeLost", "RemoteAgentActor"]
