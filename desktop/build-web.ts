// Builds the web view (src/web) into autonoma/desktop/static, or into the folder given as
// the first argument (tests/desktop/test_build.py builds into a temporary folder and
// compares). Run with the project's bun: `make webview`, or `.tools/bun/node_modules/.bin/bun
// desktop/build-web.ts`. The output is the same bytes for the same sources.

import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const here = import.meta.dir;
const source = join(here, "src", "web");
const out = resolve(process.argv[2] ?? join(here, "..", "autonoma", "desktop", "static"));
// The bundle names its modules by their path from the working folder: the checkout's root,
// wherever this is run from, so that the bytes do not depend on it.
process.chdir(join(here, ".."));

mkdirSync(out, { recursive: true });
const built = await Bun.build({
	entrypoints: [join(source, "app.ts")],
	root: join(here, "src"),
	target: "browser",
	format: "iife",
	minify: false,
	sourcemap: "none",
});
if (!built.success) {
	for (const log of built.logs) console.error(log);
	process.exit(1);
}
const banner = "// Built by desktop/build-web.ts from desktop/src/web: edit those, then `make webview`.\n";
writeFileSync(join(out, "app.js"), banner + (await built.outputs[0].text()));
for (const file of ["index.html", "app.css"]) copyFileSync(join(source, file), join(out, file));
console.log(`web view built into ${out}`);
