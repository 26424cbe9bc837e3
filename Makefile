# Every target bootstraps .venv first, so `make run` and `make test` work on a fresh clone.
# `make run` installs the runtime dependencies only; the test extras come with `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# setuptools notes on every editable install of a package-dir layout (ours, see
# DESIGN.md) that folders named like the package may shadow it; nothing to act on.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: run test lint bench clean

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip uninstall --quiet --yes mailtrap 2>/dev/null || true  # this project's old name
	$(QUIET_EDITABLE) $(BIN)/pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip uninstall --quiet --yes mailtrap 2>/dev/null || true  # this project's old name
	$(QUIET_EDITABLE) $(BIN)/pip install --quiet -e '.[test]'
	touch $(TEST_STAMP) $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/mailtrap serve $(ARGS)

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(TEST_STAMP)
	$(BIN)/python bench/smtp_ingest.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
