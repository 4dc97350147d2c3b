"""The gateway's frames (protocol version 1, ``docs/gateway.md``): msgspec Structs, JSON text.

Every frame is a JSON object whose ``type`` names it (msgspec tagged unions on
``"type"``). What a client sends is decoded by `decode_request` into one of `Request`'s
types, every field type- and size-checked: a frame that does not fit is refused with a
one-line reason (`FrameError`) and the connection goes on. What the gateway sends is
encoded by `encode`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from autonoma.journal.timeline import TASK_EVENTS
from autonoma.words import Said

PROTOCOL = 1
"""The protocol version, in ``hello`` and ``gateway.json``."""

MAX_FRAME = 64 * 1024
"""An inbound frame larger than this (characters) closes the connection with 1009."""

MAX_ID = 128
"""A request's ``id``: a string of at most this many characters, or an integer."""

MAX_NOTE = 8 * 1024
"""A retry's or resolve's note, at most (the inbox refuses a file over 64 KiB)."""

MAX_PATH = 1024
"""A path inside the project (``list``, ``start``'s requirements), at most."""

MAX_NAME = 200
"""A task or run id, at most."""

SEQ_MAX = 2**63 - 1
"""SQLite's largest integer: a seq past it is no seq."""

Seq = Annotated[int, msgspec.Meta(ge=0, le=SEQ_MAX)]
RequestId = (
    Annotated[str, msgspec.Meta(max_length=MAX_ID)]
    | Annotated[int, msgspec.Meta(ge=-SEQ_MAX, le=SEQ_MAX)]
    | None
)
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
RelPath = Annotated[str, msgspec.Meta(max_length=MAX_PATH)]
Note = Annotated[str, msgspec.Meta(max_length=MAX_NOTE)]

CommandName = Literal["pause", "resume", "stop", "retry", "resolve", "start"]
COMMANDS: tuple[str, ...] = ("pause", "resume", "stop", "retry", "resolve", "start")


# --- client -> gateway -------------------------------------------------------------------


class _In(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A request: its ``id`` (any string or integer the client likes) is echoed."""

    id: RequestId = None


class Subscribe(_In, tag="subscribe", frozen=True, kw_only=True):
    """Every journaled row with seq > ``from_seq`` (all runs), then live."""

    from_seq: Seq = 0


class SnapshotRequest(_In, tag="snapshot", frozen=True, kw_only=True):
    """The folded state of ``run_id`` (None: the latest run) at ``at_seq`` (None: its head)."""

    at_seq: Seq | None = None
    run_id: Name | None = None


class CommandRequest(_In, tag="command", frozen=True, kw_only=True):
    """A human's command to the run (``task_id`` for retry and resolve, ``requirements``
    for start)."""

    command: str
    task_id: Name | None = None
    note: Note = ""
    requirements: RelPath | None = None


class ListRequest(_In, tag="list", frozen=True, kw_only=True):
    """The entries of a folder of the project ('' is its root)."""

    path: RelPath = ""


Request = Subscribe | SnapshotRequest | CommandRequest | ListRequest
REQUEST_TYPES: tuple[str, ...] = ("subscribe", "snapshot", "command", "list")


class FrameError(ValueError):
    """A frame the gateway cannot act on; ``str`` is the one line sent back, ``id`` the
    request's id when it could be read."""

    def __init__(self, text: str, id: str | int | None = None) -> None:
        super().__init__(text)
        self.id = id


class _Peek(msgspec.Struct, frozen=True):
    """Only the ``type`` and ``id`` of a frame: to say which of them is wrong."""

    type: Any = None
    id: Any = None


_request_decoder = msgspec.json.Decoder(Request)
_peek_decoder = msgspec.json.Decoder(_Peek)


def _id_of(peek: _Peek) -> str | int | None:
    value = peek.id
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) <= MAX_ID:
        return value
    if isinstance(value, int) and abs(value) <= SEQ_MAX:
        return value
    return None


def decode_request(text: str | bytes) -> Request:
    """The request in one frame; raises `FrameError` (one line) if it is not one.

    Pure. Checks the JSON, the ``type``, every field's type and size, and the command's
    name, in that order.
    """
    if isinstance(text, bytes):
        raise FrameError("binary frames are not part of the protocol: send JSON text")
    if len(text) > MAX_FRAME:
        raise FrameError(f"frame of {len(text)} characters, over {MAX_FRAME}")
    try:
        peek = _peek_decoder.decode(text)
    except msgspec.DecodeError:
        try:
            msgspec.json.decode(text)
        except msgspec.DecodeError as err:
            raise FrameError(f"malformed frame: not JSON ({err})") from None
        raise FrameError("malformed frame: not a JSON object") from None
    request_id = _id_of(peek)
    if peek.type not in REQUEST_TYPES:
        if not isinstance(peek.type, str):
            raise FrameError('malformed frame: no "type" string', request_id)
        shown = peek.type if len(peek.type) <= 40 else peek.type[:39] + "…"
        raise FrameError(
            f"unknown frame type {shown!r} (known: {', '.join(REQUEST_TYPES)})", request_id
        )
    try:
        request = _request_decoder.decode(text)
    except msgspec.ValidationError as err:
        raise FrameError(f"malformed {peek.type} frame: {err}", request_id) from None
    if isinstance(request, CommandRequest) and request.command not in COMMANDS:
        shown = request.command if len(request.command) <= 40 else request.command[:39] + "…"
        raise FrameError(f"unknown command {shown!r} (known: {', '.join(COMMANDS)})", request.id)
    return request


# --- gateway -> client -------------------------------------------------------------------


class _Out(msgspec.Struct, tag_field="type", frozen=True, kw_only=True):
    """A frame the gateway sends."""


class Hello(_Out, tag="hello", frozen=True, kw_only=True):
    """The first frame of every connection."""

    protocol: int = PROTOCOL
    project: str
    run_id: str | None
    head: int
    task_events: list[str] = msgspec.field(default_factory=lambda: sorted(TASK_EVENTS))
    """The message kinds that move the board (`TASK_EVENTS`): where the web view's "one
    task event back / forward" stops. Sent, so the clients keep no copy of the list."""


class MessageFrame(_Out, tag="message", frozen=True, kw_only=True):
    """One journaled row: its envelope, the message as the journal holds it, its words."""

    seq: int
    ts: float
    run_id: str
    sender: str
    recipient: str
    kind: str
    message: msgspec.Raw
    said: Said | None


class Live(_Out, tag="live", frozen=True, kw_only=True):
    """The catch-up of a ``subscribe`` is over: what follows is live, from ``seq`` on."""

    seq: int


class SnapshotView(msgspec.Struct, frozen=True, kw_only=True):
    """What the dashboard's panels show, from `autonoma.views`."""

    tree: dict[str, Any]
    board: list[dict[str, Any]]
    run: list[tuple[str, str]]
    escalations: list[tuple[str, str]]
    costs: list[str]


class Snapshot(_Out, tag="snapshot", frozen=True, kw_only=True):
    """The state of ``run_id`` once ``seq`` was committed, and its views."""

    id: str | int | None = None
    run_id: str | None
    seq: int
    head: int
    seqs_total: int
    state: dict[str, Any]
    view: SnapshotView


class Ack(_Out, tag="ack", frozen=True, kw_only=True):
    """A command was taken: ``text`` is the line the CLI prints for it."""

    id: str | int | None = None
    text: str


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a folder."""

    name: str
    dir: bool
    size: int


class Listing(_Out, tag="listing", frozen=True, kw_only=True):
    """The entries of a folder of the project, folders first, then by name."""

    id: str | int | None = None
    path: str
    entries: list[Entry]
    truncated: bool = False


class Error(_Out, tag="error", frozen=True, kw_only=True):
    """A request could not be answered; the connection stays open."""

    id: str | int | None = None
    error: str


class Dropped(_Out, tag="dropped", frozen=True, kw_only=True):
    """The client fell behind: the gateway closes (code 4000); resubscribe from ``last_seq``."""

    reason: str
    last_seq: int


Outbound = Hello | MessageFrame | Live | Snapshot | Ack | Listing | Error | Dropped

_encoder = msgspec.json.Encoder()


def encode(frame: Outbound) -> str:
    """The frame as JSON text (what is sent in one websocket text message)."""
    return _encoder.encode(frame).decode()


def message_frame(row: tuple[int, float, str, str, str, str, str], said: Said | None) -> str:
    """The ``message`` frame of a journal row (its body is sent as the journal holds it)."""
    seq, ts, run_id, sender, recipient, kind, body = row
    return encode(
        MessageFrame(
            seq=seq,
            ts=ts,
            run_id=run_id,
            sender=sender,
            recipient=recipient,
            kind=kind,
            message=msgspec.Raw(body.encode()),
            said=said,
        )
    )


CLOSE_DROPPED = 4000
"""Close code after a ``dropped`` frame."""

CLOSE_GOING_AWAY = 1001
"""Close code when the gateway stops."""

__all__ = [
    "CLOSE_DROPPED",
    "CLOSE_GOING_AWAY",
    "COMMANDS",
    "MAX_FRAME",
    "PROTOCOL",
    "Ack",
    "CommandRequest",
    "Dropped",
    "Entry",
    "Error",
    "FrameError",
    "Hello",
    "ListRequest",
    "Listing",
    "Live",
    "MessageFrame",
    "Outbound",
    "Request",
    "Snapshot",
    "SnapshotRequest",
    "SnapshotView",
    "Subscribe",
    "decode_request",
    "encode",
    "message_frame",
]
