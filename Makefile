# The same commands a newcomer, a developer and CI run. See README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install services lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## run: set up and start the platform on the embedded defaults (SQLite, in-process bus,
## built-in PBX simulator) at http://127.0.0.1:8000
run: install
	$(VENV)/bin/callcenter demo

## test: install everything, start PostgreSQL and Redis if down, lint, type-check, test
test: install services lint typecheck pytest

services:
	bash scripts/ensure-system.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(PY) -m pytest -q

bench: install
	@for f in bench/*.py; do [ -e "$$f" ] && $(PY) "$$f"; done; true

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis
