# Quickstart targets: `make run` (server + real cotton replay) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint bench clean

$(BIN)/tradedesk: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/tradedesk

install: $(BIN)/tradedesk

run: install
	$(BIN)/tradedesk run

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not multinode"
	$(BIN)/pytest -q -m multinode  # the multi-node cluster in a Ray session of its own

bench: install
	$(BIN)/tradedesk bench core --profile price_time --orders 200000 --json
	$(BIN)/tradedesk bench core --profile quality --orders 50000 --json

clean:
	rm -rf $(VENV)
