"""The primitive differentiable ops. `forward` works on LazyBuffers; `backward` is written with Tensor ops, so a
gradient is itself differentiable (create_graph) and fuses with everything around it.

Everything else a user calls is composed from these in tensor.py.
"""
from __future__ import annotations
import functools
import math
import threading
from typing import TYPE_CHECKING
from lazygrad.dtype import DType
from lazygrad.lazy import LazyBuffer
from lazygrad.ops import UnaryOps, BinaryOps, TernaryOps, ReduceOps
if TYPE_CHECKING: from lazygrad.tensor import Tensor  # tensor.py imports this module, never the other way

# ---- autograd mode (per thread, as in PyTorch)

_grad_state = threading.local()


def grad_enabled() -> bool: return getattr(_grad_state, "enabled", True)


class _GradMode:
  def __init__(self, enabled: bool): self.enabled = enabled
  def __enter__(self):
    self.prev = grad_enabled()
    _grad_state.enabled = self.enabled
  def __exit__(self, *exc): _grad_state.enabled = self.prev
  def __call__(self, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      with _GradMode(self.enabled): return fn(*args, **kwargs)
    return wrapper


def no_grad(): return _GradMode(False)
def enable_grad(): return _GradMode(True)


def columns_are_strided(lb: LazyBuffer) -> bool:
  """Whether a matrix (or a batch of them) is a view whose rows run down memory: unit stride along dim -2, not -1."""
  views = lb.st.views
  if lb._base is None or len(views) != 1: return False
  strides = views[0].strides
  return strides[-2] == 1 and strides[-1] != 1


class Function:
  def __init__(self, *tensors: Tensor):
    self.needs_input_grad = [t.requires_grad for t in tensors]
    self.requires_grad = any(self.needs_input_grad)
    if self.requires_grad: self.parents = tensors

  def forward(self, *args, **kwargs) -> LazyBuffer: raise NotImplementedError
  def backward(self, grad: Tensor): raise NotImplementedError

  @classmethod
  def apply(cls, *tensors: Tensor, **kwargs) -> Tensor:
    Tensor = type(tensors[0])  # noqa: N806 (the class the results are made of, without importing tensor.py)
    ctx = cls(*tensors)
    ctx.tensor_type = Tensor
    ret = Tensor._from_lazy(ctx.forward(*[t.lazydata for t in tensors], **kwargs))
    if ctx.requires_grad and grad_enabled() and ret.dtype.is_float:  # integer and bool results carry no gradient
      ret.requires_grad, ret._ctx = True, ctx
    return ret

  @property
  def inputs(self): return self.parents


# ---- unary

class Neg(Function):
  def forward(self, x): return x.e(UnaryOps.NEG)
  def backward(self, g): return -g

class Exp2(Function):
  def forward(self, x): return x.e(UnaryOps.EXP2)
  def backward(self, g): return g * self.parents[0].exp2() * math.log(2)

class Log2(Function):
  def forward(self, x): return x.e(UnaryOps.LOG2)
  def backward(self, g): return g / (self.parents[0] * math.log(2))

class Sin(Function):
  def forward(self, x): return x.e(UnaryOps.SIN)
  def backward(self, g): return g * self.parents[0].cos()

class Exp(Function):
  def forward(self, x): return x.e(UnaryOps.EXP)
  def backward(self, g): return g * self.parents[0].exp()  # the forward's own node again (lazy nodes are shared)

class Cos(Function):
  def forward(self, x): return x.e(UnaryOps.COS)
  def backward(self, g): return -g * self.parents[0].sin()

class Sqrt(Function):
  def forward(self, x): return x.e(UnaryOps.SQRT)
  def backward(self, g): return g / (self.parents[0].sqrt() * 2)

class Reciprocal(Function):
  def forward(self, x): return x.e(UnaryOps.RECIP)
  def backward(self, g):
    x = self.parents[0]
    return -g / (x * x)

class Relu(Function):
  def forward(self, x): return x.e(BinaryOps.MAX, x.const_like(0))
  def backward(self, g): return g * (self.parents[0] > 0).cast(g.dtype)

class Cast(Function):
  def forward(self, x, dtype: DType):
    self.input_dtype = x.dtype
    return x.cast(dtype)
  def backward(self, g): return g.cast(self.input_dtype)


# ---- binary (sources already broadcast to one shape and promoted to one dtype)

class Add(Function):
  def forward(self, x, y): return x.e(BinaryOps.ADD, y)
  def backward(self, g): return g if self.needs_input_grad[0] else None, g if self.needs_input_grad[1] else None

class Sub(Function):
  def forward(self, x, y): return x.e(BinaryOps.SUB, y)
  def backward(self, g): return g if self.needs_input_grad[0] else None, -g if self.needs_input_grad[1] else None

class Mul(Function):
  def forward(self, x, y): return x.e(BinaryOps.MUL, y)
  def backward(self, g):
    x, y = self.parents
    return g * y if self.needs_input_grad[0] else None, g * x if self.needs_input_grad[1] else None

class Div(Function):
  def forward(self, x, y): return x.e(BinaryOps.DIV, y)
  def backward(self, g):
    x, y = self.parents
    return (g / y if self.needs_input_grad[0] else None,
            -g * x / (y * y) if self.needs_input_grad[1] else None)

class Maximum(Function):
  def forward(self, x, y): return x.e(BinaryOps.MAX, y)
  def backward(self, g):
    # ties share the gradient equally, as torch.maximum does
    x, y = self.parents
    share = (x > y).cast(g.dtype) + (x == y).cast(g.dtype) * 0.5
    return g * share if self.needs_input_grad[0] else None, g * (1 - share) if self.needs_input_grad[1] else None


class IDiv(Function):  # integers only: no gradient
  def forward(self, x, y): return x.e(BinaryOps.IDIV, y)

class Mod(Function):  # C's % and fmod: exact, where x - trunc(x / y) * y loses the quotient past 2**24
  def forward(self, x, y): return x.e(BinaryOps.MOD, y)
  def backward(self, g):
    x, y = self.parents
    return g if self.needs_input_grad[0] else None, -g * (x / y).trunc() if self.needs_input_grad[1] else None

class Less(Function):
  def forward(self, x, y): return x.e(BinaryOps.CMPLT, y)

class Equal(Function):
  def forward(self, x, y): return x.e(BinaryOps.CMPEQ, y)

class Not(Function):
  def forward(self, x): return x.e(UnaryOps.NOT)

class BitAnd(Function):
  def forward(self, x, y): return x.e(BinaryOps.AND, y)

class BitOr(Function):
  def forward(self, x, y): return x.e(BinaryOps.OR, y)

class BitXor(Function):
  def forward(self, x, y): return x.e(BinaryOps.XOR, y)


class Where(Function):
  def __init__(self, cond, x, y):
    super().__init__(x, y)
    self.cond = cond
  @classmethod
  def apply(cls, cond, x, y):
    ctx = cls(cond, x, y)
    ret = type(x)._from_lazy(cond.lazydata.e(TernaryOps.WHERE, x.lazydata, y.lazydata))
    if ctx.requires_grad and grad_enabled() and ret.dtype.is_float: ret.requires_grad, ret._ctx = True, ctx
    return ret
  def backward(self, g):
    zero = g.zeros_like()
    return (self.cond.where(g, zero) if self.needs_input_grad[0] else None,
            self.cond.where(zero, g) if self.needs_input_grad[1] else None)


# ---- reductions (axes kept as size 1)

class Sum(Function):
  def forward(self, x, axes):
    self.input_shape = x.shape
    return x.r(ReduceOps.SUM, axes)
  def backward(self, g): return g.expand(self.input_shape)

class MatMul(Function):
  """x @ w over equal batch dims: a sum over k of a broadcast product, which the scheduler makes one reduction. Its
  gradients are matmuls too (g @ w^T, x^T @ g), so they get a matmul's kernels and operand layouts rather than the
  layouts the product's own gradient would read."""
  def forward(self, x, w, panel: int = 0, rows: int = 0):
    *batch, m, k = x.shape
    batch, n = tuple(batch), w.shape[-1]
    if panel:  # w copied to panels of `panel` columns, each k rows deep and contiguous (see Tensor.matmul)
      b, keep = len(batch), tuple(range(len(batch)))
      # one copy per weight and layout, however many products read it (an RNN's W_hh, once per time step)
      copies = w.base.__dict__.setdefault("_panels", {})
      wp = copies.get((w.st, panel))
      if wp is None:
        wp = copies[(w.st, panel)] = w.reshape(batch + (k, n // panel, panel)).permute(keep + (b + 1, b, b + 2)).contiguous(force=True)
      r = rows or 1
      if rows:  # and x, where asked, to panels of `rows` rows, (m/r, k, r), read back as an (m/r, r, k) view
        swap = keep + (b, b + 2, b + 1)  # its own inverse
        x = x.reshape(batch + (m // r, r, k)).permute(swap).contiguous(force=True).permute(swap)
      full = batch + (m // r, r, n // panel, k, panel)
      xe = x.reshape(batch + (m // r, r, 1, k, 1)).expand(full)
      we = wp.reshape(batch + (1, 1, n // panel, k, panel)).expand(full)
      return xe.e(BinaryOps.MUL, we).r(ReduceOps.SUM, (b + 3,)).reshape(batch + (m, n))
    xe = x.reshape(batch + (m, 1, k)).expand(batch + (m, n, k))
    we = w.permute(tuple(range(len(batch))) + (len(batch) + 1, len(batch))).reshape(batch + (1, n, k)).expand(batch + (m, n, k))
    return xe.e(BinaryOps.MUL, we).r(ReduceOps.SUM, (len(batch) + 2,)).reshape(batch + (m, n))
  def backward(self, g):
    x, w = self.parents
    gw = None
    if self.needs_input_grad[1]:
      # w a transposed view (x @ W.T, a linear layer): its gradient is made in W's own layout, (g^T @ x)^T, so the
      # optimizer reads W's gradient contiguously instead of gathering it through the transpose
      if columns_are_strided(w.lazydata): gw = g.transpose(-1, -2).matmul(x).transpose(-1, -2)
      else: gw = x.transpose(-1, -2).matmul(g)
    return g.matmul(w.transpose(-1, -2)) if self.needs_input_grad[0] else None, gw

class Max(Function):
  def forward(self, x, axes):
    self.axes, self.ret = axes, x.r(ReduceOps.MAX, axes)
    return self.ret
  def backward(self, g):
    # the gradient is split evenly between tied maxima, as torch.amax does
    x = self.parents[0]
    is_max = (x == self.tensor_type._from_lazy(self.ret).expand(x.shape)).cast(g.dtype)
    count = is_max.sum(self.axes, keepdim=True)
    return (is_max / count) * g.expand(x.shape)


class Gather(Function):
  def forward(self, x, index, dim):
    self.dim, self.input_shape = dim, x.shape
    return x.gather(index, dim)
  def backward(self, g): return g._scatter_sum(self.input_shape, self.dim, self.parents[1]), None


class CustomGrad(Function):
  """A value computed by a composition of Tensor ops, with its gradient given by a formula (erf, say: its
  approximation's own derivative would be less exact than the true one). `value(*inputs)`; `grad(*inputs, g)` gives
  the gradient of each input (a tuple where there are several). `key` names what value computes, for a value that is
  elementwise math on its inputs alone (tanh, gelu): it is traced once per key and input shapes and dtypes, and made
  again from that trace (see _Trace), without its Tensor ops' Python (tanh's 30 ops took a third of the time an LSTM
  step's graph took to build)."""
  def forward(self, *xs, value, grad, key=None):
    self.grad_fn = grad
    if key is not None:
      trace_key = (key, *((x.shape, x.dtype.name, x.device) for x in xs))
      trace = _traces.get(trace_key, _MISSING)
      if trace is _MISSING:
        trace = _traces[trace_key] = _Trace.of(value, xs, self.tensor_type)
        while len(_traces) > TRACES_KEPT: _traces.pop(next(iter(_traces)))
      if trace is not None: return trace.make(xs)
    with no_grad(): return value(*[self.tensor_type._from_lazy(x) for x in xs]).lazydata
  def backward(self, g): return self.grad_fn(*self.parents, g)


TRACES_KEPT = 256  # traced values (see _Trace) kept, the oldest dropped first
_traces: dict = {}
_MISSING = object()


class _Trace:
  """The nodes an elementwise value makes from its inputs, in order: (op, dtype, arg, sources), a source being
  ("in", k) (the k-th input), ("node", j) (the j-th node) or ("const", value, dtype) (a broadcast constant).
  make(inputs) makes them again (as LazyBuffer.e does, shortcuts already taken) for new inputs of the same shapes and
  dtypes, through any view of theirs."""

  def __init__(self, nodes: list):
    self.nodes = nodes
    self.consts: dict = {}  # a constant (see _const) -> its broadcast node, made once (a trace is of one shape)

  @staticmethod
  def of(value, xs, tensor_type) -> _Trace | None:
    """value's trace on stand-ins for xs; None where it is not elementwise math on its inputs and constants alone (a
    reduction, a view of a node, another tensor it reads): such a value is computed by its Tensor ops every time."""
    from lazygrad.ops import LoadOps, ELEMENTWISE
    from lazygrad.shape import ShapeTracker
    stand_ins = [LazyBuffer(x.device, ShapeTracker.from_shape(x.shape), x.dtype, LoadOps.EMPTY) for x in xs]
    with no_grad(): out = value(*[tensor_type._from_lazy(p) for p in stand_ins]).lazydata
    inputs = {id(p): k for k, p in enumerate(stand_ins)}
    made: dict[int, int] = {}
    nodes: list = []

    def source(s: LazyBuffer):
      b = s.base
      if id(b) in inputs: return ("in", inputs[id(b)]) if s is b else None
      if b.realized is None and b.op is LoadOps.CONST:
        same = s.st == LazyBuffer.const(b.arg, b.dtype, b.device, s.shape).st
        return ("const", b.arg, b.dtype) if same else None
      return ("node", made[id(b)]) if s is b and id(b) in made else None

    order, seen, stack = [], set(), [(out, False)]  # the nodes below out, sources first
    while stack:
      node, done = stack.pop()
      if done: order.append(node); continue
      if id(node) in seen or id(node) in inputs: continue
      if node._base is not None or node.realized is not None or not isinstance(node.op, ELEMENTWISE): return None
      seen.add(id(node))
      stack.append((node, True))
      stack.extend((s.base, False) for s in node.srcs if s.base.op is not LoadOps.CONST or s.base.realized is not None)
    for node in order:
      if node.shape != out.shape: return None
      sources = [source(s) for s in node.srcs]
      if any(src is None for src in sources): return None
      made[id(node)] = len(nodes)
      nodes.append((node.op, node.dtype, node.arg, sources))
    return _Trace(nodes) if nodes and made.get(id(out)) == len(nodes) - 1 else None

  def make(self, xs) -> LazyBuffer:
    device, shape, made = xs[0].device, xs[0].shape, []
    for op, dtype, arg, sources in self.nodes:
      srcs = tuple(xs[s[1]] if s[0] == "in" else made[s[1]] if s[0] == "node" else self._const(s[1], s[2], device, shape)
                   for s in sources)
      made.append(LazyBuffer.new(device, shape, dtype, op, srcs, arg))
    return made[-1]

  def _const(self, value, dtype: DType, device: str, shape) -> LazyBuffer:
    """A constant's node is never changed in place (a realized one still holds its value): one per trace serves
    every graph made from it."""
    key = (type(value), repr(value), dtype, device)  # repr: -0.0 is not 0.0 here
    c = self.consts.get(key)
    if c is None: c = self.consts[key] = LazyBuffer.const(value, dtype, device, shape)
    return c


# ---- movement

class Reshape(Function):
  def forward(self, x, shape):
    self.input_shape = x.shape
    return x.reshape(shape)
  def backward(self, g): return g.reshape(self.input_shape)

class Permute(Function):
  def forward(self, x, order):
    self.order = order
    return x.permute(order)
  def backward(self, g):
    inverse = [0] * len(self.order)
    for i, o in enumerate(self.order): inverse[o] = i
    return g.permute(inverse)

class Expand(Function):
  def forward(self, x, shape):
    self.input_shape = x.shape
    return x.expand(shape)
  def backward(self, g):
    axes = tuple(i for i, (a, b) in enumerate(zip(self.input_shape, g.shape)) if a != b)
    return g.sum(axes, keepdim=True) if axes else g

class Broadcast(Function):
  """New leading dims and size-1 dims stretched to `shape` (an operand's broadcast): a reshape and an expand as one
  node of the graph, the gradient summed back over what was stretched."""
  def forward(self, x, shape):
    self.input_shape = x.shape
    return x.reshape((1,) * (len(shape) - len(x.shape)) + x.shape).expand(shape)
  def backward(self, g):
    stretched = (1,) * (g.ndim - len(self.input_shape)) + self.input_shape
    axes = tuple(i for i, (a, b) in enumerate(zip(stretched, g.shape)) if a != b)
    return (g.sum(axes, keepdim=True) if axes else g).reshape(self.input_shape)

class Pad(Function):
  def forward(self, x, padding):
    self.bounds = tuple((b, b + s) for (b, _), s in zip(padding, x.shape))
    return x.pad(padding)
  def backward(self, g): return g._shrink(self.bounds)

class Shrink(Function):
  def forward(self, x, bounds):
    self.padding = tuple((b, s - e) for (b, e), s in zip(bounds, x.shape))
    return x.shrink(bounds)
  def backward(self, g):
    out = g._pad(self.padding)
    out._padded = (g, self.padding)  # slices' gradients summed into one tensor become a cat (see Tensor.backward)
    return out

class Cat(Function):
  def forward(self, *xs, axis):
    self.axis, self.sizes = axis, [x.shape[axis] for x in xs]
    return type(xs[0]).cat(list(xs), axis)
  def backward(self, g):
    bounds, start = [], 0
    for n in self.sizes:
      bounds.append(tuple((start, start + n) if d == self.axis else (0, s) for d, s in enumerate(g.shape)))
      start += n
    return tuple(g._shrink(b) for b in bounds)

class Flip(Function):
  def forward(self, x, axes):
    self.axes = axes
    return x.flip(axes)
  def backward(self, g): return g.flip(self.axes)

class Contiguous(Function):
  def forward(self, x, force=False): return x.contiguous(force)
  def backward(self, g): return g

class Stored(Function):
  """x in a buffer of its own, and its gradient too: a kernel boundary both ways. A recurrence of elementwise steps
  (ctc_loss's) inlined into one kernel would recompute every earlier step several times over, forward and back."""
  def forward(self, x): return x.contiguous(True)
  def backward(self, g): return Stored.apply(g)
