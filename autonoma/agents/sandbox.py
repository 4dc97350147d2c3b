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

Used by `Turn` only with the ``sandbox`` setting (off by default): docs/sandbox.md
says what still breaks with it on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

# Where pip and npm fetch from when a turn may install packages.
REGISTRY_DOMAINS: tuple[str, ...] = ("pypi.org", "files.pythonhosted.org", "registry.npmjs.org")

# The file tools a turn may use on its own folder, each scoped by a permission rule.
FILE_TOOLS: tuple[str, ...] = ("Read", "Edit", "Write")


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
    be widened by it.
    Raises ValueError for a relative path or one with ``..``.
    """
    write = [_absolute(workdir, "folder")]
    if tmpdir is not None:
        write.append(_absolute(tmpdir, "temp folder"))
    domains = [*(REGISTRY_DOMAINS if registries else ()), *extra_domains]
    return {
        "sandbox": {
            "enabled": True,
            "failIfUnavailable": True,
            "allowUnsandboxedCommands": False,
            "autoAllowBashIfSandboxed": auto_allow_bash,
            "excludedCommands": [],
            "filesystem": {"allowWrite": write},
            # strictAllowlist: anything else is denied, never asked about.
            "network": {"allowedDomains": domains, "strictAllowlist": True},
        }
    }


def settings_arg(settings: dict[str, Any]) -> list[str]:
    """The ``--settings`` argument pair for ``settings`` (compact JSON, keys sorted)."""
    return ["--settings", json.dumps(settings, sort_keys=True, separators=(",", ":"))]


def file_tool_rules(workdir: PurePosixPath, tools: Sequence[str] = FILE_TOOLS) -> list[str]:
    """``--allowedTools`` rules letting each file tool touch only ``workdir``.

    ``Edit(//abs/dir/**)``: the double slash makes the path absolute. Raises
    ValueError for a relative path or one with ``..``.
    """
    where = _absolute(workdir, "folder").rstrip("/")
    return [f"{tool}(/{where}/**)" for tool in tools]
