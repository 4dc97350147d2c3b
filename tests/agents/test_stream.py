"""Decoding claude's stream-json lines: every recorded transcript, field by field, and junk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autonoma.agents.stream import StreamDecoder, decode_line, turn_cost, turn_failed, turn_failure
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

# Copies of ../shared/claude-stream and claude-requests: the ground truth, kept with the tests.
SHARED = Path(__file__).resolve().parents[1] / "fixtures"
STREAM = SHARED / "claude-stream"
REQUESTS = SHARED / "claude-requests"
A = "dev-1"
T = "t1"


def decode_file(path: Path, crlf: bool = False) -> list[object]:
    out: list[object] = []
    for line in path.read_bytes().splitlines(keepends=True):
        if crlf:
            line = line.rstrip(b"\n") + b"\r\n"
        out.extend(decode_line(line, agent_id=A, task_id=T))
    return out


def usage(inp: int, out: int, extra: dict[str, object] | None = None) -> dict[str, object]:
    base: dict[str, object] = {
        "input_tokens": inp,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": out,
        "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
        "service_tier": "standard",
        "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
        "inference_geo": "",
        "iterations": [],
        "speed": "standard",
    }
    base.update(extra or {})
    return base


NEW_USAGE: dict[str, object] = {
    "output_tokens_details": {"thinking_tokens": 0},
    "fallback_credit": None,
}


def init(session: str, tools: list[str], mode: str, version: str = "2.1.197") -> object:
    model = "claude-opus-4-8[1m]" if version == "2.1.197" else "claude-opus-5-5"
    return AgentSessionStarted(
        agent_id=A,
        session_id=session,
        model=model,
        cwd="/home/user/project",
        tools=tools,
        permission_mode=mode,
        claude_version=version,
        task_id=T,
    )


FULL_TOOLS = [
    "Task", "Bash", "CronCreate", "CronDelete", "CronList", "Edit", "EnterWorktree",
    "ExitWorktree", "NotebookEdit", "Read", "ReportFindings", "ScheduleWakeup", "SendMessage",
    "Skill", "TaskCreate", "TaskGet", "TaskList", "TaskOutput", "TaskStop", "TaskUpdate",
    "WebFetch", "WebSearch", "Workflow", "Write",
]  # fmt: skip
HELLO = {"file_path": "/home/user/project/hello.txt", "content": "hello from fake model\n"}
CREATED = (
    "File created successfully at: /home/user/project/hello.txt "
    "(file state is current in your context — no need to Read it back)"
)


def test_success_tool_use() -> None:
    s = "36c8cb5c-f520-486c-b119-01173b7cd848"
    assert decode_file(STREAM / "success_tool_use.jsonl") == [
        init(s, FULL_TOOLS, "acceptEdits"),
        AgentToolUse(agent_id=A, tool_use_id="toolu_01", tool="Write", input=HELLO, task_id=T),
        AgentToolResult(
            agent_id=A,
            tool_use_id="toolu_01",
            content="<tool_use_error>File has not been read yet. "
            "Read it first before writing to it.</tool_use_error>",
            is_error=True,
            task_id=T,
        ),
        AgentText(agent_id=A, text="Done. I wrote hello.txt.", task_id=T),
        AgentTurnFinished(
            agent_id=A,
            session_id=s,
            subtype="success",
            is_error=False,
            result="Done. I wrote hello.txt.",
            terminal_reason="completed",
            num_turns=2,
            duration_ms=118,
            total_cost_usd=0.0011200000000000001,
            usage=usage(24, 40),
            task_id=T,
        ),
        CostReported(
            agent_id=A,
            usd=0.0011200000000000001,
            input_tokens=24,
            output_tokens=40,
            task_id=T,
            session_usd=0.0011200000000000001,
            session_id=s,
        ),
    ]


def test_permission_denied() -> None:
    s = "1b44e513-1db9-4fcf-827b-a734480b4695"
    msgs = decode_file(STREAM / "permission_denied.jsonl")
    assert msgs[0] == init(s, FULL_TOOLS, "default")
    assert msgs[1] == AgentToolUse(
        agent_id=A, tool_use_id="toolu_01", tool="Write", input=HELLO, task_id=T
    )
    assert msgs[2] == AgentToolResult(
        agent_id=A,
        tool_use_id="toolu_01",
        content="Claude requested permissions to write to /home/user/project/hello.txt, "
        "but you haven't granted it yet.",
        is_error=True,
        task_id=T,
    )
    assert msgs[3] == AgentText(agent_id=A, text="Done. I wrote hello.txt.", task_id=T)
    finished = msgs[4]
    assert finished == AgentTurnFinished(
        agent_id=A,
        session_id=s,
        subtype="success",
        is_error=False,
        result="Done. I wrote hello.txt.",
        terminal_reason="completed",
        num_turns=2,
        duration_ms=111,
        total_cost_usd=0.0011200000000000001,
        permission_denials=[{"tool_name": "Write", "tool_use_id": "toolu_01", "tool_input": HELLO}],
        usage=usage(24, 40),
        task_id=T,
    )
    assert isinstance(finished, AgentTurnFinished) and not turn_failed(finished)
    assert msgs[5:] == [
        CostReported(
            agent_id=A,
            usd=0.0011200000000000001,
            input_tokens=24,
            output_tokens=40,
            task_id=T,
            session_usd=0.0011200000000000001,
            session_id=s,
        )
    ]


def test_structured_output() -> None:
    s = "33a89899-4da4-4c07-82c3-a15a3359c21f"
    msgs = decode_file(STREAM / "structured_output.jsonl")
    assert msgs[0] == init(s, ["Bash", "Edit", "Read", "StructuredOutput"], "default")
    assert msgs[1:] == [
        AgentToolUse(
            agent_id=A,
            tool_use_id="toolu_02",
            tool="StructuredOutput",
            input={"name": "plan-x"},
            task_id=T,
        ),
        AgentToolResult(
            agent_id=A,
            tool_use_id="toolu_02",
            content="Structured output provided successfully",
            task_id=T,
        ),
        AgentTurnFinished(
            agent_id=A,
            session_id=s,
            subtype="success",
            is_error=False,
            result='{"name":"plan-x"}',
            terminal_reason="completed",
            num_turns=2,
            duration_ms=72,
            total_cost_usd=0.0005600000000000001,
            structured_output={"name": "plan-x"},
            usage=usage(12, 20),
            task_id=T,
        ),
        CostReported(
            agent_id=A,
            usd=0.0005600000000000001,
            input_tokens=12,
            output_tokens=20,
            task_id=T,
            session_usd=0.0005600000000000001,
            session_id=s,
        ),
    ]


def test_max_turns() -> None:
    s = "d36220c7-a091-4f84-8a42-98247aa248f0"
    msgs = decode_file(STREAM / "max_turns.jsonl")
    assert msgs[0] == init(s, FULL_TOOLS, "acceptEdits")
    assert msgs[1] == AgentToolUse(
        agent_id=A, tool_use_id="toolu_01", tool="Write", input=HELLO, task_id=T
    )
    assert msgs[2] == AgentToolResult(
        agent_id=A, tool_use_id="toolu_01", content=CREATED, is_error=False, task_id=T
    )
    finished = msgs[3]
    assert finished == AgentTurnFinished(
        agent_id=A,
        session_id=s,
        subtype="error_max_turns",
        is_error=True,
        terminal_reason="max_turns",
        errors=["Reached maximum number of turns (1)"],
        num_turns=2,
        duration_ms=125,
        total_cost_usd=0.0005600000000000001,
        usage=usage(12, 20),
        task_id=T,
    )
    assert isinstance(finished, AgentTurnFinished)
    assert turn_failure(finished) == "max turns: Reached maximum number of turns (1)"
    assert msgs[4:] == [
        CostReported(
            agent_id=A,
            usd=0.0005600000000000001,
            input_tokens=12,
            output_tokens=20,
            task_id=T,
            session_usd=0.0005600000000000001,
            session_id=s,
        )
    ]


@pytest.mark.parametrize(
    ("name", "status", "error", "session", "text"),
    [
        (
            "error_429_retries_exhausted",
            429,
            "rate_limit",
            "4dd129e1-0128-47d8-ae8b-b05bfaa3687c",
            "API Error: Request rejected (429) · fake",
        ),
        (
            "error_529_overloaded",
            529,
            "overloaded",
            "50f954ff-6c8c-443a-8382-9f2dec69601e",
            "API Error: 529 fake. This is a server-side issue, usually temporary — try again in a "
            "moment. If it persists, check your inference gateway (127.0.0.1:8769).",
        ),
        (
            "error_500",
            500,
            "server_error",
            "6a7d50be-d6df-4c8c-bd56-d846c9e1c022",
            "API Error: 500 fake. This is a server-side issue, usually temporary — try again in a "
            "moment. If it persists, check your inference gateway (127.0.0.1:8770).",
        ),
    ],
)
def test_api_errors(name: str, status: int, error: str, session: str, text: str) -> None:
    msgs = decode_file(STREAM / f"{name}.jsonl")
    assert msgs == [
        init(session, ["Bash", "Edit", "Read"], "default"),
        AgentApiRetry(
            agent_id=A,
            attempt=1,
            max_retries=1,
            retry_delay_ms=1000,
            error_status=status,
            error=error,
            task_id=T,
        ),
        AgentText(agent_id=A, text=text, task_id=T),
        AgentTurnFinished(
            agent_id=A,
            session_id=session,
            subtype="success",
            is_error=True,
            result=text,
            api_error_status=status,
            terminal_reason="completed",
            num_turns=1,
            duration_ms=msgs[3].duration_ms,  # type: ignore[attr-defined]
            total_cost_usd=0.0,
            usage=usage(0, 0),
            task_id=T,
        ),
        CostReported(agent_id=A, usd=0.0, task_id=T, session_usd=0.0, session_id=session),
    ]
    finished = msgs[3]
    assert isinstance(finished, AgentTurnFinished)
    assert finished.duration_ms in (1076, 1078, 1079)
    assert turn_failed(finished)
    assert turn_failure(finished) == f"API error {status}: {text}"


NEW_TOOLS = [
    "Task", "Bash", "CronCreate", "CronDelete", "CronList", "Edit", "EnterWorktree",
    "ExitWorktree", "ListAgents", "Monitor", "NotebookEdit", "Read", "ReportFindings",
    "ScheduleWakeup", "SendMessage", "Skill", "TaskStop", "ToolSearch", "WebFetch",
    "WebSearch", "Workflow", "Write",
]  # fmt: skip


def request_init(path: Path) -> tuple[list[str], str]:
    first = json.loads(path.read_bytes().splitlines()[0])
    return list(first["tools"]), str(first["permissionMode"])


def test_request_write_then_text() -> None:
    path = REQUESTS / "write_then_text.stream.jsonl"
    s = "b020aa5a-6e4c-45a0-abd7-488b1407737d"
    msgs = decode_file(path)
    tools, mode = request_init(path)
    assert mode == "acceptEdits"
    assert msgs == [
        init(s, tools, mode, "2.1.331"),
        AgentToolUse(
            agent_id=A,
            tool_use_id="toolu_01WriteHello0001",
            tool="Write",
            input={"file_path": "/home/user/project/hello.txt", "content": "hi\n"},
            task_id=T,
        ),
        AgentToolResult(
            agent_id=A, tool_use_id="toolu_01WriteHello0001", content=CREATED, task_id=T
        ),
        AgentText(agent_id=A, text="Done.", task_id=T),
        AgentTurnFinished(
            agent_id=A,
            session_id=s,
            subtype="success",
            is_error=False,
            result="Done.",
            terminal_reason="completed",
            num_turns=2,
            duration_ms=171,
            total_cost_usd=0.0011,
            usage=usage(200, 15, NEW_USAGE),
            task_id=T,
        ),
        CostReported(
            agent_id=A,
            usd=0.0011,
            input_tokens=200,
            output_tokens=15,
            task_id=T,
            session_usd=0.0011,
            session_id=s,
        ),
    ]


def test_request_structured_output() -> None:
    path = REQUESTS / "structured_output.stream.jsonl"
    s = "54cf3824-fcde-48db-92de-11d22cf83131"
    msgs = decode_file(path)
    tools, mode = request_init(path)
    assert msgs == [
        init(s, tools, mode, "2.1.331"),
        AgentToolUse(
            agent_id=A,
            tool_use_id="toolu_01StructOut00001",
            tool="StructuredOutput",
            input={"milestones": ["a", "b"]},
            task_id=T,
        ),
        AgentToolResult(
            agent_id=A,
            tool_use_id="toolu_01StructOut00001",
            content="Structured output provided successfully",
            task_id=T,
        ),
        AgentTurnFinished(
            agent_id=A,
            session_id=s,
            subtype="success",
            is_error=False,
            result='{"milestones":["a","b"]}',
            terminal_reason="completed",
            num_turns=2,
            duration_ms=135,
            total_cost_usd=0.00064,
            structured_output={"milestones": ["a", "b"]},
            usage=usage(100, 12, NEW_USAGE),
            task_id=T,
        ),
        CostReported(
            agent_id=A,
            usd=0.00064,
            input_tokens=100,
            output_tokens=12,
            task_id=T,
            session_usd=0.00064,
            session_id=s,
        ),
    ]


def test_request_bash_tool_with_crlf() -> None:
    path = REQUESTS / "bash_tool.stream.jsonl"
    s = "7eee788a-782f-446a-9aac-7db743ebfcb5"
    msgs = decode_file(path, crlf=True)
    assert msgs == decode_file(path)
    tools, mode = request_init(path)
    assert msgs == [
        init(s, tools, mode, "2.1.331"),
        AgentToolUse(
            agent_id=A,
            tool_use_id="toolu_01BashCheck00001",
            tool="Bash",
            input={"command": "echo ok && git status --short", "description": "check"},
            task_id=T,
        ),
        AgentToolResult(agent_id=A, tool_use_id="toolu_01BashCheck00001", content="ok", task_id=T),
        AgentText(agent_id=A, text="Checked.", task_id=T),
        AgentTurnFinished(
            agent_id=A,
            session_id=s,
            subtype="success",
            is_error=False,
            result="Checked.",
            terminal_reason="completed",
            num_turns=2,
            duration_ms=195,
            total_cost_usd=0.0011,
            usage=usage(200, 15, NEW_USAGE),
            task_id=T,
        ),
        CostReported(
            agent_id=A,
            usd=0.0011,
            input_tokens=200,
            output_tokens=15,
            task_id=T,
            session_usd=0.0011,
            session_id=s,
        ),
    ]


# claude 2.1.331 with the API unreachable (captured here): success, yet is_error.
UNREACHABLE = (
    b'{"duration_api_ms":0,"stop_reason":"stop_sequence","session_id":"s-1","total_cost_usd":0,'
    b'"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    b'"output_tokens":0},"modelUsage":{},"permission_denials":[],"terminal_reason":"api_error",'
    b'"is_error":true,"num_turns":1,"subtype":"success","api_error_status":null,'
    b'"api_error":"connection_failed","result":"API Error: Connection refused (ECONNREFUSED)",'
    b'"type":"result","duration_ms":63}\r\n'
)


def test_unreachable_api_is_a_failure_despite_success_subtype() -> None:
    finished, cost = decode_line(UNREACHABLE, agent_id=A)
    assert isinstance(finished, AgentTurnFinished)
    assert finished.subtype == "success" and finished.is_error
    assert finished.api_error == "connection_failed" and finished.api_error_status is None
    assert finished.task_id is None and finished.terminal_reason == "api_error"
    assert turn_failed(finished)
    assert turn_failure(finished) == (
        "API error connection_failed: API Error: Connection refused (ECONNREFUSED)"
    )
    assert cost == CostReported(agent_id=A, usd=0.0, session_id="s-1")


def result(**fields: object) -> AgentTurnFinished:
    line = json.dumps({"type": "result", "subtype": "success", "session_id": "s", **fields})
    finished = decode_line(line.encode(), agent_id=A)[0]
    assert isinstance(finished, AgentTurnFinished)
    return finished


def test_failure_is_read_from_is_error_and_api_fields_never_subtype_alone() -> None:
    assert not turn_failed(result(is_error=False))
    assert turn_failed(result(is_error=True))
    assert turn_failed(result(is_error=False, api_error_status=529))
    assert turn_failed(result(is_error=False, api_error="connection_failed"))
    assert not turn_failed(result(subtype="error_during_execution", is_error=False))
    assert turn_failed(result(subtype="error_during_execution"))  # is_error absent
    assert not turn_failed(result())  # success, is_error absent
    assert turn_failure(result(is_error=True, result="Not logged in · Please run /login",
                               terminal_reason="api_error")) == (
        "api error: Not logged in · Please run /login"
    )  # fmt: skip


def one(line: bytes | str) -> object:
    msgs = decode_line(line, agent_id=A, task_id=T)
    assert len(msgs) == 1
    return msgs[0]


@pytest.mark.parametrize(
    "line",
    [
        b"--dangerously-skip-permissions cannot be used with root/sudo privileges",
        b'{"type":"result","subtype":"succ',
        b"{",
        b"\xff\xfe garbage \x00",
        b"Error: something\r\n",
        b'{"type": "assistant"} trailing',
    ],
)
def test_not_json(line: bytes) -> None:
    assert one(line) == AgentStreamLine(
        agent_id=A, kind="not_json", text=line.rstrip(b"\r\n").decode("utf-8", "replace"), task_id=T
    )


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"system","subtype":"hook_started","session_id":"x"}',
        b'{"type":"system","subtype":"compact_boundary"}',
        b'{"type":"stream_event","event":{}}',
        b'{"no_type":1}',
        b"[1,2,3]",
        b'"a string"',
        b"42",
        b"null",
        b'{"type":5}',
        b'{"type":"result","is_error":"yes"}',
        b'{"type":"assistant","message":"not an object"}',
        b'{"type":"user","message":{"content":[{"type":"tool_result","is_error":3}]}}',
        b'{"type":"system","subtype":"init","tools":"Bash"}',
    ],
)
def test_unknown_or_unexpected_json_is_kept(line: bytes) -> None:
    assert one(line) == AgentStreamLine(agent_id=A, kind="unknown", text=line.decode(), task_id=T)


@pytest.mark.parametrize("line", [b"", b"\r\n", b"\n", b"   \r\n", ""])
def test_blank_lines_give_nothing(line: bytes) -> None:
    assert decode_line(line, agent_id=A, task_id=T) == []


def test_extra_fields_thinking_blocks_and_list_content() -> None:
    assistant = {
        "type": "assistant",
        "brand_new": {"x": [1]},
        "message": {
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "one", "citations": None},
                {"type": "redacted_thinking", "data": "..."},
                {"type": "tool_use", "id": "tu", "name": "Read", "input": {"file_path": "a"}},
                {"type": "text", "text": "two"},
            ],
            "new_field": True,
        },
    }
    assert decode_line(json.dumps(assistant), agent_id=A) == [
        AgentText(agent_id=A, text="one"),
        AgentToolUse(agent_id=A, tool_use_id="tu", tool="Read", input={"file_path": "a"}),
        AgentText(agent_id=A, text="two"),
    ]
    user = {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {"type": "text", "text": "not a tool result"},
                {
                    "type": "tool_result",
                    "tool_use_id": "tu",
                    "content": [
                        {"type": "text", "text": "line 1"},
                        {"type": "image", "source": {}},
                        {"type": "text", "text": "line 2"},
                    ],
                },
                {"type": "tool_result", "tool_use_id": "tv", "is_error": True},
            ],
        },
    }
    assert decode_line(json.dumps(user).encode() + b"\r\n", agent_id=A, task_id=T) == [
        AgentToolResult(agent_id=A, tool_use_id="tu", content="line 1\n[image]\nline 2", task_id=T),
        AgentToolResult(agent_id=A, tool_use_id="tv", content="", is_error=True, task_id=T),
    ]
    prompt_echo = {"type": "user", "message": {"role": "user", "content": "hello"}}
    assert decode_line(json.dumps(prompt_echo), agent_id=A) == []


def test_minimal_result_and_retry_lines() -> None:
    assert decode_line(b'{"type":"result","subtype":"success","is_error":false}', agent_id=A) == [
        AgentTurnFinished(agent_id=A, session_id="", subtype="success", is_error=False),
        CostReported(agent_id=A, usd=0.0),
    ]
    retry = b'{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,'
    retry += b'"retry_delay_ms":2000.5,"error_status":null,"error":null}'
    assert decode_line(retry, agent_id=A) == [
        AgentApiRetry(agent_id=A, attempt=3, max_retries=10, retry_delay_ms=2000.5)
    ]
    weird = b'{"type":"result","subtype":"success","is_error":false,"errors":[{"a":1}],'
    weird += b'"usage":{"input_tokens":true,"output_tokens":-3,"cache_read_input_tokens":7}}'
    finished, cost = decode_line(weird, agent_id=A)
    assert isinstance(finished, AgentTurnFinished) and finished.errors == ['{"a":1}']
    assert cost == CostReported(agent_id=A, usd=0.0, cache_read_tokens=7)


def test_never_raises_on_fuzzed_input() -> None:
    import random

    rng = random.Random(4)
    samples = [p.read_bytes() for p in STREAM.glob("*.jsonl")]
    alphabet = b'{}[]":,\\ \r\nabc0123456789-.etrufalsn\xff\x00'
    for _ in range(3000):
        source = rng.choice(samples)
        start = rng.randrange(len(source))
        chunk = bytearray(source[start : start + rng.randrange(1, 400)])
        for _ in range(rng.randrange(4)):
            if chunk:
                chunk[rng.randrange(len(chunk))] = rng.choice(alphabet)
        for msg in decode_line(bytes(chunk), agent_id=A, task_id=T):
            assert msg.agent_id == A and msg.task_id == T
    assert one(b"[" * 100_000)  # deep nesting
    assert one(b'{"type":' * 50_000)


@pytest.mark.parametrize(
    ("running_total", "before", "cost"),
    [
        (0.525, 0.0, 0.525),  # a new session: all of it
        (1.05, 0.525, 0.525),  # resumed: only the change
        (1.575, 1.05, 0.525),
        (0.0, 0.525, 0.0),  # a resume that found nothing reports 0: never negative
        (0.4, 0.525, 0.0),
        (0.3, -1.0, 0.3),  # a nonsense "before" counts as none
    ],
)
def test_a_turn_costs_the_change_in_the_sessions_running_total(
    running_total: float, before: float, cost: float
) -> None:
    assert turn_cost(running_total, before) == pytest.approx(cost)


def test_a_resumed_turns_result_line_is_booked_as_the_change() -> None:
    line = json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "session_id": "s-1",
            "total_cost_usd": 1.575,
            "usage": {"input_tokens": 100000, "output_tokens": 1000},
        }
    )
    finished, cost = decode_line(line, agent_id=A, task_id=T, session_usd=1.05)
    assert isinstance(finished, AgentTurnFinished) and finished.total_cost_usd == 1.575
    assert cost == CostReported(
        agent_id=A,
        usd=pytest.approx(0.525),  # type: ignore[arg-type]
        input_tokens=100000,
        output_tokens=1000,
        task_id=T,
        session_usd=1.575,
        session_id="s-1",
    )


# --- the refusals: what only a turn's earlier lines explain ------------------------------


def decode_turn(path: Path) -> list[object]:
    decoder = StreamDecoder(agent_id=A, task_id=T)
    return [m for line in path.read_bytes().splitlines() for m in decoder.decode(line)]


def test_a_permission_denial_is_told_with_claudes_reason_before_the_turn_ends() -> None:
    out = decode_turn(STREAM / "permission_denied.jsonl")
    denied = [m for m in out if isinstance(m, PermissionDenied)]
    assert denied == [
        PermissionDenied(
            agent_id=A,
            tool="Write",
            tool_use_id="toolu_01",
            input=HELLO,
            reason=(
                "Claude requested permissions to write to /home/user/project/hello.txt, "
                "but you haven't granted it yet."
            ),
            task_id=T,
        )
    ]
    # Just before the result line: every view has it when the turn's end arrives.
    at = out.index(denied[0])
    assert isinstance(out[at + 1], AgentTurnFinished)
    # decode_line alone (no memory of the turn) says nothing of it.
    assert not [
        m
        for m in decode_file(STREAM / "permission_denied.jsonl")
        if isinstance(m, PermissionDenied)
    ]


def test_a_structured_answer_claude_rejects_is_told_with_its_reason() -> None:
    # claude 2.1.331: the first StructuredOutput call breaks the schema, the second fits.
    out = decode_turn(STREAM / "schema_rejected.jsonl")
    [rejected] = [m for m in out if isinstance(m, SchemaRejected)]
    assert rejected.reason == (
        'Output does not match required schema: /tasks/0/id: must match pattern "^t[0-9]+$"'
    )
    assert rejected.agent_id == A and rejected.task_id == T
    [first, second] = [m for m in out if isinstance(m, AgentToolUse)]
    assert rejected.tool_use_id == first.tool_use_id
    # The error tool result itself is still journaled, just before what it means.
    assert out[out.index(rejected) - 1] == AgentToolResult(
        agent_id=A,
        tool_use_id=first.tool_use_id,
        content=rejected.reason,
        is_error=True,
        task_id=T,
    )
    [finished] = [m for m in out if isinstance(m, AgentTurnFinished)]
    assert not finished.is_error and finished.structured_output == second.input


def test_an_error_of_another_tool_is_no_refusal() -> None:
    decoder = StreamDecoder(agent_id=A)
    use = {"type": "tool_use", "id": "x1", "name": "Bash", "input": {"command": "false"}}
    result = {"type": "tool_result", "tool_use_id": "x1", "content": "exit 1", "is_error": True}
    lines = [
        {"type": "assistant", "message": {"content": [use]}},
        {"type": "user", "message": {"content": [result]}},
        {"type": "result", "subtype": "success", "is_error": False, "session_id": "s"},
    ]
    out = [m for line in lines for m in decoder.decode(json.dumps(line))]
    assert not [m for m in out if isinstance(m, PermissionDenied | SchemaRejected)]
