"""What each panel of the dashboard shows, as pure functions of the folded `State`.

No Textual here: the TUI's widgets only lay these lines out, the gateway sends them to the
web view (`autonoma.desktop.snapshots`), and the tests read them as tables.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from autonoma import protocol as p
from autonoma.journal.fold import Agent, Row, State, Task
from autonoma.protocol import (
    AgentText,
    AgentToolResult,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
    PermissionDenied,
)
from autonoma.text import inert
from autonoma.words import (
    INTERRUPTED,
    Level,
    budget_text,
    concurrency_text,
    describe,
    line,
    pause_reason,
    tool_call,
)
from autonoma.workflow.dag import TaskSpec, critical_path

DONE = frozenset({"merged", "resolved"})

STATE_WORDS = {
    "pending": "waiting on deps",
    "ready": "ready",
    "running": "developing",
    "review": "in review",
    "merging": "in the merge queue",
    "merged": "merged",
    "failed": "retrying",
    "escalated": "escalated",
    "resolved": "resolved",
}
"""A task's state as the board says it."""


def said(message: p.Message) -> tuple[str, Level]:
    """One inert line for ``message`` and how it reads (info, good, warn or bad).

    Shown in an agent's own stream: the words of what the agent did itself leave the
    agent out (`words.describe`), and keep its task."""
    words = describe(message)
    if words is None:
        return type(message).__name__, "info"
    if words.agent_id and words.task_id:
        # The agent is the stream's own; which task it was on still matters.
        return f"[{words.task_id}] {words.text}", words.level
    return words.text, words.level


def money(usd: float) -> str:
    """``$0.0123``, or ``$12.34`` from a dollar on."""
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def elapsed(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def short(text: str, limit: int) -> str:
    """``text`` on one inert line of at most ``limit`` characters."""
    text = " ".join(inert(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the task board ----------------------------------------------------------------------


def task_state(task: Task, max_retries: int | None = None) -> str:
    """The board's words for a task's state: ``retrying 2/3``, ``waiting on deps``..."""
    words = STATE_WORDS.get(task.state, task.state)
    if task.state == "failed" or (task.state == "running" and task.attempts > 1):
        tries = f"{task.attempts}/{max_retries + 1}" if max_retries is not None else task.attempts
        return f"retrying {tries}"
    if task.requested:
        return f"{words} ({task.requested} asked)"
    return str(words)


def critical(state: State) -> set[str]:
    """The tasks on the longest chain of unfinished work (the critical path)."""
    open_tasks = {t.task_id: t for t in state.tasks.values() if t.state not in DONE}
    if not open_tasks:
        return set()
    specs = [
        TaskSpec(id=t.task_id, title=t.title, spec="", deps=[d for d in t.deps if d in open_tasks])
        for t in open_tasks.values()
    ]
    try:
        lengths = critical_path(specs)
    except Exception:
        return set()  # a journal whose tasks do not form a DAG: no path to mark
    below: dict[str, list[str]] = {tid: [] for tid in open_tasks}
    for spec in specs:
        for dep in spec.deps:
            below[dep].append(spec.id)
    roots = [s.id for s in specs if not s.deps]
    if not roots:
        return set()
    node = max(roots, key=lambda tid: (lengths[tid], -_order(state, tid)))
    path = {node}
    while below[node]:
        node = max(below[node], key=lambda tid: (lengths[tid], -_order(state, tid)))
        path.add(node)
    return path


def _order(state: State, task_id: str) -> int:
    return list(state.tasks).index(task_id)


@dataclass(frozen=True)
class BoardRow:
    """One line of the task board."""

    task_id: str
    title: str
    state: str
    deps: str
    attempts: int
    cost: str
    critical: bool
    raw_state: str


def board(state: State, max_retries: int | None = None) -> list[BoardRow]:
    """Every task, in the order the plan defined them."""
    on_path = critical(state)
    return [
        BoardRow(
            task_id=t.task_id,
            title=short(t.title, 60),
            state=task_state(t, max_retries),
            deps=", ".join(t.deps) or "-",
            attempts=t.attempts,
            cost=money(t.usage.usd),
            critical=t.task_id in on_path,
            raw_state=t.state,
        )
        for t in state.tasks.values()
    ]


# --- the actor tree ----------------------------------------------------------------------


@dataclass
class Node:
    """One actor of the tree, with its children."""

    name: str
    label: str
    level: Level = "info"
    children: list[Node] = field(default_factory=list)


def agent_label(agent: Agent) -> str:
    """``developer-1 working t3 · Bash: pytest · opus · 1 restart``."""
    parts = [f"{agent.name} {agent.state or 'starting'}"]
    if agent.task_id:
        parts[0] += f" {agent.task_id}"
    action = agent.last_action
    if agent.state == "working" and action is not None:
        if isinstance(action.message, AgentToolUse):
            parts.append(short(tool_call(action.message), 40))
        else:
            parts.append("thinking")
    if agent.model:
        parts.append(agent.model)
    if agent.restarts:
        parts.append(f"{agent.restarts} restart{'s' if agent.restarts != 1 else ''}")
    return " · ".join(parts)


def tree(state: State) -> Node:
    """The supervision tree: root, its children, the crew's agents under the crew."""
    nodes: dict[str, Node] = {"root": Node("root", "root")}
    for actor in state.actors.values():
        if actor.name in nodes:
            continue
        agent = state.agents.get(actor.name)
        if agent is not None:
            label = agent_label(agent)
            level: Level = "bad" if agent.state == "dead" and actor.status == "crashed" else "info"
            if agent.state == "working":
                level = "good"
        else:
            label = f"{actor.name} {actor.status}"
            if actor.restarts:
                label += f" · {actor.restarts} restart{'s' if actor.restarts != 1 else ''}"
            level = "bad" if actor.status == "crashed" else "info"
        nodes[actor.name] = Node(actor.name, label, level)
    for actor in state.actors.values():
        parent = nodes.get(actor.supervisor or "root", nodes["root"])
        if parent is not nodes[actor.name]:
            parent.children.append(nodes[actor.name])
    # Agents the journal knows of only from their stream (no supervisor message yet).
    for agent in state.agents.values():
        if agent.name not in nodes:
            node = nodes[agent.name] = Node(agent.name, agent_label(agent))
            nodes.get("crew", nodes["root"]).children.append(node)
    return nodes["root"]


# --- the run panel -----------------------------------------------------------------------


def run_lines(
    state: State,
    *,
    live: bool,
    now: float | None = None,
    budget_usd: float = 0.0,
    task_budget_usd: float = 0.0,
) -> list[tuple[str, Level]]:
    """Phase, elapsed time, tasks done, cost against the caps, the governor's state."""
    run = state.run
    if run is None:
        return [("no run in this journal yet", "info")]
    lines: list[tuple[str, Level]] = []
    if run.outcome is not None:
        ends = run.ended or state.last_ts
        level: Level = "good" if run.outcome == "done" else "bad"
        lines.append((f"run {run.run_id}: {run.outcome}", level))
        if run.summary:
            # First, under the outcome: a short panel must not cut off how it ended.
            lines.append((short(run.summary, 300), level))
    elif run.interrupted:
        # Its process is gone without a word (killed): the clock stopped with it.
        ends = state.last_ts
        lines.append((f"run {run.run_id}: {INTERRUPTED} (its process is gone)", "bad"))
    else:
        ends = (now if now is not None else time.time()) if live else state.last_ts
        lines.append((f"run {run.run_id}: {run.phase or 'starting'}", "info"))
    started = run.started or ends
    done = sum(1 for t in state.tasks.values() if t.state in DONE)
    lines.append((f"phase {run.phase or '-'} · {elapsed(ends - started)} elapsed", "info"))
    lines.append((f"tasks {done}/{len(state.tasks)} done", "info"))
    cap = f" of {money(budget_usd)}" if budget_usd else ""
    lines.append((f"cost {money(run.usage.usd)}{cap} · {run.usage.tokens:,} tokens", "info"))
    if task_budget_usd:
        lines.append((f"task cap {money(task_budget_usd)}", "info"))
    if state.budget is not None:
        lines.append((budget_text(state.budget), "bad"))
    if state.paused:
        why = pause_reason(state.human_pause, state.paused_by, state.work_pause)
        lines.append((f"PAUSED: {short(why, 120)}", "bad"))
    if run.outcome is not None:
        pass  # ended: the governor has nothing left to say
    elif state.held_until > state.last_ts:
        wait = state.held_until - state.last_ts
        lines.append((f"governor holds new agents {wait:.0f} s: {state.hold_reason}", "warn"))
    else:
        lines.append(("governor: new agents may start", "info"))
    if run.max_workers and state.concurrency is not None and state.concurrency < run.max_workers:
        # Only while lowered: at the ceiling it says nothing max_workers does not.
        lines.append((concurrency_text(state.concurrency, run.max_workers), "warn"))
    return lines


def agent_costs(state: State) -> list[str]:
    """``developer-1 $0.0123 12,345 tok`` for every agent that spent something."""
    return [
        f"{a.name} {money(a.usage.usd)} {a.usage.tokens:,} tok"
        for a in state.agents.values()
        if a.usage.turns
    ]


# --- escalations -------------------------------------------------------------------------


def escalations(state: State) -> list[tuple[str, Level]]:
    """Each escalated task with its reason and its history; then other escalations."""
    lines: list[tuple[str, Level]] = []
    for task in state.tasks.values():
        if task.state != "escalated":
            continue
        lines.append((f"{task.task_id} escalated: {short(task.reason, 200)}", "bad"))
        for event in task.history[-6:]:
            if event.refusal is not None:
                refused = describe(event.refusal.message)
                if refused is not None:
                    lines.append((f"  seq {event.seq} {short(line(refused), 120)}", "info"))
                    continue
            why = f": {short(event.reason, 100)}" if event.reason else ""
            lines.append((f"  seq {event.seq} {event.state}{why}", "info"))
        if task.notes:
            lines.append((f"  notes: {short('; '.join(task.notes), 150)}", "info"))
    for record in state.escalations:
        on_task = state.tasks.get(record.task_id) if record.task_id is not None else None
        if on_task is not None and on_task.state == "escalated":
            continue
        on = f" on {record.task_id}" if record.task_id else ""
        lines.append((f"seq {record.seq} {record.source}{on}: {short(record.reason, 200)}", "warn"))
    return lines


def needs_human(state: State) -> bool:
    """A task waits for a human, or the work is paused."""
    return state.paused or any(t.state == "escalated" for t in state.tasks.values())


# --- an agent's stream -------------------------------------------------------------------

STREAM_TYPES = frozenset(
    {
        "AgentText",
        "AgentToolUse",
        "AgentToolResult",
        "PermissionDenied",
        "AgentTurnStarting",
        "AgentTurnFinished",
        "AgentStateChanged",
        "SchemaRejected",
        "AgentApiRetry",
        "DeveloperReport",
        "ReviewVerdict",
    }
)


def stream_lines(rows: list[Row]) -> list[tuple[str, Level]]:
    """An agent's rows as lines: text, tool calls in short, results folded, errors red."""
    from autonoma.journal.fold import Activity

    lines: list[tuple[str, Level]] = []
    cwd = ""

    def rel(text: str) -> str:
        # Paths as the agent sees them: its clone's folder left out.
        return text.replace(cwd + "/", "").replace(cwd, ".") if cwd else text

    for row in rows:
        if row[5] not in STREAM_TYPES:
            continue
        message = Activity.of(row).message
        if isinstance(message, AgentTurnStarting):
            cwd = message.cwd.rstrip("/")
            how = "resumes its session" if message.resume else "new session"
            on = f" on {message.task_id}" if message.task_id else ""
            lines.append(
                (
                    f"· turn starts{on} ({how}{', ' + message.model if message.model else ''})",
                    "info",
                )
            )
        elif isinstance(message, AgentText):
            lines.append((short(message.text, 300), "info"))
        elif isinstance(message, AgentToolUse):
            lines.append((f"▶ {short(tool_call(message, cwd), 200)}", "info"))
        elif isinstance(message, AgentToolResult):
            first = message.content.strip().split("\n", 1)[0]
            more = message.content.count("\n")
            folded = f" (+{more} lines)" if more else ""
            level: Level = "bad" if message.is_error else "info"
            word = "error" if message.is_error else "result"
            lines.append((f"  ◀ {word}: {short(rel(first), 120)}{folded}", level))
        elif isinstance(message, AgentTurnFinished):
            if message.is_error:
                why = message.result or message.terminal_reason or message.subtype
                lines.append((f"· turn failed: {short(why, 150)}", "bad"))
            else:
                lines.append((f"· turn ended ({message.num_turns} steps)", "info"))
        elif isinstance(message, PermissionDenied):
            lines.append((f"DENIED {message.tool}: {short(message.reason, 150)}", "bad"))
        else:
            text, level = said(message)
            lines.append((f"· {short(text, 200)}", level))
    return lines
