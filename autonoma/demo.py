"""The offline demo: a sample project copied into a fresh git repository, ready to run.

The sample (``autonoma/examples/<name>/``, package data) holds a ``requirements.md`` and a sim
``scenario.toml`` in which the simulated model, through the real ``claude`` binary,
plays the whole company. Nothing reaches the network and no API key is asked for.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pygit2

from autonoma import project
from autonoma.project import ProjectError
from autonoma.resources import packaged

# Package data, so a wheel has them (pyproject.toml's package-data).
EXAMPLES = packaged("examples")
DEMO_WORKERS = 3
SAMPLE_FILES = ("requirements.md", "scenario.toml")


class DemoError(ProjectError):
    """The demo cannot be set up; one line."""


def sample_dir(name: str) -> Path:
    """The sample ``name`` under ``autonoma/examples/``; `DemoError` if it is not a sample."""
    folder = EXAMPLES / name
    missing = [f for f in SAMPLE_FILES if not (folder / f).is_file()]
    if missing:
        known = sorted(p.name for p in EXAMPLES.iterdir() if (p / "scenario.toml").is_file())
        raise DemoError(
            f"{folder}: not a sample project (no {', '.join(missing)}); "
            f"samples: {', '.join(known) or 'none'}"
        )
    return folder


def make_repository(sample: Path, where: Path | None = None) -> Path:
    """Copy the sample's requirements into a new git repository with one commit; its path.

    The scenario stays out of the repository: it is the model, not the project.
    """
    root = Path(tempfile.mkdtemp(prefix="autonoma-demo-")) if where is None else where
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise DemoError(f"{root}: not empty: the demo needs an empty folder")
    shutil.copyfile(sample / "requirements.md", root / "requirements.md")
    repo = pygit2.init_repository(str(root), initial_head="main")
    repo.config["user.name"] = "Autonoma demo"
    repo.config["user.email"] = "demo@autonoma.invalid"
    repo.index.add("requirements.md")
    repo.index.write()
    tree = repo.index.write_tree()
    author = pygit2.Signature("Autonoma demo", "demo@autonoma.invalid")
    repo.create_commit("HEAD", author, author, "Requirements", tree, [])
    project.init(root)
    return root


def python_bin() -> str:
    """The folder of the Python running Autonoma: first on the agents' PATH in the demo.

    The sample's tests run with ``python3``; this one is known to exist and to work.
    """
    return str(Path(sys.executable).parent)


__all__ = ["DEMO_WORKERS", "EXAMPLES", "DemoError", "make_repository", "python_bin", "sample_dir"]
