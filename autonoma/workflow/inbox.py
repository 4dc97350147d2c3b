"""Commands from other processes to the active run, as signed files in ``.autonoma/inbox/``.

The journal has one writer, the run; a human command (``autonoma retry``, ``resolve``,
``pause``, ``resume``, ``stop``) given while a run is active cannot append to it,
so it posts a file here and the run takes it, journals the message itself, then removes
the file. A file is ``<time_ns>-<pid>.json``; it appears whole or not at all (written
beside, fsynced, then renamed), so a taker never reads half of one.

Agents run as the same user, and an agent whose sandbox is off can write here: so every
file is checked before anything in it is believed. It holds one line of JSON (the run it
is for, a random nonce, when it was posted, the message) and a line
``hmac-sha256:<hex>``, the HMAC of that JSON under the project's secret key
(`autonoma.project.secret_key`, in ``.autonoma/keys/``, which the agents' sandbox cannot
read). `Taker.take` acts on none that is not a regular file of the run's user (a symlink
or a fifo is refused without following or blocking), is writable by group or others, is
over `MAX_BYTES`, is unsigned or badly signed, was posted for another run, or was taken
already (the nonces taken are kept in ``keys/``, so a restarted run refuses them too);
nor on any when more than `MAX_PENDING` wait at once. Each refused file is renamed
``<name>.bad`` and reported as a `HumanCommandRejected` for the run to journal.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import pwd
import secrets
import socket
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from autonoma import privatefile
from autonoma.protocol import (
    AnyMessage,
    HumanCommandRejected,
    PauseRequested,
    ResolveRequested,
    ResumeRequested,
    RetryRequested,
    StopRequested,
)

SUFFIX = ".json"
"""Every pending command's file name ends so."""

BAD_SUFFIX = ".bad"
"""Added to a file that is refused: kept for a human to look at, never taken again."""

Command = RetryRequested | ResolveRequested | PauseRequested | ResumeRequested | StopRequested

COMMANDS: tuple[type[Command], ...] = (
    RetryRequested,
    ResolveRequested,
    PauseRequested,
    ResumeRequested,
    StopRequested,
)
"""The messages a human may send to a run through the inbox."""

MAX_BYTES = 64 * 1024
"""A command file larger than this is refused unread."""

MAX_PENDING = 32
"""More commands than this waiting at once: none of them is believed (a flood)."""

_SIGNATURE = b"\nhmac-sha256:"
# Put before the signed JSON: the key signs nothing else by accident.
_DOMAIN = b"autonoma inbox command v1\n"


class InboxError(ValueError):
    """A command cannot be posted; the message is one line."""


class CommandTooLarge(InboxError):
    """The command would be over `MAX_BYTES` (a very long note): it is not posted."""


class Signed(msgspec.Struct, frozen=True, kw_only=True):
    """What a command file says, under its signature."""

    run_id: str
    nonce: str
    posted: float
    message: AnyMessage


_signed_decoder = msgspec.json.Decoder(Signed)

_last_ns = 0
_last_lock = threading.Lock()


def _next_ns() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process."""
    global _last_ns
    with _last_lock:
        # Two posts in the same clock tick must not get the same name.
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


def origin() -> str:
    """Who and where this process is, for the journal: user, uid, pid, tty, host.

    E.g. ``user alice (uid 1000), pid 4242, tty /dev/pts/3, host box``. Never raises.
    """
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = "?"
    tty = "none"
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                tty = os.ttyname(fd)
                break
    text = f"user {user} (uid {uid}), pid {os.getpid()}, tty {tty}, host {socket.gethostname()}"
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    if ssh:
        text += f", ssh from {ssh[0]}"
    return text


def sign(key: bytes, payload: bytes) -> bytes:
    """The file's body: ``payload`` and its signature line."""
    mac = hmac.new(key, _DOMAIN + payload, hashlib.sha256).hexdigest()
    return payload + _SIGNATURE + mac.encode() + b"\n"


def encode(key: bytes, run_id: str, message: Command) -> bytes:
    """A command file's body for ``run_id``, with a fresh nonce, signed with ``key``."""
    signed = Signed(run_id=run_id, nonce=secrets.token_hex(16), posted=time.time(), message=message)
    return sign(key, msgspec.json.encode(signed))


def post(inbox: Path, key: bytes, run_id: str, message: Command) -> Path:
    """Leave ``message`` for the active run ``run_id``, signed; returns the file it is in.

    Raises `CommandTooLarge` if it would be over `MAX_BYTES`, OSError if it cannot be
    written. Blocks on the disk (an fsync).
    """
    body = encode(key, run_id, message)
    if len(body) > MAX_BYTES:
        raise CommandTooLarge(
            f"the command is {len(body)} bytes, over the inbox's {MAX_BYTES}: shorten the note"
        )
    inbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(inbox)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        # A link planted in its place would carry the command where someone else reads it.
        raise InboxError(f"{inbox}: not a folder of this user's: remove it")
    name = f"{_next_ns()}-{os.getpid()}{SUFFIX}"
    final = inbox / name
    # A leading dot and another suffix: `take` never sees a file still being written.
    temporary = inbox / f".{name}.tmp"
    privatefile.write_new(temporary, body)
    try:
        os.rename(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(inbox)
    return final


@dataclass(frozen=True, slots=True)
class Taken:
    """One file taken: a command to act on, or a `HumanCommandRejected` to journal."""

    path: Path
    message: AnyMessage
    nonce: str = ""


class _Refused(Exception):
    """Why a file is not believed (the text is the journaled reason)."""


class Taker:
    """The run's end of the inbox: takes the commands signed for ``run_id`` with ``key``.

    ``record`` keeps the nonces of the commands taken (``<run> <nonce>`` lines, this
    run's only), so a command replayed after a restart is refused too. Used from one
    thread (the orchestrator's mailbox); `take` and `done` block on the disk only.
    """

    def __init__(self, inbox: Path, key: bytes, run_id: str, record: Path) -> None:
        self.inbox = inbox
        self._key = key
        self.run_id = run_id
        self._record = record
        self._taken: set[str] = _load_record(record, run_id)
        self._uid = os.geteuid()
        self._broken = ""
        """Why the inbox could not be read, once reported (not again at every tick)."""

    def take(self) -> list[Taken]:
        """The pending commands, oldest first, and a rejection for each file refused."""
        pending: list[str] = []
        try:
            info = os.lstat(self.inbox)
            if not stat.S_ISDIR(info.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, f"{_kind(info.st_mode)}, not a folder")
            with os.scandir(self.inbox) as entries:
                for entry in entries:
                    if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                        pending.append(entry.name)
                        if len(pending) > MAX_PENDING:
                            break
        except FileNotFoundError:
            return []
        except OSError as err:
            why = f"the inbox cannot be read: {err.strerror}"
            if why == self._broken:
                return []
            self._broken = why
            return [Taken(self.inbox, HumanCommandRejected(path=_shown(self.inbox), reason=why))]
        self._broken = ""
        if len(pending) > MAX_PENDING:
            return self._flood(pending)
        taken: list[Taken] = []
        for name in sorted(pending, key=_order):
            path = self.inbox / name
            try:
                signed = self._check(path)
            except FileNotFoundError:
                continue  # done() by another taker meanwhile
            except _Refused as why:
                rejected = self._set_aside(path, str(why))
                if rejected is not None:
                    taken.append(rejected)
                continue
            self._taken.add(signed.nonce)
            taken.append(Taken(path, signed.message, signed.nonce))
        return taken

    def done(self, item: Taken) -> None:
        """Forget a file once the run has journaled what `take` made of it."""
        if item.nonce:
            _append_record(self._record, self.run_id, item.nonce)
            item.path.unlink(missing_ok=True)

    def _check(self, path: Path) -> Signed:
        """The signed command in ``path``; raises `_Refused` with why it is not believed."""
        try:
            # Never follows a link, never waits for a fifo's writer, never takes a tty.
            fd = os.open(
                path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            )
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise _Refused("a symbolic link, not a file") from None
            if err.errno == errno.ENOENT:
                raise FileNotFoundError(path) from None
            raise _Refused(f"cannot be opened: {err.strerror}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _Refused(f"not a regular file ({_kind(info.st_mode)})")
            if info.st_uid != self._uid:
                raise _Refused(f"owned by uid {info.st_uid}, not the run's uid {self._uid}")
            if info.st_mode & 0o022:
                mode = stat.S_IMODE(info.st_mode)
                raise _Refused(f"writable by group or others (mode {mode:04o})")
            if info.st_size > MAX_BYTES:
                raise _Refused(f"{info.st_size} bytes, over the limit of {MAX_BYTES}")
            body = _read_at_most(fd, MAX_BYTES + 1)
        finally:
            os.close(fd)
        if len(body) > MAX_BYTES:  # it grew after the fstat
            raise _Refused(f"over the limit of {MAX_BYTES} bytes")
        payload, found, _ = body.rpartition(_SIGNATURE)
        if not found:
            raise _Refused("unsigned: no hmac-sha256 line")
        if not hmac.compare_digest(sign(self._key, payload), body):
            raise _Refused("bad signature: not signed with this project's key")
        try:
            signed = _signed_decoder.decode(payload)
        except msgspec.DecodeError as err:  # signed, yet not ours: another version's
            raise _Refused(f"signed but does not decode: {err}") from None
        if not isinstance(signed.message, COMMANDS):
            raise _Refused(f"a {type(signed.message).__name__} is not a command a human sends")
        if signed.run_id != self.run_id:
            raise _Refused(f"posted for run {signed.run_id}, not the active run {self.run_id}")
        if signed.nonce in self._taken:
            raise _Refused("replayed: this command was taken already")
        return signed

    def _set_aside(self, path: Path, reason: str) -> Taken | None:
        """Rename a refused file ``<name>.bad``; its rejection (None: it is gone)."""
        bad = path.with_name(path.name + BAD_SUFFIX)
        try:
            os.rename(path, bad)
        except FileNotFoundError:
            return None
        except OSError:
            # Not renamed: removed, so it is not refused again at every tick.
            with contextlib.suppress(OSError):
                os.unlink(path)
            bad = path
        return Taken(bad, HumanCommandRejected(path=_shown(bad), reason=reason))

    def _flood(self, names: list[str]) -> list[Taken]:
        """More than `MAX_PENDING` at once: all those seen are set aside, one rejection."""
        for name in names:
            path = self.inbox / name
            with contextlib.suppress(FileNotFoundError):
                try:
                    os.rename(path, path.with_name(name + BAD_SUFFIX))
                except OSError:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        reason = (
            f"more than {MAX_PENDING} commands pending at once: none believed, "
            f"{len(names)} set aside as {BAD_SUFFIX}"
        )
        return [Taken(self.inbox, HumanCommandRejected(path=_shown(self.inbox), reason=reason))]


def _kind(mode: int) -> str:
    """What a file that is not a regular one is."""
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a file"),
        (stat.S_ISFIFO, "a fifo"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return f"mode {mode:o}"


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``fd``, never more in memory."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 65536))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _shown(path: Path) -> str:
    """A path as journaled: any name (bytes that are not UTF-8 included) as valid text."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _load_record(record: Path, run_id: str) -> set[str]:
    """The nonces this run took, from ``record``; other runs' lines are dropped from it."""
    try:
        lines = record.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return set()
    mine = [line for line in lines if line.startswith(f"{run_id} ")]
    if len(mine) != len(lines):
        # Commands for another run are refused anyway: their nonces need not be kept.
        temporary = record.with_name(f".{record.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, "".join(f"{line}\n" for line in mine).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, record)
    return {line.split(" ", 1)[1] for line in mine}


def _append_record(record: Path, run_id: str, nonce: str) -> None:
    """Note that ``nonce`` was taken, durably, before its file goes."""
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{run_id} {nonce}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _order(name: str) -> tuple[int, int, str]:
    """Posting order: by time, then pid; names of another form go last, by name."""
    stem = name[: -len(SUFFIX)]
    ns, _, pid = stem.partition("-")
    if ns.isdigit() and pid.isdigit():
        return int(ns), int(pid), name
    return 1 << 63, 0, name


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut, not only a crash."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "BAD_SUFFIX",
    "COMMANDS",
    "MAX_BYTES",
    "MAX_PENDING",
    "SUFFIX",
    "Command",
    "CommandTooLarge",
    "InboxError",
    "Signed",
    "Taken",
    "Taker",
    "encode",
    "origin",
    "post",
    "sign",
]
