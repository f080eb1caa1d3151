# lazygrad: `make example` and `make test` work on a fresh machine; each creates the venv it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
JOBS ?= 2

.PHONY: example mnist gpt lstm quickstart ddp test test-triton fuzz soak opdb onnx-test bench profile clean

$(STAMP): setup.py setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

EXAMPLE_STAMP := $(VENV)/.installed-examples
DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

$(EXAMPLE_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[examples]'
	touch $@

# Fashion-MNIST from Debian's package where apt-get can install it; elsewhere set LAZYGRAD_DATA (see the README)
$(DATA):
	-(command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	  (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1))) || true

example: $(EXAMPLE_STAMP) | $(DATA)
	$(PY) examples/mnist.py --model mlp --epochs 1 --limit 10000 --out runs/example

mnist: $(EXAMPLE_STAMP) | $(DATA)
	$(PY) examples/mnist.py

DIST_STAMP := $(VENV)/.installed-distributed

$(DIST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[distributed]'
	touch $@

# the CNN on 1 rank, then on 2 (one thread each, a share of the data each): each rank's throughput, the combined one
# and the speed-up (mpiexec comes with the mpich wheel)
DDP_STEPS ?= 60
ddp: $(EXAMPLE_STAMP) $(DIST_STAMP) | $(DATA)
	$(VENV)/bin/mpiexec -n 1 $(PY) examples/ddp.py --steps $(DDP_STEPS)
	$(VENV)/bin/mpiexec -n 2 $(PY) examples/ddp.py --steps $(DDP_STEPS)

gpt: $(EXAMPLE_STAMP)
	$(PY) examples/gpt.py

lstm: $(EXAMPLE_STAMP)
	$(PY) examples/lstm.py

quickstart: $(STAMP)
	$(PY) examples/quickstart.py

# the bench MLP's training step under lazygrad.profiler: the kernel table, a Chrome trace and the schedule's picture
profile: $(STAMP)
	$(PY) examples/profile_mlp.py --out runs/profile

# the whole suite on the default device, then the backend-independent op tests on TRITON (Triton's interpreter here)
TRITON_TESTS := tests/test_ops.py tests/test_schedule.py tests/test_indexing.py tests/test_parity.py tests/test_functional.py tests/test_optim.py tests/test_triton.py tests/test_dynamic.py tests/test_jit.py tests/test_profiler.py

test: $(TEST_STAMP)
	$(PY) -m pytest -q -n $(JOBS) tests --ignore=tests/test_op_db.py
	LAZYGRAD_DEVICE=TRITON $(PY) -m pytest -q -n $(JOBS) $(TRITON_TESTS)

test-triton: $(TEST_STAMP)
	LAZYGRAD_DEVICE=TRITON $(PY) -m pytest -q -n $(JOBS) $(TRITON_TESTS)

# every public float32 op of PyTorch's op database against torch (see tests/test_op_db.py; -rs lists what is missing):
# about 25 minutes on 2 cores from an empty kernel cache
opdb: $(TEST_STAMP)
	$(PY) -m pytest -q -n $(JOBS) tests/test_op_db.py

# onnx's BackendTest suite (node tests, the nine light models, small converted models) with a pass/fail table per op:
# about 30 minutes on 2 cores from an empty kernel cache. ARGS passes pytest options, e.g. ARGS='-k conv'
ONNX_STAMP := $(VENV)/.installed-onnx

$(ONNX_STAMP): $(TEST_STAMP)
	$(PY) -m pip install -q -e '.[onnx]' onnxruntime==1.31.1
	touch $@

onnx-test: $(ONNX_STAMP)
	$(PY) tests/onnx_report.py -n $(JOBS) $(ARGS)

# long runs that never read their loss: each exits non-zero if resident memory grew (see bench/soak.py)
soak: $(STAMP)
	$(PY) bench/soak.py mlp --steps 100000
	$(PY) bench/soak.py mlp --steps 100000 --eager
	$(PY) bench/soak.py gpt --steps 10000
	$(PY) bench/soak.py gpt --steps 10000 --eager

fuzz: $(TEST_STAMP)
	LAZYGRAD_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -n $(JOBS) tests/test_fuzz.py

bench: $(TEST_STAMP) $(EXAMPLE_STAMP)
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) build *.egg-info
