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
    merge_heads: tuple[str, ...] = ()
    """A merge under way (``MERGE_HEAD``: the orchestrator's conflict merge, left for
    the developer to resolve): its other parents, in the bundle too."""
    merge_msg: bytes = b""
    index: bytes = b""
    """With a merge under way: the index itself (its conflicts and the merged-in files
    staged, all of whose blobs the bundle holds), so that the commit that ends the merge
    holds what the merge brought and git refuses it while conflicts remain."""


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


def _git_file(cwd: Path, name: str, env: Mapping[str, str] | None) -> Path:
    """A file of ``cwd``'s git folder (``MERGE_HEAD``), wherever that folder is."""
    return cwd / git(cwd, "rev-parse", "--git-path", name, env=env).decode().strip()


_MERGE_FILES = ("MERGE_HEAD", "MERGE_MSG", "MERGE_MODE", "AUTO_MERGE")


def capture(cwd: Path, known: str = "", env: Mapping[str, str] | None = None) -> State:
    """The state of ``cwd``: its commit (and a merge under way), a bundle of them past
    ``known``, its uncommitted patch.

    ``known``: a commit the other side has (its bundle then holds only what came after);
    "": the whole history. No bundle at all when the other side has every commit already.
    """
    genv = git_env(env)
    commit = head_commit(cwd)
    merge_file = _git_file(cwd, "MERGE_HEAD", genv)
    merge_heads: tuple[str, ...] = ()
    merge_msg = b""
    index = b""
    if merge_file.is_file():
        merge_heads = tuple(merge_file.read_text().split())
        msg = _git_file(cwd, "MERGE_MSG", genv)
        merge_msg = msg.read_bytes() if msg.is_file() else b""
        index = _git_file(cwd, "index", genv).read_bytes()
    tips = [commit, *merge_heads]
    bundle = b""
    exclude = [f"^{known}"] if known else []
    count = git(cwd, "rev-list", "--count", "--max-count=1", *tips, *exclude, env=genv)
    if count.strip() != b"0":
        merges = [f"refs/autonoma/merge-{i}" for i in range(len(merge_heads))]
        refs = ["refs/autonoma/state", *merges]
        with tempfile.TemporaryDirectory(prefix="autonoma-bundle-") as tmp:
            out = Path(tmp) / "state.bundle"
            # Refs of their own: a bundle names what it holds by refs.
            for ref, tip in zip(refs, tips, strict=True):
                git(cwd, "update-ref", ref, tip, env=genv)
            try:
                git(cwd, "bundle", "create", "-q", str(out), *refs, *exclude, env=genv)
            finally:
                for ref in refs:
                    git(cwd, "update-ref", "-d", ref, env=genv)
            bundle = out.read_bytes()
    return State(commit, bundle, working_patch(cwd, env), merge_heads, merge_msg, index)


def restore(cwd: Path, state: State, branch: str, env: Mapping[str, str] | None = None) -> None:
    """Make ``cwd`` (a git repository) hold ``state`` on ``branch`` ("": detached): the
    bundle's objects fetched, ``branch`` at its commit and checked out, every other change
    dropped (ignored files stay: a set-up's installs), the patch applied, and a merge
    under way left under way."""
    genv = git_env(env)
    if state.bundle:
        with tempfile.TemporaryDirectory(prefix="autonoma-bundle-") as tmp:
            path = Path(tmp) / "state.bundle"
            path.write_bytes(state.bundle)
            refspec = "refs/autonoma/*:refs/autonoma/*"
            git(cwd, "fetch", "-q", "--no-tags", str(path), refspec, env=genv)
    for name in _MERGE_FILES:
        _git_file(cwd, name, genv).unlink(missing_ok=True)
    if branch:
        git(cwd, "checkout", "-q", "-f", "-B", branch, state.commit, env=genv)
    else:  # a detached checkout stays detached
        git(cwd, "checkout", "-q", "-f", "--detach", state.commit, env=genv)
    git(cwd, "clean", "-q", "-f", "-d", env=genv)
    if state.patch:
        git(cwd, "apply", "--binary", "--whitespace=nowarn", "-", env=genv, stdin=state.patch)
    if state.merge_heads:
        # What `git commit` reads to make the merge commit the developer was asked for.
        heads = "".join(f"{h}\n" for h in state.merge_heads)
        _git_file(cwd, "MERGE_HEAD", genv).write_text(heads)
        _git_file(cwd, "MERGE_MSG", genv).write_bytes(state.merge_msg)
        if state.index:
            _git_file(cwd, "index", genv).write_bytes(state.index)
            # Its stat data is the other side's: git re-reads the files (exit 1: changes).
            subprocess.run(
                ["git", "update-index", "-q", "--refresh"],
                cwd=cwd,
                env=genv,
                capture_output=True,
                timeout=GIT_TIMEOUT,
                check=False,
            )
    # The bundle's refs served their turn: the branch and MERGE_HEAD hold the commits.
    fetched = git(cwd, "for-each-ref", "--format=%(refname)", "refs/autonoma/", env=genv)
    for ref in fetched.decode().split():
        git(cwd, "update-ref", "-d", ref, env=genv)


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
