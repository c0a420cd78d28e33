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
# The Python the venvs are made with: the first of python3.13, 3.12, 3.11, python3
# that is 3.11 or newer (systemd/find-python, which install.sh asks too), or
# `make PYTHON=/path/to/python3.12`.
PYTHON ?= $(shell systemd/find-python)
# The runtime dependencies, locked: install.sh, the wheelhouse, the image and the
# dev venv all install these versions.
LOCK := constraints.txt

.PHONY: demo test test-deps test-fast test-loaded lint types imports docs pytest bench floors package wheelhouse clean test-airflow

$(STAMP): pyproject.toml constraints-dev.txt $(LOCK)
	@test -n "$(PYTHON)" || { systemd/find-python; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -c constraints-dev.txt -c $(LOCK)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dp-runner run --local examples/hello.json

# The tests need root and a PostgreSQL and a MariaDB server on the machine (they start
# private ones): the script installs what is missing, or says `sudo make test`.
test: test-deps lint types imports docs pytest

test-deps:
	scripts/install-test-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

$(DOCS_STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { systemd/find-python; exit 1; }
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DOCS_VENV)/bin/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

# The docs site, warnings as errors: a broken link, a missing page or a bad
# cross-reference fails the build (docs/incoming/ is left out: notes to fold in).
docs: $(DOCS_STAMP)
	$(DOCS_VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

# Four workers; the tests of a module that share its fixture run on one worker
# (tests/conftest.py gives them an xdist_group). The tests mostly wait on
# subprocesses, polls and servers, so one worker per core left the cores idle
# about half the time: on 2 cores, 447 s at 2 workers, 366-399 s at 4 beside a
# busy core, where `make test-loaded PYTEST_WORKERS=4` was green three times in a
# row (docs/development.md, "Where the time goes").
PYTEST_WORKERS ?= 4
pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

# The inner loop: the tests that start no runner process and no server (the conftest
# marks the others `slow`), in well under a minute.
test-fast: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not slow and not airflow"

# The proof that no test depends on the machine's speed: three full runs in a row
# while another process keeps one core busy.
test-loaded: test-deps $(STAMP)
	$(PY) -c 'while True: pass' & hog=$$!; \
	trap 'kill $$hog' EXIT; \
	for run in 1 2 3; do \
		echo "== loaded run $$run of 3"; \
		$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup || exit 1; \
	done

# `dp-runner export airflow` in a real Airflow (docs/airflow.md), not inside `make
# test`'s five minutes: Apache Airflow 3.3.2 and 2.11.2 (the newest 2.x, MWAA's), each
# in a venv of its own from the project's own constraints file; the tests (marked
# `airflow`, deselected by default) run in .venv and start Airflow's CLI from the venv
# DP_AIRFLOW_VENV names, with AIRFLOW_HOME in a temp dir.
AIRFLOW_VENVS := .venv-airflow .venv-airflow2
.venv-airflow/.installed: pyproject.toml constraints-airflow.txt
	$(PYTHON) -m venv .venv-airflow
	.venv-airflow/bin/python -m pip install --quiet --upgrade pip
	.venv-airflow/bin/python -m pip install --quiet -e '.[airflow]' -c constraints-airflow.txt
	touch $@

.venv-airflow2/.installed: pyproject.toml constraints-airflow2.txt
	$(PYTHON) -m venv .venv-airflow2
	.venv-airflow2/bin/python -m pip install --quiet --upgrade pip
	.venv-airflow2/bin/python -m pip install --quiet -e '.[airflow]' -c constraints-airflow2.txt
	touch $@

test-airflow: $(STAMP) $(AIRFLOW_VENVS:=/.installed)
	for v in $(AIRFLOW_VENVS); do \
		echo "== $$v"; \
		DP_AIRFLOW_VENV=$$v $(BIN)/pytest -m airflow tests/airflow -p no:randomly \
			-o faulthandler_timeout=900 || exit 1; \
	done

bench: $(STAMP)
	test -x $(RUNTIME)/bin/python || $(PY) -m venv $(RUNTIME)
	$(RUNTIME)/bin/python -m pip install --quiet -c $(LOCK) .
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

# A wheel builds, and pipx installs the checkout with the locked dependencies (in a
# throwaway PIPX_HOME, ignored by git: the tree stays clean).
package: $(STAMP)
	$(PY) -m pip install --quiet -c constraints-dev.txt pipx
	rm -rf dist .pipx
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist .
	ls dist/dp_runner-*.whl
	PIPX_HOME=$(CURDIR)/.pipx PIPX_BIN_DIR=$(CURDIR)/.pipx/bin $(BIN)/pipx install \
		--quiet --pip-args '-c $(CURDIR)/$(LOCK)' .
	.pipx/bin/dp-runner --version

# Every wheel the runtime needs, dp-runner's own included, for this platform and
# $(PYTHON), at the locked versions: `install.sh --wheels wheelhouse` then needs no
# index (a private subnet). Built in a venv of $(PYTHON), so the tags are its own.
WHEELHOUSE ?= wheelhouse
WHEELVENV ?= .venv-wheelhouse
wheelhouse:
	@test -n "$(PYTHON)" || { systemd/find-python; exit 1; }
	rm -rf $(WHEELVENV) $(WHEELHOUSE)
	$(PYTHON) -m venv $(WHEELVENV)
	$(WHEELVENV)/bin/python -m pip wheel --quiet --wheel-dir $(WHEELHOUSE) -c $(LOCK) .
	rm -rf $(WHEELVENV)
	ls $(WHEELHOUSE)

clean:
	rm -rf $(VENV) $(RUNTIME) $(LOWEST) $(DOCS_VENV) dist .pipx docs/_build $(WHEELVENV) wheelhouse
