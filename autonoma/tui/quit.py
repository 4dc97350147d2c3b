"""Quitting the dashboard while its run goes on: stop the run, or leave it running.

The run lives in a process of its own (`autonoma.workflow.background`, or whatever
started it), so the dashboard may go and leave it running; `QuitDialog` asks, and
`Stopping` is shown after a stop was sent, until the run has ended.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from autonoma.hints import command

Choice = Literal["stop", "leave", "cancel"]
"""What the user chose in `QuitDialog`."""

Quit = Literal["quit", "left", "stopped"]
"""How the dashboard ended (the app's return value): a plain quit (no run going on), the
run left running, or the run stopped from the dashboard and ended."""


class QuitDialog(ModalScreen[Choice]):
    """Stop the run, leave it running, or go back to the dashboard."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "choose('stop')", "Stop the run"),
        Binding("l", "choose('leave')", "Leave it running"),
        Binding("escape", "choose('cancel')", "Cancel"),
    ]

    def __init__(self, run_id: str, started_here: bool) -> None:
        super().__init__()
        self.run_id = run_id
        self.started_here = started_here

    def compose(self) -> ComposeResult:
        where = "in the background" if self.started_here else "in its own process"
        with Vertical():
            yield Label(f"Run {self.run_id} is still going.", id="quit-title", markup=False)
            yield Static(
                "s  stop it, cleanly (starting it again resumes it)\n"
                f"l  leave it running {where}:\n"
                f"   `{command('dashboard')}` comes back to it,\n"
                f"   `{command('stop')}` stops it\n"
                "esc  back to the dashboard",
                markup=False,
            )
        yield Footer()

    def action_choose(self, choice: Choice) -> None:
        self.dismiss(choice)


class Stopping(ModalScreen[None]):
    """Shown from the stop until the run has ended (the dashboard then exits)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "leave", "Leave now (the run still stops)"),
    ]

    def __init__(self, said: str) -> None:
        super().__init__()
        self.said = said

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("stopping…", id="quit-title")
            yield Static(
                f"{self.said}\nNew work stops, the merge under way finishes, the agents' "
                "turns are stopped.",
                markup=False,
            )
        yield Footer()

    def action_leave(self) -> None:
        self.app.exit("left")
