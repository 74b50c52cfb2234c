# constrict: the README's commands. `make run` and `make test` set up the environment first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
MPIRUN := $(VENV)/bin/mpirun
STAMP := $(VENV)/.constrict-installed
CASE ?= cases/si_scaffold.yaml
OUT ?= output/si_scaffold
NP ?= 2

.PHONY: setup run test test-serial test-mpi lint clean

setup: $(STAMP)

# Python 3.12 from pyenv (the DOLFINx wheel needs >= 3.12); fail clearly if none.
$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x "$(PY)" ]; then \
	  py=$$(command -v python3.12 || pyenv which python3.12 2>/dev/null || \
	        ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3 2>/dev/null | tail -n 1 || true); \
	  if [ -z "$$py" ] || ! "$$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then \
	    echo "error: Python 3.12 not found (looked for python3.12 on PATH and in pyenv)." >&2; \
	    echo "       Install it with 'pyenv install 3.12' or put python3.12 on PATH." >&2; exit 1; \
	  fi; \
	  echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e ".[fenicsx,viz,test]"; \
	touch $(STAMP)

run: setup
	@if [ -e "$(OUT)" ]; then echo "$(OUT) exists: re-running with --overwrite"; fi
	$(MPIRUN) -n $(NP) $(PY) -m solver run $(CASE) -o $(OUT) --overwrite

test: setup test-serial test-mpi

test-serial: setup
	$(PY) -m pytest -m "not mpi" -q

# MPI tests run under mpirun -n 2; only rank 0 reports.
test-mpi: setup
	$(MPIRUN) -n 2 $(PY) -m pytest -m mpi -q -p no:cacheprovider

lint: setup
	$(PY) -m ruff check solver meshes postprocess tests

clean:
	rm -rf $(VENV) .cache output build *.egg-info
