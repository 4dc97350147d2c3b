"""Per-task clones: where agents work, so that nothing they run can write the user's repository.

A `git worktree` shares the user's whole ``.git`` (refs, objects, config), and claude's
sandbox makes all of it writable for Bash in a worktree (docs/sandbox.md, section 2). A
clone is a repository of its own: its ``.git`` holds its refs, index and the objects
the agent makes, and it borrows every existing object read-only from the user's store
through ``objects/info/alternates`` (what ``git clone --shared`` does). The sandbox
lets an agent write only its clone's folder, so the user's refs and objects are out of
reach. The clone has no remote: nothing in it names the user's repository but the
alternates file, which git only reads.

Autonoma brings a task's work back itself (`fetch_branch`): the objects of the clone's
task branch that the user's repository lacks are copied with pygit2, then the user's
``autonoma/<run>/<task>`` is set to the clone's head. No other ref of the clone is ever
read, no tag follows, no git process runs, and no hook or config of the clone is used.

Caveat (as for ``git clone --shared``): a clone breaks if the user's repository prunes
objects it borrows (``git gc --prune=now`` after a branch was deleted). Autonoma never
runs gc in the user's repository.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy, ObjectType

from autonoma.vcs.workspace import (
    INTEGRATION_BRANCH,
    VcsError,
    _checkout,
    _commit,
    _open,
    _ref_name,
    _where,
    check_name,
    task_branch,
)

FETCH_LIMIT_BYTES = 1 << 30
"""At most this many bytes of new objects are brought back from a clone per fetch."""

FETCH_LIMIT_OBJECTS = 200_000
"""At most this many new objects are brought back from a clone per fetch."""

_COPIED_CONFIG = ("user.name", "user.email")


def _common_dir(repo: pygit2.Repository) -> Path:
    git_dir = Path(repo.path)
    pointer = git_dir / "commondir"
    if pointer.exists():
        return (git_dir / pointer.read_text().strip()).resolve()
    return git_dir.resolve()


def _objects_dir(repo: pygit2.Repository) -> Path:
    return _common_dir(repo) / "objects"


def clone_path(clones_dir: Path, run: str, task_id: str) -> Path:
    """Where ``task_id``'s clone of run ``run`` lives: ``clones_dir/<run>/<task_id>``."""
    return (clones_dir / run / task_id).absolute()


def _init_shared(user: pygit2.Repository, path: Path, head: str) -> pygit2.Repository:
    """A new repository at ``path`` borrowing ``user``'s objects, HEAD on ``head``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        pygit2.init_repository(str(path), initial_head=head)
    except pygit2.GitError as error:
        raise VcsError(f"{_where(user)}: cannot make a clone at {path}: {error}") from error
    git_dir = path / ".git"
    info = git_dir / "objects" / "info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "alternates").write_text(f"{_objects_dir(user)}\n")
    # The user's own excludes (.git/info/exclude) applied in their repository's worktrees.
    exclude = _common_dir(user) / "info" / "exclude"
    if exclude.is_file():
        with contextlib.suppress(OSError):
            (git_dir / "info").mkdir(exist_ok=True)
            shutil.copyfile(exclude, git_dir / "info" / "exclude")
    clone = pygit2.Repository(str(path))
    config = clone.config
    for key in _COPIED_CONFIG:
        # A repository-local identity of the user's holds in the clone too.
        with contextlib.suppress(KeyError, pygit2.GitError):
            config[key] = str(user.config[key])
    return clone


def _check_out(clone: pygit2.Repository, commit: pygit2.Oid, branch: str | None) -> None:
    target = clone[commit]
    if branch is not None:
        clone.references.create(_ref_name(branch), commit, force=True)
        clone.set_head(_ref_name(branch))
    else:
        clone.set_head(commit)
    try:
        _checkout(clone, target.peel(pygit2.Tree), CheckoutStrategy.FORCE)
    except pygit2.GitError as error:
        raise VcsError(f"{_where(clone)}: cannot check out {str(commit)[:10]}: {error}") from error


def set_local_ref(clone: Path, ref: str, commit: str) -> None:
    """Point ``ref`` of the clone at ``commit`` (a clone-local name, e.g. the integration head).

    Nothing ever brings it back; it lets an agent name ``autonoma/integration``.
    """
    repo = _open(clone)
    try:
        repo.references.create(_ref_name(ref), pygit2.Oid(hex=commit), force=True)
    except (ValueError, pygit2.GitError) as error:
        raise VcsError(f"{_where(repo)}: cannot set {ref}: {error}") from error


def _is_clone_on(path: Path, branch: str) -> bool:
    git_dir = path / ".git"
    if git_dir.is_symlink() or not git_dir.is_dir():
        return False
    try:
        repo = pygit2.Repository(str(path))
    except pygit2.GitError:
        return False
    return (
        not repo.head_is_detached
        and repo.references.get("HEAD") is not None
        and (str(repo.lookup_reference("HEAD").target) == _ref_name(branch))
    )


def create_clone(
    repo_path: Path, clones_dir: Path, task_id: str, base: str, *, run: str
) -> tuple[str, Path]:
    """The task's branch (made at ``base`` in the user's repository if missing) and its clone.

    The clone is ``clones_dir/<run>/<task_id>``, on the branch ``autonoma/<run>/<task_id>``
    at the user's branch head, with the integration head as its local
    ``autonoma/integration``. An existing clone on that branch is kept as it is (a
    resumed run). Raises `VcsError` (one line) when it cannot be made.
    """
    user = _open(repo_path)
    for part in (task_id, run):
        check_name(user, part)
    branch = task_branch(task_id, run)
    path = clone_path(clones_dir, run, task_id)
    reference = user.references.get(_ref_name(branch))
    if reference is None:
        start = _commit(user, base)
        try:
            reference = user.branches.local.create(branch, start)
        except pygit2.GitError as error:
            raise VcsError(f"{_where(user)}: cannot create branch {branch}: {error}") from error
    if _is_clone_on(path, branch):
        return branch, path
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise VcsError(f"{_where(user)}: {path} exists and is not a clone of this task")
    if path.exists():
        path.rmdir()
    head = reference.peel(pygit2.Commit).id
    _make_clone(user, path, head, branch)
    return branch, path


def _partial(path: Path) -> Path:
    """Where the clone of ``path`` is made before it is renamed into place."""
    return path.with_name(f".{path.name}.partial")


def _make_clone(
    user: pygit2.Repository, path: Path, commit: pygit2.Oid, branch: str | None
) -> None:
    """A clone of ``user`` at ``path``, checked out at ``commit`` (on ``branch``, or detached).

    Made beside its place and renamed into it once whole: a half-made clone would be
    taken for a good one (or refused as a stranger's) next time, and a SIGKILL in the
    middle leaves no word; it then leaves only the partial folder, removed first here.
    Raises `VcsError`.
    """
    partial = _partial(path)
    remove_clone(partial)
    try:
        clone = _init_shared(user, partial, _ref_name(branch or "autonoma/checkout"))
        _check_out(clone, commit, branch)
        with contextlib.suppress(KeyError, VcsError):
            integration = user.lookup_reference(_ref_name(INTEGRATION_BRANCH)).target
            clone.references.create(_ref_name(INTEGRATION_BRANCH), integration, force=True)
        del clone
        partial.rename(path)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def catch_up(repo_path: Path, clone_dir: Path, branch: str, base: str) -> bool:
    """Move a task's untouched clone to ``base`` (the integration head now); whether it moved.

    Untouched: no commit of its own (its branch, in the clone and in the user's
    repository, is an ancestor of ``base``) and nothing changed in its files (ignored
    ones aside): a clone made ahead for a task whose dependency was merging, or one
    whose agent never worked. Anything else is left as it is. The clone is verified
    first (`verify_clone`). Raises `VcsError`.
    """
    user = _open(repo_path)
    clone = _verified(clone_dir, branch)
    try:
        target = _commit(user, base).id
        head = clone.lookup_reference(_ref_name(branch)).peel(pygit2.Commit).id
        ours = user.lookup_reference(_ref_name(branch)).peel(pygit2.Commit).id
        if head == target or ours != head:
            return False
        if not user.descendant_of(target, head):
            return False  # work of its own, or a base that is not ahead of it
        if any(
            flags != pygit2.enums.FileStatus.IGNORED
            for flags in clone.status(untracked_files="all").values()
        ):
            return False
        user.references.create(_ref_name(branch), target, force=True)
        _check_out(clone, target, branch)
        clone.references.create(_ref_name(INTEGRATION_BRANCH), target, force=True)
    except (KeyError, ValueError, OSError, pygit2.GitError) as error:
        raise VcsError(f"{clone_dir}: cannot move {branch} to {base[:10]}: {error}") from error
    return True


def make_checkout(
    repo_path: Path, path: Path, rev: str, *, branch: str | None = None, fresh: bool = True
) -> Path:
    """A throwaway clone at ``path`` of commit ``rev`` (a ref or id of the user's repository).

    ``branch``: on a local branch of that name (nothing brings it back), else detached.
    ``fresh``: a leftover folder is removed first; otherwise a repository there is kept.
    The user's integration head is the clone's ``autonoma/integration``. Raises `VcsError`.
    """
    user = _open(repo_path)
    path = path.absolute()
    if not fresh and (path / ".git").is_dir() and not (path / ".git").is_symlink():
        return path
    remove_clone(path)
    _make_clone(user, path, _commit(user, rev).id, branch)
    return path


def move_checkout(repo_path: Path, path: Path, rev: str, *, branch: str) -> bool:
    """Move a throwaway clone that `make_checkout` made on ``branch`` to commit ``rev``
    of the user's repository: the branch, the tracked files and the integration head, as
    a new `make_checkout` would have them, in the same folder.

    For a checkout made ahead, in which nothing ran yet but a process waiting in it:
    its folder stays. Returns whether its head changed. The clone is verified first
    (`verify_clone`). Raises `VcsError`.
    """
    user = _open(repo_path)
    path = path.absolute()
    clone = _verified(path, branch)
    commit = _commit(user, rev).id
    try:
        before = clone.head.target if not clone.head_is_unborn else None
        _check_out(clone, commit, branch)
        with contextlib.suppress(KeyError, VcsError):
            integration = user.lookup_reference(_ref_name(INTEGRATION_BRANCH)).target
            clone.references.create(_ref_name(INTEGRATION_BRANCH), integration, force=True)
    except (OSError, pygit2.GitError) as error:
        raise VcsError(f"{path}: cannot move the checkout to {rev}: {error}") from error
    return before != commit


def remove_clone(path: Path) -> None:
    """Delete a clone's folder (missing: nothing happens). Never follows a symlink."""
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _verified(clone_dir: Path, branch: str) -> pygit2.Repository:
    """The clone at ``clone_dir``, opened only if it is still the repository Autonoma made.

    An agent may have replaced ``.git`` by a file or link naming another repository (the
    user's), or made a folder of refs a link: Autonoma's own git work there (outside the
    sandbox) would then write through it. Raises `VcsError` naming what is wrong.
    """
    git_dir = clone_dir / ".git"
    if git_dir.is_symlink() or not git_dir.is_dir():
        raise VcsError(f"{clone_dir}: .git is no longer the clone's own folder")
    real = git_dir.resolve()
    walk = real
    for part in ("refs", "heads", *branch.split("/")[:-1]):
        walk = walk / part
        if walk.is_symlink():
            raise VcsError(f"{clone_dir}: .git/{walk.relative_to(real)} is a symbolic link")
    for part in ("objects", "HEAD", "index", "packed-refs"):
        if (real / part).is_symlink():
            raise VcsError(f"{clone_dir}: .git/{part} is a symbolic link")
    try:
        repo = pygit2.Repository(str(clone_dir))
    except pygit2.GitError as error:
        raise VcsError(f"{clone_dir}: not a git repository any more ({error})") from error
    if Path(repo.path).resolve() != real:
        raise VcsError(f"{clone_dir}: its git folder moved elsewhere ({repo.path})")
    return repo


def verify_clone(clone_dir: Path, branch: str) -> None:
    """Raise `VcsError` unless ``clone_dir`` is still the clone Autonoma made for ``branch``."""
    _verified(clone_dir, branch)


def _copy_objects(clone: pygit2.Repository, user: pygit2.Repository, head: pygit2.Oid) -> int:
    """Copy into ``user`` every object reachable from ``head`` it lacks; the bytes copied."""
    user_odb = user.odb
    clone_odb = clone.odb
    copied = 0
    count = 0
    seen: set[pygit2.Oid] = set()
    stack: list[pygit2.Oid] = [head]
    while stack:
        oid = stack.pop()
        if oid in seen or oid in user_odb:
            # The user has it, so (a consistent repository) all it reaches too.
            continue
        seen.add(oid)
        kind, data = clone_odb.read(oid)
        count += 1
        copied += len(data)
        if copied > FETCH_LIMIT_BYTES or count > FETCH_LIMIT_OBJECTS:
            raise VcsError(
                f"{_where(clone)}: the branch brings more than {FETCH_LIMIT_BYTES >> 20} MB "
                f"or {FETCH_LIMIT_OBJECTS} new objects; refused"
            )
        obj = clone[oid]
        if kind == ObjectType.COMMIT:
            assert isinstance(obj, pygit2.Commit)
            stack.append(obj.tree_id)
            stack.extend(obj.parent_ids)
        elif kind == ObjectType.TREE:
            assert isinstance(obj, pygit2.Tree)
            for entry in obj:
                # A gitlink (submodule) names a commit of another repository: not ours.
                if entry.filemode != pygit2.enums.FileMode.COMMIT:
                    stack.append(entry.id)
        elif kind == ObjectType.TAG:
            assert isinstance(obj, pygit2.Tag)
            stack.append(obj.target)
        user_odb.write(kind, data)
    return copied


def fetch_branch(repo_path: Path, clone_dir: Path, branch: str) -> str:
    """Bring the clone's ``branch`` into the user's repository (forced); its head.

    Only that one ref of the clone is read; its new objects are copied (at most
    `FETCH_LIMIT_BYTES`), then the user's branch is set to it, whatever it pointed at
    before (the merge gate judges the history). Raises `VcsError` (one line) for a clone
    that is not Autonoma's any more, a missing or non-commit head, a corrupt or
    oversized object store.
    """
    user = _open(repo_path)
    try:
        clone = _verified(clone_dir, branch)
        try:
            head = clone.lookup_reference(_ref_name(branch)).peel(pygit2.Commit).id
        except (KeyError, ValueError, pygit2.GitError) as error:
            raise VcsError(f"{clone_dir}: no commit on {branch} ({error})") from error
        _copy_objects(clone, user, head)
        user.references.create(_ref_name(branch), head, force=True)
        with contextlib.suppress(pygit2.GitError, OSError):
            user.lookup_reference(_ref_name(branch)).set_target(head, "autonoma: from its clone")
    except VcsError:
        raise
    except (pygit2.GitError, KeyError, ValueError, OSError, MemoryError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise VcsError(f"{clone_dir}: cannot bring {branch} back: {first}") from error
    return str(head)


def remove_clones_under(folder: Path) -> list[str]:
    """Delete every clone folder under ``folder`` (all runs); their paths, relative."""
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    for run in sorted(folder.iterdir()):
        removed.append(run.name)
        remove_clone(run)
    return removed


__all__ = [
    "FETCH_LIMIT_BYTES",
    "FETCH_LIMIT_OBJECTS",
    "catch_up",
    "clone_path",
    "create_clone",
    "fetch_branch",
    "make_checkout",
    "move_checkout",
    "remove_clone",
    "remove_clones_under",
    "set_local_ref",
    "verify_clone",
]
