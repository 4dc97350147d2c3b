"""Clone bench: making a task's clone, bringing its branch back, and QA's checkout.

On a repository (``--repo``, e.g. the result of ``autonoma demo --dir``) or on a new one
of ``--files`` files in 40 folders: `clones.create_clone` (init, alternates, checkout),
then a commit of ``--changed`` files in the clone (by the real git, as an agent
would), then `clones.fetch_branch` into the repository, then `clones.make_checkout`
of the branch (QA's), each timed ``-n`` times; the medians are printed.

Run: ``.venv/bin/python bench/clones.py [--repo PATH | --files 2000] [-n 5]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from autonoma.vcs import clones, workspace


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_repo(where: Path, files: int) -> Path:
    root = where / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for i in range(files):
        folder = root / f"d{i % 40}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.py").write_text(f"# file {i}\n" + "x = 1\n" * 40)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "files")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, help="an existing repository (on main)")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--changed", type=int, default=10)
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="clones-bench-"))
    try:
        if args.repo is not None:
            root = scratch / "repo"
            # A copy: the bench makes branches and objects.
            shutil.copytree(args.repo, root, symlinks=True)
        else:
            root = make_repo(scratch, args.files)
        tracked = git(root, "ls-files").split()
        main_branch = workspace.current_branch(root)
        base = workspace.ensure_integration(root, main_branch)
        made, fetched, checked = [], [], []
        for n in range(args.n):
            run = f"b{n}"
            began = time.perf_counter()
            branch, path = clones.create_clone(root, scratch / "clones", "t1", base, run=run)
            made.append(time.perf_counter() - began)
            for name in tracked[: args.changed]:
                with (path / name).open("a") as out:
                    out.write(f"# changed {n}\n")
            (path / f"new{n}.txt").write_text("new\n")
            git(path, "add", "-A")
            git(path, "commit", "-q", "-m", "work")
            began = time.perf_counter()
            clones.fetch_branch(root, path, branch)
            fetched.append(time.perf_counter() - began)
            began = time.perf_counter()
            review = scratch / "clones" / run / "_review" / "t1-1"
            clones.make_checkout(root, review, branch, branch=branch)
            checked.append(time.perf_counter() - began)
        print(f"repository: {len(tracked)} tracked files; {args.changed + 1} files changed")
        for what, times in (
            ("create_clone", made),
            ("fetch_branch", fetched),
            ("make_checkout", checked),
        ):
            print(f"{what:14} median {statistics.median(times) * 1000:7.1f} ms  (n={len(times)})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
