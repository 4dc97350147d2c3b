"""The agent actor: runs one `Turn` at a time for one agent, without ever blocking its mailbox.

A turn's process is owned by its port's threads, so `AgentActor.run_turn` returns as
soon as ``claude`` is spawned; the end of the turn comes back to the actor as a message.
The actor's state (starting, working, idle, dead) is published as `AgentStateChanged`,
known from the process itself, so a dead agent is never taken for a busy one. Stopping
the actor stops its turn's process tree; a supervisor's kill SIGKILLs it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from autonoma.agents.command import CommandError
from autonoma.agents.port import PortError
from autonoma.agents.roles import RoleError, load_role
from autonoma.agents.sandbox import secret_paths
from autonoma.agents.turn import Turn, TurnOutcome
from autonoma.config import Settings
from autonoma.project import Project
from autonoma.protocol import AgentState, AgentStateChanged
from autonoma.runtime.actor import Actor, Refusal
from autonoma.runtime.bus import Bus


@dataclass(frozen=True)
class TurnRequest:
    """What one turn is: the role, the prompt, the session and where it runs."""

    role: str
    prompt: str | None
    """None: pre-start the turn's process; its prompt comes with `AgentActor.give_prompt`."""
    session_id: str
    cwd: Path
    resume: bool = False
    task_id: str | None = None
    transcript: Path | None = None
    budget_usd: float | None = None
    """This turn's ``--max-budget-usd``; None: the configured per-task cap."""
    session_usd: float = 0.0
    """claude's running total of the session before this turn (0: a new session). A
    resumed turn reports that total again; its own cost is the change from it."""
    setup_command: str = ""
    """The project's set-up command: a remote agent runs it in its node's clone (a local
    agent's clone was set up by the orchestrator)."""


class AgentBusy(Refusal):
    """A turn is already running for this agent: a second one would double its work."""


class NotWaiting(Refusal):
    """`AgentActor.give_prompt` found no pre-started turn waiting for its prompt (it
    ended meanwhile, or was never pre-started): its end is reported as any end is."""


class TurnRefused(Refusal):
    """The turn could not start (its role file, its command line or its spawn failed).

    Nothing is wrong with the agent, so it does not crash; the caller decides.
    """


@dataclass(frozen=True)
class _TurnEnded:
    outcome: TurnOutcome


class AgentActor(Actor):
    """One agent (``developer-1``, ``qa``, ...): runs its turns one at a time."""

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
        self._turn: Turn | None = None
        self._last_outcome: TurnOutcome | None = None
        self._role = ""

    def run_turn(self, request: TurnRequest) -> int:
        """Spawn the turn and return its pid at once; `AgentBusy` if one is running.

        With ``request.prompt`` None the process is pre-started: the agent stays
        "starting" until `give_prompt`."""
        if self._turn is not None:
            raise AgentBusy(f"{self.agent_id} is already running a turn")
        ref = self.actor_ref
        try:
            role = load_role(request.role, self.project_dir)
            self._role = role.name
            self._publish("starting", request.task_id)
            turn = Turn(
                self.bus,
                agent_id=self.agent_id,
                role=role,
                prompt=request.prompt,
                session_id=request.session_id,
                resume=request.resume,
                cwd=request.cwd,
                settings=self.settings,
                env=self.env,
                claude=self.claude,
                task_id=request.task_id,
                transcript=request.transcript,
                budget_usd=request.budget_usd,
                session_usd=request.session_usd,
                tmpdir=self._tmpdir(),
                deny_read=self._deny_read(),
                # Called from the port's thread once the process is gone: the actor
                # learns of it through its mailbox, like of anything else.
                on_end=lambda outcome: _tell(ref, _TurnEnded(outcome)),
            )
            pid = turn.start()
        except (RoleError, CommandError, PortError) as error:
            self._publish("idle", request.task_id, f"could not start a turn: {error}")
            raise TurnRefused(str(error)) from None
        self._turn = turn
        if not turn.waiting:
            self._publish("working", request.task_id)
        return pid

    def give_prompt(self, prompt: str) -> None:
        """Give the pre-started turn its prompt (`Turn.give`); returns at once.

        `NotWaiting` when no pre-started turn waits (it ended, or got one already);
        `TurnRefused` when claude could not take this prompt (the turn is stopped: its
        end is reported as any end is)."""
        turn = self._turn
        if turn is None or not turn.waiting:
            raise NotWaiting(f"{self.agent_id} has no turn waiting for a prompt")
        try:
            turn.give(prompt)
        except CommandError as error:
            turn.stop()
            raise TurnRefused(str(error)) from None
        except PortError as error:
            raise NotWaiting(str(error)) from None
        self._publish("working", turn.task_id)

    def _tmpdir(self) -> Path | None:
        """This agent's private temp folder in the project: ``.autonoma/tmp/<run>/<agent>``."""
        if self.project_dir is None:
            return None
        return Project(self.project_dir).tmp / (self.bus.run_id or "run") / self.agent_id

    def _deny_read(self) -> list[Path]:
        """What the agent's Bash may not read: the keys folder and the user's secrets.

        The user's real home (this process's), whatever HOME the agent gets: the
        sandbox sees the whole file system. Only what exists gets a rule.
        """
        home = Path.home()
        config = Path(
            self.env.get("CLAUDE_CONFIG_DIR")
            or os.environ.get("CLAUDE_CONFIG_DIR")
            or home / ".claude"
        )
        paths = [Path(p) for p in secret_paths(PurePosixPath(home), PurePosixPath(config))]
        paths.append(home / ".claude" / ".credentials.json")
        if self.project_dir is not None:
            paths.insert(0, Project(self.project_dir).keys)
        return list(dict.fromkeys(p.absolute() for p in paths if os.path.lexists(p)))

    def stop_turn(self) -> None:
        """Stop the turn under way, if any: SIGTERM to its process tree through the port,
        SIGKILL after the grace period. Its end is reported as any end is. Never blocks."""
        if self._turn is not None:
            self._turn.stop()

    def freeze_turn(self, frozen: bool) -> None:
        """Freeze the turn under way (SIGSTOP: a ``claude`` waiting out a rate-limit storm
        sends nothing until the crew's backoff thaws it) or thaw it. Never blocks."""
        if self._turn is None:
            return
        self._turn.freeze(frozen)
        if frozen:
            self._publish("waiting", self._turn.task_id, "frozen until the rate-limit storm ends")
        else:
            self._publish("working", self._turn.task_id, "thawed")

    def busy(self) -> bool:
        """Whether a turn's process is running now."""
        return self._turn is not None

    def last_outcome(self) -> TurnOutcome | None:
        """How the last finished turn ended."""
        return self._last_outcome

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _TurnEnded) and self._turn is not None:
            task_id = self._turn.task_id
            self._turn = None
            self._last_outcome = message.outcome
            self._publish("idle", task_id)
        return None

    def on_stop(self) -> None:
        if self._turn is not None:
            self._turn.stop()
            self._publish("dead", self._turn.task_id, "stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        if self._turn is not None:
            self._turn.kill()
            self._publish("dead", self._turn.task_id, f"crashed: {exception_value}")

    def on_kill(self) -> None:
        if self._turn is not None:
            self._turn.kill()

    def _publish(self, state: AgentState, task_id: str | None, detail: str = "") -> None:
        self.bus.publish(
            self.agent_id,
            AgentStateChanged(
                agent_id=self.agent_id, role=self._role, state=state, task_id=task_id, detail=detail
            ),
        )


def _tell(ref: Any, message: object) -> None:
    with contextlib.suppress(Exception):  # the actor may be gone: nobody to tell
        ref.tell(message)
