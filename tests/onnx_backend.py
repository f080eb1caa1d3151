"""onnx's own BackendTest suite (node tests, the nine light models and the small converted models) run on lazygrad.

Not collected by `make test` (its name does not start with test_): `make onnx-test` runs it and prints a table of
pass/fail per op (tests/onnx_report.py). Run a part of it with -k, e.g.
  .venv/bin/python -m pytest -q tests/onnx_backend.py -k "test_conv or test_resnet50"
"""
import warnings
import onnx.backend.test
from lazygrad.onnx import backend

warnings.filterwarnings("ignore", category=RuntimeWarning)  # onnx's case generators overflow on purpose
backend_test = onnx.backend.test.BackendTest(backend.LazygradBackend, __name__)
backend_test.exclude("_cuda$")
globals().update(backend_test.test_cases)
