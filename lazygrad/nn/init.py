"""torch.nn.init: fill a tensor in place (through `assign`) from lazygrad's seeded generator (`lg.manual_seed`).

Values are drawn with Tensor.rand/randn and shaped on the host, so initialising a model launches no kernel and
every parameter starts as a plain device buffer.
"""
from __future__ import annotations
import math
import warnings
import numpy as np
from lazygrad.tensor import Tensor, no_grad

__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_"]


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
  with no_grad():
    return tensor.assign(Tensor(np.asarray(values, dtype=np.float64).reshape(tensor.shape).astype(tensor.dtype.np),
                                dtype=tensor.dtype, device=tensor.device))


def _uniform01(shape) -> np.ndarray: return Tensor.rand(*shape).numpy().astype(np.float64)
def _standard_normal(shape) -> np.ndarray: return Tensor.randn(*shape).numpy().astype(np.float64)


def calculate_gain(nonlinearity: str, param=None) -> float:
  """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain."""
  linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
  if nonlinearity in linear_fns or nonlinearity == "sigmoid": return 1
  if nonlinearity == "tanh": return 5.0 / 3
  if nonlinearity == "relu": return math.sqrt(2.0)
  if nonlinearity == "leaky_relu":
    if param is None: slope = 0.01
    elif not isinstance(param, bool) and isinstance(param, (int, float)): slope = param
    else: raise ValueError(f"negative_slope {param} not a valid number")
    return math.sqrt(2.0 / (1 + slope ** 2))
  if nonlinearity == "selu": return 3.0 / 4
  raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
  if tensor.ndim < 2:
    raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
  receptive = 1
  for s in tensor.shape[2:]: receptive *= s
  return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
  mode = mode.lower()
  if mode not in ("fan_in", "fan_out"): raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
  fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
  return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
  return _fill(tensor, a + (b - a) * _uniform01(tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
  return _fill(tensor, mean + std * _standard_normal(tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None) -> Tensor:
  """Normal(mean, std) restricted to [a, b] (bounds in the tensor's units, as torch), by redrawing what falls outside."""
  if std <= 0 or a >= b: raise ValueError(f"trunc_normal_: need std > 0 and a < b, got std={std}, a={a}, b={b}")
  n = math.prod(tensor.shape)
  out = np.empty(n, dtype=np.float64)
  todo = np.arange(n)
  for _ in range(1000):
    if todo.size == 0: break
    draw = mean + std * _standard_normal((todo.size,))
    ok = (draw >= a) & (draw <= b)
    out[todo[ok]] = draw[ok]
    todo = todo[~ok]
  else: raise RuntimeError(f"trunc_normal_: [{a}, {b}] holds almost none of Normal({mean}, {std})")
  return _fill(tensor, out)


def constant_(tensor: Tensor, val: float) -> Tensor: return _fill(tensor, np.full(tensor.shape, val, dtype=np.float64))
def ones_(tensor: Tensor) -> Tensor: return constant_(tensor, 1.0)
def zeros_(tensor: Tensor) -> Tensor: return constant_(tensor, 0.0)


def eye_(tensor: Tensor) -> Tensor:
  if tensor.ndim != 2: raise ValueError("Only tensors with 2 dimensions are supported")
  return _fill(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
  fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
  bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
  return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
  fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
  return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
  if 0 in tensor.shape:
    warnings.warn("Initializing zero-element tensors is a no-op")
    return tensor
  std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
  bound = math.sqrt(3.0) * std
  return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
  if 0 in tensor.shape:
    warnings.warn("Initializing zero-element tensors is a no-op")
    return tensor
  std = calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))
  return normal_(tensor, 0.0, std)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
  """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, as torch.nn.init.orthogonal_."""
  if tensor.ndim < 2: raise ValueError("Only tensors with 2 or more dimensions are supported")
  if tensor.numel() == 0: return tensor
  rows = tensor.shape[0]
  cols = tensor.numel() // rows
  flat = _standard_normal((rows, cols))
  if rows < cols: flat = flat.T
  q, r = np.linalg.qr(flat)
  q = q * np.sign(np.diag(r))
  if rows < cols: q = q.T
  return _fill(tensor, gain * q)
