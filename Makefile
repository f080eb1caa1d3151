# lazygrad: `make example` and `make test` work on a fresh machine; each creates the venv it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
JOBS ?= 2

.PHONY: example test test-triton fuzz bench clean

$(STAMP): setup.py setup.cfg
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

example: $(STAMP)
	$(PY) examples/quickstart.py

# the whole suite on the default device, then the backend-independent op tests on TRITON (Triton's interpreter here)
TRITON_TESTS := tests/test_ops.py tests/test_schedule.py tests/test_indexing.py tests/test_parity.py tests/test_triton.py

test: $(TEST_STAMP)
	$(PY) -m pytest -q -n $(JOBS) tests
	LAZYGRAD_DEVICE=TRITON $(PY) -m pytest -q -n $(JOBS) $(TRITON_TESTS)

test-triton: $(TEST_STAMP)
	LAZYGRAD_DEVICE=TRITON $(PY) -m pytest -q -n $(JOBS) $(TRITON_TESTS)

fuzz: $(TEST_STAMP)
	LAZYGRAD_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q -n $(JOBS) tests/test_fuzz.py

bench: $(TEST_STAMP)
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) build *.egg-info
