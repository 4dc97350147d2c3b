// Electrobun's build of the desktop app (`autonoma build-desktop`, `make desktop`).
// The window shows the gateway's own web view over HTTP (autonoma/desktop/static, served
// by `autonoma serve`): the app bundles only its main process and the tray's icon.
import type { ElectrobunConfig } from "electrobun";

export default {
	app: {
		name: "Autonoma",
		identifier: "dev.autonoma.desktop",
		version: "0.1.0",
		description: "A software company in a box: watch and steer its runs.",
	},
	build: {
		bun: {
			entrypoint: "src/shell/main.ts",
		},
		copy: {
			"assets/tray.png": "views/assets/tray.png",
		},
		mac: { bundleCEF: false },
		linux: { bundleCEF: false },
		win: { bundleCEF: false },
	},
	runtime: {
		// The tray stays when the window is closed: "Open the dashboard" brings it back.
		exitOnLastWindowClosed: false,
	},
} satisfies ElectrobunConfig;
