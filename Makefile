# Set-up is implicit: every target below creates $(VENV) and installs the project when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The stamp names the checkout, so a venv kept outside the clone (CI) re-links the project when the clone moves.
STAMP := $(VENV)/.installed-$(shell printf '%s' "$(CURDIR)" | cksum | cut -d' ' -f1)

.PHONY: install demo test bench gpu-check lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)  ## the main job: every architecture on the embedded synthetic dataset, then the report
	$(BIN)/bench run --suite demo
	$(BIN)/bench report --suite demo --readme README.md

test: $(STAMP) lint  ## lint, then the whole test suite
	$(BIN)/python -m pytest

gpu-check: $(STAMP)  ## on a CUDA machine: every architecture's speed and memory in minutes (results/ and reports/gpu-check/)
	$(BIN)/bench gpu-check

bench: $(STAMP)  ## pytest-benchmark regressions, compared with the last saved run when there is one
	$(BIN)/python -m pytest benchmarks --benchmark-autosave $(if $(wildcard .benchmarks),--benchmark-compare --benchmark-compare-fail=median:25%)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
