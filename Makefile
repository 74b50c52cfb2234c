# constrict: the README's commands. `make run` and `make test` set up the environment first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
MPIRUN := $(VENV)/bin/mpirun
STAMP := $(VENV)/.constrict-installed
CASE ?= cases/si_scaffold_2c.yaml
OUT ?= output/si_scaffold_2c
NP ?= 2
TEST_WORKERS ?= 2

.PHONY: setup run test test-serial test-mpi bench lint clean

setup: $(STAMP)

# Python 3.12 (the DOLFINx wheel needs >= 3.12): scripts/find-python3.12 finds it or
# explains what is missing.
$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x "$(PY)" ]; then \
	  py=$$(scripts/find-python3.12); \
	  echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); \
	fi; \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e ".[fenicsx,viz,test]"; \
	touch $(STAMP)

run: setup
	@if [ -e "$(OUT)" ]; then echo "$(OUT) exists: re-running with --overwrite"; fi
	$(MPIRUN) -n $(NP) $(PY) -m solver run $(CASE) -o $(OUT) --overwrite

test: setup test-serial test-mpi

# The serial tests run in TEST_WORKERS processes (pytest-xdist), a test file per process so
# that module fixtures are built once; one BLAS/OpenMP thread each.
test-serial: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -m "not mpi" -q -n $(TEST_WORKERS) --dist loadfile

# MPI tests run under mpirun -n 2, one file per mpirun: all files in one process hung at
# exit now and then (both ranks spinning after the last test; not yet understood), each
# file alone never did. The timeout turns a hang into a failure instead of a stuck CI.
MPI_TESTS = $(shell grep -l "pytest.mark.mpi" tests/test_*.py)
test-mpi: setup
	@set -e; for file in $(MPI_TESTS); do \
	  echo "mpirun -n 2 pytest $$file"; \
	  timeout 600 $(MPIRUN) -n 2 $(PY) -m pytest -m mpi -q -p no:cacheprovider $$file; \
	done

# Benchmarks write JSON (output/bench/benchmarks.json); timings are never test assertions.
bench: setup
	$(PY) bench/run_benchmarks.py

lint: setup
	$(PY) -m ruff check solver meshes postprocess tests

clean:
	rm -rf $(VENV) .cache output build *.egg-info
