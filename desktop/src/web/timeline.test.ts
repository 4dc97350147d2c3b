// The web view's time travel and streams, as tables (`bun test`, run by
// tests/desktop/test_build.py).
import { describe, expect, test } from "bun:test";
import type { MessageFrame } from "../shared/protocol";
import { Feed, concerns, indexOf, join, parentOf, step, streamOf } from "./timeline";

const SEQS = [3, 5, 8, 13, 21];
const EVENTS = [5, 13];

describe("step: the dashboard's time travel over the seqs received", () => {
	const table: Array<[string, number, number, readonly number[], number]> = [
		["one message forward", 5, 1, SEQS, 8],
		["two messages forward", 5, 2, SEQS, 13],
		["forward past the end: the head", 21, 1, SEQS, 21],
		["one message back", 8, -1, SEQS, 5],
		["back past the start: the first seq", 3, -1, SEQS, 3],
		["from between two seqs, back", 9, -1, SEQS, 8],
		["from between two seqs, forward", 9, 1, SEQS, 13],
		["next task event", 5, 1, EVENTS, 13],
		["next task event after the last: the head", 13, 1, EVENTS, 21],
		["previous task event", 13, -1, EVENTS, 5],
		["previous task event before the first: the first seq", 5, -1, EVENTS, 3],
		["by 0: the seq at or before", 9, 0, SEQS, 8],
		["by 0 before the run: its first seq", 1, 0, SEQS, 3],
	];
	for (const [name, from, by, marks, expected] of table) {
		test(name, () => expect(step(SEQS, marks, from, by)).toBe(expected));
	}
	test("no seq yet: 0", () => expect(step([], [], 4, 1)).toBe(0));
});

function frame(seq: number, kind: string, sender: string, recipient: string, agent: string | null, run = "r1"): MessageFrame {
	return {
		type: "message",
		seq,
		ts: 1_700_000_000 + seq,
		run_id: run,
		sender,
		recipient,
		kind,
		message: {},
		said: kind === "Silent" ? null : { text: `${kind} ${seq}`, level: "info", task_id: null, agent_id: agent },
	};
}

describe("Feed: no gap, no duplicate, seqs per run", () => {
	test("a seq received twice is kept once", () => {
		const feed = new Feed();
		expect(feed.add(frame(1, "RunStarted", "root", "*", null))).toBe(true);
		expect(feed.add(frame(2, "AgentText", "developer-1", "*", "developer-1"))).toBe(true);
		expect(feed.add(frame(2, "AgentText", "developer-1", "*", "developer-1"))).toBe(false);
		expect(feed.add(frame(1, "RunStarted", "root", "*", null))).toBe(false);
		expect(feed.lastSeq).toBe(2);
		expect(feed.messages.map((m) => m.seq)).toEqual([1, 2]);
	});
	test("task events (the kinds the hello frame names) are marked, runs kept apart", () => {
		const feed = new Feed(["RunStarted", "TaskStateChanged"]);
		feed.add(frame(1, "RunStarted", "root", "*", null, "r1"));
		feed.add(frame(2, "AgentText", "d", "*", "d", "r1"));
		feed.add(frame(3, "TaskStateChanged", "orchestrator", "*", null, "r1"));
		feed.add(frame(4, "RunStarted", "root", "*", null, "r2"));
		expect(feed.seqsOf("r1")).toEqual({ seqs: [1, 2, 3], events: [1, 3] });
		expect(feed.seqsOf("r2")).toEqual({ seqs: [4], events: [4] });
		expect(feed.latestRun).toBe("r2");
		expect(feed.seqsOf("nope")).toEqual({ seqs: [], events: [] });
	});
	test("before a hello, no kind is a task event", () => {
		const feed = new Feed();
		feed.add(frame(1, "RunStarted", "root", "*", null));
		expect(feed.seqsOf("r1")).toEqual({ seqs: [1], events: [] });
	});
});

describe("streams: whose messages an agent's stream shows", () => {
	const rows = [
		frame(1, "RunStarted", "root", "*", null),
		frame(2, "AgentText", "developer-1", "orchestrator", "developer-1"),
		frame(3, "TaskAssigned", "orchestrator", "developer-1", null),
		frame(4, "AgentText", "developer-2", "orchestrator", "developer-2"),
		frame(5, "Silent", "developer-1", "*", null),
		frame(6, "AgentToolUse", "crew", "*", "developer-1"),
	];
	const table: Array<[string, string | null, number | null, number, number[]]> = [
		["everyone: every message with words", null, null, 10, [1, 2, 3, 4, 6]],
		["developer-1: sent, received, about it", "developer-1", null, 10, [2, 3, 6]],
		["developer-2", "developer-2", null, 10, [4]],
		["up to a seq (time travel)", "developer-1", 3, 10, [2, 3]],
		["only the last ones", null, null, 2, [4, 6]],
	];
	for (const [name, who, until, limit, seqs] of table) {
		test(name, () => expect(streamOf(rows, "r1", who, until, limit).map((m) => m.seq)).toEqual(seqs));
	}
	test("another run's messages are not in this run's stream", () => {
		expect(streamOf([frame(9, "AgentText", "d", "*", "d", "r2")], "r1", null, null, 10)).toEqual([]);
	});
	test("a message without words is in no stream", () => {
		expect(concerns(rows[4], "developer-1")).toBe(false);
	});
});

describe("paths of the file browser and the slider", () => {
	test("parent and join", () => {
		expect(parentOf("docs/specs")).toBe("docs");
		expect(parentOf("docs")).toBe("");
		expect(join("", "requirements.md")).toBe("requirements.md");
		expect(join("docs", "a.md")).toBe("docs/a.md");
	});
	test("the slider's index of a seq", () => {
		expect(indexOf(SEQS, 13)).toBe(3);
		expect(indexOf(SEQS, 14)).toBe(3);
		expect(indexOf(SEQS, 1)).toBe(0);
	});
});
