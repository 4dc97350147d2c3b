// What the desktop shell reads of the gateway: `.autonoma/gateway.json`, and from the
// websocket the run's state for the tray and the moments worth a notification.
// Pure (no Electrobun, no file access): tested with `bun test`.

import type { MessageFrame, Snapshot } from "../shared/protocol";

/** `.autonoma/gateway.json`, written by `autonoma serve` (mode 0600). */
export interface GatewayInfo {
	protocol: number;
	url: string;
	http: string;
	token: string;
	pid: number;
}

/** The gateway file's content, or a one-line reason it is not usable. */
export function parseGateway(text: string): GatewayInfo | string {
	let data: unknown;
	try {
		data = JSON.parse(text);
	} catch {
		return "gateway.json is not JSON";
	}
	if (typeof data !== "object" || data === null) return "gateway.json is not an object";
	const info = data as Record<string, unknown>;
	for (const key of ["url", "http", "token"]) {
		if (typeof info[key] !== "string" || info[key] === "") return `gateway.json has no ${key}`;
	}
	if (typeof info.pid !== "number") return "gateway.json has no pid";
	if (info.protocol !== 1) return `gateway.json speaks protocol ${String(info.protocol)}, not 1`;
	const http = info.http as string;
	if (!/^http:\/\/(127\.0\.0\.1|localhost):\d+\/$/.test(http)) {
		return `gateway.json's http is not a local address: ${http}`;
	}
	return {
		protocol: 1,
		url: info.url as string,
		http,
		token: info.token as string,
		pid: info.pid as number,
	};
}

/** The web view's address, the token in the fragment (never sent over HTTP). */
export function pageUrl(info: GatewayInfo): string {
	return `${info.http}#token=${encodeURIComponent(info.token)}`;
}

/** The websocket address with the token as a query parameter. */
export function socketUrl(info: GatewayInfo): string {
	return `${info.url}?token=${encodeURIComponent(info.token)}`;
}

/** A desktop notification: its title and body. */
export interface Notice {
	title: string;
	body: string;
}

/**
 * The notification a live message deserves: an escalation (a task, or the run, needs a
 * human) and the end of a run. The words are the message's own (`said`).
 */
export function notice(frame: MessageFrame): Notice | null {
	const text = frame.said?.text ?? frame.kind;
	if (frame.kind === "Escalation") return { title: "Autonoma: a human is needed", body: text };
	if (frame.kind === "WorkPaused") return { title: "Autonoma: the work is paused", body: text };
	if (frame.kind === "RunFinished") return { title: "Autonoma: the run ended", body: text };
	return null;
}

/** The tray's title: the run panel's first line ("run X: developing"), short. */
export function trayTitle(snapshot: Snapshot | null, connected: boolean): string {
	if (!connected) return "Autonoma: gateway gone";
	const first = snapshot?.view.run[0]?.[0];
	if (first === undefined) return "Autonoma";
	const line = first.replace(/^run \S+: /, "");
	const done = snapshot?.view.run.find(([text]) => text.startsWith("tasks "))?.[0];
	const title = done ? `Autonoma: ${line} · ${done}` : `Autonoma: ${line}`;
	return title.length > 60 ? `${title.slice(0, 59)}…` : title;
}
