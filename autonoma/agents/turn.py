"""One ``claude`` turn of an agent: the port, the decoding and the journal, together.

`Turn.start` journals `AgentTurnStarting` (durably: the session id is on disk before
the process exists), spawns the port and publishes `AgentProcessStarted`; then every
line of output is decoded and published as it comes, from the port's reader thread,
and `AgentProcessExited` ends the turn. Nothing blocks but `wait`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autonoma.agents.command import build_argv, check_prompt, stream_message
from autonoma.agents.port import Port, PortError, TimeoutKind
from autonoma.agents.roles import Role
from autonoma.agents.sandbox import (
    cache_folders,
    deny_rules,
    network_for,
    sandbox_settings,
    scoped_tools,
    settings_arg,
    short_alias,
    too_long_for_sockets,
)
from autonoma.agents.stream import StreamDecoder, turn_failed
from autonoma.config import Settings, domain_names
from autonoma.protocol import (
    AgentProcessExited,
    AgentProcessStarted,
    AgentPromptGiven,
    AgentToolResult,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
)
from autonoma.runtime.bus import Bus

# Terminal control sequences (CSI): ``claude`` writes ``ESC[?25h`` (show the cursor)
# at exit because its stdout is a terminal. A JSON line cannot hold a raw ESC, so
# removing them never changes a JSON line; a line left blank is dropped. The
# transcript keeps the raw bytes.
_CSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]")

WRITE_LEFTOVER = re.compile(r"\.tmp\.\d+\.[0-9a-f]+$")
"""The temp file claude's Write tool renames into place (``x.py.tmp.<pid>.<hex>``): a
turn killed mid-Write leaves it in its working directory."""


_OWNERS: dict[Path, Turn] = {}
"""Which turn made each temp folder last: only that one removes it."""
_OWNERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class TurnOutcome:
    """How a turn ended."""

    finished: AgentTurnFinished | None
    exit_code: int | None
    signal: int | None
    timed_out: bool
    failed: bool
    timeout: TimeoutKind = ""
    """Which limit stopped it (``"idle"``, ``"wall"``), if one did."""


class Turn:
    """One ``claude -p`` process for ``agent_id``, its output published on ``bus``."""

    def __init__(
        self,
        bus: Bus,
        *,
        agent_id: str,
        role: Role,
        prompt: str | None,
        session_id: str,
        resume: bool,
        cwd: Path,
        settings: Settings,
        env: Mapping[str, str],
        claude: Path,
        task_id: str | None = None,
        transcript: Path | None = None,
        on_end: Callable[[TurnOutcome], None] | None = None,
        budget_usd: float | None = None,
        session_usd: float = 0.0,
        tmpdir: Path | None = None,
        deny_read: Sequence[Path] = (),
    ) -> None:
        """``prompt`` None: a pre-started turn, whose process starts now and waits for
        its prompt (`give`); everything else (argv, sandbox, environment, folders) is
        what the turn would have had. ``session_usd``: claude's running total of the
        session before this turn (0 for a new one), what this turn's cost is counted
        from. ``tmpdir``: the turn's private temp folder (its TMPDIR), made at `start`
        and removed when the turn ends. ``deny_read``: what its sandboxed Bash may not read.

        The role's plain ``Read``/``Write``/``Edit`` are granted only in ``cwd`` and
        ``tmpdir``; with the ``sandbox`` setting on (the default) its Bash runs in
        claude's sandbox (docs/sandbox.md)."""
        self.bus = bus
        self._on_end = on_end
        self.agent_id = agent_id
        self.role = role
        self.session_id = session_id
        self.resume = resume
        self.cwd = Path(cwd)
        self.task_id = task_id
        self.model = role.model_for(settings)
        self.session_usd = session_usd
        self.prompt = prompt
        self.waiting = prompt is None
        """Started before its prompt, which `give` has not written yet."""
        env = dict(env)
        workdir = PurePosixPath(self.cwd.resolve())
        self.tmpdir = tmpdir.absolute() if tmpdir is not None else None
        self._alias: Path | None = None
        folders: list[PurePosixPath] = []
        if self.tmpdir is not None:
            real = PurePosixPath(self.tmpdir)
            folders.append(real)
            env["TMPDIR"] = str(real)
            if too_long_for_sockets(real):
                # claude's sandbox puts its sockets in TMPDIR: give it a short name.
                base = PurePosixPath(tempfile.gettempdir()) / f"autonoma-{os.getuid()}"
                self._alias = Path(short_alias(real, base))
                env["TMPDIR"] = str(self._alias)
                folders.append(PurePosixPath(self._alias))
        given = PurePosixPath(self.cwd.absolute())
        # A path through a symlink names the same folder: the rules take both spellings.
        spelled = [given] if given != workdir else []
        scoped = dataclasses.replace(
            role,
            allowed_tools=tuple(scoped_tools(role.allowed_tools, workdir, *spelled, *folders)),
        )
        self.argv = build_argv(
            claude,
            scoped,
            prompt,
            session_id=session_id,
            resume=resume,
            settings=settings,
            task_id=task_id,
            child_env=env,
            budget_usd=budget_usd,
        )
        denied = [PurePosixPath(p) for p in deny_read]
        extra: dict[str, object] = {}
        if denied:
            extra["permissions"] = {"deny": deny_rules(denied)}
        if settings.sandbox:
            has_bash = "Bash" in role.allowed_tools
            registries, domains = network_for(
                role.name, has_bash, settings.agent_network, domain_names(settings.agent_domains)
            )
            # A role limited to e.g. Bash(git log:*) must not get every Bash call.
            extra.update(
                sandbox_settings(
                    workdir,
                    folders[0] if folders else None,
                    auto_allow_bash=has_bash,
                    registries=registries,
                    extra_domains=domains,
                    deny_read=denied,
                    extra_write=cache_folders(env),
                )
            )
        if extra:
            # Before the options: --allowedTools takes several values and comes last.
            self.argv[1:1] = settings_arg(extra)
        self._finished: AgentTurnFinished | None = None
        self._tools: set[str] = set()
        """Tool calls made and not answered yet: a tool is running."""
        self._decoder = StreamDecoder(agent_id=agent_id, task_id=task_id, session_usd=session_usd)
        self._outcome: TurnOutcome | None = None
        self._done = threading.Event()
        self._pid: int | None = None
        self.port = Port(
            self.argv,
            self.cwd,
            env,
            on_line=self._on_line,
            on_exit=self._on_exit,
            timeout=role.timeout_for(settings),
            idle_timeout=role.idle_timeout_for(settings),
            transcript=transcript,
            # What its Bash tool starts (each command in a session of its own, daemons,
            # double forks) dies with claude, and claude dies with Autonoma.
            own_namespace=True,
            stdin_pipe=prompt is None,
        )

    def _make_tmpdir(self) -> None:
        """Create the turn's temp folder (private, empty) and its short alias if any."""
        if self.tmpdir is None:
            return
        # Under the lock, the whole of it: a crashed turn's late `_remove_tmpdir` must
        # run wholly before this (and this makes the folder anew) or wholly after (and
        # sees it is not its own): interleaved, it removed the new turn's folder.
        with _OWNERS_LOCK:
            _OWNERS[self.tmpdir] = self
            shutil.rmtree(self.tmpdir, ignore_errors=True)  # what an earlier turn left
            self.tmpdir.mkdir(mode=0o700, parents=True)
            if self._alias is not None:
                base = self._alias.parent
                with contextlib.suppress(FileExistsError):
                    base.mkdir(mode=0o700)
                info = base.lstat()
                if not base.is_dir() or base.is_symlink() or info.st_uid != os.getuid():
                    raise PortError(f"{base}: not a folder of this user: cannot make temp folders")
                with contextlib.suppress(FileNotFoundError):
                    self._alias.unlink()
                self._alias.symlink_to(self.tmpdir)

    def _remove_tmpdir(self) -> None:
        """Remove what `_make_tmpdir` made, unless a later turn of the agent made it anew.

        A crashed agent's turn ends (its port's thread) after the restarted agent's
        next turn may have made the same folder: that one must stay.
        """
        if self.tmpdir is None:
            return
        with _OWNERS_LOCK:
            if _OWNERS.get(self.tmpdir) is not self:
                return
            del _OWNERS[self.tmpdir]
            if self._alias is not None:
                with contextlib.suppress(OSError):
                    self._alias.unlink()
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def start(self) -> int:
        """Journal the turn, spawn ``claude``; return its pid at once.

        A `PortError` (``claude`` missing, the spawn failed) is raised after
        `AgentTurnStarting` was journaled; no `AgentProcessExited` follows it.
        """
        self.bus.publish(
            self.agent_id,
            AgentTurnStarting(
                agent_id=self.agent_id,
                role=self.role.name,
                session_id=self.session_id,
                cwd=str(self.cwd),
                argv=self.argv,
                resume=self.resume,
                task_id=self.task_id,
                model=self.model,
                waits_for_prompt=self.waiting,
            ),
            durable=True,
        )
        try:
            self._make_tmpdir()
            pid = self._pid = self.port.start()
        except OSError as err:
            self._remove_tmpdir()
            raise PortError(f"could not make the turn's temp folder: {err}") from err
        except PortError:
            self._remove_tmpdir()
            raise
        self.bus.publish(
            self.agent_id,
            AgentProcessStarted(agent_id=self.agent_id, pid=pid, task_id=self.task_id),
        )
        return pid

    def give(self, prompt: str) -> None:
        """Give a pre-started turn its prompt: journaled (durably, as the argv of a turn
        started with its prompt is), then written to claude's stdin, which is closed.
        Returns at once. Raises `CommandError` for a prompt claude could not take, and
        `PortError` when the turn was not pre-started or was given its prompt already."""
        if not self.waiting:
            raise PortError(f"{self.agent_id}'s turn is not waiting for a prompt")
        check_prompt(self.role, prompt)
        self.bus.publish(
            self.agent_id,
            AgentPromptGiven(
                agent_id=self.agent_id,
                role=self.role.name,
                session_id=self.session_id,
                prompt=prompt,
                task_id=self.task_id,
            ),
            durable=True,
        )
        self.waiting = False
        self.prompt = prompt
        self.port.send(stream_message(prompt))

    def stop(self) -> None:
        """SIGTERM to the turn's process tree, SIGKILL after the grace period."""
        self.port.stop()

    def kill(self) -> None:
        """SIGKILL to the turn's process tree, now."""
        self.port.kill()

    def freeze(self, frozen: bool) -> None:
        """Freeze (SIGSTOP) or thaw (SIGCONT) the turn's process tree (`Port.freeze`)."""
        self.port.freeze(frozen)

    def wait(self, timeout: float | None = None) -> TurnOutcome | None:
        """Block until the turn has ended (not for actors); None on timeout."""
        self._done.wait(timeout)
        return self._outcome

    @property
    def outcome(self) -> TurnOutcome | None:
        """How the turn ended, once it has."""
        return self._outcome

    def _on_line(self, line: bytes) -> None:
        if b"\x1b" in line:
            line = _CSI.sub(b"", line)
            if not line.strip():
                return
        for message in self._decoder.decode(line):
            if isinstance(message, AgentTurnFinished):
                self._finished = message
            elif isinstance(message, AgentToolUse):
                self._tools.add(message.tool_use_id)
            elif isinstance(message, AgentToolResult):
                self._tools.discard(message.tool_use_id)
            self.bus.publish(self.agent_id, message)
        # A running tool is silent in the stream: the port must not take it for a stuck turn.
        self.port.tool_running(bool(self._tools))

    def _on_exit(self, exit_code: int | None, sig: int | None, timed_out: bool) -> None:
        finished = self._finished
        port = self.port.result  # set before on_exit is called
        timeout: TimeoutKind = port.timeout if port is not None else ""
        limit = port.timeout_s if port is not None else 0.0
        self._outcome = TurnOutcome(
            finished=finished,
            exit_code=exit_code,
            signal=sig,
            timed_out=timed_out,
            failed=finished is None or turn_failed(finished),
            timeout=timeout,
        )
        try:
            self.bus.publish(
                self.agent_id,
                AgentProcessExited(
                    agent_id=self.agent_id,
                    exit_code=exit_code,
                    signal=sig,
                    timed_out=timed_out,
                    task_id=self.task_id,
                    pid=self._pid,
                    timeout=timeout,
                    timeout_s=limit,
                ),
            )
        finally:
            self._remove_tmpdir()
            self._done.set()
            if self._on_end is not None:
                self._on_end(self._outcome)


__all__ = ["WRITE_LEFTOVER", "Turn", "TurnOutcome"]
