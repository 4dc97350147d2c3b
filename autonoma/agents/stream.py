"""Decoding ``claude -p --output-format stream-json --verbose`` output, one line at a time.

`decode_line` turns one line of the CLI's stdout into protocol messages. It never
raises: a line that is not JSON, or JSON of a shape this version does not know, is
kept as an `AgentStreamLine`. The typed structs below name only the fields Autonoma
reads; every other field (the CLI adds some in each release) is ignored.

`StreamDecoder` decodes the lines of one turn in order and remembers what a later line
needs from earlier ones: which tool each call was, and what each failed call returned.
So it also says when claude refused something, with claude's own reason: a permission
denial (`PermissionDenied`, from the result line's ``permission_denials`` and the
refused call's error text) and a structured answer rejected against the role's schema
(`SchemaRejected`, from the error result of a ``StructuredOutput`` call).
"""

from __future__ import annotations

from typing import Any

import msgspec

from autonoma.protocol import (
    AgentApiRetry,
    AgentSessionStarted,
    AgentStreamLine,
    AgentText,
    AgentToolResult,
    AgentToolUse,
    AgentTurnFinished,
    CostReported,
    PermissionDenied,
    SchemaRejected,
)

STRUCTURED_OUTPUT = "StructuredOutput"
"""The tool claude offers for a ``--json-schema`` answer; calling it ends the turn."""

StreamMessage = (
    AgentSessionStarted
    | AgentText
    | AgentToolUse
    | AgentToolResult
    | AgentApiRetry
    | AgentTurnFinished
    | CostReported
    | AgentStreamLine
    | PermissionDenied
    | SchemaRejected
)

# --- the line shapes ----------------------------------------------------------


class _Head(msgspec.Struct):
    """What every line is dispatched on."""

    type: str | None = None
    subtype: str | None = None


class _Init(msgspec.Struct):
    session_id: str = ""
    model: str = ""
    cwd: str = ""
    tools: list[str] = []
    permission_mode: str = msgspec.field(name="permissionMode", default="")
    claude_code_version: str = ""


class _ApiRetry(msgspec.Struct):
    attempt: int = 0
    max_retries: int = 0
    retry_delay_ms: float = 0.0
    error_status: int | None = None
    error: str | None = None


class _Block(msgspec.Struct):
    """A content block of any kind; only the fields of the kinds Autonoma reads."""

    type: str = ""
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None


class _ResultBlock(msgspec.Struct):
    """A block of a user message: a ``tool_result`` (or something else, skipped)."""

    type: str = ""
    tool_use_id: str = ""
    content: str | list[_Block] | None = None
    is_error: bool | None = None


class _AssistantMessage(msgspec.Struct):
    content: list[_Block] = []


class _UserMessage(msgspec.Struct):
    content: str | list[_ResultBlock] = []


class _Assistant(msgspec.Struct):
    message: _AssistantMessage


class _User(msgspec.Struct):
    message: _UserMessage


class _Result(msgspec.Struct):
    subtype: str = ""
    is_error: bool | None = None
    result: str | None = None
    api_error_status: int | None = None
    api_error: str | None = None
    terminal_reason: str | None = None
    errors: list[Any] = []
    num_turns: int = 0
    duration_ms: float = 0.0
    total_cost_usd: float | None = None
    structured_output: Any = None
    permission_denials: list[dict[str, Any]] = []
    usage: dict[str, Any] = {}
    session_id: str = ""


_head = msgspec.json.Decoder(_Head)
_init = msgspec.json.Decoder(_Init)
_retry = msgspec.json.Decoder(_ApiRetry)
_assistant = msgspec.json.Decoder(_Assistant)
_user = msgspec.json.Decoder(_User)
_result = msgspec.json.Decoder(_Result)
_encode = msgspec.json.Encoder()


# --- decoding -------------------------------------------------------------------


def decode_line(
    line: bytes | str, *, agent_id: str, task_id: str | None = None, session_usd: float = 0.0
) -> list[StreamMessage]:
    """The messages one stdout line of ``claude`` stands for; never raises.

    A blank line gives no message. Trailing ``\\r\\n`` (a PTY's line end) is ignored.
    ``session_usd`` is claude's running total of the session before this turn (0 for
    a new session): a ``result`` line's `CostReported.usd` is the change since then.
    """
    raw = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line)
    raw = raw.rstrip(b"\r\n")
    if not raw.strip():
        return []
    try:
        return _decode(raw, agent_id, task_id, session_usd)
    except Exception:  # DecodeError, or RecursionError on absurd nesting: never stop the reader
        kind = "unknown" if _is_json(raw) else "not_json"
        return [_stream_line(raw, kind, agent_id, task_id)]


def _is_json(raw: bytes) -> bool:
    try:
        msgspec.json.decode(raw)
    except Exception:
        return False
    return True


def _stream_line(raw: bytes, kind: str, agent_id: str, task_id: str | None) -> AgentStreamLine:
    text = raw.decode("utf-8", "replace")
    if kind == "not_json":
        return AgentStreamLine(agent_id=agent_id, kind="not_json", text=text, task_id=task_id)
    return AgentStreamLine(agent_id=agent_id, kind="unknown", text=text, task_id=task_id)


def _decode(
    raw: bytes, agent_id: str, task_id: str | None, session_usd: float
) -> list[StreamMessage]:
    head = _head.decode(raw)
    if head.type == "system" and head.subtype == "init":
        return [_session_started(_init.decode(raw), agent_id, task_id)]
    if head.type == "system" and head.subtype == "api_retry":
        return [_api_retry(_retry.decode(raw), agent_id, task_id)]
    if head.type == "assistant":
        return _assistant_blocks(_assistant.decode(raw), agent_id, task_id)
    if head.type == "user":
        return _tool_results(_user.decode(raw), agent_id, task_id)
    if head.type == "result":
        return _finished(_result.decode(raw), agent_id, task_id, session_usd)
    return [_stream_line(raw, "unknown", agent_id, task_id)]


def _session_started(line: _Init, agent_id: str, task_id: str | None) -> AgentSessionStarted:
    return AgentSessionStarted(
        agent_id=agent_id,
        session_id=line.session_id,
        model=line.model,
        cwd=line.cwd,
        tools=list(line.tools),
        permission_mode=line.permission_mode,
        claude_version=line.claude_code_version,
        task_id=task_id,
    )


def _api_retry(line: _ApiRetry, agent_id: str, task_id: str | None) -> AgentApiRetry:
    return AgentApiRetry(
        agent_id=agent_id,
        attempt=line.attempt,
        max_retries=line.max_retries,
        retry_delay_ms=line.retry_delay_ms,
        error_status=line.error_status,
        error=line.error or "",
        task_id=task_id,
    )


def _assistant_blocks(line: _Assistant, agent_id: str, task_id: str | None) -> list[StreamMessage]:
    out: list[StreamMessage] = []
    for block in line.message.content:
        if block.type == "text" and block.text is not None:
            out.append(AgentText(agent_id=agent_id, text=block.text, task_id=task_id))
        elif block.type == "tool_use":
            out.append(
                AgentToolUse(
                    agent_id=agent_id,
                    tool_use_id=block.id or "",
                    tool=block.name or "",
                    input=dict(block.input or {}),
                    task_id=task_id,
                )
            )
        # thinking, redacted_thinking and any other kind: not for the journal
    return out


def _tool_results(line: _User, agent_id: str, task_id: str | None) -> list[StreamMessage]:
    content = line.message.content
    if isinstance(content, str):
        return []  # a plain user prompt echoed back: nothing a tool returned
    out: list[StreamMessage] = []
    for block in content:
        if block.type != "tool_result":
            continue
        out.append(
            AgentToolResult(
                agent_id=agent_id,
                tool_use_id=block.tool_use_id,
                content=_result_text(block.content),
                is_error=bool(block.is_error),
                task_id=task_id,
            )
        )
    return out


def _result_text(content: str | list[_Block] | None) -> str:
    """A tool result's content as text: text blocks joined, other blocks named."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = [
        block.text if block.type == "text" and block.text is not None else f"[{block.type}]"
        for block in content
    ]
    return "\n".join(parts)


def turn_cost(session_usd: float, previous_usd: float) -> float:
    """What one turn cost: the change in the session's running total, never negative.

    claude's ``total_cost_usd`` counts every turn of the session so far (a killed
    turn's answered API calls included), so the change books each call once.
    """
    return max(0.0, session_usd - max(0.0, previous_usd))


def _finished(
    line: _Result, agent_id: str, task_id: str | None, session_usd: float
) -> list[StreamMessage]:
    # An absent is_error is read from the subtype; a present one always wins over it.
    is_error = line.is_error if line.is_error is not None else line.subtype != "success"
    cost = line.total_cost_usd or 0.0
    finished = AgentTurnFinished(
        agent_id=agent_id,
        session_id=line.session_id,
        subtype=line.subtype,
        is_error=is_error,
        result=line.result or "",
        api_error_status=line.api_error_status,
        api_error=line.api_error,
        terminal_reason=line.terminal_reason or "",
        errors=[e if isinstance(e, str) else _encode.encode(e).decode() for e in line.errors],
        num_turns=line.num_turns,
        duration_ms=line.duration_ms,
        total_cost_usd=cost,
        structured_output=line.structured_output,
        permission_denials=list(line.permission_denials),
        usage=dict(line.usage),
        task_id=task_id,
    )
    usage = line.usage
    reported = CostReported(
        agent_id=agent_id,
        usd=turn_cost(cost, session_usd),
        session_usd=cost,
        session_id=line.session_id,
        input_tokens=_tokens(usage, "input_tokens"),
        output_tokens=_tokens(usage, "output_tokens"),
        cache_read_tokens=_tokens(usage, "cache_read_input_tokens"),
        cache_creation_tokens=_tokens(usage, "cache_creation_input_tokens"),
        task_id=task_id,
    )
    return [finished, reported]


def _tokens(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class StreamDecoder:
    """Decodes one turn's stdout lines in order (`decode_line`, plus the refusals)."""

    def __init__(
        self, *, agent_id: str, task_id: str | None = None, session_usd: float = 0.0
    ) -> None:
        """``session_usd``: the session's running total before this turn (see `decode_line`)."""
        self.agent_id = agent_id
        self.task_id = task_id
        self.session_usd = session_usd
        self._tools: dict[str, str] = {}
        self._errors: dict[str, str] = {}

    def decode(self, line: bytes | str) -> list[StreamMessage]:
        """The messages of one line; never raises."""
        out: list[StreamMessage] = []
        for message in decode_line(
            line, agent_id=self.agent_id, task_id=self.task_id, session_usd=self.session_usd
        ):
            if isinstance(message, AgentToolUse):
                self._tools[message.tool_use_id] = message.tool
            elif isinstance(message, AgentToolResult) and message.is_error:
                self._errors[message.tool_use_id] = message.content
                if self._tools.get(message.tool_use_id) == STRUCTURED_OUTPUT:
                    out.append(message)
                    out.append(
                        SchemaRejected(
                            agent_id=self.agent_id,
                            tool_use_id=message.tool_use_id,
                            reason=_reason(message.content),
                            task_id=self.task_id,
                        )
                    )
                    continue
            elif isinstance(message, AgentTurnFinished):
                out.extend(self._denials(message))
            out.append(message)
        return out

    def _denials(self, finished: AgentTurnFinished) -> list[PermissionDenied]:
        denied: list[PermissionDenied] = []
        for item in finished.permission_denials:
            tool_use_id = str(item.get("tool_use_id") or "")
            tool = str(item.get("tool_name") or self._tools.get(tool_use_id) or "")
            tool_input = item.get("tool_input")
            denied.append(
                PermissionDenied(
                    agent_id=self.agent_id,
                    tool=tool,
                    tool_use_id=tool_use_id,
                    input=tool_input if isinstance(tool_input, dict) else {},
                    reason=_reason(self._errors.get(tool_use_id, "")),
                    task_id=self.task_id,
                )
            )
        return denied


def _reason(text: str) -> str:
    """claude's error text for a call, on one line, without its ``Error:`` prefix."""
    text = " ".join(text.split())
    return text.removeprefix("Error: ")


# --- reading a result -----------------------------------------------------------


def turn_failed(finished: AgentTurnFinished) -> bool:
    """Whether a turn failed: ``is_error`` or an API error, never ``subtype`` alone.

    An unreachable API gives ``subtype: success`` with ``is_error: true``.
    """
    return turn_failure(finished) is not None


def turn_failure(finished: AgentTurnFinished) -> str | None:
    """Why a turn failed, in one line; None when it did not fail."""
    api = finished.api_error_status is not None or bool(finished.api_error)
    if not finished.is_error and not api:
        return None
    if finished.api_error_status is not None:
        reason = f"API error {finished.api_error_status}"
    elif finished.api_error:
        reason = f"API error {finished.api_error}"
    elif finished.terminal_reason and finished.terminal_reason != "completed":
        reason = finished.terminal_reason.replace("_", " ")
    else:
        reason = finished.subtype.replace("_", " ") or "error"
    detail = "; ".join(finished.errors) or finished.result
    detail = " ".join(detail.split())
    return f"{reason}: {detail}" if detail else reason
