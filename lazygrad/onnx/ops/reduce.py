"""ONNX reductions (axes as attribute or input, keepdims, noop_with_empty_axes), ArgMax/ArgMin, CumSum, TopK and the
normalizations that are reductions, as lazygrad Tensor ops."""
from __future__ import annotations
import math
from lazygrad.tensor import Tensor
from lazygrad.onnx.registry import op


def reduce_axes(n, x: Tensor, axes: Tensor | None):
  """The axes to reduce (sorted, non-negative), or None where ONNX says to pass the input through."""
  if axes is not None: axes = [int(a) for a in n.host(axes).reshape(-1)]
  else: axes = n.attr("axes")
  if not axes:
    if n.attr("noop_with_empty_axes", 0): return None
    return tuple(range(x.ndim))
  for a in axes:
    if not -x.ndim <= a < max(x.ndim, 1):
      raise IndexError(f"{n.op_type}: axis {a} is out of range for an input of shape {x.shape}")
  return tuple(sorted({a % x.ndim for a in axes})) if x.ndim else ()


def _float_min(x: Tensor):
  if x.dtype.is_float: return -math.inf
  if x.dtype.name == "bool": return False
  return 0 if x.dtype.kind == "u" else -(2 ** (8 * x.dtype.itemsize - 1))


def _float_max(x: Tensor):
  if x.dtype.is_float: return math.inf
  if x.dtype.name == "bool": return True
  return 2 ** (8 * x.dtype.itemsize - (0 if x.dtype.kind == "u" else 1)) - 1


def _reduction(name, fn, empty):
  """fn(x, axes, keepdim); empty(x) is the value of a reduction over no elements."""
  def reduce(n, x, axes=None):
    ax = reduce_axes(n, x, axes)
    if ax is None: return x
    keep = bool(n.attr("keepdims", 1))
    if any(x.shape[a] == 0 for a in ax):
      shape = tuple(1 if i in ax else s for i, s in enumerate(x.shape)) if keep else \
        tuple(s for i, s in enumerate(x.shape) if i not in ax)
      return Tensor.full(shape, empty(x), dtype=x.dtype, device=x.device)
    if not ax: return x
    out = fn(x, ax, keep)
    return out if out.dtype is x.dtype else out.cast(x.dtype)
  # the axes became an input in opset 13 for ReduceSum and 18 for the others
  since = 13 if name == "ReduceSum" else 18
  op(name, until=since - 1)(lambda n, x: reduce(n, x))
  op(name, since=since)(reduce)


def _mean(x, ax, keep):
  return (x if x.dtype.is_float else x.double()).mean(ax, keep)


_reduction("ReduceSum", lambda x, ax, keep: x.sum(ax, keep), lambda x: 0)
_reduction("ReduceMean", _mean, lambda x: math.nan)
_reduction("ReduceProd", lambda x, ax, keep: x.prod(ax, keep) if len(ax) == 1 else
           x.permute(*[i for i in range(x.ndim) if i not in ax], *ax).flatten(x.ndim - len(ax)).prod(-1).reshape(
             tuple(1 if i in ax else s for i, s in enumerate(x.shape)) if keep else
             tuple(s for i, s in enumerate(x.shape) if i not in ax)), lambda x: 1)
_reduction("ReduceMax", lambda x, ax, keep: (x.cast("uint8") if x.dtype.name == "bool" else x).amax(ax, keep), _float_min)
_reduction("ReduceMin", lambda x, ax, keep: (x.cast("uint8") if x.dtype.name == "bool" else x).amin(ax, keep), _float_max)
_reduction("ReduceL1", lambda x, ax, keep: x.abs().sum(ax, keep), lambda x: 0)
_reduction("ReduceL2", lambda x, ax, keep: (x * x).sum(ax, keep).sqrt() if x.dtype.is_float else
           (x * x).sum(ax, keep).double().sqrt(), lambda x: 0)
_reduction("ReduceSumSquare", lambda x, ax, keep: (x * x).sum(ax, keep), lambda x: 0)
_reduction("ReduceLogSum", lambda x, ax, keep: x.sum(ax, keep).log(), lambda x: -math.inf)
_reduction("ReduceLogSumExp", lambda x, ax, keep: x.logsumexp(ax, keep), lambda x: -math.inf)


def _arg(name, method):
  @op(name)
  def arg(n, x):
    axis, keep = n.attr("axis", 0) % max(x.ndim, 1), bool(n.attr("keepdims", 1))
    if n.attr("select_last_index", 0):
      k = x.shape[axis]
      return (k - 1) - getattr(x.flip(axis), method)(axis, keepdim=keep)
    return getattr(x, method)(axis, keepdim=keep)
  return arg


_arg("ArgMax", "argmax")
_arg("ArgMin", "argmin")


@op("CumSum")
def cumsum(n, x, axis):
  a = int(n.host(axis).reshape(-1)[0]) % max(x.ndim, 1)
  if n.attr("reverse", 0): x = x.flip(a)
  if n.attr("exclusive", 0):  # shift by one place along the axis, a 0 first
    x = x[(slice(None),) * a + (slice(0, x.shape[a] - 1),)].pad([0, 0] * (x.ndim - 1 - a) + [1, 0])
  out = x.cumsum(a).cast(x.dtype)
  return out.flip(a) if n.attr("reverse", 0) else out


@op("TopK", until=9)
def topk_attr(n, x):
  return x.topk(n.attr("k"), n.attr("axis", -1))


@op("TopK", since=10)
def topk(n, x, k):
  kk = int(n.host(k).reshape(-1)[0])
  values, indices = x.topk(kk, n.attr("axis", -1), largest=bool(n.attr("largest", 1)), sorted=True)
  return values, indices


@op("LpNormalization")
def lp_normalization(n, x):
  p, axis = n.attr("p", 2), n.attr("axis", -1)
  norm = x.abs().sum(axis, keepdim=True) if p == 1 else (x * x).sum(axis, keepdim=True).sqrt()
  return (norm == 0).where(0.0, x / norm).cast(x.dtype)


@op("MeanVarianceNormalization")
def mean_variance_normalization(n, x):
  axes = tuple(a % x.ndim for a in n.attr("axes", [0, 2, 3]))
  mean = x.mean(axes, keepdim=True)
  var = ((x - mean) * (x - mean)).mean(axes, keepdim=True)
  return (x - mean) / (var.sqrt() + 1e-9)
