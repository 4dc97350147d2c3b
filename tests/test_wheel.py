"""The wheel, as a new user gets it: built from the source tree, installed in a clean venv
outside it, and run from empty folders with nothing of the source tree on any path.

The roles, the samples and the sim's example must come from the installed package
(importlib.resources), never from beside the source tree. Dependencies come from PyPI
through pip's cache; claude is the project-local one, named by AUTONOMA_CLAUDE_PATH as
a wheel user would name theirs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from autonoma.agents.port import CLAUDE_NOT_FOUND
from tests.e2e.runs import SCENARIOS, make_project

ROOT = Path(__file__).resolve().parents[1]
CLAUDE = ROOT / ".tools" / "claude" / "node_modules" / ".bin" / "claude"
APPROVES_ALL = SCENARIOS / "approves_all.toml"  # a small run: three files, all approved
STEP_TIMEOUT = 240.0


@dataclass(frozen=True)
class Installed:
    """A wheel built from the source tree and a venv, outside it, with the wheel installed."""

    wheel: Path
    venv: Path
    tmp: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self) -> dict[str, str]:
        """The user's environment: the venv first on PATH, nothing of the source tree."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AUTONOMA_", "PYTHON", "VIRTUAL_ENV"))
        }
        path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if not _inside(p, ROOT)]
        env["PATH"] = os.pathsep.join([str(self.bin), *path])
        env["AUTONOMA_CLAUDE_PATH"] = str(CLAUDE)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def run(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """A command of the venv (``autonoma``, ``python``), from ``cwd``, to its end."""
        assert not _inside(str(cwd), ROOT), cwd
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
        )

    def empty_folder(self, name: str) -> Path:
        folder = self.tmp / name
        folder.mkdir()
        return folder


def _inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder)


def _source_tree(into: Path) -> Path:
    """The source tree as git sees it (tracked and new files, not ignored ones), copied.

    The build writes ``build/`` and ``*.egg-info`` beside the sources: into the copy,
    not into the checkout.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the checkout is not shipped
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """``pip wheel`` of the source tree, then ``python -m venv`` and ``pip install`` of it."""
    if not CLAUDE.exists():
        pytest.fail(f"no claude at {CLAUDE}: run `make claude`")
    tmp = tmp_path_factory.mktemp("wheel")
    assert not _inside(str(tmp), ROOT)
    source = _source_tree(tmp / "src")
    dist = tmp / "dist"
    quiet = ["--quiet", "--disable-pip-version-check"]
    build = [sys.executable, "-m", "pip", "wheel", *quiet, "--no-deps", "-w", str(dist), "."]
    subprocess.run(build, cwd=source, check=True, timeout=STEP_TIMEOUT)
    (wheel,) = dist.glob("autonoma-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=STEP_TIMEOUT)
    result = Installed(wheel, venv, tmp)
    install = result.run("python", "-m", "pip", "install", *quiet, str(wheel), cwd=tmp)
    assert install.returncode == 0, install.stderr
    return result


def test_the_wheel_holds_the_roles_the_samples_and_the_sim_example(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    roles = {f"autonoma/actors/{r}.md" for r in ("ceo", "staff_engineer", "developer", "qa")}
    assert roles <= names
    assert {
        "autonoma/examples/todo/requirements.md",
        "autonoma/examples/todo/scenario.toml",
        "autonoma/sim/example.toml",
        "autonoma/sim/README.md",
    } <= names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(installed.wheel).read(metadata).decode()
    assert "Classifier: Operating System :: POSIX :: Linux" in text


def test_the_installed_autonoma_is_the_wheel_not_the_source_tree(installed: Installed) -> None:
    folder = installed.empty_folder("import")
    found = installed.run(
        "python",
        "-c",
        "import autonoma, autonoma.demo, autonoma.agents.roles as r;"
        "print(autonoma.__file__); print(autonoma.demo.sample_dir('todo'));"
        "print(r.load_role('developer').path)",
        cwd=folder,
    )
    assert found.returncode == 0, found.stderr
    site_packages = installed.venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for line in found.stdout.splitlines():
        assert Path(line).is_relative_to(site_packages / "site-packages"), line
        assert not _inside(line, ROOT), line
    shown = installed.run("autonoma", "--help", cwd=folder)
    assert shown.returncode == 0, shown.stderr
    assert "demo" in shown.stdout and "start" in shown.stdout


def test_the_demo_runs_from_an_empty_folder_and_its_main_passes_its_tests(
    installed: Installed,
) -> None:
    here = installed.empty_folder("demo-cwd")
    target = installed.tmp / "demo"
    demo = installed.run("autonoma", "demo", "--dir", str(target), cwd=here)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "done. 6 tasks: 6 merged" in demo.stdout
    copied_from = demo.stdout.split("(a copy of ", 1)[1].split(";", 1)[0]
    assert Path(copied_from).is_relative_to(installed.venv), copied_from
    # The merged main, checked out afresh, passes its own tests.
    check = installed.tmp / "demo-main"
    pygit2.clone_repository(str(target), str(check), checkout_branch="main")
    tests = installed.run(
        "python", "-m", "unittest", "discover", "-s", "tests", "-t", ".", cwd=check
    )
    assert tests.returncode == 0, tests.stderr
    assert list(here.iterdir()) == []  # nothing was written where the command was run


def test_init_start_and_status_in_a_fresh_repository(installed: Installed) -> None:
    root = make_project(installed.tmp)  # a fresh git repository holding requirements.md
    init = installed.run("autonoma", "init", cwd=root)
    assert init.returncode == 0, init.stderr
    assert (root / ".autonoma" / "config.toml").is_file()
    empty = installed.run("autonoma", "status", cwd=root)
    assert empty.returncode == 0, empty.stderr
    started = installed.run(
        "autonoma", "start", "requirements.md", "--scenario", str(APPROVES_ALL), cwd=root
    )
    assert started.returncode == 0, started.stdout + started.stderr
    repo = pygit2.Repository(str(root))
    tree = repo.revparse_single("main").peel(pygit2.Tree)
    assert {"t1.txt", "t2.txt", "t3.txt"} <= {entry.name for entry in tree}
    status = installed.run("autonoma", "status", cwd=root)
    assert status.returncode == 0, status.stderr
    assert "done" in status.stdout


def test_without_claude_a_wheel_user_is_told_how_to_name_it(installed: Installed) -> None:
    root = make_project(installed.tmp, "no-claude")
    env = installed.env()
    del env["AUTONOMA_CLAUDE_PATH"]
    # No claude on it, and no source checkout beside; the sandbox's tools are there, so
    # the missing claude is what start names.
    tools = installed.tmp / "sandbox-tools"
    tools.mkdir(exist_ok=True)
    for name in ("bwrap", "socat"):
        found = shutil.which(name)
        assert found, f"{name} is needed (make test installs it)"
        with contextlib.suppress(FileExistsError):
            (tools / name).symlink_to(found)
    env["PATH"] = f"{installed.bin}:{tools}"
    started = subprocess.run(
        [str(installed.bin / "autonoma"), "start", "requirements.md"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    assert started.returncode == 1
    assert started.stdout == ""
    assert started.stderr == f"autonoma: {CLAUDE_NOT_FOUND}\n"
    assert "claude_path" in CLAUDE_NOT_FOUND and "PATH" in CLAUDE_NOT_FOUND
