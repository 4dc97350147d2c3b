"""A working copy's state as bytes, and back: how a repository crosses to a node and home.

A state is the commit checked out (shipped as a ``git bundle``: the commits the other
side may lack) plus a binary patch of everything not committed (changes, new files
not ignored, deletions), taken with a throw-away index so the real one is untouched.
Both ways use the same three calls, so the head's clone of a task and the node's clone
are mirrors at the start and at the end of a remote turn.

Plain ``git`` (2.31 or later), no Ray: every call blocks until git is done and raises
`BundleError` (one line) when git fails.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT = 120.0
"""Seconds one git command may take (a bundle of a big repository is written to disk)."""


class BundleError(Exception):
    """A git command on a state failed; the message is one line."""


@dataclass(frozen=True)
class State:
    """A working copy's state as bytes: what `capture` makes and `restore` applies."""

    commit: str
    """The commit checked out (hex)."""
    bundle: bytes
    """A git bundle holding ``commit`` and what it needs beyond ``known`` (b"": nothing)."""
    patch: bytes
    """``git diff --binary`` of the working tree against ``commit`` (b"": clean)."""


def git(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, stdin: bytes | None = None
) -> bytes:
    """Run ``git args`` in ``cwd``; its stdout. `BundleError` with git's first line if it fails."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=None if env is None else dict(env),
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BundleError(f"{cwd}: git {args[0]}: {error}") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise BundleError(f"{cwd}: git {args[0]} failed: {lines[0] if lines else done.returncode}")
    return done.stdout


def git_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """This process's environment with the ``GIT_CONFIG_*`` of ``env`` (the agents'): the
    state is taken with the agents' excludes, so what they never see is never shipped."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    if env is not None:
        out.update({k: v for k, v in env.items() if k.startswith("GIT_CONFIG_")})
    return out


def head_commit(cwd: Path) -> str:
    """The commit checked out in ``cwd`` (hex)."""
    return git(cwd, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()


def working_patch(cwd: Path, env: Mapping[str, str] | None = None) -> bytes:
    """Everything in ``cwd`` not committed, as a binary patch against HEAD (b"" if clean).

    New files count unless ignored; the index of ``cwd`` is not touched (a temporary one).
    """
    with tempfile.TemporaryDirectory(prefix="autonoma-index-") as tmp:
        genv = git_env(env)
        genv["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        git(cwd, "read-tree", "HEAD", env=genv)
        git(cwd, "add", "-A", env=genv)
        return git(cwd, "diff", "--cached", "--binary", "--no-color", "HEAD", env=genv)


def capture(cwd: Path, known: str = "", env: Mapping[str, str] | None = None) -> State:
    """The state of ``cwd``: its commit, a bundle of it past ``known``, its uncommitted patch.

    ``known``: a commit the other side has (its bundle then holds only what came after);
    "": the whole history. No bundle at all when the other side has the commit already.
    """
    commit = head_commit(cwd)
    bundle = b""
    if commit != known:
        genv = git_env(env)
        new = b"1"
        if known:
            new = git(cwd, "rev-list", "--count", "--max-count=1", commit, f"^{known}", env=genv)
        if new.strip() != b"0":
            with tempfile.TemporaryDirectory(prefix="autonoma-bundle-") as tmp:
                out = Path(tmp) / "state.bundle"
                # A ref of its own: a bundle names what it holds by refs.
                ref = "refs/autonoma/state"
                git(cwd, "update-ref", ref, commit, env=genv)
                try:
                    spec = [ref, f"^{known}"] if known else [ref]
                    git(cwd, "bundle", "create", "-q", str(out), *spec, env=genv)
                finally:
                    git(cwd, "update-ref", "-d", ref, env=genv)
                bundle = out.read_bytes()
    return State(commit=commit, bundle=bundle, patch=working_patch(cwd, env))


def restore(cwd: Path, state: State, branch: str, env: Mapping[str, str] | None = None) -> None:
    """Make ``cwd`` (a git repository) hold ``state`` on ``branch``: the bundle's objects
    fetched, ``branch`` at its commit and checked out, every other change dropped (ignored
    files stay: a set-up's installs), then the patch applied to the working tree."""
    genv = git_env(env)
    if state.bundle:
        with tempfile.TemporaryDirectory(prefix="autonoma-bundle-") as tmp:
            path = Path(tmp) / "state.bundle"
            path.write_bytes(state.bundle)
            git(cwd, "fetch", "-q", "--no-tags", str(path), "refs/autonoma/state", env=genv)
    git(cwd, "checkout", "-q", "-f", "-B", branch, state.commit, env=genv)
    git(cwd, "clean", "-q", "-f", "-d", env=genv)
    if state.patch:
        git(cwd, "apply", "--binary", "--whitespace=nowarn", "-", env=genv, stdin=state.patch)


def clone_into(cwd: Path, state: State, branch: str, env: Mapping[str, str] | None = None) -> None:
    """A new repository at ``cwd`` holding ``state`` (whose bundle must be whole)."""
    cwd.mkdir(parents=True, exist_ok=True)
    genv = git_env(env)
    git(cwd, "init", "-q", env=genv)
    restore(cwd, state, branch, env)


__all__ = [
    "BundleError",
    "State",
    "capture",
    "clone_into",
    "git",
    "git_env",
    "head_commit",
    "restore",
    "working_patch",
]
