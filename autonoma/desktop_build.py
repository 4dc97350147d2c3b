"""``autonoma build-desktop``: the Electrobun app of ``desktop/``, built where it can be.

The app is built from a source checkout (its ``desktop/`` folder), with the project's bun
(``.tools/bun``, ``make bun``) and Electrobun from npm (``desktop/package.json``, pinned).
Electrobun's npm package is only a bootstrap: its first use downloads the Electrobun
toolchain from GitHub's releases, outside the package registries. Where that download
fails, the build says so in one line and ends non-zero; the web view needs none of it
(``autonoma dashboard --web`` opens it in any browser).

Electrobun builds an app for the system it runs on: the macOS app is built on macOS, the
Windows one on Windows. `plan` decides what this machine can build (a pure table);
`build` runs the tools (npm, then Electrobun) and blocks until they end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

Platform = Literal["darwin", "win32", "linux"]
PLATFORMS: tuple[Platform, ...] = ("darwin", "win32", "linux")
NAMES: dict[Platform, str] = {"darwin": "macOS", "win32": "Windows", "linux": "Linux"}
MAKE_TARGETS: dict[Platform, str] = {
    "darwin": "desktop-mac",
    "win32": "desktop-win",
    "linux": "desktop-linux",
}

CHECKOUT = Path(__file__).resolve().parents[1]
"""The source checkout this package runs from (when it is one)."""

LOCAL_BUN = CHECKOUT / ".tools" / "bun" / "node_modules" / ".bin" / "bun"

NPM_TIMEOUT_S = 600.0
BUILD_TIMEOUT_S = 1800.0

WEB_VIEW_HINT = "the web view works in any browser: `autonoma dashboard --web`"

# What a failed download of Electrobun's toolchain prints (its bootstrap, then its CLI).
_DOWNLOAD = re.compile(
    r"Failed to download|Download failed|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET"
    r"|ETIMEDOUT|getaddrinfo|Unable to connect|certificate|socket hang up",
    re.IGNORECASE,
)


class BuildFailed(Exception):
    """The build cannot be done here; ``str(err)`` is one line for the user."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def host() -> Platform | None:
    """This machine's platform in Electrobun's (Node's) words; None for another system."""
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform == "win32":
        return "win32"
    if sys.platform.startswith("linux"):
        return "linux"
    return None


def plan(choice: str | None, here: Platform | None) -> tuple[list[Platform], list[Platform]]:
    """What to build here for ``choice`` (None: this machine; "all"), and what needs its own OS.

    Pure. Returns ``(build_here, elsewhere)``.
    """
    if choice is None:
        wanted: list[Platform] = [here] if here is not None else []
    elif choice == "all":
        wanted = list(PLATFORMS)
    else:
        wanted = [p for p in PLATFORMS if p == choice]
    return [p for p in wanted if p == here], [p for p in wanted if p != here]


def elsewhere_line(platform: Platform) -> str:
    """One line: this platform's app is built on that platform."""
    return (
        f"the {NAMES[platform]} app is not built here: Electrobun builds an app on the "
        f"system it is for (`make {MAKE_TARGETS[platform]}` on {NAMES[platform]}); "
        f"{WEB_VIEW_HINT}"
    )


def why_failed(output: str, code: int) -> str:
    """The one line for a failed Electrobun build, from what it printed. Pure."""
    if _DOWNLOAD.search(output):
        detail = next(
            (line.strip() for line in reversed(output.splitlines()) if _DOWNLOAD.search(line)),
            "",
        )
        detail = re.sub(r"^(Error:\s*)+", "", detail)
        return (
            "Electrobun's toolchain could not be downloaded (its npm package fetches it from "
            f"github.com/blackboardsh/electrobun releases: {_short(detail)}); {WEB_VIEW_HINT}"
        )
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
    return f"the Electrobun build failed (exit {code}): {_short(last) or 'no output'}"


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def source() -> Path:
    """The ``desktop/`` folder of this source checkout; raises BuildFailed outside one."""
    desktop = CHECKOUT / "desktop"
    if not (desktop / "package.json").is_file():
        raise BuildFailed(
            "build-desktop builds from a source checkout of autonoma (its desktop/ folder), "
            f"and this one has none; {WEB_VIEW_HINT}"
        )
    return desktop


def find_bun() -> str:
    """The project's bun (``make bun``), or one on PATH; raises BuildFailed without one."""
    if LOCAL_BUN.exists():
        return str(LOCAL_BUN)
    found = shutil.which("bun")
    if found:
        return found
    raise BuildFailed("build-desktop needs bun: `make bun` installs it into .tools/bun (from npm)")


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Runs ``argv`` to its end (at most ``timeout`` s); its exit code and its output."""
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise BuildFailed(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"`{' '.join(argv[:3])}` did not end in {timeout:.0f} s") from None
    return done.returncode, done.stdout


def install(desktop: Path, env: dict[str, str]) -> None:
    """``npm ci`` in ``desktop`` (Electrobun and TypeScript, from the npm registry) if needed."""
    if (desktop / "node_modules" / "electrobun" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise BuildFailed("build-desktop needs npm (Node.js) to install Electrobun")
    code, out = _run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], desktop, env, NPM_TIMEOUT_S
    )
    if code != 0:
        last = next((line for line in reversed(out.splitlines()) if line.strip()), "")
        raise BuildFailed(f"npm could not install desktop/'s packages: {_short(last)}")


def build(platform: Platform) -> Path:
    """Builds the app for ``platform`` (this machine's); returns Electrobun's artifacts folder.

    Blocks while npm and Electrobun run (minutes on a first build: Electrobun downloads its
    toolchain). Raises BuildFailed with one line when it cannot.
    """
    if platform != host():
        raise BuildFailed(elsewhere_line(platform))
    desktop = source()
    bun = find_bun()
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(bun).parent), env.get("PATH", os.defpath)])
    install(desktop, env)
    node = shutil.which("node", path=env["PATH"])
    if node is None:
        raise BuildFailed("build-desktop needs node (Node.js) to run Electrobun's npm package")
    electrobun = desktop / "node_modules" / "electrobun" / "bin" / "electrobun.cjs"
    code, out = _run(
        [node, str(electrobun), "build", "--env=stable"], desktop, env, BUILD_TIMEOUT_S
    )
    if code != 0:
        raise BuildFailed(why_failed(out, code))
    return desktop / "artifacts"
