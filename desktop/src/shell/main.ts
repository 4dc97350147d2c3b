// The desktop app's main process (Electrobun, bun side). It asks for a project folder,
// starts `autonoma serve` there, reads `.autonoma/gateway.json`, and opens a window on the
// gateway's web view. A tray item shows the run's state (from the same websocket the page
// uses) with quick actions; escalations and the end of a run become native notifications.

import Electrobun, { BrowserWindow, Tray, Utils } from "electrobun/bun";
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { ClientFrame, MessageFrame, ServerFrame, Snapshot } from "../shared/protocol";
import {
	type GatewayInfo,
	notice,
	pageUrl,
	parseGateway,
	socketUrl,
	trayTitle,
} from "./gateway";

/** How long `autonoma serve` may take to write its gateway file, in milliseconds. */
const SERVE_START_MS = 30_000;
const RETRY_MS = [500, 1000, 2000, 5000];

function fatal(message: string): never {
	console.error(`autonoma desktop: ${message}`);
	Utils.showNotification({ title: "Autonoma cannot start", body: message });
	Utils.quit();
	throw new Error(message);
}

/** The project folder: $AUTONOMA_PROJECT, or the one the user picks in a folder dialog. */
async function chooseProject(): Promise<string | null> {
	const given = process.env.AUTONOMA_PROJECT;
	if (given) return given;
	const picked = await Utils.openFileDialog({
		startingFolder: "~/",
		allowedFileTypes: "*",
		canChooseFiles: false,
		canChooseDirectory: true,
		allowsMultipleSelection: false,
	});
	return picked.map((p) => p.trim()).find((p) => p !== "") ?? null;
}

function alive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch {
		return false;
	}
}

function readGateway(project: string): GatewayInfo | null {
	const file = join(project, ".autonoma", "gateway.json");
	if (!existsSync(file)) return null;
	try {
		const info = parseGateway(readFileSync(file, "utf8"));
		return typeof info === "string" ? null : info;
	} catch {
		return null; // being replaced (written atomically): read it again
	}
}

/**
 * Starts `autonoma serve` in `project` and waits for its gateway file. If serve exits first
 * (a run's own gateway already serves this project), that gateway is used.
 */
async function startGateway(project: string): Promise<{ info: GatewayInfo; serve: Bun.Subprocess | null }> {
	const autonoma = process.env.AUTONOMA_BIN || Bun.which("autonoma");
	if (!autonoma) fatal("`autonoma` is not on PATH (pip install autonoma, or set AUTONOMA_BIN)");
	const serve = Bun.spawn([autonoma, "serve"], {
		cwd: project,
		stdin: "ignore",
		stdout: "inherit",
		stderr: "pipe",
	});
	const until = Date.now() + SERVE_START_MS;
	while (Date.now() < until) {
		const info = readGateway(project);
		if (info !== null && info.pid === serve.pid) {
			void new Response(serve.stderr).text(); // drained: a full pipe would block serve
			return { info, serve };
		}
		if (serve.exitCode !== null) {
			if (info !== null && alive(info.pid)) return { info, serve: null };
			const said = (await new Response(serve.stderr).text()).trim().split("\n").pop();
			fatal(said || `autonoma serve exited with code ${serve.exitCode}`);
		}
		await Bun.sleep(200);
	}
	serve.kill("SIGINT");
	fatal(`autonoma serve wrote no .autonoma/gateway.json in ${SERVE_START_MS / 1000} s`);
}

/** The run as the tray sees it: a websocket client of the gateway, reconnecting. */
class Watcher {
	private socket: WebSocket | null = null;
	private lastSeq = 0;
	private live = false;
	private retries = 0;
	private asked = 0;
	private waiting = false;
	private stale = false;
	/** The message kinds that move the board: the hello frame's `task_events`. */
	private taskEvents: ReadonlySet<string> = new Set();
	snapshot: Snapshot | null = null;
	connected = false;

	constructor(
		private readonly info: GatewayInfo,
		private readonly changed: () => void,
	) {}

	connect(): void {
		const ws = new WebSocket(socketUrl(this.info));
		this.socket = ws;
		ws.addEventListener("open", () => {
			this.connected = true;
			this.retries = 0;
			this.live = false;
			this.send({ type: "subscribe", from_seq: this.lastSeq });
			this.ask();
		});
		ws.addEventListener("message", (event: MessageEvent) => {
			if (typeof event.data !== "string") return;
			try {
				this.receive(JSON.parse(event.data) as ServerFrame);
			} catch (error) {
				console.error("autonoma desktop: a frame it cannot read:", error);
			}
		});
		ws.addEventListener("close", () => {
			this.socket = null;
			this.connected = false;
			this.waiting = false;
			this.changed();
			const wait = RETRY_MS[Math.min(this.retries, RETRY_MS.length - 1)];
			this.retries += 1;
			setTimeout(() => this.connect(), wait);
		});
	}

	send(frame: ClientFrame): boolean {
		if (this.socket === null || this.socket.readyState !== WebSocket.OPEN) return false;
		this.socket.send(JSON.stringify(frame));
		return true;
	}

	private ask(): void {
		if (this.waiting) {
			this.stale = true;
			return;
		}
		this.asked += 1;
		this.waiting = true;
		this.send({ type: "snapshot", id: `tray${this.asked}`, at_seq: null, run_id: null });
	}

	private receive(frame: ServerFrame): void {
		if (frame.type === "hello") {
			this.taskEvents = new Set(frame.task_events ?? []);
		} else if (frame.type === "message") {
			this.message(frame);
		} else if (frame.type === "live") {
			this.live = true;
		} else if (frame.type === "snapshot") {
			this.waiting = false;
			this.snapshot = frame;
			this.changed();
			if (this.stale) {
				this.stale = false;
				this.ask();
			}
		} else if (frame.type === "ack") {
			Utils.showNotification({ title: "Autonoma", body: frame.text, silent: true });
		} else if (frame.type === "error") {
			Utils.showNotification({ title: "Autonoma: refused", body: frame.error });
		}
	}

	private message(frame: MessageFrame): void {
		if (frame.seq <= this.lastSeq) return;
		this.lastSeq = frame.seq;
		if (this.taskEvents.has(frame.kind) && this.live) this.ask();
		// What happened before the app connected is no news.
		const said = this.live ? notice(frame) : null;
		if (said !== null) Utils.showNotification({ title: said.title, body: said.body });
	}
}

async function main(): Promise<void> {
	const project = await chooseProject();
	if (project === null) {
		Utils.quit();
		return;
	}
	const { info, serve } = await startGateway(project);
	const name = basename(project);
	let window: BrowserWindow | null = null;

	const open = (): void => {
		if (window !== null) {
			window.focus();
			return;
		}
		window = new BrowserWindow({
			title: `Autonoma · ${name}`,
			url: pageUrl(info),
			frame: { x: 80, y: 60, width: 1280, height: 820 },
		});
		window.on("close", () => {
			window = null;
		});
	};

	const tray = new Tray({
		title: "Autonoma",
		image: "views://assets/tray.png",
		template: true,
		width: 16,
		height: 16,
	});
	let watcher: Watcher | null = null;
	const drawTray = (): void => {
		const title = trayTitle(watcher?.snapshot ?? null, watcher?.connected ?? false);
		tray.setTitle(title);
		tray.setMenu([
			{ type: "normal", label: title, enabled: false },
			{ type: "divider" },
			{ type: "normal", label: "Open the dashboard", action: "open" },
			{ type: "normal", label: "Pause the run", action: "pause" },
			{ type: "normal", label: "Resume the run", action: "resume" },
			{ type: "divider" },
			{ type: "normal", label: `Quit (stops the gateway of ${name})`, action: "quit" },
		]);
	};
	watcher = new Watcher(info, drawTray);
	drawTray();
	tray.on("tray-clicked", (event: unknown) => {
		const { action } = (event as { data: { action: string } }).data;
		if (action === "" || action === "open") open();
		else if (action === "pause" || action === "resume") {
			if (!watcher?.send({ type: "command", id: `tray-${action}`, command: action })) {
				Utils.showNotification({ title: "Autonoma", body: `${action}: the gateway is gone` });
			}
		} else if (action === "quit") Utils.quit();
	});

	Electrobun.events.on("before-quit", () => {
		// SIGINT: the gateway ends as on Ctrl-C and removes its gateway.json.
		serve?.kill("SIGINT");
	});

	watcher.connect();
	open();
}

await main();
