"""ONNX elementwise math, comparisons, logic, activations, Softmax and the matrix products, as lazygrad Tensor ops.

ONNX binary ops take operands of one type and keep it (no promotion): results are cast back where lazygrad (as
torch) would promote, e.g. an int32 sum or an integer Div, which ONNX truncates.
"""
from __future__ import annotations
import math
from lazygrad.tensor import Tensor, einsum
import lazygrad.nn.functional as F
from lazygrad.onnx.registry import op


def _broadcast_legacy(n, a: Tensor, b: Tensor) -> Tensor:
  """Opsets before 7: with broadcast=1, b's dims line up with a's from `axis` (default: the trailing dims)."""
  if n.opset < 7 and n.attr("broadcast", 0) and n.attr("axis") is not None and b.ndim:
    axis = n.attr("axis") % a.ndim
    return b.reshape(*b.shape, *(1,) * (a.ndim - axis - b.ndim))
  return b


def _binary(name, fn):
  @op(name)
  def binary(n, a, b):
    return fn(a, _broadcast_legacy(n, a, b))
  binary.__name__ = name
  return binary


def _same(fn):
  """fn(a, b) cast back to a's dtype: ONNX keeps its operands' type."""
  def same(a, b):
    out = fn(a, b)
    return out if out.dtype is a.dtype else out.cast(a.dtype)
  return same


def _div(a: Tensor, b: Tensor) -> Tensor:
  if a.dtype.is_float: return a / b
  return a.div(b, rounding_mode="trunc")


_binary("Add", _same(lambda a, b: a + b))
_binary("Sub", _same(lambda a, b: a - b))
_binary("Mul", _same(lambda a, b: a * b))
_binary("Div", _same(_div))
_binary("Equal", lambda a, b: a == b)
_binary("Greater", lambda a, b: a > b)
_binary("Less", lambda a, b: a < b)
_binary("GreaterOrEqual", lambda a, b: a >= b)
_binary("LessOrEqual", lambda a, b: a <= b)
_binary("And", lambda a, b: a.logical_and(b))
_binary("Or", lambda a, b: a.logical_or(b))
_binary("Xor", lambda a, b: a.logical_xor(b))
_binary("BitwiseAnd", lambda a, b: a & b)
_binary("BitwiseOr", lambda a, b: a | b)
_binary("BitwiseXor", lambda a, b: a ^ b)


@op("Pow")
def pow_(n, a, b):
  out = a.cast(b.dtype).pow(b) if b.dtype.is_float and not a.dtype.is_float else a.pow(b)
  return out.cast(a.dtype)


@op("Mod")
def mod(n, a, b):
  return a.fmod(b) if n.attr("fmod", 0) else a.remainder(b)


@op("BitShift")
def bitshift(n, a, b):
  d = n.attr("direction")
  if d not in ("LEFT", "RIGHT"): raise ValueError(f"BitShift: direction must be 'LEFT' or 'RIGHT', got {d!r}")
  if a.dtype.kind == "u": return a << b if d == "LEFT" else a >> b
  # shifting a signed integer by its width or more (or by a negative count) fills it with its sign bit (RIGHT) or 0
  width = 8 * a.dtype.itemsize
  wide = (b < 0) | (b >= width)
  safe = wide.where(0, b)
  if d == "LEFT": return wide.where(0, a << safe).cast(a.dtype)
  return wide.where((a < 0).where(-1, 0), a >> safe).cast(a.dtype)


def _variadic(name, fn):
  @op(name)
  def variadic(n, *xs):
    xs = [x for x in xs if x is not None]
    if not xs: raise ValueError(f"{name}: needs at least one input")
    out = xs[0]
    for x in xs[1:]: out = fn(out, x)
    return out
  return variadic


_variadic("Sum", lambda a, b: a + b)
_variadic("Max", lambda a, b: a.maximum(b))
_variadic("Min", lambda a, b: a.minimum(b))


@op("Mean")
def mean(n, *xs):
  total = xs[0]
  for x in xs[1:]: total = total + x
  return total / len(xs)


def _unary(name, fn, since=1):
  @op(name, since=since)
  def unary(n, x): return fn(x)
  return unary


for _name, _fn in {
    "Abs": Tensor.abs, "Neg": Tensor.neg, "Exp": Tensor.exp, "Log": Tensor.log, "Sqrt": Tensor.sqrt, "Sin": Tensor.sin,
    "Cos": Tensor.cos, "Tan": Tensor.tan, "Asin": Tensor.asin, "Acos": Tensor.acos, "Atan": Tensor.atan,
    "Sinh": Tensor.sinh, "Cosh": Tensor.cosh, "Asinh": Tensor.asinh, "Acosh": Tensor.acosh, "Atanh": Tensor.atanh,
    "Tanh": Tensor.tanh, "Sigmoid": Tensor.sigmoid, "Erf": Tensor.erf, "Floor": Tensor.floor, "Ceil": Tensor.ceil,
    "Round": Tensor.round, "Reciprocal": Tensor.reciprocal, "Relu": Tensor.relu, "Sign": Tensor.sign,
    "Not": Tensor.logical_not, "BitwiseNot": Tensor.bitwise_not, "IsNaN": Tensor.isnan, "Softsign": F.softsign,
    "Identity": lambda x: x, "Mish": F.mish}.items():
  _unary(_name, _fn)


@op("IsInf")
def isinf(n, x):
  pos, neg = n.attr("detect_positive", 1), n.attr("detect_negative", 1)
  if pos and neg: return x.isinf()
  if pos: return x == math.inf
  if neg: return x == -math.inf
  return x.zeros_like(dtype="bool")


@op("Softplus")
def softplus(n, x): return F.softplus(x)


@op("LeakyRelu")
def leaky_relu(n, x): return F.leaky_relu(x, n.attr("alpha", 0.01))


@op("Elu")
def elu(n, x): return F.elu(x, n.attr("alpha", 1.0))


@op("Celu")
def celu(n, x): return F.celu(x, n.attr("alpha", 1.0))


@op("Selu")
def selu(n, x):
  alpha, gamma = n.attr("alpha", 1.67326319217681884765625), n.attr("gamma", 1.05070102214813232421875)
  return gamma * (x > 0).where(x, alpha * (x.exp() - 1))


@op("ThresholdedRelu")
def thresholded_relu(n, x): return (x > n.attr("alpha", 1.0)).where(x, 0.0)


@op("HardSigmoid")
def hard_sigmoid(n, x): return (x * n.attr("alpha", 0.2) + n.attr("beta", 0.5)).clamp(0.0, 1.0)


@op("HardSwish")
def hard_swish(n, x): return x * (x / 6 + 0.5).clamp(0.0, 1.0)


@op("Shrink")
def shrink(n, x):
  lambd, bias = n.attr("lambd", 0.5), n.attr("bias", 0.0)
  out = (x < -lambd).where(x + bias, (x > lambd).where(x - bias, 0))
  return out.cast(x.dtype)


@op("Gelu")
def gelu(n, x): return F.gelu(x, n.attr("approximate", "none"))


@op("Swish")
def swish(n, x): return x * (x * n.attr("alpha", 1.0)).sigmoid()


@op("PRelu")
def prelu(n, x, slope):
  if n.opset < 7 and slope.ndim == 1 and x.ndim > 2 and slope.shape[0] == x.shape[1]:  # a slope per channel (axis 1)
    slope = slope.reshape(-1, *(1,) * (x.ndim - 2))
  return (x < 0).where(x * slope, x)


@op("Clip", until=10)
def clip_attrs(n, x):
  return x.clamp(n.attr("min", -math.inf), n.attr("max", math.inf))


@op("Clip", since=11)
def clip(n, x, lo=None, hi=None):
  if lo is None and hi is None: return x
  return x.clamp(lo, hi)


@op("Where")
def where(n, cond, a, b): return cond.where(a, b)


def _softmax_axis(n, x: Tensor, fn):
  """Before opset 13 the input is coerced to 2-D at `axis` (default 1); from 13, one `axis` (default -1)."""
  if n.opset < 13:
    axis = n.attr("axis", 1) % max(x.ndim, 1)
    shape = x.shape
    flat = x.reshape(math.prod(shape[:axis]), math.prod(shape[axis:]))
    return fn(flat, 1).reshape(shape)
  return fn(x, n.attr("axis", -1))


@op("Softmax")
def softmax(n, x): return _softmax_axis(n, x, lambda t, a: t.softmax(a))


@op("LogSoftmax")
def log_softmax(n, x): return _softmax_axis(n, x, lambda t, a: t.log_softmax(a))


def _hardmax(t: Tensor, axis: int) -> Tensor:
  first = t.argmax(axis, keepdim=True)  # the first maximum, as ONNX asks
  k = t.shape[axis] if t.ndim else 1
  pos = Tensor.arange(k, device=t.device).reshape(*(k if d == axis % t.ndim else 1 for d in range(t.ndim)))
  return (pos == first).cast(t.dtype)


@op("Hardmax")
def hardmax(n, x): return _softmax_axis(n, x, _hardmax)


@op("MatMul")
def matmul(n, a, b): return a @ b


@op("Gemm")
def gemm(n, a, b, c=None):
  if n.attr("transA", 0): a = a.transpose(-1, -2)
  if n.attr("transB", 0): b = b.transpose(-1, -2)
  alpha, beta = n.attr("alpha", 1.0), n.attr("beta", 1.0)
  out = a @ b
  if alpha != 1.0: out = out * alpha
  if c is not None: out = out + (c * beta if beta != 1.0 else c)
  return out.cast(a.dtype)


@op("Einsum")
def einsum_(n, *xs): return einsum(n.attr("equation").replace(" ", ""), *xs)


@op("Det")
def det(n, x): return x.det()


@op("Trilu")
def trilu(n, x, k=None):
  k = 0 if k is None else int(n.host(k).item())
  return x.triu(k) if n.attr("upper", 1) else x.tril(k)
