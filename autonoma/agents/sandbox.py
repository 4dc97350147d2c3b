"""Claude Code's own sandbox for one agent turn: the ``--settings`` JSON and the file-tool rules.

Pure functions, no I/O. What they encode was checked with claude 2.1.331 on Linux
(bubblewrap + socat) in docs/sandbox.md:

- ``failIfUnavailable`` is required: without it a missing bubblewrap only prints a
  warning and Bash runs unconfined even with ``allowUnsandboxedCommands`` false.
- ``denyWrite`` always beats ``allowWrite``, so confinement is "allow only", never
  "allow a folder, deny inside it".
- Bash in a ``git worktree`` gets write access to the whole common ``.git`` from
  claude itself: the folder given here must be a git repository of its own (a
  per-task clone), not a worktree of the user's repository.
- Permission rules for the file tools take absolute paths with a leading ``//``;
  ``Write(/abs/**)`` is relative to the settings file and matches nothing here.

Used by `Turn` for every turn unless the ``sandbox`` setting is off (the loud
opt-out); the file-tool rules apply either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

# Where pip and npm fetch from when a turn may install packages.
REGISTRY_DOMAINS: tuple[str, ...] = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")

# The file tools a turn may use on its own folder, each scoped by a permission rule.
FILE_TOOLS: tuple[str, ...] = ("Read", "Edit", "Write")

# What claude's sandbox needs on Linux (Seatbelt is built into macOS).
LINUX_NEEDS: tuple[tuple[str, str], ...] = (("bwrap", "bubblewrap"), ("socat", "socat"))

# The user's secret files and folders, relative to the home folder: no agent's Bash
# reads them (sandbox.filesystem.denyRead), whatever folder it works in.
SECRET_DOTFILES: tuple[str, ...] = (
    ".ssh",
    ".aws",
    ".netrc",
    ".git-credentials",
    ".config/gh",
    ".docker",
    ".npmrc",
    ".pypirc",
)
CLAUDE_CREDENTIALS = ".credentials.json"
"""claude's login, in its config folder (``CLAUDE_CONFIG_DIR``, else ``~/.claude``)."""

# Unix socket paths hold at most 107 bytes; claude puts its sandbox's bridge sockets in
# TMPDIR (``claude-http-<16 hex>.sock``, ``cc-socks/<pid>.sock``): a longer TMPDIR and
# every sandboxed Bash call fails ("Failed to create bridge sockets").
SOCKET_ROOM = 48
MAX_SOCKET_PATH = 107

NETWORK_CHOICES: tuple[str, ...] = ("registries", "none")
"""The ``agent_network`` setting: developers' Bash reaches the package registries, or nothing."""


def _absolute(path: PurePosixPath, what: str) -> str:
    if not path.is_absolute():
        raise ValueError(f"the sandbox needs an absolute {what}, got {path}")
    if ".." in path.parts:
        raise ValueError(f"the sandbox {what} must not contain '..': {path}")
    return str(path)


def sandbox_settings(
    workdir: PurePosixPath,
    tmpdir: PurePosixPath | None = None,
    *,
    auto_allow_bash: bool = True,
    registries: bool = False,
    extra_domains: Sequence[str] = (),
    deny_read: Sequence[PurePosixPath] = (),
    extra_write: Sequence[PurePosixPath] = (),
) -> dict[str, Any]:
    """The ``sandbox`` settings for one turn whose own folder is ``workdir``.

    Bash may write only in ``workdir`` (claude always allows its working
    directory), ``tmpdir`` if given (the turn's private temp folder, to be passed
    as TMPDIR; claude's own TMPDIR ``/tmp/claude-<uid>`` is writable anyway, but
    shared by every turn of the user), and reach only ``extra_domains`` plus,
    with ``registries``, the package registries. claude's own calls to the
    model API are not sandboxed and need no entry. ``auto_allow_bash``: run
    any Bash call without a permission rule (sandboxed): only for roles whose
    tools include plain ``Bash``; a role limited to ``Bash(git log:*)`` would
    be widened by it. ``deny_read``: files and folders its Bash may not read (the
    keys folder, the user's secrets); ``extra_write``: other folders it may write
    (the package caches).
    Raises ValueError for a relative path or one with ``..``.
    """
    write = [_absolute(workdir, "folder")]
    if tmpdir is not None:
        write.append(_absolute(tmpdir, "temp folder"))
    write += [_absolute(path, "writable folder") for path in extra_write]
    deny = [_absolute(path, "unreadable path") for path in deny_read]
    domains = [*(REGISTRY_DOMAINS if registries else ()), *extra_domains]
    return {
        "sandbox": {
            "enabled": True,
            "failIfUnavailable": True,
            "allowUnsandboxedCommands": False,
            "autoAllowBashIfSandboxed": auto_allow_bash,
            "excludedCommands": [],
            "filesystem": {"allowWrite": write, "denyRead": deny},
            # strictAllowlist: anything else is denied, never asked about.
            "network": {"allowedDomains": domains, "strictAllowlist": True},
        }
    }


def settings_arg(settings: dict[str, Any]) -> list[str]:
    """The ``--settings`` argument pair for ``settings`` (compact JSON, keys sorted)."""
    return ["--settings", json.dumps(settings, sort_keys=True, separators=(",", ":"))]


def file_tool_rules(
    workdir: PurePosixPath, tools: Sequence[str] = FILE_TOOLS, *more: PurePosixPath
) -> list[str]:
    """``--allowedTools`` rules letting each file tool touch only ``workdir`` (and ``more``).

    ``Edit(//abs/dir/**)``: the double slash makes the path absolute. Raises
    ValueError for a relative path or one with ``..``.
    """
    rules: list[str] = []
    for folder in (workdir, *more):
        where = _absolute(folder, "folder").rstrip("/")
        rules += [f"{tool}(/{where}/**)" for tool in tools]
    return rules


def deny_rules(paths: Sequence[PurePosixPath]) -> list[str]:
    """``permissions.deny`` rules keeping every file tool off ``paths`` (files or folders).

    Deny rules hold even with ``--dangerously-skip-permissions`` (checked with claude
    2.1.331), where the scoped allow rules mean nothing. Raises ValueError like
    `sandbox_settings`.
    """
    rules: list[str] = []
    for path in paths:
        where = _absolute(path, "unreadable path").rstrip("/")
        rules += [f"{tool}(/{where}{tail})" for tail in ("", "/**") for tool in FILE_TOOLS]
    return rules


def scoped_tools(allowed: Sequence[str], workdir: PurePosixPath, *more: PurePosixPath) -> list[str]:
    """A role's allowed tools with each plain ``Read``/``Write``/``Edit`` scoped to its folders.

    A rule the role file wrote itself (``Read(src/**)``) and every other tool stay
    as they are. The file tools are then granted only inside ``workdir`` and
    ``more`` (the turn's temp folder): a Read or Write elsewhere is refused by
    claude (a permission denial), not asked about.
    """
    scoped: list[str] = []
    for tool in allowed:
        if tool in FILE_TOOLS:
            scoped += file_tool_rules(workdir, (tool,), *more)
        else:
            scoped.append(tool)
    return scoped


def sandbox_problem(platform: str, which: Callable[[str], str | None]) -> str | None:
    """One line saying what to install for claude's sandbox, or None when it can run.

    ``platform`` is ``sys.platform``; ``which`` finds a program on PATH
    (`shutil.which`). macOS has Seatbelt built in; Linux needs bubblewrap and socat.
    """
    if not platform.startswith("linux"):
        return None
    missing = [package for program, package in LINUX_NEEDS if which(program) is None]
    if not missing:
        return None
    what = " and ".join(missing)
    return (
        f"agents run in claude's sandbox, which needs {what} (not on PATH): install them "
        f"(Debian, Ubuntu: `apt install {' '.join(p for _, p in LINUX_NEEDS)}`), or run "
        "without the sandbox on purpose: sandbox = false in .autonoma/config.toml "
        "(or AUTONOMA_SANDBOX=0)"
    )


def opt_out_warning(where: str) -> str:
    """The line printed at every start while the sandbox is off; ``where`` set it so."""
    return (
        f"agents run WITHOUT claude's sandbox (sandbox = false in {where}): "
        "they can write anywhere you can"
    )


def secret_paths(home: PurePosixPath, claude_config: PurePosixPath) -> list[PurePosixPath]:
    """Where the user's secrets may be: `SECRET_DOTFILES` in ``home``, claude's login.

    The caller keeps those that exist (a missing one needs no rule).
    """
    return [*(home / name for name in SECRET_DOTFILES), claude_config / CLAUDE_CREDENTIALS]


def network_for(
    role: str, has_bash: bool, network: str, extra_domains: Sequence[str]
) -> tuple[bool, list[str]]:
    """(the package registries?, other domains) a role's Bash may reach.

    Developers install packages: they get the registries unless ``network`` is
    ``"none"``. The user's ``extra_domains`` go to every role with plain ``Bash``
    (developers and QA). Nothing else: claude's own model calls are not sandboxed.
    """
    registries = role == "developer" and network == "registries"
    return registries, list(extra_domains) if has_bash else []


def short_alias(real: PurePosixPath, base: PurePosixPath) -> PurePosixPath:
    """A short name in ``base`` for the temp folder ``real`` (a symlink made by the caller).

    Used when ``real`` is too long for claude's sockets (`SOCKET_ROOM`); the name is
    a hash of ``real``, so a turn always gets the same one.
    """
    digest = hashlib.sha256(str(real).encode()).hexdigest()[:12]
    return base / digest


def too_long_for_sockets(path: PurePosixPath) -> bool:
    """Whether claude's sandbox sockets would not fit in a TMPDIR of ``path``."""
    return len(str(path).encode()) + SOCKET_ROOM > MAX_SOCKET_PATH


def cache_folders(env: Mapping[str, str]) -> list[PurePosixPath]:
    """The package caches named in a turn's environment (pip's, npm's), absolute ones only."""
    names = ("PIP_CACHE_DIR", "npm_config_cache")
    return [PurePosixPath(env[n]) for n in names if env.get(n, "").startswith("/")]
