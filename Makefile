# vggt4d_ros: two commands on a fresh machine, `make demo` and `make test`.
# Both run `make setup` first, which builds the virtual environment at .venv (idempotent).

VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out

.PHONY: setup test demo lint bench clean

setup:
	bash scripts/setup_venv.sh

test: setup
	$(PY) -m pytest test

demo: setup
	$(PY) -m vggt4d_ros.replay.demo --out $(DEMO_OUT)

lint: setup
	$(PY) -m pytest test -m linter

clean:
	rm -rf build install log $(DEMO_OUT) .pytest_cache
