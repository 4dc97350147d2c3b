"""The simulated Messages API over HTTP, with the request bodies claude 2.1.331 really sent."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from autonoma.resources import packaged
from autonoma.sim import (
    ScenarioError,
    SimServer,
    describe_request,
    load_scenario,
    loads_scenario,
)

# A copy of ../shared/claude-requests, kept with the tests.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude-requests"

pytestmark = [
    pytest.mark.timeout(30),
]

SCENARIO = """
usage = { input_tokens = 100, output_tokens = 12 }

[[rule]]
name = "write"
role = "developer"
task = "t1"
[[rule.step]]
[[rule.step.tool]]
name = "Write"
input = { file_path = "{cwd}/hello.txt", content = "hi\\n" }
[[rule.step]]
text = "Done."
usage = { output_tokens = 3 }

[[rule]]
name = "plan"
prompt_contains = "Plan it"
[[rule.step]]
[[rule.step.tool]]
name = "StructuredOutput"
input = { milestones = ["a", "b"] }

[[rule]]
name = "bash"
prompt_contains = "Check the repo"
[[rule.step]]
[[rule.step.tool]]
name = "Bash"
input = { command = "echo ok && git status --short", description = "check" }
[[rule.step]]
text = "Checked."
usage = { output_tokens = 3 }
"""


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def post(
    url: str, payload: Any, path: str = "/v1/messages?beta=true", timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        conn.request("POST", path, raw, {"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in data.decode().split("\n\n"):
        if chunk:
            name, payload = chunk.split("\n")
            out.append((name.removeprefix("event: "), json.loads(payload.removeprefix("data: "))))
    return out


def normalise_ids(data: bytes, fixture: bytes) -> bytes:
    """Give our message and tool ids the fixture's, so bytes can be compared."""
    ours = {e["message"]["id"] for n, e in events(data) if n == "message_start"}
    ours |= {
        e["content_block"]["id"]
        for n, e in events(data)
        if n == "content_block_start" and "id" in e["content_block"]
    }
    theirs = {e["message"]["id"] for n, e in events(fixture) if n == "message_start"}
    theirs |= {
        e["content_block"]["id"]
        for n, e in events(fixture)
        if n == "content_block_start" and "id" in e["content_block"]
    }
    for mine, other in zip(sorted(ours), sorted(theirs), strict=True):
        data = data.replace(mine.encode(), other.encode())
    return data


@pytest.fixture
def sim() -> Any:
    with SimServer(loads_scenario(SCENARIO)) as server:
        yield server


@pytest.mark.parametrize(
    "name",
    [
        "write_then_text.req1",
        "write_then_text.req2",
        "structured_output.req1",
        "bash_tool.req1",
        "bash_tool.req2",
    ],
)
def test_replayed_requests_get_the_fixture_bytes(sim: SimServer, name: str) -> None:
    status, headers, data = post(sim.url, body(name))
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    assert int(headers["content-length"]) == len(data)

    expected = (FIXTURES / f"{name.replace('.req', '.resp')}.sse").read_bytes()

    assert normalise_ids(data, expected) == expected


def test_request_description() -> None:
    info = describe_request(body("write_then_text.req1"))
    assert (info.role, info.task, info.turn, info.step) == ("developer", "t1", 1, 0)
    assert info.prompt == "Create hello.txt containing hi"
    assert info.session_id == "b020aa5a-6e4c-45a0-abd7-488b1407737d"
    assert info.cwd == "/home/user/project"
    assert info.stream
    second = describe_request(body("write_then_text.req2"))
    assert (second.turn, second.step) == (2, 1)
    plain = describe_request(body("bash_tool.req1"))
    assert (plain.role, plain.task) == (None, None)
    assert plain.system_tail.endswith("called original.")  # no appended prompt


def test_every_request_is_recorded(sim: SimServer) -> None:
    post(sim.url, body("write_then_text.req1"))
    post(sim.url, body("write_then_text.req2"))
    records = sim.messages_requests
    assert [(r.rule, r.step, r.status) for r in records] == [("write", 0, 200), ("write", 1, 200)]
    assert records[0].role == "developer" and records[0].task == "t1"
    assert records[0].path == "/v1/messages?beta=true"
    assert records[0].headers["content-type"] == "application/json"
    assert records[1].body["messages"][2]["role"] == "assistant"
    assert records[0].session_id == records[1].session_id


def test_non_streaming_answer(sim: SimServer) -> None:
    payload = {**body("write_then_text.req1"), "stream": False}
    status, headers, data = post(sim.url, payload)
    assert status == 200 and headers["content-type"] == "application/json"
    message = json.loads(data)
    assert message["type"] == "message" and message["stop_reason"] == "tool_use"
    assert message["content"][0]["input"] == {
        "file_path": "/home/user/project/hello.txt",
        "content": "hi\n",
    }
    assert message["usage"]["output_tokens"] == 12


def test_unmatched_request_is_a_clear_400(sim: SimServer) -> None:
    payload = body("write_then_text.req1")
    payload["messages"][0]["content"][2]["text"] = "Something nobody scripted"
    payload["system"][2]["text"] = payload["system"][2]["text"].replace("developer", "qa")
    status, _, data = post(sim.url, payload)
    assert status == 400
    error = json.loads(data)
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    message = error["error"]["message"]
    assert "no rule matches" in message
    assert "role=qa" in message and "task=t1" in message and "turn=1" in message
    assert "Something nobody" in message
    assert sim.messages_requests[0].status == 400


def test_rule_without_enough_steps_is_a_clear_400() -> None:
    scenario = loads_scenario('[[rule]]\nname="one"\n[[rule.step]]\ntext="x"\n')
    with SimServer(scenario) as sim:
        status, _, data = post(sim.url, body("write_then_text.req2"))
    assert status == 400
    assert "rule 'one' has no step 1" in json.loads(data)["error"]["message"]


def test_turn_and_text_matching() -> None:
    scenario = loads_scenario(
        """
[[rule]]
name = "second"
turn = 2
[[rule.step]]
text = "two"
[[rule]]
name = "sys"
system_contains = "TASK: t1"
[[rule.step]]
text = "first {role}/{task} in {cwd}"
"""
    )
    with SimServer(scenario) as sim:
        _, _, one = post(sim.url, {**body("write_then_text.req1"), "stream": False})
        _, _, two = post(sim.url, {**body("write_then_text.req2"), "stream": False})
    assert json.loads(one)["content"][0]["text"] == "first developer/t1 in /home/user/project"
    assert json.loads(two)["content"][0]["text"] == "two"
    assert json.loads(one)["stop_reason"] == "end_turn"


def test_text_and_several_tools_in_one_answer() -> None:
    scenario = loads_scenario(
        """
[[rule]]
[[rule.step]]
text = "On it."
[[rule.step.tool]]
name = "Read"
input = { file_path = "{cwd}/a" }
[[rule.step.tool]]
name = "Edit"
input = { file_path = "{cwd}/a", old_string = "x", new_string = "y" }
"""
    )
    with SimServer(scenario) as sim:
        _, _, data = post(sim.url, body("bash_tool.req1"))
    evs = events(data)
    starts = [e["content_block"] for n, e in evs if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "tool_use"]
    assert len({b["id"] for b in starts[1:]}) == 2
    pieces = "".join(
        e["delta"]["partial_json"] for n, e in evs if n == "content_block_delta" and e["index"] == 2
    )
    assert json.loads(pieces) == {
        "file_path": "/home/user/project/a",
        "old_string": "x",
        "new_string": "y",
    }
    names = [n for n, _ in evs]
    assert (names[0], names[-1]) == ("message_start", "message_stop")


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [("429", "rate_limit_error"), ("529", "overloaded_error"), ("500", "api_error")],
)
def test_error_faults_then_recovery(kind: str, error_type: str) -> None:
    scenario = loads_scenario(
        f'[[rule]]\n[[rule.step]]\ntext = "ok"\nfault = "{kind}"\nretry_after = 3\ntimes = 2\n'
    )
    with SimServer(scenario) as sim:
        answers = [post(sim.url, body("bash_tool.req1")) for _ in range(3)]
    for status, headers, data in answers[:2]:
        assert status == int(kind)
        assert headers["retry-after"] == "3"
        assert json.loads(data)["error"]["type"] == error_type
    assert answers[2][0] == 200
    assert [r.fault for r in sim.messages_requests] == [kind, kind, None]


def test_fault_window_by_time() -> None:
    scenario = loads_scenario(
        '[[window]]\nstart = 0\nend = 0.5\nfault = "529"\nrole = "developer"\n'
        '[[rule]]\n[[rule.step]]\ntext = "ok"\n'
    )
    with SimServer(scenario) as sim:
        assert post(sim.url, body("write_then_text.req1"))[0] == 529
        assert post(sim.url, body("bash_tool.req1"))[0] == 200  # no role: outside the window
        time.sleep(0.6)
        assert post(sim.url, body("write_then_text.req1"))[0] == 200


def test_a_window_since_a_role_counts_from_that_roles_first_request() -> None:
    # 0.3 s to 0.8 s after the developer's first request; closed until that request.
    scenario = loads_scenario(
        '[[window]]\nsince = "developer"\nstart = 0.3\nend = 0.8\nfault = "429"\n'
        '[[rule]]\n[[rule.step]]\ntext = "ok"\n'
    )
    with SimServer(scenario) as sim:
        time.sleep(0.4)  # past the server's own 0.3 s: the window has not opened
        assert post(sim.url, body("bash_tool.req1"))[0] == 200  # not a developer: no clock
        assert post(sim.url, body("write_then_text.req1"))[0] == 200  # the clock starts
        time.sleep(0.35)
        assert post(sim.url, body("bash_tool.req1"))[0] == 429  # every role, once open
        time.sleep(0.5)
        assert post(sim.url, body("write_then_text.req1"))[0] == 200  # closed again
    assert [r.fault for r in sim.messages_requests] == [None, None, "429", None]


@pytest.mark.parametrize(("fault", "waits"), [("429", False), ("529", False), ("drop", True)])
def test_a_windows_refusal_does_not_wait_for_the_steps_latency(fault: str, waits: bool) -> None:
    scenario = loads_scenario(
        f'[[window]]\nfault = "{fault}"\nlatency = 0.1\n'
        '[[rule]]\n[[rule.step]]\ntext = "a long answer"\nlatency = 0.6\n'
    )
    with SimServer(scenario) as sim:
        began = time.monotonic()
        with contextlib.suppress(http.client.IncompleteRead):
            post(sim.url, body("bash_tool.req1"))
        took = time.monotonic() - began
    assert took >= 0.1  # the window's own latency
    assert (took >= 0.6) is waits  # a dropped stream comes after the model thought


def test_latency() -> None:
    scenario = loads_scenario('[[rule]]\n[[rule.step]]\ntext = "ok"\nlatency = 0.4\n')
    with SimServer(scenario) as sim:
        began = time.monotonic()
        assert post(sim.url, body("bash_tool.req1"))[0] == 200
        assert time.monotonic() - began >= 0.4


def test_dropped_stream() -> None:
    scenario = loads_scenario('[[rule]]\n[[rule.step]]\ntext = "a long answer"\nfault = "drop"\n')
    with SimServer(scenario) as sim, pytest.raises(http.client.IncompleteRead):
        post(sim.url, body("bash_tool.req1"))


def test_hanging_connection_ends_when_the_server_stops() -> None:
    scenario = loads_scenario('[[rule]]\n[[rule.step]]\ntext = "never"\nfault = "hang"\n')
    sim = SimServer(scenario).start()
    with pytest.raises((TimeoutError, socket.timeout)):
        post(sim.url, body("bash_tool.req1"), timeout=0.5)
    began = time.monotonic()
    sim.stop()
    assert time.monotonic() - began < 3


def test_hang_sends_nothing_and_stall_stops_after_message_start() -> None:
    scenario = loads_scenario(
        '[[rule]]\nprompt_contains = "Check"\n[[rule.step]]\nfault = "hang"\n'
        '[[rule]]\n[[rule.step]]\ntext = "never all"\nfault = "stall"\n'
    )
    sim = SimServer(scenario).start()
    host, port = sim.url.removeprefix("http://").split(":")
    with pytest.raises((TimeoutError, socket.timeout)):
        post(sim.url, body("bash_tool.req1"), timeout=0.5)  # hang: not even headers
    conn = http.client.HTTPConnection(host, int(port), timeout=0.5)
    conn.request("POST", "/v1/messages", json.dumps(body("write_then_text.req1")).encode())
    resp = conn.getresponse()  # stall: headers and message_start arrive
    assert resp.status == 200
    assert resp.fp is not None
    assert resp.fp.readline() == b"event: message_start\n"
    with pytest.raises((TimeoutError, socket.timeout)):
        resp.read()
    conn.close()
    sim.stop()
    assert [(r.status, r.fault) for r in sim.messages_requests] == [(0, "hang"), (200, "stall")]


def test_malformed_tool_input() -> None:
    scenario = loads_scenario(
        '[[rule]]\n[[rule.step]]\nfault = "bad_json"\n'
        '[[rule.step.tool]]\nname = "Write"\ninput = { file_path = "x" }\n'
    )
    with SimServer(scenario) as sim:
        status, _, data = post(sim.url, body("bash_tool.req1"))
    assert status == 200
    pieces = "".join(
        e["delta"]["partial_json"] for n, e in events(data) if n == "content_block_delta"
    )
    with pytest.raises(ValueError):
        json.loads(pieces)


def test_other_paths_do_not_fail(sim: SimServer) -> None:
    host, port = sim.url.removeprefix("http://").split(":")
    for method in ("HEAD", "GET"):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request(method, "/")
        assert conn.getresponse().status == 200
        conn.close()
    status, _, data = post(sim.url, body("bash_tool.req1"), path="/v1/messages/count_tokens")
    assert status == 200 and json.loads(data)["input_tokens"] > 0
    status, _, data = post(sim.url, {}, path="/v1/elsewhere")
    assert status == 404
    assert post(sim.url, b"not json")[0] == 400
    assert [r.method for r in sim.requests][:2] == ["HEAD", "GET"]


def test_keep_alive_connection_serves_several_requests(sim: SimServer) -> None:
    host, port = sim.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    for name in ("write_then_text.req1", "write_then_text.req2"):
        conn.request("POST", "/v1/messages?beta=true", json.dumps(body(name)).encode())
        resp = conn.getresponse()
        assert resp.status == 200
        assert events(resp.read())[-1][0] == "message_stop"
    conn.close()


def test_loopback_only() -> None:
    with pytest.raises(ValueError):
        SimServer(loads_scenario(""), host="0.0.0.0")
    with SimServer(loads_scenario("")) as sim:
        assert sim.url.startswith("http://127.0.0.1:") and sim.port > 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[rule]\n", "not valid TOML"),
        ("colour = 1\n", "unknown key 'colour'"),
        ("[[rule]]\nname = 'x'\n", "rule[0]: needs at least one [[rule.step]]"),
        ("[[rule]]\n[[rule.step]]\n", "rule[0].step[0]: a step needs text, a tool or a fault"),
        ("[[rule]]\n[[rule.step]]\nfault = 'boom'\n", "fault must be one of"),
        ("[[rule]]\nturn = 'x'\n[[rule.step]]\ntext='a'\n", "turn must be int"),
        ("[[rule]]\n[[rule.step]]\ntext='a'\nusage={output_tokens=-1}\n", "output_tokens"),
        ("[[rule]]\n[[rule.step]]\n[[rule.step.tool]]\ninput={}\n", "name is required"),
        ("[[window]]\nstart = 1\n", "window[0]: fault is required"),
    ],
)
def test_scenario_errors_are_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ")
    assert problem in message
    assert "\n" not in message


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_shipped_example_loads() -> None:
    scenario = load_scenario(packaged("sim", "example.toml"))
    assert scenario.rules


def test_a_client_gone_mid_answer_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    # claude stopped (Ctrl-C) while the sim was about to answer: the write fails.
    scenario = loads_scenario('[[rule]]\n[[rule.step]]\ntext = "ok"\nlatency = 0.3\n')
    with SimServer(scenario) as sim:
        host, port = sim.url.removeprefix("http://").split(":")
        raw = json.dumps(body("bash_tool.req1")).encode()
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(raw)}\r\n\r\n".encode()
                + raw
            )
            # An abortive close (RST): the answer's write meets a reset connection.
            client.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        # Until the handler has answered into the reset socket and ended.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            not sim.messages_requests
            or any("process_request" in t.name for t in threading.enumerate())
        ):
            time.sleep(0.02)
        assert post(sim.url, body("bash_tool.req1"))[0] == 200  # and the sim still serves
    assert "Traceback" not in capfd.readouterr().err


def answer_ids(data: bytes) -> set[str]:
    """The message and tool ids of one streamed answer."""
    ids = {e["message"]["id"] for n, e in events(data) if n == "message_start"}
    return ids | {
        e["content_block"]["id"]
        for n, e in events(data)
        if n == "content_block_start" and "id" in e["content_block"]
    }


def test_ids_are_unique_across_server_starts() -> None:
    # A resumed `claude` session keeps the last start's messages: an id the new server
    # gives again is dropped there as a repeat, and the scripted model replays old work.
    seen: list[set[str]] = []
    for _ in range(2):
        with SimServer(loads_scenario(SCENARIO)) as server:
            ids: set[str] = set()
            for name in ("bash_tool.req1", "bash_tool.req2"):
                status, _, data = post(server.url, body(name))
                assert status == 200
                ids |= answer_ids(data)
            assert len(ids) == 3  # two messages and a tool use, all different
            seen.append(ids)
    assert seen[0].isdisjoint(seen[1])
