"""The merge queue: approved branches go onto the integration branch one at a time.

For each approved task: merge its branch onto the integration head in memory; on a
conflict, say so (`MergeFailed`) and move nothing. Otherwise check the merged commit
out in the check worktree and run the project's tests there; red, say so and move
nothing; green, move the integration branch, then ``main`` (safely: see
`autonoma.vcs.workspace.advance_main`), and announce `TaskMerged`. One actor, one
mailbox: merges never run side by side.

Submitting a task that is already merged (a resumed run that died before it heard
of it) finds nothing to add, runs the tests again and announces it merged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonoma.protocol import MergeFailed, TaskMerged
from autonoma.runtime.actor import Actor
from autonoma.runtime.bus import Bus
from autonoma.vcs import workspace
from autonoma.workflow.checks import kill_check, run_check

MERGE_QUEUE = "merge_queue"


@dataclass(frozen=True)
class MergeRequest:
    """Merge ``branch`` of ``task_id``; ``test_command`` checks the merged result."""

    task_id: str
    branch: str
    title: str
    test_command: str


class MergeQueue(Actor):
    """Merges approved task branches one at a time, tests first, then moves ``main``."""

    def __init__(
        self,
        bus: Bus,
        *,
        repo: Path,
        worktrees: Path,
        main: str,
        env: Mapping[str, str],
        timeout: float,
    ) -> None:
        super().__init__()
        self.bus = bus
        self.repo = repo
        self.worktrees = worktrees
        self.main = main
        self.env = dict(env)
        self.timeout = timeout
        self._check: int | None = None

    def on_kill(self) -> None:
        # Stopped while the tests run (the actor's thread is inside run_check): they go too.
        group = self._check
        if group is not None:
            kill_check(group)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, MergeRequest):
            self._merge(message)
        return None

    def _started(self, group: int) -> None:
        self._check = group

    def _merge(self, request: MergeRequest) -> None:
        onto = workspace.head_of(self.repo, workspace.INTEGRATION_BRANCH)
        result = workspace.prepare_merge(
            self.repo, onto, request.branch, f"Merge {request.task_id}: {request.title}"
        )
        if result.commit is None:
            self.bus.publish(
                MERGE_QUEUE,
                MergeFailed(task_id=request.task_id, kind="conflict", files=result.conflicts),
            )
            return
        detail = ""
        if request.test_command:
            check = workspace.ensure_check_worktree(self.repo, self.worktrees, result.commit)
            workspace.checkout_detached(check, result.commit)
            try:
                outcome = run_check(
                    request.test_command, check, self.env, self.timeout, started=self._started
                )
            finally:
                self._check = None
            if not outcome.passed:
                why = (
                    f"timed out after {self.timeout:g} s (test_timeout)"
                    if outcome.timed_out
                    else f"exit code {outcome.exit_code}"
                )
                self.bus.publish(
                    MERGE_QUEUE,
                    MergeFailed(
                        task_id=request.task_id,
                        kind="tests_failed",
                        output=f"$ {request.test_command}\n{why}\n{outcome.output}",
                    ),
                )
                return
        else:
            detail = "no test command known: merged without re-running the tests"
        if result.commit != onto:
            workspace.move_branch(self.repo, workspace.INTEGRATION_BRANCH, onto, result.commit)
        moved, why_not = workspace.advance_main(self.repo, self.main, result.commit)
        self.bus.publish(
            MERGE_QUEUE,
            TaskMerged(
                task_id=request.task_id,
                commit=result.commit,
                main_moved=moved,
                detail="; ".join(x for x in (detail, why_not) if x),
            ),
        )


__all__ = ["MERGE_QUEUE", "MergeQueue", "MergeRequest"]
