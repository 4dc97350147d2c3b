"""The live view of a run on a plain terminal: ``autonoma start --no-tui``.

`Progress` turns envelopes into readable lines as they are published. It is a bus
listener, so it runs in the publishing actor's thread: it only formats and writes,
under a lock (lines from several actors never interleave), and it never raises into
the publisher. The words are `autonoma.words`'s; what is shown is what `words.notable`
says is an event of the run (what agents say and what their tools return is left out:
too much to read; what they do, tool calls, is shown in one short line each), and the
framing is this view's: the elapsed time, colours, what this session has cost.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from autonoma import protocol as p
from autonoma import words
from autonoma.hints import command, start_command
from autonoma.protocol import Envelope
from autonoma.words import money

_RESET = "\033[0m"
_STYLES = {
    "dim": "\033[2m",
    "bold": "\033[1m",
    "red": "\033[1;31m",
    "green": "\033[32m",
    "yellow": "\033[33m",
    "cyan": "\033[36m",
}
_LEVEL_STYLES = {"info": "", "good": "green", "warn": "yellow", "bad": "red"}
# The live log's own framing: the run's milestones stand out, what agents do is indented
# and dim, what needs a human is shouted.
_TYPE_STYLES: dict[type[p.Message], str] = {
    p.RunStarted: "bold",
    p.PhaseChanged: "cyan",
    p.PlanWritten: "bold",
    p.ProjectCommands: "bold",
    p.RetryRequested: "bold",
    p.ResolveRequested: "bold",
    p.AgentToolUse: "dim",
    p.AgentSessionStarted: "dim",
}
_INDENTED = (p.AgentToolUse, p.AgentSessionStarted)
_LOUD = (p.Escalation, p.HumanCommandRejected)


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
                self._write(f"{stamp} {self._paint(text, style)}")
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
        """The line for ``message`` and its style; None for what is not shown."""
        self._remember(message)
        if not words.notable(message):
            return None
        if isinstance(message, p.AgentSessionStarted):
            # Once per agent and model: a resumed turn on the same model says nothing.
            if self._model.get(message.agent_id) == message.model:
                return None
            self._model[message.agent_id] = message.model
        cwd = ""
        if isinstance(message, p.AgentToolUse):
            cwd = self._cwd.get(message.agent_id) or self._cwd.get(f"task:{message.task_id}", "")
        said = words.describe(message, cwd=cwd)
        if said is None:
            return None
        text = words.line(said)
        match message:
            case p.TaskMerged():
                text += f" ({money(self._usd)} so far)"
            case p.WorkPaused(reason=reason) if "by itself" not in reason:
                # The root's pause waits for a human.
                text += (
                    f" (new work waits: `{command('resume')}` resumes it, "
                    f"`{command('stop')}` stops the run)"
                )
            case p.StopRequested():
                text += f"; `{self._resume}` resumes it"
            case p.AgentTurnFinished(agent_id=agent) if agent in self._rejected:
                # The turn failed for the answer claude refused, whatever error ended it.
                reason = words.short(
                    "claude rejected its answer against the role's schema: "
                    + self._rejected.pop(agent)
                )
                text = f"{words.who(agent, message.task_id)} turn failed: {reason}"
            case p.RunFinished():
                # The summary (the whole run's figures) is printed by the caller.
                text += f" (this session: {money(self._usd)}, {self._tokens:,} tokens)"
        if isinstance(message, _LOUD):
            text = f"!!! {text}"
        if isinstance(message, _INDENTED):
            text = f"  {text}"
        style = _TYPE_STYLES.get(type(message)) or _LEVEL_STYLES[said.level]
        return text, style

    def _remember(self, message: p.Message) -> None:
        """What this view keeps from the messages it is fed (shown or not)."""
        match message:
            case p.RunStarted(requirements=req, endpoint=endpoint):
                self._resume = start_command(req, endpoint)
            case p.TaskWorkspace(task_id=task, worktree=worktree):
                # The developer's tool paths are made relative to it.
                self._cwd[f"task:{task}"] = worktree
            case p.AgentTurnStarting(agent_id=agent, cwd=cwd):
                self._cwd[agent] = cwd
                self._rejected.pop(agent, None)
            case p.SchemaRejected(agent_id=agent, reason=reason):
                self._rejected[agent] = reason
            case p.CostReported(usd=usd):
                self._usd += usd
                self._tokens += (
                    message.input_tokens
                    + message.output_tokens
                    + message.cache_read_tokens
                    + message.cache_creation_tokens
                )
