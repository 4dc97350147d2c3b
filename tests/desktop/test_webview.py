"""The web view in real headless Chromium, against the real gateway (``autonoma serve``).

Journals recorded from real demo runs (tests/tui/data) feed the gateway for the recorded
cases; a live ``autonoma demo`` (the real claude, the simulated model) for the live one.
Chromium is Debian's (``make test`` installs it), driven by Playwright's
``executable_path``. Screenshots go to tests/desktop/artifacts/ (printed; gitignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, sync_playwright

from autonoma import views
from autonoma.journal import reader
from autonoma.journal.timeline import Timeline
from autonoma.protocol import RetryRequested
from autonoma.words import describe
from autonoma.workflow.human import NO_ACTIVE_RUN
from tests.conftest import run_autonoma
from tests.e2e.runs import make_project

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "tui" / "data"
ARTIFACTS = Path(__file__).parent / "artifacts"
WAIT_MS = 20_000


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def chromium_path() -> str:
    """Debian's chromium: `make test` (`make chromium`) installs it where missing."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "the web view's tests need Chromium: `make chromium` (sudo apt-get install chromium)"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        # Root (CI's containers) cannot use Chromium's sandbox.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
        yield launched
        launched.close()


@pytest.fixture(scope="session", autouse=True)
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"\nweb view screenshots: {ARTIFACTS}")
    return ARTIFACTS


def shot(page: Page, name: str) -> Path:
    """A screenshot kept as a test artefact."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


@dataclass
class Served:
    """``autonoma serve`` running in a project: its process and its gateway.json."""

    root: Path
    proc: subprocess.Popen[str]
    info: dict[str, Any]

    def url(self, token: str | None = "") -> str:
        """The web view's address with the right token ("") or ``token`` (None: none)."""
        if token is None:
            return str(self.info["http"])
        return f"{self.info['http']}#token={token or self.info['token']}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # as Ctrl-C: the gateway removes its file
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve(root: Path, port: int = 0) -> Served:
    """Starts ``autonoma serve`` in ``root``; returns once its gateway.json names it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "autonoma", "serve", "--port", str(port)],
        cwd=root,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    file = root / ".autonoma" / "gateway.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"autonoma serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            info = json.loads(file.read_text())
        except (OSError, ValueError):
            info = None
        if info is not None and info.get("pid") == proc.pid:
            return Served(root, proc, info)
        time.sleep(0.1)
    proc.kill()
    pytest.fail("autonoma serve wrote no gateway.json in 30 s")


def recorded(parent: Path, journal: str) -> Path:
    """A project whose journal is a copy of ``tests/tui/data/<journal>``."""
    root = make_project(parent)
    done = run_autonoma("init", cwd=root, env=_env())
    assert done.returncode == 0, done.stderr
    shutil.copyfile(DATA / journal, root / ".autonoma" / "state.db")
    return root


@pytest.fixture
def demo_served(tmp_path: Path) -> Iterator[Served]:
    served = serve(recorded(tmp_path, "demo.db"))
    yield served
    served.stop()


@pytest.fixture
def escalated_served(tmp_path: Path) -> Iterator[Served]:
    served = serve(recorded(tmp_path, "escalated.db"))
    yield served
    served.stop()


def open_page(browser: Browser, url: str, width: int = 1024, height: int = 640) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def wait_until(what: str, check: Callable[[], bool], timeout: float = WAIT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def board(page: Page) -> dict[str, str]:
    """The board as shown: task id -> state words."""
    rows = page.locator("#board-rows tr[data-task]")
    return {
        str(rows.nth(i).get_attribute("data-task")): rows.nth(i).locator("td.state").inner_text()
        for i in range(rows.count())
    }


def stream(page: Page) -> list[str]:
    """The stream's lines as shown: the words only."""
    return [t.strip() for t in page.locator("#stream li .text").all_inner_texts()]


def expected_board(db: Path, at_seq: int | None) -> dict[str, str]:
    """The board the terminal dashboard draws from the same journal at ``at_seq``."""
    timeline = Timeline(db, None)
    timeline.refresh()
    state = timeline.state_at(at_seq)
    return {row.task_id: row.state for row in views.board(state)}


def expected_critical(db: Path, at_seq: int | None) -> set[str]:
    """The tasks the terminal dashboard marks as on the critical path at ``at_seq``."""
    timeline = Timeline(db, None)
    timeline.refresh()
    return {row.task_id for row in views.board(timeline.state_at(at_seq)) if row.critical}


def expected_stream(db: Path, who: str | None, until: int | None = None) -> list[str]:
    """What the page's stream should show: autonoma.words for the rows of ``who``."""
    lines: list[str] = []
    for row in reader.rows(db, until_seq=until):
        envelope = reader.envelope_of(row)
        said = describe(envelope.message)
        if said is None:
            continue
        if who is None or who in (row[3], row[4], said.agent_id):
            lines.append(said.text)
    return lines[-400:]


def at_newest_line(page: Page) -> bool:
    """The stream is scrolled to its newest line."""
    return bool(
        page.evaluate(
            "(() => { const l = document.getElementById('stream');"
            " return l.scrollTop + l.clientHeight >= l.scrollHeight - 30; })()"
        )
    )


def last_seq(db: Path) -> int:
    return max(row[0] for row in reader.rows(db))


# --- a recorded run ------------------------------------------------------------------------


def test_the_tree_the_board_and_streams_of_a_recorded_run(
    browser: Browser, demo_served: Served
) -> None:
    db = demo_served.root / ".autonoma" / "state.db"
    page = open_page(browser, demo_served.url())
    page.wait_for_selector("#connection:text('live')")
    wait_until("the board of six tasks", lambda: len(board(page)) == 6)

    assert board(page) == expected_board(db, None)
    assert set(board(page).values()) == {"merged"}
    tree = page.locator("#tree").inner_text()
    for actor in ("orchestrator", "crew", "developer-1", "ceo"):
        assert actor in tree
    run = page.locator("#run").inner_text()
    assert "done" in run and "tasks 6/6 done" in run
    assert "developer-1 $" in page.locator("#costs").inner_text()
    # The critical path is marked once the plan has open tasks: none at the end.
    assert page.locator("#board-rows tr.critical").count() == 0

    # Every agent's words first, then one agent's: the journal's rows in autonoma.words.
    wait_until("the whole stream", lambda: stream(page) == expected_stream(db, None))
    shot(page, "recorded-1024x640")
    page.locator("#tree button[data-agent='developer-1']").click()
    assert page.locator("#who").inner_text() == "developer-1"
    wait_until("developer-1's stream", lambda: stream(page) == expected_stream(db, "developer-1"))
    assert any(line.startswith(("Bash", "Write", "Read", "Edit")) for line in stream(page)), stream(
        page
    )
    shot(page, "recorded-developer-1")

    # Keyboard only: "a" shows every agent again.
    page.keyboard.press("a")
    wait_until("every agent again", lambda: page.locator("#who").inner_text() == "every agent")

    # Nothing wider than the window, at 1024x640 and at a phone's width.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 400, "height": 800})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.locator("#board-rows tr[data-task]").first.is_visible()
    shot(page, "recorded-narrow-400")
    assert page.errors == []  # type: ignore[attr-defined]
    page.close()


def test_time_travel_shows_an_earlier_state(browser: Browser, demo_served: Served) -> None:
    db = demo_served.root / ".autonoma" / "state.db"
    page = open_page(browser, demo_served.url())
    page.wait_for_selector("#connection:text('live')")
    wait_until("the board", lambda: len(board(page)) == 6)

    page.locator("#travel-start").click()  # the run's first message: no plan yet
    page.wait_for_selector("#past:not([hidden])")
    wait_until("the empty board of the run's start", lambda: board(page) == {})
    assert "no task yet" in page.locator("#board-rows").inner_text()

    # One task event at a time, by keyboard, until the plan is on the board.
    seen: list[dict[str, str]] = []
    for _ in range(12):
        page.keyboard.press("]")
        page.wait_for_timeout(150)
        wait_until("the snapshot asked", lambda: page.locator("#past-seq").inner_text() != "")
        seen.append(board(page))
        if board(page):
            break
    at = int(page.locator("#past-seq").inner_text())
    wait_until("the board at the seq", lambda: board(page) == expected_board(db, at))
    assert board(page), seen
    # The critical path of that moment is marked, as the dashboard marks it.
    marked = set(
        page.locator("#board-rows tr.critical").evaluate_all("rs => rs.map(r => r.dataset.task)")
    )
    assert marked and marked == expected_critical(db, at)
    assert set(board(page).values()) != {"merged"}  # earlier than the end
    assert "merged" not in board(page).values()
    # The stream stops at that seq too.
    wait_until("the stream up to the seq", lambda: stream(page) == expected_stream(db, None, at))
    shot(page, "time-travel-plan")

    # One message back: the seq just before.
    page.locator("#msg-back").click()
    wait_until("one message back", lambda: int(page.locator("#past-seq").inner_text()) == at - 1)

    # The slider: halfway through the run.
    page.locator("#slider").evaluate(
        "s => { s.value = String(Math.floor(Number(s.max) / 2));"
        " s.dispatchEvent(new Event('input')); }"
    )
    wait_until(
        "the slider's seq", lambda: page.locator("#past-seq").inner_text() not in ("", str(at - 1))
    )
    middle = int(page.locator("#past-seq").inner_text())
    wait_until("the board halfway", lambda: board(page) == expected_board(db, middle))
    shot(page, "time-travel-middle")

    page.keyboard.press("l")  # back to live
    page.wait_for_selector("#past", state="hidden")
    wait_until("the board at the head", lambda: board(page) == expected_board(db, None))
    assert page.locator("#where").inner_text() == f"live · seq {last_seq(db)}"
    assert page.errors == []  # type: ignore[attr-defined]
    page.close()


def test_retry_of_an_escalated_task_from_the_page_reaches_the_run(
    browser: Browser, escalated_served: Served
) -> None:
    db = escalated_served.root / ".autonoma" / "state.db"
    before = last_seq(db)
    page = open_page(browser, escalated_served.url())
    page.wait_for_selector("#connection:text('live')")
    wait_until("t2 escalated", lambda: board(page).get("t2") == "escalated")
    assert "t2 escalated" in page.locator("#escalations").inner_text()
    shot(page, "escalated")

    # A command refused by the run comes back as an error line, not as a success.
    page.locator("#pause").click()
    page.wait_for_selector("#reply.level-bad")
    assert page.locator("#reply").inner_text() == f"{NO_ACTIVE_RUN}: nothing to pause"

    form = page.locator("form.escalated[data-task='t2']")
    form.locator("input[name='note']").fill("split the parser <b>first</b>")
    form.locator("button.retry").click()
    page.wait_for_selector("#reply.level-good")
    said = page.locator("#reply").inner_text()
    assert said.startswith("t2 will be retried when the run resumes"), said

    rows = [
        (row[0], reader.envelope_of(row).message)
        for row in reader.rows(db, after_seq=before)
        if row[5] == "RetryRequested"
    ]
    assert len(rows) == 1, rows
    seq, message = rows[0]
    assert isinstance(message, RetryRequested)
    assert message.task_id == "t2"
    assert message.note == "split the parser <b>first</b>"
    assert "gateway" in message.origin
    # The row comes back to the page live, in the run's words, its note as text (not HTML).
    retried = describe(message)
    assert retried is not None
    wait_until("the request in the stream", lambda: retried.text in stream(page))
    assert page.locator("#stream b").count() == 0
    assert page.locator(f"#stream li[data-seq='{seq}']").count() == 1
    shot(page, "escalated-retried")

    # Resolve, the other button: its own row, its own answer.
    form.locator("input[name='note']").fill("done by hand")
    form.locator("button.resolve").click()
    page.wait_for_selector("#reply:not(.level-info)")
    assert page.locator("#reply.level-good").count() == 1, page.locator("#reply").inner_text()
    answer = page.locator("#reply").inner_text()
    assert answer.startswith("t2 will be marked resolved when the run resumes"), answer
    resolved = [
        reader.envelope_of(row).message
        for row in reader.rows(db, after_seq=seq)
        if row[5] == "ResolveRequested"
    ]
    assert [(m.task_id, m.note) for m in resolved] == [("t2", "done by hand")]  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]
    page.close()


# --- tokens and a gone gateway --------------------------------------------------------------


def test_a_wrong_or_missing_token_is_refused_and_shows_no_data(
    browser: Browser, demo_served: Served
) -> None:
    page = open_page(browser, demo_served.url("not-the-token"))
    page.wait_for_selector("#connection:text('refused')")
    banner = page.locator("#banner")
    assert banner.is_visible()
    assert "refused this page's token" in banner.inner_text()
    assert board(page) == {}
    assert page.locator("#stream li[data-seq]").count() == 0
    shot(page, "token-refused")
    page.close()

    page = open_page(browser, demo_served.url(None))
    page.wait_for_selector("#connection:text('no token')")
    assert "No token in this page's address" in page.locator("#banner").inner_text()
    assert board(page) == {}
    shot(page, "token-missing")
    page.close()


def test_a_gone_gateway_is_said_and_the_page_reconnects(browser: Browser, tmp_path: Path) -> None:
    root = recorded(tmp_path, "demo.db")
    served = serve(root)
    try:
        page = open_page(browser, served.url())
        page.wait_for_selector("#connection:text('live')")
        wait_until("the board", lambda: len(board(page)) == 6)
        served.stop()
        page.wait_for_selector("#connection:text('gone')")
        assert re.search(
            r"Gateway gone: .*Reconnecting in [\d.]+ s, from seq \d+",
            page.locator("#banner").inner_text(),
        )
        assert len(board(page)) == 6  # what it showed stays
        shot(page, "gateway-gone")
        # A new gateway on the same port has a new token: the page, reconnecting, is told
        # its token is refused.
        port = int(served.info["http"].rsplit(":", 1)[1].strip("/"))
        served = serve(root, port)
        page.wait_for_selector("#connection:text('refused')", timeout=30_000)
        # Opened with the new link, it reads the journal again.
        page.goto(served.url())
        page.reload()
        page.wait_for_selector("#connection:text('live')")
        wait_until("the board again", lambda: len(board(page)) == 6)
        page.close()
    finally:
        served.stop()


def test_a_dropped_connection_resubscribes_from_the_last_seq_it_has(
    browser: Browser, escalated_served: Served
) -> None:
    root = escalated_served.root
    db = root / ".autonoma" / "state.db"
    page = browser.new_page(viewport={"width": 1024, "height": 640})
    page.set_default_timeout(WAIT_MS)
    sent: list[dict[str, Any]] = []
    routes: list[WebSocketRoute] = []

    def through(route: WebSocketRoute) -> None:
        # The real gateway behind the route; the page's frames are recorded on the way.
        server = route.connect_to_server()

        def to_server(message: str | bytes) -> None:
            sent.append(json.loads(message))
            server.send(message)

        route.on_message(to_server)
        routes.append(route)

    page.route_web_socket(re.compile(r"/ws\?token="), through)
    page.goto(escalated_served.url())
    page.wait_for_selector("#connection:text('live')")
    head = last_seq(db)
    wait_until("every row", lambda: page.locator("#stream li[data-seq]").count() > 0)

    routes[0].close(code=4000, reason="slow client")  # as the gateway drops a slow client
    page.wait_for_selector("#connection:text('gone')")
    assert "code 4000: slow client" in page.locator("#banner").inner_text()
    page.wait_for_selector("#connection:text('live')")
    assert page.locator("#banner").is_hidden()
    subscribes = [f["from_seq"] for f in sent if f["type"] == "subscribe"]
    assert subscribes == [0, head]

    # A row written after the reconnection arrives once.
    done = run_autonoma("retry", "t2", "--note", "after the drop", cwd=root, env=_env())
    assert done.returncode == 0, done.stderr
    wait_until("the new row", lambda: last_seq(db) > head)
    seq = last_seq(db)
    page.wait_for_selector(f"#stream li[data-seq='{seq}']")
    seqs = page.locator("#stream li[data-seq]").evaluate_all(
        "items => items.map(i => Number(i.dataset.seq))"
    )
    assert len(seqs) == len(set(seqs)) and seqs == sorted(seqs)
    assert page.locator("#where").inner_text() == f"live · seq {seq}"
    page.close()


# --- the file browser -----------------------------------------------------------------------


def test_the_file_browser_lists_the_project_and_starts_nothing_outside_it(
    browser: Browser, demo_served: Served
) -> None:
    root = demo_served.root
    (root / "specs").mkdir()
    (root / "specs" / "app.md").write_text("Make an app.\n")
    (root / "specs" / "empty.md").write_text("")
    page = open_page(browser, demo_served.url())
    page.wait_for_selector("#connection:text('live')")
    page.wait_for_selector("#files button.file[data-path='requirements.md']")
    names = page.locator("#files").inner_text()
    assert ".git" not in names and ".autonoma" not in names
    page.locator("#files button.dir", has_text="specs/").click()
    page.wait_for_selector("#files button.file[data-path='specs/app.md']")
    page.locator("#files button.file[data-path='specs/app.md']").click()
    assert page.locator("#chosen").inner_text() == "specs/app.md"
    assert page.locator("#start").is_enabled()
    page.locator("#files button.dir", has_text="..").click()
    page.wait_for_selector("#files button.file[data-path='requirements.md']")
    shot(page, "files")

    # Start: the run's own refusal comes back as the error line (an empty requirements
    # file is refused before anything runs).
    page.locator("#files button.dir", has_text="specs/").click()
    page.locator("#files button.file[data-path='specs/empty.md']").click()
    page.locator("#start").click()
    page.wait_for_selector("#reply.level-bad", timeout=90_000)
    assert "empty" in page.locator("#reply").inner_text()
    assert "RunStarted" not in {
        row[5] for row in reader.rows(root / ".autonoma" / "state.db", after_seq=456)
    }
    shot(page, "files-start-refused")
    page.close()


# --- a live run -----------------------------------------------------------------------------


def test_a_live_demo_run_appears_and_updates_in_the_page(browser: Browser, tmp_path: Path) -> None:
    where = tmp_path / "todo"
    # The run's own gateway is left off: `autonoma serve` beside it outlives the run.
    demo = subprocess.Popen(
        [sys.executable, "-m", "autonoma", "demo", "--dir", str(where)],
        cwd=tmp_path,
        env=_env(AUTONOMA_GATEWAY="false"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served: Served | None = None
    try:
        wait_until("the demo's journal", lambda: (where / ".autonoma" / "state.db").exists(), 120)
        served = serve(where)
        page = open_page(browser, served.url())
        page.wait_for_selector("#connection:text('live')")
        boards: list[tuple[str, ...]] = []
        lengths: list[int] = []
        pictured: list[Path] = []
        followed: list[bool] = []

        def watch() -> bool:
            shown = board(page)
            states = tuple(shown.values())
            if not boards or boards[-1] != states:
                boards.append(states)
            lengths.append(len(stream(page)))
            if len(boards) == 3 and not pictured:
                pictured.append(shot(page, "live-running"))
                followed.append(at_newest_line(page))
            return len(shown) == 6 and set(states) == {"merged"}

        wait_until("the six tasks merged, live", watch, timeout=400)
        assert demo.wait(timeout=120) == 0
        db = where / ".autonoma" / "state.db"
        # It changed under our eyes: a plan first, then states moving, to all merged.
        assert len(boards) >= 3, boards
        assert any(states and "merged" not in states for states in boards), boards
        assert lengths[-1] > lengths[0]
        assert followed == [True]  # the stream follows its newest line as the board grows
        wait_until("the run's end", lambda: "tasks 6/6 done" in page.locator("#run").inner_text())
        wait_until("the board as the fold", lambda: board(page) == expected_board(db, None))
        tree = page.locator("#tree").inner_text()
        assert "developer-1" in tree
        wait_until("the whole stream", lambda: stream(page) == expected_stream(db, None))
        wait_until("the stream at its end", lambda: at_newest_line(page))
        shot(page, "live-done")
        assert page.errors == []  # type: ignore[attr-defined]
        page.close()
    finally:
        if served is not None:
            served.stop()
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=60)
