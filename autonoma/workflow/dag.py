"""The Staff Engineer's tasks: their model, the DAG checks, and the scheduler's graph measures.

`parse_tasks` checks the answer against the Staff Engineer role's schema, then what a
schema cannot say (duplicate ids, unknown deps, self-deps, cycles, ``files`` outside the
worktree). It reports every
problem at once, each on one line naming the field or the task, because
the list is sent back to the Staff Engineer to fix in a single turn. The other functions
expect a valid DAG and raise `DagError` when handed one with unknown deps or a cycle.

Edges point from a task to the tasks it depends on; a cycle is written in that direction
("cycle: t2 -> t3 -> t2" means t2 depends on t3, which depends on t2).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from autonoma.workflow.answers import AnswerError, decode
from autonoma.workflow.plan import role_schema


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One task of the DAG, as the Staff Engineer defined it."""

    id: str
    title: str
    spec: str
    deps: list[str] = []
    files: list[str] = []
    acceptance: list[str] = []


class DagError(AnswerError):
    """The tasks do not form a valid DAG."""


class TaskList(msgspec.Struct, frozen=True, kw_only=True):
    """The Staff Engineer's answer: its tasks and the project's set-up and test commands."""

    tasks: list[TaskSpec]
    setup_command: str = ""
    test_command: str = ""


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _shortest_cycle(start: str, edges: Mapping[str, list[str]], within: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside ``within`` (a strongly connected set)."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges[node]:
            if nxt not in within:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                path.reverse()
                return [*path, start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in no cycle")  # pragma: no cover - callers pass an SCC


def _components(order: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative so a long chain cannot overflow."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            succ = edges[node]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def _cycles(order: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Cycles covering every task that is in one, each starting at its earliest task."""
    position = {tid: i for i, tid in enumerate(order)}
    found: list[list[str]] = []
    for component in _components(order, edges):
        if len(component) < 2:
            continue
        members = set(component)
        covered: set[str] = set()
        for start in sorted(component, key=position.__getitem__):
            if start in covered:
                continue
            cycle = _shortest_cycle(start, edges, members)
            # Rotate so one cycle always reads the same, whichever task it was found from.
            first = min(range(len(cycle) - 1), key=lambda i: position[cycle[i]])
            cycle = [*cycle[first:-1], *cycle[:first], cycle[first]]
            covered.update(cycle)
            if cycle not in found:
                found.append(cycle)
    found.sort(key=lambda cycle: [position[tid] for tid in cycle])
    return found


def _graph_errors(order: list[str], deps: Mapping[str, list[str]]) -> list[str]:
    """Unknown deps, self-deps and cycles among tasks with distinct ids."""
    known = set(order)
    errors: list[str] = []
    edges: dict[str, list[str]] = {}
    for tid in order:
        edges[tid] = []
        for dep in deps[tid]:
            if dep == tid:
                errors.append(f"{tid} depends on itself")
            elif dep not in known:
                errors.append(f"{tid} depends on {dep}, which is not a task")
            else:
                edges[tid].append(dep)
    for cycle in _cycles(order, edges):
        errors.append(f"cycle: {' -> '.join(cycle)} (each task depends on the next)")
    return errors


def parse_tasks(obj: object, schema: Mapping[str, Any] | None = None) -> list[TaskSpec]:
    """The tasks in the Staff Engineer's structured output (see `parse_task_list`)."""
    return parse_task_list(obj, schema).tasks


def parse_task_list(obj: object, schema: Mapping[str, Any] | None = None) -> TaskList:
    """The Staff Engineer's structured output; raises `DagError` with every problem.

    ``schema`` is the Staff Engineer role's (the packaged one's when None): the shape
    is checked against it; duplicate ids, unknown deps, self-deps and cycles, which it
    cannot express, here (among the tasks whose id and deps are usable, also when the
    shape is wrong elsewhere: every problem is reported at once).
    """
    rule = role_schema("staff_engineer") if schema is None else schema
    try:
        answer = decode(obj, rule, TaskList, "task list", DagError)
    except DagError as error:
        raise DagError(error.errors + _id_errors(_usable(obj)) + _raw_file_errors(obj)) from None
    if not answer.tasks:  # a project's schema may allow it; the run cannot
        raise DagError(["tasks is empty: at least 1 item needed"])
    errors = _id_errors([(t.id, t.deps) for t in answer.tasks]) + [
        line for t in answer.tasks for line in file_errors(t.id, t.files)
    ]
    if errors:
        raise DagError(errors)
    return msgspec.structs.replace(
        answer,
        tasks=[msgspec.structs.replace(task, deps=_dedupe(task.deps)) for task in answer.tasks],
        setup_command=answer.setup_command.strip(),
        test_command=answer.test_command.strip(),
    )


# Folders no task may name a file in: the repository's own and Autonoma's.
_PRIVATE_FOLDERS = frozenset({".git", ".autonoma"})


def file_problem(path: str) -> str | None:
    """Why a task's ``files`` entry is refused (None when it is a path inside the worktree).

    Absolute paths (``/etc/shadow``, ``C:\\x``, ``~/x``), ``..`` components and paths
    into ``.git`` or ``.autonoma`` would point a developer's prompt outside its work.
    """
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[0].isalpha() and path[1] == ":"):
        return "an absolute path"
    if parts[0] == "~":
        return "a path in a home folder"
    if ".." in parts:
        return 'a ".." component leaves the worktree'
    inside = next((part for part in parts if part in _PRIVATE_FOLDERS), None)
    if inside is not None:
        return f"points into {inside}"
    return None


def file_errors(task_id: str, files: Sequence[str]) -> list[str]:
    """One line per refused ``files`` entry of a task, naming the task and the path."""
    errors: list[str] = []
    for path in files:
        problem = file_problem(path)
        if problem is not None:
            errors.append(f'task {task_id}: file "{path}" is refused: {problem}')
    return errors


def _raw_file_errors(obj: object) -> list[str]:
    """`file_errors` of each raw task whose id and files are strings (a wrong shape elsewhere)."""
    items = obj.get("tasks") if isinstance(obj, dict) else None
    errors: list[str] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        tid = item.get("id") if isinstance(item, dict) else None
        files = item.get("files") if isinstance(item, dict) else None
        if isinstance(files, list):
            name = tid if isinstance(tid, str) and tid.strip() else f"at tasks[{index}]"
            errors += file_errors(name, [f for f in files if isinstance(f, str)])
    return errors


def _usable(obj: object) -> list[tuple[str, list[str]] | None]:
    """Each raw task's id and deps, or None where they are not strings."""
    items = obj.get("tasks") if isinstance(obj, dict) else None
    found: list[tuple[str, list[str]] | None] = []
    for item in items if isinstance(items, list) else []:
        tid = item.get("id") if isinstance(item, dict) else None
        deps = item.get("deps", []) if isinstance(item, dict) else None
        ok = isinstance(deps, list) and all(isinstance(d, str) for d in deps)
        if isinstance(tid, str) and tid.strip():
            found.append((tid, list(deps) if ok and isinstance(deps, list) else []))
        else:
            found.append(None)
    return found


def _id_errors(tasks: Sequence[tuple[str, list[str]] | None]) -> list[str]:
    """Duplicate ids, unknown deps, self-deps and cycles (None: a task without a usable id)."""
    errors: list[str] = []
    first_at: dict[str, int] = {}
    deps: dict[str, list[str]] = {}
    for index, task in enumerate(tasks):
        if task is None:
            continue
        tid, task_deps = task
        if tid in first_at:
            errors.append(
                f"tasks[{index}].id: duplicate id {tid} (tasks[{first_at[tid]}] has it too)"
            )
            continue
        first_at[tid] = index
        deps[tid] = _dedupe(task_deps)
    return errors + _graph_errors(list(first_at), deps)


def _checked(tasks: Sequence[TaskSpec]) -> dict[str, TaskSpec]:
    """The tasks by id, after checking they form a DAG."""
    by_id: dict[str, TaskSpec] = {}
    errors: list[str] = []
    for task in tasks:
        if task.id in by_id:
            errors.append(f"{task.id}: duplicate id")
        else:
            by_id[task.id] = task
    errors += _graph_errors(list(by_id), {tid: _dedupe(t.deps) for tid, t in by_id.items()})
    if errors:
        raise DagError(errors)
    return by_id


def dependents(tasks: Sequence[TaskSpec]) -> dict[str, list[str]]:
    """For each task, the tasks that depend on it directly, in definition order."""
    result: dict[str, list[str]] = {task.id: [] for task in tasks}
    for task in tasks:
        for dep in _dedupe(task.deps):
            if dep in result:
                result[dep].append(task.id)
    return result


def descendants(tasks: Sequence[TaskSpec], task_id: str) -> set[str]:
    """Every task that depends on ``task_id``, directly or not (not the task itself)."""
    below = dependents(tasks)
    if task_id not in below:
        raise KeyError(task_id)
    seen: set[str] = set()
    todo = list(below[task_id])
    while todo:
        tid = todo.pop()
        if tid not in seen:
            seen.add(tid)
            todo.extend(below[tid])
    seen.discard(task_id)
    return seen


def topological_order(tasks: Sequence[TaskSpec]) -> list[str]:
    """Task ids, each after its deps; among tasks ready together, definition order."""
    by_id = _checked(tasks)
    position = {tid: i for i, tid in enumerate(by_id)}
    below = dependents(tasks)
    waiting = {tid: len(_dedupe(task.deps)) for tid, task in by_id.items()}
    heap = [position[tid] for tid, count in waiting.items() if count == 0]
    heapq.heapify(heap)
    ids = list(by_id)
    order: list[str] = []
    while heap:
        tid = ids[heapq.heappop(heap)]
        order.append(tid)
        for nxt in below[tid]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(heap, position[nxt])
    return order


def critical_path(
    tasks: Sequence[TaskSpec], durations: Mapping[str, float] | None = None
) -> dict[str, float]:
    """For each task, the longest path from it to the end of the DAG, itself included.

    A task missing from ``durations`` counts as 1.0, as every task does without it.
    """
    below = dependents(tasks)
    length: dict[str, float] = {}
    for tid in reversed(topological_order(tasks)):
        own = 1.0 if durations is None else durations.get(tid, 1.0)
        length[tid] = own + max((length[nxt] for nxt in below[tid]), default=0.0)
    return {task.id: length[task.id] for task in tasks}


def lower_bound(
    tasks: Sequence[TaskSpec], durations: Mapping[str, float] | None, workers: int
) -> float:
    """No schedule on ``workers`` workers ends sooner: max(longest path, total work / workers)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    lengths = critical_path(tasks, durations)
    total = sum(1.0 if durations is None else durations.get(t.id, 1.0) for t in tasks)
    return max(max(lengths.values(), default=0.0), total / workers)
