"""The ``autonoma`` command: parse, call, print. The work happens elsewhere."""

from __future__ import annotations

from autonoma import signals
from autonoma.supported import exit_unless_supported

# First of all: a signal while the command is still imported exits 130 in one line.
signals.install_early()
# Before the imports below: some need Linux (fcntl, termios, /proc) and would fail with
# a traceback elsewhere; this says in one line what is needed, and exits 2.
exit_unless_supported()

import contextlib
import os
import shlex
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn

import click

from autonoma import config, hints, project, report
from autonoma.journal import reader
from autonoma.journal.schema import JournalError
from autonoma.text import inert

# Errors that are the user's to fix: one line, no traceback, and this exit code.
_USER_ERRORS: dict[type[Exception], int] = {
    config.ConfigError: 2,
    project.ProjectError: 1,
    JournalError: 1,
}


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``autonoma: message`` on stderr and exit with ``code``."""
    click.echo(f"autonoma: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns known errors into one line, and unknown ones into one line and a report file."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            # A bad option or argument: one line, like every other bad input (exit 2).
            path = err.ctx.command_path if err.ctx is not None else ctx.command_path
            fail(f"{err.format_message()} (see `{path} --help`)", 2)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except tuple(_USER_ERRORS) as err:
            # By isinstance: a subclass (RunActiveError, HumanCommandError) is one line too.
            fail(str(err), next(c for t, c in _USER_ERRORS.items() if isinstance(err, t)))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            _pipe_closed()
        except Exception as err:
            fail(f"internal error: {type(err).__name__}: {err} (details in {_crash_report()})")


# 128 + SIGPIPE: the exit code a shell shows for any tool whose reader went away.
PIPE_CLOSED = 141


def _pipe_closed() -> NoReturn:
    """The reader of stdout went away (`| head -1`): a normal end, said by no message.

    What is left in stdout's buffer goes nowhere: flushed at exit into the closed pipe
    it would raise again ("Exception ignored ... BrokenPipeError")."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(PIPE_CLOSED)


def _crash_report() -> str:
    with tempfile.NamedTemporaryFile(
        "w", prefix="autonoma-crash-", suffix=".log", delete=False
    ) as handle:
        traceback.print_exc(file=handle)
        return handle.name


def _here() -> Path:
    return Path.cwd()


def _settings(root: Path | None) -> config.Settings:
    return config.load_settings(root)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="autonoma", prog_name="autonoma")
def main() -> None:
    """Autonoma: a software company in a box, run by supervised Claude Code agents."""
    # A run's process takes signals its own way from here (a stop journaled, see
    # autonoma.signals); any other command stops the usual way.
    if click.get_current_context().invoked_subcommand in _RUNS:
        signals.install()
    else:
        signals.restore()


_RUNS = frozenset({"start", "demo", "_run"})
"""The commands that may run the company in this process."""


@main.command()
@click.option(
    "--git-init", is_flag=True, help="Create a git repository here first if there is none."
)
def init(git_init: bool) -> None:
    """Create .autonoma/ in this git repository (run twice, it changes nothing)."""
    proj, created = project.init(_here(), git_init=git_init)
    _settings(proj.root)
    if not created:
        click.echo(f"Already initialised: {proj.dir} (nothing changed)")
        return
    click.echo(f"Initialised {proj.dir}")
    for item in created:
        click.echo(f"  created {item}")


_WORKERS = click.option(
    "--max-workers",
    type=int,
    default=None,
    metavar="N",
    help="Developer agents working at once (default: the max_workers setting).",
)


def _check_workers(max_workers: int) -> None:
    """Exit 2 with one line unless ``max_workers`` is within 1..MAX_WORKERS."""
    if not 1 <= max_workers <= config.MAX_WORKERS:
        fail(
            f"--max-workers must be from 1 to {config.MAX_WORKERS}, not {max_workers}",
            2,
        )


def _sandbox_gate(root: Path | None) -> None:
    """Before any agent runs: exit 2 with one line if claude's sandbox cannot run here;
    with the sandbox turned off, say so loudly on stderr (every start)."""
    from autonoma.agents.sandbox import opt_out_warning, sandbox_problem

    settings = _settings(root)
    if not settings.sandbox:
        click.echo(f"autonoma: {opt_out_warning(config.setting_source('sandbox', root))}", err=True)
        return
    problem = sandbox_problem(sys.platform, shutil.which)
    if problem is not None:
        fail(problem, 2)


def _run_company(
    proj: project.Project,
    options: Any,
    *,
    gate: bool = True,
    tui: bool | None = None,
    on_prepared: Callable[[Any], None] | None = None,
) -> Literal["ended", "left"]:
    """Run the company with the dashboard (or the live progress log), print the end; exit
    0 only when done. ``tui`` None: the dashboard when stdout is a terminal.

    With the dashboard, the run goes on in a process of its own (`_run_in_background`):
    "left" when the user left it running. The plain log runs it in this process (Ctrl-C
    stops it cleanly); ``on_prepared`` is called once it is prepared (lock held, id known).
    """
    from autonoma.progress import Progress
    from autonoma.workflow import run

    if gate:
        _sandbox_gate(proj.root)
    # Not on a terminal, the plain log whatever was asked: a dashboard needs a screen.
    if tui is None or not sys.stdout.isatty():
        tui = sys.stdout.isatty() and sys.stdin.isatty()
    if tui:
        signals.restore()  # the dashboard's own: the run is another process's
        return _run_in_background(proj, options)
    prepared = run.prepare(proj, options)
    if on_prepared is not None:
        on_prepared(prepared)
    verb = "Resuming" if prepared.resumed else "Starting"
    click.echo(
        f"{verb} run {prepared.run_id} in {proj.root} with {prepared.settings.max_workers} "
        f"developers{' against the simulated model' if prepared.sim is not None else ''}"
    )
    progress = Progress(click.echo, color=sys.stdout.isatty())
    result = run.execute(prepared, listener=progress.feed)
    _say_end(result.run_id, result.outcome, result.summary)
    if result.outcome != "done":
        sys.exit(130 if result.outcome == "stopped" else 1)
    return "ended"


def _say_end(run_id: str, outcome: str, summary: str) -> None:
    """The run's last words, as the plain log ends: its outcome, and where to look."""
    click.echo(inert(f"Run {run_id}: {outcome}. {summary}"))
    if outcome != "done":
        click.echo(f"Details: `{hints.command('status')}`; the journal: `{hints.command('logs')}`")


_EXIT_CODES = {"done": 0, "stopped": 130}
"""A run's exit code by its outcome (any other: 1)."""


def _run_in_background(proj: project.Project, options: Any) -> Literal["ended", "left"]:
    """The run in a detached process (`autonoma.workflow.background`), the dashboard on
    this terminal until the user quits.

    Quitting once the run ended prints its end and exits with its code; quitting while
    it goes on asks: stop it (then as when it ended), or leave it running ("left": one
    line says how to come back to it and how to stop it).
    """
    from autonoma.tui.app import RunLink
    from autonoma.tui.run import open_dashboard
    from autonoma.workflow import background

    try:
        detached = background.start_detached(proj, options)
    except background.DetachFailed as err:
        fail(str(err), err.exit_code)
    run = reader.replay(proj.state_db, run_id=detached.run_id).run
    verb = "Resuming" if run is not None and run.resumes else "Starting"
    click.echo(
        f"{verb} run {detached.run_id} in {proj.root} in the background "
        f"(pid {detached.pid}; its log: {detached.log})"
    )
    left = (
        f"Run {detached.run_id} goes on in the background (pid {detached.pid}; its log: "
        f"{detached.log}). Come back to it: {_in(proj, hints.command('dashboard'))}; "
        f"stop it: {_in(proj, hints.command('stop'))}"
    )
    try:
        choice = open_dashboard(
            proj,
            _settings(proj.root),
            run_id=detached.run_id,
            link=RunLink(running=lambda: background.alive(detached), started_here=True),
        )
    except BaseException:
        click.echo(left, err=True)  # the dashboard failed, not the run: say where it is
        raise
    if choice == "left":
        click.echo(left)
        return "left"
    code = background.exit_code(detached)  # the run ended: its process is winding down
    run = reader.replay(proj.state_db, run_id=detached.run_id).run
    if run is None or run.outcome is None:
        fail(
            f"run {detached.run_id} ended without a result (exit code {code}): "
            f"its log: {detached.log}",
            code if code is not None and code > 0 else 1,  # killed by a signal: 1
        )
    _say_end(run.run_id, run.outcome, run.summary)
    if code is None:
        code = _EXIT_CODES.get(run.outcome, 1)
    if code != 0:
        sys.exit(code)
    return "ended"


def _in(proj: project.Project, command: str) -> str:
    """``cd ROOT && command``: works as printed from any folder (the demo's is new)."""
    return f"cd {shlex.quote(str(proj.root))} && {command}"


@main.command("_run", hidden=True)
@click.option("--options", "spec", type=click.Path(path_type=Path), required=True)
@click.option("--ready", type=click.Path(path_type=Path), required=True)
def run_here(spec: Path, ready: Path) -> None:
    """The run itself, in the detached process `autonoma.workflow.background` starts:
    its options from the file SPEC (msgspec JSON); its run id written to READY once
    prepared. Prints the plain progress log (into the run's log file)."""
    from autonoma.workflow.background import decode_options

    # Its signals are `autonoma.signals`' (installed by `main`): a SIGTERM while it starts
    # (Ctrl-C in the starting terminal) stops it cleanly.
    options = decode_options(spec.read_bytes())
    spec.unlink(missing_ok=True)

    def prepared(done: Any) -> None:
        # Written whole, then renamed: the parent never reads half an id.
        partial = ready.with_name(ready.name + ".part")
        partial.write_text(done.run_id)
        partial.replace(ready)

    _run_company(project.find(_here()), options, gate=True, tui=False, on_prepared=prepared)


_PORT = click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)

_TUI = click.option(
    "--tui/--no-tui",
    default=None,
    help="The dashboard, or a plain progress log (default: the dashboard on a terminal).",
)


@main.command()
@click.argument("requirements", type=click.Path(path_type=Path, dir_okay=True))
@_TUI
@_WORKERS
@click.option("--new", is_flag=True, help="Start a new run even if the last one did not finish.")
@click.option(
    "--scenario",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE",
    help="Play this simulated-model scenario instead of a real model (offline; see the demo).",
)
@click.option(
    "--cluster",
    default=None,
    metavar="ADDRESS",
    help="Run developer and QA agents on this Ray cluster (a Ray address, or auto: the one "
    "on this machine; default: the cluster setting). Needs pip install 'autonoma[ray]'.",
)
def start(
    requirements: Path,
    tui: bool | None,
    max_workers: int | None,
    new: bool,
    scenario: Path | None,
    cluster: str | None,
) -> None:
    """Build what REQUIREMENTS asks for: plan, split, implement, review, merge into main.

    An unfinished run of this project (interrupted, or with escalated tasks) is
    resumed where it stopped. With the dashboard, the run goes on in a process of its
    own: quitting while it goes on asks whether to stop it or leave it running; with
    the plain log, Ctrl-C stops it cleanly.
    """
    from autonoma.workflow.run import RunOptions

    if max_workers is not None:
        _check_workers(max_workers)
    proj = project.find(_here())  # initialised by the run, once every check passed
    _run_company(
        proj,
        RunOptions(
            requirements=requirements.absolute(),
            max_workers=max_workers,
            scenario=None if scenario is None else scenario.absolute(),
            new=new,
            cluster=cluster,
        ),
        tui=tui,
    )


@main.command()
@click.option("--sample", default="todo", show_default=True, help="Which of examples/ to run.")
@click.option(
    "--dir",
    "where",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="An empty folder for the result (default: a new temporary one).",
)
@click.option(
    "--max-workers",
    type=int,
    default=3,
    show_default=True,
    metavar="N",
    help="Developer agents working at once.",
)
@_TUI
def demo(sample: str, where: Path | None, max_workers: int, tui: bool | None) -> None:
    """Run the whole company offline on a sample project (simulated model, real claude)."""
    from autonoma import demo as demo_mod
    from autonoma.workflow.run import RunOptions

    _check_workers(max_workers)
    _sandbox_gate(None)  # before the demo's folder is made (it has no settings yet)
    folder = demo_mod.sample_dir(sample)
    root = demo_mod.make_repository(folder, None if where is None else where.absolute())
    click.echo(f"Demo project: {root} (a copy of {folder}; the model is simulated: no network)")
    with contextlib.chdir(root):
        proj = project.find(root)
        ended: str | None = None
        try:
            ended = _run_company(
                proj,
                RunOptions(
                    requirements=root / "requirements.md",
                    max_workers=max_workers,
                    scenario=folder / "scenario.toml",
                    path_prefix=(demo_mod.python_bin(),),
                ),
                gate=False,
                tui=tui,
            )
        finally:
            if ended != "left":  # left running: its line said where it is
                _say_result(proj)


def _say_result(proj: project.Project) -> None:
    """Where the demo's result is, how to look at it, and how to resume an unfinished run."""
    root = proj.root
    here = shlex.quote(str(root))
    run = None
    if proj.state_db.exists():
        run = reader.replay(proj.state_db, run_id=reader.latest_run(proj.state_db)).run
    # The project's own commands, as the run fixed them: set up, then test.
    commands = (
        []
        if run is None or run.commands is None
        else [c for c in (run.commands.setup_command, run.commands.test_command) if c]
    )
    steps = ["git log --oneline --graph main", *commands, hints.command("status")]
    click.echo(f"The result: {root}\n  cd {here} && " + " && ".join(steps))
    if run is not None and run.outcome != "done":
        click.echo(f"To resume it: cd {here} && {hints.resume_command(run)}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(as_json: bool) -> None:
    """Show the current run: phase, tasks, agents, escalations, cost."""
    proj = project.require_initialised(_here())
    _settings(proj.root)
    state = reader.replay(proj.state_db, run_id=reader.latest_run(proj.state_db))
    project.mark_interrupted(proj, state)
    if as_json:
        click.echo(report.state_json(state))
        return
    text = report.state_text(state)
    pid = project.active_run(proj)
    if pid and state.run is not None and state.run.outcome is None:
        # The process running it (the run lock's holder): the run goes on there.
        first, _, rest = text.partition("\n")
        text = f"{first}\n  process: pid {pid} (`{hints.command('stop')}` stops the run)\n{rest}"
    click.echo(text)


# SQLite's LIMIT is a signed 64-bit integer: past it, an OverflowError.
_MAX_LIMIT = 2**63 - 1


@main.command()
@click.option(
    "--agent", "agent", metavar="ID", help="Only what this agent or actor sent or received."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=_MAX_LIMIT),
    default=50,
    show_default=True,
    help="Last N messages.",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new messages as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def logs(agent: str | None, limit: int, follow: bool, as_json: bool) -> None:
    """Print the journal's messages, oldest first."""
    proj = project.require_initialised(_here())
    _settings(proj.root)
    line = report.envelope_json if as_json else report.envelope_text
    last = reader.last_seq(proj.state_db)
    for envelope in reader.read(
        proj.state_db, until_seq=last, sender_or_recipient=agent, limit_last=limit
    ):
        click.echo(line(envelope))
    if not follow:
        return
    with contextlib.suppress(KeyboardInterrupt):
        for envelope in reader.follow(proj.state_db, after_seq=last, sender_or_recipient=agent):
            click.echo(line(envelope))


@main.command()
@click.option(
    "--at",
    "at_seq",
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="The state just after message SEQ.",
)
@click.option("--run", "run_id", metavar="ID", help="Only this run's messages.")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def replay(at_seq: int | None, run_id: str | None, as_json: bool) -> None:
    """Rebuild the state of a past moment from the journal."""
    proj = project.require_initialised(_here())
    _settings(proj.root)
    last = reader.last_seq(proj.state_db)
    if at_seq is not None and at_seq > last:
        fail(f"--at {at_seq}: the journal ends at seq {last}", 2)
    if run_id is not None and run_id not in reader.run_ids(proj.state_db):
        fail(f"--run {run_id}: no such run in {proj.state_db}", 2)
    state = reader.replay(proj.state_db, at_seq=at_seq, run_id=run_id)
    click.echo(report.state_json(state) if as_json else report.state_text(state))


@main.command()
@click.option("--run", "run_id", metavar="ID", help="This run (default: the latest).")
@click.option(
    "--at",
    "at_seq",
    type=click.IntRange(min=0),
    metavar="SEQ",
    help="Open at this message (time travel); `end` or `l` goes live.",
)
@click.option("--no-notify", is_flag=True, help="No bell or desktop notification.")
@click.option(
    "--web",
    is_flag=True,
    help="The web view in the browser instead (starts `autonoma serve` if none runs).",
)
def dashboard(run_id: str | None, at_seq: int | None, no_notify: bool, web: bool) -> None:
    """The live dashboard of a run: attached to an active run, or on a finished one."""
    from autonoma.tui.run import open_dashboard

    proj = project.require_initialised(_here())
    settings = _settings(proj.root)
    if web:
        if run_id is not None or at_seq is not None:
            fail("--run and --at are for the terminal dashboard: the web view has its own", 2)
        _web_dashboard(proj)
        return
    if run_id is not None and run_id not in reader.run_ids(proj.state_db):
        fail(f"--run {run_id}: no such run in {proj.state_db}", 2)
    if not sys.stdout.isatty():
        fail("the dashboard needs a terminal: `autonoma status` prints the state", 2)
    if open_dashboard(proj, settings, run_id=run_id, at=at_seq, notify=not no_notify) == "stopped":
        run = reader.replay(proj.state_db, run_id=run_id or reader.latest_run(proj.state_db)).run
        if run is not None and run.outcome is not None:
            click.echo(inert(f"Run {run.run_id}: {run.outcome}. {run.summary}"))


def _web_dashboard(proj: project.Project) -> None:
    """Open the web view of ``proj``'s gateway in the browser (or print where it is)."""
    from autonoma.desktop import launch

    try:
        found = launch.find_or_start(proj)
    except launch.LaunchError as err:
        fail(str(err))
    url = found.info.browser_url()
    if found.started is not None:
        pid = found.started
        click.echo(f"Started the gateway (autonoma serve, pid {pid}); `kill {pid}` stops it")
    if launch.open_browser(url):
        click.echo(f"Opened the dashboard in the browser: {url}")
    else:
        click.echo(f"No browser to open here: open {url}")


@main.command()
@_PORT
def serve(port: int) -> None:
    """Serve the web view and its live feed on 127.0.0.1 until Ctrl-C (docs/gateway.md)."""
    from autonoma.desktop import info
    from autonoma.desktop.gateway import Gateway, serve_forever

    proj = project.require_initialised(_here())
    settings = _settings(proj.root)
    running = info.live(info.path_in(proj.dir))
    if running is not None:
        fail(f"a gateway of this project already runs (pid {running.pid}) at {running.http}")

    def ready(found: info.GatewayInfo) -> None:
        click.echo(f"autonoma serve: {proj.root} at {found.http} (websocket {found.url})")
        click.echo(f"The web view: {found.browser_url()}")
        click.echo(f"Address and token: {info.path_in(proj.dir)}. Press Ctrl-C to stop.")
        sys.stdout.flush()

    try:
        serve_forever(Gateway(proj, settings, port=port), ready)
    except KeyboardInterrupt:
        pass
    except OSError as err:
        fail(f"cannot listen on 127.0.0.1:{port}: {err.strerror or err}", 2)
    click.echo("autonoma serve: stopped")


_NOTE = click.option(
    "--note", default="", metavar="TEXT", help="Context for the agent or the record."
)


def _human_request(kind: Literal["retry", "resolve"], task_id: str, note: str) -> None:
    from autonoma.workflow import human

    proj = project.require_initialised(_here())
    _settings(proj.root)
    click.echo(inert(human.request(proj, kind, task_id, note)))


@main.command()
@click.argument("task_id", metavar="TASK")
@_NOTE
def retry(task_id: str, note: str) -> None:
    """Send an escalated or failed task back to work, with --note as added context."""
    _human_request("retry", task_id, note)


@main.command()
@click.argument("task_id", metavar="TASK")
@_NOTE
def resolve(task_id: str, note: str) -> None:
    """Mark a task done by hand, so that the tasks after it may run."""
    _human_request("resolve", task_id, note)


def _send(message: Any) -> project.Project:
    """Give a pause, resume or stop to the active run; print the result line."""
    from autonoma.workflow import human

    proj = project.require_initialised(_here())
    _settings(proj.root)
    click.echo(inert(human.send(proj, message)))
    return proj


@main.command()
def pause() -> None:
    """Pause the active run: no new agent turn starts; turns under way finish."""
    from autonoma.protocol import PauseRequested

    _send(PauseRequested())


@main.command()
def resume() -> None:
    """Resume the active run after `autonoma pause`, or after the root paused it."""
    from autonoma.protocol import ResumeRequested

    _send(ResumeRequested())


_STOP_WAIT = 300.0
"""Seconds `autonoma stop` waits for the run to end before it says it is still going."""


@main.command()
@click.option("--no-wait", is_flag=True, help="Return once the run has the command.")
def stop(no_wait: bool) -> None:
    """Stop the active run gracefully; `autonoma start` resumes it later.

    New work stops, the merge under way finishes, the agents' turns are stopped, and
    the run is journaled as stopped. Waits until the run has ended (exit 0), unless
    --no-wait.
    """
    import time

    from autonoma.protocol import StopRequested

    proj = _send(StopRequested())
    if no_wait:
        return
    deadline = time.monotonic() + _STOP_WAIT
    while time.monotonic() < deadline:
        try:
            lock = project.acquire_run_lock(proj)
        except project.RunActiveError:
            time.sleep(0.2)
            continue
        lock.release()
        state = reader.replay(proj.state_db, run_id=reader.latest_run(proj.state_db))
        run = state.run
        if run is not None and run.outcome is not None:
            click.echo(inert(f"Run {run.run_id}: {run.outcome}. {run.summary}"))
        return
    fail(f"the run has not ended after {_STOP_WAIT:.0f} s: `{hints.command('status')}` shows it")


@main.command()
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def clean(yes: bool) -> None:
    """Remove task clones and worktrees, the journal and logs (settings and roles stay)."""
    proj = project.require_initialised(_here())
    if not yes:
        click.confirm(
            f"Remove the clones, worktrees, journal and logs under {proj.dir}?",
            abort=True,
            err=True,
        )
    removed = project.clean(proj)
    if not removed:
        click.echo("Nothing to clean.")
        return
    for item in removed:
        click.echo(f"  removed {item}")


@main.command()
@_PORT
@click.option(
    "--scenario",
    "scenario_file",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scenario file (TOML).",
)
def sim(port: int, scenario_file: Path) -> None:
    """Serve the simulated Messages API on 127.0.0.1 until Ctrl-C."""
    from autonoma.sim import ScenarioError, SimServer, load_scenario

    try:
        server = SimServer(load_scenario(scenario_file), port=port)
    except ScenarioError as err:
        fail(str(err), 2)
    except OSError as err:
        fail(f"cannot listen on 127.0.0.1:{port}: {err.strerror or err}", 2)
    click.echo(f"autonoma sim: serving {scenario_file} at {server.url}")
    click.echo("Point claude at it with:")
    click.echo(f"  export ANTHROPIC_BASE_URL={server.url}")
    click.echo("  export ANTHROPIC_API_KEY=sim")
    click.echo("  export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1")
    click.echo("Press Ctrl-C to stop.", nl=True)
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    click.echo("autonoma sim: stopped")


@main.command("build-desktop")
@click.option(
    "--platform",
    "choice",
    type=click.Choice(["darwin", "win32", "linux", "all"]),
    default=None,
    help="Which app to build (default: this machine's). Electrobun builds on the system it is for.",
)
def build_desktop(choice: str | None) -> None:
    """Build the desktop app (Electrobun, from desktop/ of a source checkout).

    Electrobun downloads its toolchain from GitHub on first use: where it cannot, one line
    says so and the exit code is 1. The web view needs none of it: `autonoma dashboard --web`.
    """
    from autonoma import desktop_build

    here, elsewhere = desktop_build.plan(choice, desktop_build.host())
    if not here and not elsewhere:
        fail(f"Electrobun builds no app on this system ({sys.platform})")
    for platform in here:
        try:
            artifacts = desktop_build.build(platform)
        except desktop_build.BuildFailed as err:
            fail(str(err), err.exit_code)
        click.echo(f"the {desktop_build.NAMES[platform]} app: {artifacts}")
    for platform in elsewhere:
        click.echo(f"autonoma: {desktop_build.elsewhere_line(platform)}", err=True)
    if elsewhere:
        sys.exit(1)
