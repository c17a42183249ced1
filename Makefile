# contact-stream — `make help` lists the targets.
# The two commands: `make demo` (stack + worker + demo feed, live view) and `make test`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test lint typecheck unit integration crash crash-workload stack-up stack-down stack-status schemas clean bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

demo: $(STAMP) ## THE FIRST COMMAND: stack up, a worker, a seeded demo feed and a live view (Ctrl-C stops)
	$(BIN)/contact-stream demo $(DEMO_ARGS)

test: lint typecheck stack-up ## THE SECOND COMMAND: lint, types, then unit + integration tests in one run (real Kafka + Redis)
	CS_CRASH_WORKLOAD_SCALE=0.1 $(BIN)/pytest tests -q --durations=20

lint: $(STAMP) ## ruff
	$(BIN)/ruff check stream tests bench
	$(BIN)/ruff format --check stream tests bench

typecheck: $(STAMP) ## mypy --strict on stream/
	$(BIN)/mypy

unit: $(STAMP) ## pure tests, seconds
	$(BIN)/pytest tests/unit -q

integration: $(STAMP) stack-up ## real Kafka + Redis + worker processes
	$(BIN)/pytest tests/integration -q

crash: $(STAMP) stack-up ## only the SIGKILL-mid-race tests (also in `make test`), to run them in a loop
	$(BIN)/pytest tests/integration/test_identity_crash.py -q

crash-workload: $(STAMP) stack-up ## the mixed workload killed 3 times (issue 7; `make test` runs it at SCALE=0.1); SCALE=1 is the issue's 20,444 events
	CS_CRASH_WORKLOAD_SCALE=$(or $(SCALE),0.25) $(BIN)/pytest tests/integration/test_crash_workload.py -q -s

stack-up: ## start Kafka (KRaft, Maven jars) and Redis; installs what is missing
	scripts/stack up

stack-down: ## stop both, leave nothing running
	scripts/stack down

stack-status: ## is each one up and answering?
	scripts/stack status

bench: $(STAMP) ## every issue-11 benchmark on a private stack (27092/27379); QUICK=1 for a check, SCALE=0.2 to shrink, BENCH_ARGS=...
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run.py $(if $(QUICK),--quick) $(if $(SCALE),--scale $(SCALE)) $(BENCH_ARGS)

schemas: $(STAMP) ## regenerate docs/schemas from stream/models.py
	$(BIN)/contact-stream export-schemas docs/schemas

clean: stack-down ## stop the stack and delete its data
	scripts/stack down --purge
