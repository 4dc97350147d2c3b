// The gateway's frames (protocol version 1, docs/gateway.md), as the web view and the
// desktop shell read and send them. The server defines them (autonoma/desktop/frames.py);
// these types only say what the clients rely on.

export const PROTOCOL = 1;

export type Level = "info" | "good" | "warn" | "bad";

/** A message in words, from autonoma.words.describe: the same line as everywhere else. */
export interface Said {
	text: string;
	level: Level;
	task_id: string | null;
	agent_id: string | null;
}

export interface Hello {
	type: "hello";
	protocol: number;
	project: string;
	run_id: string | null;
	head: number;
	/**
	 * Message kinds that move the board: where "one task event back / forward" stops
	 * (autonoma.journal.timeline.TASK_EVENTS, sent by the gateway: no copy is kept here).
	 */
	task_events: string[];
}

export interface MessageFrame {
	type: "message";
	seq: number;
	ts: number;
	run_id: string;
	sender: string;
	recipient: string;
	kind: string;
	message: Record<string, unknown>;
	said: Said | null;
}

export interface Live {
	type: "live";
	seq: number;
}

export interface TreeNode {
	name: string;
	label: string;
	level: Level;
	children: TreeNode[];
}

export interface BoardRow {
	task_id: string;
	title: string;
	state: string;
	deps: string;
	attempts: number;
	cost: string;
	critical: boolean;
	raw_state: string;
}

export type Line = [string, Level];

export interface View {
	tree: TreeNode;
	board: BoardRow[];
	run: Line[];
	escalations: Line[];
	costs: string[];
}

export interface Snapshot {
	type: "snapshot";
	id: string | number | null;
	run_id: string | null;
	seq: number;
	head: number;
	seqs_total: number;
	state: Record<string, unknown>;
	view: View;
}

export interface Ack {
	type: "ack";
	id: string | number | null;
	text: string;
}

export interface ErrorFrame {
	type: "error";
	id: string | number | null;
	error: string;
}

export interface Entry {
	name: string;
	dir: boolean;
	size: number;
}

export interface Listing {
	type: "listing";
	id: string | number | null;
	path: string;
	entries: Entry[];
}

export interface Dropped {
	type: "dropped";
	reason: string;
	last_seq: number;
}

export type ServerFrame =
	| Hello
	| MessageFrame
	| Live
	| Snapshot
	| Ack
	| ErrorFrame
	| Listing
	| Dropped;

export type CommandName = "pause" | "resume" | "stop" | "retry" | "resolve" | "start";

export type ClientFrame =
	| { type: "subscribe"; from_seq: number; id?: string }
	| { type: "snapshot"; at_seq: number | null; run_id: string | null; id?: string }
	| {
			type: "command";
			id?: string;
			command: CommandName;
			task_id?: string;
			note?: string;
			requirements?: string;
	  }
	| { type: "list"; id?: string; path: string };

/** The websocket URL of the gateway that served this page (same host and port). */
export function socketUrl(host: string, token: string): string {
	return `ws://${host}/ws?token=${encodeURIComponent(token)}`;
}

/** The token from a URL fragment such as ``#token=abc`` (null when there is none). */
export function tokenFromHash(hash: string): string | null {
	const params = new URLSearchParams(hash.replace(/^#/, ""));
	const token = params.get("token");
	return token ? token : null;
}
