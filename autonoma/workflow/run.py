"""One run of the company, from a requirements file to a merged ``main``: set up, go, wait.

`prepare` checks everything a run needs before anything starts (the requirements
file, the repository, the lock, claude and its login) and says what is wrong in one
line. `execute` builds DESIGN.md's tree under the root (journal, governor, merge
queue, orchestrator, crew), waits for the orchestrator's `RunFinished` and stops the
tree; interrupted (Ctrl-C), it stops the run cleanly so that the next `start` resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from autonoma import config, inputfile, signals
from autonoma import project as project_module
from autonoma.agents.auth import AuthError, check_auth
from autonoma.agents.command import isolation_args, root_bypass_problem
from autonoma.agents.environment import child_env
from autonoma.agents.executable import find_claude
from autonoma.agents.port import CLAUDE_NOT_FOUND
from autonoma.agents.roles import ROLE_NAMES, RoleError, load_role
from autonoma.hints import endpoint_of, endpoint_text, resume_command, start_command
from autonoma.journal import reader
from autonoma.journal.fold import State, fold_rows
from autonoma.project import Project, ProjectError, RunLock, acquire_run_lock
from autonoma.protocol import (
    Envelope,
    Escalation,
    MainAdvanceFinished,
    RefLockRemoved,
    RunFinished,
    StopRequested,
)
from autonoma.runtime.bus import Listener
from autonoma.runtime.supervisor import ChildSpec, ChildStartRefused
from autonoma.signals import Signalled
from autonoma.sim import ScenarioError, SimServer, load_scenario
from autonoma.system import JOURNAL, ROOT, StartError, System, start
from autonoma.vcs import excludes, workspace
from autonoma.vcs.workspace import VcsError
from autonoma.workflow import prompts
from autonoma.workflow.confine import confinement_for
from autonoma.workflow.crew import AgentRefs, crew_spec
from autonoma.workflow.governor import GOVERNOR, Governor
from autonoma.workflow.inbox import origin
from autonoma.workflow.merge_queue import MERGE_QUEUE, MergeQueue
from autonoma.workflow.orchestrator import ORCHESTRATOR, Orchestrator, RunContext
from autonoma.workflow.setup import cache_env

_RUN_CRITICAL = frozenset({JOURNAL, GOVERNOR, MERGE_QUEUE, ORCHESTRATOR})
"""Children of the root without which the run cannot go on."""

"""More than the CEO's prompt can carry in one argv string, with the template around it."""


class RunError(ProjectError):
    """The run cannot start; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for."""

    requirements: Path
    max_workers: int | None = None
    scenario: Path | None = None
    """Play this sim scenario instead of calling a real model (the demo, tests)."""
    new: bool = False
    """Start a new run even if the last one did not finish."""
    path_prefix: tuple[str, ...] = ()
    """Folders put first on the agents' and the checks' PATH (the demo's Python)."""
    policy: Literal["critical_path", "fifo"] = "critical_path"
    durations: Mapping[str, float] | None = None
    cluster: str | None = None
    """``--cluster``: a Ray address or ``auto`` (None: the ``cluster`` setting)."""


@dataclass
class Prepared:
    """A run ready to go: its settings, its ids, its environment, its lock."""

    project: Project
    options: RunOptions
    settings: config.Settings
    run_id: str
    resumed: bool
    main: str
    requirements: str
    claude_md: str
    claude: Path
    env: dict[str, str]
    lock: RunLock
    sim: SimServer | None = None
    spent: dict[str | None, float] = field(default_factory=dict)
    """What a resumed run spent so far, per task: its budgets start there."""
    removed_lock: RefLockRemoved | None = None
    """The stale lock on ``main`` removed as the run was prepared (journaled at start)."""
    finished_advance: MainAdvanceFinished | None = None
    """The move of ``main`` a kill interrupted, finished as the run was prepared
    (journaled at start)."""
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop the sim and release the lock."""
        for action in reversed(self.cleanup):
            with contextlib.suppress(Exception):
                action()
        self.cleanup.clear()


@dataclass(frozen=True)
class RunResult:
    """How the run ended."""

    run_id: str
    outcome: str
    summary: str


def read_requirements(path: Path) -> str:
    """The requirements text; `RunError` if it is missing, empty, binary or too big."""
    try:
        text = inputfile.read_text(path, "requirements")
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except inputfile.InputFileError as err:
        raise RunError(str(err)) from None
    if not text.strip():
        raise RunError(f"{path}: is empty: write what to build in it")
    return text


def _read_standards(project: Project) -> str:
    """The project's CLAUDE.md; `InputFileError` if unreadable.

    When there is none, the one `project_module.init` is about to write.
    """
    try:
        return inputfile.read_text(project.claude_md, "standards")
    except FileNotFoundError:
        return project_module.CLAUDE_MD


def _same_endpoint(recorded: str, endpoint: str) -> bool:
    if not recorded or recorded == endpoint:
        return True  # "": a journal from before runs recorded it
    return Path(recorded).resolve() == Path(endpoint).resolve()


def _run_to_resume(project: Project, requirements: Path, new: bool, endpoint: str) -> State | None:
    """The unfinished run to continue (its folded state), if any.

    `RunError` if it was for other requirements, or against another model endpoint
    (a scenario run resumed against the real model, or the other way round): the
    message gives the command that resumes it.
    """
    if new:
        return None
    run_id = reader.latest_run(project.state_db)
    if run_id is None:
        return None
    state = fold_rows(reader.rows(project.state_db, run_id=run_id))
    run = state.runs.get(run_id)
    if run is None or run.outcome == "done":
        return None
    if run.requirements and Path(run.requirements) != requirements:
        raise RunError(
            f"{requirements}: run {run_id} of {run.requirements} is unfinished: "
            f"`{resume_command(run)}` resumes it, `--new` starts over"
        )
    if not _same_endpoint(run.endpoint, endpoint):
        raise RunError(
            f"run {run_id} is unfinished and was started {endpoint_text(run.endpoint)}, "
            f"not {endpoint_text(endpoint)}: `{resume_command(run)}` resumes it, "
            "`--new` starts over"
        )
    return state


def _remove_stale_lock(project: Project, main: str) -> RefLockRemoved | None:
    """Remove ``main``'s ref lock if a killed git left it (`workspace.clear_branch_lock`);
    what was removed, or None. Call with the run lock held. Raises `RunError` (one line
    naming the file and what to do) when it may be a git of the user's, running now."""
    try:
        lock = workspace.clear_branch_lock(project.root, main)
    except workspace.BranchLocked as err:
        if err.held is None:
            raise RunError(f"{err}: remove it") from None
        raise RunError(
            f"{err.held.path}: a git command holds branch {main} ({err.held.age_s:.0f} s "
            "ago): let it finish, then start again; if no git runs in this repository, "
            "remove the file"
        ) from None
    except VcsError as err:
        raise RunError(str(err)) from None
    if lock is None:
        return None
    return RefLockRemoved(path=str(lock.path), branch=main, age_s=lock.age_s, ours=lock.ours)


def _uncommitted(root: Path, dirty: list[str]) -> RunError:
    """The refusal of a start over the user's uncommitted changes to tracked files."""
    shown = ", ".join(dirty[:5]) + (", ..." if len(dirty) > 5 else "")
    return RunError(
        f"{root}: the working tree has uncommitted changes to tracked files "
        f"({shown}): commit or stash them first, so that moving main as tasks merge never "
        "touches your work"
    )


def _finish_advance(project: Project, main: str, dirty: list[str]) -> MainAdvanceFinished | None:
    """Move ``main`` to the merged commit the working tree that has it checked out (this
    one, or a linked worktree of the user's) already holds when a kill interrupted the
    merge queue between updating the files and moving ``main``
    (`workspace.finish_advance`); what was done, or None. ``dirty``: this working tree's
    uncommitted changes at the first look. Call with the run lock held, after a stale
    lock on ``main`` is gone. Raises `RunError`: those changes are the user's after all
    (they changed since the first look, or HEAD is not on the run's ``main``), or
    ``main`` cannot be written."""
    try:
        commit = workspace.finish_advance(project.root, main)
        now = workspace.dirty_files(project.root, untracked=False) if dirty else []
    except VcsError as err:
        raise RunError(str(err)) from None
    if now:
        raise _uncommitted(project.root, now)
    return None if commit is None else MainAdvanceFinished(branch=main, commit=commit)


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def prepare(project: Project, options: RunOptions) -> Prepared:
    """Check everything and take the project's run lock; raise a one-line error if not."""
    requirements = read_requirements(options.requirements)
    settings = config.load_settings(project.root)
    if options.max_workers is not None:
        if not 1 <= options.max_workers <= config.MAX_WORKERS:
            raise RunError(
                f"--max-workers must be from 1 to {config.MAX_WORKERS}, not {options.max_workers}"
            )
        settings = dataclasses.replace(settings, max_workers=options.max_workers)
    if options.cluster is not None:
        settings = dataclasses.replace(settings, cluster=options.cluster.strip())
    if settings.cluster:
        # Ray is imported only here, only with a cluster asked for (an optional extra).
        from autonoma.cluster.connect import require_ray

        require_ray(config.setting_source("cluster", project.root), options.cluster)
    for name in ROLE_NAMES:
        try:
            role = load_role(name, project.root)
        except RoleError as err:
            raise RunError(str(err)) from None
        problem = prompts.role_problem(role)
        if problem is not None:
            raise RunError(problem)
        problem = root_bypass_problem(role, settings, os.environ, os.geteuid())
        if problem is not None:
            # The setting is the user's to change (exit 2); a role file's mode is the file's.
            if settings.dangerously_skip_permissions:
                raise config.ConfigError(f"AUTONOMA_DANGEROUSLY_SKIP_PERMISSIONS: {problem}")
            raise RunError(problem)
    try:
        problem = workspace.repository_problem(project.root)
        dirty = workspace.dirty_files(project.root, untracked=False)
    except VcsError as err:
        raise RunError(str(err)) from None
    if problem is not None:
        raise RunError(problem)
    # Files exactly a merged result ahead of main, staged: a kill between the merge
    # queue's update of the working tree and its move of main. Finished once locked.
    if dirty and workspace.interrupted_advance(project.root) is None:
        raise _uncommitted(project.root, dirty)
    claude = find_claude(settings)
    if claude is None and settings.claude_path:
        configured = Path(settings.claude_path).expanduser()
        what = "is a folder" if configured.is_dir() else "no executable file there"
        raise config.ConfigError(
            f"claude_path {settings.claude_path!r} (AUTONOMA_CLAUDE_PATH or config.toml): "
            f"{what}: name the claude executable"
        )
    if claude is None:
        raise RunError(CLAUDE_NOT_FOUND)
    scenario = None
    if options.scenario is not None:
        try:
            scenario = load_scenario(options.scenario)
        except ScenarioError as err:
            raise RunError(str(err)) from None
    try:
        claude_md = _read_standards(project)
        excludes.project_rules(project.root)
    except inputfile.InputFileError as err:
        raise RunError(str(err)) from None
    # Every check passed: from here on, things are made (a first commit in an empty
    # repository, .autonoma/, the lock).
    try:
        main = workspace.current_branch(project.root)
    except VcsError as err:
        raise RunError(str(err)) from None
    project_module.init(project.root)
    lock = acquire_run_lock(project)
    prepared: Prepared | None = None
    try:
        earlier = _run_to_resume(
            project, options.requirements, options.new, endpoint_of(options.scenario)
        )
        unfinished = None if earlier is None else earlier.run
        resumed = unfinished is not None
        run_id = unfinished.run_id if unfinished is not None else _new_run_id()
        spent = {} if earlier is None else _spent(earlier)
        if unfinished is not None and unfinished.main:
            main = unfinished.main  # the run's own, whatever is checked out now
            try:
                workspace.head_of(project.root, main)
            except VcsError:
                raise RunError(
                    f"{project.root}: run {run_id} moves branch {main}, which is gone: "
                    f"recreate it, or start over with --new"
                ) from None
        # With the run lock held (no merge queue of the project runs): a lock on main
        # that a killed git left would fail every merge's move of main.
        removed_lock = _remove_stale_lock(project, main)
        # Then (the lock gone, no merge queue running) main goes where its files already are.
        finished_advance = _finish_advance(project, main, dirty)
        sim: SimServer | None = None
        parent = dict(os.environ)
        # The crew's backoff owns storms: claude's own retries are capped (None: its default).
        retries = settings.agent_api_retries if settings.crew_backoff else None
        if options.path_prefix:
            parent["PATH"] = os.pathsep.join([*options.path_prefix, parent.get("PATH", "")])
        if scenario is not None:
            sim = SimServer(scenario)
            sim.start()
            # One config folder per run, kept across restarts: --resume finds the sessions.
            home = project.sim_home / run_id
            home.mkdir(parents=True, exist_ok=True)
            env = child_env(parent, sim_url=sim.url, config_dir=home, max_retries=retries)
        else:
            # The user's own variables reach agents only when named (agent_env).
            env = child_env(
                parent,
                sim_url=None,
                extra=config.variable_names(settings.agent_env),
                max_retries=retries,
            )
        env.update(workspace.install_push_guard(project.dir / "hooks"))
        # The agents' own `git status`/`git add -A` do not see what is never committed.
        agent_exclude = excludes.agent_excludes(project.root, project.agent_exclude)
        workspace.add_git_config(env, "core.excludesFile", str(agent_exclude))

        # One pip and one npm cache for every worktree: a second set-up is fast.
        env.update(cache_env(project.dir))
        prepared = Prepared(
            project=project,
            options=options,
            settings=settings,
            run_id=run_id,
            resumed=resumed,
            main=main,
            requirements=requirements,
            claude_md=claude_md,
            claude=claude,
            env=env,
            lock=lock,
            sim=sim,
            spent=spent,
            removed_lock=removed_lock,
            finished_advance=finished_advance,
        )
        prepared.cleanup.append(lock.release)
        if sim is not None:
            prepared.cleanup.append(sim.stop)
        try:
            check_auth(claude, env, options=isolation_args(settings))
        except AuthError as err:
            raise RunError(str(err)) from None
        if settings.cluster:
            from autonoma.cluster.connect import connect, disconnect

            connect(settings.cluster)
            prepared.cleanup.append(disconnect)
        return prepared
    except BaseException:
        if prepared is not None:
            prepared.close()
        else:
            lock.release()
        raise


def execute(prepared: Prepared, listener: Listener | None = None) -> RunResult:
    """Run the company until the run ends or is interrupted; stop everything after.

    A signal (with `autonoma.signals`' handlers) that comes while the tree starts is
    held until the orchestrator runs, then stops the run as a later one does: journaled,
    the run ``stopped``. Raises `RunError` if the tree cannot start."""
    try:
        # From the journal's first row until the actors run, nothing could journal a
        # stop: a signal then would leave the run "interrupted", as a SIGKILL does.
        with signals.hold():
            return _execute(prepared, listener)
    finally:
        prepared.close()


def _execute(prepared: Prepared, listener: Listener | None) -> RunResult:
    settings = prepared.settings
    project = prepared.project
    try:
        workspace.ensure_integration(project.root, prepared.main)
    except VcsError as err:
        raise RunError(str(err)) from None
    try:
        system = start(project.state_db, settings, prepared.run_id)
    except StartError as err:
        raise RunError(str(err)) from None
    finished = threading.Event()
    outcome: list[RunFinished] = []

    fatal: list[Escalation] = []
    stop_asked: list[float] = []

    def watch(envelope: Envelope) -> None:
        message = envelope.message
        if isinstance(message, StopRequested) and not stop_asked:
            stop_asked.append(time.monotonic())
        if isinstance(message, RunFinished) and envelope.sender == ORCHESTRATOR:
            outcome.append(message)
            finished.set()
        elif (
            isinstance(message, Escalation)
            and envelope.sender == ROOT
            and message.source in _RUN_CRITICAL
        ):
            # The root left it stopped after too many crashes: nothing can go on.
            fatal.append(message)
            finished.set()

    system.bus.subscribe(watch)
    if listener is not None:
        system.bus.subscribe(listener)
    refs = AgentRefs()
    workers = settings.max_workers
    ctx = RunContext(
        bus=system.bus,
        settings=settings,
        run_id=prepared.run_id,
        project=project,
        main=prepared.main,
        requirements_path=prepared.options.requirements,
        requirements=prepared.requirements,
        claude_md=prepared.claude_md,
        agents=refs,
        governor=lambda: refs.get(GOVERNOR),
        merge_queue=lambda: refs.get(MERGE_QUEUE),
        workers=workers,
        policy=prepared.options.policy,
        durations=prepared.options.durations,
        env=prepared.env,
        endpoint=endpoint_of(prepared.options.scenario),
        # `autonoma resume` after the root paused: a tell, the orchestrator never waits.
        resume_root=lambda reason: _resume_root(system, reason),
    )
    interrupted = False
    with _stopping(system):
        spent = prepared.spent
        system.start_child(
            ChildSpec(
                GOVERNOR,
                start=lambda: refs.set(GOVERNOR, Governor.start(system.bus, settings, spent=spent)),
            )
        )
        system.start_child(
            ChildSpec(
                MERGE_QUEUE,
                start=lambda: refs.set(
                    MERGE_QUEUE,
                    MergeQueue.start(
                        system.bus,
                        repo=project.root,
                        worktrees=project.worktrees,
                        main=prepared.main,
                        env=prepared.env,
                        timeout=settings.test_timeout,
                        confinement=confinement_for(settings, project),
                    ),
                ),
                # A merge cut short is done again on resume; the tests are killed with it.
                shutdown=2.0,
            )
        )
        system.start_child(
            ChildSpec(
                ORCHESTRATOR,
                start=lambda: refs.set(ORCHESTRATOR, Orchestrator.start(ctx)),
                shutdown=30.0,
            )
        )
        if prepared.removed_lock is not None:
            # After the run's `RunStarted` (the orchestrator's first row): said once.
            system.bus.publish("run", prepared.removed_lock, durable=True)
        if prepared.finished_advance is not None:
            system.bus.publish("run", prepared.finished_advance, durable=True)
        system.start_child(
            crew_spec(
                system.bus,
                refs,
                settings=settings,
                workers=workers,
                env=prepared.env,
                claude=prepared.claude,
                project_dir=project.root,
            )
        )
        if settings.gateway:
            _start_gateway(system, project, settings)
        try:
            signals.release()  # the orchestrator runs: a signal held meanwhile stops it now
            while not finished.wait(0.5):
                if stop_asked and time.monotonic() - stop_asked[0] > _stop_grace(settings):
                    break  # `autonoma stop` waited long enough: the tree is stopped now
        except KeyboardInterrupt as err:
            interrupted = True
            orchestrator = refs.get(ORCHESTRATOR)
            by = err.name if isinstance(err, Signalled) else "Ctrl-C"
            if orchestrator is not None:
                # The same graceful stop as `autonoma stop`: the merge under way finishes.
                with contextlib.suppress(Exception):
                    orchestrator.proxy().stop_run(
                        reason=f"interrupted ({by})", origin=f"{by}, {origin()}"
                    ).get(timeout=10)
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop now
                finished.wait(_stop_grace(settings))
        if fatal and not outcome:
            end = RunFinished(
                outcome="failed",
                summary=f"{fatal[0].source} kept crashing ({fatal[0].reason}); "
                f"`{_resume(prepared)}` resumes the run",
            )
            system.bus.publish("run", end, durable=True)
            outcome.append(end)
    if outcome:
        end = outcome[-1]
        return RunResult(prepared.run_id, end.outcome, end.summary)
    reason = "interrupted" if interrupted else "ended without a result"
    return RunResult(
        prepared.run_id, "stopped", f"the run {reason}; `{_resume(prepared)}` resumes it"
    )


def _start_gateway(system: System, project: Project, settings: config.Settings) -> None:
    """The gateway, last under the root (a restart of another child leaves it be); a
    gateway that cannot start (its failure is journaled) leaves the run going."""
    from autonoma.desktop.child import gateway_spec

    with contextlib.suppress(ChildStartRefused):
        system.start_child(gateway_spec(project, settings))


def _resume_root(system: System, reason: str) -> None:
    """Ask the root to end its pause; returns at once (the root answers on the bus)."""
    system.root.proxy().resume(reason)


def _stop_grace(settings: config.Settings) -> float:
    """Seconds a stop may wait for the merge under way before cutting it: the gate's
    set-up and its tests, each bounded by ``test_timeout``, and the git work around them."""
    return 2 * settings.test_timeout + 30.0


def _resume(prepared: Prepared) -> str:
    """The command that resumes this run."""
    return start_command(str(prepared.options.requirements), endpoint_of(prepared.options.scenario))


def _spent(state: State) -> dict[str | None, float]:
    """What the run spent so far, per task (None: not on a task): the budget starts there."""
    spent: dict[str | None, float] = {t.task_id: t.usage.usd for t in state.tasks.values()}
    run = state.run
    if run is not None:
        spent[None] = run.usage.usd - sum(v for v in spent.values())
    return spent


@contextlib.contextmanager
def _stopping(system: System) -> Iterator[None]:
    try:
        yield
    finally:
        system.stop(timeout=60)


__all__ = [
    "Prepared",
    "RunError",
    "RunOptions",
    "RunResult",
    "execute",
    "prepare",
    "read_requirements",
]
