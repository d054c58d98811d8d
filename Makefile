# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint imports typecheck view format bench clean

# import-linter finds packages on disk; the folders install as lapak.* through package-dir,
# so it reads them through a view of symlinks laid out as they install.
IMPORTS_VIEW := build/imports

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the project metadata changes (the package itself is editable).
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,sim]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lapak demo

# The suite runs in two parts. Everything but the real-time media tests runs on TEST_WORKERS
# processes (pytest-xdist), each test file whole on one of them so that a module's shared
# server or database stays one: those tests mostly wait on servers, browsers and
# subprocesses. Then the `media` tests (tests/conftest.py marks them) run one at a time:
# they count frames and tones in real time, which a test beside them on the other core
# starves. `make test TEST_WORKERS=0` runs the first part in one process too.
TEST_WORKERS ?= 2

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not media"
	$(BIN)/python -m pytest -q -m media

# The fast tier for a developer: unit tests only, no real servers, subprocesses, media or
# browsers (tests/conftest.py marks those `integration`) and no long load tests.
# `make test` (CI) runs every tier.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not integration"

lint: $(STAMP) imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

view:
	mkdir -p $(IMPORTS_VIEW)/lapak
	for d in signaling media console cli; do ln -sfn ../../../$$d $(IMPORTS_VIEW)/lapak/$$d; done

imports: $(STAMP) view
	cd $(IMPORTS_VIEW) && PYTHONPATH=. ../../$(BIN)/lint-imports --config ../../pyproject.toml

typecheck: $(STAMP) view
	cd $(IMPORTS_VIEW) && ../../$(BIN)/mypy --config-file ../../pyproject.toml \
		-p lapak.signaling -p lapak.media -p lapak.console -p lapak.cli

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
