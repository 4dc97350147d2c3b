"""Bubblewrap for the commands Autonoma runs for a model: the set-up and the tests.

Both come from a model's answer (the Staff Engineer's ``setup_command`` and
``test_command``) and Autonoma runs them itself, so with the ``sandbox`` setting on they
run under ``/usr/bin/bwrap`` directly (not claude's sandbox):

- the whole file system read-only (``--ro-bind / /``), a fresh ``/dev``, ``/proc`` and
  private ``/tmp`` (``--tmpfs``); writable: the folder the command runs in and the
  package caches (``.autonoma/cache``); the user's repository is visible read-only;
- ``.autonoma/keys`` and the user's secret dotfiles hidden (an empty tmpfs over a
  folder, ``/dev/null`` over a file);
- no network (``--unshare-net``: loopback only); a set-up reaches the package
  registries through `autonoma.workflow.registry_proxy` (a unix socket bound in,
  relayed to a loopback port by ``socat``; the proxy variables point there);
- every capability dropped (as root, bwrap keeps them by default, and CAP_SYS_ADMIN
  can remount ``/`` read-write: checked on this machine), a new session, its own PID
  namespace whose init dies with bwrap (``--die-with-parent``): killing bwrap kills
  every process the command started, daemons and ``setsid`` children included.

`confined_argv` is pure (table-tested); `Confinement.argv` does the I/O around it (the
private socket folder, the proxy thread).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from autonoma.agents import sandbox
from autonoma.config import domain_names
from autonoma.workflow.registry_proxy import REGISTRIES, RegistryProxy, upstream_of

if TYPE_CHECKING:
    from autonoma.config import Settings
    from autonoma.project import Project

BWRAP = "/usr/bin/bwrap"
"""The bubblewrap binary (Debian's ``bubblewrap`` package; ``make test`` installs it)."""

Network = Literal["none", "registries"]
"""What a confined command may reach: nothing, or the package registries via the proxy."""

PROXY_PORT = 3128
"""The loopback port inside the sandbox where ``socat`` relays to the registry proxy."""

PROXY_VARIABLES: tuple[str, ...] = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "npm_config_proxy",
    "npm_config_https_proxy",
)
"""Set inside a set-up's sandbox to the relayed proxy (pip, npm, curl read them)."""

SECRET_DOTFILES: tuple[str, ...] = (
    *sandbox.SECRET_DOTFILES,
    f".claude/{sandbox.CLAUDE_CREDENTIALS}",
)
"""The user's secrets under a home folder that a confined command must not read: the
agents' list (one list, in `autonoma.agents.sandbox`) and claude's login in its default place."""

# Where the proxy socket's folder appears inside the sandbox (under its private /tmp).
_SOCKET_DIR = "/tmp/.autonoma-proxy"
_SOCKET_NAME = "proxy.sock"

# Runs inside a set-up's sandbox: relay the loopback port to the proxy's unix socket,
# wait until the relay listens (a probe connection the proxy ignores), then become the
# command. When the command ends, bwrap's init ends and takes socat with it.
_RELAY = (
    '"$4" TCP-LISTEN:"$2",bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:"$3" 2>/dev/null &\n'
    "i=0\n"
    'while ! "$4" -u OPEN:/dev/null TCP:127.0.0.1:"$2" 2>/dev/null; do\n'
    '  i=$((i + 1)); [ "$i" -ge 300 ] && break; sleep 0.01\n'
    "done\n"
    'exec /bin/sh -c "$1"\n'
)


@dataclass(frozen=True)
class Hidden:
    """A path a confined command must not read: a folder (``folder``) or a file."""

    path: Path
    folder: bool


def _absolute(path: Path, what: str) -> str:
    if not path.is_absolute() or ".." in path.parts:
        raise ValueError(f"a confined command needs an absolute {what} without '..': {path}")
    return str(path)


def confined_argv(
    command: str,
    folder: Path,
    writable: Sequence[Path],
    hidden: Sequence[Hidden],
    network: Network,
    *,
    readable: Sequence[Path] = (),
    proxy_dir: Path | None = None,
    socat: str = "/usr/bin/socat",
    bwrap: str = BWRAP,
) -> list[str]:
    """The bwrap argv that runs ``command`` with /bin/sh in ``folder``, confined. Pure.

    Writable: ``folder`` and ``writable``; the rest read-only, with a private ``/tmp``;
    ``readable`` are shown again read-only over that fresh ``/tmp`` (the user's
    repository and home when they live under /tmp, as in tests); ``hidden`` come last,
    so they win over every bind. ``network`` "registries" needs ``proxy_dir`` (the host
    folder holding the proxy's socket). Raises ValueError for a relative path, one with
    ``..``, or "registries" without ``proxy_dir``.
    """
    argv = [
        bwrap,
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
    ]
    for path in readable:
        argv += ["--ro-bind", _absolute(path, "readable folder"), str(path)]
    for path in (folder, *writable):
        argv += ["--bind", _absolute(path, "writable folder"), str(path)]
    if network == "registries":
        if proxy_dir is None:
            raise ValueError("a set-up with the registries needs the proxy's folder")
        argv += ["--bind", _absolute(proxy_dir, "proxy folder"), _SOCKET_DIR]
    for secret in hidden:
        where = _absolute(secret.path, "hidden path")
        argv += ["--tmpfs", where] if secret.folder else ["--ro-bind", "/dev/null", where]
    argv += ["--setenv", "TMPDIR", "/tmp", "--unsetenv", "ALL_PROXY", "--unsetenv", "all_proxy"]
    argv += ["--chdir", _absolute(folder, "folder")]
    if network == "registries":
        url = f"http://127.0.0.1:{PROXY_PORT}"
        for name in PROXY_VARIABLES:
            argv += ["--setenv", name, url]
        # The registries are reached through the proxy only; loopback stays direct.
        for name in ("NO_PROXY", "no_proxy"):
            argv += ["--setenv", name, "localhost,127.0.0.1"]
        socket_path = f"{_SOCKET_DIR}/{_SOCKET_NAME}"
        return [*argv, "/bin/sh", "-c", _RELAY, "sh", command, str(PROXY_PORT), socket_path, socat]
    return [*argv, "/bin/sh", "-c", command]


def secrets(homes: Sequence[Path], keys: Path) -> list[Hidden]:
    """The secret paths that exist (``keys`` and `SECRET_DOTFILES` under each home).

    Symbolic links are followed (bwrap mounts over the target). Reads the file system;
    never raises.
    """
    found: dict[Path, Hidden] = {}
    for path in [keys, *(home / name for home in homes for name in SECRET_DOTFILES)]:
        with contextlib.suppress(OSError):
            if path.exists():
                real = path.resolve()
                found.setdefault(real, Hidden(real, real.is_dir()))
    return list(found.values())


@dataclass(frozen=True)
class Confinement:
    """Where a project's confined commands may write and what they must not see.

    ``autonoma_dir`` is the project's ``.autonoma`` (its ``cache`` is writable, its
    ``keys`` hidden); ``repo`` the user's repository (read-only); ``extra_domains`` what
    a set-up may reach beside `REGISTRIES` (``host`` on 443, or ``host:port``).
    """

    autonoma_dir: Path
    repo: Path
    extra_domains: tuple[str, ...] = ()
    bwrap: str = BWRAP

    def unavailable(self, network: Network) -> str | None:
        """Why commands cannot be confined on this machine, in one line; None if they can."""
        if not os.access(self.bwrap, os.X_OK):
            return (
                f"cannot confine the command: bubblewrap ({self.bwrap}) is not installed "
                "(apt-get install bubblewrap), or set sandbox = false"
            )
        if network == "registries" and shutil.which("socat") is None:
            return (
                "cannot confine the set-up: socat is not installed "
                "(apt-get install socat), or set sandbox = false"
            )
        return None

    @contextlib.contextmanager
    def argv(
        self, command: str, folder: Path, env: Mapping[str, str], network: Network
    ) -> Iterator[tuple[list[str], list[str]]]:
        """The argv running ``command`` confined in ``folder``, and the ``host:port`` names
        the proxy refuses (filled while it runs); for "registries" the proxy runs until the
        block ends (a thread; its socket in a private folder, removed after).

        Creates the cache folder. Raises OSError if the proxy's socket cannot be bound,
        ValueError for a relative ``folder``.
        """
        cache = self.autonoma_dir.absolute() / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        homes = [Path.home()]
        if env.get("HOME"):
            homes.append(Path(env["HOME"]))
        hidden = secrets(homes, self.autonoma_dir.absolute() / "keys")
        readable = [
            path
            for path in (self.repo.absolute(), *homes)
            if path.is_dir() and path.is_absolute() and ".." not in path.parts
        ]
        folder = folder.absolute()
        if network == "none":
            argv = confined_argv(
                command, folder, [cache], hidden, network, readable=readable, bwrap=self.bwrap
            )
            yield argv, []
            return
        socat = shutil.which("socat") or "/usr/bin/socat"
        with tempfile.TemporaryDirectory(prefix="autonoma-proxy-") as place:
            proxy_dir = Path(place)
            allow = (*REGISTRIES, *self.extra_domains)
            with RegistryProxy(proxy_dir / _SOCKET_NAME, allow, upstream_of(env)) as proxy:
                argv = confined_argv(
                    command,
                    folder,
                    [cache],
                    hidden,
                    network,
                    readable=readable,
                    proxy_dir=proxy_dir,
                    socat=socat,
                    bwrap=self.bwrap,
                )
                yield argv, proxy.denied


def confinement_for(settings: Settings, project: Project) -> Confinement | None:
    """The project's `Confinement` when the ``sandbox`` setting is on; None: run unconfined."""
    if not settings.sandbox:
        return None
    # The hosts the user named for agents are what their set-ups need too (the proxy
    # allows a name's subdomains: "*.x" is "x").
    return Confinement(
        autonoma_dir=project.dir,
        repo=project.root,
        extra_domains=tuple(d.removeprefix("*.") for d in domain_names(settings.agent_domains)),
    )


__all__ = [
    "BWRAP",
    "PROXY_PORT",
    "SECRET_DOTFILES",
    "Confinement",
    "Hidden",
    "Network",
    "confined_argv",
    "confinement_for",
    "secrets",
]
