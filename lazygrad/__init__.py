"""lazygrad: PyTorch's user experience on a lazy, fusing compiler. `import lazygrad as lg`."""
from lazygrad.tensor import Tensor, ShapeError, no_grad, enable_grad, manual_seed, cat, stack, where, einsum, grad_enabled, realize
from lazygrad.dtype import (DType, bool_ as bool, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64,
                            complex64, complex64 as cfloat, promote_types)
from lazygrad.complex import view_as_real, view_as_complex, complex, polar, real, imag, conj, angle, is_complex, isreal
from lazygrad.device import kernel_count, compile_count, memory_stats, empty_cache, synchronize
from lazygrad.jit import jit
from lazygrad.dtype import float16 as half, float32 as float, float64 as double, int32 as int, int64 as long

tensor = Tensor
zeros, ones, full, empty = Tensor.zeros, Tensor.ones, Tensor.full, Tensor.empty
arange, linspace, eye = Tensor.arange, Tensor.linspace, Tensor.eye
rand, randn, randint, randperm = Tensor.rand, Tensor.randn, Tensor.randint, Tensor.randperm


def _like(name):
  def fn(t, *args, **kwargs): return getattr(t, name)(*args, **kwargs)
  fn.__name__ = name
  return fn


zeros_like, ones_like, full_like, empty_like = _like("zeros_like"), _like("ones_like"), _like("full_like"), _like("empty_like")
rand_like, randn_like = _like("rand_like"), _like("randn_like")
matmul, maximum, minimum = _like("matmul"), _like("maximum"), _like("minimum")
exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs = (_like(n) for n in ("exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "abs"))
sum, mean, amax, amin, argmax, argmin, softmax, log_softmax, logsumexp = (
  _like(n) for n in ("sum", "mean", "amax", "amin", "argmax", "argmin", "softmax", "log_softmax", "logsumexp"))
reshape, permute, transpose, flatten, squeeze, unsqueeze, flip, clamp = (
  _like(n) for n in ("reshape", "permute", "transpose", "flatten", "squeeze", "unsqueeze", "flip", "clamp"))
isclose, allclose, equal, lerp, clip, tril, triu = (
  _like(n) for n in ("isclose", "allclose", "equal", "lerp", "clip", "tril", "triu"))
atan, atan2, asin, acos, sinh, cosh, asinh, acosh, atanh, hypot, logit, xlogy, frac, tan, erf, log1p, expm1 = (
  _like(n) for n in ("atan", "atan2", "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh", "hypot", "logit", "xlogy",
                     "frac", "tan", "erf", "log1p", "expm1"))
i0, lgamma, digamma, mvlgamma, erfinv = (_like(n) for n in ("i0", "lgamma", "digamma", "mvlgamma", "erfinv"))
nonzero, argwhere, diagonal, diag, index_add, take_along_dim, gather, index_select = (
  _like(n) for n in ("nonzero", "argwhere", "diagonal", "diag", "index_add", "take_along_dim", "gather", "index_select"))
# the linalg family: torch's linear algebra functions (torch.linalg's are lazygrad.linalg's)
det, logdet, slogdet, inverse, matrix_power, matrix_exp, cholesky, cholesky_inverse, cholesky_solve = (
  _like(n) for n in ("det", "logdet", "slogdet", "inverse", "matrix_power", "matrix_exp", "cholesky", "cholesky_inverse",
                     "cholesky_solve"))
triangular_solve, lu, lu_solve, qr, geqrf, ormqr, svd, pinverse, norm, cross = (
  _like(n) for n in ("triangular_solve", "lu", "lu_solve", "qr", "geqrf", "ormqr", "svd", "pinverse", "norm", "cross"))


def lu_unpack(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True):
  from lazygrad.linalg import lu_unpack
  return lu_unpack(LU_data, LU_pivots, unpack_data, unpack_pivots)

# more movement and indexing with torch's names (from torch's op database)
from lazygrad.tensor import (broadcast_shapes, broadcast_tensors, meshgrid, cartesian_prod, combinations, block_diag,  # noqa: E402
                             atleast_1d, atleast_2d, atleast_3d, hstack, vstack, dstack, column_stack, scalar_tensor,
                             slice_along as slice)
(unsafe_chunk, unsafe_split, split_with_sizes, diag_embed, diagflat, diagonal_scatter, fliplr, flipud, masked_scatter,
 narrow, narrow_copy, rot90, select, select_scatter, slice_scatter, tensor_split, hsplit, vsplit, dsplit, ravel,
 index_fill, index_copy, index_reduce, index_put, put, take, tile, scatter_reduce, as_strided, as_strided_scatter,
 unique, unique_consecutive) = (_like(n) for n in (
  "unsafe_chunk", "unsafe_split", "split_with_sizes", "diag_embed", "diagflat", "diagonal_scatter", "fliplr", "flipud",
  "masked_scatter", "narrow", "narrow_copy", "rot90", "select", "select_scatter", "slice_scatter", "tensor_split",
  "hsplit", "vsplit", "dsplit", "ravel", "index_fill", "index_copy", "index_reduce", "index_put", "put", "take", "tile",
  "scatter_reduce", "as_strided", "as_strided_scatter", "unique", "unique_consecutive"))


def _copy(name):
  """torch's <name>_copy: the view op's result as a tensor of its own (a view op may hand back its very input, which
  an in-place op on the result would then change)."""
  def fn(t, *args, **kwargs):
    out = getattr(t, name)(*args, **kwargs)
    return tuple(o.clone() for o in out) if isinstance(out, tuple) else out.clone()
  fn.__name__ = name + "_copy"
  return fn


(expand_copy, view_copy, permute_copy, transpose_copy, t_copy, squeeze_copy, unsqueeze_copy, diagonal_copy, unfold_copy,
 as_strided_copy, split_with_sizes_copy, unbind_copy) = (_copy(n) for n in (
  "expand", "view", "permute", "transpose", "t", "squeeze", "unsqueeze", "diagonal", "unfold", "as_strided",
  "split_with_sizes", "unbind"))
def alias_copy(t): return t.clone()

# more math with torch's names (from torch's op database)
from lazygrad.tensor import (tensordot, cdist, rsub, trapz, trapezoid, cumulative_trapezoid, isin, bucketize,  # noqa: E402
                             searchsorted, logspace, gradient)
(clamp_min, clamp_max, positive, sgn, true_divide, deg2rad, rad2deg, isposinf, isneginf, signbit, copysign, sinc, fmax, fmin,
 heaviside, ldexp, frexp, logaddexp, logaddexp2, float_power, addcmul, addcdiv, addmm, addmv, addbmm, baddbmm, addr, mv, vdot,
 outer, ger, inner, kron, trace, dist, cross, diff, aminmax, nansum, nanmean, var, std, var_mean, std_mean, logcumsumexp,
 cummax, cummin, kthvalue, median, nanmedian, mode, msort, quantile, nanquantile, renorm, cov, corrcoef, histc, max, min) = (
  _like(n) for n in ("clamp_min", "clamp_max", "positive", "sgn", "true_divide", "deg2rad", "rad2deg", "isposinf", "isneginf",
                     "signbit", "copysign", "sinc", "fmax", "fmin", "heaviside", "ldexp", "frexp", "logaddexp", "logaddexp2",
                     "float_power", "addcmul", "addcdiv", "addmm", "addmv", "addbmm", "baddbmm", "addr", "mv", "vdot", "outer",
                     "ger", "inner", "kron", "trace", "dist", "cross", "diff", "aminmax", "nansum", "nanmean", "var", "std",
                     "var_mean", "std_mean", "logcumsumexp", "cummax", "cummin", "kthvalue", "median", "nanmedian", "mode",
                     "msort", "quantile", "nanquantile", "renorm", "cov", "corrcoef", "histc", "max", "min"))

__version__ = "0.1.0"

def polygamma(n: int, input: Tensor) -> Tensor: return input.polygamma(n)


def __getattr__(name):
  # nn, optim, data, linalg, special, signal, fft, distributed and profiler load on first use, so `import lazygrad`
  # stays quick; so do save and load (lazygrad.state, with zipfile and pickle)
  import importlib
  if name in ("nn", "optim", "data", "linalg", "special", "signal", "distributed", "profiler", "fft"):
    return importlib.import_module(f"lazygrad.{name}")
  if name in ("save", "load"): return getattr(importlib.import_module("lazygrad.state"), name)
  raise AttributeError(f"module 'lazygrad' has no attribute {name!r}")
