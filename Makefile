# The README's two commands: `make dev` and `make test`. Each does all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test test-fast lint format bench install migrate clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,test]'
	touch $@

# pusher-js for the viewer page and the live-streaming tests (exact versions in package.json).
node_modules/.installed: package.json
	npm install --no-audit --no-fund
	touch $@

install: $(STAMP) node_modules/.installed

# The database only: `make dev` runs its own Temporal and registers the search attributes.
migrate: install
	$(BIN)/travis-logs migrate --skip-temporal

dev: migrate
	$(BIN)/travis-logs dev

# The health check says which service is missing; the tests create, migrate and drop a
# database of their own.
test: install
	$(BIN)/python -m tests.health
	$(BIN)/pytest

# The tests that need no server and no outside program (no `services` marker): seconds, and
# nothing has to be running.
test-fast: install
	$(BIN)/pytest -m "not services" -q

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The scripts of bench/ (the modules with a main; the others are their shared parts), but
# bench/soak.py, which runs for an hour, and bench/compare.py, which needs a base commit:
# run those on their own (see README, Sizing).
bench: migrate
	@for b in $$(grep -l '^if __name__ == "__main__"' bench/*.py | grep -v -e bench/soak.py -e bench/compare.py); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
