# Two entry points, as in the README:
#   make demo   set up .venv and run the main job on embedded defaults (local Ray, local store)
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench
setup: $(VENV)/.installed

# torch==2.13.0 first: on these machines it is a local CPU wheel, whereas letting the resolver
# pick torch downloads a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/distpaint demo

# Two xdist workers, whole modules each (their module fixtures run once), the costliest modules
# first (tests/conftest.py): ~2x less wall time on 2 cores, whose serial run left one idle.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
