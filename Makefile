# polyfe2: two commands set everything up on a fresh machine.
#   make demo   - build the environment if missing, then run the demo simulation
#   make test   - build the environment if missing, then run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2

.PHONY: env kernels demo test bench gru-model fm-model fingerprint-models clean

env:
	@bash tools/bootstrap.sh $(VENV)

# The compiled kernels (csrc/) are built by pip's build backend (scikit-build-core -> CMake) when
# env installs polyfe2 editable into the venv; tools/build_kernels.sh, which env runs last,
# re-installs when csrc/, CMakeLists.txt or pyproject.toml changed, and is a no-op otherwise.
kernels: env

demo: kernels
	$(VENV)/bin/polyfe2 demo --out results/demo

test: kernels
	$(PY) -m pytest -q

bench: kernels
	$(PY) benchmarks/bench_solver.py
	$(PY) benchmarks/bench_gru_kernels.py
	$(PY) benchmarks/bench_gru_backend.py

# The shipped GRU surrogate from scratch: iso-strain (taylor K = 20) then full-field labels, training,
# held-out reports (about 9.5 h on 2 cores; stage 11, the per-grain v8, about 1.5 h of it).
GRU := results/gru_model
gru-model: kernels
	bash tools/make_gru_model.sh $(VENV) $(GRU)

# The shipped foundation-model encoders from scratch: RVE data, pretraining, fine-tuning (both heads).
FM := results/fm_model
fm-model: kernels
	bash tools/make_fm_model.sh $(VENV) $(FM)

# The shipped fingerprint models (VAE, ViT) from the fm-model RVE set, and their comparison table.
fingerprint-models: kernels
	bash tools/make_fingerprint_models.sh $(VENV) results/fingerprint_models $(FM)/fm.h5

clean:
	rm -rf build results
