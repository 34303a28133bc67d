# miniwdl-serverless — everything a fresh machine needs, from two commands: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= /tmp/miniwdl-serverless-demo

.PHONY: venv demo test unit conformance lint typecheck bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml layers/runtime/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(DEMO_DIR)
	cd examples/viral_pipeline && ../../$(BIN)/miniwdl-serverless run pipeline.wdl -i inputs.json --dir $(DEMO_DIR)

test: $(STAMP) lint
	$(BIN)/pytest -q -n 2 --dist loadgroup

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

conformance: $(STAMP)
	$(BIN)/pytest -q -n 2 tests/e2e/test_conformance.py

lint: $(STAMP)
	$(BIN)/ruff check layers functions tests bench
	$(BIN)/mypy layers/runtime/miniwdl_serverless
	AWS_DEFAULT_REGION=us-east-1 $(BIN)/cfn-lint template.yaml

bench: $(STAMP)
	$(BIN)/python bench/bench_scatter.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
