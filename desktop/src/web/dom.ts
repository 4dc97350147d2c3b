// Small DOM helpers. Text from the journal (the model's words, file names) only ever goes
// in through textContent: never parsed as HTML.

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
	const found = document.getElementById(id);
	if (found === null) throw new Error(`the page has no #${id}`);
	return found as T;
}

/** A new element with classes and, optionally, its text (as text). */
export function el<K extends keyof HTMLElementTagNameMap>(
	tag: K,
	className = "",
	text: string | null = null,
): HTMLElementTagNameMap[K] {
	const node = document.createElement(tag);
	if (className) node.className = className;
	if (text !== null) node.textContent = text;
	return node;
}

/** A button that runs `action` when clicked (or pressed with Enter or Space). */
export function button(label: string, action: () => void, className = ""): HTMLButtonElement {
	const node = el("button", className, label);
	node.type = "button";
	node.addEventListener("click", action);
	return node;
}

/** Puts `children` in `parent` instead of what it held. */
export function fill(parent: HTMLElement, children: readonly Node[]): void {
	parent.replaceChildren(...children);
}
