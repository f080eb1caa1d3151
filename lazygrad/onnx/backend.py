"""onnx.backend's Backend for lazygrad: `prepare(model, device)` loads it, `rep.run(inputs)` returns NumPy outputs.
This is what lets onnx's own BackendTest suite run lazygrad (see tests/test_onnx.py and `make onnx-test`)."""
from __future__ import annotations
import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep
from lazygrad.tensor import Tensor
from lazygrad.onnx.model import OnnxModel, NARROW_INTS, NARROW_FLOATS


def _to_numpy(x):
  if isinstance(x, list): return [_to_numpy(v) for v in x]
  if isinstance(x, Tensor): return x.numpy()
  return x


class LazygradRep(BackendRep):
  def __init__(self, model: OnnxModel):
    self.model = model

  def run(self, inputs, **kwargs):
    if isinstance(inputs, dict): outs = self.model(**inputs)
    else:
      if not isinstance(inputs, (list, tuple)): inputs = [inputs]
      outs = self.model(*inputs)
    return tuple(self._declared(name, _to_numpy(outs[name])) for name in self.model.output_names)

  def _declared(self, name, value):
    """A 4- or 2-bit integer or an 8- or 4-bit float comes back from its holding type as the declared NumPy type."""
    t = self.model.graph.declared.get(name)
    if (t in NARROW_INTS or t in NARROW_FLOATS) and isinstance(value, np.ndarray):
      return value.astype(onnx.helper.tensor_dtype_to_np_dtype(t))
    return value


class LazygradBackend(Backend):
  @classmethod
  def supports_device(cls, device: str) -> bool:
    return device.upper() in ("CPU", "CUDA")

  @classmethod
  def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> LazygradRep:
    super().prepare(model, device, **kwargs)  # onnx's checker
    return LazygradRep(OnnxModel(model))

  @classmethod
  def run_model(cls, model, inputs, device="CPU", **kwargs):
    return cls.prepare(model, device, **kwargs).run(inputs)


prepare = LazygradBackend.prepare
run_model = LazygradBackend.run_model
supports_device = LazygradBackend.supports_device
run_node = LazygradBackend.run_node
