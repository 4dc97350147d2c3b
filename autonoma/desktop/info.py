"""``.autonoma/gateway.json``: where a project's gateway listens, and its token.

Written atomically (a temporary file made with mode 0600, then renamed over), so a
reader sees a whole file or the previous one; removed by the gateway that wrote it when
it ends cleanly (only if it still names that gateway: a newer one's file stays).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from pathlib import Path

import msgspec

from autonoma import privatefile
from autonoma.desktop.frames import PROTOCOL

NAME = "gateway.json"
"""The file's name in the project's ``.autonoma/`` folder."""

TOKEN_BYTES = 32
"""Random bytes of a token (43 URL-safe characters)."""


class GatewayInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What ``gateway.json`` holds."""

    protocol: int = PROTOCOL
    url: str
    http: str
    token: str
    pid: int

    @property
    def port(self) -> int:
        """The port both URLs name."""
        return int(self.http.rstrip("/").rsplit(":", 1)[1])

    def browser_url(self) -> str:
        """The web view's address, with the token in its fragment (never sent to a server)."""
        return f"{self.http}#token={self.token}"


def new_token() -> str:
    """A fresh random token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def make(port: int, token: str) -> GatewayInfo:
    """The info of a gateway on 127.0.0.1:``port`` in this process."""
    return GatewayInfo(
        url=f"ws://127.0.0.1:{port}/ws",
        http=f"http://127.0.0.1:{port}/",
        token=token,
        pid=os.getpid(),
    )


def path_in(project_dir: Path) -> Path:
    """The file's path in ``project_dir`` (a project's ``.autonoma/``)."""
    return project_dir / NAME


def write(path: Path, info: GatewayInfo) -> None:
    """Write ``info`` to ``path`` atomically, mode 0600. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    privatefile.write_new(temporary, msgspec.json.encode(info) + b"\n")
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read(path: Path) -> GatewayInfo | None:
    """The info in ``path``; None when there is none or it cannot be read as one."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        return msgspec.json.decode(data, type=GatewayInfo)
    except (msgspec.DecodeError, ValueError):
        return None


def remove(path: Path, token: str) -> None:
    """Remove ``path`` if it still names the gateway of ``token``."""
    info = read(path)
    if info is not None and info.token == token:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live(path: Path, timeout: float = 1.0) -> GatewayInfo | None:
    """The gateway ``path`` names if it is still there: its process alive, its port
    answering. None otherwise (no file, a stale one). Blocks at most ``timeout``."""
    info = read(path)
    if info is None or not _pid_alive(info.pid):
        return None
    try:
        port = info.port
    except (IndexError, ValueError):
        return None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return info
    except OSError:
        return None
