# snncompile developer entry points. `make demo` and `make test` are all a new user needs.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint format demo bench clean

setup: $(STAMP)

# Idempotent: reinstalls only when pyproject.toml or this file changed or the venv is
# missing. lava-dl (for its netx loader, which tests/test_netx.py runs on our
# network.net) goes in without its dependencies: it pins torch 2.3 and pulls slayer's
# training stack, none of which netx's loader needs.
$(STAMP): pyproject.toml Makefile
	@py310=$$(scripts/find-python310.sh) || exit 1; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then \
		echo "creating $(VENV) with $$py310"; rm -rf $(VENV); $$py310 -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps lava-dl==0.6.0
	@touch $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint
	$(VENV)/bin/pytest -q

demo: setup
	$(PY) examples/demo.py

bench: setup
	$(PY) benchmarks/bench_pmbc.py
	$(PY) benchmarks/bench_sdn.py
	$(PY) benchmarks/bench_compile.py
	$(PY) benchmarks/bench_reference.py
	$(PY) benchmarks/bench_lava.py
	$(PY) benchmarks/bench_onnx.py
	$(PY) benchmarks/bench_nir.py --lava

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
