"""Which tasks may start now, and whether the run has anything left to do.

Two tasks that touch the same file never run at once: their branches would conflict at
merge time, and a conflict costs a whole retry. The overlap test errs on the side of
overlap (a directory covers everything under it), since a false overlap only delays a
task while a missed one wastes one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from autonoma.workflow.dag import TaskSpec, dependents

DONE_STATES = frozenset({"merged", "resolved"})
WAITING_STATES = frozenset({"pending", "ready"})

Policy = Literal["critical_path", "fifo"]


def _parts(path: str) -> tuple[str, ...]:
    """The path's components: "./a//b/" and "/a/b" are both ("a", "b"); "." is the root."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts)


def files_overlap(a: Iterable[str], b: Iterable[str]) -> bool:
    """True when a path of ``a`` equals one of ``b``, or one is a folder holding the other."""
    left = {_parts(path) for path in a}
    right = {_parts(path) for path in b}
    if left & right:
        return True
    for x in left:
        for y in right:
            shorter, longer = (x, y) if len(x) <= len(y) else (y, x)
            if longer[: len(shorter)] == shorter:
                return True
    return False


def ready(tasks: Sequence[TaskSpec], states: Mapping[str, str]) -> list[str]:
    """Tasks waiting to start whose every dep is merged or resolved, in definition order.

    A task absent from ``states`` counts as pending.
    """
    return [
        task.id
        for task in tasks
        if states.get(task.id, "pending") in WAITING_STATES
        and all(states.get(dep) in DONE_STATES for dep in task.deps)
    ]


def pick(
    candidates: Sequence[str],
    tasks: Mapping[str, TaskSpec],
    busy: Iterable[str],
    slots: int,
    priority: Mapping[str, float],
    policy: Policy = "critical_path",
    reserved: Sequence[float] = (),
) -> list[str]:
    """Up to ``slots`` candidates to start now, none touching a file of a running or chosen task.

    ``critical_path`` takes the highest priority first (ties in candidate order); ``fifo``
    takes candidates in order. A candidate that overlaps is skipped, not waited for, so a
    later one may take its slot. A candidate missing from ``priority`` has priority 0.

    ``reserved`` (critical_path only) holds the priorities of tasks about to be ready
    (`imminent`): a candidate does not take the last slots such a task outranking it
    will want a moment later.
    """
    if policy not in ("critical_path", "fifo"):
        raise ValueError(f"unknown scheduling policy {policy!r}")
    running = set(busy)
    order = list(dict.fromkeys(tid for tid in candidates if tid not in running))
    if policy == "critical_path":
        # sorted() is stable, so equal priorities keep candidate order.
        order.sort(key=lambda tid: -priority.get(tid, 0.0))
    # A busy id the mapping does not know has no files to protect.
    in_use = [path for tid in running if tid in tasks for path in tasks[tid].files]
    held = list(reserved) if policy == "critical_path" else []
    chosen: list[str] = []
    for tid in order:
        outranking = sum(1 for p in held if p > priority.get(tid, 0.0))
        if len(chosen) + outranking >= slots:
            break
        files = tasks[tid].files
        if files_overlap(files, in_use):
            continue
        chosen.append(tid)
        in_use.extend(files)
    return chosen


def imminent(
    tasks: Sequence[TaskSpec], states: Mapping[str, str], priority: Mapping[str, float]
) -> list[float]:
    """For each task being merged, the top priority of the tasks its merge will make ready.

    A merge takes a moment (the tests run again on the merged result); the worker it
    freed should wait for its successor on the critical path rather than go to a task
    that can wait.
    """
    waiting = {
        task.id: task
        for task in tasks
        if states.get(task.id, "pending") in WAITING_STATES
        and task.deps
        and all(states.get(dep) in DONE_STATES | {"merging"} for dep in task.deps)
    }
    found: list[float] = []
    for task in tasks:
        if states.get(task.id) != "merging":
            continue
        after = [priority.get(t.id, 0.0) for t in waiting.values() if task.id in t.deps]
        if after:
            found.append(max(after))
    return found


def blocked_by_escalation(tasks: Sequence[TaskSpec], states: Mapping[str, str]) -> set[str]:
    """Tasks that can never run because a dependency, direct or not, is escalated.

    Escalated tasks themselves are not in the set, nor are merged or resolved ones. The
    search does not go through a merged or resolved task: what depends on it is not
    held back by it.
    """
    below = dependents(tasks)
    todo = [task.id for task in tasks if states.get(task.id) == "escalated"]
    seen = set(todo)
    blocked: set[str] = set()
    while todo:
        tid = todo.pop()
        for nxt in below[tid]:
            if nxt in seen or states.get(nxt) in DONE_STATES:
                continue
            seen.add(nxt)
            todo.append(nxt)
            if states.get(nxt) != "escalated":
                blocked.add(nxt)
    return blocked


def run_over(tasks: Sequence[TaskSpec], states: Mapping[str, str], busy_count: int) -> bool:
    """True when nothing runs and nothing can: every task is done, escalated, or waits on one."""
    if busy_count > 0:
        return False
    blocked = blocked_by_escalation(tasks, states)
    finished = DONE_STATES | {"escalated"}
    return all(states.get(t.id) in finished or t.id in blocked for t in tasks)
