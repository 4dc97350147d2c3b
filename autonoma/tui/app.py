"""The dashboard: a Textual app over one run's journal.

Every panel is drawn from ``source.state_at(at)`` (``at`` None: live, following new
rows on a timer). Keys step through the journal (time travel), send a human's commands
(retry, resolve, pause, resume, stop) and open the help. The app reads only the journal
and sends only commands.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Label, RichLog, Static, Tree
from textual.widgets.tree import TreeNode

from autonoma import views
from autonoma.journal.fold import State
from autonoma.tui.notify import escape
from autonoma.tui.quit import Quit, QuitDialog, Stopping
from autonoma.tui.source import STREAM_ROWS, JournalSource
from autonoma.words import Level

STYLES: dict[Level, str] = {"info": "", "good": "green", "warn": "yellow", "bad": "bold red"}

REFRESH_S = 0.25
"""Seconds between two looks for new rows in the journal while live."""

Command = Callable[[str, str, str], str]
"""Sends a human's command: ``(kind, task_id, note) -> the line to show``."""


def styled(lines: list[tuple[str, Level]]) -> Text:
    """Lines joined, each in its level's style (no style at all under NO_COLOR)."""
    text = Text()
    for i, (line, level) in enumerate(lines):
        if i:
            text.append("\n")
        text.append(line, style=STYLES[level])
    return text


@dataclass(frozen=True)
class RunLink:
    """The run behind this dashboard, which quitting may stop or leave running."""

    running: Callable[[], bool]
    """True while the run's process goes on (it ends a little after the run's end)."""
    started_here: bool = False
    """The command that opened this dashboard started the run (in the background)."""


HELP = """\
[b]Autonoma dashboard[/b]  (reads the journal; sends only commands)

[b]Time travel[/b]
  ← / →      one message back / forward
  [ / ]      one task event back / forward
  home       the start of the run
  end, l     back to live
[b]Panels[/b]
  tab        next panel; enter on an agent shows its stream
[b]Commands[/b] (on the task selected in the board)
  r          retry it, with a note
  d          resolve it by hand, with a note
  p / u / s  pause / resume / stop the run
[b]Other[/b]
  n          notifications on or off
  ?          this help
  q          quit
"""


class HelpScreen(ModalScreen[None]):
    """The keys, one screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP, id="help")

    def action_close(self) -> None:
        self.dismiss(None)


class NoteDialog(ModalScreen[str | None]):
    """Asks for the note that goes with a retry or a resolve (escape: cancel)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(placeholder="a note for the agent or the record (enter: send)")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class Dashboard(App[Quit]):
    """The live dashboard of one run."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "autonoma"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_dashboard", "Quit"),
        Binding("ctrl+c", "quit_dashboard", "Quit", show=False, priority=True),
        Binding("left", "step(-1)", "← msg", show=False, priority=True),
        Binding("right", "step(1)", "msg →", show=False, priority=True),
        Binding("comma", "step(-1)", "◀ msg"),
        Binding("full_stop", "step(1)", "msg ▶"),
        Binding("left_square_bracket", "task_step(-1)", "◀ task"),
        Binding("right_square_bracket", "task_step(1)", "task ▶"),
        Binding("home", "jump_start", "Start", priority=True),
        Binding("end", "live", "Live", show=False, priority=True),
        Binding("l", "live", "Live"),
        Binding("r", "human('retry')", "Retry"),
        Binding("d", "human('resolve')", "Resolve"),
        Binding("p", "control('pause')", "Pause", show=False),
        Binding("u", "control('resume')", "Resume", show=False),
        Binding("s", "control('stop')", "Stop", show=False),
        Binding("n", "toggle_notify", "Notify", show=False),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(
        self,
        source: JournalSource,
        *,
        at: int | None = None,
        command: Command | None = None,
        control: Callable[[str], str] | None = None,
        link: RunLink | None = None,
        notify: bool = True,
        budget_usd: float = 0.0,
        task_budget_usd: float = 0.0,
        max_retries: int | None = None,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.source = source
        self.at: int | None = at
        """The seq shown; None: live (the head, followed)."""
        self.command = command
        self.control = control
        self.link = link
        self.stopping = False
        """A stop was sent from the quit dialog: the app exits once the run has ended."""
        self.notify_on = notify
        self.budget_usd = budget_usd
        self.task_budget_usd = task_budget_usd
        self.max_retries = max_retries
        self.refresh_s = refresh_s
        self.clock = clock
        self.agent: str | None = None
        """The agent whose stream is shown."""
        self.state = State()
        self._shown: tuple[int | None, int] | None = None
        self._notified: set[str] = set()
        self.notified: list[str] = []
        """What the bell and the desktop notifications said, in order."""
        self._first = True
        self._stream_shown: list[tuple[str, Level]] = []
        self._stream_rows: tuple[str | None, int, int] | None = None
        # What each panel shows, to leave alone the panels that did not change.
        self._statics: dict[str, Text] = {}
        self._tree_shown: views.Node | None = None
        self._board_shown: list[views.BoardRow] | None = None
        self._board_widths: list[int] = []
        self.stream_text = ""
        """What the stream panel shows (for tests and screen readers)."""
        if os.environ.get("NO_COLOR"):
            # Textual honours NO_COLOR for its own colours; our styles follow.
            for level in STYLES:
                STYLES[level] = "bold" if level == "bad" else ""

    def compose(self) -> ComposeResult:
        yield Static(id="seqbar")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                tree: Tree[str] = Tree("root", id="actors")
                tree.border_title = "actors"
                tree.show_root = True
                yield tree
                run = Static(id="run")
                run.border_title = "run"
                yield run
            with Vertical(id="right"):
                board: DataTable[str | Text] = DataTable(
                    id="board", cursor_type="row", zebra_stripes=True
                )
                board.border_title = "tasks (* critical path)"
                yield board
                escalations = Static(id="escalations")
                escalations.border_title = "needs a human"
                yield escalations
                stream = RichLog(id="stream", wrap=True, markup=False, auto_scroll=True)
                stream.border_title = "stream"
                yield stream
        yield Footer()

    def on_mount(self) -> None:
        board = self.query_one("#board", DataTable)
        board.add_columns("task", "state", "deps", "tries", "cost", "title")
        self.source.refresh()
        self.redraw()
        self.set_interval(self.refresh_s, self.follow)

    # --- reading -----------------------------------------------------------------------

    def follow(self) -> None:
        """Read new rows; redraw if the live view moved (time travel stays where it is).
        After a stop from the quit dialog: exit once the run has ended."""
        self.source.refresh()
        try:
            self.redraw()
        except NoMatches:
            # The timer fired while the app quits: its screen's widgets are already gone.
            return
        if self.stopping and self.link is not None and not self.link.running():
            self.exit("stopped")

    def redraw(self, force: bool = False) -> None:
        """Draw every panel from the state at ``self.at``.

        Nothing new (same seq shown, same head): only the run panel is drawn again, and
        only while live (its elapsed time moves); every other panel is a function of the
        state, which did not change.
        """
        key = (self.at, self.source.head)
        live = self.at is None
        if not force and key == self._shown:
            if live:
                self._draw_run(live)
            return
        self.state = self.source.state_at(self.at)
        self._shown = key
        self._draw_seqbar(live)
        self._draw_tree()
        self._draw_board()
        self._draw_run(live)
        self._draw_escalations()
        self._draw_stream()
        if live:
            self._maybe_notify()
        self._first = False

    @property
    def seq(self) -> int:
        """The seq shown now."""
        return self.source.head if self.at is None else self.at

    def _draw_seqbar(self, live: bool) -> None:
        bar = self.query_one("#seqbar", Static)
        where = "live" if live else "time travel: end or l returns to live"
        run = self.state.run
        name = run.run_id if run is not None else "no run yet"
        # One line, always: no layout to redo.
        self._update(bar, Text(f"{name} · at {self.seq} / {self.source.head} ({where})"), False)
        bar.set_class(not live, "travel")

    def _draw_tree(self) -> None:
        tree: Tree[str] = self.query_one("#actors", Tree)
        root = views.tree(self.state)
        if root == self._tree_shown:
            return  # every label as it is: nothing to lay out again
        self._tree_shown = root
        tree.root.set_label(root.label)
        tree.root.data = root.name
        self._sync(tree.root, root)
        tree.root.expand_all()

    def _sync(self, node: TreeNode[str], model: views.Node) -> None:
        existing = {child.data: child for child in node.children}
        wanted = [c.name for c in model.children]
        if [c.data for c in node.children] != wanted:
            node.remove_children()
            existing = {}
        for child in model.children:
            label = Text(child.label, style=STYLES[child.level])
            target = existing.get(child.name)
            if target is None:
                target = node.add(label, data=child.name, expand=True)
            else:
                target.set_label(label)
            if child.children or target.children:
                target.allow_expand = True
                self._sync(target, child)
            else:
                target.allow_expand = False

    def _draw_board(self) -> None:
        board = self.query_one("#board", DataTable)
        rows = views.board(self.state, self.max_retries)
        old = self._board_shown
        if rows == old:
            return
        self._board_shown = rows
        cells = [_board_cells(row) for row in rows]
        widths = _widths(cells)
        if (
            old is not None
            and [r.task_id for r in rows] == [r.task_id for r in old]
            and widths == self._board_widths
        ):
            # The same tasks and column widths: only the cells that changed are drawn
            # again (a cleared table renders every row anew); the table looks the same.
            columns = list(board.columns)
            for row, before, now in zip(rows, old, cells, strict=True):
                if row == before:
                    continue
                for column, value, was in zip(columns, now, _board_cells(before), strict=True):
                    if value != was:
                        board.update_cell(row.task_id, column, value)
            return
        self._board_widths = widths
        selected = self.selected_task()
        board.clear()
        for row, values in zip(rows, cells, strict=True):
            board.add_row(*values, key=row.task_id)
        if selected is not None and selected in self.state.tasks:
            board.move_cursor(row=list(self.state.tasks).index(selected))

    def _draw_run(self, live: bool) -> None:
        run = self.state.run
        if run is not None:
            # Killed without a word: only the run's process (its lock) says it is gone.
            # Set or cleared every time: the state may be the source's own.
            run.interrupted = (
                live and run.outcome is None and self.link is not None and not self.link.running()
            )
            live = live and not run.interrupted
        lines = views.run_lines(
            self.state,
            live=live,
            now=self.clock(),
            budget_usd=self.budget_usd,
            task_budget_usd=self.task_budget_usd,
        )
        costs = views.agent_costs(self.state)
        if costs:
            lines.append(("; ".join(costs), "info"))
        self._update(self.query_one("#run", Static), styled(lines))

    def _draw_escalations(self) -> None:
        lines = views.escalations(self.state)
        panel = self.query_one("#escalations", Static)
        self._update(panel, styled(lines) if lines else Text())
        panel.set_class(bool(lines), "shown")

    def _update(self, panel: Static, text: Text, layout: bool = True) -> None:
        """Show ``text`` in ``panel`` unless it shows it already.

        Laying the screen out again is the costliest part of a redraw: it is asked only
        when the panel's height (``height: auto``) changes with the text, wrapped.
        """
        key = panel.id or ""
        before = self._statics.get(key)
        if before == text:
            return
        self._statics[key] = text
        width = panel.content_size.width
        if layout and before is not None and width > 0:
            # Both at today's width (the screen may have been resized since).
            layout = len(text.wrap(self.console, width)) != len(before.wrap(self.console, width))
        panel.update(text, layout=layout)

    def _draw_stream(self) -> None:
        stream = self.query_one("#stream", RichLog)
        agent = self.agent
        if agent is None:
            # The agent working now, else the last that acted.
            working = [a for a in self.state.agents.values() if a.state == "working"]
            acted = [a for a in self.state.agents.values() if a.last is not None]
            pick = working[0] if working else (max(acted, key=_last_seq) if acted else None)
            agent = pick.name if pick is not None else None
        stream.border_title = f"stream of {agent}" if agent else "stream"
        rows = self.source.rows_of(agent, self.seq) if agent is not None else []
        # The rows are the agent's last ones up to the seq shown: their first and last
        # seqs say which. The same rows: the same lines, not decoded again.
        shown = (agent, rows[0][0], rows[-1][0]) if rows else (agent, 0, 0)
        if shown == self._stream_rows:
            return
        self._stream_rows = shown
        lines: list[tuple[str, Level]] = (
            views.stream_lines(rows)[-STREAM_ROWS:]
            if agent is not None
            else [("no agent has spoken yet", "info")]
        )
        if lines == self._stream_shown:
            return
        old = self._stream_shown
        self._stream_shown = lines
        if old and lines[: len(old)] == old:
            new = lines[len(old) :]  # the same stream, grown: only its new lines are drawn
        else:
            stream.clear()
            new = lines
        for line, level in new:
            stream.write(Text(line, style=STYLES[level]))
        self.stream_text = "\n".join(line for line, _ in lines)

    def _maybe_notify(self) -> None:
        """Ring once per new escalation, "needs a human", and at the run's end."""
        events: list[tuple[str, str]] = []
        for record in self.state.escalations:
            events.append((f"esc:{record.seq}", f"escalation: {record.reason}"))
        if self.state.paused:
            events.append(
                (f"pause:{self.state.paused_by}:{self.state.work_pause}", "paused: needs a human")
            )
        run = self.state.run
        if run is not None and run.outcome is not None:
            events.append((f"end:{run.run_id}:{run.ended}", f"run {run.outcome}"))
        fresh = [(k, t) for k, t in events if k not in self._notified]
        self._notified.update(k for k, _ in events)
        if self._first or not fresh or not self.notify_on:
            return  # what was there when the dashboard opened is no news
        body = "; ".join(text for _, text in fresh)
        self.notified.append(body)
        self.bell()
        driver = self._driver
        if driver is not None:
            driver.write(escape("autonoma", body))

    # --- selection ---------------------------------------------------------------------

    def selected_task(self) -> str | None:
        """The task under the board's cursor."""
        board = self.query_one("#board", DataTable)
        if board.row_count == 0:
            return None
        try:
            key = board.coordinate_to_cell_key(board.cursor_coordinate).row_key
        except Exception:
            return None
        return None if key.value is None else str(key.value)

    @on(Tree.NodeHighlighted)
    @on(Tree.NodeSelected)
    def agent_picked(self, event: Tree.NodeHighlighted[str] | Tree.NodeSelected[str]) -> None:
        name = event.node.data
        if name is not None and name in self.state.agents and name != self.agent:
            self.agent = name
            self._draw_stream()

    # --- keys --------------------------------------------------------------------------

    _TRAVEL = frozenset({"step", "task_step", "jump_start", "live"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Time travel keys belong to the dashboard, not to a dialog's text field."""
        return not (action in self._TRAVEL and len(self.screen_stack) > 1)

    def action_step(self, by: int) -> None:
        self._go(self.source.step(self.seq, by))

    def action_task_step(self, by: int) -> None:
        self._go(self.source.step(self.seq, by, task_events=True))

    def action_jump_start(self) -> None:
        seqs = self.source.seqs
        self._go(seqs[0] if seqs else 0)

    def action_live(self) -> None:
        self.at = None
        self.redraw(force=True)

    def _go(self, seq: int) -> None:
        self.at = None if seq >= self.source.head else seq
        self.redraw(force=True)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_toggle_notify(self) -> None:
        self.notify_on = not self.notify_on
        self.notify(f"notifications {'on' if self.notify_on else 'off'}")

    def action_human(self, kind: str) -> None:
        task = self.selected_task()
        if task is None:
            self.notify("no task selected", severity="warning")
            return
        if self.command is None:
            self.notify("this dashboard cannot send commands", severity="warning")
            return
        command = self.command

        def send(note: str | None) -> None:
            if note is None:
                return
            try:
                said = command(kind, task, note)
            except Exception as err:  # a refusal (wrong state...): said, not raised
                self.notify(str(err), severity="error", timeout=8)
                return
            self.notify(said, timeout=8)

        verb = "Retry" if kind == "retry" else "Resolve by hand"
        self.push_screen(NoteDialog(f"{verb} {task}: a note?"), send)

    def action_control(self, kind: str) -> None:
        if self.control is None:
            self.notify(f"{kind}: not available here", severity="warning")
            return
        try:
            self.notify(self.control(kind), timeout=8)
        except Exception as err:
            self.notify(str(err), severity="error", timeout=8)

    def action_quit_dashboard(self) -> None:
        """Quit; while the run goes on, ask first: stop it, or leave it running."""
        if isinstance(self.screen, QuitDialog | Stopping):
            return  # already asked: its own keys answer
        link = self.link
        head = self.source.state_at(None).run
        if link is None or not link.running() or (head is not None and head.outcome is not None):
            # Nothing to stop: no run here, or it ended (its actors are only winding down).
            self.exit("quit")
            return
        run_id = head.run_id if head is not None else "the run"
        self.push_screen(QuitDialog(run_id, link.started_here), self._quit_chosen)

    def _quit_chosen(self, choice: str | None) -> None:
        if choice == "leave":
            self.exit("left")
        elif choice == "stop":
            if self.control is None:
                self.notify("stop: not available here", severity="warning")
                return
            try:
                said = self.control("stop")
            except Exception as err:  # refused (the run just ended...): said, not raised
                self.notify(str(err), severity="error", timeout=8)
                return
            self.stopping = True
            self.push_screen(Stopping(said))


def _board_cells(row: views.BoardRow) -> tuple[Text, ...]:
    """The board's cells for one task, as shown: Text, never markup (a title is the
    model's words: ``[/x]`` in it is text, not a closing tag)."""
    style = {"merged": "green", "resolved": "green", "escalated": "bold red"}.get(
        row.raw_state, STYLES["warn"] if row.raw_state == "failed" else ""
    )
    if os.environ.get("NO_COLOR"):
        style = "bold" if row.raw_state == "escalated" else ""
    name = f"*{row.task_id}" if row.critical else f" {row.task_id}"
    plain = (row.deps, str(row.attempts), row.cost, row.title)
    return (Text(name), Text(row.state, style=style), *(Text(cell) for cell in plain))


def _widths(cells: list[tuple[Text, ...]]) -> list[int]:
    """Each column's widest cell: what the table's column widths follow."""
    widest = [0] * (len(cells[0]) if cells else 0)
    for row in cells:
        for i, cell in enumerate(row):
            widest[i] = max(widest[i], cell.cell_len)
    return widest


def _last_seq(agent: object) -> int:
    last = getattr(agent, "last", None)
    return 0 if last is None else int(last.seq if hasattr(last, "seq") else last[0])


def dashboard_for(db: Path, run_id: str | None = None, **options: object) -> Dashboard:
    """A dashboard on the journal ``db`` (run ``run_id``, None: the latest)."""
    return Dashboard(JournalSource(db, run_id), **options)  # type: ignore[arg-type]
