# Set-up and checks. `make test` works on a fresh clone with only Python 3.11+, Node/npm and git.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLAUDE_VERSION := 2.1.331
CLAUDE_DIR := .tools/claude
CLAUDE_BIN := $(CLAUDE_DIR)/node_modules/.bin/claude
# bun builds the web view (desktop/src -> autonoma/desktop/static) and runs the desktop
# shell's tools. The npm package takes its binary from an npm optional dependency
# (@oven/bun-<os>-<arch>): nothing but the npm registry is asked.
BUN_VERSION := 1.4.5
BUN_DIR := .tools/bun
BUN_BIN := $(BUN_DIR)/node_modules/.bin/bun
# The web view's Chromium tests drive Debian's chromium (Playwright's own download is a CDN).
CHROMIUM ?= chromium

.PHONY: dev claude bun sandbox-deps chromium test chaos lint format demo wheel clean-tools \
	webview desktop desktop-mac desktop-win desktop-linux

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $@

dev: $(VENV)/.installed

# Releases from 2.1.200 on declare node >= 22; the native binary does not need node,
# so the exact version is asked for and the engine warning is expected.
$(CLAUDE_BIN):
	mkdir -p $(CLAUDE_DIR)
	npm install --prefix $(CLAUDE_DIR) --no-audit --no-fund --loglevel=error \
		@anthropic-ai/claude-code@$(CLAUDE_VERSION)
	$(CLAUDE_BIN) --version

claude: $(CLAUDE_BIN)

$(BUN_BIN):
	mkdir -p $(BUN_DIR)
	npm install --prefix $(BUN_DIR) --no-audit --no-fund --loglevel=error bun@$(BUN_VERSION)
	$(BUN_BIN) --version

bun: $(BUN_BIN)

# Claude Code's sandbox needs bubblewrap and socat on Linux (docs/sandbox.md). Installed
# with apt where missing and we are root (CI: Debian, as root); otherwise one line saying what to install.
sandbox-deps:
	@if [ "$$(uname -s)" = Linux ] && ! { command -v bwrap && command -v socat; } >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap socat; \
		else \
			echo "claude's sandbox needs bubblewrap and socat: sudo apt-get install bubblewrap socat" >&2; exit 1; \
		fi; \
	fi

# Debian's chromium for tests/desktop (headless, through Playwright's executable_path):
# installed with apt where missing and we are root; otherwise one line saying what to install.
chromium:
	@if ! command -v $(CHROMIUM) >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else \
			echo "the web view's tests need Chromium: sudo apt-get install chromium" >&2; exit 1; \
		fi; \
	fi

# Two workers (a file each at a time: a module's fixtures, such as the Ray cluster, are
# made once): most tests wait on claude, git and the sim, so two halve the wall time here.
test: dev claude bun sandbox-deps chromium
	$(PY) -m pytest -q -n 2 --dist loadfile

# The chaos suite (tests/chaos), long trials included, then its tables: things killed at
# random moments in real runs. `make test` runs only its short trials. TRIALS=N trials per
# scenario (default: 20 for the SIGKILLs), SEED=S the first seed (a failed trial names its).
chaos: dev claude sandbox-deps
	$(if $(TRIALS),AUTONOMA_CHAOS_TRIALS=$(TRIALS)) $(if $(SEED),AUTONOMA_CHAOS_SEED=$(SEED)) \
		$(PY) -m pytest -q -p no:cacheprovider --timeout 0 tests/chaos \
		-m "chaos_long or not chaos_long"

# A full offline run of the company on autonoma/examples/todo: simulated model, real claude.
demo: dev claude
	$(VENV)/bin/autonoma demo

# The wheel, into dist/ (roles, samples and the sim's example inside): then
# `pip install dist/autonoma-*.whl` in any venv. tests/test_wheel.py installs and runs one.
wheel: dev
	rm -f dist/autonoma-*.whl
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps -w dist .
	@ls dist/autonoma-*.whl

# The web view, rebuilt from desktop/src into autonoma/desktop/static (committed: the wheel
# needs no Node; tests/desktop/test_build.py checks the committed build is the sources').
webview: bun
	$(BUN_BIN) desktop/build-web.ts

# The Electrobun app (desktop/): for this machine, or for macOS, Windows, Linux. Electrobun's
# npm package downloads its toolchain from GitHub: where that fails, one line and exit 1.
desktop: dev bun
	$(VENV)/bin/autonoma build-desktop

desktop-mac: dev bun
	$(VENV)/bin/autonoma build-desktop --platform darwin

desktop-win: dev bun
	$(VENV)/bin/autonoma build-desktop --platform win32

desktop-linux: dev bun
	$(VENV)/bin/autonoma build-desktop --platform linux

lint: dev
	$(VENV)/bin/ruff check autonoma tests bench docs
	$(VENV)/bin/ruff format --check autonoma tests bench docs
	$(VENV)/bin/mypy

format: dev
	$(VENV)/bin/ruff check --fix autonoma tests bench docs
	$(VENV)/bin/ruff format autonoma tests bench docs

clean-tools:
	rm -rf $(VENV) .tools
