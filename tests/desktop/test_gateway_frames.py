"""The gateway's pure decisions, as tables: which inbound frames are taken, what error
each refused one gets; where a browser may be opened."""

from __future__ import annotations

import pytest

from autonoma.desktop.frames import (
    CommandRequest,
    FrameError,
    ListRequest,
    SnapshotRequest,
    Subscribe,
    decode_request,
)
from autonoma.desktop.launch import can_show_pages

TAKEN = [
    ('{"type":"subscribe"}', Subscribe(from_seq=0)),
    ('{"type":"subscribe","from_seq":12,"id":"a"}', Subscribe(id="a", from_seq=12)),
    ('{"type":"snapshot","at_seq":null,"run_id":null,"id":3}', SnapshotRequest(id=3)),
    ('{"type":"snapshot","at_seq":40,"run_id":"r1"}', SnapshotRequest(at_seq=40, run_id="r1")),
    (
        '{"type":"command","command":"retry","task_id":"t2","note":"n"}',
        CommandRequest(command="retry", task_id="t2", note="n"),
    ),
    (
        '{"type":"command","command":"start","requirements":"docs/r.md"}',
        CommandRequest(command="start", requirements="docs/r.md"),
    ),
    ('{"type":"list","path":"docs","id":null}', ListRequest(path="docs")),
]


@pytest.mark.parametrize(("text", "request_"), TAKEN)
def test_well_formed_frames_are_taken(text: str, request_: object) -> None:
    assert decode_request(text) == request_


REFUSED = [
    ("", None, "malformed frame: not JSON"),
    ("null", None, "malformed frame: not a JSON object"),
    ('"subscribe"', None, "malformed frame: not a JSON object"),
    ('{"type":1}', None, 'malformed frame: no "type" string'),
    ('{"type":"hello","id":5}', 5, "unknown frame type 'hello'"),
    ('{"type":"subscribe","id":true}', None, "malformed subscribe frame: "),
    ('{"type":"subscribe","id":"' + "x" * 129 + '"}', None, "malformed subscribe frame: "),
    ('{"type":"subscribe","from_seq":1.5}', None, "malformed subscribe frame: "),
    ('{"type":"subscribe","from_seq":9223372036854775808}', None, "malformed subscribe frame"),
    ('{"type":"snapshot","run_id":"' + "r" * 201 + '"}', None, "malformed snapshot frame: "),
    ('{"type":"command","id":1}', 1, "malformed command frame: "),
    ('{"type":"command","command":"STOP","id":2}', 2, "unknown command 'STOP'"),
    ('{"type":"command","command":"stop","task_id":7}', None, "malformed command frame: "),
    ('{"type":"list","path":"' + "p" * 1025 + '"}', None, "malformed list frame: "),
    ('{"type":"list","path":"a","extra":1}', None, "malformed list frame: "),
]


@pytest.mark.parametrize(("text", "request_id", "error"), REFUSED)
def test_bad_frames_are_refused_with_one_line(text: str, request_id: object, error: str) -> None:
    with pytest.raises(FrameError) as refused:
        decode_request(text)
    assert str(refused.value).startswith(error)
    assert "\n" not in str(refused.value)
    assert refused.value.id == request_id


def test_a_frame_over_the_limit_is_refused_unread() -> None:
    with pytest.raises(FrameError, match="over 65536"):
        decode_request('{"type":"list","path":"' + "p" * 70_000 + '"}')


@pytest.mark.parametrize(
    ("environ", "platform", "shown"),
    [
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"BROWSER": "firefox"}, "linux", True),
        ({}, "darwin", True),
        ({"DISPLAY": ""}, "linux", False),
    ],
)
def test_a_browser_is_opened_only_where_it_can_show_a_page(
    environ: dict[str, str], platform: str, shown: bool
) -> None:
    assert can_show_pages(environ, platform) is shown
