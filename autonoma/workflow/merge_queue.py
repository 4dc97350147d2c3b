"""The merge queue: approved branches go onto the integration branch one at a time.

For each approved task: with no project test command (and no opt-out), refuse
(`MergeFailed` ``no_test_command``). Merge its branch onto the integration head in
memory; on a conflict, say so (`MergeFailed`) and move nothing. Otherwise check the
merged commit out in the check worktree, run the project's set-up command there
(journaled as `SetupRan`), then the project's test command; a failure of either is
said and moves nothing; green (or no tests collected while the project has none yet,
see `autonoma.workflow.commands.judge_tests`), move the integration branch, then
``main`` (safely: see `autonoma.vcs.workspace.advance_main`), and announce
`TaskMerged`. One actor, one mailbox: merges never run side by side. A git of the
user's holding the integration branch's lock longer than `workspace.LOCK_WAIT` refuses
the merge (`MergeFailed` ``integration_locked``: nothing moved, checked before the tests
run and again as the branch moves), and it is submitted again; a lock a minute old was
left by a killed git and is removed (`RefLockRemoved`), since only Autonoma moves that
branch: a lock that stays costs a refusal every few seconds for a minute at most.

Submitting a task that is already merged (a resumed run that died before it heard
of it) finds nothing to add, runs the tests again and announces it merged (the fold
counts one merge once).

A stop waits for the merge under way (`autonoma.workflow.decide`: the run ends once the
queue answered), so a stopped run's journal says what ``main`` holds. Killed instead
(a second Ctrl-C, or a stop that waited longer than the tests may run), the queue
abandons it cleanly: its tests are killed and neither the integration branch nor
``main`` moves after the kill; the resumed run merges the task again.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonoma.protocol import MergeFailed, RefLockRemoved, TaskMerged, TestsOutcome
from autonoma.runtime.actor import Actor
from autonoma.runtime.bus import Bus
from autonoma.vcs import workspace
from autonoma.workflow.checks import kill_check, run_check
from autonoma.workflow.commands import (
    NO_TESTS_YET,
    OPTED_OUT,
    Judgement,
    judge_tests,
    no_test_command,
)
from autonoma.workflow.confine import Confinement
from autonoma.workflow.setup import failure_reason, run_setup

MERGE_QUEUE = "merge_queue"


@dataclass(frozen=True)
class MergeRequest:
    """Merge ``branch`` of ``task_id``; ``test_command`` checks the merged result.

    ``setup_command`` runs first in the check worktree. An empty ``test_command`` is
    refused unless ``tests_opted_out``. ``tests_seen``: an earlier merge ran tests, so
    "no tests collected" is a failure now.
    """

    task_id: str
    branch: str
    title: str
    test_command: str
    setup_command: str = ""
    tests_opted_out: bool = False
    tests_seen: bool = False


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
        confinement: Confinement | None = None,
    ) -> None:
        super().__init__()
        self.bus = bus
        self.repo = repo
        self.worktrees = worktrees
        self.main = main
        self.env = dict(env)
        self.timeout = timeout
        self.confinement = confinement
        """Bubblewrap for the gate's set-up and tests (``sandbox`` setting); None: unconfined."""
        self._check_group: int | None = None
        self._killed = threading.Event()
        """Set by `on_kill` (another thread): the merge under way moves nothing more."""

    def on_kill(self) -> None:
        # Killed mid-merge (the actor's thread may be inside run_check or git): nothing
        # moves after this, and the tests go too.
        self._killed.set()
        group = self._check_group
        if group is not None:
            kill_check(group)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, MergeRequest):
            self._merge(message)
        return None

    def _started(self, group: int) -> None:
        self._check_group = group

    def _merge(self, request: MergeRequest) -> None:
        if not request.test_command and not request.tests_opted_out:
            self.bus.publish(
                MERGE_QUEUE,
                MergeFailed(
                    task_id=request.task_id,
                    kind="no_test_command",
                    output=no_test_command(request.task_id),
                ),
            )
            return
        if not self._integration_movable(request.task_id):
            return
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
        detail = OPTED_OUT
        tests: TestsOutcome = "opted_out"
        if request.test_command:
            check = workspace.ensure_check_worktree(self.repo, self.worktrees, result.commit)
            workspace.checkout_detached(check, result.commit)
            checked = self._check(request, check)
            if isinstance(checked, MergeFailed):
                self.bus.publish(MERGE_QUEUE, checked)
                return
            tests, detail = "passed", ""
            if checked.verdict == "no_tests":
                tests, detail = "no_tests", f"{NO_TESTS_YET} (`{request.test_command}`)"
        if self._killed.is_set():
            return  # abandoned: the resumed run merges it again; nothing was moved
        if result.commit != onto:
            try:
                workspace.move_branch(
                    self.repo,
                    workspace.INTEGRATION_BRANCH,
                    onto,
                    result.commit,
                    lock_wait=workspace.LOCK_WAIT,
                )
            except workspace.BranchLocked as locked:
                # Taken by a git of the user's while the tests ran.
                self._refuse_locked(request.task_id, locked)
                return
        moved, why_not = workspace.advance_main(self.repo, self.main, result.commit)
        self.bus.publish(
            MERGE_QUEUE,
            TaskMerged(
                task_id=request.task_id,
                commit=result.commit,
                main_moved=moved,
                detail="; ".join(x for x in (detail, why_not) if x),
                tests=tests,
            ),
        )

    def _integration_movable(self, task_id: str) -> bool:
        """Before the merge's tests run (blocks up to `workspace.LOCK_WAIT` seconds): a
        lock a killed git left on the integration branch is removed and said; one held
        by a git of the user's refuses the merge (False), so that a lock that stays does
        not run the project's tests again every few seconds."""
        try:
            removed = workspace.clear_branch_lock(
                self.repo, workspace.INTEGRATION_BRANCH, wait=workspace.LOCK_WAIT
            )
        except workspace.BranchLocked as locked:
            self._refuse_locked(task_id, locked)
            return False
        if removed is not None:
            self.bus.publish(
                MERGE_QUEUE,
                RefLockRemoved(
                    path=str(removed.path),
                    branch=workspace.INTEGRATION_BRANCH,
                    age_s=removed.age_s,
                    ours=removed.ours,
                ),
            )
        return True

    def _refuse_locked(self, task_id: str, locked: workspace.BranchLocked) -> None:
        """Nothing moved, nobody's fault: the orchestrator submits the task again."""
        self.bus.publish(
            MERGE_QUEUE, MergeFailed(task_id=task_id, kind="integration_locked", output=str(locked))
        )

    def _check(self, request: MergeRequest, check: Path) -> MergeFailed | Judgement:
        """The set-up, then the tests, in the check worktree (blocks): a failure, or a pass."""
        try:
            if request.setup_command:
                ran = run_setup(
                    request.setup_command,
                    check,
                    self.env,
                    self.timeout,
                    task_id=request.task_id,
                    place="merge_gate",
                    started=self._started,
                    confinement=self.confinement,
                )
                self.bus.publish(MERGE_QUEUE, ran)
                if not ran.ok:
                    return MergeFailed(
                        task_id=request.task_id,
                        kind="setup_failed",
                        output=f"$ {request.setup_command}\n{failure_reason(ran)}\n"
                        f"{ran.output_tail}",
                    )
            outcome = run_check(
                request.test_command,
                check,
                self.env,
                self.timeout,
                started=self._started,
                confinement=self.confinement,
            )
        finally:
            self._check_group = None
        judged = judge_tests(
            outcome.exit_code, outcome.timed_out, outcome.output, tests_seen=request.tests_seen
        )
        if judged.verdict == "failed":
            return MergeFailed(
                task_id=request.task_id,
                kind="tests_failed",
                output=f"$ {request.test_command}\n{judged.why}\n{outcome.output}",
            )
        return judged


__all__ = ["MERGE_QUEUE", "MergeQueue", "MergeRequest"]
