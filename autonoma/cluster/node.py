"""What runs on a cluster's node for one remote agent: a clone of its own and the same `Turn`.

`NodeAgent` is the body of a Ray actor (`autonoma.cluster.link` makes it one); it
imports no Ray itself. It shares no file system with the head: the repository arrives
as a `State` (a git bundle and a patch) and is cloned into the node's own temporary
folder, one clone per task kept across that task's turns (its path never changes, so
``--resume`` and the tools' relative paths stay right). The turn is the local agents'
`autonoma.agents.turn.Turn`: the same command line, sandbox, allowed tools, push guard
and child environment (the files it names are shipped and put on the node).

Its messages go to a buffer instead of the journal; the head takes them in order with
`next_batch`. The end of a turn (`AgentTurnFinished`, `AgentProcessExited`) is held
back until the work is captured, so the head has the commits before it hears of the end.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autonoma.agents.port import PortError
from autonoma.agents.roles import Role
from autonoma.agents.sandbox import secret_paths
from autonoma.agents.turn import Turn, TurnOutcome
from autonoma.cluster.bundle import BundleError, State, capture, clone_into, git, git_env, restore
from autonoma.config import Settings, domain_names
from autonoma.protocol import AgentProcessExited, AgentTurnFinished, AnyMessage, Envelope, SetupRan
from autonoma.runtime.bus import Bus
from autonoma.workflow.confine import Confinement
from autonoma.workflow.setup import run_setup

_SETUP_MARKER = "autonoma-setup"
"""In a node's clone's git folder: the set-up command that ran there."""

_LOCAL_IF_MISSING = ("HOME", "CLAUDE_CONFIG_DIR", "PIP_CACHE_DIR", "npm_config_cache")
"""Folders of the child environment that need not be the head's: where the head's path
does not exist on the node, the agent gets a folder of the node's own."""

_SHIPPED = re.compile(r"GIT_CONFIG_VALUE_\d+")
"""Variables whose path (the push guard's hooks, the agents' excludes file) is shipped."""

Shipped = dict[str, dict[str, tuple[bytes, int]]]
"""A head path -> its files (name -> content, mode); the name "" is the path itself."""


@dataclass(frozen=True)
class TurnSpec:
    """One turn for a node: what `autonoma.agents.agent.TurnRequest` says, made portable."""

    agent_id: str
    run_id: str
    role: Role
    prompt: str
    session_id: str
    resume: bool
    task_id: str | None
    budget_usd: float | None
    session_usd: float
    settings: Settings
    env: dict[str, str]
    claude: str
    branch: str
    """The branch the head's clone is on: the node's clone is on the same."""
    git_config: dict[str, str] = field(default_factory=dict)
    """The head clone's identity (``user.name``, ``user.email``) for the agent's commits."""
    info_exclude: bytes = b""
    """The head clone's ``.git/info/exclude``: the same files stay out of the state."""
    shipped: Shipped = field(default_factory=dict)
    setup_command: str = ""
    """The project's set-up command: run once in each new clone of the node (`prepare`)."""


@dataclass(frozen=True)
class TurnResult:
    """How a remote turn ended and the work it left, for the head to take in."""

    outcome: TurnOutcome
    state: State
    transcript: bytes = b""
    error: str = ""
    """Why the work could not be captured ("" when it was)."""


@dataclass(frozen=True)
class Batch:
    """Messages ``[first, next)`` of the node's buffer, and the result once the turn ended."""

    messages: list[AnyMessage]
    next: int
    result: TurnResult | None = None


def shipped_files(env: Mapping[str, str]) -> Shipped:
    """What the node needs of the head's files: each ``GIT_CONFIG_VALUE_n`` that is an
    existing absolute path (a file, or a folder's files, not recursive)."""
    out: Shipped = {}
    for key, value in env.items():
        if not _SHIPPED.fullmatch(key) or not value.startswith("/"):
            continue
        path = Path(value)
        if path.is_file():
            out[value] = {"": (path.read_bytes(), path.stat().st_mode & 0o777)}
        elif path.is_dir():
            out[value] = {
                p.name: (p.read_bytes(), p.stat().st_mode & 0o777)
                for p in sorted(path.iterdir())
                if p.is_file()
            }
    return out


def localise(env: Mapping[str, str], shipped: Shipped, root: Path) -> dict[str, str]:
    """``env`` for this node: shipped paths put under ``root`` and renamed; folders the
    node lacks (`_LOCAL_IF_MISSING`) made under ``root``."""
    out = dict(env)
    places: dict[str, str] = {}
    for index, (head_path, files) in enumerate(sorted(shipped.items())):
        place = root / "support" / str(index)
        if "" in files:
            place.parent.mkdir(parents=True, exist_ok=True)
            data, mode = files[""]
            place.write_bytes(data)
            place.chmod(mode)
        else:
            place.mkdir(parents=True, exist_ok=True)
            for name, (data, mode) in files.items():
                (place / name).write_bytes(data)
                (place / name).chmod(mode)
        places[head_path] = str(place)
    for key, value in env.items():
        if value in places:
            out[key] = places[value]
    for key in _LOCAL_IF_MISSING:
        value = out.get(key, "")
        if value.startswith("/") and not Path(value).exists():
            local = root / "env" / key.lower()
            local.mkdir(parents=True, exist_ok=True)
            out[key] = str(local)
    return out


def node_claude(head_path: str, env: Mapping[str, str]) -> Path:
    """The claude to run here: the head's path if it exists on this node, else the one on
    the node's PATH (`PortError` when there is none)."""
    if os.access(head_path, os.X_OK):
        return Path(head_path)
    found = shutil.which("claude", path=env.get("PATH"))
    if found is None:
        raise PortError(f"{socket.gethostname()}: no claude executable on this node")
    return Path(found)


def deny_read_here(env: Mapping[str, str]) -> list[Path]:
    """What a Bash tool on this node may not read: this node's user's secrets."""
    home = Path.home()
    config = Path(env.get("CLAUDE_CONFIG_DIR") or home / ".claude")
    paths = [Path(p) for p in secret_paths(PurePosixPath(home), PurePosixPath(config))]
    paths.append(home / ".claude" / ".credentials.json")
    return list(dict.fromkeys(p.absolute() for p in paths if os.path.lexists(p)))


def _safe(name: str | None, default: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name or default) or default


def clone_path(run_id: str, task_id: str | None) -> Path:
    """Where a task's clone is on any node: the same path on every node and for every
    agent, as a task's clone on the head is one path. A session that moves (another
    developer, another node after a crash) finds its files where it left them; only
    one turn of a task runs at a time, and each turn restores the clone first."""
    base = Path(tempfile.gettempdir()) / f"autonoma-clones-{os.getuid()}"
    return base / _safe(run_id, "run") / _safe(task_id, "work")


class NodeAgent:
    """One remote agent's body on a node (a threaded Ray actor: its methods may overlap)."""

    def __init__(self, agent_id: str, root: str = "") -> None:
        self.agent_id = agent_id
        self.root = Path(root or tempfile.mkdtemp(prefix=f"autonoma-{agent_id}-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._messages: list[AnyMessage] = []
        self._held = -1
        """Index of the first end-of-turn message while the work is not captured yet."""
        self._result: TurnResult | None = None
        self._turn: Turn | None = None
        self._cwd: Path | None = None
        self._spec: TurnSpec | None = None
        self._changed = threading.Condition()

    def where(self) -> dict[str, str]:
        """Where this agent runs: the Ray node's id, the host name, process id and folder."""
        node = ""
        try:  # inside a Ray actor: its node (imported here: this module needs no Ray)
            import ray

            node = ray.get_runtime_context().get_node_id()
        except Exception:  # not in Ray (a test): no node id
            node = ""
        return {
            "node": node,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "root": str(self.root),
        }

    def needs_setup(self, spec: TurnSpec) -> bool:
        """Whether the task's clone on this node has not run ``spec``'s set-up command yet."""
        if not spec.setup_command:
            return False
        marker = clone_path(spec.run_id, spec.task_id) / ".git" / _SETUP_MARKER
        return not marker.is_file() or marker.read_text() != spec.setup_command

    def prepare(self, spec: TurnSpec, state: State) -> SetupRan | None:
        """Bring the task's clone to ``state`` and run the set-up command in it, once per
        clone and command until it succeeds (the link refuses the turn after a failed one:
        a failed attempt of the task, as a failed set-up on the head is). Blocks for the
        set-up (up to the ``test_timeout`` setting); its `SetupRan` (place ``node``),
        None when there was none to run."""
        cwd = self._clone(spec, state)
        if not self.needs_setup(spec):
            return None
        env = localise(spec.env, spec.shipped, self.root)
        confinement = None
        if spec.settings.sandbox:
            # The same confinement as the head's set-ups: bubblewrap, registries only.
            confinement = Confinement(
                autonoma_dir=self.root / "autonoma",
                repo=cwd,
                extra_domains=tuple(
                    d.removeprefix("*.") for d in domain_names(spec.settings.agent_domains)
                ),
            )
        ran = run_setup(
            spec.setup_command,
            cwd,
            env,
            spec.settings.test_timeout,
            task_id=spec.task_id,
            place="node",
            confinement=confinement,
        )
        if ran.ok:
            # A failed set-up runs again before the next turn, as on the head.
            (cwd / ".git" / _SETUP_MARKER).write_text(spec.setup_command)
        return ran

    def _clone(self, spec: TurnSpec, state: State) -> Path:
        """The task's clone on this node, made or brought to ``state``."""
        cwd = clone_path(spec.run_id, spec.task_id)
        genv = spec.env
        if (cwd / ".git").is_dir():
            restore(cwd, state, spec.branch, genv)
        else:
            if cwd.exists():
                shutil.rmtree(cwd)
            clone_into(cwd, state, spec.branch, genv)
        for key, value in spec.git_config.items():
            git(cwd, "config", key, value, env=git_env(genv))
        if spec.info_exclude:
            (cwd / ".git" / "info").mkdir(parents=True, exist_ok=True)
            (cwd / ".git" / "info" / "exclude").write_bytes(spec.info_exclude)
        return cwd

    def start_turn(self, spec: TurnSpec, state: State) -> int:
        """Bring the task's clone to ``state``, spawn claude; its pid (blocks for the git
        work and the spawn). Raises `BundleError` or `PortError` (one line) if it cannot."""
        with self._changed:
            if self._turn is not None and self._result is None:
                raise PortError(f"{self.agent_id} is already running a turn")
            self._messages, self._held, self._result = [], -1, None
        cwd = self._clone(spec, state)
        env = localise(spec.env, spec.shipped, self.root)
        bus = Bus(spec.run_id)
        bus.subscribe(self._heard)
        transcript = self.root / "transcripts" / f"{spec.session_id}.log"
        transcript.parent.mkdir(parents=True, exist_ok=True)
        with transcript.open("wb"):
            pass  # only this turn's part goes home
        turn = Turn(
            bus,
            agent_id=spec.agent_id,
            role=spec.role,
            prompt=spec.prompt,
            session_id=spec.session_id,
            resume=spec.resume,
            cwd=cwd,
            settings=spec.settings,
            env=env,
            claude=node_claude(spec.claude, env),
            task_id=spec.task_id,
            transcript=transcript,
            budget_usd=spec.budget_usd,
            session_usd=spec.session_usd,
            tmpdir=self.root / "tmp",
            deny_read=deny_read_here(env),
            on_end=self._ended,
        )
        self._cwd, self._spec, self._turn = cwd, spec, turn
        return turn.start()

    def _heard(self, envelope: Envelope) -> None:
        with self._changed:
            message = envelope.message
            if self._held < 0 and isinstance(message, AgentTurnFinished | AgentProcessExited):
                self._held = len(self._messages)
            self._messages.append(message)
            self._changed.notify_all()

    def _ended(self, outcome: TurnOutcome) -> None:
        """The turn's process is gone (the port's thread): capture the work, then let the
        held end of the turn go."""
        cwd, spec = self._cwd, self._spec
        assert cwd is not None and spec is not None
        transcript = b""
        path = self.root / "transcripts" / f"{spec.session_id}.log"
        if path.is_file():
            transcript = path.read_bytes()
        try:
            result = TurnResult(outcome, capture(cwd, env=spec.env), transcript)
        except BundleError as error:
            result = TurnResult(outcome, State("", b"", b""), transcript, str(error))
        with self._changed:
            self._result = result
            self._changed.notify_all()

    def next_batch(self, first: int, wait_s: float = 1.0) -> Batch:
        """Messages from index ``first`` on, waiting up to ``wait_s`` for one when there is
        none; the end of the turn and its `TurnResult` only once the work is captured."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._result is not None or self._visible() > first, timeout=wait_s
            )
            last = self._visible()
            return Batch(list(self._messages[first:last]), max(last, first), self._result)

    def _visible(self) -> int:
        """How many messages the head may have now (under the lock)."""
        if self._result is None and self._held >= 0:
            return self._held
        return len(self._messages)

    def stop(self, wait_s: float = 0.0) -> None:
        """SIGTERM the turn's process tree (SIGKILL after the grace); wait up to ``wait_s``
        for its end."""
        turn = self._turn
        if turn is not None:
            turn.stop()
            if wait_s > 0:
                turn.wait(wait_s)

    def cleanup(self, run_id: str) -> None:
        """Remove what this agent made on the node: its folder and the run's clones (the
        head holds every clone's state; a later turn ships it again)."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(clone_path(run_id, None).parent, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the turn's process tree now."""
        if self._turn is not None:
            self._turn.kill()


__all__ = [
    "Batch",
    "NodeAgent",
    "TurnResult",
    "TurnSpec",
    "clone_path",
    "deny_read_here",
    "localise",
    "node_claude",
    "shipped_files",
]
