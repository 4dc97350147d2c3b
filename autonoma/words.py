"""One message in words for people: the one place every view takes them from.

`describe` turns a message into a `Said`: one line of inert text, a level (which a view
turns into a colour), and the task and agent it is about. The live log
(`autonoma.progress`), ``status`` (`autonoma.report`), ``logs``, the dashboard and the web
view all show these words, so one message reads the same everywhere; what stays in a view
is its framing (a time stamp, colours, the layout of a section) and what it leaves out
(`notable` says what a log of the run shows; an agent's stream shows the rest too).

The text of an agent's own doing (a tool call, a denial, its report: ``agent_id`` is set)
leaves the agent and its task out: a view says who (``line`` puts ``agent [task] `` before
it, as the live log and ``logs`` do; the dashboard's agent stream needs no name). Every
other text names its subject (the task, the actor, the run).

Pure: no I/O, no clock, no state; nothing here raises on a well-formed message.
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from autonoma import protocol as p
from autonoma.hints import command
from autonoma.text import inert

Level = Literal["info", "good", "warn", "bad"]

REASON_CHARS = 160
"""How much of a reason (a verdict, a failure, a detail) one line keeps."""

TOOL_CHARS = 120
"""How much of a tool call's argument one line keeps."""

ORIGIN_CHARS = 100
"""How much of a human command's origin a line keeps."""

TEXT_CHARS = 240
"""How much of what an agent says, or a tool returns, one line keeps."""


INTERRUPTED = "interrupted"
"""How a run without an outcome whose process is gone (killed) is shown."""


def run_state(outcome: str | None, interrupted: bool) -> str:
    """A run's state in one word: its outcome, ``interrupted`` (its process is gone
    without a word) or ``running``."""
    return outcome or (INTERRUPTED if interrupted else "running")


class Said(msgspec.Struct, frozen=True, kw_only=True):
    """A message in words: one inert line, how it reads (for a colour), whom it is about.

    A msgspec Struct so the gateway can send it beside each message.
    """

    text: str
    level: Level = "info"
    task_id: str | None = None
    agent_id: str | None = None


# An absolute path into a task's clone (or an older run's worktree), for when the agent's
# folder is not known: followed by a slash it goes, on its own it becomes "." (paths as
# the agent sees them). A clone is ``clones/<run>/<task>`` or ``clones/<run>/_review/<n>``.
_WORKTREE = (
    r"/(?:[^\s'\"]*/)?\.autonoma/"
    r"(?:worktrees/[^/\s'\"]+|clones/[^/\s'\"]+/(?:_review/[^/\s'\"]+|(?!_review/)[^/\s'\"]+))"
)
_END = r"(?=$|[\s'\"])"
_WORKTREE_SLASH = re.compile(_WORKTREE + "/")
_WORKTREE_END = re.compile(_WORKTREE + _END)

# A tool call's main argument, in the order it is looked for.
_PATH_KEYS = ("file_path", "path", "notebook_path")
_OTHER_KEYS = ("pattern", "url", "query", "description", "prompt")


def short(text: str, limit: int = REASON_CHARS) -> str:
    """``text`` on one line (whitespace folded), cut to ``limit`` characters with ``…``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str, limit: int) -> str:
    return short(text.strip().split("\n", 1)[0], limit)


def money(usd: float) -> str:
    """``$0.1234`` under a dollar, ``$12.34`` from one on."""
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def who(agent: str, task: str | None) -> str:
    """``agent [task]``, or the agent alone."""
    return f"{agent} [{task}]" if task else agent


def line(said: Said) -> str:
    """The words with who said them, for a flat list of lines (the live log, ``logs``)."""
    if said.agent_id:
        return f"{who(said.agent_id, said.task_id)} {said.text}"
    return said.text


def asked_by(origin: str) -> str:
    """Who gave a pause, resume or stop, shortly ("a human" when not recorded)."""
    return short(origin, ORIGIN_CHARS) if origin.strip() else "a human"


def pause_reason(human: bool, origin: str, work_pause: str) -> str:
    """Why no new turn starts: a human's pause (``human``, given by ``origin``) and/or the
    system's (``work_pause``: the root's or the governor's reason); "" for neither."""
    reasons = [f"paused by {asked_by(origin)}"] if human else []
    if work_pause:
        reasons.append(work_pause)
    return "; ".join(reasons)


def concurrency_text(limit: int | None, ceiling: int) -> str:
    """``agents at once: 2 of 4 (lowered after rate limits)``; None is the ceiling."""
    if limit is None or limit >= ceiling:
        return f"agents at once: {ceiling} (the ceiling, max_workers)"
    return f"agents at once: {limit} of {ceiling} (lowered after rate limits)"


def budget_text(reached: p.BudgetReached) -> str:
    """``run budget $1.00 reached ($1.02 spent)``, or the task's."""
    whose = "run" if reached.scope == "run" else (reached.task_id or "task")
    return f"{whose} budget {money(reached.limit_usd)} reached ({money(reached.spent_usd)} spent)"


def origin_text(origin: str) -> str:
    """`` (from <origin>)``, the one short form every view gives; "" when unknown."""
    return f" (from {short(origin, ORIGIN_CHARS)})" if origin.strip() else ""


def left_out_text(paths: list[str], more: int = 0, shown: int = 8) -> str:
    """What Autonoma did not commit for an agent, in one phrase (for the log and status)."""
    count = len(paths) + more
    hidden = count - min(len(paths), shown)
    rest = f" and {hidden} more" if hidden else ""
    return f"left out (excluded, or not in the task's files): {', '.join(paths[:shown])}{rest}"


_SOURCES = {"config": "from the config", "staff_engineer": "from the Staff Engineer"}


def commands_lines(commands: p.ProjectCommands) -> list[str]:
    """The project's set-up and test commands, one line each, with where they came from."""
    source = _SOURCES.get(commands.setup_source, "")
    if commands.setup_command:
        setup = f"set-up: `{commands.setup_command}` ({source})"
    else:
        setup = "set-up: none" + (" (the config says none)" if commands.setup_source else "")
    if commands.test_command:
        tests = f"tests: `{commands.test_command}` ({_SOURCES.get(commands.test_source, '')})"
    elif commands.tests_opted_out:
        tests = 'tests: none, by the user\'s choice (test_command = "none"): merged untested'
    else:
        tests = (
            "tests: NONE known: merging is refused; set test_command in .autonoma/config.toml "
            '(or "none" to opt out)'
        )
    return [setup, tests]


def setup_result(ran: p.SetupRan) -> str:
    """How one set-up ended, in a few words."""
    took = f"{ran.duration_s:.1f} s"
    if ran.exit_code == 0 and not ran.timed_out:
        return f"`{ran.command}` ok in {took}"
    how = "timed out" if ran.timed_out else f"exit code {ran.exit_code}"
    lines = [text for text in ran.output_tail.splitlines() if text.strip()]
    last = f": {lines[-1].strip()}" if lines else ""
    return f"`{ran.command}` FAILED ({how}) after {took}{last}"


def relative(text: str, cwd: str = "") -> str:
    """``text`` with an agent's working folder (``cwd``, or any task clone) left out of paths."""
    cwd = cwd.rstrip("/")
    if cwd:
        text = text.replace(cwd + "/", "")
        text = re.sub(re.escape(cwd) + _END, ".", text)
    return _WORKTREE_END.sub(".", _WORKTREE_SLASH.sub("", text))


def tool_call(message: p.AgentToolUse, cwd: str = "") -> str:
    """``Write todo/store.py``, ``Bash: python3 -m unittest``: the call in a few words."""
    tool_input = message.input
    command = tool_input.get("command")
    if isinstance(command, str) and command.strip():
        return f"{message.tool}: {_first_line(relative(command, cwd), TOOL_CHARS)}"
    for key in _PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return f"{message.tool} {short(relative(value, cwd), TOOL_CHARS)}"
    for key in _OTHER_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return f"{message.tool} {_first_line(value, TOOL_CHARS)}"
    return message.tool


_TASK_LEVELS: dict[str, Level] = {"escalated": "bad", "failed": "warn", "merged": "good"}


def _plan(plan: dict[str, object]) -> str:
    milestones = plan.get("milestones")
    count = len(milestones) if isinstance(milestones, list) else 0
    noun = f"{count} milestone{'' if count == 1 else 's'}"
    summary = short(str(plan.get("summary") or ""))
    return f"plan: {summary} ({noun})" if summary else f"plan: {noun}"


def _merge_failed(m: p.MergeFailed) -> tuple[str, Level]:
    task = m.task_id
    if m.kind == "no_test_command":
        return f"{task} not merged: no test command (set test_command)", "bad"
    if m.kind == "setup_failed":
        lines = [text for text in m.output.splitlines() if text.strip()]
        last = f": {short(lines[-1])}" if lines else ""
        return f"{task} merge failed: the set-up failed on the merged result{last}", "warn"
    if m.kind == "integration_locked":
        why = f": {short(m.output)}" if m.output else ""
        return f"{task} not merged yet: autonoma/integration was locked{why}; merging again", (
            "warn"
        )
    if m.kind == "conflict":
        files = m.files
        shown = ", ".join(files[:5]) + (f" (+{len(files) - 5} more)" if len(files) > 5 else "")
        return f"{task} merge failed: conflict{f' on {shown}' if files else ''}", "warn"
    # The output starts with "$ <command>", then how it ended (the merge queue's).
    said = [text.strip() for text in m.output.splitlines() if text.strip()][:2]
    if said and not said[0].startswith("$ "):
        said = said[:1]
    detail = f": {short(' → '.join(said))}" if said else ""
    return f"{task} merge failed: tests failed on the merged result{detail}", "warn"


def _turn_failed(m: p.AgentTurnFinished) -> str:
    why = m.result or m.api_error or m.terminal_reason or m.subtype
    return f"turn failed: {short(why)}"


def _exited(m: p.AgentProcessExited) -> tuple[str, Level]:
    if m.timed_out:
        if m.timeout == "idle":
            stop = f"no output for {m.timeout_s:g} s (idle timeout)"
        elif m.timeout_s:
            stop = f"ran {m.timeout_s:g} s (wall-clock timeout)"
        else:
            stop = "timed out"
        return f"stopped: {stop}", "warn"
    if m.signal is not None:
        return f"claude exited with signal {m.signal}", "warn"
    return f"claude exited with code {m.exit_code}", "info" if m.exit_code == 0 else "warn"


def _words(m: p.Message, cwd: str) -> tuple[str, Level] | None:
    """The text and level of every message type (the agent, for its own doings, left out)."""
    match m:
        # --- the supervisor tree
        case p.ActorStarted(name=name, kind=kind, restart=restart):
            return f"{'restarted' if restart else 'started'} {kind} {name}", "info"
        case p.ActorExited(name=name, reason=reason):
            return f"{name} exited ({reason})", "info"
        case p.ActorCrashed(name=name, error_type=kind, error_text=text, during_start=start):
            where = " while starting" if start else ""
            return f"{name} crashed{where}: {short(f'{kind}: {text}')}", "bad"
        case p.ActorStopped(name=name):
            killed = m.how == "killed"
            return f"{name} {'killed after its shutdown timeout' if killed else 'stopped'}", (
                "warn" if killed else "info"
            )
        case p.SupervisorGaveUp(name=name, restarts=n, period=period, child=child, error=error):
            last = short(f"{child}: {error}" if error else child)
            return f"{name} gave up after {n} restarts in {period:g} s (last: {last})", "bad"
        case p.Escalation(source=source, reason=reason, task_id=task):
            on = f" [{task}]" if task else ""
            return f"ESCALATION{on} from {source}: {short(reason, 2 * REASON_CHARS)}", "bad"
        case p.WorkPaused(reason=reason):
            return f"PAUSED: {short(reason)}", "bad"
        case p.WorkResumed(reason=reason):
            return f"resumed: {short(reason)}", "good"
        case p.PauseRequested(origin=origin):
            return (
                f"PAUSED by {asked_by(origin)}: no new turn starts, turns under way finish "
                f"(`{command('resume')}` resumes)",
                "bad",
            )
        case p.ResumeRequested(origin=origin):
            return f"resumed by {asked_by(origin)}", "good"
        case p.StopRequested(origin=origin):
            return (
                f"STOPPING (asked by {asked_by(origin)}): nothing new starts, the merge "
                "under way finishes, then the run ends",
                "bad",
            )
        # --- the run and its tasks
        case p.RunStarted(requirements=req, max_workers=workers, resumed=resumed):
            how = "resumed" if resumed else "started"
            return f"run {how}: {short(req)} (up to {workers} developers at once)", "info"
        case p.RunFinished(outcome=outcome):
            return f"run {outcome}", "good" if outcome == "done" else "bad"
        case p.PhaseChanged(phase=phase):
            return f"phase: {phase}", "info"
        case p.PlanWritten(plan=plan):
            return _plan(plan), "info"
        case p.TaskDefined(task_id=task, title=title, deps=deps):
            after = f" (after {', '.join(deps)})" if deps else ""
            return f"task {task}: {short(title)}{after}", "info"
        case p.TaskStateChanged(task_id=task, state=state, reason=reason, attempt=attempt):
            tried = f" (attempt {attempt})" if attempt else ""
            why = f": {short(reason)}" if reason else ""
            return f"{task} → {state}{tried}{why}", _TASK_LEVELS.get(state, "info")
        case p.TaskWorkspace(task_id=task, worktree=worktree):
            return f"{task} works in {short(worktree, TOOL_CHARS)}", "info"
        case p.TaskFeedback(task_id=task, text=text):
            return f"{task} feedback for the next attempt: {short(text)}", "info"
        case p.ReviewVerdict(task_id=task, verdict=verdict, reasons=reasons, attempt=attempt):
            tried = f" (attempt {attempt})" if attempt else ""
            if verdict == "approve":
                return f"{task} review: approved{tried}", "good"
            first = f": {short(reasons[0])}" if reasons else ""
            more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
            return f"{task} review: changes requested{tried}{first}{more}", "warn"
        case p.MergeFailed():
            return _merge_failed(m)
        case p.TaskMerged(task_id=task, commit=commit, main_moved=moved, detail=detail):
            where = "main moved" if moved else f"main not moved: {short(detail)}"
            tests = {
                "no_tests": ", no tests collected yet",
                "opted_out": ", tests not run (opted out)",
            }.get(m.tests, "")
            return f"{task} merged as {commit[:8]}{tests}, {where}", "good" if moved else "warn"
        case p.ProjectCommands():
            return "project " + "; ".join(commands_lines(m)), "info"
        case p.SetupRan(task_id=task, place=place):
            where = {
                "merge_gate": " (merge gate)",
                "review": " (QA's checkout)",
                "node": " (on a cluster's node)",
            }.get(place, "")
            return f"{task or '-'} set-up{where}: {short(setup_result(m), 2 * REASON_CHARS)}", (
                "info" if m.ok else "warn"
            )
        case p.RetryRequested(task_id=task, note=note, origin=origin):
            noted = f": {short(note)}" if note else ""
            return f"{task}: a human asked for a retry{noted}{origin_text(origin)}", "info"
        case p.ResolveRequested(task_id=task, note=note, origin=origin):
            noted = f": {short(note)}" if note else ""
            return f"{task}: a human resolved it by hand{noted}{origin_text(origin)}", "info"
        case p.HumanCommandRejected(path=path, reason=reason):
            return (
                f"REJECTED a command in the inbox, not acted on: {short(path, TOOL_CHARS)}"
                f": {short(reason)}",
                "bad",
            )
        case p.SpawnsHeld(delay=delay, reason=reason):
            why = f" ({short(reason)})" if reason else ""
            return f"rate limited: new agents held for {delay:.1f} s{why}", "warn"
        case p.ConcurrencyChanged(limit=limit, ceiling=ceiling, reason=reason):
            line = concurrency_text(limit, ceiling)
            return f"{line} ({short(reason)})", ("warn" if limit < ceiling else "info")
        case p.HoldLifted(reason=reason):
            return f"the storm is over: new agents may start again ({short(reason)})", "info"
        case p.LeftoversKilled(pids=pids, commands=commands):
            what = "; ".join(short(c, TOOL_CHARS) for c in commands[:3])
            more = f" (+{len(commands) - 3} more)" if len(commands) > 3 else ""
            return (
                f"killed {len(pids)} process(es) an earlier run left working: {what}{more}",
                "warn",
            )
        case p.RefLockRemoved(path=path, branch=branch, age_s=age, ours=ours):
            why = "it named a commit this run merged" if ours else f"{age:.0f} s old"
            return (
                f"removed {short(path, TOOL_CHARS)}, a lock on {branch or 'the branch'} "
                f"left by a killed git ({why})",
                "warn",
            )
        case p.MainAdvanceFinished(branch=branch, commit=commit):
            return (
                f"finished moving {branch or 'main'} to {commit[:8]} (a stop interrupted it)",
                "warn",
            )
        case p.BudgetReached(scope="task"):
            return budget_text(m), "warn"
        case p.BudgetReached():
            return f"BUDGET: {budget_text(m)}: no new work starts", "bad"
        # --- an agent's own doings (the view says who)
        case p.DeveloperReport(summary=said, structured=structured):
            how = "reports" if structured else "says (no structured report)"
            left = f" ({len(m.left)} left to do)" if m.left else ""
            return f"{how}: {short(said)}{left}", "info"
        case p.AnswerRejected(what=what, errors=errors, attempt=attempt):
            shown = "; ".join(short(e) for e in errors[:10])
            more = f"; … {len(errors) - 10} more" if len(errors) > 10 else ""
            return f"had its {what} rejected (attempt {attempt}): {shown}{more}", "warn"
        case p.WorkCommittedForAgent(commit=commit, files=files):
            many = f" ({len(files)} file{'' if len(files) == 1 else 's'})" if files else ""
            left = left_out_text(m.left_out, m.left_out_more) if m.left_out else ""
            return (
                f"left changes uncommitted: committed as {commit[:8]}{many}"
                + (f"; {left}" if left else ""),
                "info",
            )
        case p.WorkLeftOut(left_out=left_out, left_out_more=more):
            return f"nothing committed for it; {left_out_text(left_out, more)}", "info"
        case p.AgentStateChanged(state=state, detail=detail):
            why = f": {short(detail)}" if detail else ""
            return f"{state}{why}", "bad" if state == "dead" else "info"
        case p.AgentText(text=text):
            return short(text, TEXT_CHARS), "info"
        case p.AgentToolUse():
            return tool_call(m, cwd), "info"
        case p.AgentToolResult(content=content, is_error=is_error):
            if is_error:
                return f"error: {short(content, TEXT_CHARS)}", "bad"
            return f"→ {short(content, TEXT_CHARS)}", "info"
        case p.AgentTurnStarting(resume=resume, model=model, waits_for_prompt=early):
            how = "resumes its session" if resume else "starts a turn"
            on = f" on {model}" if model else ""
            ahead = " (started ahead, waiting for its prompt)" if early else ""
            return f"{how}{on} in {short(m.cwd, TOOL_CHARS)}{ahead}", "info"
        case p.AgentPromptGiven(prompt=prompt):
            return f"given its prompt: {short(prompt, TEXT_CHARS)}", "info"
        case p.AgentProcessStarted(pid=pid):
            return f"claude started (pid {pid})", "info"
        case p.AgentSessionStarted(model=model):
            return f"model {model or 'not said'}", "info"
        case p.AgentApiRetry(attempt=attempt, max_retries=most, error_status=code):
            error = str(code) if code is not None else (m.error or "error")
            return f"API {short(error)}, claude retries (attempt {attempt}/{most})", "warn"
        case p.AgentTurnFinished(is_error=True):
            return _turn_failed(m), "bad"
        case p.AgentTurnFinished(num_turns=turns, duration_ms=ms):
            return f"turn done ({turns} turns, {ms / 1000:.1f} s)", "info"
        case p.AgentStreamLine(kind=kind, text=text):
            said = "not JSON" if kind == "not_json" else "an unknown event"
            return f"claude printed {said}: {short(text, TEXT_CHARS)}", "warn"
        case p.PermissionDenied(tool=tool, reason=reason):
            why = f": {short(reason)}" if reason else ""
            return f"was denied {tool or 'a tool'}{why}", "warn"
        case p.SchemaRejected(reason=reason):
            return f"answer rejected by claude against the role's schema: {short(reason)}", "warn"
        case p.AgentProcessExited():
            return _exited(m)
        case p.CostReported(usd=usd, input_tokens=tin, output_tokens=tout):
            cache = m.cache_read_tokens + m.cache_creation_tokens
            return f"cost {money(usd)} ({tin:,} in, {tout:,} out, {cache:,} cache)", "info"
    return None


def _agent(m: p.Message) -> str | None:
    """The agent whose own doing the message is (its words leave it out)."""
    if isinstance(m, p.AnswerRejected):
        return m.agent_id or m.role
    if isinstance(m, p.ReviewVerdict):
        return None  # a task's review: the task is the subject
    agent = getattr(m, "agent_id", None)
    return agent if isinstance(agent, str) and agent else None


def describe(message: p.AnyMessage | p.Message, *, cwd: str = "") -> Said | None:
    """``message`` in words for people; None for a type this version has no words for.

    ``cwd``: the agent's working folder, when the view knows it (its tool paths are shown
    relative to it; paths into any task clone are shortened without it). Pure; never raises
    on a well-formed message.
    """
    said = _words(message, cwd)
    if said is None:
        return None
    text, level = said
    task = getattr(message, "task_id", None)
    return Said(
        # The edge: model text can steer no terminal, and one message is one line.
        text=inert(" ".join(text.splitlines())),
        level=level,
        task_id=task if isinstance(task, str) and task else None,
        agent_id=_agent(message),
    )


def notable(message: p.AnyMessage | p.Message) -> bool:
    """Whether ``message`` is an event of the run for its log (the live log shows these).

    What agents say, what their tools return, costs, the actors' starts and stops, and
    the bookkeeping of a turn are detail: an agent's stream and ``logs`` show them.
    """
    match message:
        case p.AgentStateChanged(state=state):
            return state in ("dead", "waiting")
        case p.AgentTurnFinished(is_error=is_error):
            return is_error
        case p.AgentProcessExited(timed_out=timed_out):
            return timed_out
        case p.AgentSessionStarted(model=model):
            return bool(model)
    return not isinstance(message, _DETAIL)


_DETAIL = (
    p.ActorStarted,
    p.ActorExited,
    p.ActorStopped,
    p.TaskWorkspace,
    p.TaskFeedback,
    p.AgentText,
    p.AgentToolResult,
    p.AgentTurnStarting,
    p.AgentProcessStarted,
    p.AgentPromptGiven,
    p.AgentStreamLine,
    p.CostReported,
)
"""The types that are detail, never an event of the run's log."""


__all__ = [
    "INTERRUPTED",
    "Level",
    "Said",
    "asked_by",
    "budget_text",
    "commands_lines",
    "describe",
    "left_out_text",
    "line",
    "money",
    "notable",
    "origin_text",
    "pause_reason",
    "relative",
    "run_state",
    "setup_result",
    "short",
    "tool_call",
    "who",
]
