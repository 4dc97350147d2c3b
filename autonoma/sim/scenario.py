"""Scenario files for the simulated Messages API: loading, checking and matching.

A scenario is a TOML file. The format is described in ``autonoma/sim/README.md``.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autonoma import inputfile

STRUCTURED_OUTPUT_NUDGE = "[structured-output-enforce]"
"""How claude's synthetic prompt starts when a ``--json-schema`` turn ended without the
StructuredOutput call (it sends it once, then ends the turn without a structured answer)."""

FAULT_KINDS = ("429", "529", "500", "drop", "hang", "stall", "bad_json")
_ROLE_RE = re.compile(r"ROLE:\s*(\S+)")
_TASK_RE = re.compile(r"TASK:\s*(\S+)")
_CWD_RE = re.compile(r"Primary working directory:\s*(.+)")


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: int = 1
    times: int | None = None  # None: every time


@dataclass(frozen=True)
class Step:
    text: str | None = None
    tools: tuple[ToolCall, ...] = ()
    usage: dict[str, int] = field(default_factory=dict)
    latency: float = 0.0
    fault: Fault | None = None
    stop_reason: str | None = None

    def resolved_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if self.tools else "end_turn"


@dataclass(frozen=True)
class Rule:
    name: str
    steps: tuple[Step, ...]
    role: str | None = None
    task: str | None = None
    turn: int | None = None
    prompt_contains: str | None = None
    system_contains: str | None = None

    def matches(self, info: RequestInfo) -> bool:
        return (
            (self.role is None or self.role == info.role)
            and (self.task is None or self.task == info.task)
            and (self.turn is None or self.turn == info.turn)
            and (self.prompt_contains is None or self.prompt_contains in info.prompt)
            and (self.system_contains is None or self.system_contains in info.system)
        )


@dataclass(frozen=True)
class Window:
    """A fault applied to every matching request between ``start`` and ``end`` seconds
    (since the server started, or since the first request of role ``since``)."""

    start: float
    end: float
    fault: Fault
    role: str | None = None
    task: str | None = None
    latency: float = 0.0
    since: str | None = None
    """A role: the window's clock starts at that role's first request (None: the server's
    start). Until that request, the window is closed."""

    def applies(self, elapsed: float | None, info: RequestInfo) -> bool:
        """Whether the window faults this request, ``elapsed`` seconds on its clock (None:
        its clock has not started)."""
        return (
            elapsed is not None
            and self.start <= elapsed < self.end
            and (self.role is None or self.role == info.role)
            and (self.task is None or self.task == info.task)
        )


@dataclass(frozen=True)
class Scenario:
    rules: tuple[Rule, ...] = ()
    windows: tuple[Window, ...] = ()
    usage: dict[str, int] = field(default_factory=dict)
    source: str = "<scenario>"

    def find(self, info: RequestInfo) -> tuple[int, Rule] | None:
        """The first rule matching the request, with its index; None if none does.

        claude's structured-output nudge only matches a rule that asks for it by
        ``prompt_contains``: a rule for a role or a task would otherwise replay its
        first step (its tool calls) as the answer to the nudge.
        """
        nudge = is_nudge(info)
        for index, rule in enumerate(self.rules):
            if nudge and rule.prompt_contains is None:
                continue
            if rule.matches(info):
                return index, rule
        return None


@dataclass(frozen=True)
class RequestInfo:
    """What a Messages API request tells about who is asking."""

    role: str | None
    task: str | None
    turn: int
    step: int
    prompt: str
    system: str
    system_tail: str
    session_id: str | None
    cwd: str | None
    model: str
    stream: bool


def is_nudge(info: RequestInfo) -> bool:
    """Whether the request is claude's structured-output nudge (see `STRUCTURED_OUTPUT_NUDGE`)."""
    return info.prompt.lstrip().startswith(STRUCTURED_OUTPUT_NUDGE)


# --- reading a request -----------------------------------------------------------------


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return []


def _prompt_of(message: dict[str, Any]) -> str | None:
    """The prompt a user message carries: its last text that is not a system reminder.

    None for a message of tool results only. After ``--resume`` of a session whose last
    turn ended on a tool result (StructuredOutput), claude puts the new prompt in the
    same user message as that result.
    """
    content = message.get("content")
    if isinstance(content, str):
        return content
    said = [t for t in _texts(content) if not t.lstrip().startswith("<system-reminder>")]
    return said[-1] if said else None


def describe_request(body: dict[str, Any]) -> RequestInfo:
    """Role, task, turn, step, prompt, session and cwd of a request body."""
    system_blocks = _texts(body.get("system"))
    system = "\n".join(system_blocks)
    main = (
        system_blocks[2] if len(system_blocks) > 2 else (system_blocks[-1] if system_blocks else "")
    )
    tail = main.rsplit("\n\n", 1)[-1] if "\n\n" in main else ""
    role_m, task_m = _ROLE_RE.search(tail), _TASK_RE.search(tail)
    messages = body.get("messages") or []
    assistants = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    # The step and the prompt restart at each user message that is a prompt (not a tool
    # result): after --resume the request holds every earlier turn, and the prompt that
    # matters is the newest one.
    step = 0
    prompt = ""
    for message in messages:
        if not isinstance(message, dict):
            continue
        if message.get("role") == "assistant":
            step += 1
        elif message.get("role") == "user":
            said = _prompt_of(message)
            if said is not None:
                step, prompt = 0, said
    session_id = None
    user_id = (body.get("metadata") or {}).get("user_id")
    if isinstance(user_id, str):
        try:
            session_id = json.loads(user_id).get("session_id")
        except (ValueError, AttributeError):
            session_id = None
    cwd = None
    for text in [*system_blocks, *(t for m in messages[:3] for t in _texts(m.get("content")))]:
        found = _CWD_RE.search(text)
        if found:
            cwd = found.group(1).strip()
            break
    return RequestInfo(
        role=role_m.group(1) if role_m else None,
        task=task_m.group(1) if task_m else None,
        turn=len(assistants) + 1,
        step=step,
        prompt=prompt,
        system=system,
        system_tail=tail,
        session_id=session_id,
        cwd=cwd,
        model=str(body.get("model") or "claude-sim"),
        stream=bool(body.get("stream", False)),
    )


def fill(value: Any, info: RequestInfo) -> Any:
    """Replace ``{cwd}``, ``{session_id}``, ``{role}`` and ``{task}`` in every string."""
    if isinstance(value, str):
        for name in ("cwd", "session_id", "role", "task"):
            value = value.replace("{" + name + "}", str(getattr(info, name) or ""))
        return value
    if isinstance(value, list):
        return [fill(v, info) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, info) for k, v in value.items()}
    return value


# --- loading a scenario ----------------------------------------------------------------


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {where}: {problem}")

    def table(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(where, "expected a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.error(where, f"unknown key {unknown[0]!r}")
        return value

    def opt(self, data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.error(where, f"{key} must be {names}")
        return value

    def usage(self, value: Any, where: str) -> dict[str, int]:
        keys = {
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        }
        data = self.table(value, where + ".usage", keys)
        for key, number in data.items():
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise self.error(where + ".usage", f"{key} must be a whole number >= 0")
        return dict(data)

    def fault(self, data: dict[str, Any], where: str) -> Fault | None:
        kind = data.get("fault")
        if kind is None:
            return None
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise self.error(where, f"fault must be one of {', '.join(FAULT_KINDS)}, not {kind!r}")
        retry_after = self.opt(data, "retry_after", int, where)
        times = self.opt(data, "times", int, where)
        return Fault(kind, 1 if retry_after is None else retry_after, times)

    def step(self, value: Any, where: str) -> Step:
        data = self.table(
            value,
            where,
            {"text", "tool", "usage", "latency", "fault", "retry_after", "times", "stop_reason"},
        )
        tools = []
        raw_tools = data.get("tool", [])
        if not isinstance(raw_tools, list):
            raise self.error(where, "tool must be an array of tables ([[rule.step.tool]])")
        for i, raw in enumerate(raw_tools):
            tw = f"{where}.tool[{i}]"
            tool = self.table(raw, tw, {"name", "input"})
            name = tool.get("name")
            if not isinstance(name, str) or not name:
                raise self.error(tw, "name is required")
            tool_input = tool.get("input", {})
            if not isinstance(tool_input, dict):
                raise self.error(tw, "input must be a table")
            tools.append(ToolCall(name, tool_input))
        text = self.opt(data, "text", str, where)
        fault = self.fault(data, where)
        if text is None and not tools and fault is None:
            raise self.error(where, "a step needs text, a tool or a fault")
        latency = self.opt(data, "latency", (int, float), where)
        return Step(
            text=text,
            tools=tuple(tools),
            usage=self.usage(data["usage"], where) if "usage" in data else {},
            latency=float(latency or 0.0),
            fault=fault,
            stop_reason=self.opt(data, "stop_reason", str, where),
        )

    def rule(self, value: Any, index: int) -> Rule:
        where = f"rule[{index}]"
        data = self.table(
            value,
            where,
            {"name", "role", "task", "turn", "prompt_contains", "system_contains", "step"},
        )
        steps = data.get("step")
        if not isinstance(steps, list) or not steps:
            raise self.error(where, "needs at least one [[rule.step]]")
        return Rule(
            name=self.opt(data, "name", str, where) or where,
            steps=tuple(self.step(s, f"{where}.step[{i}]") for i, s in enumerate(steps)),
            role=self.opt(data, "role", str, where),
            task=self.opt(data, "task", str, where),
            turn=self.opt(data, "turn", int, where),
            prompt_contains=self.opt(data, "prompt_contains", str, where),
            system_contains=self.opt(data, "system_contains", str, where),
        )

    def window(self, value: Any, index: int) -> Window:
        where = f"window[{index}]"
        data = self.table(
            value,
            where,
            {"start", "end", "fault", "retry_after", "times", "role", "task", "latency", "since"},
        )
        fault = self.fault(data, where)
        if fault is None:
            raise self.error(where, "fault is required")
        start = self.opt(data, "start", (int, float), where) or 0.0
        end = self.opt(data, "end", (int, float), where)
        return Window(
            start=float(start),
            end=float("inf") if end is None else float(end),
            fault=fault,
            role=self.opt(data, "role", str, where),
            task=self.opt(data, "task", str, where),
            latency=float(self.opt(data, "latency", (int, float), where) or 0.0),
            since=self.opt(data, "since", str, where),
        )


def toml_value(value: Any) -> str:
    """``value`` as a TOML value, for code that writes scenarios (the benches): strings as
    JSON strings (valid TOML basic strings), numbers, booleans, lists, inline tables.
    Raises TypeError for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Check a scenario already read as a dict (the TOML layout) and build it."""
    check = _Checker(source)
    top = check.table(data, "top level", {"usage", "rule", "window"})
    rules = top.get("rule", [])
    windows = top.get("window", [])
    if not isinstance(rules, list) or not isinstance(windows, list):
        raise check.error("top level", "rule and window must be arrays of tables")
    return Scenario(
        rules=tuple(check.rule(r, i) for i, r in enumerate(rules)),
        windows=tuple(check.window(w, i) for i, w in enumerate(windows)),
        usage=check.usage(top["usage"], "top level") if "usage" in top else {},
        source=source,
    )


def loads_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse a scenario from TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{source}: not valid TOML: {err}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: not valid TOML: nested too deep") from None
    return parse_scenario(data, source)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; raises ScenarioError with a one-line message."""
    path = Path(path)
    try:
        text = inputfile.read_text(path, "scenario")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: cannot read: no such file") from None
    except inputfile.InputFileError as err:
        raise ScenarioError(str(err)) from None
    return loads_scenario(text, str(path))
