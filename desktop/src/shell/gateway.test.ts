// The desktop shell's reading of gateway.json and of the run, as tables (`bun test`).
import { describe, expect, test } from "bun:test";
import type { MessageFrame, Snapshot } from "../shared/protocol";
import { notice, pageUrl, parseGateway, socketUrl, trayTitle } from "./gateway";

const GOOD = {
	protocol: 1,
	url: "ws://127.0.0.1:5123/ws",
	http: "http://127.0.0.1:5123/",
	token: "abc_DEF-123",
	pid: 42,
};

describe("parseGateway", () => {
	const table: Array<[string, string, string]> = [
		["not JSON", "{", "gateway.json is not JSON"],
		["no token", JSON.stringify({ ...GOOD, token: "" }), "gateway.json has no token"],
		["no pid", JSON.stringify({ ...GOOD, pid: "42" }), "gateway.json has no pid"],
		["another protocol", JSON.stringify({ ...GOOD, protocol: 2 }), "gateway.json speaks protocol 2, not 1"],
		[
			"not local",
			JSON.stringify({ ...GOOD, http: "http://example.com:80/" }),
			"gateway.json's http is not a local address: http://example.com:80/",
		],
	];
	for (const [name, text, error] of table) test(name, () => expect(parseGateway(text)).toBe(error));
	test("a good file, and the addresses made of it", () => {
		const info = parseGateway(JSON.stringify(GOOD));
		expect(info).toEqual(GOOD);
		if (typeof info === "string") throw new Error(info);
		expect(pageUrl(info)).toBe("http://127.0.0.1:5123/#token=abc_DEF-123");
		expect(socketUrl(info)).toBe("ws://127.0.0.1:5123/ws?token=abc_DEF-123");
	});
});

function message(kind: string, text: string): MessageFrame {
	return {
		type: "message",
		seq: 7,
		ts: 0,
		run_id: "r",
		sender: "orchestrator",
		recipient: "*",
		kind,
		message: {},
		said: { text, level: "bad", task_id: "t2", agent_id: null },
	};
}

describe("notice: what becomes a notification", () => {
	const table: Array<[string, string | null]> = [
		["Escalation", "Autonoma: a human is needed"],
		["RunFinished", "Autonoma: the run ended"],
		["WorkPaused", "Autonoma: the work is paused"],
		["TaskMerged", null],
		["AgentText", null],
	];
	for (const [kind, title] of table) {
		test(kind, () => {
			const said = notice(message(kind, `words of ${kind}`));
			expect(said?.title ?? null).toBe(title);
			if (said !== null) expect(said.body).toBe(`words of ${kind}`);
		});
	}
});

describe("trayTitle", () => {
	const snap = (run: Array<[string, "info"]>): Snapshot => ({
		type: "snapshot",
		id: null,
		run_id: "r",
		seq: 1,
		head: 1,
		seqs_total: 1,
		state: {},
		view: { tree: { name: "root", label: "root", level: "info", children: [] }, board: [], run, escalations: [], costs: [] },
	});
	test("the phase and the tasks done", () => {
		expect(trayTitle(snap([["run 2026-x: develop", "info"], ["tasks 2/6 done", "info"]]), true)).toBe(
			"Autonoma: develop · tasks 2/6 done",
		);
	});
	test("gone", () => expect(trayTitle(null, false)).toBe("Autonoma: gateway gone"));
	test("no snapshot yet", () => expect(trayTitle(null, true)).toBe("Autonoma"));
});
