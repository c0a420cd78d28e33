# Two commands for a newcomer:  `make demo`  and  `make test`.
# Everything is installed into .venv from this repository's own files.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The worker bench measures the runner as shipped: installed without the dev extras
# (import-linter pulls in rich, which structlog then imports: about 3.5 MB of RSS).
RUNTIME := .venv-runtime
# The docs toolchain (the `docs` extra: Sphinx, MyST, Furo) has a venv of its own:
# awscli 1.x, a dev tool, holds docutils below 0.20, which Sphinx 8+ needs.
DOCS_VENV  := .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed

.PHONY: demo test lint types imports docs pytest bench floors package clean

$(STAMP): pyproject.toml constraints-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -c constraints-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dp-runner run --local examples/hello.json

test: lint types imports docs pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

$(DOCS_STAMP): pyproject.toml
	python3 -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DOCS_VENV)/bin/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

# The docs site, warnings as errors: a broken link, a missing page or a bad
# cross-reference fails the build (docs/incoming/ is left out: notes to fold in).
docs: $(DOCS_STAMP)
	$(DOCS_VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	test -x $(RUNTIME)/bin/python || python3 -m venv $(RUNTIME)
	$(RUNTIME)/bin/python -m pip install --quiet .
	$(RUNTIME)/bin/python -m pip install --quiet --no-deps --force-reinstall .
	for b in bench/bench_*.py; do \
		echo "== $$b"; \
		if [ $$b = bench/bench_healthcheck.py ] || [ $$b = bench/bench_sql.py ]; then \
			$(PY) $$b --python $(RUNTIME)/bin/python || exit 1; \
		elif [ $$b = bench/bench_worker.py ]; then \
			$(PY) $$b --python $(RUNTIME)/bin/python || exit 1; \
			echo "== $$b, work dirs on disk (figures only)"; \
			mkdir -p .bench-disk && $(PY) $$b --python $(RUNTIME)/bin/python \
				--only overhead --scratch .bench-disk; \
		else \
			$(PY) $$b || exit 1; \
		fi; \
	done

# The dependency floors in pyproject.toml must really work: install the project at
# the lowest versions it allows (uv's lowest-direct resolution; uv pinned in
# constraints-dev.txt) in a venv of its own, and run the demos there.
LOWEST := .venv-lowest
floors: $(STAMP)
	$(PY) -m pip install --quiet -c constraints-dev.txt uv
	rm -rf $(LOWEST)
	$(BIN)/uv venv --quiet --python $(PY) $(LOWEST)
	VIRTUAL_ENV=$(LOWEST) $(BIN)/uv pip install --quiet --resolution lowest-direct .
	VIRTUAL_ENV=$(LOWEST) $(BIN)/uv pip list | grep -iE '^(boto3|botocore|s3transfer|click|structlog|tenacity|pydantic|psutil|prometheus.client|psycopg|psycopg-binary|pymysql) '
	$(LOWEST)/bin/dp-runner run --local examples/hello.json --http-address 127.0.0.1:0
	$(LOWEST)/bin/dp-runner run --local examples/retry-and-depend.json
	$(LOWEST)/bin/dp-runner run --local examples/greeting.json --parameter-values-uri file://examples/greeting-values.json

# A wheel builds, and pipx installs the checkout (in a throwaway PIPX_HOME).
package: $(STAMP)
	$(PY) -m pip install --quiet -c constraints-dev.txt pipx
	rm -rf dist .pipx
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	ls dist/dp_runner-*.whl
	PIPX_HOME=$(CURDIR)/.pipx PIPX_BIN_DIR=$(CURDIR)/.pipx/bin $(BIN)/pipx install --quiet .
	.pipx/bin/dp-runner --version

clean:
	rm -rf $(VENV) $(RUNTIME) $(LOWEST) $(DOCS_VENV) dist .pipx docs/_build
