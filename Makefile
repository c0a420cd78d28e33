# Two commands for a newcomer:  `make demo`  and  `make test`.
# Everything is installed into .venv from this repository's own files.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The worker bench measures the runner as shipped: installed without the dev extras
# (import-linter pulls in rich, which structlog then imports: about 3.5 MB of RSS).
RUNTIME := .venv-runtime

.PHONY: demo test lint types imports pytest bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dp-runner run --local examples/hello.json

test: lint types imports pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	test -x $(RUNTIME)/bin/python || python3 -m venv $(RUNTIME)
	$(RUNTIME)/bin/python -m pip install --quiet .
	$(RUNTIME)/bin/python -m pip install --quiet --no-deps --force-reinstall .
	for b in bench/bench_*.py; do \
		echo "== $$b"; \
		if [ $$b = bench/bench_worker.py ]; then \
			$(PY) $$b --python $(RUNTIME)/bin/python || exit 1; \
			echo "== $$b, work dirs on disk (figures only)"; \
			mkdir -p .bench-disk && $(PY) $$b --python $(RUNTIME)/bin/python \
				--only overhead --scratch .bench-disk; \
		else \
			$(PY) $$b || exit 1; \
		fi; \
	done

clean:
	rm -rf $(VENV) $(RUNTIME)
