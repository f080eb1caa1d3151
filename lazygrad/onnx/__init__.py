"""lazygrad.onnx: run ONNX models on lazygrad. `load(path_or_model)` gives a callable model (named inputs in, named
outputs out, all lazy); `lazygrad.onnx.backend` is the `onnx.backend` Backend; `python -m lazygrad.onnx model.onnx`
prints a model's inputs and outputs (`--bench` times it). Needs the onnx package (`pip install lazygrad[onnx]`)."""
try:
  import onnx  # noqa: F401
except ImportError as e:  # pragma: no cover
  raise ImportError("lazygrad.onnx needs the onnx package: pip install 'lazygrad[onnx]'") from e
from lazygrad.onnx.model import load, OnnxModel, Graph  # noqa: E402
from lazygrad.onnx.registry import supported  # noqa: E402

__all__ = ["load", "OnnxModel", "Graph", "supported"]
