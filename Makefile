# neuroloop: `make run` shows the closed loop, `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench lint long-safety clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: install
	$(BIN)/neuroloop run --scenario bsi --duration 60

test: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/neuroloop bench

lint: install
	$(BIN)/ruff check neuroloop firmware_sim tests
	$(BIN)/lint-imports
	$(BIN)/mypy

long-safety: install
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -q tests/safety -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
