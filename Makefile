# phoenix-resume-stream: the two commands are `make demo` and `make test`; both set up everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help venv browser test test-unit test-integration demo stack-up stack-down stack-status bench lock clean

help:
	@echo "make demo        run the resume pipeline end to end on the local stack"
	@echo "make test        install, start the stack (inside pytest) and run every test"
	@echo "make stack-up    start Kafka and Phoenix locally (make stack-down stops them)"
	@echo "make bench       run the benchmarks (see bench/RESULTS.md)"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

# Headless Chromium for the status-page test, from Debian's packages (the test session installs
# it too when it is missing; Playwright's own browser download is never used).
browser:
	@bash scripts/chromium.sh

test: venv
	$(PY) -m pytest

test-unit: venv
	$(PY) -m pytest tests/unit

test-integration: venv
	$(PY) -m pytest tests/integration

demo: venv
	$(PY) scripts/demo.py

stack-up: venv
	@bash scripts/stack.sh up

stack-down:
	@bash scripts/stack.sh down

stack-status:
	@bash scripts/stack.sh status

bench: venv
	$(PY) -m bench.run

# Refresh the constraints file from a clean install of the declared dependencies.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
