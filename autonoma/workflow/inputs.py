"""What the orchestrator feeds `autonoma.workflow.decide.decide`: bus messages, ticks,
inbox commands, and the results of the work it carried out off its mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from autonoma.protocol import (
    AnyMessage,
    Envelope,
    MergeFailure,
    RunFinished,
    SetupRan,
    WorkCommittedForAgent,
    WorkLeftOut,
)


@dataclass(frozen=True, slots=True)
class Started:
    """The actor started; ``fold`` holds the journal of the run so far."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: look at what may start."""


@dataclass(frozen=True, slots=True)
class Heard:
    """A message another actor published on the bus."""

    envelope: Envelope


@dataclass(frozen=True, slots=True)
class InboxCommand:
    """A human's command from the inbox folder."""

    message: AnyMessage


@dataclass(frozen=True, slots=True)
class StopRun:
    """Ctrl-C in the run's terminal: stop as `StopRequested` from the inbox does."""

    origin: str = ""
    reason: str = "interrupted (Ctrl-C)"


@dataclass(frozen=True, slots=True)
class TurnSpawned:
    """`StartTurn` worked: claude runs as ``pid``."""

    agent: str
    pid: int


@dataclass(frozen=True, slots=True)
class TurnNotStarted:
    """`StartTurn` found the agent busy or gone: try again later, nothing failed."""

    agent: str


@dataclass(frozen=True, slots=True)
class SpawnRefused:
    """`StartTurn` was refused (`TurnRefused`: a broken role file, a missing folder...)."""

    agent: str
    error: str


@dataclass(frozen=True, slots=True)
class WorkspaceReady:
    """`PrepareWorkspace` is done: the task's worktree exists (``created``: made now)."""

    task_id: str
    branch: str = ""
    worktree: str = ""
    base: str = ""
    created: bool = False


@dataclass(frozen=True, slots=True)
class WorkspaceFailed:
    """`PrepareWorkspace` could not make the worktree."""

    task_id: str
    error: str


@dataclass(frozen=True, slots=True)
class WorkChecked:
    """`CommitForAgent` is done: what it journals, and why the work is refused (or "")."""

    task_id: str
    agent: str
    journaled: WorkCommittedForAgent | WorkLeftOut | None = None
    """The commit made for the agent (or what it left out), to journal."""
    why: str = ""
    refused: tuple[str, ...] = ()
    """`CommitForAgent.refused`, passed back."""


@dataclass(frozen=True, slots=True)
class ConflictMergeDone:
    """`ConflictMerge` is done: the files left in conflict, or the error."""

    task_id: str
    kind: MergeFailure
    output: str = ""
    conflicts: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True, slots=True)
class CheckoutReady:
    """`PrepareCheckout` is done: the checkout at ``path`` exists, or ``error`` says why not.
    ``moved``: `MoveCheckout` is done (the checkout is at the branch's head now)."""

    purpose: Literal["plan", "review"]
    path: str
    task_id: str | None = None
    error: str = ""
    moved: bool = False
    changed: bool = False
    """With ``moved``: the checkout's head changed (a QA started in it before saw another)."""


@dataclass(frozen=True, slots=True)
class PromptGiven:
    """`GivePrompt` worked: the pre-started turn has its prompt."""

    agent: str


@dataclass(frozen=True, slots=True)
class PromptNotGiven:
    """`GivePrompt` found no turn waiting (it ended), or claude could not take the prompt
    (the agent stopped the turn). Its exit follows, or came already."""

    agent: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class SetupDone:
    """`RunSetup` is done: how the set-up command ran."""

    ran: SetupRan


@dataclass(frozen=True, slots=True)
class MergeNotSubmitted:
    """`SubmitMerge` found no merge queue (it is restarting)."""

    task_id: str


@dataclass(frozen=True, slots=True)
class WorktreesRemoved:
    """`RemoveWorktrees` is done: the run may say it finished."""

    then: RunFinished


Event = (
    Started
    | Tick
    | Heard
    | InboxCommand
    | StopRun
    | TurnSpawned
    | TurnNotStarted
    | SpawnRefused
    | WorkspaceReady
    | WorkspaceFailed
    | WorkChecked
    | ConflictMergeDone
    | CheckoutReady
    | MergeNotSubmitted
    | SetupDone
    | WorktreesRemoved
    | PromptGiven
    | PromptNotGiven
)
