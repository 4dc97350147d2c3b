// The web view: the dashboard's panels drawn from the gateway's snapshots (`view`: the same
// rows and words as the terminal dashboard), the agents' streams from the messages' `said`
// (autonoma.words), and the human's commands sent back as `command` frames.

import {
	type BoardRow,
	type ClientFrame,
	type CommandName,
	type Entry,
	type Hello,
	type Line,
	type Listing,
	type MessageFrame,
	PROTOCOL,
	type ServerFrame,
	type Snapshot,
	type TreeNode,
	socketUrl,
	tokenFromHash,
} from "../shared/protocol";
import { button, byId, el, fill } from "./dom";
import { Feed, type Who, clock, indexOf, join, parentOf, step, streamOf } from "./timeline";

/** Lines of an agent's stream drawn at once. */
const STREAM_LINES = 400;
/** Milliseconds between two redraws while messages pour in. */
const REDRAW_MS = 80;
/** Reconnection delays after the gateway went away, in milliseconds. */
const RETRY_MS = [500, 1000, 2000, 4000, 8000];
/** How long "Stop" waits for its confirming second press, in milliseconds. */
const CONFIRM_MS = 5000;

type Connection = "connecting" | "live" | "catching up" | "refused" | "gone" | "no token";

const feed = new Feed();
let socket: WebSocket | null = null;
let token: string | null = null;
let retries = 0;
let hello: Hello | null = null;
let caughtUp = false;

/** The seq shown (time travel), or null: the head, following the run. */
let at: number | null = null;
/** The run the last snapshot showed. */
let shownRun: string | null = null;
let snapshot: Snapshot | null = null;
/** Whose stream is shown (null: every message with words). */
let who: Who = null;

let asked = 0;
/** The id of the snapshot asked last: only its answer is drawn. */
let waitingFor: string | null = null;
/** Messages came while a snapshot was on its way: ask again when it comes. */
let stale = false;
let redrawTimer: number | null = null;
/**
 * The stream follows its newest line unless the user scrolled up to read. Kept from the
 * user's scrolling, not measured at each redraw: panels change size as the board grows.
 */
let pinned = true;

let folder = "";
let chosen: string | null = null;
const notes = new Map<string, string>();
let stopArmed: number | null = null;

// --- the socket ----------------------------------------------------------------------

function send(frame: ClientFrame): boolean {
	if (socket === null || socket.readyState !== WebSocket.OPEN) {
		reply("not connected to the gateway: the command was not sent", "bad");
		return false;
	}
	socket.send(JSON.stringify(frame));
	return true;
}

function connect(): void {
	if (token === null) return;
	setConnection("connecting");
	let opened = false;
	const ws = new WebSocket(socketUrl(location.host, token));
	socket = ws;
	ws.addEventListener("open", () => {
		opened = true;
		retries = 0;
		caughtUp = false;
		setConnection("catching up");
		banner(null);
		// From the last seq this page has: no gap, no duplicate across reconnections.
		send({ type: "subscribe", from_seq: feed.lastSeq });
		askSnapshot();
		listFolder(folder);
	});
	ws.addEventListener("message", (event: MessageEvent) => {
		if (typeof event.data !== "string") return;
		let frame: ServerFrame;
		try {
			frame = JSON.parse(event.data) as ServerFrame;
		} catch {
			return; // not JSON: nothing this page can show
		}
		receive(frame);
	});
	ws.addEventListener("close", (event: CloseEvent) => {
		if (socket !== ws) return;
		socket = null;
		waitingFor = null;
		if (opened) {
			const why = event.reason ? `: ${event.reason}` : "";
			lost(`the connection to the gateway closed (code ${event.code}${why})`);
		} else {
			void diagnose();
		}
	});
}

/**
 * Why the socket did not open. A browser does not show the handshake's HTTP status: the
 * page's own files (served without a token) tell a refused token from a gone gateway.
 */
async function diagnose(): Promise<void> {
	let served = false;
	try {
		const answer = await fetch("index.html", { cache: "no-store" });
		served = answer.ok;
	} catch {
		served = false;
	}
	if (served) {
		setConnection("refused");
		banner(
			"The gateway refused this page's token. Open the link `autonoma serve` prints " +
				"(or run `autonoma dashboard --web`): the token changes each time the gateway starts.",
			"bad",
			true,
		);
	} else {
		lost("the gateway is not answering (is `autonoma serve` still running?)");
	}
}

function lost(why: string): void {
	setConnection("gone");
	const wait = RETRY_MS[Math.min(retries, RETRY_MS.length - 1)];
	retries += 1;
	banner(
		`Gateway gone: ${why}. Reconnecting in ${Math.round(wait / 100) / 10} s, from seq ${feed.lastSeq}.`,
		"bad",
		false,
	);
	window.setTimeout(connect, wait);
}

function receive(frame: ServerFrame): void {
	switch (frame.type) {
		case "hello":
			hello = frame;
			// Which kinds are task events is the gateway's to say (the page keeps no copy).
			feed.taskEvents = new Set(frame.task_events ?? []);
			byId("project").textContent = frame.project;
			if (frame.protocol !== PROTOCOL) {
				banner(
					`This page speaks protocol ${PROTOCOL}, the gateway ${frame.protocol}: reload the page.`,
					"warn",
					false,
				);
			}
			return;
		case "message":
			if (feed.add(frame)) {
				if (at === null) askSnapshot();
				redrawSoon();
			}
			return;
		case "live":
			caughtUp = true;
			setConnection("live");
			askSnapshot();
			redrawSoon();
			return;
		case "snapshot":
			if (frame.id !== waitingFor) return; // an older question's answer
			waitingFor = null;
			snapshot = frame;
			shownRun = frame.run_id;
			drawSnapshot(frame);
			if (stale) {
				stale = false;
				askSnapshot();
			}
			return;
		case "ack":
			reply(frame.text, "good");
			return;
		case "error":
			reply(frame.error, "bad");
			return;
		case "listing":
			drawListing(frame);
			return;
		case "dropped":
			// The gateway closes the socket next; the close resubscribes from our last seq.
			reply(`the gateway dropped this page (${frame.reason}): resubscribing`, "warn");
			return;
	}
}

// --- snapshots and time travel -------------------------------------------------------

function askSnapshot(): void {
	if (socket === null || socket.readyState !== WebSocket.OPEN) return;
	if (at === null && waitingFor !== null) {
		stale = true; // following the head: one question at a time is enough
		return;
	}
	asked += 1;
	waitingFor = `s${asked}`;
	send({
		type: "snapshot",
		id: waitingFor,
		at_seq: at,
		run_id: at === null ? null : shownRun,
	});
}

function runSeqs(): { seqs: number[]; events: number[] } {
	return feed.seqsOf(shownRun ?? feed.latestRun);
}

/** Go to `seq` (null, or the run's last seq: back to live). */
function travelTo(seq: number | null): void {
	const { seqs } = runSeqs();
	const last = seqs.length ? seqs[seqs.length - 1] : 0;
	at = seq === null || seq >= last ? null : seq;
	stale = false;
	waitingFor = null;
	askSnapshot();
	redrawSoon();
}

function travel(by: number, taskEvents: boolean): void {
	const { seqs, events } = runSeqs();
	if (seqs.length === 0) return;
	const from = at ?? seqs[seqs.length - 1];
	travelTo(step(seqs, taskEvents ? events : seqs, from, by));
}

function drawTravel(): void {
	const { seqs } = runSeqs();
	const slider = byId<HTMLInputElement>("slider");
	slider.max = String(Math.max(0, seqs.length - 1));
	slider.disabled = seqs.length === 0;
	const shown = at ?? (seqs.length ? seqs[seqs.length - 1] : 0);
	slider.value = String(at === null ? Math.max(0, seqs.length - 1) : indexOf(seqs, shown));
	const where = byId("where");
	if (at === null) {
		where.textContent = `live · seq ${feed.lastSeq}`;
	} else {
		const index = indexOf(seqs, at) + 1;
		where.textContent = `seq ${at} · message ${index} of ${seqs.length} of this run`;
	}
	document.body.classList.toggle("past", at !== null);
	byId("past").hidden = at === null;
	byId("past-seq").textContent = String(at ?? "");
	byId<HTMLButtonElement>("go-live").disabled = at === null;
}

// --- drawing -------------------------------------------------------------------------

function redrawSoon(): void {
	if (redrawTimer !== null) return;
	redrawTimer = window.setTimeout(() => {
		redrawTimer = null;
		drawStream();
		drawTravel();
	}, REDRAW_MS);
}

function lines(list: HTMLElement, rows: readonly Line[]): void {
	fill(
		list,
		rows.map(([text, level]) => el("li", `level-${level}`, text)),
	);
}

function drawSnapshot(frame: Snapshot): void {
	const view = frame.view;
	drawTree(view.tree);
	drawBoard(view.board);
	lines(byId("run"), view.run);
	lines(byId("escalations"), view.escalations);
	if (view.escalations.length === 0) {
		fill(byId("escalations"), [el("li", "empty", "no escalation")]);
	}
	fill(
		byId("costs"),
		view.costs.length ? view.costs.map((c) => el("li", "", c)) : [el("li", "empty", "nothing spent yet")],
	);
	drawEscalated(view.board.filter((row) => row.raw_state === "escalated"));
	byId("run-id").textContent = frame.run_id ?? "no run yet";
	drawTravel();
	drawStream();
}

function drawTree(root: TreeNode): void {
	const agents = new Set<string>();
	const item = (node: TreeNode): HTMLLIElement => {
		agents.add(node.name);
		const li = el("li");
		li.setAttribute("role", "treeitem");
		const pick = button(node.label, () => pickAgent(node.name === "root" ? null : node.name), `node level-${node.level}`);
		pick.dataset.agent = node.name;
		if ((who ?? "root") === node.name) {
			pick.classList.add("picked");
			pick.setAttribute("aria-pressed", "true");
		}
		li.append(pick);
		if (node.children.length) {
			const ul = el("ul");
			ul.setAttribute("role", "group");
			ul.append(...node.children.map(item));
			li.append(ul);
		}
		return li;
	};
	fill(byId("tree"), [item(root)]);
}

function pickAgent(name: Who): void {
	who = name;
	byId("who").textContent = name ?? "every agent";
	if (snapshot !== null) drawTree(snapshot.view.tree);
	drawStream();
}

function drawBoard(rows: readonly BoardRow[]): void {
	const body = byId("board-rows");
	if (rows.length === 0) {
		const tr = el("tr");
		const td = el("td", "empty", "no task yet (the plan comes first)");
		td.colSpan = 6;
		tr.append(td);
		fill(body, [tr]);
		return;
	}
	fill(
		body,
		rows.map((row) => {
			const tr = el("tr", `state-${row.raw_state}${row.critical ? " critical" : ""}`);
			tr.dataset.task = row.task_id;
			const id = el("td", "task-id", row.task_id);
			if (row.critical) {
				const mark = el("span", "crit", "◆");
				mark.title = "on the critical path";
				mark.setAttribute("aria-label", "on the critical path");
				id.prepend(mark, " ");
			}
			tr.append(
				id,
				el("td", "title", row.title),
				el("td", "state", row.state),
				el("td", "deps", row.deps),
				el("td", "num", String(row.attempts)),
				el("td", "num", row.cost),
			);
			return tr;
		}),
	);
}

function drawEscalated(rows: readonly BoardRow[]): void {
	const forms = rows.map((row) => {
		const form = el("form", "escalated");
		form.dataset.task = row.task_id;
		const label = el("label", "", `${row.task_id}: a note for the retry`);
		const note = el("input");
		note.type = "text";
		note.name = "note";
		note.maxLength = 2000;
		note.placeholder = "what to do differently";
		note.value = notes.get(row.task_id) ?? "";
		note.addEventListener("input", () => notes.set(row.task_id, note.value));
		label.append(note);
		const past = at !== null;
		const retry = button(`Retry ${row.task_id}`, () => command("retry", row.task_id, note.value), "retry");
		const resolve = button(
			`Resolve ${row.task_id}`,
			() => command("resolve", row.task_id, note.value),
			"resolve",
		);
		for (const b of [retry, resolve]) {
			b.disabled = past;
			if (past) b.title = "back to live to act on the run";
		}
		form.addEventListener("submit", (event) => {
			event.preventDefault();
			if (!past) command("retry", row.task_id, note.value);
		});
		form.append(label, retry, resolve);
		return form;
	});
	fill(byId("escalated"), forms);
}

function drawStream(): void {
	const list = byId("stream");
	const frames = streamOf(feed.messages, shownRun ?? feed.latestRun, who, at, STREAM_LINES);
	if (frames.length === 0) {
		fill(list, [el("li", "empty", caughtUp ? "nothing said yet" : "reading the journal…")]);
		return;
	}
	fill(list, frames.map(streamLine));
	if (pinned || at !== null) list.scrollTop = list.scrollHeight;
}

function watchScroll(): void {
	const list = byId("stream");
	list.addEventListener("scroll", () => {
		pinned = list.scrollTop + list.clientHeight >= list.scrollHeight - 24;
	});
}

function streamLine(frame: MessageFrame): HTMLLIElement {
	const said = frame.said;
	const li = el("li", `level-${said?.level ?? "info"}`);
	li.dataset.seq = String(frame.seq);
	const agent = said?.agent_id ?? frame.sender;
	const task = said?.task_id ? ` [${said.task_id}]` : "";
	li.append(
		el("span", "seq", `#${frame.seq}`),
		el("span", "time", clock(frame.ts)),
		el("span", "from", `${agent}${task}`),
		el("span", "text", said?.text ?? frame.kind),
	);
	return li;
}

// --- commands ------------------------------------------------------------------------

function command(name: CommandName, taskId?: string, note?: string, requirements?: string): void {
	asked += 1;
	const frame: ClientFrame = { type: "command", id: `c${asked}`, command: name };
	if (taskId !== undefined) frame.task_id = taskId;
	if (note !== undefined) frame.note = note;
	if (requirements !== undefined) frame.requirements = requirements;
	if (send(frame)) reply(`${name}${taskId ? ` ${taskId}` : ""}: sent…`, "info");
}

function stop(): void {
	const b = byId<HTMLButtonElement>("stop");
	if (stopArmed === null) {
		b.textContent = "Really stop the run?";
		b.classList.add("armed");
		stopArmed = window.setTimeout(disarmStop, CONFIRM_MS);
		return;
	}
	disarmStop();
	command("stop");
}

function disarmStop(): void {
	if (stopArmed !== null) window.clearTimeout(stopArmed);
	stopArmed = null;
	const b = byId<HTMLButtonElement>("stop");
	b.textContent = "Stop";
	b.classList.remove("armed");
}

/** The line under the controls: a command's answer (the CLI's own words) or its error. */
function reply(text: string, level: "info" | "good" | "warn" | "bad"): void {
	const line = byId("reply");
	line.textContent = text;
	line.className = `level-${level}`;
}

// --- the file browser ----------------------------------------------------------------

function listFolder(path: string): void {
	if (socket === null || socket.readyState !== WebSocket.OPEN) return;
	asked += 1;
	send({ type: "list", id: `l${asked}`, path });
}

function drawListing(frame: Listing): void {
	folder = frame.path;
	byId("folder").textContent = `${hello?.project ?? "project"}/${frame.path}`;
	const items: HTMLElement[] = [];
	if (frame.path !== "") {
		const li = el("li");
		li.append(button("⬑ ..", () => listFolder(parentOf(frame.path)), "dir"));
		items.push(li);
	}
	const sorted = [...frame.entries].sort(
		(a: Entry, b: Entry) => Number(b.dir) - Number(a.dir) || a.name.localeCompare(b.name),
	);
	for (const entry of sorted) {
		const li = el("li");
		const path = join(frame.path, entry.name);
		if (entry.dir) {
			li.append(button(`▸ ${entry.name}/`, () => listFolder(path), "dir"));
		} else {
			const pick = button(entry.name, () => choose(path), `file${path === chosen ? " picked" : ""}`);
			pick.dataset.path = path;
			if (!/\.(md|markdown|txt)$/i.test(entry.name)) pick.classList.add("other");
			li.append(pick, el("span", "size", `${entry.size} B`));
		}
		items.push(li);
	}
	if (sorted.length === 0) items.push(el("li", "empty", "empty folder"));
	fill(byId("files"), items);
}

function choose(path: string): void {
	chosen = path;
	byId("chosen").textContent = path;
	byId<HTMLButtonElement>("start").disabled = false;
	for (const b of byId("files").querySelectorAll<HTMLButtonElement>("button.file")) {
		b.classList.toggle("picked", b.dataset.path === path);
	}
}

// --- the page ------------------------------------------------------------------------

function setConnection(state: Connection): void {
	const badge = byId("connection");
	badge.textContent = state;
	badge.className = `badge conn-${state.replace(" ", "-")}`;
}

/** The banner over the panels (null: hidden); `again` adds a "Try again" button. */
function banner(text: string | null, level: "warn" | "bad" = "bad", again = false): void {
	const box = byId("banner");
	if (text === null) {
		box.hidden = true;
		fill(box, []);
		return;
	}
	box.hidden = false;
	box.className = `level-${level}`;
	const parts: HTMLElement[] = [el("span", "", text)];
	if (again) parts.push(button("Try again", connect));
	fill(box, parts);
}

function keys(event: KeyboardEvent): void {
	const target = event.target as HTMLElement | null;
	if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) {
		if (target.id !== "slider") return; // typing a note
	}
	if (event.ctrlKey || event.metaKey || event.altKey) return;
	const moves: Record<string, () => void> = {
		",": () => travel(-1, false),
		".": () => travel(1, false),
		"[": () => travel(-1, true),
		"]": () => travel(1, true),
		Home: () => travelTo(runSeqs().seqs[0] ?? 0),
		End: () => travelTo(null),
		l: () => travelTo(null),
		a: () => pickAgent(null),
	};
	const move = moves[event.key];
	if (move !== undefined) {
		event.preventDefault();
		move();
	}
}

function start(): void {
	byId("travel-start").addEventListener("click", () => travelTo(runSeqs().seqs[0] ?? 0));
	byId("task-back").addEventListener("click", () => travel(-1, true));
	byId("msg-back").addEventListener("click", () => travel(-1, false));
	byId("msg-next").addEventListener("click", () => travel(1, false));
	byId("task-next").addEventListener("click", () => travel(1, true));
	byId("go-live").addEventListener("click", () => travelTo(null));
	byId("past-live").addEventListener("click", () => travelTo(null));
	const slider = byId<HTMLInputElement>("slider");
	slider.addEventListener("input", () => {
		const { seqs } = runSeqs();
		const seq = seqs[Number(slider.value)];
		if (seq !== undefined) travelTo(seq);
	});
	byId("pause").addEventListener("click", () => command("pause"));
	byId("resume").addEventListener("click", () => command("resume"));
	byId("stop").addEventListener("click", stop);
	byId("all-agents").addEventListener("click", () => pickAgent(null));
	byId("start").addEventListener("click", () => {
		if (chosen !== null) command("start", undefined, undefined, chosen);
	});
	document.addEventListener("keydown", keys);
	watchScroll();
	window.addEventListener("hashchange", () => {
		token = tokenFromHash(location.hash);
		if (socket === null && token !== null) connect();
	});

	token = tokenFromHash(location.hash);
	if (token === null) {
		setConnection("no token");
		banner(
			"No token in this page's address. Open the link `autonoma serve` prints " +
				"(http://127.0.0.1:PORT/#token=…), or run `autonoma dashboard --web`.",
			"bad",
		);
		return;
	}
	connect();
}

start();
