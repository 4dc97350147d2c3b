"""How the journal and the folded state read on a terminal and as JSON (no I/O here)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from autonoma import protocol as p
from autonoma.hints import command as hint_command
from autonoma.hints import endpoint_text, resume_command
from autonoma.journal.fold import State, Task, Usage
from autonoma.protocol import Envelope
from autonoma.text import inert
from autonoma.words import (
    asked_by,
    commands_lines,
    concurrency_text,
    describe,
    left_out_text,
    line,
    money,
    origin_text,
    pause_reason,
    run_state,
    short,
)


def iso_time(ts: float) -> str:
    """UTC time of an epoch timestamp, to the millisecond."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def clock_time(ts: float) -> str:
    """HH:MM:SS.mmm in UTC."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def envelope_text(envelope: Envelope) -> str:
    """One line of ``autonoma logs``."""
    message = envelope.message
    route = (
        envelope.sender
        if envelope.recipient == "*"
        else f"{envelope.sender} → {envelope.recipient}"
    )
    return inert(
        f"{envelope.seq:>7} {clock_time(envelope.ts)} {route:<24} "
        f"{p.message_tag(message):<18} {message_text(message)}"
    )


def message_text(message: p.Message) -> str:
    """A message's words (`autonoma.words`), with who said them; its fields for a type
    this version has no words for."""
    said = describe(message)
    if said is not None:
        return line(said)
    fields = msgspec.structs.asdict(message)
    return short(" ".join(f"{key}={value}" for key, value in fields.items()))


def envelope_json(envelope: Envelope) -> str:
    """One line of ``autonoma logs --json``: the envelope with an ISO time added."""
    data: dict[str, Any] = msgspec.to_builtins(envelope)
    data["time"] = iso_time(envelope.ts)
    return msgspec.json.encode(data).decode()


def _usage_text(usage: Usage) -> str:
    return (
        f"{money(usage.usd)}, {usage.tokens:,} tokens "
        f"({usage.input_tokens:,} in, {usage.output_tokens:,} out, "
        f"{usage.cache_read_tokens + usage.cache_creation_tokens:,} cache)"
    )


# Tasks are listed in this order of their states: what needs a human first, then the
# work in flight, then what is waiting, then what is finished.
_TASK_ORDER = (
    "escalated",
    "failed",
    "running",
    "review",
    "merging",
    "ready",
    "pending",
    "merged",
    "resolved",
)
_HISTORY_REASON = 200
_HISTORY_EVENTS = 20
_REFUSALS = 3
_REJECTED = 5


def _said(message: p.Message) -> str:
    """A folded record told in the words of the message it came from (`autonoma.words`)."""
    said = describe(message)
    return said.text if said is not None else p.message_tag(message)


def _line(message: p.Message) -> str:
    """`_said` with who said it (``developer-1 [t2] was denied WebFetch: ...``)."""
    said = describe(message)
    return line(said) if said is not None else p.message_tag(message)


def _hhmmss(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S")


def _plan_text(plan: dict[str, Any] | None) -> str:
    if not plan:
        return ""
    text = short(str(plan.get("summary") or ""), 300)
    milestones = plan.get("milestones")
    count = len(milestones) if isinstance(milestones, list) else 0
    if not count:
        return text
    noun = f"{count} milestone{'' if count == 1 else 's'}"
    return f"{text} ({noun})" if text else noun


def _task_columns(task: Task) -> tuple[str, str, str, str, str]:
    """A task's id, state, attempts, agent and cost, as shown."""
    attempts = f"attempt {task.attempts}" if task.attempts else "-"
    cost = money(task.usage.usd) if task.usage.turns else "-"
    return task.task_id, task.state, attempts, task.agent or "-", cost


def _blockers(task: Task, tasks: dict[str, Task]) -> list[str]:
    """The escalated tasks a waiting task depends on, directly or not."""
    seen: set[str] = set()
    found: list[str] = []
    todo = list(task.deps)
    while todo:
        dep = tasks.get(todo.pop())
        if dep is None or dep.task_id in seen:
            continue
        seen.add(dep.task_id)
        if dep.state == "escalated":
            found.append(dep.task_id)
        elif dep.state not in ("merged", "resolved"):
            todo += dep.deps
    return sorted(found)


def _task_lines(task: Task, widths: list[int], tasks: dict[str, Task]) -> list[str]:
    columns = _task_columns(task)
    # The cost is aligned right, the rest left; the title and reason end the line.
    cells = [c.ljust(w) for c, w in zip(columns[:-1], widths, strict=False)]
    cells.append(columns[-1].rjust(widths[-1]))
    reason = f": {short(task.reason)}" if task.reason else ""
    if task.state in ("pending", "ready"):
        blockers = _blockers(task, tasks)
        if blockers:
            reason = f": waits on escalated {', '.join(blockers)}"
    lines = [f"    {'  '.join(cells)}  {task.title}{reason}"]
    pad = " " * 6
    if task.state == "escalated" and task.history:
        lines.append(f"{pad}history (latest last):")
        earlier = len(task.history) - _HISTORY_EVENTS
        if earlier > 0:
            lines.append(f"{pad}  … {earlier} earlier")
        for event in task.history[-_HISTORY_EVENTS:]:
            if event.refusal is not None:
                said = _line(event.refusal.message)
            else:
                said = _said(
                    p.TaskStateChanged(
                        task_id=task.task_id,
                        state=event.state,  # type: ignore[arg-type]
                        reason=event.reason,
                        attempt=event.attempt,
                    )
                )
            lines.append(f"{pad}  #{event.seq} {_hhmmss(event.ts)} {said}")
    if task.left_out:
        lines.append(f"{pad}{left_out_text(task.left_out, task.left_out_more)}")

    if task.setups and not task.setups[-1].ok and task.state not in ("merged", "resolved"):
        last = task.setups[-1]
        where = {
            "merge_gate": "merge gate",
            "review": "QA's checkout",
            "node": "clone on a cluster's node",
        }.get(last.place, "worktree")
        how = "timed out" if last.timed_out else f"exit code {last.exit_code}"
        tail = short(last.output_tail[-_HISTORY_REASON:], _HISTORY_REASON)
        lines.append(f"{pad}last set-up ({where}) failed, {how}: {tail}")
    if task.refusals and task.state != "escalated":  # an escalated task shows its history
        earlier = len(task.refusals) - _REFUSALS
        more = f" (+{earlier} earlier)" if earlier > 0 else ""
        lines.append(f"{pad}refused{more}:")
        for refusal in task.refusals[-_REFUSALS:]:
            lines.append(f"{pad}  #{refusal.seq} {_hhmmss(refusal.ts)} {_line(refusal.message)}")
    if task.report is not None and task.state not in ("merged", "resolved"):
        report = task.report
        said = _said(
            p.DeveloperReport(
                task_id=task.task_id,
                agent_id=report.agent,
                summary=report.summary,
                left=report.left,
                structured=report.structured,
            )
        )
        lines.append(f"{pad}{report.agent} {said}")
    lines += [f"{pad}note: {short(note, _HISTORY_REASON)}" for note in task.notes]
    if task.requested:
        lines.append(
            f"{pad}{task.requested} requested{origin_text(task.requested_by)}: "
            "the run has not acted on it yet"
        )
    elif task.state == "resolved" and task.requested_by:
        lines.append(f"{pad}resolved by hand{origin_text(task.requested_by)}")
    return lines


def state_text(state: State) -> str:
    """What ``autonoma status`` and ``autonoma replay`` print."""
    if state.last_seq == 0:
        return "No messages in the journal yet: no run has started in this project."
    lines: list[str] = []
    run = state.run
    if run is None:
        lines.append(f"No run yet; {state.last_seq} messages journaled.")
    else:
        where = run_state(run.outcome, run.interrupted)
        started = iso_time(run.started) if run.started is not None else "?"
        ended = f", ended {iso_time(run.ended)}" if run.ended is not None else ""
        resumed = f", resumed {run.resumes}x" if run.resumes else ""
        lines.append(
            f"Run {run.run_id}: {where}, phase {run.phase or '-'}, "
            f"started {started}{ended}{resumed}"
        )
        lines.append(f"  requirements: {run.requirements}")
        if run.commands is not None:
            lines += [f"  {line}" for line in commands_lines(run.commands)]
        if run.endpoint:
            lines.append(f"  model: {endpoint_text(run.endpoint).removeprefix('against ')}")
        lines.append(
            "  sandbox: on (agents' Bash confined to their folders)"
            if run.sandbox
            else "  sandbox: OFF (agents could write anywhere you can)"
        )
        if run.summary:
            lines.append(f"  {run.summary}")
        if run.interrupted:
            lines.append(
                "  its process is gone without a word (killed?): "
                "nothing merged is lost, and the next start resumes it"
            )
        if run.outcome in ("failed", "stopped") or run.interrupted:
            lines.append(f"  resume it (in {run.project or 'the project'}): {resume_command(run)}")
    plan = _plan_text(state.plan)
    if plan:
        lines.append(f"Plan: {plan}")
    if state.stopping:
        lines.append(
            f"STOPPING (asked by {asked_by(state.stopped_by)}): nothing new starts; the run ends "
            "once "
            "the merge under way is done"
        )
    if state.paused:
        # The governor's pause ends by itself; a human's or the root's waits for a human.
        waits = state.human_pause or "by itself" not in state.work_pause
        hint = f" (no new turn starts: `{hint_command('resume')}` resumes)" if waits else ""
        why = pause_reason(state.human_pause, state.paused_by, state.work_pause)
        lines.append(f"PAUSED: {why}{hint}")
    # Against the last message, not the clock: the fold has no clock, and a replay shows
    # what held then.
    if state.held_until > state.last_ts:
        lines.append(
            f"Governor: spawns held until {_hhmmss(state.held_until)}: {state.hold_reason}"
        )
    current = state.run
    if current is not None and current.outcome is None and current.max_workers:
        said = concurrency_text(state.concurrency, current.max_workers)
        lines.append(said[:1].upper() + said[1:])
    if state.budget is not None:
        lines.append(_said(state.budget))
    if state.tasks:
        groups: dict[str, list[Task]] = {}
        for task in state.tasks.values():
            groups.setdefault(task.state, []).append(task)
        order = {name: i for i, name in enumerate(_TASK_ORDER)}
        ordered = sorted(groups.items(), key=lambda g: (order.get(g[0], len(order)), g[0]))
        lines.append("Tasks: " + ", ".join(f"{len(tasks)} {name}" for name, tasks in ordered))
        table = [_task_columns(task) for task in state.tasks.values()]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for name, tasks in ordered:
            lines.append(f"  {name} ({len(tasks)}):")
            for task in tasks:
                lines += _task_lines(task, widths, state.tasks)
    if state.agents:
        lines.append("Agents:")
        for agent in state.agents.values():
            action = agent.last_action
            doing = f" {_said(action.message)}" if action is not None else ""
            working_on = f" [{agent.task_id}]" if agent.task_id else ""
            model = f" {agent.model}" if agent.model else ""
            cost = f" {money(agent.usage.usd)}" if agent.usage.turns else ""
            why = ""
            if agent.state in ("dead", "waiting") and (agent.detail or agent.last_error):
                why = f" ({short(agent.detail or agent.last_error)})"
            if agent.last_refusal is not None:
                times = "" if agent.refusals == 1 else f"refused {agent.refusals}x, last: "
                why += f" ({times}{_said(agent.last_refusal.message)})"
            lines.append(
                f"  {agent.name:<14} {agent.state or '-':<9}{working_on}{model}{cost}{why}{doing}"
            )
    if state.actors:
        lines.append("Actors:")
        for actor in state.actors.values():
            plural = "" if actor.restarts == 1 else "s"
            restarts = f", {actor.restarts} restart{plural}" if actor.restarts else ""
            error = f", last error: {actor.last_error}" if actor.last_error else ""
            lines.append(f"  {actor.name:<14} {actor.status}{restarts}{error}")
    answers = [r for r in state.refusals if r.task_id is None]
    if answers:
        lines.append(f"Refused outside tasks: {len(answers)} (latest last)")
        for refusal in answers[-5:]:
            lines.append(f"  #{refusal.seq} {clock_time(refusal.ts)} {_line(refusal.message)}")
    if state.rejected_commands:
        rejected = state.rejected_commands
        lines.append(
            f"Commands rejected from the inbox (not acted on): {len(rejected)} (latest last)"
        )
        for command in rejected[-_REJECTED:]:
            said = _said(p.HumanCommandRejected(path=command.path, reason=command.reason))
            lines.append(f"  #{command.seq} {clock_time(command.ts)} {said}")
    if state.escalations:
        lines.append("Escalations:")
        for esc in state.escalations:
            said = _said(p.Escalation(source=esc.source, reason=esc.reason, task_id=esc.task_id))
            lines.append(f"  #{esc.seq} {clock_time(esc.ts)} {said}")
    crashes = [e for e in state.supervision if e.kind != "restarted"]
    if crashes:
        lines.append(f"Crashes, kills and give-ups: {len(crashes)} (latest last)")
        for event in crashes[-5:]:
            if event.message is not None:
                said = _said(event.message)
            else:  # not made by the fold: its fields
                said = f"{event.supervisor}/{event.child} {event.kind}: {event.error}"
            lines.append(f"  #{event.seq} {clock_time(event.ts)} {said}")
    lines.append(f"Cost: {_usage_text(state.usage)}")
    if state.unknown:
        lines.append(f"Skipped {state.unknown} messages of a type this version does not know")
    lines.append(f"Journal: {state.last_seq} messages, last at {iso_time(state.last_ts)}")
    # The edge: plan, task and note text can steer no terminal.
    return inert("\n".join(lines))


def state_json(state: State) -> str:
    """What ``--json`` prints: the folded state."""
    return msgspec.json.encode(state.to_dict()).decode()
