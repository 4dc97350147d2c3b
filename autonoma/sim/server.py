"""The simulated Messages API: an HTTP server on 127.0.0.1 that plays a scenario."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from autonoma.sim.scenario import (
    Fault,
    RequestInfo,
    Scenario,
    Step,
    describe_request,
    fill,
    is_nudge,
)

NUDGE_RULE = "structured-output-enforce"
"""The record's rule name for the sim's own answer to claude's structured-output nudge."""

log = logging.getLogger(__name__)

_ERROR_TYPES = {"429": "rate_limit_error", "529": "overloaded_error", "500": "api_error"}
_DEFAULT_USAGE = {
    "input_tokens": 100,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 10,
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class RecordedRequest:
    """One request the sim received, and what it did with it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or None
    info: RequestInfo | None = None
    rule: str | None = None  # the name of the matching rule
    step: int | None = None
    status: int = 0
    fault: str | None = None
    time: float = field(default_factory=time.time)

    @property
    def role(self) -> str | None:
        return self.info.role if self.info else None

    @property
    def task(self) -> str | None:
        return self.info.task if self.info else None

    @property
    def session_id(self) -> str | None:
        return self.info.session_id if self.info else None


# --- building answers ------------------------------------------------------------------


def json_chunks(value: dict[str, Any], malformed: bool = False) -> list[str]:
    """A tool input as ``input_json_delta`` pieces, split at key/value boundaries."""
    chunks = ["{"]
    for i, (key, item) in enumerate(value.items()):
        chunks.append(("" if i == 0 else ", ") + json.dumps(key, ensure_ascii=False) + ": ")
        chunks.append(json.dumps(item, ensure_ascii=False))
    if malformed:
        return [*chunks, ', "unterminated']
    return [*chunks, "}"]


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {_dumps(data)}\n\n".encode()


class Answer:
    """The blocks, usage and stop reason of one model message."""

    def __init__(self, step: Step, info: RequestInfo, usage: dict[str, int], ids: list[str]):
        self.msg_id, tool_ids = ids[0], ids[1:]
        self.model = info.model
        self.usage = {**_DEFAULT_USAGE, **usage, **step.usage}
        self.stop_reason = step.resolved_stop_reason()
        self.blocks: list[dict[str, Any]] = []
        if step.text is not None:
            self.blocks.append({"type": "text", "text": fill(step.text, info)})
        for tool, tool_id in zip(step.tools, tool_ids, strict=True):
            self.blocks.append(
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": tool.name,
                    "input": fill(tool.input, info),
                }
            )

    def message(self) -> dict[str, Any]:
        return {
            "id": self.msg_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.blocks,
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "usage": dict(self.usage),
        }

    def sse(self, malformed: bool = False) -> bytes:
        start_usage = {**self.usage, "output_tokens": 1}
        head = {**self.message(), "content": [], "stop_reason": None, "usage": start_usage}
        out = [_event("message_start", {"type": "message_start", "message": head})]
        for index, block in enumerate(self.blocks):
            if block["type"] == "text":
                first: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": block["text"]}]
            else:
                first = {**block, "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": piece}
                    for piece in json_chunks(block["input"], malformed)
                ]
            out.append(
                _event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": first},
                )
            )
            for delta in deltas:
                out.append(
                    _event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": delta},
                    )
                )
            out.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        out.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": self.usage["output_tokens"]},
                },
            )
        )
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)


def error_body(kind: str, message: str) -> bytes:
    return _dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


# --- the server ------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: SimServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (claude stopped mid-answer) is normal: no traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        log.warning("sim: a request from %s failed: %r", client_address, error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the record is the log

    def _send(
        self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _record(self, body: Any) -> RecordedRequest:
        record = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
        self.server.sim._add(record)
        return record

    def do_HEAD(self) -> None:
        self._record(None).status = 200
        self._send(200, b"", "text/plain")

    def do_GET(self) -> None:
        record = self._record(None)
        record.status = 200
        self._send(200, b'{"ok":true}', "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = self._record(body)
        path = urlsplit(self.path).path
        if not isinstance(body, dict):
            record.status = 400
            self._send(
                400,
                error_body("invalid_request_error", "body is not a JSON object"),
                "application/json",
            )
        elif path == "/v1/messages/count_tokens":
            record.status = 200
            self._send(200, b'{"input_tokens":100}', "application/json")
        elif path == "/v1/messages":
            self.server.sim._play(self, record, body)
        else:
            record.status = 404
            self._send(
                404, error_body("not_found_error", f"no such path: {path}"), "application/json"
            )

    # used by SimServer._play
    def drop(self, data: bytes) -> None:
        """Send the headers and half the body, then close the connection."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _last_text(body: dict[str, Any]) -> str:
    """The last text block of the newest assistant message that has one."""
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str) and content.strip():
            return content
        if isinstance(content, list):
            texts = [
                b["text"]
                for b in content
                if isinstance(b, dict) and b.get("type") == "text" and b.get("text")
            ]
            if texts:
                return str(texts[-1])
    return ""


class SimServer:
    """The simulated Messages API, served from a background thread.

    ``with SimServer(scenario) as sim: ... sim.url ... sim.requests``
    """

    def __init__(self, scenario: Scenario, port: int = 0, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the sim only listens on the loopback interface")
        self.scenario = scenario
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.sim = self
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []
        self._hits: dict[tuple[str, int, int], int] = {}
        # When each role's first request arrived (monotonic): the clock of a window
        # with ``since``.
        self._first_of: dict[str, float] = {}
        self._ids = 0
        # Ids unique across starts: a resumed `claude` session already holds the last
        # start's `msg_sim0001` and would drop a new answer under the same id as a repeat.
        self._id_prefix = secrets.token_hex(6)
        self.stopping = threading.Event()
        self.started = time.monotonic()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def messages_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /v1/messages`` requests."""
        return [r for r in self.requests if r.method == "POST" and r.info is not None]

    def start(self) -> SimServer:
        self.started = time.monotonic()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="sim",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop`` is called from another one."""
        self.started = time.monotonic()
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        finally:
            self.stopping.set()
            self._httpd.server_close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ---

    def _add(self, record: RecordedRequest) -> None:
        with self._lock:
            self._records.append(record)

    def _next_ids(self, tools: int) -> list[str]:
        with self._lock:
            self._ids += 1
            n = self._ids
        key = f"{self._id_prefix}_{n:04d}"
        return [f"msg_sim{key}"] + [f"toolu_sim{key}_{i}" for i in range(tools)]

    def _count(self, key: tuple[str, int, int], fault: Fault) -> bool:
        """Whether ``fault`` applies to this hit (it may be limited to ``times`` hits)."""
        with self._lock:
            seen = self._hits.get(key, 0)
            self._hits[key] = seen + 1
        return fault.times is None or seen < fault.times

    def _active_fault(
        self, info: RequestInfo, index: int, step_no: int, step: Step | None
    ) -> tuple[Fault | None, float]:
        """The fault this request gets (None: the step's answer) and the seconds to wait
        first: the step's latency, and a window's own; a window's error status comes after
        the window's latency only (a server refusing a request does not think first)."""
        now = time.monotonic()
        with self._lock:
            if info.role is not None:
                self._first_of.setdefault(info.role, now)
            first_of = dict(self._first_of)
        thinking = 0.0 if step is None else step.latency
        for w_index, window in enumerate(self.scenario.windows):
            if window.since is None:
                elapsed: float | None = now - self.started
            else:
                began = first_of.get(window.since)
                elapsed = None if began is None else now - began
            if window.applies(elapsed, info) and self._count(("window", w_index, 0), window.fault):
                refused = window.fault.kind in _ERROR_TYPES
                return window.fault, window.latency + (0.0 if refused else thinking)
        if (
            step is not None
            and step.fault is not None
            and self._count(("rule", index, step_no), step.fault)
        ):
            return step.fault, thinking
        return None, thinking

    def _play(self, handler: _Handler, record: RecordedRequest, body: dict[str, Any]) -> None:
        info = describe_request(body)
        record.info = info
        found = self.scenario.find(info)
        step: Step | None = None
        index = -1
        if found is not None:
            index, rule = found
            record.rule = rule.name
            # A rule pinned to one turn answers it with its first step.
            record.step = step_no = 0 if rule.turn is not None else info.step
            if step_no < len(rule.steps):
                step = rule.steps[step_no]
        elif is_nudge(info):
            # No rule asks for the nudge: answer it as a model that ignores it would,
            # saying its last words again (they become the turn's result text).
            record.rule, record.step = NUDGE_RULE, 0
            step = Step(text=_last_text(body) or "Done.")
        fault, latency = self._active_fault(info, index, record.step or 0, step)
        if latency and self.stopping.wait(latency):
            handler.close_connection = True  # stopped while waiting: no answer
            return
        if fault is not None and fault.kind == "hang":
            record.fault = "hang"  # status stays 0: no byte is sent until the server stops
            self.stopping.wait()
            handler.close_connection = True
            return
        if fault is not None and fault.kind in _ERROR_TYPES:
            record.status, record.fault = int(fault.kind), fault.kind
            message = f"autonoma sim: injected {fault.kind}"
            handler._send(
                int(fault.kind),
                error_body(_ERROR_TYPES[fault.kind], message),
                "application/json",
                {"retry-after": str(fault.retry_after), "x-should-retry": "true"},
            )
            return
        if step is None:
            record.status = 400
            handler._send(
                400,
                error_body("invalid_request_error", self._no_rule(info, record)),
                "application/json",
            )
            return
        if step.text is None and not step.tools:  # a fault-only step whose fault is spent
            record.status = 400
            handler._send(
                400,
                error_body(
                    "invalid_request_error",
                    f"autonoma sim: rule {record.rule!r} step {record.step} has nothing to say",
                ),
                "application/json",
            )
            return
        answer = Answer(step, info, self.scenario.usage, self._next_ids(len(step.tools)))
        record.fault = fault.kind if fault else None
        malformed = fault is not None and fault.kind == "bad_json"
        if not info.stream:
            record.status = 200
            encoded = _dumps(answer.message()).encode()
            handler._send(200, encoded[:-7] if malformed else encoded, "application/json")
            return
        data = answer.sse(malformed=malformed)
        record.status = 200
        if fault is not None and fault.kind == "drop":
            handler.drop(data)
        elif fault is not None and fault.kind == "stall":
            handler.send_response(200)
            handler.send_header("content-type", "text/event-stream")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data.split(b"\n\n", 1)[0] + b"\n\n")
            handler.wfile.flush()
            self.stopping.wait()
            handler.close_connection = True
        else:
            handler._send(200, data, "text/event-stream")

    def _no_rule(self, info: RequestInfo, record: RecordedRequest) -> str:
        what = (
            f"role={info.role} task={info.task} turn={info.turn} step={info.step} "
            f"prompt={info.prompt[:60]!r}"
        )
        if record.rule is not None:
            return f"autonoma sim: rule {record.rule!r} has no step {record.step} for {what}"
        return f"autonoma sim: no rule matches {what}"
