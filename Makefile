# miniwdl-serverless — everything a fresh machine needs, from two commands: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= /tmp/miniwdl-serverless-demo

# Template tools live in their own environments (aws-sam-cli pins its own boto3; checkov is large).
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
NODE_DIR := build/node
ASL_VALIDATOR := $(NODE_DIR)/node_modules/.bin/asl-validator
CFN_JSON := build/template.cfn.json
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: venv demo test test-full unit chaos hostile hostile-full conformance big-upload lint lint-python lint-template typecheck bench parity clean

venv: $(STAMP)

$(STAMP): pyproject.toml layers/runtime/requirements.txt
	@echo "==> creating $(VENV) (once; later runs reuse it)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "==> installing miniwdl-serverless with miniwdl, moto, boto3, powertools and the test tools into $(VENV) (a few minutes the first time)"
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo "==> installed: $$($(BIN)/pip list 2>/dev/null | wc -l) packages"
	@# bubblewrap confines local tasks (README: Local mode security); best effort, as root
	-command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || \
		echo "bubblewrap not installed: local tasks get read-only copies of their inputs"
	@# headless chromium renders report.html in tests/e2e/test_run_report.py (skipped without it)
	-command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: the report's screenshot test is skipped"
	touch $(STAMP)

demo: $(STAMP)
	@echo "==> running examples/viral_pipeline on the embedded AWS (results in $(DEMO_DIR))"
	mkdir -p $(DEMO_DIR)
	cd examples/viral_pipeline && ../../$(BIN)/miniwdl-serverless run pipeline.wdl -i inputs.json --dir $(DEMO_DIR)

test: $(STAMP) lint
	$(BIN)/pytest -q -n 2 --dist loadgroup

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# The fault-injection harness at full size (`make test` runs the reduced size).
hostile: $(STAMP)
	$(BIN)/pytest -q -n 2 tests/hostile

hostile-full: $(STAMP)
	HYPOTHESIS_PROFILE=full $(BIN)/pytest -q -n 2 tests/hostile

chaos: $(STAMP)
	$(BIN)/python -m tests.chaos --size full

# Finish uploading a 200 MiB output as a multipart upload (about 10 s on moto; `make test` runs
# the same path with a 12 MiB file in 5 MiB parts).
big-upload: $(STAMP)
	$(BIN)/pytest -q -s -m big_upload tests/integration/test_uploads.py

conformance: $(STAMP)
	$(BIN)/pytest -q -n 2 tests/e2e/test_conformance.py

# The end-to-end tests on moto's DynamoDB (`--embedded-aws full`) instead of the in-memory store.
test-full: $(STAMP)
	MSLS_EMBEDDED_AWS=full $(BIN)/pytest -q -n 2 --dist loadgroup tests/e2e

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet 'aws-sam-cli==1.170.0'
	touch $(SAM_STAMP)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	touch $(CHECKOV_STAMP)

$(ASL_VALIDATOR):
	mkdir -p $(NODE_DIR)
	npm install --silent --no-save --no-audit --no-fund --prefix $(NODE_DIR) asl-validator@4.0.0

lint: lint-python lint-template

lint-python: $(STAMP)
	$(BIN)/ruff format --check layers functions tests bench tools
	$(BIN)/ruff check layers functions tests bench tools
	$(BIN)/mypy layers/runtime/miniwdl_serverless

# The SAM source, then what SAM turns it into (offline), the state machine, and a security scan.
lint-template: $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) $(ASL_VALIDATOR)
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(BIN)/python tools/sam_transform.py template.yaml -o $(CFN_JSON)
	$(BIN)/cfn-lint template.yaml $(CFN_JSON)
	$(ASL_VALIDATOR) --json-path statemachine/run_workflow.asl.json
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		-f template.yaml -f $(CFN_JSON)

# Per-completion controller cost at 10 to 10,000 shards against a whole-state baseline (about
# 6 CPU minutes, most of it the baseline at 10,000; `make test` runs its quick mode: tests/unit/test_bench_completions.py), then the
# scatter side by side on the embedded AWS; planning time of generated workflows next to
# `miniwdl check`, and the cost model of a 1,000-task, 10-hour run (quick modes in `make test`:
# tests/unit/test_bench_planning_cost.py); then local mode against `miniwdl run` (bench_local;
# its quick mode: tests/e2e/test_bench_local.py). Figures: bench/results.json.
bench: $(STAMP)
	$(BIN)/python -m bench.bench_completions
	$(BIN)/python -m bench.bench_planning
	$(BIN)/python -m bench.bench_cost
	$(BIN)/python bench/bench_scatter.py
	$(BIN)/python -m bench.bench_local

# Every program of bench/parity_corpus/ through stock `miniwdl run` and ours, outcomes compared
# (~2-3 minutes; its quick mode: tests/e2e/test_parity_corpus.py). Figures: bench/results.json.
parity: $(STAMP)
	$(BIN)/python -m bench.parity

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) build .aws-sam .pytest_cache .ruff_cache .mypy_cache
