"""The web view's build and the desktop app's: what ships, what is checked, what fails here.

The committed ``autonoma/desktop/static`` must be what ``desktop/build-web.ts`` makes of
``desktop/src`` (so the wheel needs no Node and nothing goes stale); the TypeScript passes
its own tables (``bun test``) and the type checker against Electrobun's real API; and
``autonoma build-desktop`` says in one line, exit 1, that Electrobun's toolchain cannot be
downloaded where it cannot (here: no route to GitHub; a dead proxy makes it so anywhere).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autonoma import desktop_build
from autonoma.desktop_build import Platform, plan, why_failed

ROOT = Path(__file__).resolve().parents[2]
DESKTOP = ROOT / "desktop"
STATIC = ROOT / "autonoma" / "desktop" / "static"
BUILT = ("app.css", "app.js", "index.html")


def bun() -> str:
    """The project's bun: `make bun` (which `make test` runs) installs it from npm."""
    try:
        return desktop_build.find_bun()
    except desktop_build.BuildFailed:
        pytest.fail("the web view's build needs bun: `make bun`")


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """desktop/node_modules from desktop/package-lock.json (npm registry only)."""
    modules = DESKTOP / "node_modules"
    if not (modules / "electrobun" / "package.json").is_file():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=DESKTOP,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return modules


def test_the_committed_web_view_is_built_from_the_sources(tmp_path: Path) -> None:
    out = tmp_path / "static"
    done = subprocess.run(
        [bun(), str(DESKTOP / "build-web.ts"), str(out)],
        cwd=tmp_path,  # any folder: the bytes do not depend on it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(BUILT)
    assert sorted(p.name for p in STATIC.iterdir()) == sorted(BUILT)
    for name in BUILT:
        assert (out / name).read_bytes() == (STATIC / name).read_bytes(), (
            f"autonoma/desktop/static/{name} is not the build of desktop/src: `make webview`"
        )


def test_the_web_view_and_the_shell_pass_their_tables() -> None:
    done = subprocess.run(
        [bun(), "test", "src"], cwd=DESKTOP, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b0 fail\b", done.stdout + done.stderr), done.stdout + done.stderr


def test_the_page_and_the_shell_type_check_against_electrobuns_api(node_modules: Path) -> None:
    done = subprocess.run(
        ["node", str(node_modules / "typescript" / "bin" / "tsc"), "--noEmit", "-p", "."],
        cwd=DESKTOP,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 2), done.stdout + done.stderr  # 2: errors were found
    errors = [line for line in done.stdout.splitlines() if re.search(r": error TS\d+:", line)]
    # Electrobun ships its API as TypeScript sources, checked with ours: only ours count.
    ours = [line for line in errors if not line.startswith("node_modules/")]
    assert ours == [], "\n".join(ours)


def test_the_page_inserts_text_as_text_and_fetches_nothing_remote() -> None:
    for path in (DESKTOP / "src").rglob("*.ts"):
        code = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in code, f"{path.name} uses {sink}"
    for name in BUILT:
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", text.replace("${", "")), name
        assert "@import" not in text and "@font-face" not in text, name


def test_the_wheel_ships_the_web_view(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("autonoma-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in BUILT:
        assert f"autonoma/desktop/static/{name}" in names


# --- autonoma build-desktop ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "here", "build_here", "elsewhere"),
    [
        (None, "linux", ["linux"], []),
        (None, "darwin", ["darwin"], []),
        (None, None, [], []),
        ("linux", "linux", ["linux"], []),
        ("darwin", "linux", [], ["darwin"]),
        ("win32", "darwin", [], ["win32"]),
        ("all", "linux", ["linux"], ["darwin", "win32"]),
        ("all", "win32", ["win32"], ["darwin", "linux"]),
        ("all", None, [], ["darwin", "win32", "linux"]),
    ],
)
def test_what_this_machine_builds(
    choice: str | None,
    here: Platform | None,
    build_here: list[str],
    elsewhere: list[str],
) -> None:
    assert plan(choice, here) == (build_here, elsewhere)


DOWNLOAD_LINE = (
    "Electrobun's toolchain could not be downloaded (its npm package fetches it from "
    "github.com/blackboardsh/electrobun releases: {}); the web view works in any browser: "
    "`autonoma dashboard --web`"
)


@pytest.mark.parametrize(
    ("output", "code", "line"),
    [
        (
            "Downloading electrobun CLI for your platform...\n"
            "Error: Failed to download electrobun CLI: getaddrinfo ENOTFOUND github.com\n",
            1,
            DOWNLOAD_LINE.format(
                "Failed to download electrobun CLI: getaddrinfo ENOTFOUND github.com"
            ),
        ),
        (
            "Downloading core binaries for linux-x64...\n"
            "Failed to download core dependencies for linux-x64: Download failed: 404\n",
            1,
            DOWNLOAD_LINE.format(
                "Failed to download core dependencies for linux-x64: Download failed: 404"
            ),
        ),
        (
            "Error: Failed to download electrobun CLI: connect ECONNREFUSED 127.0.0.1:9\n",
            1,
            DOWNLOAD_LINE.format(
                "Failed to download electrobun CLI: connect ECONNREFUSED 127.0.0.1:9"
            ),
        ),
        (
            "Build failed: TypeError: x is undefined\n\n",
            1,
            "the Electrobun build failed (exit 1): Build failed: TypeError: x is undefined",
        ),
        ("", 137, "the Electrobun build failed (exit 137): no output"),
    ],
)
def test_why_a_build_failed_in_one_line(output: str, code: int, line: str) -> None:
    assert why_failed(output, code) == line


def _build_desktop(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    # A dead proxy: Electrobun's download fails here and on any machine (it honours it).
    env.update(HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    env["PATH"] = os.pathsep.join([str(Path(bun()).parent), env.get("PATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "autonoma", "build-desktop", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(desktop_build.host() != "linux", reason="the Linux app builds on Linux")
def test_build_desktop_says_in_one_line_that_electrobun_cannot_be_downloaded(
    node_modules: Path,
) -> None:
    for args in ([], ["--platform", "linux"]):
        done = _build_desktop(*args)
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("autonoma: Electrobun's toolchain could not be downloaded ")
        assert lines[0].endswith("the web view works in any browser: `autonoma dashboard --web`")
    # Nothing was left half-built in desktop/.
    assert not (DESKTOP / "build").exists()


@pytest.mark.skipif(desktop_build.host() != "linux", reason="run where macOS is another system")
def test_build_desktop_for_another_system_says_where_to_build_it() -> None:
    done = _build_desktop("--platform", "darwin")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "autonoma: the macOS app is not built here: Electrobun builds an app on the system it "
        "is for (`make desktop-mac` on macOS); the web view works in any browser: "
        "`autonoma dashboard --web`"
    ]
    done = _build_desktop("--platform", "beos")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1


def test_the_make_targets_call_build_desktop() -> None:
    for target, option in [
        ("desktop", ""),
        ("desktop-mac", " --platform darwin"),
        ("desktop-win", " --platform win32"),
        ("desktop-linux", " --platform linux"),
    ]:
        done = subprocess.run(
            ["make", "-n", target],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert f"autonoma build-desktop{option}\n" in done.stdout, done.stdout
