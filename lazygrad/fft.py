"""lazygrad.fft: torch.fft's discrete Fourier transforms, composed from Tensor ops on complex64's float32 view.

A transform of length n along one dim is a matrix product with an interleaved real DFT table (2n x 2n: the complex
product as one real one) where n is small, and mixed-radix Cooley-Tukey above that: n = n1 * n2 as n2 transforms of
length n1, a twiddle multiply, then n1 of length n2, so 4096 points cost two products of 64-point tables. A prime
length too long for a table is Bluestein's convolution, done with power-of-2 transforms. The tables are constants
computed on the host from the sizes and cached per (size, direction, device). Gradients are autograd's through
these ops: torch's convention, as for every complex64 op (see lazygrad/complex.py).
"""
from __future__ import annotations
import functools
import math
from typing import Sequence
import numpy as np
from lazygrad.complex import ComplexTensor, view_as_real
from lazygrad.dtype import complex64, float32, float64, to_dtype
from lazygrad.helpers import normalize_dim, prod
from lazygrad.tensor import Tensor, ShapeError, cat

DIRECT_MAX = 64        # lengths up to this are one product with a DFT table; longer ones are factored
TABLE_MAX = 1024       # a prime length up to this still gets its table (16 MiB at 1024); longer is Bluestein's


# ---- the host-side constant tables

def _angles(rows: int, cols: int, n: int, sign: int) -> np.ndarray:
  """sign * 2 pi (r * c mod n) / n for r < rows, c < cols: the reduction keeps large products exact in float64."""
  return sign * 2 * np.pi * ((np.arange(rows)[:, None] * np.arange(cols)[None, :]) % n) / n


def _interleaved(w: np.ndarray, real_input: bool) -> np.ndarray:
  """The real matrix that multiplies interleaved (re, im) rows by the complex matrix w (in x out): complex input
  rows 2k, 2k+1 are x_k's parts, output columns 2j, 2j+1 y_j's. A real input has the re rows only."""
  m = np.empty((w.shape[0], 2, w.shape[1], 2))
  m[:, 0, :, 0], m[:, 0, :, 1], m[:, 1, :, 0], m[:, 1, :, 1] = w.real, w.imag, -w.imag, w.real
  if real_input: m = m[:, :1]
  return m.reshape(m.shape[0] * m.shape[1], -1)


@functools.lru_cache(maxsize=256)
def _dft_table(n: int, out_len: int, inverse: bool, real_input: bool, device: str) -> Tensor:
  """The (2n or n) x 2*out_len table of the length-n DFT's first out_len outputs."""
  w = np.exp(1j * _angles(n, out_len, n, 1 if inverse else -1))
  return Tensor(_interleaved(w, real_input).astype(np.float32), device=device)


@functools.lru_cache(maxsize=256)
def _c2r_table(m: int, n: int, device: str) -> Tensor:
  """The 2m x n table of the length-n inverse DFT of a Hermitian signal given by its first m = n//2+1 terms: each
  term but the first (and the middle one of an even n) stands for its mirror image too, so it counts twice; the
  imaginary parts of those two are dropped, as torch does."""
  a = _angles(m, n, n, 1)
  twice = np.full((m, 1), 2.0)
  twice[0] = 1.0
  if n % 2 == 0: twice[-1] = 1.0
  t = np.stack([twice * np.cos(a), -twice * np.sin(a)], 1)  # (m, 2, n)
  return Tensor(t.reshape(2 * m, n).astype(np.float32), device=device)


@functools.lru_cache(maxsize=256)
def _twiddles(n1: int, n2: int, inverse: bool, device: str) -> tuple[Tensor, Tensor]:
  """Cooley-Tukey's twiddles w_n^(i2 * k1) on an (n2, n1) grid, as the two factors of `_times_constant`."""
  return _constant_factors(np.exp(1j * _angles(n2, n1, n1 * n2, 1 if inverse else -1)), device)


def _constant_factors(w: np.ndarray, device: str) -> tuple[Tensor, Tensor]:
  """(a, b) with x * w = x * a + x.flip(-1) * b on interleaved x: a = (re w, re w), b = (-im w, im w)."""
  a = np.stack([w.real, w.real], -1)
  b = np.stack([-w.imag, w.imag], -1)
  return Tensor(a.astype(np.float32), device=device), Tensor(b.astype(np.float32), device=device)


def _times_constant(x: Tensor, factors: tuple[Tensor, Tensor]) -> Tensor:
  """Interleaved complex x (..., 2) times a complex constant: one elementwise kernel."""
  a, b = factors
  return x * a + x.flip(-1) * b


@functools.lru_cache(maxsize=64)
def _bluestein(n: int, inverse: bool, device: str):
  """Bluestein's chirp (times the input and the output) and the transform of its conjugate, circularly laid out
  over a power of 2 at least 2n - 1 long (the convolution's length)."""
  sign = 1 if inverse else -1
  k = np.arange(n)
  chirp = np.exp(1j * sign * np.pi * ((k * k) % (2 * n)) / n)
  size = 1 << (2 * n - 2).bit_length()
  kernel = np.zeros(size, np.complex128)
  kernel[:n] = np.conj(chirp)
  kernel[size - n + 1:] = np.conj(chirp[1:])[::-1]
  kernel_ft = np.fft.fft(kernel) / size  # the 1/size of the inverse transform folded in
  return size, _constant_factors(chirp, device), _constant_factors(kernel_ft, device)


# ---- one transform along the last-but-one dim of an interleaved (..., n, 2) real view

def _split(n: int) -> int:
  """A factor of n near its square root (n1 <= sqrt(n)), or 1 for a prime."""
  best = 1
  for f in range(2, math.isqrt(n) + 1):
    if n % f == 0: best = f
  return best


def _one_table(n: int) -> bool:
  """Whether a length-n transform is one product with a table: a short one, or a prime one a table still fits."""
  return n <= DIRECT_MAX or (n <= TABLE_MAX and _split(n) == 1)


def _cdft(x: Tensor, inverse: bool) -> Tensor:
  """The complex DFT (unnormalized) along dim -2 of interleaved x (..., n, 2)."""
  n, batch = x.shape[-2], x.shape[:-2]
  if n == 1: return x
  if _one_table(n): return (x.reshape(*batch, 2 * n) @ _dft_table(n, n, inverse, False, x.device)).reshape(*batch, n, 2)
  n1 = _split(n)
  if n1 == 1: return _bluestein_dft(x, inverse)
  n2 = n // n1
  # x[i1 * n2 + i2]: the length-n1 transforms over i1 for each i2, the twiddles, then length-n2 ones over i2
  y = _cdft(x.reshape(*batch, n1, n2, 2).transpose(-3, -2), inverse)           # (..., i2, k1, 2)
  y = _times_constant(y, _twiddles(n1, n2, inverse, x.device)).transpose(-3, -2)  # (..., k1, i2, 2)
  y = _cdft(y, inverse)                                                         # (..., k1, k2, 2)
  return y.transpose(-3, -2).reshape(*batch, n, 2)                              # k = k1 + n1 * k2


def _bluestein_dft(x: Tensor, inverse: bool) -> Tensor:
  """A prime length's DFT as a convolution with a chirp: x_k w_k convolved with conj(w), times w (w_k = e^(-i pi k^2/n))."""
  n = x.shape[-2]
  size, chirp, kernel_ft = _bluestein(n, inverse, x.device)
  a = _times_constant(x, chirp)
  a = a.pad([0, 0, 0, size - n])
  conv = _cdft(_times_constant(_cdft(a, False), kernel_ft), True)  # the circular convolution with the kernel
  return _times_constant(conv.narrow(-2, 0, n), chirp)


def _rdft(x: Tensor) -> Tensor:
  """The DFT along the last dim of real x (..., n), its non-negative frequencies: interleaved (..., n//2+1, 2)."""
  n, batch = x.shape[-1], x.shape[:-1]
  out_len = n // 2 + 1
  if _one_table(n):
    return (x @ _dft_table(n, out_len, False, True, x.device)).reshape(*batch, out_len, 2)
  y = _cdft(view_as_real(x.cast(complex64)), False)
  return y.narrow(-2, 0, out_len)


def _c2r(x: Tensor, n: int) -> Tensor:
  """The unnormalized inverse DFT, real (..., n), of the Hermitian signal whose first n//2+1 terms are interleaved
  x (..., n//2+1, 2)."""
  m, batch = x.shape[-2], x.shape[:-2]
  if _one_table(n):
    return x.reshape(*batch, 2 * m) @ _c2r_table(m, n, x.device)
  # the whole spectrum (the mirrored terms conjugated), its complex inverse, the real part
  mirror = x.narrow(-2, 1, n - m).flip(-2) * Tensor([1.0, -1.0], device=x.device)
  return _cdft(cat([x, mirror], -2), True)[..., 0]


# ---- torch's arguments: dims, lengths, norms, inputs

_NORMS = ("backward", "ortho", "forward")


def _scale(norm: str | None, n: int, inverse: bool, op: str) -> float:
  """The factor a transform of n points multiplies by: torch's `norm` names which direction is divided by n."""
  norm = "backward" if norm is None else norm
  if norm not in _NORMS: raise ValueError(f"{op}: invalid norm {norm!r}; expected one of {', '.join(map(repr, _NORMS))}")
  if norm == "ortho": return 1 / math.sqrt(n)
  return 1 / n if (norm == "forward") != inverse else 1.0


def _swapped(norm: str | None) -> str:
  """The norm of the opposite direction (hfft is irfft of the conjugate, forward and backward exchanged)."""
  return {"backward": "forward", "forward": "backward"}.get(norm or "backward", norm)


def _check_input(x, op: str) -> Tensor:
  if not isinstance(x, Tensor): raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
  if x.dtype is float64: raise TypeError(f"{op}: float64 input gives complex128, which lazygrad does not have; cast it to float32")
  if x.ndim == 0: raise ShapeError(f"{op}: expected a tensor of at least 1 dimension, got a 0-d tensor")
  return x


def _plan(x: Tensor, s, dim, op: str) -> tuple[list[int], list[int | None]]:
  """torch's (s, dim) of an n-d transform as (dims, lengths): dims default to the last len(s), or all; a length of
  -1 or None keeps the dim's size."""
  if dim is None: dim = tuple(range(-len(s), 0)) if s is not None else tuple(range(x.ndim))
  dims = [normalize_dim(d, x.ndim, op) for d in ((dim,) if isinstance(dim, int) else dim)]
  if len(set(dims)) != len(dims): raise ValueError(f"{op}: dims {tuple(dim)} repeat a dim")
  if s is None: lengths = [None] * len(dims)
  else:
    lengths = [None if n in (-1, None) else int(n) for n in ((s,) if isinstance(s, int) else s)]
    if len(lengths) != len(dims): raise ValueError(f"{op}: s {tuple(s)} and dim {tuple(dim)} have different lengths")
  for n in lengths:
    if n is not None and n < 1: raise ValueError(f"{op}: invalid number of data points ({n}) specified")
  return dims, lengths


def _resized(x: Tensor, axis: int, n: int) -> Tensor:
  """x cut or zero-padded to n along axis."""
  size = x.shape[axis]
  if n < size: return x.narrow(axis, 0, n)
  if n > size: return x.pad([0, 0] * (x.ndim - 1 - axis) + [0, n - size])
  return x


def _along(x: Tensor, axis: int, at: int, fn) -> Tensor:
  """fn applied with axis moved to position at (from the end), then moved back."""
  a = x.ndim + at
  return fn(x) if axis == a else fn(x.transpose(axis, a)).transpose(axis, a)


def _c2c(x: Tensor, dims: list[int], lengths: list, inverse: bool, norm, op: str) -> ComplexTensor:
  """The complex transform of x over dims (each cut or padded to its length), scaled as norm says."""
  v = view_as_real(_check_input(x, op).cast(complex64))
  total = 1
  for d, n in zip(dims, lengths):
    n = v.shape[d] if n is None else n
    total *= n
    v = _along(_resized(v, d, n), d, -2, lambda t: _cdft(t, inverse))
  scale = _scale(norm, total, inverse, op)
  return ComplexTensor._wrap(v if scale == 1 else v * scale)


def _r2c(x: Tensor, dims: list[int], lengths: list, norm, op: str) -> ComplexTensor:
  """The transform of real x over dims, the last of them one-sided: n//2+1 terms."""
  x = _check_input(x, op)
  if x.is_complex(): raise TypeError(f"{op} expects a real input tensor, but got complex64")
  x = x.float()
  d, n = dims[-1], lengths[-1] if lengths[-1] is not None else x.shape[dims[-1]]
  v = _along(_resized(x, d, n), d, -1, _rdft)  # (..., m, ..., 2): d is a complex dim now
  out = _c2c(ComplexTensor._wrap(v), dims[:-1], lengths[:-1], False, "backward", op) if len(dims) > 1 else ComplexTensor._wrap(v)
  total = n * prod(out.shape[a] for a in dims[:-1])
  scale = _scale(norm, total, False, op)
  return out if scale == 1 else ComplexTensor._wrap(view_as_real(out) * scale)


def _c2r_n(x: Tensor, dims: list[int], lengths: list, norm, op: str) -> Tensor:
  """The inverse transform over dims of a signal Hermitian along the last of them (given by its first n//2+1
  terms there): real, n long there (2 * (size - 1) by default)."""
  x = _check_input(x, op).cast(complex64)
  d = dims[-1]
  n = lengths[-1] if lengths[-1] is not None else 2 * (x.shape[d] - 1)
  if n < 1: raise ValueError(f"{op}: invalid number of data points ({n}) specified")
  if len(dims) > 1: x = _c2c(x, dims[:-1], lengths[:-1], True, "forward", op)
  v = _resized(view_as_real(x), d, n // 2 + 1)
  y = _along(v, d, -2, lambda t: _c2r(t, n).unsqueeze(-1))[..., 0]
  total = n * prod(x.shape[a] for a in dims[:-1])
  scale = _scale(norm, total, True, op)
  return y if scale == 1 else y * scale


# ---- torch.fft's functions

def fft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> ComplexTensor:
  """The 1-d discrete Fourier transform, n points along dim (cut or zero-padded)."""
  return _c2c(input, *_plan(_check_input(input, "fft"), None if n is None else (n,), dim, "fft"), False, norm, "fft")


def ifft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> ComplexTensor:
  """The 1-d inverse discrete Fourier transform."""
  return _c2c(input, *_plan(_check_input(input, "ifft"), None if n is None else (n,), dim, "ifft"), True, norm, "ifft")


def fft2(input: Tensor, s=None, dim=(-2, -1), norm: str | None = None) -> ComplexTensor:
  return fftn(input, s, dim, norm)


def ifft2(input: Tensor, s=None, dim=(-2, -1), norm: str | None = None) -> ComplexTensor:
  return ifftn(input, s, dim, norm)


def fftn(input: Tensor, s=None, dim=None, norm: str | None = None) -> ComplexTensor:
  """The n-d discrete Fourier transform over dim (all by default, or the last len(s))."""
  return _c2c(input, *_plan(_check_input(input, "fftn"), s, dim, "fftn"), False, norm, "fftn")


def ifftn(input: Tensor, s=None, dim=None, norm: str | None = None) -> ComplexTensor:
  return _c2c(input, *_plan(_check_input(input, "ifftn"), s, dim, "ifftn"), True, norm, "ifftn")


def rfft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> ComplexTensor:
  """The transform of a real signal: its n//2+1 non-negative frequencies (the rest are their conjugates)."""
  return _r2c(input, *_plan(_check_input(input, "rfft"), None if n is None else (n,), dim, "rfft"), norm, "rfft")


def irfft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
  """rfft's inverse: a real signal of n points (2 * (size - 1) by default) from its non-negative frequencies."""
  return _c2r_n(input, *_plan(_check_input(input, "irfft"), None if n is None else (n,), dim, "irfft"), norm, "irfft")


def rfft2(input: Tensor, s=None, dim=(-2, -1), norm: str | None = None) -> ComplexTensor:
  return rfftn(input, s, dim, norm)


def irfft2(input: Tensor, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
  return irfftn(input, s, dim, norm)


def rfftn(input: Tensor, s=None, dim=None, norm: str | None = None) -> ComplexTensor:
  return _r2c(input, *_plan(_check_input(input, "rfftn"), s, dim, "rfftn"), norm, "rfftn")


def irfftn(input: Tensor, s=None, dim=None, norm: str | None = None) -> Tensor:
  return _c2r_n(input, *_plan(_check_input(input, "irfftn"), s, dim, "irfftn"), norm, "irfftn")


def hfft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
  """The transform of a Hermitian signal given by its first half: real, n points (2 * (size - 1) by default)."""
  return hfftn(input, None if n is None else (n,), (dim,), norm)


def ihfft(input: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> ComplexTensor:
  """hfft's inverse: the first n//2+1 terms of a real signal's inverse transform."""
  return ihfftn(input, None if n is None else (n,), (dim,), norm)


def hfft2(input: Tensor, s=None, dim=(-2, -1), norm: str | None = None) -> Tensor:
  return hfftn(input, s, dim, norm)


def ihfft2(input: Tensor, s=None, dim=(-2, -1), norm: str | None = None) -> ComplexTensor:
  return ihfftn(input, s, dim, norm)


def hfftn(input: Tensor, s=None, dim=None, norm: str | None = None) -> Tensor:
  # the forward transform of a Hermitian signal is real, so it is its own conjugate: irfftn of the conjugate
  x = _check_input(input, "hfftn")
  return _c2r_n(x.cast(complex64).conj(), *_plan(x, s, dim, "hfftn"), _swapped(norm), "hfftn")


def ihfftn(input: Tensor, s=None, dim=None, norm: str | None = None) -> ComplexTensor:
  x = _check_input(input, "ihfftn")
  return _r2c(x, *_plan(x, s, dim, "ihfftn"), _swapped(norm), "ihfftn").conj()


def fftfreq(n: int, d: float = 1.0, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
  """The sample frequencies of an n-point fft: [0, 1, ..., (n-1)//2, -(n//2), ..., -1] / (d * n)."""
  k = np.concatenate([np.arange((n - 1) // 2 + 1), np.arange(-(n // 2), 0)])
  return _frequencies(k, n, d, dtype, device, requires_grad)


def rfftfreq(n: int, d: float = 1.0, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
  """The sample frequencies of an n-point rfft: [0, 1, ..., n//2] / (d * n)."""
  return _frequencies(np.arange(n // 2 + 1), n, d, dtype, device, requires_grad)


def _frequencies(k: np.ndarray, n: int, d: float, dtype, device, requires_grad: bool) -> Tensor:
  dtype = to_dtype(dtype or float32)
  if not dtype.is_float: raise TypeError(f"fftfreq: expected a floating point dtype, got {dtype.name}")
  # as torch: the integers in the dtype, times the reciprocal in it
  return Tensor((k.astype(dtype.np) * dtype.np(1.0 / (n * d))).astype(dtype.np), device=device, requires_grad=requires_grad)


def _shifted(input: Tensor, dim, inverse: bool, op: str) -> Tensor:
  dims = range(input.ndim) if dim is None else ((dim,) if isinstance(dim, int) else dim)
  dims = [normalize_dim(d, input.ndim, op) for d in dims]
  shifts = [(input.shape[d] + inverse) // 2 for d in dims]  # ifftshift moves by -(size//2), i.e. (size+1)//2
  return input.roll(shifts, dims) if dims else input


def fftshift(input: Tensor, dim=None) -> Tensor:
  """The zero frequency moved to the middle: a roll by size//2 along dim (all dims by default)."""
  return _shifted(input, dim, False, "fftshift")


def ifftshift(input: Tensor, dim=None) -> Tensor:
  """fftshift's inverse."""
  return _shifted(input, dim, True, "ifftshift")
