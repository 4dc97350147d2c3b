"""Branches, commits, merges, the check worktree and the push guard of a run (pygit2, no
git subprocess). The agents' clones are in `autonoma.vcs.clones`.

The user's working tree is never written to except by ``advance_main``, and then only
through a safe checkout of a clean tree; every other change happens on Autonoma's own
branches (``autonoma/...``), in its own worktrees, or in memory.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, FileStatus, RepositoryState, SortMode

from autonoma.vcs.excludes import Excludes, project_rules
from autonoma.vcs.excludes import declared as is_declared

INTEGRATION_BRANCH = "autonoma/integration"
CHECK_WORKTREE = "_merge"
FALLBACK_NAME = "Autonoma"
FALLBACK_EMAIL = "autonoma@localhost"
PUSH_REFUSED = "autonoma: agents never push (refused)"

# A task id becomes a folder name, a worktree name and a ref component, so it is held to
# what is safe for all three; a leading "_" is kept for Autonoma's own worktrees.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MARKER_SCAN_LIMIT = 1 << 20
# A whole conflict block, not a lone "<<<<<<< " line, so a text about git stays committable.
_CONFLICT_BLOCK = re.compile(rb"^<<<<<<< .*?^=======\r?$.*?^>>>>>>> ", re.MULTILINE | re.DOTALL)


class VcsError(Exception):
    """A git operation could not be done; the message names the repository and the problem."""


class BranchLocked(VcsError):
    """A branch could not be moved: its lock file (``<ref>.lock``) stayed held (a git of
    the user's moving it, or packing refs), or could not be removed. Nothing moved; the
    message names the file."""

    def __init__(self, message: str, held: BranchLock | None = None) -> None:
        super().__init__(message)
        self.held = held
        """The lock still held (None: it could not be removed, or was taken at once)."""


STALE_LOCK_AGE = 60.0
"""Seconds after which a lock on the user's branch (``refs/heads/<main>.lock``) is taken
for one a killed git left: git holds a ref's lock for the milliseconds of writing one
line and renaming it (seconds at most, with a slow ``reference-transaction`` hook), so
a lock a minute old belongs to no git still running."""

LOCK_WAIT = 5.0
"""Seconds the merge queue waits for the user's git to let go of ``<main>.lock`` before
leaving ``main`` where it is for this merge (the next one moves it), and of the
integration branch's lock before refusing the merge (it is merged again)."""

ADVANCE_WALK = 200
"""How many commits of the integration branch, from its head back to ``main``,
`interrupted_advance` looks through for the tree the user's index holds."""

_UNSTAGED = (
    FileStatus.WT_MODIFIED
    | FileStatus.WT_DELETED
    | FileStatus.WT_TYPECHANGE
    | FileStatus.WT_RENAMED
    | FileStatus.WT_UNREADABLE
    | FileStatus.CONFLICTED
)
"""A tracked file's status flags that say the working tree differs from the index."""


@dataclass(frozen=True)
class BranchLock:
    """A branch's lock file (``<ref>.lock``) found in the repository."""

    path: Path
    age_s: float
    """Seconds since it was last written (its mtime)."""
    ours: bool
    """It moves the branch forward to a commit the integration branch holds: what
    Autonoma's merge queue writes there as it moves ``main`` (a SIGKILL then left it)."""


def lock_is_stale(lock: BranchLock) -> bool:
    """Whether a start (with the run lock held: no merge queue of the project runs) may
    remove ``lock``: it is Autonoma's own (`BranchLock.ours`), or older than
    `STALE_LOCK_AGE`. Otherwise it may be a git of the user's, moving the branch now."""
    return lock.ours or lock.age_s >= STALE_LOCK_AGE


@dataclass(frozen=True)
class MergeResult:
    """The outcome of a merge: a commit id, or the paths that conflict."""

    commit: str | None
    conflicts: list[str]

    def __post_init__(self) -> None:
        if (self.commit is None) == (not self.conflicts):
            raise ValueError("a MergeResult has either a commit or conflicts")


def task_branch(task_id: str, run: str = "") -> str:
    """The branch a task is developed on (``autonoma/<run>/<task>`` within a run)."""
    return f"autonoma/{run}/{task_id}" if run else f"autonoma/task/{task_id}"


def _open(path: Path) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(path))
    except pygit2.GitError as error:
        raise VcsError(f"{path}: not a git repository ({error})") from error


def _where(repo: pygit2.Repository) -> str:
    return str(Path(repo.workdir or repo.path).resolve())


def _signature(repo: pygit2.Repository) -> pygit2.Signature:
    try:
        signature: pygit2.Signature = repo.default_signature
    except (KeyError, ValueError, pygit2.GitError):
        # No user.name/user.email anywhere: commits still need an author.
        return pygit2.Signature(FALLBACK_NAME, FALLBACK_EMAIL)
    return signature


def _ref_name(ref: str) -> str:
    return ref if ref.startswith("refs/") or ref == "HEAD" else f"refs/heads/{ref}"


def _ref_commit(repo: pygit2.Repository, ref: str) -> pygit2.Commit:
    name = _ref_name(ref)
    try:
        reference = repo.lookup_reference(name)
        commit: pygit2.Commit = reference.peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as error:
        raise VcsError(f"{_where(repo)}: no branch {ref} ({error})") from error
    return commit


def _commit(repo: pygit2.Repository, rev: str) -> pygit2.Commit:
    try:
        commit: pygit2.Commit = repo.revparse_single(rev).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError) as error:
        raise VcsError(f"{_where(repo)}: no commit {rev} ({error})") from error
    return commit


def _short(oid: pygit2.Oid | str) -> str:
    return str(oid)[:10]


def _listing(paths: list[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


def current_branch(repo_path: Path) -> str:
    """The branch the user's HEAD is on; an empty initial commit is made if there is none yet."""
    repo = _open(repo_path)
    if repo.head_is_unborn:
        head = str(repo.lookup_reference("HEAD").target)
        # Worktrees and merges need a commit to start from; an empty tree changes no file.
        empty_tree = repo.TreeBuilder().write()
        signature = _signature(repo)
        repo.create_commit(
            "HEAD", signature, signature, "Initial commit (autonoma)", empty_tree, []
        )
        return head.removeprefix("refs/heads/")
    if repo.head_is_detached:
        raise VcsError(f"{_where(repo)}: HEAD is detached; check out a branch first")
    branch: str = repo.head.shorthand
    return branch


def dirty_files(repo_path: Path, *, untracked: bool = True) -> list[str]:
    """Paths with uncommitted changes in a working tree (ignored files and .autonoma/ aside).

    ``untracked=False`` leaves untracked files out: a safe checkout never overwrites
    them (it reports a conflict instead), so they need not stop anything.
    """
    repo = _open(repo_path)
    # "normal" reports an untracked folder once, as `git status` does, without walking it.
    status = repo.status(untracked_files="normal" if untracked else "no", ignored=False)
    return sorted(
        path
        for path, flags in status.items()
        if flags != FileStatus.CURRENT
        and not flags & FileStatus.IGNORED
        and not (path == ".autonoma" or path.startswith(".autonoma/"))
    )


def remove_untracked(worktree: Path, pattern: re.Pattern[str]) -> list[str]:
    """Delete the untracked files of ``worktree`` whose path matches ``pattern``; their paths."""
    repo = _open(worktree)
    status = repo.status(untracked_files="all", ignored=False)
    removed = sorted(
        path for path, flags in status.items() if flags & FileStatus.WT_NEW and pattern.search(path)
    )
    for path in removed:
        (worktree / path).unlink(missing_ok=True)
    return removed


def repository_problem(repo_path: Path) -> str | None:
    """What in the user's repository would break a run (one line), or None. Changes nothing.

    A branch named ``autonoma`` makes every ``autonoma/...`` ref impossible (git cannot
    have both), and an ``autonoma/integration`` on history unrelated to the checked-out
    branch would be adopted as it is: tasks would merge into it, the branch never moves.
    """
    repo = _open(repo_path)
    where = _where(repo)
    if repo.references.get("refs/heads/autonoma") is not None:
        return (
            f"{where}: a branch named 'autonoma' blocks Autonoma's autonoma/... branches: "
            "rename it (git branch -m autonoma <new-name>)"
        )
    existing = repo.references.get(_ref_name(INTEGRATION_BRANCH))
    if existing is None or repo.head_is_detached:
        return None
    branch = str(repo.lookup_reference("HEAD").target).removeprefix("refs/heads/")
    try:
        integration = existing.peel(pygit2.Commit).id
    except (ValueError, pygit2.GitError):
        integration = None
    head = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit).id
    if integration is None or head is None or repo.merge_base(head, integration) is None:
        return (
            f"{where}: branch {INTEGRATION_BRANCH} shares no history with {branch}, so a "
            f"run would never move {branch}: delete it (git branch -D {INTEGRATION_BRANCH}) "
            "or rename it (git branch -m), then start again (--new does not help)"
        )
    return None


def ensure_integration(repo_path: Path, main: str) -> str:
    """Create or fast-forward the integration branch from ``main``; return its head."""
    repo = _open(repo_path)
    main_head = _ref_commit(repo, main).id
    name = _ref_name(INTEGRATION_BRANCH)
    existing = repo.references.get(name)
    if existing is None:
        try:
            repo.references.create(name, main_head)
        except pygit2.GitError as error:
            raise VcsError(
                f"{_where(repo)}: cannot create {INTEGRATION_BRANCH}: {error}"
            ) from error
        return str(main_head)
    current = existing.target
    if current != main_head and repo.descendant_of(main_head, current):
        # The user committed on main since the last run: later tasks start from that work.
        existing.set_target(main_head, f"autonoma: fast-forward to {main}")
        return str(main_head)
    return str(current)


def check_name(repo: pygit2.Repository, part: str) -> None:
    """Raise `VcsError` unless ``part`` (a task or run id) can name a branch and a folder."""
    if not _TASK_ID.fullmatch(part) or ".." in part or part.endswith(".lock"):
        raise VcsError(f"{_where(repo)}: {part!r} cannot name a branch and a folder")


def _worktree_name(task_id: str) -> str:
    return f"autonoma-{task_id}"


def _find_worktree(repo: pygit2.Repository, name: str) -> pygit2.Worktree | None:
    if name not in repo.list_worktrees():
        return None
    worktree: pygit2.Worktree = repo.lookup_worktree(name)
    return worktree


def _is_registered_at(worktree: pygit2.Worktree, path: Path) -> bool:
    there = Path(worktree.path)
    return there.exists() and there.resolve() == path.resolve() and (path / ".git").exists()


def _add_worktree(repo: pygit2.Repository, name: str, path: Path, branch: pygit2.Reference) -> None:
    try:
        repo.add_worktree(name, str(path), branch)
    except pygit2.GitError as error:
        # A failed add can leave its registration behind, which would block the next try.
        stale = _find_worktree(repo, name)
        if stale is not None and not Path(stale.path).exists():
            stale.prune(True)
        raise VcsError(f"{_where(repo)}: cannot add worktree {path}: {error}") from error


def head_of(repo_path: Path, ref: str) -> str:
    """The commit id a branch name (or full ref) points to."""
    return str(_ref_commit(_open(repo_path), ref).id)


def _merge_heads(repo: pygit2.Repository) -> list[pygit2.Oid]:
    merge_head = Path(repo.path) / "MERGE_HEAD"
    if not merge_head.exists():
        return []
    return [pygit2.Oid(hex=line.strip()) for line in merge_head.read_text().split() if line]


def _conflicted(index: pygit2.Index) -> list[str]:
    conflicts = index.conflicts
    if conflicts is None:
        return []
    paths = {entry.path for sides in conflicts for entry in sides if entry is not None}
    return sorted(paths)


def _tree_paths(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree) -> list[str]:
    # Without a first tree, the empty tree stands for it.
    diff = new.diff_to_tree(swap=True) if old is None else old.diff_to_tree(new)
    paths: set[str] = set()
    for delta in diff.deltas:
        paths.add(delta.old_file.path)
        paths.add(delta.new_file.path)
    return sorted(paths)


def _has_markers(data: bytes) -> bool:
    return _CONFLICT_BLOCK.search(data) is not None


def _marker_paths(repo: pygit2.Repository, paths: list[str], tree: pygit2.Tree) -> list[str]:
    found: list[str] = []
    for path in paths:
        try:
            entry = tree[path]
        except KeyError:
            continue
        blob = repo[entry.id]
        if not isinstance(blob, pygit2.Blob) or blob.is_binary or blob.size > _MARKER_SCAN_LIMIT:
            continue
        if _has_markers(blob.data):
            found.append(path)
    return found


def conflict_marker_files(repo_path: Path, base: str, head: str) -> list[str]:
    """Files changed from ``base`` to ``head`` whose content at ``head`` holds conflict markers."""
    repo = _open(repo_path)
    old, new = _commit(repo, base).tree, _commit(repo, head).tree
    return _marker_paths(repo, _tree_paths(repo, old, new), new)


LEFT_OUT_LIMIT = 20
"""At most this many left-out paths are reported; the rest are counted."""


@dataclass(frozen=True)
class CommitResult:
    """What `commit_all` did: its commit (None: nothing to commit), and what it left out."""

    commit: str | None
    files: list[str]
    """The paths the commit changed."""
    left_out: list[str]
    """What was left in the worktree uncommitted: a folder once (``node_modules/``), sorted."""
    left_out_more: int = 0
    """How many more paths were left out than `left_out` names."""


def _main_root(repo: pygit2.Repository) -> Path:
    # A linked worktree's git dir points at the shared one, and a task's clone borrows
    # the objects of the user's repository: its working tree is where .autonoma/ lives.
    git_dir = Path(repo.path)
    pointer = git_dir / "commondir"
    common = (git_dir / pointer.read_text().strip()).resolve() if pointer.exists() else git_dir
    alternates = common / "objects" / "info" / "alternates"
    if alternates.is_file():
        lines = alternates.read_text().split("\n")
        borrowed = Path(lines[0].strip()).parent if lines and lines[0].strip() else None
        if borrowed is not None and borrowed.is_dir():
            common = borrowed
    workdir = pygit2.Repository(str(common)).workdir
    return Path(workdir) if workdir else common.parent


def _may_hold(folder: str, declared: Sequence[str]) -> bool:
    """Whether a declared entry may name something inside ``folder`` (ends with "/")."""
    for entry in declared:
        entry = entry.strip().removeprefix("./").lstrip("/")
        if entry and (
            entry.startswith(folder)
            or folder.startswith(entry.rstrip("/") + "/")
            or any(c in entry for c in "*?[")
        ):
            return True
    return False


def _collapse(left: list[str], added: set[str], top: str) -> list[str]:
    """Each left-out path under ``top`` as its highest folder from which nothing was added."""
    shown: set[str] = set()
    for path in left:
        chain = [top]
        for part in path[len(top) :].split("/")[:-1]:
            chain.append(f"{chain[-1]}{part}/")
        shown.add(next((f for f in chain if not any(a.startswith(f) for a in added)), path))
    return sorted(shown)


def _sweep_folder(
    repo: pygit2.Repository,
    top: str,
    excludes: Excludes,
    declared: Sequence[str],
    index: pygit2.Index,
) -> list[str]:
    """Stage the declared files in the untracked folder ``top``; what it leaves out."""
    root = Path(repo.workdir)
    # A repository of its own inside the worktree is never walked into.
    if excludes.matches(top) or not _may_hold(top, declared) or (root / top / ".git").exists():
        return [top]
    left: list[str] = []
    added: set[str] = set()
    for folder, dirs, files in os.walk(root / top):
        here = Path(folder).relative_to(root).as_posix() + "/"
        kept = []
        for name in sorted(dirs):
            path = here + name + "/"
            if (root / path).is_symlink():
                files.append(name)  # git records a link to a folder as a link
            elif excludes.matches(path) or (root / path / ".git").exists():
                left.append(path)
            elif not repo.path_is_ignored(path):
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here + name
            if excludes.matches(path):
                left.append(path)
            elif repo.path_is_ignored(path):
                continue  # the repository's own ignore rules: not Autonoma's business
            elif is_declared(path, declared):
                index.add(path)
                added.add(path)
            else:
                left.append(path)
    return _collapse(left, added, top)


def _restore(index: pygit2.Index, parent: pygit2.Commit | None, path: str) -> None:
    """Put ``path`` back in the index as the last commit has it (or take it out)."""
    try:
        entry = parent.tree[path] if parent is not None else None
    except KeyError:
        entry = None
    if entry is None:
        if path in index:
            index.remove(path)
        return
    index.add(pygit2.IndexEntry(path, entry.id, entry.filemode))


def _stage(
    repo: pygit2.Repository,
    index: pygit2.Index,
    parent: pygit2.Commit | None,
    excludes: Excludes,
    declared: Sequence[str],
) -> list[str]:
    """Stage what a commit for the agent takes (see `commit_all`); the paths left out."""
    root = Path(repo.workdir)
    left: list[str] = []
    # "normal" reports an untracked folder once, as `git status` does, without walking it:
    # a node_modules/ of 100k files costs one entry.
    status = repo.status(untracked_files="normal", ignored=False)
    for path, flags in sorted(status.items()):
        if flags == FileStatus.CURRENT:
            continue
        exists = (root / path).exists() or (root / path).is_symlink()
        if flags == FileStatus.WT_NEW:
            if path.endswith("/"):
                left += _sweep_folder(repo, path, excludes, declared, index)
            elif excludes.matches(path) or not is_declared(path, declared):
                left.append(path)
            else:
                index.add(path)
        elif excludes.matches(path):
            # Tracked, but matched: its change stays out, even if the agent staged it.
            _restore(index, parent, path)
            left.append(path)
        elif flags & FileStatus.CONFLICTED or path in index:
            # Staging a conflicted path marks it resolved, as `git add` does.
            if exists:
                index.add(path)
            else:
                index.remove(path)
        # Otherwise the agent staged its deletion (`git rm --cached`): kept as staged.
    return sorted(set(left))


def commit_all(
    worktree: Path, message: str, declared: Sequence[str] = (), *, rules: str | None = None
) -> CommitResult:
    """Commit, on the worktree's branch, what an agent left uncommitted there, or part of it.

    Taken: changes to tracked files (modified, deleted, or staged by the agent) and the new
    or changed files that ``declared`` names (a task's files). Never taken: what the
    exclude list matches (``rules``, gitignore syntax; by default the project's
    ``.autonoma/exclude`` or `excludes.DEFAULT_RULES`), even if tracked or staged, and what
    the repository's own ignore rules ignore. The rest stays in the worktree, uncommitted,
    and is reported in `CommitResult.left_out`. A merge in progress is concluded with both
    parents. Commits the agent made itself are never touched.

    Raises `VcsError` (nothing written) for a detached HEAD, unresolved merge conflicts or
    conflict markers in what would be committed.
    """
    repo = _open(worktree)
    where = _where(repo)
    if repo.head_is_detached:
        raise VcsError(f"{where}: HEAD is detached (a rebase in progress?); nothing committed")
    text = rules if rules is not None else project_rules(_main_root(repo))
    excludes = Excludes.parse(text)
    merging = _merge_heads(repo)
    index = repo.index
    parent = None if repo.head_is_unborn else repo.head.peel(pygit2.Commit)
    left = _stage(repo, index, parent, excludes, declared)
    result = CommitResult(None, [], left[:LEFT_OUT_LIMIT], max(0, len(left) - LEFT_OUT_LIMIT))
    unresolved = _conflicted(index)
    if unresolved:
        raise VcsError(f"{where}: unresolved merge conflicts in {_listing(unresolved)}")
    tree_id = index.write_tree()
    tree = repo[tree_id]
    assert isinstance(tree, pygit2.Tree)
    changed = _tree_paths(repo, parent.tree if parent is not None else None, tree)
    marked = _marker_paths(repo, changed, tree)
    if marked:
        raise VcsError(f"{where}: conflict markers left in {_listing(marked)}")
    if not changed and not merging:
        return result
    index.write()
    signature = _signature(repo)
    parents = ([parent.id] if parent is not None else []) + merging
    commit = repo.create_commit("HEAD", signature, signature, message, tree_id, parents)
    if repo.state() != RepositoryState.NONE:
        # The merge (or cherry-pick) is concluded: git must not offer to continue it.
        repo.state_cleanup()
    return CommitResult(str(commit), changed, result.left_out, result.left_out_more)


def prepare_merge(repo_path: Path, onto: str, branch: str, message: str) -> MergeResult:
    """Merge ``branch`` onto commit ``onto`` in memory; no ref or working tree is touched."""
    repo = _open(repo_path)
    base = _commit(repo, onto).id
    head = _ref_commit(repo, branch).id
    if head == base or repo.descendant_of(base, head):
        return MergeResult(commit=str(base), conflicts=[])
    index = repo.merge_commits(base, head)
    conflicts = _conflicted(index)
    if conflicts:
        return MergeResult(commit=None, conflicts=conflicts)
    tree = index.write_tree(repo)
    signature = _signature(repo)
    # Always a merge commit, even when a fast-forward was possible: each task stays one
    # revertable unit in the integration history.
    commit = repo.create_commit(None, signature, signature, message, tree, [base, head])
    return MergeResult(commit=str(commit), conflicts=[])


def _checkout(repo: pygit2.Repository, tree: pygit2.Object, strategy: CheckoutStrategy) -> None:
    # pygit2 leaves checkout_tree without annotations. The tree must come from `repo`
    # itself: libgit2 refuses an object looked up through another Repository.
    repo.checkout_tree(tree, strategy=strategy)  # type: ignore[no-untyped-call]


def checkout_detached(worktree: Path, commit: str) -> None:
    """Make a check worktree exactly ``commit``: forced, detached, untracked files removed."""
    repo = _open(worktree)
    target = _commit(repo, commit)
    try:
        # Ignored files (caches, virtualenvs) stay: they make the next test run faster
        # and are not part of what is checked.
        _checkout(repo, target.tree, CheckoutStrategy.FORCE | CheckoutStrategy.REMOVE_UNTRACKED)
        repo.set_head(target.id)
        repo.state_cleanup()
    except pygit2.GitError as error:
        raise VcsError(f"{_where(repo)}: cannot check out {_short(target.id)}: {error}") from error


def ensure_check_worktree(repo_path: Path, worktrees_dir: Path, commit: str) -> Path:
    """The worktree ``worktrees_dir/_merge``, created if missing, detached at ``commit``."""
    repo = _open(repo_path)
    target = _commit(repo, commit)
    path = (worktrees_dir / CHECK_WORKTREE).absolute()
    name = _worktree_name(CHECK_WORKTREE)
    registered = _find_worktree(repo, name)
    if registered is not None and _is_registered_at(registered, path):
        checkout_detached(path, commit)
        return path
    if registered is not None:
        registered.prune(True)
    if path.exists():
        # Nothing in the check worktree is ever kept, so a leftover folder can go.
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # libgit2 adds a worktree on a branch only: add it on a scratch branch, then detach it,
    # so no branch stays checked out there.
    scratch_name = "autonoma/check-worktree"
    scratch = repo.branches.local.create(scratch_name, target, force=True)
    try:
        _add_worktree(repo, name, path, scratch)
        _open(path).set_head(target.id)
    finally:
        repo.branches.local.delete(scratch_name)
    return path


def move_branch(
    repo_path: Path,
    branch: str,
    old: str,
    new: str,
    message: str = "autonoma: move branch",
    lock_wait: float = 0.0,
) -> None:
    """Point ``branch`` at ``new``, only if it still points at ``old``.

    Blocks up to ``lock_wait`` seconds while a git of the user's holds the branch's lock
    (``<ref>.lock``: a ``git branch -f``, a ``git pack-refs``); still held, raises
    `BranchLocked` and nothing moved. Raises `VcsError` if the branch is gone or moved.
    """
    repo = _open(repo_path)
    target = _commit(repo, new).id
    try:
        reference = repo.lookup_reference(_ref_name(branch))
    except (KeyError, pygit2.GitError) as error:
        raise VcsError(f"{_where(repo)}: no branch {branch}") from error
    if str(reference.target) != str(_commit(repo, old).id):
        raise VcsError(
            f"{_where(repo)}: {branch} moved under us "
            f"(expected {_short(old)}, found {_short(reference.target)})"
        )
    # As `advance_main`: wait for a git of the user's to let go first, then one try.
    lock = _lock_path(repo, branch)
    if not _wait_unlocked(lock, lock_wait):
        raise BranchLocked(_held_too_long(lock, lock_wait, branch))
    try:
        # libgit2 checks the old value again under the ref's lock.
        reference.set_target(target, message)
    except pygit2.GitError as error:
        raise VcsError(f"{_where(repo)}: {branch} moved under us ({error})") from error
    except OSError as error:
        # pygit2 says "failed to lock file" as an OSError: a git of the user's took it.
        if "lock" not in str(error):
            raise VcsError(f"{_where(repo)}: cannot move {branch}: {error}") from error
        raise BranchLocked(f"{_where(repo)}: cannot lock {branch}: {error}") from error


def _on_branch(repo: pygit2.Repository, ref_name: str) -> bool:
    if repo.is_bare or repo.head_is_detached or repo.head_is_unborn:
        return False
    return bool(repo.head.name == ref_name)


def _checked_out_at(repo: pygit2.Repository, ref_name: str) -> Path | None:
    # The branch may be checked out in the main working tree or in a linked worktree
    # of the user's; moving it under either would make its files look changed.
    if _on_branch(repo, ref_name):
        return Path(repo.workdir)
    for name in repo.list_worktrees():
        path = Path(repo.lookup_worktree(name).path)
        if not path.exists():
            continue
        if _on_branch(pygit2.Repository(str(path)), ref_name):
            return path
    return None


def advance_main(
    repo_path: Path, main: str, new: str, lock_wait: float = LOCK_WAIT
) -> tuple[bool, str]:
    """Fast-forward the user's ``main`` to ``new`` without ever losing their work.

    Blocks up to ``lock_wait`` seconds while a git of the user's holds ``main``'s lock;
    still held, ``main`` stays (False and why: the next merge moves it). Raises
    `VcsError` if ``main`` is gone."""
    repo = _open(repo_path)
    ref_name = _ref_name(main)
    try:
        reference = repo.lookup_reference(ref_name)
    except (KeyError, pygit2.GitError) as error:
        raise VcsError(f"{_where(repo)}: no branch {main}") from error
    old = reference.target
    target = _commit(repo, new)
    kept = f"the merged result is on {INTEGRATION_BRANCH}"
    if target.id == old:
        return True, ""
    if not repo.descendant_of(target.id, old):
        return False, (
            f"{main} has commits that are not in the merged result "
            f"(committed on {main} meanwhile?); {kept}"
        )
    # Before the working tree is touched: a checkout done, then the ref refused, would
    # leave the user's files ahead of their branch (shown as their own changes).
    lock = _lock_path(repo, main)
    if not _wait_unlocked(lock, lock_wait):
        return False, f"{_held_too_long(lock, lock_wait, main)}; {kept}"
    holder = _checked_out_at(repo, ref_name)
    checkout: pygit2.Repository | None = None
    if holder is not None:
        dirty = dirty_files(holder, untracked=False)
        if dirty:
            return False, f"your working tree has uncommitted changes: {_listing(dirty)}; {kept}"
        checkout = _open(holder)
        try:
            # SAFE from HEAD's tree: a file that differs from what git expects is
            # reported as a conflict instead of being overwritten.
            _checkout(checkout, checkout[target.tree_id], CheckoutStrategy.SAFE)
        except (pygit2.GitError, OSError) as error:
            return False, f"could not update your working tree at {holder}: {error}; {kept}"
    try:
        reference.set_target(target.id, f"autonoma: fast-forward to {_short(target.id)}")
    except (pygit2.GitError, OSError) as error:
        # pygit2 says "failed to lock file" as an OSError: a git of the user's took it.
        why = str(error)
        if checkout is not None and _target_of(repo, ref_name) == old:
            # The branch stayed (a git of the user's took its lock just now): its files
            # go back to it, which they matched a moment ago (the tree was clean). Had
            # it moved (a commit of the user's), they would be the user's: left alone.
            old_tree = checkout[_commit(checkout, str(old)).tree_id]
            try:
                _checkout(checkout, old_tree, CheckoutStrategy.FORCE)
            except (pygit2.GitError, OSError) as undo:
                why += f"; your files are left at {_short(target.id)} ({undo})"
        return False, f"{main} moved while it was being updated ({why}); {kept}"
    return True, ""


def interrupted_advance(
    repo_path: Path, main: str | None = None, limit: int = ADVANCE_WALK
) -> str | None:
    """The commit an `advance_main` was moving ``main`` to when a kill stopped it between
    its checkout and its ref update, or None when the repository is not exactly so.

    That state: HEAD is on ``main`` (None: whatever branch HEAD is on); the index holds
    the tree of a commit C of the integration branch's history, within ``limit`` commits
    of its head, that is a strict descendant of ``main``; the working tree has no change
    against the index (untracked files are the user's and allowed). Anything else (the
    user's own changes, a merge in progress, HEAD detached) is None. Moves nothing (the
    index's tree is written to the object database, as ``git write-tree`` does); never
    raises.
    """
    try:
        repo = _open(repo_path)
        return _interrupted_advance(repo, main, limit)
    except (VcsError, KeyError, ValueError, pygit2.GitError, OSError):
        return None


def _interrupted_advance(repo: pygit2.Repository, main: str | None, limit: int) -> str | None:
    if repo.is_bare or repo.head_is_detached or repo.head_is_unborn:
        return None
    if main is not None and repo.head.name != _ref_name(main):
        return None
    if repo.state() != RepositoryState.NONE:
        return None  # a merge, rebase or cherry-pick of the user's is under way
    old = repo.head.peel(pygit2.Commit)
    integration = _target_of(repo, _ref_name(INTEGRATION_BRANCH))
    if integration is None or integration == old.id:
        return None
    if not repo.descendant_of(integration, old.id):
        return None
    index = repo.index
    index.read(False)
    if index.conflicts is not None:
        return None
    tree = index.write_tree()
    if tree == old.tree_id:
        return None  # nothing staged: nothing was interrupted
    status = repo.status(untracked_files="no", ignored=False)
    for path, flags in status.items():
        if path == ".autonoma" or path.startswith(".autonoma/"):
            continue  # left out of the dirty check too (`dirty_files`)
        if flags & _UNSTAGED:
            return None  # a file changed again after the checkout: the user's work
    walker = repo.walk(integration, SortMode.TOPOLOGICAL)
    walker.hide(old.id)
    for seen, commit in enumerate(walker):
        if seen >= limit:
            break
        if commit.tree_id == tree and repo.descendant_of(commit.id, old.id):
            return str(commit.id)
    return None


def finish_advance(repo_path: Path, main: str) -> str | None:
    """Finish the move of ``main`` that a kill interrupted (`interrupted_advance`): the
    ref only, as the working tree that has ``main`` checked out (the main one, or a
    linked worktree of the user's, as `advance_main` found it) already holds its commit.
    Call with the run lock held (no merge queue of the project moves ``main``). Returns
    the commit ``main`` now points to, or None when no working tree is in that state
    (nothing moved). Raises `VcsError` if the ref cannot be written (its lock held, say)."""
    repo = _open(repo_path)
    try:
        holder = _checked_out_at(repo, _ref_name(main))
    except (pygit2.GitError, OSError):
        return None
    if holder is None:
        return None
    commit = interrupted_advance(holder, main)
    if commit is None:
        return None
    try:
        reference = repo.lookup_reference(_ref_name(main))
        # libgit2 checks the old value again under the ref's lock.
        reference.set_target(
            pygit2.Oid(hex=commit),
            f"autonoma: fast-forward to {_short(commit)} (finishing a move a kill interrupted)",
        )
    except (KeyError, pygit2.GitError, OSError) as error:
        raise VcsError(
            f"{_where(repo)}: cannot move {main} to {_short(commit)} as an interrupted "
            f"merge left it: {error}"
        ) from error
    return commit


def _target_of(repo: pygit2.Repository, ref_name: str) -> pygit2.Oid | None:
    """Where ``ref_name`` points now, read afresh (None: gone, or not readable)."""
    try:
        target = repo.lookup_reference(ref_name).target
    except (KeyError, pygit2.GitError):
        return None
    return target if isinstance(target, pygit2.Oid) else None


def start_conflict_merge(worktree: Path, onto: str) -> list[str]:
    """Merge ``onto`` into a task's worktree as `git merge` does; return the conflicted paths."""
    repo = _open(worktree)
    where = _where(repo)
    if repo.head_is_detached or repo.head_is_unborn:
        raise VcsError(f"{where}: HEAD is not on a branch; cannot merge")
    target = _commit(repo, onto)
    pending = _merge_heads(repo)
    if pending:
        if pending != [target.id]:
            raise VcsError(f"{where}: another merge is in progress")
        # A resumed run: the same merge is already waiting for its resolution.
        unresolved = _conflicted(repo.index)
        if unresolved:
            return unresolved
        commit_all(worktree, _merge_message(repo, target.id))
        return []
    head = repo.head.target
    if head == target.id or repo.descendant_of(head, target.id):
        return []
    # Untracked files (a test run's leftovers) are no obstacle, as with `git merge`;
    # libgit2 refuses by itself when the merge would overwrite one.
    changed = _tracked_changes(repo)
    if changed:
        raise VcsError(f"{where}: uncommitted changes ({_listing(changed)}); commit them first")
    try:
        repo.merge(target.id)
    except pygit2.GitError as error:
        raise VcsError(f"{where}: cannot merge {_short(target.id)}: {error}") from error
    message = _merge_message(repo, target.id)
    merge_msg = Path(repo.path) / "MERGE_MSG"
    # libgit2 writes "Merge commit '<id>'"; name the branch so the history reads well.
    # Its "#Conflicts:" lines follow and are kept.
    lines = merge_msg.read_text().splitlines(keepends=True) if merge_msg.exists() else []
    merge_msg.write_text(message + "\n" + "".join(lines[1:]))
    index = repo.index
    conflicts = _conflicted(index)
    if conflicts:
        return conflicts
    # Only what the merge staged: untracked files stay out of the merge commit.
    signature = _signature(repo)
    repo.create_commit("HEAD", signature, signature, message, index.write_tree(), [head, target.id])
    repo.state_cleanup()
    return []


def _tracked_changes(repo: pygit2.Repository) -> list[str]:
    status = repo.status(untracked_files="no", ignored=False)
    return sorted(path for path, flags in status.items() if flags != FileStatus.CURRENT)


def _merge_message(repo: pygit2.Repository, onto: pygit2.Oid) -> str:
    return f"Merge {INTEGRATION_BRANCH} ({_short(onto)}) into {repo.head.shorthand}"


def changed_files(repo_path: Path, base: str, head: str) -> list[str]:
    """Paths that differ between two commits."""
    repo = _open(repo_path)
    return _tree_paths(repo, _commit(repo, base).tree, _commit(repo, head).tree)


def branch_changes(repo_path: Path, onto: str, branch: str) -> list[str]:
    """Paths ``branch`` changed since it diverged from ``onto`` (empty: nothing to merge)."""
    repo = _open(repo_path)
    base = _commit(repo, onto).id
    head = _ref_commit(repo, branch)
    # A plain diff of the two heads would also list what ``onto`` gained meanwhile.
    fork = repo.merge_base(base, head.id)
    old = repo[fork].peel(pygit2.Tree) if fork is not None else None
    return _tree_paths(repo, old, head.tree)


# A pre-push hook is skipped by `git push --no-verify`, so every push URL is also
# rewritten to an `ext::` command that prints the refusal and fails. ext is allowed for
# URLs the agent names only ("user"), never for submodules a clone brings in.
_REFUSING_URL = "ext::sh -c echo% '" + PUSH_REFUSED.replace(" ", "% ") + "'% >&2;% exit% 1 "


def install_push_guard(hooks_dir: Path) -> dict[str, str]:
    """Write a refusing pre-push hook; return the git environment that makes agents use it."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    hook = hooks_dir / "pre-push"
    hook.write_text(f"#!/bin/sh\necho '{PUSH_REFUSED}' >&2\nexit 1\n")
    hook.chmod(0o755)
    # GIT_CONFIG_COUNT/KEY/VALUE (git >= 2.31) configure only the processes that get
    # this environment; the user's own git config is not touched.
    return {
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "core.hooksPath",
        "GIT_CONFIG_VALUE_0": str(hooks_dir.absolute()),
        "GIT_CONFIG_KEY_1": f"url.{_REFUSING_URL}.pushInsteadOf",
        "GIT_CONFIG_VALUE_1": "",
        "GIT_CONFIG_KEY_2": "protocol.ext.allow",
        "GIT_CONFIG_VALUE_2": "user",
    }


def add_git_config(env: dict[str, str], key: str, value: str) -> None:
    """Add ``key = value`` to the git config that ``env`` gives the processes that get it.

    Appended after the ``GIT_CONFIG_KEY_n`` entries already there (`install_push_guard`'s),
    so none is overwritten.
    """
    count = int(env.get("GIT_CONFIG_COUNT") or 0)
    env[f"GIT_CONFIG_KEY_{count}"] = key
    env[f"GIT_CONFIG_VALUE_{count}"] = value
    env["GIT_CONFIG_COUNT"] = str(count + 1)


def _common_dir(repo: pygit2.Repository) -> Path:
    """The git folder holding the refs: a linked worktree's names the shared one."""
    common = Path(repo.path)
    pointer = common / "commondir"
    if pointer.is_file():
        common = (common / pointer.read_text().strip()).resolve()
    return common


def _lock_path(repo: pygit2.Repository, branch: str) -> Path:
    return _common_dir(repo) / (_ref_name(branch) + ".lock")


def branch_lock(repo_path: Path, branch: str, now: float | None = None) -> BranchLock | None:
    """The lock file of ``branch`` (``refs/heads/<branch>.lock``), if there is one, with
    its age at ``now`` (None: the time now, epoch seconds); None when there is none.
    Raises `VcsError` if the repository cannot be opened."""
    repo = _open(repo_path)
    path = _lock_path(repo, branch)
    try:
        # Not followed: a link there is no lock of git's, and never read through.
        info = path.lstat()
        data = path.read_bytes()[:100] if path.is_file() and not path.is_symlink() else b""
    except FileNotFoundError:
        return None
    except OSError as err:
        raise VcsError(f"{path}: cannot be read ({err.strerror})") from None
    age = (time.time() if now is None else now) - info.st_mtime
    ours = _fast_forward_on_integration(repo, branch, data)
    return BranchLock(path=path, age_s=max(0.0, age), ours=ours)


def _fast_forward_on_integration(repo: pygit2.Repository, branch: str, data: bytes) -> bool:
    """Whether ``data`` (a ref lock's content: the id being written) moves ``branch``
    forward along the integration branch, as `advance_main` does (a user's reset goes
    back, a user's commit elsewhere)."""
    text = data.decode("ascii", "replace").strip()
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", text):
        return False
    try:
        head = repo.lookup_reference(_ref_name(INTEGRATION_BRANCH)).target
        now = repo.lookup_reference(_ref_name(branch)).target
        oid = pygit2.Oid(hex=text)
        on_integration = oid == head or repo.descendant_of(head, oid)
        return bool(on_integration and oid != now and repo.descendant_of(oid, now))
    except (KeyError, ValueError, pygit2.GitError):
        return False


def _held_too_long(lock: Path, wait: float, branch: str) -> str:
    return (
        f"{lock} stayed there {wait:g} s (a git command moving {branch}? if none runs, "
        "remove the file)"
    )


def _wait_unlocked(lock: Path, wait: float) -> bool:
    """Wait up to ``wait`` seconds for ``lock`` to go (a git of the user's done with the
    ref); whether it went."""
    deadline = time.monotonic() + wait
    while os.path.lexists(lock):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def clear_branch_lock(repo_path: Path, branch: str, wait: float = 0.0) -> BranchLock | None:
    """Make sure no lock stops a move of ``branch`` now, with the run lock held (at a
    start: no merge queue of the project runs) or from the merge queue itself.

    A stale lock (`lock_is_stale`: Autonoma's own move, killed, or one older than
    `STALE_LOCK_AGE`, which no running git holds) is removed and returned, for the
    caller to say so. A fresher one is waited for, blocking up to ``wait`` seconds.
    Returns None when there was no lock or it went. Raises `BranchLocked` when it stays
    (`BranchLocked.held` says which) or cannot be removed; `VcsError` when the
    repository or the lock cannot be read.
    """
    lock = branch_lock(repo_path, branch)
    if lock is None:
        return None
    if lock_is_stale(lock):
        try:
            lock.path.unlink()
        except FileNotFoundError:
            return None  # its git let it go meanwhile
        except OSError as err:
            raise BranchLocked(f"{lock.path}: cannot be removed ({err.strerror})") from None
        return lock
    if _wait_unlocked(lock.path, wait):
        return None
    raise BranchLocked(_held_too_long(lock.path, wait, branch), held=lock)


def remove_stale_ref_locks(repo_path: Path) -> list[Path]:
    """Remove the ref locks (``refs/heads/autonoma/**.lock``) a killed Autonoma left.

    git makes ``<ref>.lock`` while it moves a ref and renames it over the ref when done;
    a SIGKILL in between leaves it, and every later move of that ref fails ("failed to
    lock file"). Only Autonoma moves its own branches, so call this with the run lock
    held (no run of the project active). Returns the locks removed; never raises.
    """
    try:
        repo = _open(repo_path)
    except VcsError:
        return []
    base = _common_dir(repo) / "refs" / "heads" / "autonoma"
    removed: list[Path] = []
    if base.is_dir() and not base.is_symlink():
        for lock in sorted(base.rglob("*.lock")):
            try:
                lock.unlink()
            except OSError:
                continue
            removed.append(lock)
    return removed
