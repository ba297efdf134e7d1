# neuroloop: `make run` shows the closed loop, `make test` runs the suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser run test bench lint long-safety clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,live,lab,sweep]'
	@touch $(STAMP)

run: install
	$(BIN)/neuroloop run --scenario bsi --duration 60

# The live monitor's test drives a real headless Chromium (Debian's chromium + chromium-driver).
# Installed here where apt-get can (root, or passwordless sudo); elsewhere that test skips and says why.
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null \
	      || echo "make browser: could not install chromium; the browser test will skip" >&2; \
	  else echo "make browser: no apt-get/root here; the browser test will skip" >&2; fi; }

test: install browser
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
