# RoadTwin: `make demo` sets everything up in .venv and runs the main job; `make test` runs the tests.
# Nothing else is needed: no SUMO_HOME, no hand-installed package.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
# torch first, pinned: its CPU wheel comes from local disk; unpinned it would pull a CUDA build.
TORCH  := torch==2.13.0
PYTEST_ARGS ?=
DEMO_ARGS ?=
# mypy covers the core: the shared root modules, maps and sim.
MYPY_PACKAGES := errors config toolchain workspace _io report maps sim datasets

.PHONY: help install browser demo test lint bench clean

help:
	@echo "make demo   - create .venv, install everything, run the demo on the built-in Yizhuang zone"
	@echo "make test   - create .venv, install what the tests need, run lint and the test suite"
	@echo "make bench  - run benchmarks/sim_speed.py"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[all,test,bench]"
	touch $@

install: $(STAMP)

# Debian's Chromium and ChromeDriver for the dashboard's real-browser tests (never a downloaded browser),
# and CJK fonts so that Chinese street names render.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
	  && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver fonts-noto-cjk >/dev/null; }

demo: $(STAMP)
	$(BIN)/roadtwin demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@# The repository root is the package: mypy sees it as `roadtwin` through a symlink.
	mkdir -p build/typecheck && ln -sfn ../.. build/typecheck/roadtwin
	MYPYPATH=build/typecheck $(BIN)/mypy $(addprefix -p roadtwin.,$(MYPY_PACKAGES))

test: $(STAMP) browser lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/sim_speed.py

clean:
	rm -rf $(VENV) roadtwin-data .pytest_cache .ruff_cache .mypy_cache test-artifacts
