# Developer and CI targets. Each sets up .venv from uv.lock first.
VENV := .venv/bin
PYTEST_ARGS ?=

.PHONY: setup up down test lint typecheck lock-check bench completions docs clean soak

setup:
	@scripts/bootstrap

up: setup
	$(VENV)/memproxy up

down:
	$(VENV)/memproxy down

test: setup
	@scripts/ensure-services
	@scripts/ensure-claude-code
	@scripts/ensure-agent-clis
	$(VENV)/pytest -n 2 $(PYTEST_ARGS)

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check memproxy_cli tests benchmarks
	$(VENV)/mypy

lock-check: setup
	.tools/bin/uv lock --check
	scripts/check-lock

bench: setup
	$(VENV)/python benchmarks/run.py --peer litellm
	$(VENV)/python benchmarks/capture.py

# 30 minutes of mixed load on the real daemon: RSS, lost rows, leaked sockets.
soak: setup
	$(VENV)/python benchmarks/soak.py --minutes 30

docs: setup
	$(VENV)/python -m memproxy_cli.docsgen docs

completions: setup
	$(VENV)/python -m memproxy_cli.docsgen completions

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
