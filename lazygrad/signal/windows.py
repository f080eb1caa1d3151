"""torch.signal.windows: window functions of a host-known length M, as torch builds them (a linspace of the
positions, then elementwise math on the device)."""
from __future__ import annotations
import math
from collections.abc import Iterable
from lazygrad.tensor import Tensor
from lazygrad.dtype import float32, float64, to_dtype

__all__ = ["bartlett", "blackman", "cosine", "exponential", "gaussian", "general_cosine", "general_hamming", "hamming",
           "hann", "kaiser", "nuttall"]


def _checks(name: str, M: int, dtype, layout):
  """torch's common checks; returns the dtype (the default float if None). lazygrad tensors are strided only."""
  if M < 0: raise ValueError(f"{name} requires non-negative window length, got M={M}")
  if layout is not None: raise ValueError(f"{name} is implemented for strided tensors only, got: {layout}")
  dtype = to_dtype(dtype) if dtype is not None else float32
  if dtype not in (float32, float64): raise ValueError(f"{name} expects float32 or float64 dtypes, got: {dtype}")
  return dtype


def _positions(start, end, M: int, dtype, device) -> Tensor: return Tensor.linspace(start, end, M, dtype=dtype, device=device)


def _done(t: Tensor, requires_grad: bool) -> Tensor: return t.requires_grad_(True) if requires_grad else t


def _trivial(M: int, dtype, device, requires_grad: bool) -> Tensor | None:
  """The windows of length 0 and 1."""
  if M == 0: return Tensor.empty(0, dtype=dtype, device=device, requires_grad=requires_grad)
  if M == 1: return Tensor.ones(1, dtype=dtype, device=device, requires_grad=requires_grad)
  return None


def exponential(M: int, *, center: float | None = None, tau: float = 1.0, sym: bool = True, dtype=None, layout=None,
                device=None, requires_grad: bool = False) -> Tensor:
  dtype = _checks("exponential", M, dtype, layout)
  if tau <= 0: raise ValueError(f"Tau must be positive, got: {tau} instead.")
  if sym and center is not None: raise ValueError("Center must be None for symmetric windows")
  if M == 0: return Tensor.empty(0, dtype=dtype, device=device, requires_grad=requires_grad)
  if center is None: center = (M if not sym and M > 1 else M - 1) / 2.0
  k = _positions(-center / tau, (-center + (M - 1)) / tau, M, dtype, device)
  return _done((-k.abs()).exp(), requires_grad)


def cosine(M: int, *, sym: bool = True, dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
  dtype = _checks("cosine", M, dtype, layout)
  if M == 0: return Tensor.empty(0, dtype=dtype, device=device, requires_grad=requires_grad)
  constant = math.pi / (M + 1 if not sym and M > 1 else M)
  return _done(_positions(0.5 * constant, (0.5 + (M - 1)) * constant, M, dtype, device).sin(), requires_grad)


def gaussian(M: int, *, std: float = 1.0, sym: bool = True, dtype=None, layout=None, device=None,
             requires_grad: bool = False) -> Tensor:
  dtype = _checks("gaussian", M, dtype, layout)
  if std <= 0: raise ValueError(f"Standard deviation must be positive, got: {std} instead.")
  if M == 0: return Tensor.empty(0, dtype=dtype, device=device, requires_grad=requires_grad)
  start = -(M if not sym and M > 1 else M - 1) / 2.0
  constant = 1 / (std * math.sqrt(2))
  k = _positions(start * constant, (start + (M - 1)) * constant, M, dtype, device)
  return _done((-(k * k)).exp(), requires_grad)


def kaiser(M: int, *, beta: float = 12.0, sym: bool = True, dtype=None, layout=None, device=None,
           requires_grad: bool = False) -> Tensor:
  dtype = _checks("kaiser", M, dtype, layout)
  if beta < 0: raise ValueError(f"beta must be non-negative, got: {beta} instead.")
  if (t := _trivial(M, dtype, device, requires_grad)) is not None: return t
  beta = float(dtype.np(beta))  # as torch, beta in the window's dtype (so beta^2 - k^2 stays >= 0 at the ends)
  constant = 2.0 * beta / (M if not sym else M - 1)
  k = _positions(-beta, min(beta, -beta + (M - 1) * constant), M, dtype, device)
  b = Tensor.full((), beta, dtype=dtype, device=device)
  return _done(((b * b - k * k).sqrt()).i0() / b.i0(), requires_grad)


def bartlett(M: int, *, sym: bool = True, dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
  dtype = _checks("bartlett", M, dtype, layout)
  if (t := _trivial(M, dtype, device, requires_grad)) is not None: return t
  constant = 2 / (M if not sym else M - 1)
  return _done(1 - _positions(-1, -1 + (M - 1) * constant, M, dtype, device).abs(), requires_grad)


def general_cosine(M, *, a: Iterable, sym: bool = True, dtype=None, layout=None, device=None,
                   requires_grad: bool = False) -> Tensor:
  dtype = _checks("general_cosine", M, dtype, layout)
  if (t := _trivial(M, dtype, device, requires_grad)) is not None: return t
  if not isinstance(a, Iterable): raise TypeError("Coefficients must be a list/tuple")
  a = list(a)
  if not a: raise ValueError("Coefficients cannot be empty")
  k = _positions(0, (M - 1) * 2 * math.pi / (M if not sym else M - 1), M, dtype, device)
  out = k.full_like(a[0])
  for i, w in enumerate(a[1:], start=1): out = out + (-1) ** i * w * (k * i).cos()
  return _done(out, requires_grad)


def general_hamming(M, *, alpha: float = 0.54, sym: bool = True, dtype=None, layout=None, device=None,
                    requires_grad: bool = False) -> Tensor:
  return general_cosine(M, a=[alpha, 1.0 - alpha], sym=sym, dtype=dtype, layout=layout, device=device,
                        requires_grad=requires_grad)


def hamming(M: int, *, sym: bool = True, dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
  return general_hamming(M, sym=sym, dtype=dtype, layout=layout, device=device, requires_grad=requires_grad)


def hann(M: int, *, sym: bool = True, dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
  return general_hamming(M, alpha=0.5, sym=sym, dtype=dtype, layout=layout, device=device, requires_grad=requires_grad)


def blackman(M: int, *, sym: bool = True, dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
  _checks("blackman", M, dtype, layout)
  return general_cosine(M, a=[0.42, 0.5, 0.08], sym=sym, dtype=dtype, layout=layout, device=device,
                        requires_grad=requires_grad)


def nuttall(M: int, *, sym: bool = True, dtype=None, layout=None, device=None, requires_grad: bool = False) -> Tensor:
  return general_cosine(M, a=[0.3635819, 0.4891775, 0.1365995, 0.0106411], sym=sym, dtype=dtype, layout=layout,
                        device=device, requires_grad=requires_grad)
