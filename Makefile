# Two commands do all the set-up on a fresh machine:
#   make demo   runs the docproc case study on the embedded default (make tour: textpipe)
#   make test   runs ruff, mypy --strict and pytest (warnings as errors)
# Each creates .venv and installs what it needs (Debian packages included) by itself.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo tour test lint typecheck unit integration netns bench docs clean system-deps

$(STAMP): pyproject.toml examples/docproc/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e examples/docproc
	touch $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

demo: $(STAMP)
	$(BIN)/eblocks docproc demo

tour: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests examples scripts
	$(BIN)/ruff format --check src tests examples scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

netns: $(STAMP) system-deps   # multi-host tests: network namespaces, needs root
	$(BIN)/pytest tests/netns

test: $(STAMP) system-deps lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/eblocks bench overhead

docs: $(STAMP)
	$(BIN)/python scripts/gen_spec_reference.py

clean:
	rm -rf $(VENV) .eblocks .docproc .docproc-demo .docproc-bench .mypy_cache .ruff_cache .pytest_cache
