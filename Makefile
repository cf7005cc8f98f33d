# polyfe2: two commands set everything up on a fresh machine.
#   make demo   - build the environment if missing, then run the demo simulation
#   make test   - build the environment if missing, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2

.PHONY: env kernels demo test bench clean

env:
	@bash tools/bootstrap.sh $(VENV)

kernels: env
	@bash tools/build_kernels.sh $(PY)

demo: kernels
	$(VENV)/bin/polyfe2 demo --out results/demo

test: kernels
	$(PY) -m pytest -q

bench: kernels
	$(PY) benchmarks/bench_solver.py
	$(PY) benchmarks/bench_gru_kernels.py

clean:
	rm -rf build results
