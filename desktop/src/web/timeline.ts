// What the web view knows of the journal: the seqs it received, per run, and the
// messages kept for the agents' streams. Pure: no DOM, no socket (tested with `bun test`).

import type { MessageFrame } from "../shared/protocol";

/** Messages kept for the streams; older ones are forgotten (the snapshot has the state). */
export const KEEP_MESSAGES = 20000;

function bisectRight(xs: readonly number[], x: number): number {
	let lo = 0;
	let hi = xs.length;
	while (lo < hi) {
		const mid = (lo + hi) >> 1;
		if (xs[mid] <= x) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

function bisectLeft(xs: readonly number[], x: number): number {
	let lo = 0;
	let hi = xs.length;
	while (lo < hi) {
		const mid = (lo + hi) >> 1;
		if (xs[mid] < x) lo = mid + 1;
		else hi = mid;
	}
	return lo;
}

/**
 * The seq `by` marks after `seq` (before, if negative), clamped to the run's seqs: the
 * dashboard's time travel (autonoma.journal.timeline.Timeline.step). `marks` are all the
 * run's seqs, or only its task events. 0 while the run has no seq.
 */
export function step(
	seqs: readonly number[],
	marks: readonly number[],
	seq: number,
	by: number,
): number {
	if (seqs.length === 0) return 0;
	if (by > 0) {
		const index = bisectRight(marks, seq) + by - 1;
		return index < marks.length ? marks[index] : seqs[seqs.length - 1];
	}
	if (by < 0) {
		const index = bisectLeft(marks, seq) + by;
		return index >= 0 ? marks[index] : seqs[0];
	}
	const index = bisectRight(seqs, seq) - 1;
	return seqs[Math.max(index, 0)];
}

/** One run's seqs as received: every message, and the task events among them. */
export interface RunSeqs {
	seqs: number[];
	events: number[];
}

/** Whom a stream shows: one agent, or every message that has words. */
export type Who = string | null;

/** The journal as received over the websocket: no gap, no duplicate (checked here). */
export class Feed {
	/** The last seq received: a resubscription starts after it. */
	lastSeq = 0;
	/** The run of the last message received (the latest run). */
	latestRun: string | null = null;
	readonly runs = new Map<string, RunSeqs>();
	messages: MessageFrame[] = [];
	/** The message kinds that are task events: the hello frame's `task_events`. */
	taskEvents: ReadonlySet<string>;

	constructor(taskEvents: Iterable<string> = []) {
		this.taskEvents = new Set(taskEvents);
	}

	/** Takes a message frame; false (and nothing kept) for one already received. */
	add(frame: MessageFrame): boolean {
		if (frame.seq <= this.lastSeq) return false;
		this.lastSeq = frame.seq;
		this.latestRun = frame.run_id;
		let run = this.runs.get(frame.run_id);
		if (run === undefined) {
			run = { seqs: [], events: [] };
			this.runs.set(frame.run_id, run);
		}
		run.seqs.push(frame.seq);
		if (this.taskEvents.has(frame.kind)) run.events.push(frame.seq);
		// The message's body is not drawn (its words are in `said`): not kept.
		this.messages.push({ ...frame, message: {} });
		if (this.messages.length > KEEP_MESSAGES * 1.25) {
			this.messages = this.messages.slice(-KEEP_MESSAGES);
		}
		return true;
	}

	/** The seqs of `runId` (empty when none received). */
	seqsOf(runId: string | null): RunSeqs {
		return (runId !== null && this.runs.get(runId)) || { seqs: [], events: [] };
	}
}

/** True when `frame` belongs to `who`'s stream (null: everyone's, when it has words). */
export function concerns(frame: MessageFrame, who: Who): boolean {
	if (frame.said === null) return false;
	if (who === null) return true;
	return frame.sender === who || frame.recipient === who || frame.said.agent_id === who;
}

/**
 * The last `limit` messages of `runId` for `who`'s stream, up to `until` (null: all).
 * Messages sent to everyone ("*") are in everyone's stream only when no agent is picked.
 */
export function streamOf(
	messages: readonly MessageFrame[],
	runId: string | null,
	who: Who,
	until: number | null,
	limit: number,
): MessageFrame[] {
	const found: MessageFrame[] = [];
	for (let i = messages.length - 1; i >= 0 && found.length < limit; i--) {
		const frame = messages[i];
		if (until !== null && frame.seq > until) continue;
		if (runId !== null && frame.run_id !== runId) continue;
		if (concerns(frame, who)) found.push(frame);
	}
	return found.reverse();
}

/** ``12:03:04`` of a journal time stamp (seconds since the epoch), in local time. */
export function clock(ts: number): string {
	const date = new Date(ts * 1000);
	const two = (n: number) => String(n).padStart(2, "0");
	return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/** A folder path inside the project, one level up ("" is the project's root). */
export function parentOf(path: string): string {
	const parts = path.split("/").filter((p) => p !== "");
	parts.pop();
	return parts.join("/");
}

/** `name` inside the folder `path` ("" is the project's root). */
export function join(path: string, name: string): string {
	return path === "" ? name : `${path}/${name}`;
}

/** Where the slider stands for a seq: the index of the run's seq at or before it. */
export function indexOf(seqs: readonly number[], seq: number): number {
	return Math.max(0, bisectRight(seqs, seq) - 1);
}
