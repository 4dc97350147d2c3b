"""The live view of a run on a plain terminal: ``autonoma start --no-tui``.

`Progress` turns envelopes into readable lines as they are published. It is a bus
listener, so it runs in the publishing actor's thread: it only formats and writes,
under a lock (lines from several actors never interleave), and it never raises into
the publisher. What agents say and what their tools return is left out (too much to
read); what they do (tool calls) is shown in one short line each.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable

from autonoma import protocol as p
from autonoma.hints import command, start_command
from autonoma.protocol import Envelope
from autonoma.report import commands_lines, origin_text, setup_result
from autonoma.report import left_out_text as _left_out
from autonoma.text import inert

REASON_CHARS = 160
"""How much of a reason (a verdict, a failure, a detail) one line keeps."""

TOOL_CHARS = 120
"""How much of a tool call's argument one line keeps."""

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

_RESET = "\033[0m"
_STYLES = {
    "dim": "\033[2m",
    "bold": "\033[1m",
    "red": "\033[1;31m",
    "green": "\033[32m",
    "yellow": "\033[33m",
    "cyan": "\033[36m",
}

# A tool call's main argument, in the order it is looked for.
_PATH_KEYS = ("file_path", "path", "notebook_path")
_OTHER_KEYS = ("pattern", "url", "query", "description", "prompt")


def _who_asked(origin: str) -> str:
    """Who gave a pause, resume or stop, shortly ("a human" when not recorded)."""
    return _short(origin, REASON_CHARS) if origin.strip() else "a human"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_line(text: str, limit: int) -> str:
    return _short(text.strip().split("\n", 1)[0], limit)


def _money(usd: float) -> str:
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def elapsed(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """Prints a readable line for each envelope that matters to someone watching a run."""

    def __init__(
        self, write: Callable[[str], None], *, color: bool = False, started: float | None = None
    ) -> None:
        self._write = write
        self._color = color
        self._started = started
        """Epoch seconds that elapsed times count from (None: the first envelope's)."""
        self._lock = threading.Lock()
        self._usd = 0.0
        self._tokens = 0
        # Each agent's working folder, from its turns: tool paths are shown relative to it.
        self._cwd: dict[str, str] = {}
        self._model: dict[str, str] = {}
        # claude's reason for the structured answer it refused in each agent's turn: a
        # turn that fails after that failed for it, whatever error ended it.
        self._rejected: dict[str, str] = {}
        self._resume = start_command("requirements.md")
        """The command that resumes the run (known from its `RunStarted`)."""

    @property
    def total_usd(self) -> float:
        """The cost reported so far."""
        return self._usd

    def feed(self, envelope: Envelope) -> None:
        """Print what ``envelope`` means, if anything; never raises."""
        with self._lock:
            try:
                if self._started is None:
                    self._started = envelope.ts
                line = self._line(envelope.message)
                if line is None:
                    return
                text, style = line
                stamp = f"[{elapsed(envelope.ts - self._started)}]"
                for part in text.split("\n"):
                    # The edge: model text in the line can steer no terminal.
                    self._write(f"{stamp} {self._paint(inert(part), style)}")
            except Exception as exc:
                # A listener that raises would fail the actor that published: report it here.
                kind = type(envelope.message).__name__
                with contextlib.suppress(Exception):
                    self._write(f"progress: cannot show a {kind}: {type(exc).__name__}: {exc}")

    def _paint(self, text: str, style: str) -> str:
        if not self._color or not style:
            return text
        return f"{_STYLES[style]}{text}{_RESET}"

    def _line(self, message: p.Message) -> tuple[str, str] | None:
        """The text for ``message`` and its style; None for what is not shown."""
        match message:
            case p.RunStarted(requirements=req, max_workers=workers, resumed=resumed):
                how = "resumed" if resumed else "started"
                self._resume = start_command(req, message.endpoint)
                return f"run {how}: {req} (up to {workers} developers at once)", "bold"
            case p.PhaseChanged(phase=phase):
                return f"phase: {phase}", "cyan"
            case p.PlanWritten(plan=plan):
                milestones = plan.get("milestones")
                count = len(milestones) if isinstance(milestones, list) else 0
                noun = f"{count} milestone{'' if count == 1 else 's'}"
                summary = _short(str(plan.get("summary") or ""), REASON_CHARS)
                return (f"plan: {summary} ({noun})" if summary else f"plan: {noun}"), "bold"
            case p.TaskDefined(task_id=task, title=title, deps=deps):
                after = f" (after {', '.join(deps)})" if deps else ""
                return f"task {task}: {title}{after}", ""
            case p.TaskWorkspace(task_id=task, worktree=worktree):
                # Remembered, not shown: the developer's tool paths are made relative to it.
                self._cwd[f"task:{task}"] = worktree
                return None
            case p.TaskStateChanged(task_id=task, state=state, reason=reason, attempt=attempt):
                tried = f" (attempt {attempt})" if attempt else ""
                why = f": {_short(reason, REASON_CHARS)}" if reason else ""
                style = {"escalated": "red", "failed": "yellow", "merged": "green"}.get(state, "")
                return f"{task} → {state}{tried}{why}", style
            case p.ReviewVerdict(task_id=task, verdict=verdict, reasons=reasons, attempt=attempt):
                tried = f" (attempt {attempt})" if attempt else ""
                if verdict == "approve":
                    return f"{task} review: approved{tried}", "green"
                first = f": {_short(reasons[0], REASON_CHARS)}" if reasons else ""
                more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
                return f"{task} review: changes requested{tried}{first}{more}", "yellow"
            case p.MergeFailed(task_id=task, kind="no_test_command"):
                return f"{task} not merged: no test command (set test_command)", "red"
            case p.MergeFailed(task_id=task, kind="setup_failed", output=output):
                lines = [line for line in output.splitlines() if line.strip()]
                last = f": {_short(lines[-1], REASON_CHARS)}" if lines else ""
                return f"{task} merge failed: the set-up failed on the merged result{last}", (
                    "yellow"
                )
            case p.MergeFailed(task_id=task, kind=kind, files=files, output=output):
                if kind == "conflict":
                    shown = ", ".join(files[:5]) + (
                        f" (+{len(files) - 5} more)" if len(files) > 5 else ""
                    )
                    on = f" on {shown}" if files else ""
                    return f"{task} merge failed: conflict{on}", "yellow"
                # The output starts with "$ <command>", then how it ended (the merge queue's).
                said = [line.strip() for line in output.splitlines() if line.strip()][:2]
                if said and not said[0].startswith("$ "):
                    said = said[:1]
                detail = f": {_short(' → '.join(said), REASON_CHARS)}" if said else ""
                return f"{task} merge failed: tests failed on the merged result{detail}", "yellow"
            case p.TaskMerged(task_id=task, commit=commit, main_moved=moved, detail=detail):
                where = "main moved" if moved else f"main not moved: {_short(detail, REASON_CHARS)}"
                tests = {
                    "no_tests": ", no tests collected yet",
                    "opted_out": ", tests not run (opted out)",
                }.get(message.tests, "")
                return (
                    f"{task} merged as {commit[:8]}{tests}, {where} ({_money(self._usd)} so far)",
                    "green" if moved else "yellow",
                )
            case p.ProjectCommands():
                return "project " + "; ".join(commands_lines(message)), "bold"
            case p.SetupRan(task_id=task, place=place):
                where = {"merge_gate": " (merge gate)", "review": " (QA's checkout)"}.get(place, "")
                style = "" if message.ok else "yellow"
                return f"{task or '-'} set-up{where}: {setup_result(message)}", style
            case p.WorkCommittedForAgent(task_id=task, agent_id=agent, commit=commit, files=files):
                many = f" ({len(files)} file{'' if len(files) == 1 else 's'})" if files else ""
                left = (
                    _left_out(message.left_out, message.left_out_more) if message.left_out else ""
                )
                return (
                    f"{agent} [{task}] left changes uncommitted: committed as {commit[:8]}{many}"
                    + (f"; {left}" if left else ""),
                    "",
                )
            case p.WorkLeftOut(task_id=task, agent_id=agent, left_out=left_out, left_out_more=more):
                return f"{agent} [{task}] nothing committed for it; {_left_out(left_out, more)}", ""
            case p.Escalation(source=source, reason=reason, task_id=task):
                on = f" [{task}]" if task else ""
                return (
                    f"!!! ESCALATION{on} from {source}: {_short(reason, 2 * REASON_CHARS)}",
                    "red",
                )
            case p.WorkPaused(reason=reason):
                text = f"PAUSED: {_short(reason, REASON_CHARS)}"
                if "by itself" not in reason:  # the root's pause waits for a human
                    text += (
                        f" (new work waits: `{command('resume')}` resumes it, "
                        f"`{command('stop')}` stops the run)"
                    )
                return text, "red"
            case p.WorkResumed(reason=reason):
                return f"resumed: {_short(reason, REASON_CHARS)}", "green"
            case p.PauseRequested(origin=origin):
                return (
                    f"PAUSED by {_who_asked(origin)}: no new turn starts, turns under way "
                    f"finish (`{command('resume')}` resumes)",
                    "red",
                )
            case p.ResumeRequested(origin=origin):
                return f"resumed by {_who_asked(origin)}", "green"
            case p.StopRequested(origin=origin):
                return (
                    f"STOPPING (asked by {_who_asked(origin)}): nothing new starts, the merge "
                    f"under way finishes, then the run ends; `{self._resume}` resumes it",
                    "red",
                )
            case p.SpawnsHeld(delay=delay, reason=reason):
                why = f" ({_short(reason, REASON_CHARS)})" if reason else ""
                return f"rate limited: new agents held for {delay:.1f} s{why}", "yellow"
            case p.BudgetReached(scope=scope, limit_usd=limit, spent_usd=spent, task_id=task):
                if scope == "task":
                    return (
                        f"{task} budget {_money(limit)} reached ({_money(spent)} spent)",
                        "yellow",
                    )
                return (
                    f"BUDGET: run budget {_money(limit)} reached ({_money(spent)} spent): "
                    "no new work starts",
                    "red",
                )
            case p.DeveloperReport(
                agent_id=agent, task_id=task, summary=said, structured=structured
            ):
                how = "reports" if structured else "says (no structured report)"
                left = f" ({len(message.left)} left to do)" if message.left else ""
                return f"{agent} [{task}] {how}: {_short(said, REASON_CHARS)}{left}", ""
            case p.PermissionDenied(agent_id=agent, task_id=task, tool=tool, reason=reason):
                why = f": {_short(reason, REASON_CHARS)}" if reason else ""
                return f"{self._who(agent, task)} was denied {tool or 'a tool'}{why}", "yellow"
            case p.SchemaRejected(agent_id=agent, task_id=task, reason=reason):
                self._rejected[agent] = reason
                return (
                    f"{self._who(agent, task)} answer rejected by claude against the role's "
                    f"schema: {_short(reason, REASON_CHARS)}",
                    "yellow",
                )
            case p.AnswerRejected(role=role, what=what, errors=errors, attempt=attempt):
                who = self._who(message.agent_id or role, message.task_id)
                lines = [f"{who}: the {what} was rejected (attempt {attempt}):"]
                lines += [f"  - {_short(e, REASON_CHARS)}" for e in errors[:10]]
                if len(errors) > 10:
                    lines.append(f"  … {len(errors) - 10} more")
                return "\n".join(lines), "yellow"
            case p.RetryRequested(task_id=task, note=note, origin=origin):
                noted = f": {note}" if note else ""
                return f"{task}: a human asked for a retry{noted}{origin_text(origin)}", "bold"
            case p.ResolveRequested(task_id=task, note=note, origin=origin):
                noted = f": {note}" if note else ""
                return f"{task}: a human resolved it by hand{noted}{origin_text(origin)}", "bold"
            case p.HumanCommandRejected(path=path, reason=reason):
                return (
                    f"!!! REJECTED a command in the inbox, not acted on: {_short(path, TOOL_CHARS)}"
                    f": {_short(reason, REASON_CHARS)}",
                    "red",
                )
            case p.AgentStateChanged(agent_id=agent, state=state, task_id=task, detail=detail):
                if state not in ("dead", "waiting"):
                    return None
                why = f": {_short(detail, REASON_CHARS)}" if detail else ""
                return f"{self._who(agent, task)} {state}{why}", "red" if state == "dead" else ""
            case p.AgentTurnStarting(agent_id=agent, cwd=cwd):
                self._cwd[agent] = cwd
                self._rejected.pop(agent, None)
                return None
            case p.AgentSessionStarted(agent_id=agent, task_id=task, model=model):
                # Once per agent and model: a resumed turn on the same model says nothing.
                if not model or self._model.get(agent) == model:
                    return None
                self._model[agent] = model
                return f"  {self._who(agent, task)} model {model}", "dim"
            case p.AgentToolUse(agent_id=agent, task_id=task):
                return f"  {self._who(agent, task)} {self._tool(message)}", "dim"
            case p.AgentApiRetry(
                agent_id=agent, task_id=task, attempt=attempt, max_retries=most, error_status=code
            ):
                error = str(code) if code is not None else (message.error or "error")
                return (
                    f"{self._who(agent, task)} API {error}, claude retries "
                    f"(attempt {attempt}/{most})",
                    "yellow",
                )
            case p.AgentTurnFinished(agent_id=agent, task_id=task, is_error=True):
                why = (
                    message.result
                    or message.api_error
                    or message.terminal_reason
                    or message.subtype
                )
                rejected = self._rejected.pop(agent, "")
                if rejected:
                    why = f"claude rejected its answer against the role's schema: {rejected}"
                return f"{self._who(agent, task)} turn failed: {_short(why, REASON_CHARS)}", "red"
            case p.AgentProcessExited(agent_id=agent, task_id=task, timed_out=True):
                if message.timeout == "idle":
                    stop = f"no output for {message.timeout_s:g} s (idle timeout)"
                elif message.timeout_s:
                    stop = f"ran {message.timeout_s:g} s (wall-clock timeout)"
                else:
                    stop = "timed out"
                return f"{self._who(agent, task)} stopped: {stop}", "yellow"
            case p.ActorCrashed(name=name, error_type=kind, error_text=text):
                return f"{name} crashed: {_short(f'{kind}: {text}', REASON_CHARS)}", "red"
            case p.SupervisorGaveUp(name=name, restarts=n, period=period, child=child):
                return f"{name} gave up after {n} restarts in {period:g} s (last: {child})", "red"
            case p.CostReported(usd=usd):
                self._usd += usd
                self._tokens += (
                    message.input_tokens
                    + message.output_tokens
                    + message.cache_read_tokens
                    + message.cache_creation_tokens
                )
                return None
            case p.RunFinished(outcome=outcome):
                # The summary (the whole run's figures) is printed by the caller.
                text = f"run {outcome} (this session: {_money(self._usd)}, {self._tokens:,} tokens)"
                return text, "green" if outcome == "done" else "red"
        return None

    def _who(self, agent: str, task: str | None) -> str:
        return f"{agent} [{task}]" if task else agent

    def _tool(self, message: p.AgentToolUse) -> str:
        """``Write todo/store.py``, ``Bash: python3 -m unittest``: the call in a few words."""
        tool_input = message.input
        command = tool_input.get("command")
        if isinstance(command, str) and command.strip():
            return f"{message.tool}: {_first_line(self._relative(message, command), TOOL_CHARS)}"
        for key in _PATH_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                return f"{message.tool} {_short(self._relative(message, value), TOOL_CHARS)}"
        for key in _OTHER_KEYS:
            value = tool_input.get(key)
            if isinstance(value, str) and value:
                return f"{message.tool} {_first_line(value, TOOL_CHARS)}"
        return message.tool

    def _relative(self, message: p.AgentToolUse, text: str) -> str:
        """``text`` with the agent's working folder (a task worktree) left out of its paths."""
        for cwd in (self._cwd.get(message.agent_id), self._cwd.get(f"task:{message.task_id}")):
            cwd = (cwd or "").rstrip("/")
            if cwd:
                text = text.replace(cwd + "/", "")
                text = re.sub(re.escape(cwd) + _END, ".", text)
        return _WORKTREE_END.sub(".", _WORKTREE_SLASH.sub("", text))
