# LaRA set-up and entry points. The whole set-up is two commands: `make demo` and `make test`;
# both install what is missing first. `make install` is idempotent.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON_SYS ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# This machine's pip config lists local package mirrors that may not exist; hide those notices.
QUIET_PIP := 2>&1 | { grep -v "^WARNING: Location" || true; }
STAMP := $(VENV)/.lara-installed
APT_PACKAGES := libosmesa6 libegl1 libegl-mesa0 libgl1 libgles2 libglfw3 ffmpeg
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PYTEST_ARGS ?=

.PHONY: install apt lint test test-slow test-all demo clean-venv

install: $(STAMP)

# Re-install when a requirements file or the package metadata changes.
$(STAMP): requirements/constraints.txt requirements/stack.txt requirements/nodeps.txt pyproject.toml
	@$(MAKE) --no-print-directory apt
	@test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install --upgrade pip $(QUIET_PIP)
	$(PIP) install torch==2.13.0 $(QUIET_PIP)
	$(PIP) install -c requirements/constraints.txt -r requirements/stack.txt $(QUIET_PIP)
	$(PIP) install --no-deps -r requirements/nodeps.txt $(QUIET_PIP)
	$(PIP) install --no-deps -e . $(QUIET_PIP)
	$(PY) -m envs.libero_setup --link-assets --write-config --check
	@touch $(STAMP)
	@echo "LaRA installed in $(VENV) (activate with: source $(VENV)/bin/activate)"

# Debian packages for headless rendering (Mesa EGL / OSMesa) and video encoding.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install $$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# Lint and formatting (ruff, configured in pyproject.toml) gate the tests, so CI runs them too.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -q -m "not gpu" $(PYTEST_ARGS)

demo: install
	$(VENV)/bin/lara demo

clean-venv:
	rm -rf $(VENV)
