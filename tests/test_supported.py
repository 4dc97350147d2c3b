"""On a system other than Linux, the command says in one line what it needs, and exits 2.

The real CLI runs in a child process whose platform is faked from outside, by a
``sitecustomize.py`` on its PYTHONPATH: ``sys.platform`` and ``platform.system()``
say another system, and the Linux-only modules the program imports (fcntl, termios)
cannot be imported, as on a system without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autonoma.supported import NEEDS, unsupported_reason

FAKE = """\
import platform, sys
sys.platform = {platform!r}
platform.system = lambda: {system!r}
for name in ("fcntl", "termios"):
    sys.modules[name] = None  # import fails, as where the module does not exist
"""


@pytest.mark.parametrize(
    ("system", "name", "supported"),
    [
        ("linux", "Linux", True),
        ("darwin", "Darwin", False),
        ("win32", "Windows", False),
        ("freebsd14", "FreeBSD", False),
        ("cygwin", "CYGWIN_NT-10.0", False),
    ],
)
def test_only_linux_is_supported(system: str, name: str, supported: bool) -> None:
    reason = unsupported_reason(system, name)
    if supported:
        assert reason is None
    else:
        assert reason == f"{NEEDS}; this system is {name}"


def _autonoma(
    args: list[str], tmp_path: Path, fake: str | None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    if fake is not None:
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(fake)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "autonoma", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("platform", "system"), [("darwin", "Darwin"), ("win32", "Windows")])
@pytest.mark.parametrize("args", [["--help"], ["status"], ["demo"]])
def test_another_system_gets_one_line_and_exit_2(
    tmp_path: Path, platform: str, system: str, args: list[str]
) -> None:
    ran = _autonoma(args, tmp_path, FAKE.format(platform=platform, system=system))
    assert ran.returncode == 2, ran.stderr
    assert ran.stdout == ""
    assert ran.stderr == f"autonoma: {NEEDS}; this system is {system}\n"
    assert "Linux" in NEEDS and "/proc" in NEEDS and "PR_SET_PDEATHSIG" in NEEDS
    assert list(tmp_path.iterdir()) == [tmp_path / "site"]  # nothing made


def test_the_fake_is_what_stops_it(tmp_path: Path) -> None:
    # The same child on this Linux machine, without the fake: the command runs.
    ran = _autonoma(["--help"], tmp_path, None)
    assert ran.returncode == 0, ran.stderr
    assert "Usage:" in ran.stdout and "demo" in ran.stdout
