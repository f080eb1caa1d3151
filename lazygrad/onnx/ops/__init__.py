"""The ONNX ops, by family; importing this package registers them all (see lazygrad/onnx/registry.py)."""
from lazygrad.onnx.ops import math, reduce, shape, nn, misc, attention, sequence, training  # noqa: F401
