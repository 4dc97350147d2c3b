"""What `autonoma.workflow.decide.decide` asks the orchestrator to carry out: messages to
publish, turns to start or stop, git work off the mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from autonoma.protocol import (
    AnyMessage,
    MergeFailure,
    RunFinished,
    SetupPlace,
)
from autonoma.workflow.machine import TurnKind
from autonoma.workflow.merge_queue import MergeRequest


@dataclass(frozen=True, slots=True)
class Emit:
    """Publish ``message`` (already folded into the state); ``durable``: wait for the journal."""

    message: AnyMessage
    durable: bool = False


@dataclass(frozen=True, slots=True)
class StartTurn:
    """Ask ``agent`` to run a turn; `TurnSpawned`, `TurnNotStarted` or `SpawnRefused` answers."""

    agent: str
    kind: TurnKind
    role: str
    prompt: str
    session_id: str
    resume: bool
    cwd: str
    task_id: str | None = None
    budget_usd: float | None = None
    session_usd: float = 0.0
    """claude's running total of a resumed session: the turn's cost counts from it."""
    ahead: bool = False
    """Pre-start the process (no prompt yet: ``prompt`` is empty); `GivePrompt` follows."""


@dataclass(frozen=True, slots=True)
class GivePrompt:
    """Give ``agent``'s pre-started turn its prompt; `PromptGiven` or `PromptNotGiven`
    answers."""

    agent: str
    prompt: str


@dataclass(frozen=True, slots=True)
class MoveCheckout:
    """Off the mailbox: move a throwaway clone made ahead (nothing ran in it yet) to
    ``rev`` on its branch; `CheckoutReady` with ``moved``."""

    path: str
    rev: str
    task_id: str
    branch: str


@dataclass(frozen=True, slots=True)
class PrepareWorkspace:
    """Off the mailbox: make the task's worktree if missing (``create``: new, from the
    integration head), drop claude's Write leftovers; answered with `WorkspaceReady` or
    `WorkspaceFailed`."""

    task_id: str
    worktree: str
    create: bool


@dataclass(frozen=True, slots=True)
class CommitForAgent:
    """Off the mailbox: commit what the developer left, check the branch; `WorkChecked`."""

    task_id: str
    agent: str
    worktree: str
    branch: str
    refused: tuple[str, ...] = ()
    declared: tuple[str, ...] = ()
    """The task's declared files: new ones among them are committed too."""
    """The tool calls claude refused in the turn (said with a refusal of the work)."""


@dataclass(frozen=True, slots=True)
class ConflictMerge:
    """Off the mailbox: merge the integration head into the task's clone (and bring its
    branch back when that merge commits); `ConflictMergeDone`."""

    task_id: str
    worktree: str
    kind: MergeFailure
    output: str = ""
    branch: str = ""


@dataclass(frozen=True, slots=True)
class PrepareCheckout:
    """Off the mailbox: make a throwaway clone of ``rev`` at ``path``; `CheckoutReady`.

    ``branch``: checked out on a local branch of that name (else detached). ``fresh``:
    a leftover folder goes first (else one found there is kept). ``files``: written into
    it after the checkout (relative path, content). ``bring_back``: a task's clone whose
    ``branch`` is brought back into the user's repository first (a checkout made ahead,
    at the developer's result: what the developer committed is in it).
    """

    purpose: Literal["plan", "review"]
    path: str
    rev: str
    task_id: str | None = None
    branch: str = ""
    fresh: bool = True
    files: tuple[tuple[str, bytes], ...] = ()
    bring_back: str = ""


@dataclass(frozen=True, slots=True)
class RemoveCheckout:
    """Off the mailbox: delete a throwaway clone (QA's, planning's); nothing answers."""

    path: str


@dataclass(frozen=True, slots=True)
class SubmitMerge:
    """Hand an approved task to the merge queue (`MergeNotSubmitted` if there is none)."""

    request: MergeRequest

    @property
    def task_id(self) -> str:
        """The task to merge."""
        return self.request.task_id


@dataclass(frozen=True, slots=True)
class RunSetup:
    """Off the mailbox: run the project's set-up command in a task's worktree; `SetupDone`."""

    task_id: str
    command: str
    worktree: str
    place: SetupPlace = "task"


@dataclass(frozen=True, slots=True)
class EnsureIntegration:
    """Off the mailbox: make sure the integration branch exists (errors ignored)."""

    main: str


@dataclass(frozen=True, slots=True)
class WriteFile:
    """Write ``data`` to ``path`` (the plan), before the next action."""

    path: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StopTurns:
    """Stop these agents' turns under way (SIGTERM through their ports); nothing answers
    but their processes' exits. Never blocks."""

    agents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FreezeTurns:
    """Freeze (SIGSTOP, ``frozen``) or thaw (SIGCONT) these agents' turns under way: a
    ``claude`` refused by a rate limit waits frozen, sending nothing, until the crew's
    probe gets through (its own retry goes once thawed). Never blocks."""

    agents: tuple[str, ...]
    frozen: bool


@dataclass(frozen=True, slots=True)
class ResumeRoot:
    """Ask the root supervisor to end its pause (a subtree that kept crashing): it starts
    what it left stopped and says `WorkResumed`. Nothing answers; never blocks."""

    reason: str


@dataclass(frozen=True, slots=True)
class RemoveWorktrees:
    """Off the mailbox: remove merged tasks' worktrees (those that exist), then
    `WorktreesRemoved` with ``then``."""

    paths: tuple[str, ...]
    then: RunFinished


Action = (
    Emit
    | StartTurn
    | GivePrompt
    | MoveCheckout
    | PrepareWorkspace
    | CommitForAgent
    | ConflictMerge
    | PrepareCheckout
    | RemoveCheckout
    | SubmitMerge
    | RunSetup
    | EnsureIntegration
    | WriteFile
    | ResumeRoot
    | StopTurns
    | FreezeTurns
    | RemoveWorktrees
)
