"""Tensor: the user API. Creation, math, reductions, movement, indexing and `backward`, all composed from the
primitive Functions in function.py. Nothing runs until a result is needed (`.numpy()`, `.item()`, `.realize()`).
"""
from __future__ import annotations
import collections
import functools
import math
from typing import Iterable, Sequence
import numpy as np
from lazygrad import function as F
from lazygrad.function import grad_enabled, no_grad, enable_grad, columns_are_strided
from lazygrad import device as devices
from lazygrad.dtype import (DType, to_dtype, result_type, default_float, default_int, bool_, float16, float32, float64,
                            int32, int64, uint8, promote_types, complex64)
from lazygrad.helpers import argsort, gc_paused, normalize_dim, prod
from lazygrad.lazy import LazyBuffer, realize as realize_lazy, this_thread


class ShapeError(ValueError, RuntimeError):
  """Shapes that do not fit together. A ValueError, and a RuntimeError as PyTorch raises for the same mistakes."""


# ---- random numbers: generated on the host from one seeded generator, as torch's CPU generator does

_rng = None  # made on first use: numpy.random takes 10 ms to import, a tenth of a first call's budget


def manual_seed(seed: int):
  global _rng
  _rng = np.random.default_rng(seed)


def _generator() -> np.random.Generator:
  """The generator every random op draws from (manual_seed replaces it)."""
  global _rng
  if _rng is None: _rng = np.random.default_rng()
  return _rng


def _shape_arg(shape) -> tuple[int, ...]:
  if len(shape) == 1 and isinstance(shape[0], (tuple, list)): shape = tuple(shape[0])
  out = []
  for s in shape:
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
      raise TypeError(f"a shape takes ints, got {tuple(shape)!r}")
    if s < 0: raise ValueError(f"negative dimension in shape {tuple(shape)}")
    out.append(int(s))
  return tuple(out)


def broadcast_shape(*shapes, op: str = "broadcast") -> tuple[int, ...]:
  ndim = max(len(s) for s in shapes)
  padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
  out = []
  for d, sizes in enumerate(zip(*padded)):
    big = {s for s in sizes if s != 1}
    if len(big) > 1:
      raise ShapeError(f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast "
                       f"(dimension {d - ndim}: {' vs '.join(str(s) for s in sizes)})")
    out.append(big.pop() if big else 1)
  return tuple(out)


def _same_device(op: str, a: Tensor, b: Tensor) -> None:
  """A ValueError naming the op and both devices, where two tensors an op combines live on different devices."""
  if a.device != b.device: raise ValueError(f"{op}: tensors are on different devices: {a.device} and {b.device}")


def _is_number(x) -> bool: return isinstance(x, (bool, int, float, np.number)) and not isinstance(x, np.ndarray)


def _complex_operand(x) -> bool:
  """Whether a real tensor's binary op meets a complex operand (the op is then the complex tensor's)."""
  if isinstance(x, Tensor): return x.__class__ is ComplexTensor
  if isinstance(x, (int, float)): return False  # the common cases first: this is on every binary op's path
  return isinstance(x, (complex, np.complexfloating)) or (isinstance(x, np.ndarray) and x.dtype.kind == "c")


def _is_complex_data(data) -> bool:
  """Whether Tensor(data) is complex64 (a complex number or array, or a list of them)."""
  if isinstance(data, (complex, np.complexfloating)): return True
  if isinstance(data, np.ndarray): return data.dtype.kind == "c"
  if isinstance(data, Tensor): return data.is_complex()
  if isinstance(data, (list, tuple)) and data:
    try: return np.asarray(data).dtype.kind == "c"
    except (TypeError, ValueError): return False
  return False


# tanh(x) = x + x^3 * P(x^2) for |x| <= 0.625: P's coefficients, lowest first (a weighted least-squares fit on
# Chebyshev nodes to tanh's relative error, 2.5e-9 in exact arithmetic, 0.8 ulp evaluated in float32)
_TANH_FIT = (-0.3333333134651184, 0.13333211839199066, -0.05394745245575905, 0.021703999489545822,
             -0.008184658363461494, 0.002148980740457773)

class Tensor:
  __array_priority__ = 1000  # numpy array (op) Tensor defers to Tensor's reflected op

  def __new__(cls, data=None, dtype=None, device=None, requires_grad: bool = False):
    # complex data or dtype: a ComplexTensor (lazygrad/complex.py), a float32 pair under the complex API
    if cls is Tensor and ((dtype is not None and to_dtype(dtype) is complex64) or _is_complex_data(data)):
      return object.__new__(ComplexTensor)
    return object.__new__(cls)

  def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
    dtype = None if dtype is None else to_dtype(dtype)
    device = devices.canonical(device)
    if isinstance(data, LazyBuffer):
      lb = data
    else:
      if isinstance(data, Tensor): data = data.numpy()
      if isinstance(data, np.ndarray): arr = data
      else:
        arr = np.asarray(data)
        if arr.dtype == object: raise TypeError(f"cannot make a tensor of {type(data).__name__} {data!r}")
        if dtype is None:  # Python data takes torch's defaults
          if arr.dtype.kind == "f": arr = arr.astype(np.float32)
          elif arr.dtype.kind in "iu": arr = arr.astype(np.int64)
      if arr.dtype.kind not in "biuf": raise TypeError(f"cannot make a tensor from a NumPy array of dtype {arr.dtype}")
      if dtype is not None and np.dtype(dtype.np) != arr.dtype: arr = arr.astype(dtype.np)
      lb = LazyBuffer.from_numpy(np.ascontiguousarray(arr).reshape(arr.shape), device)
    self.lazydata: LazyBuffer = lb
    self.requires_grad: bool = bool(requires_grad)
    self.grad: Tensor | None = None
    self._ctx: F.Function | None = None
    if requires_grad and not (self.dtype.is_float):
      raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.dtype.name}")

  @staticmethod
  def _from_lazy(lb: LazyBuffer, cls: type | None = None, requires_grad: bool = False) -> Tensor:
    """A leaf tensor (of class `cls`, Tensor by default) over a LazyBuffer."""
    t = object.__new__(cls or Tensor)
    t.lazydata, t.requires_grad, t.grad, t._ctx = lb, requires_grad, None, None
    return t

  # ---- properties

  @property
  def shape(self) -> tuple[int, ...]: return self.lazydata.shape
  @property
  def dtype(self) -> DType: return self.lazydata.dtype
  @property
  def device(self) -> str: return self.lazydata.device
  @property
  def ndim(self) -> int: return len(self.shape)
  def dim(self) -> int: return self.ndim
  def numel(self) -> int: return prod(self.shape)
  def size(self, dim=None):
    return self.shape if dim is None else self.shape[normalize_dim(dim, self.ndim, "size")]
  def element_size(self) -> int: return self.dtype.itemsize
  @property
  def is_leaf(self) -> bool: return self._ctx is None
  @property
  def T(self) -> Tensor:
    if self.ndim > 2: raise ShapeError(f"T: expected a tensor of at most 2 dimensions, got shape {self.shape}")
    return self.permute(*reversed(range(self.ndim)))
  @property
  def mT(self) -> Tensor: return self.transpose(-2, -1)
  def t(self) -> Tensor:
    if self.ndim > 2: raise ShapeError(f"t: expected a tensor of at most 2 dimensions, got shape {self.shape}")
    return self.T

  def __len__(self):
    if self.ndim == 0: raise TypeError("len() of a 0-d tensor")
    return self.shape[0]

  def __repr__(self):
    grad = ", requires_grad=True" if self.requires_grad else ""
    return f"tensor({np.array2string(self.numpy(), separator=', ', prefix='tensor(')}, dtype={self.dtype.name}, device='{self.device}'{grad})"

  def __bool__(self): return bool(self.item())
  def __int__(self): return int(self.item())
  def __float__(self): return float(self.item())
  def __index__(self):
    if self.dtype.is_float: raise TypeError("only integer tensors can be used as an index")
    return int(self.item())
  __hash__ = object.__hash__

  # ---- evaluation

  def realize(self) -> Tensor:
    self.lazydata.realize()
    return self

  def numpy(self) -> np.ndarray: return self.lazydata.numpy()

  def item(self):
    if self.numel() != 1: raise ShapeError(f"item: a Tensor with {self.numel()} elements (shape {self.shape}) cannot be converted to a Python number")
    return self.numpy().reshape(-1)[0].item()

  def tolist(self): return self.numpy().tolist()

  def detach(self) -> Tensor: return Tensor._from_lazy(self.lazydata)

  def clone(self) -> Tensor: return F.Contiguous.apply(self, force=True)

  def __deepcopy__(self, memo) -> Tensor:
    """copy.deepcopy: a leaf's own copy (a lazy device-side clone) with its requires_grad and grad, of its class
    (a Parameter stays a Parameter), as in torch."""
    if not self.is_leaf:
      raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol; "
                         "deepcopy a .detach()ed tensor instead")
    out = Tensor._from_lazy(self.detach().clone().lazydata, type(self), self.requires_grad)
    out.grad = None if self.grad is None else self.grad.detach().clone()
    memo[id(self)] = out
    return out

  def __reduce__(self):
    """pickle: the values (copied to the host), dtype, device and requires_grad; a Parameter stays a Parameter."""
    if not self.is_leaf: raise RuntimeError("pickle: only leaf tensors can be pickled; pickle a .detach()ed tensor instead")
    return (_unpickle_tensor, (type(self), self.numpy(), self.device, self.requires_grad))

  def contiguous(self) -> Tensor: return F.Contiguous.apply(self)

  def requires_grad_(self, requires_grad: bool = True) -> Tensor:
    if requires_grad and not self.dtype.is_float:
      raise RuntimeError(f"only floating point tensors can require gradients, got dtype {self.dtype.name}")
    self.requires_grad = requires_grad
    return self

  def assign(self, other) -> Tensor:
    """Replace this tensor's data in place (same shape and dtype); what optimizers use to update parameters."""
    other = other if isinstance(other, Tensor) else Tensor(other, dtype=self.dtype, device=self.device)
    _same_device("assign", self, other)
    if other.shape != self.shape: raise ShapeError(f"assign: shape {other.shape} does not match {self.shape}")
    if other.dtype is not self.dtype: other = other.cast(self.dtype)
    hook = this_thread.assign_hook  # set while lazygrad.jit records a call: it learns which tensors a step updates
    if hook is not None: hook(self)
    self.lazydata = other.lazydata
    return self

  def _overwrite(self, values: np.ndarray) -> None:
    """Write host values into this realized tensor's own buffer in place (what optimizers use for hyperparameters:
    the kernels that read the buffer, replayed ones included, see the new values)."""
    self.realize()
    self.lazydata.overwrite(np.asarray(values).reshape(self.shape))

  def zero_(self) -> Tensor: return self._inplace("zero_", self.zeros_like())
  def fill_(self, value) -> Tensor: return self._inplace("fill_", self.full_like(value))
  def copy_(self, src) -> Tensor:
    src = Tensor._wrap_tensor(src, self)
    if src.device != self.device: src = src.to(self.device)
    return self._inplace("copy_", src.cast(self.dtype).expand(self.shape))

  def _inplace(self, name: str, value: Tensor) -> Tensor:
    """`name` (add_, mul_, ...) done in place: this tensor takes `value`, checked as torch checks it. A tensor in an
    autograd graph is refused: the graph keeps this very object as an input, and would read the new value."""
    if self.requires_grad and grad_enabled():
      raise RuntimeError(f"{name}: a tensor that requires grad cannot be changed in place while gradients are recorded "
                         f"(torch refuses it for a leaf too); do it under lazygrad.no_grad(), or write "
                         f"x = x.{name.rstrip('_')}(...)")
    if value.shape != self.shape:
      raise ShapeError(f"{name}: the result's shape {value.shape} does not match the tensor's {self.shape}: an "
                       f"in-place op cannot broadcast its tensor")
    kinds = "biuf"  # bool, then ints, then floats: a result of a later kind has values this tensor cannot hold
    if kinds.index(value.dtype.kind) > kinds.index(self.dtype.kind) and not (value.dtype.is_int and self.dtype.is_int):
      raise RuntimeError(f"{name}: result type {value.dtype.name} can't be cast to the tensor's dtype {self.dtype.name}")
    this_thread.realize_next[id(self)] = self
    return self.assign(value)

  # ---- dtype and device

  def cast(self, dtype) -> Tensor:
    dtype = to_dtype(dtype)
    if dtype is self.dtype: return self
    if dtype is complex64: return ComplexTensor._wrap(stack([self.float(), self.float().zeros_like()], -1))
    return F.Cast.apply(self, dtype=dtype)

  def to(self, *args, dtype=None, device=None) -> Tensor:
    for a in args:
      if isinstance(a, str) and a.split(":")[0].upper() in devices.BACKENDS + ("CPU", "GPU", "CUDA"): device = a
      else: dtype = a
    out = self
    if device is not None and devices.existing(device) != self.device:
      out = Tensor(self.detach().numpy(), device=device, requires_grad=self.requires_grad)
    return out.cast(dtype) if dtype is not None else out

  def float(self): return self.cast(float32)
  def half(self): return self.cast(float16)
  def double(self): return self.cast(float64)
  def int(self): return self.cast(int32)
  def long(self): return self.cast(int64)
  def bool(self): return self.cast(bool_)
  def type_as(self, other: Tensor): return self.cast(other.dtype)
  def type(self, dtype=None):
    """With a dtype, a cast to it; without, the dtype's name (torch names a tensor class instead)."""
    return self.dtype.name if dtype is None else self.cast(dtype)
  def is_floating_point(self) -> bool: return self.dtype.is_float
  def is_complex(self) -> bool: return False
  def isreal(self) -> Tensor: return self.ones_like(bool_)
  def cfloat(self) -> Tensor: return self.cast(complex64)
  # a real tensor's complex parts, as torch's: itself, and no imaginary part
  @property
  def real(self) -> Tensor: return self
  @property
  def imag(self) -> Tensor: raise TypeError(f"imag is not implemented for tensors with non-complex dtypes ({self.dtype.name})")
  def conj(self) -> Tensor: return self
  def conj_physical(self) -> Tensor: return self
  def resolve_conj(self) -> Tensor: return self
  def resolve_neg(self) -> Tensor: return self
  def angle(self) -> Tensor:
    """torch.angle of a real tensor: pi where it is negative, 0 elsewhere, nan where nan (gradient 0)."""
    return self._custom_grad(lambda x: (x == x).where((x < 0).where(math.pi, 0.0), math.nan), lambda x, g: g.zeros_like())

  # ---- creation

  @staticmethod
  def _const(value, dtype: DType, device: str, shape=()) -> Tensor:
    return Tensor._from_lazy(LazyBuffer.const(value, dtype, device, shape))

  @staticmethod
  def full(shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if not _is_number(fill_value) and not isinstance(fill_value, complex):
      raise TypeError(f"full: fill_value must be a number, got {fill_value!r}")
    dtype = to_dtype(dtype) if dtype is not None else (
      bool_ if isinstance(fill_value, (bool, np.bool_)) else default_int if isinstance(fill_value, (int, np.integer)) else
      complex64 if isinstance(fill_value, (complex, np.complexfloating)) else default_float)
    if dtype is complex64:
      parts = [Tensor.full(shape, float(v), dtype=float32, device=device) for v in (complex(fill_value).real, complex(fill_value).imag)]
      return ComplexTensor._wrap(stack(parts, -1)).requires_grad_(requires_grad)
    if isinstance(fill_value, (complex, np.complexfloating)):
      raise TypeError(f"full: a {dtype.name} tensor cannot hold the complex fill_value {fill_value!r}; pass dtype=lazygrad.complex64")
    t = Tensor._const(fill_value, dtype, devices.existing(device), _shape_arg((shape,) if isinstance(shape, int) else tuple(shape)))
    return t.requires_grad_(requires_grad) if requires_grad else t

  @staticmethod
  def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return Tensor.full(_shape_arg(shape), 0.0, dtype=dtype or default_float, device=device, requires_grad=requires_grad)

  @staticmethod
  def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return Tensor.full(_shape_arg(shape), 1.0, dtype=dtype or default_float, device=device, requires_grad=requires_grad)

  @staticmethod
  def empty(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is not None and to_dtype(dtype) is complex64: return Tensor.zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)
    t = Tensor._from_lazy(LazyBuffer.empty(_shape_arg(shape), to_dtype(dtype or default_float), devices.existing(device)))
    return t.requires_grad_(requires_grad) if requires_grad else t

  @staticmethod
  def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None: start, end = 0, start
    if step == 0: raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
      raise RuntimeError(f"arange: upper bound and lower bound inconsistent with step sign (start {start}, end {end}, step {step})")
    integers = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = to_dtype(dtype if dtype is not None else default_int if integers else default_float)
    if integers and not dtype.is_float:
      # integers exactly, as torch does: float64 steps lose them beyond 2**53
      start, end, step = int(start), int(end), int(step)
      values = start + np.arange(max(0, -((start - end) // step)), dtype=np.int64) * step
    else:
      values = start + np.arange(max(0, math.ceil((end - start) / step)), dtype=np.float64) * step
    return Tensor(values.astype(dtype.np), device=device, requires_grad=requires_grad)

  @staticmethod
  def linspace(start, end, steps: int, dtype=None, device=None, requires_grad=False) -> Tensor:
    if steps < 0: raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    dtype = to_dtype(dtype or default_float)
    # torch's tensor overload: 0-d tensors for the ends, whose values it reads as numbers too
    start, end = (v.item() if isinstance(v, Tensor) else v for v in (start, end))
    return Tensor(np.linspace(start, end, steps, dtype=np.float64).astype(dtype.np), device=device, requires_grad=requires_grad)

  @staticmethod
  def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad=False) -> Tensor:
    m = n if m is None else m
    dtype = to_dtype(dtype or default_float)
    if dtype is complex64: return Tensor.eye(n, m, device=device).cast(complex64).requires_grad_(requires_grad)
    # ones on a diagonal as a view: a (n, 1) column of [1, 0 .. 0] rows, reshaped so each row starts one place later
    # (the square of the larger size, cut to n x m: rows of a wide one wrap onto the next row past n > m + 1)
    s = max(n, m)
    row = Tensor._const(1, dtype, devices.existing(device), (1,))._pad(((0, s),))  # [1, 0, ..., 0] of length s+1
    t = row.expand(s, s + 1).reshape(s * (s + 1))._shrink(((0, s * s),)).reshape(s, s)._shrink(((0, n), (0, m))) if n and m else Tensor.zeros(n, m, dtype=dtype, device=device)
    return t.contiguous().requires_grad_(requires_grad) if requires_grad else t

  @staticmethod
  def rand(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = to_dtype(dtype or default_float)
    if dtype is complex64:  # torch's: the real and imaginary parts each uniform on [0, 1)
      return Tensor(_generator().random(_shape_arg(shape) + (2,), dtype=np.float32).view(np.complex64)[..., 0], device=device,
                    requires_grad=requires_grad)
    return Tensor(_generator().random(_shape_arg(shape), dtype=np.float32).astype(dtype.np), device=device, requires_grad=requires_grad)

  @staticmethod
  def randn(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    dtype = to_dtype(dtype or default_float)
    if dtype is complex64:  # torch's: variance 1 in all, half of it in each part
      parts = _generator().standard_normal(_shape_arg(shape) + (2,), dtype=np.float32) * np.float32(math.sqrt(0.5))
      return Tensor(parts.view(np.complex64)[..., 0], device=device, requires_grad=requires_grad)
    return Tensor(_generator().standard_normal(_shape_arg(shape), dtype=np.float32).astype(dtype.np), device=device, requires_grad=requires_grad)

  @staticmethod
  def randint(low, high=None, size=None, dtype=None, device=None) -> Tensor:
    if isinstance(high, (tuple, list)) and size is None: low, high, size = 0, low, high  # randint(high, size)
    if high is None: low, high = 0, low
    if size is None: raise TypeError("randint: size is required, e.g. randint(0, 10, (3, 4))")
    if high <= low: raise ValueError(f"randint: empty range [{low}, {high})")
    dtype = to_dtype(dtype or default_int)
    return Tensor(_generator().integers(low, high, _shape_arg(size if isinstance(size, (tuple, list)) else (size,))).astype(dtype.np), device=device)

  @staticmethod
  def randperm(n: int, dtype=None, device=None) -> Tensor:
    return Tensor(_generator().permutation(n).astype(to_dtype(dtype or default_int).np), device=device)

  def full_like(self, value, dtype=None) -> Tensor: return Tensor.full(self.shape, value, dtype=dtype or self.dtype, device=self.device)
  # new_*: a new tensor of the given size, with this one's dtype and device unless told otherwise
  def new_full(self, size, value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return Tensor.full(_shape_arg(size), value, dtype=dtype or self.dtype, device=device or self.device).requires_grad_(requires_grad)
  def new_zeros(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return self.new_full(size, 0, dtype, device, requires_grad)
  def new_ones(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return self.new_full(size, 1, dtype, device, requires_grad)
  def new_empty(self, *size, dtype=None, device=None, requires_grad=False) -> Tensor:
    return Tensor.empty(*_shape_arg(size), dtype=dtype or self.dtype, device=device or self.device).requires_grad_(requires_grad)
  def new_tensor(self, data, dtype=None, device=None, requires_grad=False) -> Tensor:
    return Tensor(data, dtype=dtype or self.dtype, device=device or self.device, requires_grad=requires_grad)
  def zeros_like(self, dtype=None) -> Tensor: return self.full_like(0, dtype)
  def ones_like(self, dtype=None) -> Tensor: return self.full_like(1, dtype)
  def empty_like(self, dtype=None) -> Tensor: return Tensor.empty(*self.shape, dtype=dtype or self.dtype, device=self.device)
  def rand_like(self, dtype=None) -> Tensor: return Tensor.rand(*self.shape, dtype=dtype or self.dtype, device=self.device)
  def randn_like(self, dtype=None) -> Tensor: return Tensor.randn(*self.shape, dtype=dtype or self.dtype, device=self.device)

  # ---- autograd

  def _toposort(self) -> list[Tensor]:
    order, seen, stack = [], set(), [(self, False)]
    while stack:
      t, done = stack.pop()
      if done: order.append(t); continue
      if id(t) in seen: continue
      seen.add(id(t))
      if t._ctx is None: continue
      if not hasattr(t._ctx, "parents"):
        raise RuntimeError("trying to backward through the graph a second time; pass retain_graph=True the first time")
      stack.append((t, True))
      stack.extend((p, False) for p in t._ctx.parents if p.requires_grad and id(p) not in seen)
    return order

  def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None, create_graph: bool = False):
    if retain_graph is None: retain_graph = create_graph  # as in torch: a graph of gradients needs the graph kept
    if not self.requires_grad:
      raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
      if self.numel() != 1:
        raise RuntimeError(f"grad can be implicitly created only for scalar outputs; this output has shape {self.shape}: "
                           f"pass a gradient of that shape to backward()")
      gradient = Tensor._const(1.0, self.dtype, self.device, self.shape)
    elif not isinstance(gradient, Tensor): gradient = Tensor(gradient, dtype=self.dtype, device=self.device)
    if gradient.shape != self.shape:
      raise ShapeError(f"backward: gradient shape {gradient.shape} does not match output shape {self.shape}")
    if self._ctx is None:  # a leaf: its gradient is the one given
      g = gradient.cast(self.dtype).detach() if not create_graph else gradient.cast(self.dtype)
      self.grad = g if self.grad is None else self.grad + g
      self._run_post_accumulate_grad_hooks()
      return None
    grads: dict[int, list[Tensor]] = {id(self): [gradient]}  # each tensor's gradients, summed when it is reached
    leaves: dict[int, tuple[Tensor, list[Tensor]]] = {}
    with F._GradMode(create_graph), gc_paused():
      for t in reversed(self._toposort()):
        g = grads.pop(id(t), None)
        if g is None or t._ctx is None: continue
        g = _sum_gradients(g)
        ctx = t._ctx
        if not hasattr(ctx, "parents"):
          raise RuntimeError("trying to backward through the graph a second time; pass retain_graph=True the first time")
        new = ctx.backward(g)
        new = new if isinstance(new, tuple) else (new,)
        for p, pg in zip(ctx.parents, new):
          if pg is None or not p.requires_grad: continue
          if pg.shape != p.shape: raise RuntimeError(f"internal: gradient shape {pg.shape} != {p.shape} in {type(ctx).__name__}")
          if pg.dtype is not p.dtype: pg = pg.cast(p.dtype)
          if p._ctx is None: leaves.setdefault(id(p), (p, []))[1].append(pg)  # accumulated into .grad at the end
          else: grads.setdefault(id(p), []).append(pg)
        if not retain_graph: del ctx.parents
      for p, pgs in leaves.values():
        pg = _sum_gradients(pgs) if create_graph else _sum_gradients(pgs).detach()
        p.grad = pg if p.grad is None else (p.grad + pg if create_graph else (p.grad.detach() + pg).detach())
        p._run_post_accumulate_grad_hooks()
    if self.lazydata.base.realized is None: this_thread.realize_next[id(self)] = self  # read after the step: see ThreadState
    return None

  def register_post_accumulate_grad_hook(self, hook) -> _RemovableHandle:
    """torch's: `hook(tensor)` runs each time backward has accumulated this leaf's `.grad` (still lazy: the hook may
    realize it, or replace it). DistributedDataParallel starts its all-reduces from here. Returns a handle whose
    `remove()` takes the hook off."""
    if not self.is_leaf: raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors have an accumulated .grad")
    if not self.requires_grad:
      raise RuntimeError("register_post_accumulate_grad_hook: the tensor does not require grad, so no gradient will reach it")
    hooks = self.__dict__.setdefault("_post_accumulate_grad_hooks", {})
    return _RemovableHandle(hooks, hook)

  def _run_post_accumulate_grad_hooks(self) -> None:
    for hook in list(self.__dict__.get("_post_accumulate_grad_hooks", {}).values()): hook(self)

  # ---- broadcasting and binary ops

  def _operand(self, other, op: str):
    if isinstance(other, Tensor):
      _same_device(op, self, other)
      return other
    if _is_number(other): return other.item() if isinstance(other, np.generic) else other
    if isinstance(other, (list, tuple, np.ndarray)): return Tensor(other, device=self.device)
    raise TypeError(f"{op}: unsupported operand type {type(other).__name__}")

  def _broadcasted(self, other, op: str, reverse: bool = False, dtype: DType | None = None) -> tuple[Tensor, Tensor]:
    other = self._operand(other, op)
    out_dtype = dtype or result_type(self, other)
    # a Python number is made a constant of self's shape directly: no graph node to broadcast it (x * 2.0: 31.5 ->
    # 27 us), and no gradient to carry back
    if not isinstance(other, Tensor): other = Tensor._const(other, out_dtype, self.device, self.shape)
    x, y = self.cast(out_dtype), other.cast(out_dtype)
    if x.shape != y.shape:
      shape = broadcast_shape(x.shape, y.shape, op=op)
      x, y = x._broadcast_to(shape), y._broadcast_to(shape)
    return (y, x) if reverse else (x, y)

  def _broadcast_to(self, shape) -> Tensor:
    """To a shape that broadcast_shape checked: one graph node (see F.Broadcast), not a reshape and an expand."""
    shape = tuple(shape)
    return self if self.shape == shape else F.Broadcast.apply(self, shape=shape)

  def add(self, other, alpha=1, reverse=False):
    if alpha != 1: other = other * alpha
    if _complex_operand(other): return Tensor._wrap_tensor(other, self).add(self)
    return F.Add.apply(*self._broadcasted(other, "add", reverse))
  def sub(self, other, alpha=1, reverse=False):
    if alpha != 1: other = other * alpha
    if _complex_operand(other): return Tensor._wrap_tensor(other, self).sub(self, reverse=not reverse)
    x, y = self._broadcasted(other, "sub", reverse)
    if x.dtype is bool_: raise TypeError("sub: subtraction of bool tensors is not supported; use logical_xor or ~")
    return F.Sub.apply(x, y)
  def mul(self, other, reverse=False):
    if _complex_operand(other): return Tensor._wrap_tensor(other, self).mul(self)
    return F.Mul.apply(*self._broadcasted(other, "mul", reverse))
  def div(self, other, reverse=False, rounding_mode=None):
    if rounding_mode == "floor": return self.floor_divide(other) if not reverse else Tensor._wrap(other, self).floor_divide(self)
    if rounding_mode == "trunc":
      x, y = self._broadcasted(other, "div", reverse)
      return F.IDiv.apply(x, y) if not x.dtype.is_float else F.Div.apply(x, y).trunc()
    if rounding_mode is not None: raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")
    if _complex_operand(other): return Tensor._wrap_tensor(other, self).div(self, reverse=not reverse)
    return F.Div.apply(*self._float_broadcasted(other, "div", reverse))

  def _float_broadcasted(self, other, op: str, reverse: bool = False) -> tuple[Tensor, Tensor]:
    """_broadcasted, in the promoted dtype if it is a float, else the default float (true division, atan2, ...)."""
    dtype = result_type(self, self._operand(other, op))
    return self._broadcasted(other, op, reverse, dtype=dtype if dtype.is_float else default_float)

  @staticmethod
  def _wrap(value, like: Tensor) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor._const(value, result_type(like, value), like.device)

  def floor_divide(self, other, reverse=False) -> Tensor:
    x, y = self._broadcasted(other, "floor_divide", reverse)
    if x.dtype.is_float:  # as torch computes it (Python's float //): from the exact remainder, not a rounded quotient
      mod = F.Mod.apply(x, y)
      div = (x - mod) / y
      div = ((mod != 0) & ((y < 0) != (mod < 0))).where(div - 1, div)
      floor = div.floor()
      floor = (div - floor > 0.5).where(floor + 1, floor)
      quotient = x / y
      return (y == 0).where(quotient, (div == 0).where(quotient * 0, floor))  # a zero with the quotient's sign
    q = F.IDiv.apply(x, y)
    # C truncates toward zero; floor differs when the remainder is non-zero and the signs differ
    r = F.Mod.apply(x, y)
    fix = (r != 0) & ((r < 0) != (y < 0))
    return q - fix.cast(q.dtype)

  def remainder(self, other, reverse=False) -> Tensor:
    """Python's %, with the sign of the divisor."""
    x, y = self._broadcasted(other, "remainder", reverse)
    r = F.Mod.apply(x, y)
    return (((r != 0) & ((r < 0) != (y < 0)))).where(r + y, r)

  def fmod(self, other) -> Tensor:
    """C's fmod, with the sign of the dividend."""
    return F.Mod.apply(*self._broadcasted(other, "fmod"))

  def pow(self, exponent, reverse=False) -> Tensor:
    if reverse:  # scalar ** tensor
      base = self._operand(exponent, "pow")
      if not isinstance(base, Tensor): base = Tensor._const(base, result_type(self, base), self.device)
      return base.pow(self)
    if _is_number(exponent) and not isinstance(exponent, bool):
      e = exponent
      if e == 0: return self.ones_like(dtype=result_type(self, e))
      if float(e) == int(e) and abs(int(e)) <= 16:  # exact by repeated multiplication, negative bases included
        n, acc, base = abs(int(e)), None, self
        while n:
          if n & 1: acc = base if acc is None else acc * base
          n >>= 1
          if n: base = base * base
        if e < 0:
          if not self.dtype.is_float: raise RuntimeError("pow: integers to negative integer powers are not allowed")
          return acc.reciprocal()
        return acc if acc.dtype is result_type(self, e) else acc.cast(result_type(self, e))
      if e == 0.5: return self.sqrt() if self.dtype.is_float else self.float().sqrt()
    x, y = self._broadcasted(exponent, "pow")
    if not x.dtype.is_float:
      return (x.float().pow(y.float())).round().cast(x.dtype)
    mag = (y * x.abs().log2()).exp2()
    # a negative base has a real power only for integer exponents: the sign is that of (-1)**y
    y_int = y == y.trunc()
    odd = (y.remainder(2) == 1)
    neg = x < 0
    signed = (neg & odd).where(-mag, mag)
    nan = Tensor._const(math.nan, x.dtype, x.device, x.shape)
    # x ** 0 and 1 ** y are 1, NaN or not (C's pow and torch's); exp2(0 * log2(0)) would be NaN
    return ((y == 0) | (x == 1)).where(1.0, (neg & ~y_int).where(nan, signed))

  def maximum(self, other) -> Tensor:
    x, y = self._broadcasted(other, "maximum")
    return F.Maximum.apply(x, y)
  def minimum(self, other) -> Tensor:
    x, y = self._broadcasted(other, "minimum")
    if x.dtype is bool_: return x & y
    return -F.Maximum.apply(-x, -y)

  # comparisons: results are bool, never differentiable
  def _cmp(self, other, op, reverse=False):
    x, y = self._broadcasted(other, op, reverse)
    return x, y
  def __lt__(self, other): return F.Less.apply(*self._cmp(other, "lt"))
  def __gt__(self, other): return F.Less.apply(*self._cmp(other, "gt", reverse=True))
  def __le__(self, other): return Tensor._at_most(*self._cmp(other, "le"))
  def __ge__(self, other): return Tensor._at_most(*self._cmp(other, "ge", reverse=True))

  @staticmethod
  def _at_most(x: Tensor, y: Tensor) -> Tensor:
    """x <= y. For floats (x < y) | (x == y): not (y < x) would be true where either is NaN (torch: false)."""
    if not x.dtype.is_float: return F.Not.apply(F.Less.apply(y, x))
    return F.Less.apply(x, y) | F.Equal.apply(x, y)
  def __eq__(self, other): return F.Equal.apply(*self._cmp(other, "eq"))
  def __ne__(self, other): return F.Not.apply(F.Equal.apply(*self._cmp(other, "ne")))
  def lt(self, o): return self < o
  def gt(self, o): return self > o
  def le(self, o): return self <= o
  def ge(self, o): return self >= o
  def eq(self, o): return self == o
  def ne(self, o): return self != o
  def equal(self, other: Tensor) -> bool: return self.shape == other.shape and bool((self == other).all().item())
  def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    """|self - other| <= atol + rtol * |other| elementwise; equal values (infinities too) are close, NaNs only with
    equal_nan."""
    other = Tensor._wrap_tensor(other, self)
    near = ((self - other).abs() <= atol + rtol * other.abs()) & ~(self.isinf() | other.isinf())  # inf: only if equal
    close = (self == other) | near
    return close | (self.isnan() & other.isnan()) if equal_nan else close
  def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

  def _bitwise(self, other, fn, op):
    x, y = self._broadcasted(other, op)
    if x.dtype.is_float: raise TypeError(f"{op}: not supported for floating point tensors (got {x.dtype.name})")
    return fn.apply(x, y)
  def bitwise_and(self, other): return self._bitwise(other, F.BitAnd, "bitwise_and")
  def bitwise_or(self, other): return self._bitwise(other, F.BitOr, "bitwise_or")
  def bitwise_xor(self, other): return self._bitwise(other, F.BitXor, "bitwise_xor")
  def bitwise_left_shift(self, other): return self._shift(other, "bitwise_left_shift")
  def bitwise_right_shift(self, other): return self._shift(other, "bitwise_right_shift")
  __lshift__, __rshift__ = bitwise_left_shift, bitwise_right_shift
  def _shift(self, other, op: str) -> Tensor:
    """x << n as x * 2**n (wrapping as the shift does), x >> n as floor(x / 2**n) (an arithmetic shift)."""
    x, n = self._broadcasted(other, op)
    if not x.dtype.is_int: raise TypeError(f"{op}: not supported for {x.dtype.name} tensors (integers only)")
    power = Tensor._const(2, x.dtype, x.device, x.shape) ** n
    return x * power if op == "bitwise_left_shift" else x.floor_divide(power)
  def bitwise_not(self):
    if self.dtype.is_float: raise TypeError(f"bitwise_not: not supported for floating point tensors (got {self.dtype.name})")
    return F.Not.apply(self) if self.dtype is bool_ else F.BitXor.apply(*self._broadcasted(-1, "bitwise_not"))
  def logical_not(self): return F.Not.apply(self.bool())
  def logical_and(self, other): return self.bool() & (other.bool() if isinstance(other, Tensor) else bool(other))
  def logical_or(self, other): return self.bool() | (other.bool() if isinstance(other, Tensor) else bool(other))
  def logical_xor(self, other): return self.bool() ^ (other.bool() if isinstance(other, Tensor) else bool(other))

  __add__ = add
  def __radd__(self, other): return self.add(other, reverse=True)
  __sub__ = sub
  def __rsub__(self, other): return self.sub(other, reverse=True)
  __mul__ = mul
  def __rmul__(self, other): return self.mul(other, reverse=True)
  __truediv__ = div
  def __rtruediv__(self, other): return self.div(other, reverse=True)
  __floordiv__ = floor_divide
  def __rfloordiv__(self, other): return self.floor_divide(other, reverse=True)
  __mod__ = remainder
  def __rmod__(self, other): return self.remainder(other, reverse=True)
  __pow__ = pow
  def __rpow__(self, other): return self.pow(other, reverse=True)
  def __matmul__(self, other): return self.matmul(other)
  def __rmatmul__(self, other): return Tensor._wrap_tensor(other, self).matmul(self)
  def __neg__(self): return self.neg()
  def __and__(self, other): return self.bitwise_and(other)
  def __rand__(self, other): return self.bitwise_and(other)
  def __or__(self, other): return self.bitwise_or(other)
  def __ror__(self, other): return self.bitwise_or(other)
  def __xor__(self, other): return self.bitwise_xor(other)
  def __rxor__(self, other): return self.bitwise_xor(other)
  def __invert__(self): return self.bitwise_not()
  def __abs__(self): return self.abs()
  def __iadd__(self, other): return self.assign(self + other) if not self.requires_grad else self + other
  def __isub__(self, other): return self.assign(self - other) if not self.requires_grad else self - other
  def __imul__(self, other): return self.assign(self * other) if not self.requires_grad else self * other
  def __itruediv__(self, other): return self.assign(self / other) if not self.requires_grad else self / other

  @staticmethod
  def _wrap_tensor(x, like: Tensor) -> Tensor: return x if isinstance(x, Tensor) else Tensor(x, device=like.device)

  # ---- unary math

  def _float(self) -> Tensor: return self if self.dtype.is_float else self.cast(default_float)
  def neg(self):
    if self.dtype is bool_: raise TypeError("neg: negation of a bool tensor is not supported; use ~ or logical_not")
    return F.Neg.apply(self)
  def exp2(self): return F.Exp2.apply(self._float())
  def log2(self): return F.Log2.apply(self._float())
  def exp(self): return F.Exp.apply(self._float())
  def log(self): return self._float().log2() * math.log(2)
  def log10(self): return self._float().log2() * math.log10(2)
  def log1p(self):
    """log(1 + x), exact for tiny x too: Goldberg's correction x * log(u) / (u - 1) with u = 1 + x."""
    def value(x):
      u = x + 1
      return (u == 1).where(x, (u == math.inf).where(u, u.log() * (x / (u - 1))))  # inf / inf would give NaN
    return F.CustomGrad.apply(self._float(), value=value, grad=lambda x, g: g / (x + 1), key="log1p")
  def expm1(self):
    """exp(x) - 1, exact for tiny x too: Kahan's (u - 1) * x / log(u) with u = exp(x)."""
    def value(x):
      u = x.exp()
      return (u == 1).where(x, (u - 1 == -1).where(-1.0, (u == math.inf).where(u, (u - 1) * (x / u.log()))))
    return F.CustomGrad.apply(self._float(), value=value, grad=lambda x, g: g * x.exp(), key="expm1")
  def _erfc_positive(x):
    """erfc for x >= 0: a Chebyshev fit (relative error below 1.2e-7, tail included)."""
    t, acc = Tensor._erfc_fit(x)
    return t * (-x * x - 1.26551223 + t * acc).exp()
  def _erfc_fit(x):
    """The fit's t = 1 / (1 + x/2) and polynomial: erfc(x) = t exp(-x^2 - 1.26551223 + t acc) for x >= 0 (erfcx is
    the same without the -x^2)."""
    t = 1 / (1 + 0.5 * x)
    coeffs = (1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277)
    acc = t.full_like(coeffs[-1])
    for c in reversed(coeffs[:-1]): acc = acc * t + c
    return t, acc
  def erf(self):
    """Error function: a Taylor series near 0 (relative accuracy for tiny x), 1 - erfc beyond; exact derivative."""
    def value(x):
      z = x.abs()
      x2 = x * x
      series = x * (2 / math.sqrt(math.pi)) * (1 + x2 * (-1 / 3 + x2 * (1 / 10 + x2 * (-1 / 42 + x2 * (1 / 216 + x2 * (-1 / 1320 + x2 / 9360))))))
      far = 1 - Tensor._erfc_positive(z)
      return (z < 0.5).where(series, (x >= 0).where(far, -far))
    return F.CustomGrad.apply(self._float(), value=value, grad=lambda x, g: g * (2 / math.sqrt(math.pi)) * (-x * x).exp(),
                            key="erf")
  def erfc(self):
    def value(x): return (x >= 0.5).where(Tensor._erfc_positive(x.maximum(0.5)), 1 - x.erf())
    return F.CustomGrad.apply(self._float(), value=value, grad=lambda x, g: -g * (2 / math.sqrt(math.pi)) * (-x * x).exp(),
                            key="erfc")
  def sqrt(self): return F.Sqrt.apply(self._float())
  def rsqrt(self): return self.sqrt().reciprocal()
  def sin(self): return F.Sin.apply(self._float())
  def cos(self): return F.Cos.apply(self._float())
  def tan(self): return self.sin() / self.cos()

  # ---- special functions with torch's names (from torch's op database)
  # Cephes' (and torch's) algorithms composed from elementwise ops: each branch is computed everywhere and `where`
  # picks, loops have a fixed trip count, and gradients come from exact formulas (CustomGrad) as in torch.

  @staticmethod
  def _polevl(x: Tensor, coeffs) -> Tensor:
    """Horner's rule, highest power first (Cephes' polevl)."""
    acc = x.full_like(coeffs[0])
    for c in coeffs[1:]: acc = acc * x + c
    return acc
  @staticmethod
  def _chbevl(x: Tensor, coeffs) -> Tensor:
    """A Chebyshev series by Clenshaw's recurrence (Cephes' chbevl), x already mapped to [-2, 2]."""
    b0, b1, b2 = x.full_like(coeffs[0]), x.zeros_like(), x.zeros_like()
    for c in coeffs[1:]: b0, b1, b2 = x * b0 - b1 + c, b0, b1
    return (b0 - b2) * 0.5
  def _custom_grad(self, value, grad) -> Tensor: return F.CustomGrad.apply(self._float(), value=value, grad=grad)

  _I0E_A = (-4.41534164647933937950E-18, 3.33079451882223809783E-17, -2.43127984654795469359E-16, 1.71539128555513303061E-15,
            -1.16853328779934516808E-14, 7.67618549860493561688E-14, -4.85644678311192946090E-13, 2.95505266312963983461E-12,
            -1.72682629144155570723E-11, 9.67580903537323691224E-11, -5.18979560163526290666E-10, 2.65982372468238665035E-9,
            -1.30002500998624804212E-8, 6.04699502254191894932E-8, -2.67079385394061173391E-7, 1.11738753912010371815E-6,
            -4.41673835845875056359E-6, 1.64484480707288970893E-5, -5.75419501008210370398E-5, 1.88502885095841655729E-4,
            -5.76375574538582365885E-4, 1.63947561694133579842E-3, -4.32430999505057594430E-3, 1.05464603945949983183E-2,
            -2.37374148058994688156E-2, 4.93052842396707084878E-2, -9.49010970480476444210E-2, 1.71620901522208775349E-1,
            -3.04682672343198398683E-1, 6.76795274409476084995E-1)
  _I0E_B = (-7.23318048787475395456E-18, -4.83050448594418207126E-18, 4.46562142029675999901E-17, 3.46122286769746109310E-17,
            -2.82762398051658348494E-16, -3.42548561967721913462E-16, 1.77256013305652638360E-15, 3.81168066935262242075E-15,
            -9.55484669882830764870E-15, -4.15056934728722208663E-14, 1.54008621752140982691E-14, 3.85277838274214270114E-13,
            7.18012445138366623367E-13, -1.79417853150680611778E-12, -1.32158118404477131188E-11, -3.14991652796324136454E-11,
            1.18891471078464383424E-11, 4.94060238822496958910E-10, 3.39623202570838634515E-9, 2.26666899049817806459E-8,
            2.04891858946906374183E-7, 2.89137052083475648297E-6, 6.88975834691682398426E-5, 3.36911647825569408990E-3,
            8.04490411014108831608E-1)
  _I1E_A = (2.77791411276104639959E-18, -2.11142121435816608115E-17, 1.55363195773620046921E-16, -1.10559694773538630805E-15,
            7.60068429473540693410E-15, -5.04218550472791168711E-14, 3.22379336594557470981E-13, -1.98397439776494371520E-12,
            1.17361862988909016308E-11, -6.66348972350202774223E-11, 3.62559028155211703701E-10, -1.88724975172282928790E-9,
            9.38153738649577178388E-9, -4.44505912879632808065E-8, 2.00329475355213526229E-7, -8.56872026469545474066E-7,
            3.47025130813767847674E-6, -1.32731636560394358279E-5, 4.78156510755005422638E-5, -1.61760815825896745588E-4,
            5.12285956168575772895E-4, -1.51357245063125314899E-3, 4.15642294431288815669E-3, -1.05640848946261981558E-2,
            2.47264490306265168283E-2, -5.29459812080949914269E-2, 1.02643658689847095384E-1, -1.76416518357834055153E-1,
            2.52587186443633654823E-1)
  _I1E_B = (7.51729631084210481353E-18, 4.41434832307170791151E-18, -4.65030536848935832153E-17, -3.20952592199342395980E-17,
            2.96262899764595013876E-16, 3.30820231092092828324E-16, -1.88035477551078244854E-15, -3.81440307243700780478E-15,
            1.04202769841288027642E-14, 4.27244001671195135429E-14, -2.10154184277266431302E-14, -4.08355111109219731823E-13,
            -7.19855177624590851209E-13, 2.03562854414708950722E-12, 1.41258074366137813316E-11, 3.25260358301548823856E-11,
            -1.89749581235054123450E-11, -5.58974346219658380687E-10, -3.83538038596423702205E-9, -2.63146884688951950684E-8,
            -2.51223623787020892529E-7, -3.88256480887769039346E-6, -1.10588938762623716291E-4, -9.76109749136146840777E-3,
            7.78576235018280120474E-1)

  def _bessel_ie(self, a, b) -> Tensor:
    """exp(-|x|) I(x) of |x| (Cephes' i0e and i1e / x below 8): a Chebyshev series on [0, 8], one in 1/x above."""
    x = self.abs()
    far = x.maximum(8.0)
    return (x <= 8).where(Tensor._chbevl(x / 2 - 2, a), Tensor._chbevl(32 / far - 2, b) / far.sqrt())
  def _i0e(self) -> Tensor: return self._float()._bessel_ie(Tensor._I0E_A, Tensor._I0E_B)
  def _i1e(self) -> Tensor:
    x = self._float()
    y = x._bessel_ie(Tensor._I1E_A, Tensor._I1E_B)
    y = (x.abs() <= 8).where(y * x.abs(), y)
    return (x < 0).where(-y, y)
  def i0(self):
    """The modified Bessel function I0; its derivative is I1."""
    return self._custom_grad(lambda x: x.abs().exp() * x._i0e(), lambda x, g: g * x.abs().exp() * x._i1e())

  @staticmethod
  def _sin_pi_frac(x: Tensor) -> Tensor:
    """|sin(pi x)| from x less its nearest integer (exact in float32), so large |x| lose nothing to the product pi * x
    and x near an integer keeps its distance to it."""
    return ((x - x.round()).abs() * math.pi).sin()
  def lgamma(self):
    """log|Gamma(x)|: Lanczos' series (Numerical Recipes' gammln) for x >= 0.5, the reflection formula below; its
    derivative is digamma."""
    def value(x):
      low = x < 0.5
      z = low.where(1 - x, x)
      ser = z.full_like(1.000000000190015)
      for j, c in enumerate((76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155,
                             0.1208650973866179e-2, -0.5395239384953e-5)): ser = ser + c / (z + (j + 1))
      g = (z + 0.5) * (z + 5.5).log() - (z + 5.5) + (ser * 2.5066282746310005 / z).log()
      out = low.where((math.pi / Tensor._sin_pi_frac(x)).log() - g, g)
      return (((x <= 0) & (x == x.floor())) | x.isinf()).where(math.inf, out)
    return self._custom_grad(value, lambda x, g: g * x.digamma())
  def digamma(self):
    """Cephes' psi: for x < 0 the reflection psi(1 - x) - pi / tan(pi x); then the recurrence to x >= 10 (ten fixed
    steps) and the asymptotic series. Its derivative is polygamma(1, x)."""
    def value(x):
      neg = x < 0
      z = neg.where(1 - x, x)
      acc = x.zeros_like()
      for _ in range(10):
        small = z < 10
        acc, z = acc - small.where(1 / z, 0.0), small.where(z + 1, z)
      zz = 1 / (z * z)
      asym = zz * Tensor._polevl(zz, (8.33333333333333333333E-2, -2.10927960927960927961E-2, 7.57575757575757575758E-3,
                                      -4.16666666666666666667E-3, 3.96825396825396825397E-3, -8.33333333333333333333E-3,
                                      8.33333333333333333333E-2))
      psi = acc + z.log() - 0.5 / z - asym
      r = x - x.trunc()
      out = neg.where(psi - math.pi / (r * math.pi).tan(), psi)
      out = (neg & (r == 0)).where(math.nan, out)  # negative integers (and -inf)
      return (x == 0).where((1 / x < 0).where(math.inf, -math.inf), out)  # -0 gives +inf, as torch's copysign
    return self._custom_grad(value, lambda x, g: g * x.polygamma(1))

  @staticmethod
  def _zeta_positive(x: Tensor, q: Tensor) -> Tensor:
    """Hurwitz zeta sum_k (q + k)^-x for q > 0 (Cephes' zeta): ten terms, then Euler-Maclaurin's tail at q + 9."""
    s, a = (-x * q.log()).exp(), q
    for _ in range(9):
      a = a + 1
      b = (-x * a.log()).exp()
      s = s + b
    w, k = a, x.zeros_like()
    s = s + b * w / (x - 1) - 0.5 * b
    # the tail's terms x (x+1) ... (x+2j-2) w^(-x-2j+1) / (2j)!-ish, kept as one product: in float32 the rising
    # factorial alone overflows (x = 60) where w^-x underflows, and inf * 0 would be NaN
    for denom in (12.0, -720.0, 30240.0, -1209600.0, 47900160.0, -1.8924375803183791606e9, 7.47242496e10,
                  -2.950130727918164224e12, 1.1646782814350067249e14, -4.5979787224074726105e15, 1.8152105401943546773e17,
                  -7.1661652561756670113e18):
      b = b * (x + k) / w
      s = s + b / denom
      b, k = b * (x + k + 1) / w, k + 2
    return s
  @staticmethod
  def _zeta(x: Tensor, q: Tensor) -> Tensor:
    """Hurwitz zeta as torch.special.zeta. For q < 0 (x an integer) the sum's first terms, those of negative q + k,
    fold onto positive arguments: with g = ceil(q) - q (exact), zeta(x, q) = zeta(x, 1 - g) + (-1)^x (zeta(x, g) - zeta(x, 1 - q))."""
    q_int, x_int = q == q.floor(), x == x.floor()
    g = q.ceil() - q
    neg = q < 0
    pos = Tensor._zeta_positive(x, neg.where(1 - g, q).maximum(1e-30))
    sign = (x - 2 * (x / 2).floor() == 1).where(-1.0, 1.0)
    folded = pos + sign * (Tensor._zeta_positive(x, g.maximum(1e-30)) - Tensor._zeta_positive(x, (1 - q).maximum(1.0)))
    out = neg.where(folded, pos)
    out = ((q <= 0) & ~x_int).where(math.nan, out)
    out = ((q <= 0) & q_int).where(math.inf, out)
    return (x == 1).where(math.inf, (x < 1).where(math.nan, out))
  def polygamma(self, n: int):
    """The n-th derivative of digamma: (-1)^(n+1) n! zeta(n + 1, x) for n >= 1."""
    if not isinstance(n, int) or isinstance(n, bool): raise TypeError(f"polygamma: n must be an int, got {type(n).__name__}")
    if n < 0: raise RuntimeError("polygamma(n, x) does not support negative n.")
    if n == 0: return self.digamma()
    def value(x):
      out = Tensor._zeta(x.full_like(n + 1.0), x) * ((-1) ** (n + 1) * math.factorial(n))
      # torch's trigamma (its n = 1) gives 0 at inf and NaN at -inf, where its zeta (n >= 2) gives NaN and inf
      return x.isinf().where((x > 0).where(0.0, math.nan), out) if n == 1 else out
    return self._custom_grad(value, lambda x, g: g * x.polygamma(n + 1))
  def mvlgamma(self, p: int):
    """The multivariate log-gamma: p(p-1)/4 log(pi) + sum_j lgamma(x - j/2) (x <= (p-1)/2 is not checked, as in torch:
    the sum's value there)."""
    if p < 1: raise RuntimeError("p has to be greater than or equal to 1")
    x = self._float()
    out = x.lgamma()
    for j in range(1, p): out = out + (x - j / 2).lgamma()
    return out + p * (p - 1) / 4 * math.log(math.pi)
  def erfinv(self):
    """torch's erfinv: a rational first guess (Giles-like, central and tail) and two Newton steps on erf."""
    def value(y):
      t = y.abs()
      z = y * y
      central = y * Tensor._polevl(z, (-0.140543331, 0.914624893, -1.645349621, 0.886226899)) / \
        Tensor._polevl(z, (0.012229801, -0.329097515, 1.442710462, -2.118377725, 1.0))
      w = (-((1 - t.minimum(1.0)) / 2).log()).sqrt()
      tail = Tensor._polevl(w, (1.641345311, 3.429567803, -1.624906493, -1.970840454)) / Tensor._polevl(w, (1.637067800, 3.543889200, 1.0))
      x = (t <= 0.7).where(central, (y < 0).where(-tail, tail))
      for _ in range(2): x = x - (x.erf() - y) / ((2 / math.sqrt(math.pi)) * (-x * x).exp())
      x = (t == 1).where((y < 0).where(-math.inf, math.inf), x)
      return (t > 1).where(math.nan, x)
    return self._custom_grad(value, lambda y, g: g * (math.sqrt(math.pi) / 2) * y.erfinv().square().exp())

  # ---- inverse trigonometric and hyperbolic functions, composed (float32-accurate: a few ulp against float64)

  def atan(self):
    """Cephes' atanf: |x| reduced to [0, tan(pi/8)] around 0, pi/4 or pi/2, then an odd polynomial; exact gradient."""
    def value(x):
      t = x.abs()
      big, mid = t > 2.414213562373095, t > 0.4142135623730950
      z = big.where(-1 / t, mid.where((t - 1) / (t + 1), t))
      zz = z * z
      poly = (((8.05374449538e-2 * zz - 1.38776856032e-1) * zz + 1.99777106478e-1) * zz - 3.33329491539e-1) * zz * z + z
      y = big.where(math.pi / 2, mid.where(math.pi / 4, 0.0)) + poly
      return (x < 0).where(-y, y)
    return F.CustomGrad.apply(self._float(), value=value, grad=lambda x, g: g / (1 + x * x), key="atan")
  arctan = atan

  def atan2(self, other):
    """The angle of (other, self), in (-pi, pi], as C's atan2: the ratio of the smaller to the larger magnitude goes
    to atan (no overflow), then the octant and quadrant; a negative zero x counts as negative."""
    y, x = self._float_broadcasted(other, "atan2")
    ax, ay = x.abs(), y.abs()
    flat = ax >= ay
    both_inf = (ax == math.inf) & (ay == math.inf)
    ratio = both_inf.where(1.0, flat.where(ay / ax, ax / ay))
    angle = (ratio != ratio).where(0.0, ratio.atan())  # 0 / 0: both zero
    angle = flat.where(angle, math.pi / 2 - angle)
    x_neg = (x < 0) | ((x == 0) & (1 / x < 0))
    angle = x_neg.where(math.pi - angle, angle)
    return ((x != x) | (y != y)).where(math.nan, (y < 0).where(-angle, angle))
  arctan2 = atan2

  def asin(self):
    x = self._float()
    return x.atan2(((1 - x) * (1 + x)).sqrt())
  def acos(self):
    x = self._float()
    return ((1 - x) * (1 + x)).sqrt().atan2(x)
  arcsin, arccos = asin, acos

  @staticmethod
  def _exp_halves(t: Tensor) -> tuple[Tensor, Tensor]:
    """(e^t / 2, e^-t / 2) for t >= 0, from h = e^(t/2): h * (h / 2) reaches e^t / 2 past 88, where e^t itself
    overflows (exp(t - log 2) would lose the rounding of t - log 2); e^-t / 2 then goes to 0."""
    h = (t / 2).exp()
    return h * (h / 2), 0.5 / (h * h)
  def sinh(self):
    """(e^x - e^-x) / 2: from expm1 below 1 (no cancellation), from the halves of e^|x| and e^-|x| above."""
    x = self._float()
    t = x.abs()
    u = t.minimum(1.0).expm1()
    up, down = Tensor._exp_halves(t)
    y = (t < 1).where((u + u / (u + 1)) / 2, up - down)
    return (x < 0).where(-y, y)
  def cosh(self):
    up, down = Tensor._exp_halves(self._float().abs())
    return up + down
  def asinh(self):
    x = self._float()
    t = x.abs()
    y = (t > 1e18).where(t.log() + math.log(2), (t + t * t / (1 + (1 + t * t).sqrt())).log1p())
    return (x < 0).where(-y, y)
  def acosh(self):
    x = self._float()
    return (x > 1e18).where(x.log() + math.log(2), ((x - 1) + ((x - 1) * (x + 1)).sqrt()).log1p())
  def atanh(self):
    x = self._float()
    t = x.abs()  # on |x|: 1 - |x| is exact near 1, where log1p of 2x / (1 - x) near -1 lost digits for x near -1
    y = (t * 2 / (1 - t)).log1p() / 2
    return (x < 0).where(-y, y)
  arcsinh, arccosh, arctanh = asinh, acosh, atanh

  def hypot(self, other):
    """sqrt(x^2 + y^2) without overflow or underflow: the larger magnitude times sqrt(1 + ratio^2)."""
    x, y = self._float_broadcasted(other, "hypot")
    ax, ay = x.abs(), y.abs()
    big, small = ax.maximum(ay), ax.minimum(ay)
    ratio = (big == 0).where(0.0, small / big)
    out = big * (1 + ratio * ratio).sqrt()
    return (big == math.inf).where(math.inf, out)  # inf / inf would be NaN

  def logit(self, eps=None):
    x = self._float()
    if eps is not None: x = x.clamp(eps, 1 - eps)
    return (x / (1 - x)).log()
  def xlogy(self, other):
    """x * log(y), 0 where x is 0 (unless y is NaN), as torch.xlogy."""
    x, y = self._float_broadcasted(other, "xlogy")
    return ((x == 0) & (y == y)).where(0.0, x * y.log())
  def frac(self): return self - self.trunc()
  def reciprocal(self): return F.Reciprocal.apply(self._float())
  def relu(self): return F.Relu.apply(self)
  def sigmoid(self):
    # exp of a non-positive number only, so large inputs neither overflow nor lose precision; one division (two made
    # it 2x slower than torch's): 2.7 ulp of float64 at most on PoCL (2.3 with two), most of it exp's
    x = self._float()
    e = (x < 0).where(x, -x).exp()
    r = 1 / (1 + e)
    return (x >= 0).where(r, e * r)
  def tanh(self):
    """float32: an odd polynomial below |x| = 0.625, fitted to tanh's relative error, and 1 - 2 / (exp(2|x|) + 1) with
    x's sign above it: one exp and one division, within 2 ulp of float64 (1.3 measured on PoCL; 6.4 for the expm1
    form below, whose exp, log and three divisions made tanh 6x slower than exp and the costliest op of an LSTM cell).
    Other dtypes: -t / (t + 2) with t = expm1(-2|x|), and x's sign. 2 * sigmoid(2x) - 1 cancels near 0 (1.5e-4 off
    at x = 5e-4)."""
    def value(x):
      if x.dtype is float32:
        a, z = x.abs(), x * x
        fit = _TANH_FIT[-1]
        for c in reversed(_TANH_FIT[:-1]): fit = fit * z + c
        big = 1 - 2 / ((a * 2).exp() + 1)
        return (a < 0.625).where(x * (1 + z * fit), (x < 0).where(-big, big))  # x times: tanh(-0.0) is -0.0
      t = (x.abs() * -2).expm1()
      return (x < 0).where(t / (t + 2), -t / (t + 2))
    return F.CustomGrad.apply(self._float(), value=value, grad=lambda x, g: g * (1 - x.tanh().square()), key="tanh")
  def abs(self):
    if self.dtype is bool_: return self
    return self.relu() + (-self).relu() if self.dtype.is_float else (self < 0).where(-self, self)
  def sign(self):
    if self.dtype is bool_: return self
    one = self.ones_like()
    # self * 0 keeps the gradient's path (zeros, as torch's); NaN gives 0, as torch's sign does
    return (self > 0).where(one, (self < 0).where(-one, self.isnan().where(0.0, self * 0)))
  def square(self): return self * self
  def trunc(self):
    if not self.dtype.is_float: return self
    # every float32 of magnitude >= 2**23 is an integer already (and may not fit an int64)
    return (self.abs() < 2.0**23).where(self.cast(int64).cast(self.dtype), self)
  def floor(self):
    t = self.trunc()
    return (t > self).where(t - 1, t) if self.dtype.is_float else self
  def ceil(self):
    t = self.trunc()
    return (t < self).where(t + 1, t) if self.dtype.is_float else self
  def round(self, decimals: int = 0):
    """Round half to even, as torch.round does; to `decimals` places as torch does it, x * 10**d rounded, / 10**d."""
    if not self.dtype.is_float: return self
    if decimals: return (self * 10.0 ** decimals).round() / 10.0 ** decimals if decimals > 0 else \
      (self / 10.0 ** -decimals).round() * 10.0 ** -decimals
    f = self.floor()
    diff = self - f
    even = (f.remainder(2) == 0)
    up = (diff > 0.5) | ((diff == 0.5) & ~even)
    return up.where(f + 1, f)
  def isnan(self): return self != self
  def isinf(self): return self.abs() == math.inf if self.dtype.is_float else self.zeros_like(bool_)
  def isfinite(self): return ~(self.isnan() | self.isinf())
  def clamp(self, min=None, max=None):
    """min(max(x, min), max), as torch's: with min > max, max everywhere; NaN stays NaN. The gradient reaches x
    wherever min <= x <= max, bounds included (maximum and minimum would share it at a bound)."""
    if min is None and max is None: raise ValueError("clamp: at least one of min and max must be given")
    out = self
    # a NaN bound gives NaN, as torch's does: x < NaN is false, so NaN bounds are picked out by bound != bound
    if min is not None: out = ((out < min) if _is_number(min) and min == min else (out < min) | (min != min)).where(min, out)
    if max is not None: out = ((out > max) if _is_number(max) and max == max else (out > max) | (max != max)).where(max, out)
    return out
  clip = clamp
  def where(self, x, y):
    """self is the condition: cond.where(x, y) == torch.where(cond, x, y)."""
    cond = self if self.dtype is bool_ else self != 0
    xt = x if isinstance(x, Tensor) else None
    yt = y if isinstance(y, Tensor) else None
    dtype = result_type(*(v for v in (x, y)))
    dev = cond.device
    if dtype is complex64:  # the float32 pairs chosen whole
      xr, yr = (Tensor._wrap_tensor(v, cond).cast(complex64)._ri for v in (x, y))
      return ComplexTensor._wrap(cond.unsqueeze(-1).where(xr, yr))
    for t in (xt, yt):
      if t is not None: _same_device("where", cond, t)
    xv = xt.cast(dtype) if xt is not None else Tensor._const(x, dtype, dev)
    yv = yt.cast(dtype) if yt is not None else Tensor._const(y, dtype, dev)
    shape = broadcast_shape(cond.shape, xv.shape, yv.shape, op="where")
    return F.Where.apply(cond._broadcast_to(shape), xv._broadcast_to(shape), yv._broadcast_to(shape))
  def masked_fill(self, mask: Tensor, value): return mask.where(value, self)
  def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
    if not self.dtype.is_float: return self
    big = float(np.finfo(self.dtype.np).max)
    out = self.isnan().where(nan, self)
    out = (out == math.inf).where(big if posinf is None else posinf, out)
    return (out == -math.inf).where(-big if neginf is None else neginf, out)
  def lerp(self, end, weight): return self + (end - self) * weight

  # ---- more math with torch's names (from torch's op database)

  def clamp_min(self, min): return self.clamp(min=min)
  def clamp_max(self, max): return self.clamp(max=max)
  def positive(self):
    if self.dtype is bool_: raise TypeError("positive: the `+` operator on a bool tensor is not supported")
    return self
  def sgn(self): return self.sign()
  def true_divide(self, other): return self.div(other)
  def deg2rad(self): return self._float() * (math.pi / 180)
  def rad2deg(self): return self._float() * (180 / math.pi)
  def isposinf(self): return self == math.inf if self.dtype.is_float else self.zeros_like(bool_)
  def isneginf(self): return self == -math.inf if self.dtype.is_float else self.zeros_like(bool_)

  def signbit(self):
    """Whether the sign bit is set: x < 0, and -0.0 (whose reciprocal is -inf). A NaN's sign bit cannot be read
    through the primitive ops (there is no bit cast), so a NaN counts as positive: torch reads the bit."""
    if not self.dtype.is_float: return self < 0 if self.dtype.kind == "i" else self.zeros_like(bool_)
    return (self < 0) | ((self == 0) & (1 / self < 0))

  def copysign(self, other):
    """|self| with the sign of other (signbit's, so NaN counts as positive). other's gradient is zero, as torch's."""
    x, y = self._float_broadcasted(other, "copysign")
    sign = F.CustomGrad.apply(y, value=lambda v: v.signbit().where(-1.0, 1.0).cast(v.dtype), grad=lambda v, g: v.zeros_like())
    return x.abs() * sign

  def sinc(self):
    x = self._float()
    zero = x == 0
    px = zero.where(1.0, x) * math.pi  # a safe x where it is 0, so the unused branch's gradient is not 0/0
    return zero.where(1.0, px.sin() / px)

  def fmax(self, other):
    """The larger of the two, a NaN only where both are: the gradient goes to self on ties, as torch's."""
    x, y = self._broadcasted(other, "fmax")
    return ((x >= y) | y.isnan()).where(x, y)
  def fmin(self, other):
    x, y = self._broadcasted(other, "fmin")
    return ((x <= y) | y.isnan()).where(x, y)

  def heaviside(self, values):
    if not isinstance(values, Tensor): raise TypeError(f"heaviside: values must be a Tensor, got {type(values).__name__}")
    if values.dtype is not self.dtype:
      raise RuntimeError(f"heaviside is not yet implemented for tensors with different dtypes ({self.dtype.name} and {values.dtype.name})")
    x, v = self._broadcasted(values, "heaviside")
    return (x == 0).where(v, (x > 0).cast(x.dtype))

  def ldexp(self, other):
    x, y = self._float_broadcasted(other, "ldexp")
    return x * y.exp2()

  def frexp(self):
    """(mantissa, exponent) with self = mantissa * 2**exponent, 0.5 <= |mantissa| < 1; zero, inf and NaN keep
    exponent 0. The exponent comes from log2, corrected by one where it rounds across a power of two."""
    if not self.dtype.is_float: raise RuntimeError(f"torch.frexp() only supports floating-point dtypes, got {self.dtype.name}")
    with no_grad():
      a = self.abs()
      regular = (a != 0) & a.isfinite()
      e = regular.where(a, 1.0).log2().floor() + 1
      m = _times_power_of_two(a, -e)
      e = regular.where((m >= 1).where(e + 1, (m < 0.5).where(e - 1, e)), 0.0)
    return FrexpResult(_times_power_of_two(self, -e), e.cast(int32))

  def logaddexp(self, other):
    x, y = self._float_broadcasted(other, "logaddexp")
    out = x.maximum(y) + (-(x - y).abs()).exp().log1p()
    return ((x == y) & x.isinf()).where(x, out)  # inf - inf would be NaN
  def logaddexp2(self, other):
    x, y = self._float_broadcasted(other, "logaddexp2")
    out = x.maximum(y) + (-(x - y).abs()).exp2().log1p() / math.log(2)
    return ((x == y) & x.isinf()).where(x, out)

  def float_power(self, exponent):
    """self ** exponent in float64, as torch's float_power."""
    return self.cast(float64).pow(exponent.cast(float64) if isinstance(exponent, Tensor) else float(exponent))

  def addcmul(self, tensor1, tensor2, *, value=1):
    return self + (tensor1 * tensor2 if value == 1 else value * tensor1 * tensor2)
  def addcdiv(self, tensor1, tensor2, *, value=1):
    if not (tensor1.dtype.is_float or tensor2.dtype.is_float):
      raise RuntimeError("Integer division with addcdiv is no longer supported; divide tensor1 by tensor2 with true_divide first")
    return self + (tensor1 / tensor2 if value == 1 else value * (tensor1 / tensor2))

  def _scaled_sum(self, product: Tensor, beta, alpha) -> Tensor:
    """beta * self + alpha * product, self broadcast to the product's shape; with beta = 0 self is ignored, NaN and
    inf in it too, as torch's addmm family does."""
    out = product if alpha == 1 else product * alpha
    if beta == 0: return out
    x = self.expand(product.shape)
    return (x if beta == 1 else x * beta) + out

  def _need_dims(self, ndim: int, op: str, what: str):
    if self.ndim != ndim: raise RuntimeError(f"{op}: {what} must be a {ndim}-D tensor, got shape {self.shape}")

  def addmm(self, mat1, mat2, *, beta=1, alpha=1):
    mat1._need_dims(2, "addmm", "mat1")
    mat2._need_dims(2, "addmm", "mat2")
    return self._scaled_sum(mat1 @ mat2, beta, alpha)
  def addmv(self, mat, vec, *, beta=1, alpha=1):
    mat._need_dims(2, "addmv", "mat")
    vec._need_dims(1, "addmv", "vec")
    return self._scaled_sum(mat @ vec, beta, alpha)
  def addbmm(self, batch1, batch2, *, beta=1, alpha=1):
    batch1._need_dims(3, "addbmm", "batch1")
    batch2._need_dims(3, "addbmm", "batch2")
    return self._scaled_sum((batch1 @ batch2).sum(0), beta, alpha)
  def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
    batch1._need_dims(3, "baddbmm", "batch1")
    batch2._need_dims(3, "baddbmm", "batch2")
    return self._scaled_sum(batch1 @ batch2, beta, alpha)
  def addr(self, vec1, vec2, *, beta=1, alpha=1): return self._scaled_sum(vec1.outer(vec2), beta, alpha)

  def mv(self, vec):
    self._need_dims(2, "mv", "input")
    vec._need_dims(1, "mv", "vec")
    return self @ vec
  def vdot(self, other): return self.dot(other)  # real tensors: no conjugate
  def outer(self, vec2):
    self._need_dims(1, "outer", "input")
    vec2._need_dims(1, "outer", "vec2")
    return self.unsqueeze(1) * vec2
  ger = outer
  def inner(self, other):
    if self.ndim == 0 or other.ndim == 0: return self * other
    if self.shape[-1] != other.shape[-1]:
      raise RuntimeError(f"inner() the last dimension must match on both input tensors but got shapes {list(self.shape)} and {list(other.shape)}")
    return tensordot(self, other, ([-1], [-1]))
  def kron(self, other):
    nd = max(self.ndim, other.ndim)
    a = self.reshape((1,) * (nd - self.ndim) + self.shape)
    b = other.reshape((1,) * (nd - other.ndim) + other.shape)
    # a's dims interleaved with b's: out[i * p + k] = a[i] * b[k] along each dim
    prod_ = a.reshape(tuple(d for s in a.shape for d in (s, 1))) * b.reshape(tuple(d for s in b.shape for d in (1, s)))
    return prod_.reshape(tuple(p * q for p, q in zip(a.shape, b.shape)))
  def trace(self):
    if self.ndim != 2: raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {self.ndim}")
    return self.diagonal().sum()
  def dist(self, other, p=2): return (self - other).norm(p)

  def diff(self, n=1, dim=-1, prepend=None, append=None):
    if self.ndim == 0: raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0: raise RuntimeError(f"order must be non-negative but got {n}")
    d = normalize_dim(dim, self.ndim, "diff")
    for extra in (prepend, append):
      if extra is not None and (extra.ndim != self.ndim or any(a != b for i, (a, b) in enumerate(zip(extra.shape, self.shape)) if i != d)):
        raise RuntimeError(f"diff expects the shape of tensor to prepend or append ({extra.shape}) to match that of input "
                           f"({self.shape}) except along the differencing dimension")
    if n == 0: return self
    x = cat([t for t in (prepend, self, append) if t is not None], d) if prepend is not None or append is not None else self
    for _ in range(min(n, x.shape[d])):
      m = x.shape[d]
      hi = x._shrink(tuple((1, m) if a == d else (0, s) for a, s in enumerate(x.shape)))
      lo = x._shrink(tuple((0, m - 1) if a == d else (0, s) for a, s in enumerate(x.shape)))
      x = hi.logical_xor(lo) if x.dtype is bool_ else hi - lo
    return x

  def sum_to_size(self, *size):
    size = _shape_arg(size)
    lead = self.ndim - len(size)
    if lead < 0 or any(s != 1 and s != t for s, t in zip(size, self.shape[lead:])):
      raise RuntimeError(f"size {list(size)} is not expandable to size {list(self.shape)}")
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(size) if s == 1 and self.shape[lead + i] != 1)
    return (self.sum(axes, keepdim=True) if axes else self).reshape(size)

  def aminmax(self, *, dim=None, keepdim=False): return AminmaxResult(self.amin(dim, keepdim), self.amax(dim, keepdim))

  def nansum(self, dim=None, keepdim=False, dtype=None):
    return (self.isnan().where(0, self) if self.dtype.is_float else self).sum(dim, keepdim, dtype)
  def nanmean(self, dim=None, keepdim=False, dtype=None):
    if not (self.dtype.is_float or dtype is not None and to_dtype(dtype).is_float):
      raise RuntimeError(f"nanmean(): expected input to have floating point dtype but got {self.dtype.name}")
    return self.nansum(dim, keepdim, dtype) / (~self.isnan()).sum(dim, keepdim)

  def std_mean(self, dim=None, unbiased=None, keepdim=False, correction=None):
    if isinstance(dim, bool): dim, unbiased = None, dim  # std_mean(x, unbiased)
    return self.std(dim, unbiased, keepdim, correction), self.mean(dim, keepdim)

  def logcumsumexp(self, dim):
    if self.ndim == 0: return self._float()
    d = normalize_dim(dim, self.ndim, "logcumsumexp")
    if self.shape[d] == 0: return self._float()
    return _prefix_windows(self._float().transpose(d, -1), -math.inf).logsumexp(-1).transpose(d, -1)

  def cummax(self, dim): return self._running_extreme(dim, "cummax")
  def cummin(self, dim): return self._running_extreme(dim, "cummin")
  def _running_extreme(self, dim, op: str) -> MaxResult:
    """(values, indices) of the running max (min): the index is the last place the value was reached (later ties
    take over, a NaN holds on), as torch's; the values are gathered there, so the gradient goes to that element."""
    if self.ndim == 0: return MaxResult(self, Tensor._const(0, int64, self.device))
    d = normalize_dim(dim, self.ndim, op)
    n = self.shape[d]
    if n == 0: return MaxResult(self, self.zeros_like(int64))
    xt = self.detach().transpose(d, -1)
    high = op == "cummax"
    windows = _prefix_windows(xt, _extreme_value(self.dtype, not high))
    value = (windows.amax(-1) if high else windows.amin(-1)).unsqueeze(-1)  # (.., i, 1)
    reached = (windows == value) | (windows.isnan() & value.isnan())
    index = (_prefix_windows(xt.ones_like(bool_), False) & reached).where(Tensor.arange(n, device=self.device), -1).amax(-1)
    index = index.transpose(d, -1)
    return MaxResult(self.gather(d, index), index)

  def _kth_smallest(self, d: int, k) -> Tensor:
    """The index along dim d (kept) of the element of rank k (0-based; NaN above everything; ties by position)."""
    n = self.shape[d]
    pos = Tensor.arange(n, device=self.device).reshape(*(n if a == d else 1 for a in range(self.ndim)))
    return (self._ranks(d, False) == k).where(pos, 0).sum(d, keepdim=True)

  def kthvalue(self, k: int, dim=-1, keepdim=False):
    if self.ndim == 0:
      if k != 1: raise IndexError(f"kthvalue(): selected number k out of range for dimension {dim}")
      return MaxResult(self, Tensor._const(0, int64, self.device))
    d = normalize_dim(dim, self.ndim, "kthvalue")
    if not 1 <= k <= self.shape[d]: raise IndexError(f"kthvalue(): selected number k out of range for dimension {dim}")
    return self._at_indices(d, self._kth_smallest(d, k - 1), keepdim)

  def _at_indices(self, d: int, index: Tensor, keepdim: bool) -> MaxResult:
    """(the values at index along d, index), index with d kept; the values' gradient goes to those elements."""
    values = self.gather(d, index)
    return MaxResult(values, index) if keepdim else MaxResult(values.squeeze(d), index.squeeze(d))

  def median(self, dim=None, keepdim=False): return self._median(dim, keepdim, "median")
  def nanmedian(self, dim=None, keepdim=False): return self._median(dim, keepdim, "nanmedian")
  def _median(self, dim, keepdim: bool, op: str):
    """The lower median; median gives NaN (the first one's index) where a row has one, nanmedian skips NaNs."""
    if dim is None:
      if self.numel() == 0: return Tensor._const(math.nan, self.dtype, self.device)
      v = self.flatten()._median(0, False, op).values.detach()
      def share(x, g):  # torch spreads a full median's gradient evenly over the elements equal to it
        match = (x == v) | (x.isnan() & v.isnan())
        return match.where(g / match.sum(), 0.0)
      return F.CustomGrad.apply(self, value=lambda x: v, grad=share)
    if self.ndim == 0:
      normalize_dim(dim, 0, op)
      return MaxResult(self, Tensor._const(0, int64, self.device))
    d = normalize_dim(dim, self.ndim, op)
    n = self.shape[d]
    if n == 0: raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")
    if not self.dtype.is_float: return self._at_indices(d, self._kth_smallest(d, (n - 1) // 2), keepdim)
    nan = self.isnan()
    if op == "nanmedian":  # the lower median of each row's numbers (an all-NaN row: its first NaN)
      return self._at_indices(d, self._kth_smallest(d, (((~nan).sum(d, keepdim=True) - 1) // 2).maximum(0)), keepdim)
    index = nan.any(d, keepdim=True).where(nan.argmax(d, keepdim=True), self._kth_smallest(d, (n - 1) // 2))
    return self._at_indices(d, index, keepdim)

  def mode(self, dim=-1, keepdim=False):
    """The most frequent value (the smallest of equally frequent ones) and the last index where it occurs, as torch's
    CPU mode: each element's count by comparing every pair along dim."""
    if self.ndim == 0: return MaxResult(self, Tensor._const(0, int64, self.device))
    d = normalize_dim(dim, self.ndim, "mode")
    n = self.shape[d]
    if n == 0: raise IndexError(f"mode(): Expected reduction dim {d} to have non-zero size.")
    x = self.detach()
    counts = (x.unsqueeze(d + 1) == x.unsqueeze(d)).sum(d + 1)
    best = counts == counts.amax(d, keepdim=True)
    value = best.where(x, x.amax(d, keepdim=True)).amin(d, keepdim=True)
    pos = Tensor.arange(n, device=self.device).reshape(*(n if a == d else 1 for a in range(self.ndim)))
    return self._at_indices(d, (x == value).where(pos, -1).amax(d, keepdim=True), keepdim)

  def msort(self): return self.sort(0)[0]

  def quantile(self, q, dim=None, keepdim=False, *, interpolation="linear"):
    return self._quantile(q, dim, keepdim, interpolation, "quantile")
  def nanquantile(self, q, dim=None, keepdim=False, *, interpolation="linear"):
    return self._quantile(q, dim, keepdim, interpolation, "nanquantile")
  def _quantile(self, q, dim, keepdim: bool, interpolation: str, op: str) -> Tensor:
    """torch's algorithm: sort, a fractional rank per q (NaN's rank for a row with NaN in quantile; the rows' own
    counts of numbers in nanquantile), then the values at the ranks below and above, interpolated."""
    if not self.dtype.is_float: raise RuntimeError(f"{op}() input tensor must be either float or double dtype, got {self.dtype.name}")
    if self.numel() == 0: raise RuntimeError(f"{op}() input tensor must be non-empty")
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
      raise ValueError(f"{op}() interpolation must be one of linear, lower, higher, midpoint or nearest. Got {interpolation}")
    if isinstance(q, Tensor):
      if q.ndim > 1: raise RuntimeError(f"{op}() q must be a scalar or 1D tensor, got shape {q.shape}")
      if q.dtype is not self.dtype: raise RuntimeError(f"{op}() q tensor must be same dtype as the input tensor")
      if q.numel() and not bool(((q >= 0) & (q <= 1)).all().item()): raise RuntimeError(f"{op}() q values must be in the range [0, 1]")
      qs = q.reshape(-1)
    else:
      if not 0 <= q <= 1: raise RuntimeError(f"{op}() q must be in the range [0, 1] but got {q}")
      qs = Tensor._const(q, self.dtype, self.device, (1,))
    if dim is not None and self.ndim == 0: normalize_dim(dim, 0, op)
    x = self.reshape(-1) if dim is None or self.ndim == 0 else self
    d = 0 if dim is None or self.ndim == 0 else normalize_dim(dim, self.ndim, op)
    sorted_ = x.movedim(d, -1).sort(-1)[0].unsqueeze(-2)  # (.., 1, n): a row per q below
    n = sorted_.shape[-1]
    nan = sorted_.isnan()
    if op == "nanquantile":
      ranks = qs.reshape(-1, 1) * ((~nan).sum(-1, keepdim=True) - 1)
      ranks = (ranks < 0).where(0.0, ranks)
    else:
      ranks = nan.any(-1, keepdim=True).where(float(n - 1), qs.reshape(-1, 1) * (n - 1))
    ranks = ranks._broadcast_to(sorted_.shape[:-2] + (qs.shape[0], 1))
    if interpolation == "lower": ranks = ranks.floor()
    elif interpolation == "higher": ranks = ranks.ceil()
    elif interpolation == "nearest": ranks = ranks.round()
    rows = sorted_._broadcast_to(ranks.shape[:-1] + (n,))
    below = ranks.cast(int64)
    out = rows.gather(-1, below)
    if interpolation in ("linear", "midpoint"):
      weights = ranks.full_like(0.5) if interpolation == "midpoint" else ranks - below
      out = out.lerp(rows.gather(-1, ranks.ceil().cast(int64)), weights)
    out = out.squeeze(-1)  # (.., Q): the other dims, then one value per q
    out = out.permute(out.ndim - 1, *range(out.ndim - 1))
    if keepdim and self.ndim: out = out.reshape((out.shape[0],) + (1,) * self.ndim) if dim is None else out.unsqueeze(d + 1)
    return out.squeeze(0) if not isinstance(q, Tensor) or q.ndim == 0 else out

  def renorm(self, p, dim, maxnorm):
    if self.ndim < 2: raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {self.ndim} dimensions")
    if p <= 0: raise RuntimeError("renorm: non-positive-norm not supported")
    if maxnorm < 0: raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    d = normalize_dim(dim, self.ndim, "renorm")
    norm = self.norm(p, tuple(a for a in range(self.ndim) if a != d), keepdim=True)
    return self * (norm > maxnorm).where(maxnorm / (norm + 1e-7), 1.0)

  def cov(self, *, correction=1, fweights=None, aweights=None):
    """torch.cov: rows are variables, columns observations, with optional integer frequency and float weights."""
    if self.ndim > 2: raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an input with {self.ndim} dimensions")
    if self.dtype is bool_: raise RuntimeError("cov(): bool dtype is not supported for input")
    x = self.reshape(1, -1) if self.ndim < 2 else self
    n = x.shape[1]
    w = None
    for name, weights, integral in (("fweights", fweights, True), ("aweights", aweights, False)):
      if weights is None: continue
      if weights.ndim > 1: raise RuntimeError(f"cov(): expected {name} to have one or fewer dimensions but got {name} with {weights.ndim} dimensions")
      if not (weights.dtype.is_int if integral else weights.dtype.is_float):
        raise RuntimeError(f"cov(): expected {name} to have {'integral' if integral else 'floating point'} dtype but got {name} with {weights.dtype.name} dtype")
      if weights.numel() != n:
        raise RuntimeError(f"cov(): expected {name} to have the same numel as there are observations in the input but got {weights.numel()} != {n}")
      if n and not bool((weights.amin() >= 0).item()): raise RuntimeError(f"cov(): {name} cannot be negative")
      w = weights if w is None else w * weights
    if w is None: w_sum, avg = n, x.sum(1) / n
    else:
      w_sum = w.sum()
      if not bool((w_sum != 0).item()): raise RuntimeError("cov(): weights sum to zero, can't be normalized")
      avg = (x * w).sum(1) / w_sum
    norm = w_sum - correction * (w * aweights).sum() / w_sum if w is not None and aweights is not None and correction != 0 else w_sum - correction
    norm = (norm <= 0).where(0, norm) if isinstance(norm, Tensor) else max(norm, 0)  # torch warns and divides by 0
    xc = x - avg.unsqueeze(1)
    return (xc.matmul((xc if w is None else xc * w).T) / norm).squeeze()

  def corrcoef(self):
    c = self.cov()
    if c.ndim == 0: return c / c  # NaN for a zero, inf or NaN variance, else 1
    std = c.diagonal().sqrt()
    return (c / std.reshape(-1, 1) / std.reshape(1, -1)).clip(-1, 1)

  def histc(self, bins=100, min=0, max=0):
    """Counts in `bins` equal bins over [min, max] (the data's own range where min == max, widened by 1 each way if
    that is one value), as torch's histc computes each element's bin: trunc((x - min) * bins / (max - min))."""
    if not self.dtype.is_float: raise RuntimeError(f"\"histogram_cpu\" not implemented for '{self.dtype.name}'")
    if bins <= 0: raise RuntimeError(f"torch.histc(): bins must be > 0, but got {bins} for dim 0")
    x = self.reshape(-1)
    lo, hi = float(min), float(max)
    if lo == hi and x.numel():
      lo, hi = float(x.amin().item()), float(x.amax().item())  # read on the host, as torch does
    if lo == hi: lo, hi = lo - 1, hi + 1
    if lo > hi: raise RuntimeError(f"torch.histc(): max must be larger than min, got min {lo} and max {hi}")
    if not (math.isfinite(lo) and math.isfinite(hi)): raise RuntimeError(f"torch.histc(): range of [{lo}, {hi}] is not finite")
    left, right = Tensor._const(lo, x.dtype, x.device), Tensor._const(hi, x.dtype, x.device)
    inside = (x >= left) & (x <= right)
    pos = ((x - left) * bins / (right - left)).cast(int64).minimum(bins - 1)
    hits = (pos == Tensor.arange(bins, device=self.device).reshape(bins, 1)) & inside
    return hits.sum(1).cast(self.dtype)

  # ---- reductions

  def _axes(self, dim, op: str) -> tuple[int, ...]:
    # an empty dim list reduces over every dim, as in torch (sum(dim=()) is a full sum)
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0): return tuple(range(self.ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if self.ndim == 0:  # a 0-d tensor takes dim 0 or -1 and has nothing to reduce
      for d in dims: normalize_dim(d, 0, op)
      return ()
    axes = tuple(normalize_dim(d, self.ndim, op) for d in dims)
    if len(set(axes)) != len(axes): raise RuntimeError(f"{op}: dim {dim} appears more than once")
    return axes

  def _reduce(self, fn, dim, keepdim: bool, op: str) -> Tensor:
    axes = self._axes(dim, op)
    if self.ndim == 0: return self
    out = fn.apply(self, axes=axes)
    return out if keepdim else out.reshape(tuple(s for i, s in enumerate(self.shape) if i not in axes))

  def sum(self, dim=None, keepdim=False, dtype=None) -> Tensor:
    x = self.cast(dtype) if dtype is not None else self.cast(default_int) if self.dtype is bool_ or self.dtype.is_int and self.dtype is not int64 else self
    return x._reduce(F.Sum, dim, keepdim, "sum")

  def max(self, dim=None, keepdim=False):
    """The maximum; with `dim`, a (values, indices) pair as torch.max returns; with a tensor, torch.maximum."""
    if isinstance(dim, Tensor): return self.maximum(dim)
    if dim is None: return self.amax()
    return self._at_index("argmax", dim, keepdim)

  def min(self, dim=None, keepdim=False):
    if isinstance(dim, Tensor): return self.minimum(dim)
    if dim is None: return self.amin()
    return self._at_index("argmin", dim, keepdim)

  def _at_index(self, arg: str, dim: int, keepdim: bool) -> MaxResult:
    """(values at the argmax or argmin along dim, that index), torch.max/min(dim)'s pair: the values' gradient goes to
    that one element (amax shares it between ties)."""
    d = normalize_dim(dim, self.ndim, arg[3:])
    if self.ndim == 0: return MaxResult(self, Tensor._const(0, int64, self.device))
    index = getattr(self, arg)(d, keepdim=True)
    values = self.gather(d, index)
    return MaxResult(values, index) if keepdim else MaxResult(values.squeeze(d), index.squeeze(d))

  def amax(self, dim=None, keepdim=False) -> Tensor:
    if self.numel() == 0:  # torch: IndexError naming the empty dim, or RuntimeError when no dim was given
      if dim is None:
        raise RuntimeError(f"amax: cannot reduce a tensor of shape {self.shape} with no elements without a dim; "
                           f"the maximum of nothing is undefined")
      empty = [a for a in self._axes(dim, "amax") if self.shape[a] == 0]
      if empty:
        raise IndexError(f"amax: cannot reduce over dim {empty[0]}, which has size 0 in a tensor of shape {self.shape}")
    return self._reduce(F.Max, dim, keepdim, "amax")

  def amin(self, dim=None, keepdim=False) -> Tensor:
    # integers through ~x = -x - 1, which reverses their order without overflow: -x wraps for uint8 and INT_MIN
    if not self.dtype.is_float: return ~((~self).amax(dim, keepdim))
    return -((-self).amax(dim, keepdim))

  def mean(self, dim=None, keepdim=False, dtype=None) -> Tensor:
    x = self.cast(dtype) if dtype is not None else self
    if not x.dtype.is_float:
      raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got {x.dtype.name}")
    axes = self._axes(dim, "mean")
    n = prod(self.shape[a] for a in axes)
    s = x.sum(dim, keepdim)
    return s / n if n else s * math.nan

  def var(self, dim=None, unbiased=None, keepdim=False, correction=None) -> Tensor:
    if isinstance(dim, bool): dim, unbiased = None, dim  # var(x, unbiased), torch's other signature
    if correction is None: correction = 1 if unbiased is None or unbiased else 0
    x = self._float()
    axes = self._axes(dim, "var")
    n = prod(self.shape[a] for a in axes)
    dev = x - x.mean(axes, keepdim=True)
    return (dev * dev).sum(axes, keepdim) / max(0, n - correction)

  def std(self, dim=None, unbiased=None, keepdim=False, correction=None) -> Tensor:
    # sqrt's gradient at a zero variance is 0, as torch's std gives, not inf * 0 = NaN
    return F.CustomGrad.apply(self.var(dim, unbiased, keepdim, correction), value=lambda v: v.sqrt(),
                              grad=lambda v, g: (v == 0).where(0.0, g / (2 * v.sqrt())))

  def var_mean(self, dim=None, unbiased=None, keepdim=False, correction=None):
    if isinstance(dim, bool): dim, unbiased = None, dim
    return self.var(dim, unbiased, keepdim, correction), self.mean(dim, keepdim)

  def prod(self, dim=None, keepdim=False, dtype=None) -> Tensor:
    """Product by a log-depth tree of multiplications along each axis (exact signs and zeros). Its gradient is torch's
    formula, the product of the other elements: differentiating the tree itself made an expression that doubles with
    each level, and a kernel that took minutes to build for 25 elements."""
    axes = self._axes(dim, "prod")
    x = self.cast(dtype) if dtype is not None else self.cast(int64) if self.dtype is bool_ or self.dtype.is_int else self
    if x.dtype.is_float:
      def grad(x, g):
        zero = x == 0
        zeros = zero.sum(axes, keepdim=True)
        others = zero.where(1, x)._product(axes)  # of the nonzero elements
        # no zero: out / x; one zero: the others' product at the zero, 0 elsewhere; more: 0 (as torch)
        return (zeros == 0).where(g * others / x, (zero & (zeros == 1)).where(g * others, 0))
      x = F.CustomGrad.apply(x, value=lambda v: v._product(axes), grad=grad)
    else: x = x._product(axes)
    return x if keepdim else x.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))

  def _product(self, axes) -> Tensor:
    """The product over axes, kept as size 1 (no gradient of its own: see prod). The axes become one, whose elements
    are multiplied 8 at a time by a tree inside one kernel, each round's products stored before the next: one tree of
    the whole axis in one kernel would unroll every element into its source."""
    keep = tuple(1 if i in axes else s for i, s in enumerate(self.shape))
    rest = [i for i in range(self.ndim) if i not in axes]
    n = prod(self.shape[a] for a in axes)
    if n == 0: return Tensor.ones(*keep, dtype=self.dtype, device=self.device)
    x = self.permute(*rest, *axes).reshape(*[self.shape[i] for i in rest], n)
    while x.shape[-1] > 1:
      groups = -(-x.shape[-1] // 8)
      x = x._pad(((0, 0),) * (x.ndim - 1) + ((0, groups * 8 - x.shape[-1]),), value=1).reshape(*x.shape[:-1], groups, 8)
      while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        lead = ((0, s) for s in x.shape[:-1])
        x = x._shrink((*lead, (0, half))) * x._shrink((*((0, s) for s in x.shape[:-1]), (half, 2 * half)))
      x = x.reshape(*x.shape[:-2], groups)
      if groups > 1: x = F.Contiguous.apply(x, force=True)  # a kernel boundary
    return x.reshape(keep)

  def logsumexp(self, dim, keepdim=False) -> Tensor:
    x = self._float()
    m = x.amax(dim, keepdim=True).detach()
    m = m.isinf().where(0.0, m)  # all -inf (or +inf) rows: leave the values as they are
    out = (x - m).exp().sum(dim, keepdim=True).log() + m
    return out if keepdim else out.squeeze(self._axes(dim, "logsumexp"))

  def softmax(self, dim=-1, dtype=None) -> Tensor:
    dim = normalize_dim(dim, self.ndim, "softmax")
    x = self.cast(dtype) if dtype is not None else self._float()
    if x.numel() == 0: return x
    def value(x):
      e = (x - x.amax(dim, keepdim=True)).exp()
      return e / e.sum(dim, keepdim=True)
    return Tensor._output_grad(x, value, lambda s, g: s * (g - (g * s).sum(dim, keepdim=True)), lambda x: x.softmax(dim))

  def log_softmax(self, dim=-1, dtype=None) -> Tensor:
    dim = normalize_dim(dim, self.ndim, "log_softmax")
    x = self.cast(dtype) if dtype is not None else self._float()
    if x.numel() == 0: return x
    def value(x):
      shifted = x - x.amax(dim, keepdim=True)
      return shifted - shifted.exp().sum(dim, keepdim=True).log()
    return Tensor._output_grad(x, value, lambda out, g: g - out.exp() * g.sum(dim, keepdim=True),
                               lambda x: x.log_softmax(dim))

  @staticmethod
  def _output_grad(x: Tensor, value, grad, again) -> Tensor:
    """value(x), whose gradient grad(output, g) reads only its output (as torch's softmax's does): nothing of the
    forward's inside, so a softmax's forward stays one row kernel (see schedule.py) and its gradient is one too.
    Under create_graph the output is made again from x, `again(x)`, so that it is differentiated too."""
    kept = []

    def forward(x):
      kept.append(value(x))
      return kept[0]
    return F.CustomGrad.apply(x, value=forward, grad=lambda x, g: grad(again(x) if grad_enabled() else kept[0], g))

  def argmax(self, dim=None, keepdim=False) -> Tensor:
    """The first index of the maximum (NaN counts as the maximum, as in torch)."""
    if dim is None:
      out = self.reshape(-1).argmax(0)
      return out.reshape((1,) * self.ndim) if keepdim else out
    axis = normalize_dim(dim, self.ndim, "argmax")
    if self.ndim == 0: return Tensor._const(0, int64, self.device)  # a 0-d tensor's only element
    n = self.shape[axis]
    if n == 0: raise IndexError(f"argmax: cannot take the argmax of an empty dimension (shape {self.shape}, dim {dim})")
    x = self.isnan().where(math.inf, self) if self.dtype.is_float else self.cast(int64) if self.dtype is bool_ else self
    is_max = x == x.amax(axis, keepdim=True)
    # n - index, largest for the first position: its max over the axis gives the first maximum
    countdown = Tensor.arange(n, 0, -1, dtype=int32, device=self.device).reshape(*(n if i == axis else 1 for i in range(self.ndim)))
    first = is_max.where(countdown, 0).amax(axis, keepdim=keepdim)
    return (n - first).cast(int64)

  def argmin(self, dim=None, keepdim=False) -> Tensor:
    if not self.dtype.is_float: return (~(self.cast(int64) if self.dtype is bool_ else self)).argmax(dim, keepdim)  # as amin
    return (-self.isnan().where(-math.inf, self)).argmax(dim, keepdim)

  def any(self, dim=None, keepdim=False) -> Tensor:
    out = self.bool()._reduce(F.Max, dim, keepdim, "any")
    return out.cast(uint8) if self.dtype is uint8 else out  # torch keeps uint8 for uint8
  def all(self, dim=None, keepdim=False) -> Tensor:
    out = self.logical_not().any(dim, keepdim).logical_not()
    return out.cast(uint8) if self.dtype is uint8 else out
  def count_nonzero(self, dim=None) -> Tensor: return (self != 0).sum(dim)

  def norm(self, p="fro", dim=None, keepdim=False, dtype=None) -> Tensor:
    """torch.norm: the vector p-norm over dim (every dim by default; 'fro' is 2), or the nuclear norm ('nuc'), with
    torch's gradient (its subgradients where the norm or an element is zero)."""
    x = self.cast(dtype) if dtype is not None else self._float()
    if isinstance(p, str) and p != "fro":  # 'nuc' (or a name matrix_norm refuses)
      return _linalg().matrix_norm(x, p, tuple(range(x.ndim)) if dim is None else dim, keepdim)
    p = 2 if p == "fro" or p is None else p
    axes = x._axes(dim, "norm")
    def value(v):
      a = v.abs()
      if p == math.inf: return a.amax(axes, keepdim)
      if p == -math.inf: return a.amin(axes, keepdim)
      if p == 0: return (v != 0).sum(axes, keepdim).cast(v.dtype)
      if p == 1: return a.sum(axes, keepdim)
      if p == 2: return (v * v).sum(axes, keepdim).sqrt()
      return a.pow(p).sum(axes, keepdim).pow(1 / p)
    def grad(v, g):  # torch's norm_backward
      kept = tuple(1 if i in axes else s for i, s in enumerate(v.shape))
      n, g = value(v).reshape(kept), g.reshape(kept)
      if p == 0: return v.zeros_like()
      if p == 1: return v.sign() * g
      if p == 2: return (n == 0).where(0.0, v / n) * g
      if p in (math.inf, -math.inf):
        mask = ((v.abs() == n) | v.isnan()).cast(v.dtype)
        return v.sign() * (g / mask.sum(axes, keepdim=True)) * mask
      if p < 1: return (v == 0).where(0.0, v.sign() * v.abs().pow(p - 1)) * g * n.pow(1 - p)
      scale = (n == 0).where(0.0, g / n.pow(p - 1))
      return (v.sign() * v.abs().pow(p - 1) if p < 2 else v * v.abs().pow(p - 2)) * scale
    return F.CustomGrad.apply(x, value=value, grad=grad)

  def cumsum(self, dim=0) -> Tensor:
    """Inclusive prefix sum: a window sum over a padded view (quadratic in the axis length, one kernel)."""
    axis = normalize_dim(dim, self.ndim, "cumsum") if self.ndim else 0
    if self.ndim == 0: return self
    x = self.cast(default_int) if (self.dtype is bool_ or (self.dtype.is_int and self.dtype is not int64)) else self
    n = x.shape[axis]
    if n == 0: return x
    return _window_sum(x.transpose(axis, -1), n).transpose(axis, -1)

  def cumprod(self, dim=0) -> Tensor:
    """Inclusive prefix products: a window product over a view (quadratic in the axis length)."""
    if self.ndim == 0: return self
    axis = normalize_dim(dim, self.ndim, "cumprod")
    x = self.cast(default_int) if (self.dtype is bool_ or (self.dtype.is_int and self.dtype is not int64)) else self
    n = x.shape[axis]
    if n == 0: return x
    xt = x.transpose(axis, -1)
    keep = Tensor.ones(n, n, dtype=bool_, device=x.device).tril()
    return keep.where(xt.unsqueeze(-2).expand(*xt.shape[:-1], n, n), 1).prod(-1).transpose(axis, -1)

  def _ranks(self, dim: int, descending: bool, stable: bool = True) -> Tensor:
    """Each element's position in the sorted order along dim: how many come before it (ties by index)."""
    n = self.shape[dim]
    x = self.isnan().where(math.inf, self) if self.dtype.is_float else self.cast(int64) if self.dtype is bool_ else self
    a, b = x.unsqueeze(dim + 1), x.unsqueeze(dim)  # a: element i (at dim), b: element j (at dim + 1)
    pos = Tensor.arange(n, device=self.device)
    i = pos.reshape(*(n if d == dim else 1 for d in range(self.ndim + 1)))
    j = pos.reshape(*(n if d == dim + 1 else 1 for d in range(self.ndim + 1)))
    before = (b > a) if descending else (b < a)
    before = before | ((b == a) & (j < i))
    if self.dtype.is_float:  # NaN sorts above +inf, as in torch: last ascending, first descending
      na, nb = self.isnan().unsqueeze(dim + 1), self.isnan().unsqueeze(dim)
      before = (na != nb).where(nb if descending else na, before)
    return before.sum(dim + 1)

  def sort(self, dim=-1, descending=False, stable=False):
    """(values, indices), by ranking every pair: O(n^2) work per row, two kernels, exact and stable."""
    d = normalize_dim(dim, self.ndim, "sort") if self.ndim else 0
    if self.ndim == 0: return MaxResult(self, Tensor._const(0, int64, self.device))
    n = self.shape[d]
    rank = self._ranks(d, descending)
    # out[k] = the element whose rank is k
    k = Tensor.arange(n, device=self.device).reshape(*(n if a == d + 1 else 1 for a in range(self.ndim + 1)))
    hit = rank.unsqueeze(d + 1) == k  # [.., i at d, k at d+1, ..]
    pos = Tensor.arange(n, device=self.device).reshape(*(n if a == d else 1 for a in range(self.ndim + 1)))
    indices = hit.where(pos, 0).sum(d)
    return MaxResult(self.gather(d, indices), indices)

  def argsort(self, dim=-1, descending=False, stable=False) -> Tensor: return self.sort(dim, descending, stable)[1]

  def topk(self, k: int, dim=-1, largest=True, sorted=True):
    d = normalize_dim(dim, self.ndim, "topk")
    if not 0 <= k <= self.shape[d]: raise IndexError(f"topk: k ({k}) is out of range for dimension {dim} of size {self.shape[d]}")
    values, indices = self.sort(d, descending=largest)
    bounds = tuple((0, k) if a == d else (0, s) for a, s in enumerate(self.shape))
    return MaxResult(values._shrink(bounds), indices._shrink(bounds))

  def roll(self, shifts, dims=None) -> Tensor:
    if dims is None: return self.flatten().roll(shifts, 0).reshape(self.shape)
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    x = self
    for sh, dm in zip(shifts, dims):
      a = normalize_dim(dm, self.ndim, "roll")
      n = x.shape[a]
      if n == 0: continue
      sh %= n
      if sh == 0: continue
      head, tail = x.split([n - sh, sh], a)
      x = cat([tail, head], a)
    return x

  def repeat_interleave(self, repeats, dim=None) -> Tensor:
    if dim is None: return self.flatten().repeat_interleave(repeats, 0)
    d = normalize_dim(dim, self.ndim, "repeat_interleave")
    if isinstance(repeats, Tensor):
      if repeats.numel() == 1: repeats = int(repeats.item())
      else:
        counts = repeats.numpy().astype(np.int64)
        if counts.shape != (self.shape[d],):
          raise ShapeError(f"repeat_interleave: repeats of shape {counts.shape} do not match dim {dim} of size {self.shape[d]}")
        return self.index_select(d, Tensor(np.repeat(np.arange(self.shape[d]), counts), device=self.device))
    x = self.unsqueeze(d + 1)
    x = x.expand(*(repeats if a == d + 1 else s for a, s in enumerate(x.shape)))
    return x.flatten(d, d + 1)

  # ---- movement

  def reshape(self, *shape) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1: raise ShapeError(f"reshape: only one dimension can be inferred, got shape {shape}")
    if -1 in shape:
      known = prod(s for s in shape if s != -1)
      if known == 0 or self.numel() % known:
        raise ShapeError(f"reshape: shape {shape} is invalid for input of size {self.numel()} (shape {self.shape})")
      shape = tuple(self.numel() // known if s == -1 else s for s in shape)
    if any(s < 0 for s in shape): raise ShapeError(f"reshape: invalid shape {shape}")
    if prod(shape) != self.numel():
      raise ShapeError(f"reshape: shape {shape} is invalid for input of size {self.numel()} (shape {self.shape})")
    return self if shape == self.shape else F.Reshape.apply(self, shape=shape)
  view = reshape

  def view_as(self, other: Tensor) -> Tensor: return self.reshape(other.shape)

  def permute(self, *order) -> Tensor:
    order = order[0] if len(order) == 1 and isinstance(order[0], (tuple, list)) else order
    if len(order) != self.ndim:
      raise ShapeError(f"permute: order {tuple(order)} does not match the {self.ndim} dims of shape {self.shape}")
    order = tuple(normalize_dim(d, self.ndim, "permute") for d in order)
    if sorted(order) != list(range(self.ndim)): raise ShapeError(f"permute: order {tuple(order)} repeats a dim")
    return F.Permute.apply(self, order=order)

  def expand(self, *shape) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    if len(shape) < self.ndim:
      raise ShapeError(f"expand: the number of sizes ({len(shape)}) must be at least the number of dims of shape {self.shape}")
    x = self.reshape((1,) * (len(shape) - self.ndim) + self.shape) if len(shape) > self.ndim else self
    new = tuple(s if n == -1 else n for s, n in zip(x.shape, shape))
    for s, n in zip(x.shape, new):
      if s != n and s != 1:
        raise ShapeError(f"expand: shape {self.shape} cannot be expanded to {tuple(shape)} (a dim of size {s} is not 1)")
    return x if new == x.shape else F.Expand.apply(x, shape=new)

  def expand_as(self, other: Tensor) -> Tensor: return self.expand(other.shape)
  def broadcast_to(self, shape) -> Tensor: return self.expand(shape)

  def transpose(self, dim0=0, dim1=1) -> Tensor:
    a, b = normalize_dim(dim0, self.ndim, "transpose"), normalize_dim(dim1, self.ndim, "transpose")
    if self.ndim == 0: return self  # torch: a 0-d tensor's dims 0 and -1 are the same no-dim
    order = list(range(self.ndim))
    order[a], order[b] = order[b], order[a]
    return self.permute(order)
  swapaxes = transpose

  def movedim(self, source, destination) -> Tensor:
    src = [normalize_dim(s, self.ndim, "movedim") for s in (source if isinstance(source, (tuple, list)) else (source,))]
    dst = [normalize_dim(d, self.ndim, "movedim") for d in (destination if isinstance(destination, (tuple, list)) else (destination,))]
    order = [d for d in range(self.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)): order.insert(d, s)
    return self.permute(order)

  def squeeze(self, dim=None) -> Tensor:
    if dim is None: return self.reshape(tuple(s for s in self.shape if s != 1))
    if isinstance(dim, (tuple, list)) and not dim: return self  # torch: an empty tuple of dims squeezes none
    axes = self._axes(dim, "squeeze") if self.ndim else ()
    return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in axes and s == 1)))

  def unsqueeze(self, dim: int) -> Tensor:
    d = normalize_dim(dim, self.ndim + 1, "unsqueeze")
    return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

  def flatten(self, start_dim=0, end_dim=-1) -> Tensor:
    if self.ndim == 0: return self.reshape(1)
    s, e = normalize_dim(start_dim, self.ndim, "flatten"), normalize_dim(end_dim, self.ndim, "flatten")
    if s > e: raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return self.reshape(self.shape[:s] + (prod(self.shape[s:e + 1]),) + self.shape[e + 1:])

  def unflatten(self, dim: int, sizes) -> Tensor:
    d = normalize_dim(dim, self.ndim, "unflatten")
    return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])

  def flip(self, *args, dims=None) -> Tensor:
    if dims is not None and args: raise TypeError("flip: give dims positionally or as dims=, not both")
    dims = dims if dims is not None else args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    dims = (dims,) if isinstance(dims, int) else dims
    axes = tuple(normalize_dim(d, self.ndim, "flip") for d in dims)
    return F.Flip.apply(self, axes=axes) if axes else self

  def _pad(self, padding, value=0.0) -> Tensor:
    """Pad with ((before, after), ...) per dim, all non-negative."""
    padding = tuple(tuple(p) for p in padding)
    if all(p == (0, 0) for p in padding): return self
    out = F.Pad.apply(self, padding=padding)
    if value != 0:  # padding reads zero; other values are a where over the same mask (in this tensor's dtype)
      mask = F.Pad.apply(Tensor._const(True, bool_, self.device, self.shape), padding=padding)
      out = mask.where(out, Tensor._const(value, self.dtype, self.device))
    return out

  def _shrink(self, bounds) -> Tensor:
    bounds = tuple(tuple(b) for b in bounds)
    return self if all(b == (0, s) for b, s in zip(bounds, self.shape)) else F.Shrink.apply(self, bounds=bounds)

  def pad(self, pad: Sequence[int], value=0.0) -> Tensor:
    """torch.nn.functional.pad's constant mode: pairs from the last dim backwards; negative values crop."""
    if not isinstance(pad, (tuple, list)) or not all(isinstance(p, int) and not isinstance(p, bool) for p in pad):
      raise TypeError(f"pad: expected a flat sequence of ints, (left, right, top, bottom, ...) from the last dim "
                      f"backwards, as torch.nn.functional.pad takes; got {pad!r}")
    if len(pad) % 2 or len(pad) // 2 > self.ndim:
      raise ShapeError(f"pad: padding length {len(pad)} must be even and at most twice the dims of shape {self.shape}")
    pairs = [(0, 0)] * self.ndim
    for i in range(len(pad) // 2): pairs[self.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    x = self._shrink(tuple((max(0, -b), s - max(0, -a)) for (b, a), s in zip(pairs, self.shape)))
    return x._pad(tuple((max(0, b), max(0, a)) for b, a in pairs), value)

  def repeat(self, *repeats) -> Tensor:
    repeats = repeats[0] if len(repeats) == 1 and isinstance(repeats[0], (tuple, list)) else repeats
    if len(repeats) < self.ndim: raise ShapeError(f"repeat: {len(repeats)} repeats for shape {self.shape}; need at least {self.ndim}")
    x = self.reshape((1,) * (len(repeats) - self.ndim) + self.shape)
    inter = [d for s in x.shape for d in (1, s)]
    expanded = x.reshape(inter).expand([d for r, s in zip(repeats, x.shape) for d in (r, s)])
    return expanded.reshape(tuple(r * s for r, s in zip(repeats, x.shape)))

  def split(self, split_size_or_sections, dim=0) -> tuple[Tensor, ...]:
    axis = normalize_dim(dim, self.ndim, "split")
    n = self.shape[axis]
    if isinstance(split_size_or_sections, int):
      if split_size_or_sections <= 0: raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
      sizes = [min(split_size_or_sections, n - i) for i in range(0, n, split_size_or_sections)] or [0]
    else:
      sizes = list(split_size_or_sections)
      if sum(sizes) != n: raise ShapeError(f"split: sections {sizes} do not add up to {n}, the size of dim {dim} of shape {self.shape}")
    out, start = [], 0
    for s in sizes:
      out.append(self._shrink(tuple((start, start + s) if i == axis else (0, d) for i, d in enumerate(self.shape))))
      start += s
    return tuple(out)

  def chunk(self, chunks: int, dim=0) -> tuple[Tensor, ...]:
    axis = normalize_dim(dim, self.ndim, "chunk")
    return self.split(max(1, math.ceil(self.shape[axis] / chunks)), dim)

  def unbind(self, dim=0) -> tuple[Tensor, ...]:
    return tuple(t.squeeze(dim) for t in self.split(1, dim))

  def tril(self, diagonal=0) -> Tensor: return self._triangle(diagonal, lower=True)
  def triu(self, diagonal=0) -> Tensor: return self._triangle(diagonal, lower=False)
  def _triangle(self, k, lower):
    r, c = self.shape[-2:]
    rows = Tensor.arange(r, device=self.device).reshape(r, 1)
    cols = Tensor.arange(c, device=self.device).reshape(1, c)
    keep = (cols <= rows + k) if lower else (cols >= rows + k)
    return keep.where(self, 0)

  # ---- indexing

  def __getitem__(self, index) -> Tensor:
    index = index if isinstance(index, tuple) else (index,)
    index = tuple(Tensor(i, device=self.device) if isinstance(i, (list, np.ndarray)) else i for i in index)
    if any(isinstance(i, Tensor) and i.dtype is bool_ for i in index): index = self._expand_bool_masks(index)
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if sum(1 for i in index if i is Ellipsis) > 1: raise IndexError("an index can only have a single ellipsis ('...')")
    if n_real > self.ndim:
      raise IndexError(f"too many indices for tensor of dimension {self.ndim} (got {n_real}, shape {self.shape})")
    at = next((k for k, i in enumerate(index) if i is Ellipsis), None)
    if at is not None: index = index[:at] + (slice(None),) * (self.ndim - n_real) + index[at + 1:]
    else: index = index + (slice(None),) * (self.ndim - n_real)
    # basic indexing first (tensor-indexed dims kept whole), then the tensor indices as one gather
    basic = tuple(slice(None) if isinstance(i, Tensor) else i for i in index)
    x, out_dim, tensor_dims = self._basic_index(basic), 0, []
    for i in index:
      if isinstance(i, Tensor): tensor_dims.append((out_dim, i))
      if i is None or isinstance(i, (slice, Tensor)): out_dim += 1
    return x._take(tensor_dims) if tensor_dims else x

  def _expand_bool_masks(self, index) -> tuple:
    """A bool mask over k dims is the k integer index tensors of its True places (read on the host, as torch does)."""
    out, dim = [], 0
    for i in index:
      if isinstance(i, Tensor) and i.dtype is bool_:
        want = self.shape[dim:dim + i.ndim]
        if i.shape != want:
          raise IndexError(f"the shape of the mask {i.shape} at index {dim} does not match the shape of the indexed tensor {self.shape}")
        out.extend(Tensor(nz.astype(np.int64), device=self.device) for nz in np.nonzero(i.numpy()))
        dim += i.ndim
      else:
        out.append(i)
        if i is not None and i is not Ellipsis: dim += 1
    return tuple(out)

  def _parse_basic(self, index):
    """ints, slices and None as (bounds, flips, strides, final shape): a shrink, a flip and a stride of views."""
    final_shape, dim = [], 0
    bounds, flips, strides = [], [], []
    for i in index:
      if i is None: final_shape.append(1); continue
      size = self.shape[dim]
      if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
        i = int(i)
        if not -size <= i < size:
          raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {size}")
        i %= size
        bounds.append((i, i + 1)); flips.append(False); strides.append(1)
      elif isinstance(i, slice):
        start, stop, step = i.indices(size)
        count = len(range(start, stop, step))
        if step > 0: bounds.append((start, start + (count - 1) * step + 1) if count else (0, 0)); flips.append(False)
        else:
          lo = start + (count - 1) * step
          bounds.append((lo, start + 1) if count else (0, 0)); flips.append(True)
        strides.append(abs(step)); final_shape.append(count)
      else: raise IndexError(f"unsupported index {i!r} of type {type(i).__name__}")
      dim += 1
    return bounds, flips, strides, tuple(final_shape)

  def _basic_index(self, index) -> Tensor:
    bounds, flips, strides, final_shape = self._parse_basic(index)
    x = self._shrink(tuple(bounds))
    if any(flips): x = x.flip(tuple(d for d, f in enumerate(flips) if f))
    if any(s > 1 for s in strides): x = x._stride(strides)
    return x.reshape(final_shape)

  def _basic_place(self, index, value: Tensor) -> Tensor:
    """`value` (shaped like self[index]) put where self[index] reads, zeros elsewhere: the inverse views."""
    bounds, flips, strides, _ = self._parse_basic(index)
    counts = [(e - b + st - 1) // st if e > b else 0 for (b, e), st in zip(bounds, strides)]
    v = value.reshape(tuple(counts))
    if any(st > 1 for st in strides):
      v = v.reshape(tuple(d for c in counts for d in (c, 1)))
      v = v._pad(tuple(p for st in strides for p in ((0, 0), (0, st - 1))))
      v = v.reshape(tuple(c * st for c, st in zip(counts, strides)))
      v = v._shrink(tuple((0, e - b) for b, e in bounds))
    if any(flips): v = v.flip(tuple(d for d, f in enumerate(flips) if f))
    return v._pad(tuple((b, s - e) for (b, e), s in zip(bounds, self.shape)))

  def _take(self, tensor_dims: list) -> Tensor:
    """Advanced indexing with integer tensors at the given dims, NumPy's placement rules, as one gather."""
    dims = [d for d, _ in tensor_dims]
    for d, t in tensor_dims:
      if t.dtype.is_float: raise IndexError(f"tensors used as indices must be long, int or bool, got {t.dtype.name}")
    idx_shape = broadcast_shape(*(t.shape for _, t in tensor_dims), op="index")
    # bring the indexed dims to the front, merged into one; the indexes combine into one flat index
    rest = [d for d in range(self.ndim) if d not in dims]
    x = self.permute(dims + rest)
    sizes = [self.shape[d] for d in dims]
    flat = None
    for (d, t), stride in zip(tensor_dims, [prod(sizes[k + 1:]) for k in range(len(sizes))]):
      _check_index_range(t, self.shape[d], d)
      t = t.cast(int64)
      t = (t < 0).where(t + self.shape[d], t)
      part = t if stride == 1 else t * stride
      flat = part if flat is None else flat + part
    merged = x.reshape((prod(sizes),) + tuple(self.shape[d] for d in rest))
    out = merged._take_along_front(flat._broadcast_to(idx_shape))
    # NumPy: adjacent index dims take the first one's place; separated ones go first
    if dims == list(range(dims[0], dims[0] + len(dims))) and dims[0] != 0:
      k, first = len(idx_shape), dims[0]
      order = list(range(k, k + first)) + list(range(k)) + list(range(k + first, out.ndim))
      out = out.permute(order)
    return out

  def _take_along_front(self, index: Tensor) -> Tensor:
    """out[i.., r..] = self[index[i..], r..] for an index of any shape (a view and one gather, no copies)."""
    lead, rest = index.shape, self.shape[1:]
    if not lead: return self._take_along_front(index.reshape(1)).reshape(rest)
    k = len(lead)
    src = self.reshape((1,) * (k - 1) + self.shape).expand(lead[:-1] + self.shape)
    idx = index.reshape(lead + (1,) * len(rest)).expand(lead + rest)
    return F.Gather.apply(src, idx, dim=k - 1)

  def gather(self, dim: int, index: Tensor) -> Tensor:
    """torch.gather: out[i][j][k] = self[i][index[i][j][k]][k] for dim=1."""
    d = normalize_dim(dim, self.ndim, "gather")
    if not isinstance(index, Tensor) or index.dtype.is_float:
      raise TypeError(f"gather: index must be an integer tensor, got {getattr(index, 'dtype', type(index).__name__)}")
    _same_device("gather", self, index)
    if index.ndim != self.ndim:
      raise ShapeError(f"gather: index has {index.ndim} dims but input has {self.ndim} (shapes {index.shape} and {self.shape})")
    for a, (i, s) in enumerate(zip(index.shape, self.shape)):
      if a != d and i > s:
        raise ShapeError(f"gather: index shape {index.shape} is larger than input shape {self.shape} at dim {a}")
    _check_index_range(index, self.shape[d], d, negative_ok=False)
    src = self._shrink(tuple((0, s) if a == d else (0, i) for a, (i, s) in enumerate(zip(index.shape, self.shape))))
    return F.Gather.apply(src, index.cast(int64), dim=d)

  def take_along_dim(self, indices: Tensor, dim: int) -> Tensor:
    shape = broadcast_shape(tuple(s if a != normalize_dim(dim, self.ndim) else 1 for a, s in enumerate(self.shape)),
                            tuple(s if a != normalize_dim(dim, self.ndim) else 1 for a, s in enumerate(indices.shape)))
    d = normalize_dim(dim, self.ndim, "take_along_dim")
    x = self.expand(tuple(s if a != d else self.shape[d] for a, s in enumerate(shape)))
    i = indices.expand(tuple(s if a != d else indices.shape[d] for a, s in enumerate(shape)))
    return x.gather(d, i)

  def index_select(self, dim: int, index: Tensor) -> Tensor:
    if self.ndim == 0: return self.reshape(1).index_select(dim, index).reshape(())
    d = normalize_dim(dim, self.ndim, "index_select")
    if index.ndim > 1: raise ShapeError(f"index_select: index must be 0-D or 1-D, got shape {index.shape}")
    return self[(slice(None),) * d + (index.reshape(-1),)]

  def _scatter_sum(self, shape, dim: int, index: Tensor) -> Tensor:
    """Zeros of `shape` with this tensor added where index points along dim (a gather's gradient)."""
    return scatter_sum(shape, dim, index, self)

  def scatter_add(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
    d = normalize_dim(dim, self.ndim, "scatter_add")
    _check_index_range(index, self.shape[d], d, negative_ok=False)
    src = src._shrink(tuple((0, s) for s in index.shape))
    return self + scatter_sum(self.shape, d, index, src)

  def scatter(self, dim: int, index: Tensor, src, reduce=None) -> Tensor:
    """torch.scatter; where an index repeats, the last write wins (torch leaves that order undefined)."""
    if reduce == "add": return self.scatter_add(dim, index, src if isinstance(src, Tensor) else index.full_like(src, dtype=self.dtype))
    if reduce is not None: raise NotImplementedError(f"scatter: reduce={reduce!r} is not supported; use 'add' or scatter_reduce")
    d = normalize_dim(dim, self.ndim, "scatter")
    _check_index_range(index, self.shape[d], d, negative_ok=False)
    src = src._shrink(tuple((0, s) for s in index.shape)) if isinstance(src, Tensor) else Tensor.full(index.shape, src, dtype=self.dtype, device=self.device)
    written = scatter_sum(self.shape, d, index, index.ones_like(dtype=int32)) > 0
    # the value of the last writer: scatter its position + 1 with max, then read src there
    n = index.shape[d]
    pos = Tensor.arange(1, n + 1, device=self.device).reshape(*(n if a == d else 1 for a in range(index.ndim)))._broadcast_to(index.shape)
    last = _scatter_reduce_max(self.shape, d, index, pos)
    picked = src.cast(self.dtype)._pad(tuple((0, s - i) for s, i in zip(self.shape, src.shape))).gather(d, (last - 1).maximum(0))
    return written.where(picked, self)

  def nonzero(self, as_tuple: bool = False):
    """The indices of the non-zero elements, a row each (or a tensor per dim): their count decides the shape, so
    this reads the values back to the host, as torch's nonzero waits for a GPU."""
    values = self.numpy()
    if as_tuple and self.ndim == 0: values = values.reshape(1)  # a 0-d tensor counts as 1-d here, as in torch
    rows = np.argwhere(values).astype(np.int64)
    return tuple(Tensor(rows[:, d], device=self.device) for d in range(values.ndim)) if as_tuple else Tensor(rows, device=self.device)
  def argwhere(self) -> Tensor: return self.nonzero()

  def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of the dim1 x dim2 planes, `offset` above (or below) the main one, as the last dim: a view."""
    d1, d2 = normalize_dim(dim1, self.ndim, "diagonal"), normalize_dim(dim2, self.ndim, "diagonal")
    if d1 == d2: raise ValueError(f"diagonal: dim1 and dim2 must differ, got {dim1} and {dim2}")
    y = self.permute(*(a for a in range(self.ndim) if a not in (d1, d2)), d1, d2)
    y = y[..., :, offset:] if offset >= 0 else y[..., -offset:, :]
    n, m = y.shape[-2:]
    # row i starts at i * m in the flattened plane: every (m + 1)-th element from 0 is (i, i)
    return y.reshape(*y.shape[:-2], n * m)[..., ::m + 1][..., :min(n, m)]

  def diag(self, diagonal: int = 0) -> Tensor:
    """A 1-D tensor's values on a square matrix's diagonal (`diagonal` places above the main one); a matrix's diagonal."""
    if self.ndim == 2: return self.diagonal(diagonal)
    if self.ndim != 1: raise ShapeError(f"diag: expected a 1-D or 2-D tensor, got shape {self.shape}")
    return self.diag_embed(diagonal)  # views, where eye * self put NaN beside an inf

  def index_add(self, dim: int, index: Tensor, source: Tensor, alpha=1) -> Tensor:
    """self with source's slices added along dim at index's positions (repeats accumulate), as torch.index_add."""
    if self.ndim == 0: return self.reshape(1).index_add(dim, index, source.reshape(1), alpha).reshape(())
    d = normalize_dim(dim, self.ndim, "index_add")
    full = self._index_of_slices(d, index, source, "index_add")
    return self.scatter_add(d, full, source * alpha if alpha != 1 else source)

  def masked_select(self, mask: Tensor) -> Tensor:
    shape = broadcast_shape(self.shape, mask.shape, op="masked_select")
    return self._broadcast_to(shape)[mask._broadcast_to(shape)]

  def __setitem__(self, index, value):
    """x[index] = value, in place: a where over the indexed places (a scatter for tensor indices)."""
    if self.requires_grad and self._ctx is None and grad_enabled():
      raise RuntimeError("a leaf tensor that requires grad is being used in an in-place operation (x[...] = v); "
                         "wrap it in lg.no_grad() or index a clone")
    value = value if isinstance(value, Tensor) else Tensor._const(value, self.dtype, self.device)
    idx = index if isinstance(index, tuple) else (index,)
    if not any(isinstance(i, (Tensor, list, np.ndarray)) for i in idx) and sum(i is Ellipsis for i in idx) <= 1:
      # ints and slices: the value and a mask placed by views, one where: no scatter
      n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
      at = next((k for k, i in enumerate(idx) if i is Ellipsis), None)
      full = idx[:at] + (slice(None),) * (self.ndim - n_real) + idx[at + 1:] if at is not None else idx + (slice(None),) * (self.ndim - n_real)
      full = tuple(i for i in full if i is not None)
      target_shape = self._basic_index(full).shape
      value = value.cast(self.dtype)._broadcast_to(broadcast_shape(target_shape, value.shape, op="setitem"))
      if value.shape != target_shape:
        raise ShapeError(f"setitem: value of shape {value.shape} cannot be broadcast to the indexed shape {target_shape}")
      mask = self._basic_place(full, Tensor._const(True, bool_, self.device, target_shape))
      new = mask.where(self._basic_place(full, value), self)
    else:
      positions = Tensor.arange(self.numel(), device=self.device).reshape(self.shape)[index]
      value = value.cast(self.dtype)._broadcast_to(positions.shape)
      new = self.reshape(-1).scatter(0, positions.reshape(-1), value.reshape(-1)).reshape(self.shape)
    hook = this_thread.assign_hook
    if hook is not None: hook(self)  # a jitted call's replay updates this tensor too
    self.lazydata, self._ctx, self.requires_grad = new.lazydata, new._ctx, new.requires_grad or self.requires_grad
    this_thread.realize_next[id(self)] = self

  def _stride(self, strides) -> Tensor:
    """Every strides[d]-th element along each dim, starting at the first: a pad, reshape and shrink of views."""
    shape = self.shape
    counts = [(s + st - 1) // st for s, st in zip(shape, strides)]
    x = self._pad(tuple((0, c * st - s) for c, st, s in zip(counts, strides, shape)))
    x = x.reshape(tuple(d for c, st in zip(counts, strides) for d in (c, st)))
    x = x._shrink(tuple(b for c in counts for b in ((0, c), (0, 1))))
    return x.reshape(tuple(counts))

  # ---- more movement and indexing with torch's names (from torch's op database)

  def narrow(self, dim: int, start, length: int) -> Tensor:
    d = normalize_dim(dim, self.ndim, "narrow")
    n, start = self.shape[d], int(start)  # start may be a 0-d integer tensor, as torch allows
    if not -n <= start <= n: raise IndexError(f"narrow: start ({start}) is out of range for dim {dim} of size {n}")
    start %= max(n, 1)
    if length < 0 or start + length > n:
      raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({n})")
    return self._shrink(tuple((start, start + length) if a == d else (0, s) for a, s in enumerate(self.shape)))
  narrow_copy = narrow  # lazygrad's in-place ops rebind a tensor, never write through a view: a view reads as a copy

  def select(self, dim: int, index: int) -> Tensor:
    if self.ndim == 0: raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = normalize_dim(dim, self.ndim, "select")
    n = self.shape[d]
    if not -n <= index < n: raise IndexError(f"select: index {index} is out of range for dim {dim} of size {n}")
    return self.narrow(d, index % n, 1).squeeze(d)

  def _place(self, index: tuple, src: Tensor, op: str) -> Tensor:
    """self with self[index] (ints and slices) replaced by src: src and a mask put in place by views, one where."""
    index = index + (slice(None),) * (self.ndim - len(index))
    target = self._basic_index(index).shape
    if src.shape != target: raise ShapeError(f"{op}: src of shape {src.shape} does not match the slice's shape {target}")
    mask = self._basic_place(index, Tensor._const(True, bool_, self.device, target))
    return mask.where(self._basic_place(index, src.cast(self.dtype)), self)

  def select_scatter(self, src: Tensor, dim: int, index: int) -> Tensor:
    d = normalize_dim(dim, self.ndim, "select_scatter")
    self.select(d, index)  # its range check
    return self._place((slice(None),) * d + (index,), src, "select_scatter")

  def slice_scatter(self, src: Tensor, dim: int = 0, start=None, end=None, step: int = 1) -> Tensor:
    d = normalize_dim(dim, self.ndim, "slice_scatter")
    if step <= 0: raise RuntimeError(f"slice_scatter: step must be positive, got {step}")
    return self._place((slice(None),) * d + (slice(start, end, step),), src, "slice_scatter")

  def _embed_diagonal(self, offset: int, rows: int, cols: int) -> Tensor:
    """(..., L) -> (..., rows, cols) with the values on the `offset` diagonal and zeros elsewhere, as views: rows
    [v_i, 0 .. 0] of length L + 1 read back L at a time put v_i at (i, i) (no multiply: inf and NaN stay put)."""
    *lead, n = self.shape
    keep = tuple((0, s) for s in lead)
    sq = self.unsqueeze(-1)._pad(((0, 0),) * len(lead) + ((0, 0), (0, n)))
    sq = sq.reshape(*lead, n * (n + 1))._shrink(keep + ((0, n * n),)).reshape(*lead, n, n)
    r, c = (0, offset) if offset >= 0 else (-offset, 0)
    return sq._pad(((0, 0),) * len(lead) + ((r, rows - r - n), (c, cols - c - n)))

  def diag_embed(self, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    nd = self.ndim + 1
    d1, d2 = normalize_dim(dim1, nd, "diag_embed"), normalize_dim(dim2, nd, "diag_embed")
    if d1 == d2: raise RuntimeError(f"diag_embed: diagonal dimensions cannot be identical {dim1}, {dim2}")
    m = self.shape[-1] + abs(offset)
    return self._embed_diagonal(offset, m, m).movedim((nd - 2, nd - 1), (d1, d2))

  def diagflat(self, offset: int = 0) -> Tensor: return self.flatten().diag_embed(offset)

  def diagonal_scatter(self, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    d1, d2 = normalize_dim(dim1, self.ndim, "diagonal_scatter"), normalize_dim(dim2, self.ndim, "diagonal_scatter")
    want = self.diagonal(offset, d1, d2).shape
    if src.shape != want: raise ShapeError(f"diagonal_scatter: src of shape {src.shape} does not match the diagonal's shape {want}")
    n1, n2 = self.shape[d1], self.shape[d2]
    place = lambda v: v._embed_diagonal(offset, n1, n2).movedim((self.ndim - 2, self.ndim - 1), (d1, d2))
    return place(Tensor._const(True, bool_, self.device, src.shape)).where(place(src.cast(self.dtype)), self)

  def fliplr(self) -> Tensor:
    if self.ndim < 2: raise RuntimeError(f"fliplr: input must be >= 2-d, got shape {self.shape}")
    return self.flip(1)
  def flipud(self) -> Tensor:
    if self.ndim < 1: raise RuntimeError("flipud: input must be >= 1-d, got a 0-d tensor")
    return self.flip(0)

  def rot90(self, k: int = 1, dims=(0, 1)) -> Tensor:
    if len(dims) != 2: raise RuntimeError(f"rot90: expected total rotation dims == 2, but got dims = {len(dims)}")
    if self.ndim < 2: raise RuntimeError(f"rot90: expected total dims >= 2, but got total dims = {self.ndim}")
    a, b = (normalize_dim(d, self.ndim, "rot90") for d in dims)
    if a == b: raise RuntimeError(f"rot90: expected rotation dims to be different, but got dim0 = {a} and dim1 = {b}")
    k %= 4
    if k == 1: return self.flip(b).transpose(a, b)
    if k == 2: return self.flip(a, b)
    if k == 3: return self.flip(a).transpose(a, b)
    return self

  def ravel(self) -> Tensor: return self.reshape(-1)
  def reshape_as(self, other: Tensor) -> Tensor: return self.reshape(other.shape)

  def tile(self, *dims) -> Tensor:
    dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
    return self.repeat((1,) * (self.ndim - len(dims)) + tuple(dims))

  def unsafe_split(self, split_size, dim=0) -> tuple[Tensor, ...]: return self.split(split_size, dim)
  def unsafe_chunk(self, chunks: int, dim=0) -> tuple[Tensor, ...]: return self.chunk(chunks, dim)
  def split_with_sizes(self, split_sizes, dim=0) -> tuple[Tensor, ...]: return self.split(list(split_sizes), dim)

  def tensor_split(self, indices_or_sections, dim=0) -> tuple[Tensor, ...]:
    """Pieces along dim: n sections (the first n % size one longer), or cut before each given index (as slices)."""
    d = normalize_dim(dim, self.ndim, "tensor_split")
    cuts = indices_or_sections
    if isinstance(cuts, Tensor):  # sizes are structure: read on the host, as torch requires a CPU tensor here
      if cuts.dtype.is_float or cuts.ndim > 1: raise TypeError(f"tensor_split: expected a 0-d or 1-d integer tensor, got {cuts.dtype.name} {cuts.shape}")
      cuts = int(cuts.item()) if cuts.ndim == 0 else [int(c) for c in cuts.tolist()]
    n = self.shape[d]
    if isinstance(cuts, int):
      if cuts <= 0: raise RuntimeError(f"tensor_split: number of sections must be larger than 0, got {cuts}")
      q, r = divmod(n, cuts)
      cuts = [k * q + min(k, r) for k in range(1, cuts)]
    bounds = [None, *cuts, None]
    return tuple(self[(slice(None),) * d + (slice(a, b),)] for a, b in zip(bounds, bounds[1:]))

  def _split_at(self, sections, dim: int, op: str) -> tuple[Tensor, ...]:
    if isinstance(sections, int) and (sections == 0 or self.shape[dim] % sections):
      raise RuntimeError(f"{op}: dimension {dim} of size {self.shape[dim]} is not divisible by the split_size {sections}")
    return self.tensor_split(sections, dim)
  def hsplit(self, sections) -> tuple[Tensor, ...]:
    if self.ndim < 1: raise RuntimeError("hsplit: requires a tensor with at least 1 dimension, got a 0-d tensor")
    return self._split_at(sections, 1 if self.ndim > 1 else 0, "hsplit")
  def vsplit(self, sections) -> tuple[Tensor, ...]:
    if self.ndim < 2: raise RuntimeError(f"vsplit: requires a tensor with at least 2 dimensions, got shape {self.shape}")
    return self._split_at(sections, 0, "vsplit")
  def dsplit(self, sections) -> tuple[Tensor, ...]:
    if self.ndim < 3: raise RuntimeError(f"dsplit: requires a tensor with at least 3 dimensions, got shape {self.shape}")
    return self._split_at(sections, 2, "dsplit")

  def unfold(self, dimension: int, size: int, step: int) -> Tensor:
    """Every window of `size` along dimension, `step` apart, as a new last dim: a view. The dim repeated `size` times
    and read back in rows one longer starts row j at x[j]; the windows are its columns."""
    if self.ndim == 0:
      normalize_dim(dimension, 0, "unfold")
      if size > 1 or step <= 0: raise RuntimeError(f"unfold: size {size} is too large for a 0-d tensor, or step {step} <= 0")
      return self.reshape(1)
    d = normalize_dim(dimension, self.ndim, "unfold")
    n = self.shape[d]
    if size > n: raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0: raise RuntimeError(f"unfold: step is {step} but must be > 0")
    x = self.movedim(d, -1)
    lead, keep = x.shape[:-1], tuple((0, s) for s in x.shape[:-1])
    rows = x.unsqueeze(-2).expand(*lead, size, n).reshape(*lead, size * n)._pad(((0, 0),) * len(lead) + ((0, size),))
    rows = rows.reshape(*lead, size, n + 1)._shrink(keep + ((0, size), (0, n - size + 1)))  # [j, t] = x[t + j]
    return rows.transpose(-1, -2)._stride((1,) * len(lead) + (step, 1)).movedim(-2, d)

  def _strided_positions(self, size, stride, storage_offset: int, op: str) -> Tensor:
    """The flat positions, in this tensor's row-major order (its storage, were it contiguous), of a strided view."""
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride): raise RuntimeError(f"{op}: mismatch in length of strides and shape ({size} vs {stride})")
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if prod(size) and (storage_offset < 0 or any(s < 0 for s in stride) or last >= self.numel()):
      raise RuntimeError(f"{op}: setStorage: sizes {list(size)}, strides {list(stride)}, storage offset {storage_offset} "
                         f"are out of bounds for a storage of {self.numel()} elements")
    pos = Tensor._const(storage_offset, int64, self.device, ())
    for a, (n, s) in enumerate(zip(size, stride)):
      pos = pos + Tensor.arange(n, device=self.device).reshape(*(n if b == a else 1 for b in range(len(size)))) * s
    return pos._broadcast_to(size)

  def as_strided(self, size, stride, storage_offset: int = 0) -> Tensor:
    """A gather over the computed flat positions (one view cannot express arbitrary strides; torch's views overlap
    and alias storage, which lazygrad's tensors never share): an overlapping view's gradient sums, as torch's."""
    pos = self._strided_positions(size, stride, storage_offset, "as_strided")
    if pos.numel() == 0: return self.reshape(-1)._shrink(((0, 0),)).reshape(pos.shape)
    return self.reshape(-1)._take_along_front(pos)

  def as_strided_scatter(self, src: Tensor, size, stride, storage_offset: int = 0) -> Tensor:
    pos = self._strided_positions(size, stride, storage_offset, "as_strided_scatter")
    if src.shape != pos.shape: raise ShapeError(f"as_strided_scatter: src of shape {src.shape} does not match size {tuple(size)}")
    if pos.numel() == 0: return self * 1
    return self.reshape(-1).scatter(0, pos.reshape(-1), src.reshape(-1)).reshape(self.shape)

  def take(self, index: Tensor) -> Tensor: return self.reshape(-1)[index]

  def put(self, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    n = self.numel()
    if index.numel() != source.numel():
      raise RuntimeError(f"put: source and index should have the same number of elements, got {source.numel()} and {index.numel()}")
    _check_index_range(index, n, 0)
    flat = index.reshape(-1).cast(int64)
    flat = (flat < 0).where(flat + n, flat)
    x, src = self.reshape(-1), source.reshape(-1).cast(self.dtype)
    add = accumulate or index.numel() == 0  # nothing to write: scatter's last-writer search cannot reduce nothing
    return (x.scatter_add(0, flat, src) if add else x.scatter(0, flat, src)).reshape(self.shape)

  def index_put(self, indices, values: Tensor, accumulate: bool = False) -> Tensor:
    """Out of place, self[indices] = values (+= with accumulate): the flat positions indexed, then one scatter."""
    positions = Tensor.arange(self.numel(), device=self.device).reshape(self.shape)[tuple(indices)]
    values = Tensor._wrap_tensor(values, self).cast(self.dtype)
    if broadcast_shape(positions.shape, values.shape, op="index_put") != positions.shape:
      raise ShapeError(f"index_put: values of shape {values.shape} cannot be broadcast to the indexed shape {positions.shape}")
    x, positions, values = self.reshape(-1), positions.reshape(-1), values._broadcast_to(positions.shape).reshape(-1)
    add = accumulate or positions.numel() == 0  # nothing to write: scatter's last-writer search cannot reduce nothing
    return (x.scatter_add(0, positions, values) if add else x.scatter(0, positions, values)).reshape(self.shape)

  def masked_scatter(self, mask: Tensor, source: Tensor) -> Tensor:
    """source's elements, in order, at mask's True places: each True place reads source at the count of Trues
    before it (a prefix sum), one gather."""
    if mask.dtype is not bool_: raise RuntimeError(f"masked_scatter: expected a bool mask, got {mask.dtype.name}")
    shape = broadcast_shape(self.shape, mask.shape, op="masked_scatter")
    x, m = self._broadcast_to(shape), mask._broadcast_to(shape)
    if prod(shape) == 0: return x * 1
    src = source.reshape(-1).cast(self.dtype)
    if (count := int(m.sum().item())) > src.numel():  # a count read back, as torch's check does
      raise RuntimeError(f"masked_scatter: expected source to have at least {count} elements, got {src.numel()}")
    if src.numel() == 0: return x * 1
    at = (m.reshape(-1).cumsum(0) - 1).maximum(0)
    return m.where(src._take_along_front(at).reshape(shape), x)

  def _index_of_slices(self, dim: int, index: Tensor, source: Tensor, op: str) -> Tensor:
    """A 1-D index of source's slices along dim, broadcast to source's shape (for a scatter along dim)."""
    if index.ndim > 1 or index.numel() != source.shape[dim]:
      raise ShapeError(f"{op}: index must be 1-D with one entry per slice of source along dim {dim}, got index "
                       f"shape {index.shape} and source shape {source.shape}")
    return index.reshape(*(-1 if a == dim else 1 for a in range(source.ndim))).expand(source.shape)

  def index_copy(self, dim: int, index: Tensor, source: Tensor) -> Tensor:
    if self.ndim == 0: return self.reshape(1).index_copy(dim, index, source.reshape(1)).reshape(())
    d = normalize_dim(dim, self.ndim, "index_copy")
    return self.scatter(d, self._index_of_slices(d, index, source, "index_copy"), source)

  def index_fill(self, dim: int, index: Tensor, value) -> Tensor:
    if self.ndim == 0: return self.reshape(1).index_fill(dim, index, value).reshape(())
    d = normalize_dim(dim, self.ndim, "index_fill")
    if isinstance(value, Tensor) and value.ndim != 0:
      raise RuntimeError(f"index_fill: only supports a 0-dimensional value tensor, got one of shape {value.shape}")
    value = value.cast(self.dtype) if isinstance(value, Tensor) else Tensor._const(value, self.dtype, self.device)
    if index.numel() == 0: return self * 1
    n = self.shape[d]
    _check_index_range(index, n, d)
    idx = index.reshape(-1).cast(int64)
    hit = ((idx < 0).where(idx + n, idx).reshape(-1, 1) == Tensor.arange(n, device=self.device).reshape(1, n)).any(0)
    return hit.reshape(*(n if a == d else 1 for a in range(self.ndim))).where(value, self)

  def scatter_reduce(self, dim: int, index: Tensor, src: Tensor, reduce: str, include_self: bool = True) -> Tensor:
    """torch.scatter_reduce: each place along dim reduces (sum, prod, mean, amax, amin) the src values whose index
    points at it, and its own value with include_self. One fused reduction over index's extent per output element:
    the candidates are src where the index matches, the reduction's identity elsewhere; ties in amax and amin share
    the gradient evenly, self included, as torch's."""
    fills = {"sum": 0, "mean": 0, "prod": 1, "amax": -math.inf, "amin": math.inf}
    if reduce not in fills: raise RuntimeError(f"scatter_reduce: reduce argument must be one of {', '.join(fills)}, got {reduce!r}")
    if self.ndim == 0: return self.reshape(1).scatter_reduce(dim, index.reshape(1), src.reshape(1), reduce, include_self).reshape(())
    d = normalize_dim(dim, self.ndim, "scatter_reduce")
    if not index.ndim == src.ndim == self.ndim:
      raise ShapeError(f"scatter_reduce: index, src and self must have the same number of dims, got shapes {index.shape}, {src.shape} and {self.shape}")
    if any(i > s for i, s in zip(index.shape, src.shape)) or any(i > s for a, (i, s) in enumerate(zip(index.shape, self.shape)) if a != d):
      raise ShapeError(f"scatter_reduce: index of shape {index.shape} is larger than src {src.shape} or self {self.shape} outside dim {dim}")
    if index.numel() == 0: return self * 1
    _check_index_range(index, self.shape[d], d, negative_ok=False)
    fill = fills[reduce]
    if not self.dtype.is_float and math.isinf(fill): fill = int(np.iinfo(self.dtype.np).min if fill < 0 else np.iinfo(self.dtype.np).max)
    src = src._shrink(tuple((0, s) for s in index.shape)).cast(self.dtype)
    hits = _index_matches(self.shape[d], d, index, self.device)  # [.., place at d, index's extent at d + 1, ..]
    # index may be smaller than self outside dim: the places it does not reach have no candidates
    pads = tuple((0, 0) if a in (d, d + 1) else (0, self.shape[a - (a > d)] - hits.shape[a]) for a in range(hits.ndim))
    cand = hits.where(src.unsqueeze(d), Tensor._const(fill, self.dtype, self.device))._pad(pads, value=fill)
    if include_self: cand = cat([self.unsqueeze(d + 1), cand], d + 1)
    out = {"sum": cand.sum, "mean": cand.sum, "prod": cand.prod, "amax": cand.amax, "amin": cand.amin}[reduce](d + 1)
    out = out.cast(self.dtype)
    count = hits.sum(d + 1)._pad(pads[:d + 1] + pads[d + 2:])
    if reduce == "mean":
      n = count + 1 if include_self else count.maximum(1)
      out = out / n if self.dtype.is_float else out.floor_divide(n).cast(self.dtype)
    return out if include_self else (count > 0).where(out, self)

  def index_reduce(self, dim: int, index: Tensor, source: Tensor, reduce: str, include_self: bool = True) -> Tensor:
    if reduce not in ("prod", "mean", "amax", "amin"):
      raise RuntimeError(f"index_reduce: reduce argument must be one of prod, mean, amax, amin, got {reduce!r}")
    if self.ndim == 0: return self.reshape(1).index_reduce(dim, index, source.reshape(1), reduce, include_self).reshape(())
    d = normalize_dim(dim, self.ndim, "index_reduce")
    return self.scatter_reduce(d, self._index_of_slices(d, index, source, "index_reduce"), source, reduce, include_self)

  def unique(self, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim=None):
    """The distinct values, sorted (torch sorts on the CPU whatever `sorted` says): sorted on the device, a value
    kept where it differs from the one before it. How many there are decides the shape, so the keep mask is read
    back to the host, as for nonzero."""
    if dim is not None: raise NotImplementedError("unique: dim is not supported yet; call it without dim")
    x = self.reshape(-1)
    s = x.sort()[0]
    values = s[cat([Tensor._const(True, bool_, self.device, (min(1, s.numel()),)), s[1:] != s[:-1]])]
    return self._unique_result(values, lambda: (values.reshape(1, -1) < x.reshape(-1, 1)).sum(1), return_inverse, return_counts)

  def unique_consecutive(self, return_inverse: bool = False, return_counts: bool = False, dim=None):
    if dim is not None: raise NotImplementedError("unique_consecutive: dim is not supported yet; call it without dim")
    x = self.reshape(-1)
    new = cat([Tensor._const(True, bool_, self.device, (min(1, x.numel()),)), x[1:] != x[:-1]])
    return self._unique_result(x[new], lambda: new.cumsum(0) - 1, return_inverse, return_counts)

  def _unique_result(self, values: Tensor, inverse, return_inverse: bool, return_counts: bool):
    """unique's (values, inverse, counts), as many as asked for; inverse: each element's place among the values."""
    if not (return_inverse or return_counts): return values
    inv = inverse().reshape(self.shape) if self.numel() else Tensor.zeros(*self.shape, dtype=int64, device=self.device)
    out = [values] + [inv] * return_inverse
    if return_counts:
      out.append((inv.reshape(-1, 1) == Tensor.arange(values.numel(), device=self.device).reshape(1, -1)).sum(0)
                 if self.numel() else Tensor.zeros(0, dtype=int64, device=self.device))
    return tuple(out)

  # ---- matmul

  def matmul(self, other) -> Tensor:
    other = Tensor._wrap_tensor(other, self)
    if other.is_complex(): return self.cast(complex64).matmul(other)
    if self.ndim == 0 or other.ndim == 0:
      raise ShapeError(f"matmul: both arguments need at least 1 dimension, got shapes {self.shape} and {other.shape}")
    x = self.unsqueeze(0) if self.ndim == 1 else self
    w = other.unsqueeze(-1) if other.ndim == 1 else other
    if x.shape[-1] != w.shape[-2]:
      raise ShapeError(f"matmul: shapes {self.shape} and {other.shape} cannot be multiplied ({x.shape[-1]} != {w.shape[-2]})")
    try: batch = broadcast_shape(x.shape[:-2], w.shape[:-2])
    except ShapeError: raise ShapeError(f"matmul: batch dimensions of shapes {self.shape} and {other.shape} cannot be broadcast") from None
    _same_device("matmul", x, w)
    dtype = result_type(x, w)
    x, w = x.cast(dtype), w.cast(dtype)
    k, n = x.shape[-1], w.shape[-1]
    folded = w.ndim == 2 and x.ndim > 2  # a batch of rows times one matrix: one product over all the rows, so the
    if folded: x = x.reshape(prod(x.shape[:-1]), k)  # weight's gradient is one reduction too
    m = prod(x.shape[:-1])
    # the right operand copied to panels of columns, each a contiguous run down k, where the backend wants it: the
    # tiles' loads of it walk memory in order instead of one row apart (4 KiB strides alias in the cache), 2x faster
    # on PoCL, copy included
    panel = matmul_panel(w.device, m, n, k)
    # a transposed left operand (a weight gradient, g^T @ x) over a long k is copied to panels of rows too: its
    # tile's loads otherwise step a whole row apart down k, a new cache line each (2.5x faster kernel on PoCL)
    rows = LEFT_PANEL if panel and k >= TRANSPOSED_LEFT_K and m % LEFT_PANEL == 0 and columns_are_strided(x.lazydata) else 0
    if not panel and m >= 16 and n >= 8 and m * n * k >= 1 << 18 and columns_are_strided(w.lazydata) and \
        devices.get(w.device).row_major_matmul_operand:
      # a transposed right operand (x @ w.T, a linear layer) is copied to row-major first where the backend's
      # kernels want it (OpenCL's register tiles on a GPU); not for small products, where the copy's launch costs
      # more than it saves
      w = w.contiguous()
    if folded: out = F.MatMul.apply(x, w, panel=panel, rows=rows).reshape(batch + (self.shape[-2], n))
    else: out = F.MatMul.apply(x._broadcast_to(batch + x.shape[-2:]), w._broadcast_to(batch + (k, n)), panel=panel, rows=rows)
    if self.ndim == 1: out = out.squeeze(-2)
    if other.ndim == 1: out = out.squeeze(-1)
    return out
  mm = matmul
  bmm = matmul

  def dot(self, other) -> Tensor:
    if self.ndim != 1 or other.ndim != 1: raise ShapeError(f"dot: expected 1-D tensors, got shapes {self.shape} and {other.shape}")
    return self.matmul(other)

  def linear(self, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    out = self.matmul(weight.T)
    return out + bias if bias is not None else out

  # ---- linear algebra (the linalg family): torch's Tensor methods; the algorithms live in lazygrad/linalg.py

  @property
  def mH(self) -> Tensor: return self.mT  # the conjugate transpose: the transpose, for real tensors
  def det(self) -> Tensor: return _linalg().det(self)
  def logdet(self) -> Tensor: return _linalg().logdet(self)
  def slogdet(self): return _linalg().slogdet(self)
  def inverse(self) -> Tensor: return _linalg().inv(self)
  def matrix_power(self, n: int) -> Tensor: return _linalg().matrix_power(self, n)
  def matrix_exp(self) -> Tensor: return _linalg().matrix_exp(self)
  def cholesky(self, upper: bool = False) -> Tensor: return _linalg().cholesky(self, upper)
  def cholesky_inverse(self, upper: bool = False) -> Tensor: return _linalg().cholesky_inverse(self, upper)
  def cholesky_solve(self, input2: Tensor, upper: bool = False) -> Tensor: return _linalg().cholesky_solve(self, input2, upper)
  def triangular_solve(self, A: Tensor, upper: bool = True, transpose: bool = False, unitriangular: bool = False):
    return _linalg().triangular_solve(self, A, upper, transpose, unitriangular)
  def lu(self, pivot: bool = True, get_infos: bool = False):
    """torch.lu: (LU, pivots), and the infos with get_infos."""
    LU, pivots, infos = _linalg().lu_factor_ex(self, pivot=pivot)
    return (LU, pivots, infos) if get_infos else (LU, pivots)
  def lu_solve(self, LU_data: Tensor, LU_pivots: Tensor) -> Tensor: return _linalg().lu_solve(LU_data, LU_pivots, self)
  def qr(self, some: bool = True):
    return _linalg().qr(self, mode="reduced" if some else "complete")
  def svd(self, some: bool = True, compute_uv: bool = True):
    """torch.svd: (U, S, V), V not transposed; without compute_uv, square zero U and V, as torch."""
    if not compute_uv:
      m, n = self.shape[-2:]
      return self.new_zeros(*self.shape[:-2], m, m), _linalg().svdvals(self), self.new_zeros(*self.shape[:-2], n, n)
    U, S, Vh = _linalg().svd(self, full_matrices=not some)
    return U, S, Vh.mT
  def geqrf(self): return _linalg().geqrf(self)
  def ormqr(self, input2: Tensor, input3: Tensor, left: bool = True, transpose: bool = False) -> Tensor:
    return _linalg().ormqr(self, input2, input3, left, transpose)
  def pinverse(self, rcond: float = 1e-15) -> Tensor: return _linalg().pinv(self, rtol=rcond)
  def cross(self, other: Tensor, dim=None) -> Tensor:
    if dim is None:  # torch's (deprecated) default: the first dim of size 3
      dim = next((d for d, s in enumerate(broadcast_shape(self.shape, other.shape)) if s == 3), -1)
    return _linalg().cross(self, other, dim=dim)


def _linalg():
  """lazygrad.linalg, where the linear algebra behind the Tensor methods is composed (it imports this module)."""
  from lazygrad import linalg
  return linalg


TRANSPOSED_LEFT_K, LEFT_PANEL = 1024, 4  # see Tensor.matmul


def matmul_panel(device: str, m: int, n: int, k: int) -> int:
  """How many columns wide the panels are that this device's kernels want the right operand of an (m, k) @ (k, n)
  product copied to (each panel runs contiguously down k), or 0 where they read it as it is: always for small
  products, where the copy's launch costs more than it saves."""
  panel = devices.get(device).matmul_panel
  while panel > 8 and n % panel: panel //= 2  # narrower panels for widths that are not a multiple
  return panel if panel and n % panel == 0 and m >= 16 and m * n * k >= 1 << 18 else 0


class MaxResult(tuple):
  """(values, indices), as torch.max(dim=...) returns."""
  def __new__(cls, values, indices): return super().__new__(cls, (values, indices))
  @property
  def values(self): return self[0]
  @property
  def indices(self): return self[1]


def _check_index_range(index: Tensor, size: int, dim: int, negative_ok: bool = True):
  """IndexError on the host for an index outside [-size, size) (or [0, size)): never an out-of-bounds read."""
  if index.numel() == 0: return
  values = index.numpy()
  lo, hi = int(values.min()), int(values.max())
  low = -size if negative_ok else 0
  if lo < low or hi >= size:
    bad = lo if lo < low else hi
    raise IndexError(f"index {bad} is out of bounds for dimension {dim} with size {size}")


def _index_matches(n: int, dim: int, index: Tensor, device: str) -> Tensor:
  """index == position, for each of n positions along a new dim inserted at dim: the one-hot of a scatter's targets,
  of one_hot, of an embedding's gradient. The callers have checked that every index lies in [0, n): 32-bit compares suffice below 2**31 (twice the
  lanes of 64-bit ones; an embedding's gradient ran at half speed on int64)."""
  itype = int32 if n < 2**31 else int64
  arange = Tensor.arange(n, dtype=itype, device=device).reshape(*(n if a == dim else 1 for a in range(index.ndim + 1)))
  return index.cast(itype).unsqueeze(dim) == arange


def scatter_sum(shape, dim: int, index: Tensor, src: Tensor) -> Tensor:
  """Zeros of `shape` with src added where index points along dim (torch.scatter_add into zeros).

  One fused reduction over index's extent per output element: out[.., n, ..] = sum(src where index == n). Its cost
  grows with the index's extent along dim; it serves gradients of gathers and explicit scatters."""
  out = _index_matches(shape[dim], dim, index, src.device).where(src.unsqueeze(dim), 0).sum(dim + 1)
  return out._pad(tuple((0, s - o) for s, o in zip(shape, out.shape)))


def _scatter_reduce_max(shape, dim: int, index: Tensor, src: Tensor) -> Tensor:
  out = _index_matches(shape[dim], dim, index, src.device).where(src.unsqueeze(dim), 0).amax(dim + 1)
  return out._pad(tuple((0, s - o) for s, o in zip(shape, out.shape)))


def _window_sum(xt: Tensor, n: int) -> Tensor:
  """Inclusive prefix sums along the last axis: out[..., i] = sum(x[..., :i+1]) as a masked reduction over a view."""
  return _prefix_windows(xt, 0).sum(-1)


def _prefix_windows(xt: Tensor, fill) -> Tensor:
  """The (.., n, n) view whose row i holds x[..., :i+1] along the last axis and `fill` after it: x broadcast along i,
  masked by a tril. A reduction over its last axis is a running (prefix) one."""
  n = xt.shape[-1]
  keep = Tensor.ones(n, n, dtype=bool_, device=xt.device).tril()
  return keep.where(xt.unsqueeze(-2).expand(*xt.shape[:-1], n, n), fill)


# ---- module-level functions with PyTorch's names

def _inplace_method(name: str):
  """Tensor.<name>_: the op, then the result written into the tensor (see Tensor._inplace)."""
  op = getattr(Tensor, name)
  def method(self, *args, **kwargs): return self._inplace(name + "_", op(self, *args, **kwargs))
  method.__name__ = method.__qualname__ = name + "_"
  method.__doc__ = f"In place: self = self.{name}(...), as torch's Tensor.{name}_."
  return method


for _name in ("add", "sub", "mul", "div", "pow", "fmod", "remainder", "clamp", "clip", "lerp", "masked_fill", "abs",
              "neg", "sign", "square", "sqrt", "rsqrt", "reciprocal", "exp", "exp2", "expm1", "log", "log2", "log1p",
              "sin", "cos", "tanh", "sigmoid", "relu", "floor", "ceil", "round", "trunc", "nan_to_num"):
  setattr(Tensor, _name + "_", _inplace_method(_name))
for _name in ("lgamma", "digamma", "polygamma", "mvlgamma", "erfinv", "i0"):  # the special functions' in-place forms
  setattr(Tensor, _name + "_", _inplace_method(_name))


def _sum_gradients(grads: list[Tensor]) -> Tensor:
  """The sum of a tensor's gradients. Where they are many slices' gradients over disjoint ranges of one dim, each
  padded to the whole (an unrolled recurrence reads one time step of a tensor per step), the sum is a cat of them,
  with zeros between: as a sum of padded tensors, every element would add every one of them. So is a sum of a few
  whose slices are read through views that are not contiguous (a transformer's q, k and v split from one product,
  then transposed into heads): summed, each element gathered each piece's value on its own, behind a mask (1.6 ms a
  layer of the bench GPT's step); as a cat, each piece is copied to its region by vector code of its own."""
  scattered = len(grads) > 1 and all(hasattr(g, "_padded") and not g._padded[0].lazydata.st.contiguous for g in grads)
  if (len(grads) > CAT_SUMS or scattered) and all(hasattr(g, "_padded") for g in grads):
    axes = {d for g in grads for d, p in enumerate(g._padded[1]) if p != (0, 0)}
    if len(axes) == 1:
      axis = axes.pop()
      pieces = sorted(((g._padded[1][axis][0], g._padded[0]) for g in grads), key=lambda p: p[0])
      if all(a + x.shape[axis] <= b for (a, x), (b, _) in zip(pieces, pieces[1:])):
        parts, at = [], 0
        zeros = lambda x, n: Tensor._const(0.0, x.dtype, x.device, x.shape[:axis] + (n,) + x.shape[axis + 1:])
        for start, x in pieces:
          if start > at: parts.append(zeros(x, start - at))
          parts.append(x)
          at = start + x.shape[axis]
        if at < grads[0].shape[axis]: parts.append(zeros(pieces[-1][1], grads[0].shape[axis] - at))
        return cat(parts, axis) if len(parts) > CAT_SUMS else F.Cat.apply(*parts, axis=axis)
  out = grads[0]
  for g in grads[1:]: out = out + g
  return out


# cat of more pieces than this runs a kernel per piece, each writing its region of the output: as a sum of padded
# pieces every output element would test every piece (a 100-step stack, 3 MB, took 100 ms and a 22 s compile)
CAT_SUMS = 4


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
  tensors = [t for t in tensors]
  if not tensors: raise ValueError("cat: expected a non-empty list of tensors")
  ref = next((t for t in tensors if t.shape != (0,)), tensors[0])
  tensors = [t for t in tensors if t.shape != (0,) or t is ref]
  axis = normalize_dim(dim, ref.ndim, "cat")
  for t in tensors:
    if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape)) if i != axis):
      raise ShapeError(f"cat: shapes {', '.join(str(x.shape) for x in tensors)} do not match outside dim {dim}")
    _same_device("cat", t, ref)
  dtype = result_type(*tensors)
  if dtype is complex64: return cat_complex(tensors, axis)
  if len(tensors) > CAT_SUMS:  # each piece writes its own region: work in proportion to the output
    return F.Cat.apply(*[t.cast(dtype) for t in tensors], axis=axis)
  # a few pieces: a sum of the pieces padded to the output's shape, elementwise work that fuses into its readers
  total = sum(t.shape[axis] for t in tensors)
  out, start = None, 0
  for t in tensors:
    n = t.shape[axis]
    padded = t.cast(dtype)._pad(tuple((start, total - start - n) if i == axis else (0, 0) for i in range(ref.ndim)))
    out = padded if out is None else out + padded
    start += n
  return out


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
  tensors = list(tensors)
  if not tensors: raise ValueError("stack: expected a non-empty list of tensors")
  for t in tensors:
    if t.shape != tensors[0].shape: raise ShapeError(f"stack: expects each tensor to be equal size, got {', '.join(str(x.shape) for x in tensors)}")
  d = normalize_dim(dim, tensors[0].ndim + 1, "stack")
  return cat([t.unsqueeze(d) for t in tensors], d)


def where(condition: Tensor, x=None, y=None):
  """torch.where: x where condition holds, else y; with the condition alone, condition.nonzero(as_tuple=True)."""
  if x is None and y is None: return condition.nonzero(as_tuple=True)
  if x is None or y is None: raise TypeError("where: give both x and y, or neither")
  return condition.where(x, y)


def einsum(equation: str, *operands) -> Tensor:
  """torch.einsum: a broadcast product summed over the dropped letters (for two operands, the same kernel as matmul).
  `...` stands for the dims no letter names, broadcast across operands (right-aligned), kept first in an implicit
  output and summed when an explicit output leaves it out; a letter repeated in one operand takes its diagonal."""
  operands = operands[0] if len(operands) == 1 and isinstance(operands[0], (list, tuple)) else operands
  eq = equation.replace(" ", "")
  lhs, arrow, rhs = eq.partition("->")
  terms = lhs.split(",")
  if len(terms) != len(operands):
    raise ValueError(f"einsum: {equation!r} names {len(terms)} operands but {len(operands)} were given")
  for t in [*terms, rhs]:
    rest = t.replace("...", "", 1)
    if (rest and not rest.isalpha()) or "." in rest:
      raise ValueError(f"einsum: {equation!r}: a term is letters with at most one '...', got {t!r}")
  unnamed = [x.ndim - len(t.replace("...", "")) for t, x in zip(terms, operands)]  # the dims `...` stands for
  for t, x, k in zip(terms, operands, unnamed):
    if k < 0 or (k and "..." not in t):
      raise ShapeError(f"einsum: term {t!r} has {x.ndim - k} letters{' and ...' if '...' in t else ''} but its operand "
                       f"has shape {x.shape}")
  # `...` becomes letters no term uses, the last of them for an operand's last unnamed dims
  free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in eq]
  rank = max([k for t, k in zip(terms, unnamed) if "..." in t] or [0])
  dots = "".join(free[:rank])
  terms = [t.replace("...", dots[rank - k:]) for t, k in zip(terms, unnamed)]
  if arrow: rhs = rhs.replace("...", dots)
  else:  # implicit output: the `...` dims, then the letters that appear once, in alphabetical order
    joined = "".join(terms)
    rhs = dots + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in dots))
  if len(set(rhs)) != len(rhs): raise ValueError(f"einsum: {equation!r}: an output letter appears twice")
  missing = [c for c in rhs if c not in "".join(terms)]
  if missing: raise ValueError(f"einsum: {equation!r}: output letter {missing[0]!r} is in no operand")
  ops = []
  for t, x in zip(terms, operands):
    while len(set(t)) != len(t):  # a repeated letter: the diagonal of its two dims, moved last
      c = next(c for c in t if t.count(c) > 1)
      i = t.index(c)
      j = t.index(c, i + 1)
      if x.shape[i] != x.shape[j]:
        raise ShapeError(f"einsum: letter {c!r} repeated in {t!r} has sizes {x.shape[i]} and {x.shape[j]}")
      x, t = x.diagonal(0, i, j), t[:i] + t[i + 1:j] + t[j + 1:] + c
    ops.append((t, x))
  letters = list(dict.fromkeys(rhs + "".join(c for t, _ in ops for c in t if c not in rhs)))
  sizes: dict[str, int] = {}
  for t, x in ops:
    for c, n in zip(t, x.shape):
      if sizes.get(c, n) != n and n != 1 and sizes[c] != 1:
        raise ShapeError(f"einsum: letter {c!r} has sizes {sizes[c]} and {n}")
      sizes[c] = max(sizes.get(c, 1), n)
  product = None
  for t, x in ops:
    order = sorted(range(len(t)), key=lambda k: letters.index(t[k]))
    aligned = x.permute(order).reshape(tuple(x.shape[t.index(c)] if c in t else 1 for c in letters))
    product = aligned if product is None else product * aligned
  summed = tuple(range(len(rhs), len(letters)))
  return product.sum(summed) if summed else product._broadcast_to(tuple(sizes[c] for c in letters))


# ---- more movement and indexing with torch's names (from torch's op database): the functions of several tensors

def broadcast_shapes(*shapes) -> tuple[int, ...]:
  shapes = [(s,) if isinstance(s, int) else tuple(s) for s in shapes]
  return broadcast_shape(*shapes, op="broadcast_shapes") if shapes else ()


def broadcast_tensors(*tensors: Tensor) -> tuple[Tensor, ...]:
  tensors = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors
  shape = broadcast_shape(*(t.shape for t in tensors), op="broadcast_tensors")
  return tuple(t.expand(shape) for t in tensors)


def meshgrid(*tensors: Tensor, indexing: str | None = None) -> tuple[Tensor, ...]:
  """Every 0-d or 1-d tensor expanded along its own dim of the grid: views. "xy" swaps the first two, as torch does."""
  tensors = list(tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors)
  if indexing not in (None, "ij", "xy"): raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
  if any(t.ndim > 1 for t in tensors): raise RuntimeError(f"meshgrid: expects 0D or 1D tensors, got shapes {[t.shape for t in tensors]}")
  swap = indexing == "xy" and len(tensors) >= 2
  if swap: tensors[0], tensors[1] = tensors[1], tensors[0]
  shape = tuple(t.numel() for t in tensors)
  grids = [t.reshape(*(-1 if a == k else 1 for a in range(len(shape)))).expand(shape) for k, t in enumerate(tensors)]
  if swap: grids[0], grids[1] = grids[1], grids[0]
  return tuple(grids)


def cartesian_prod(*tensors: Tensor) -> Tensor:
  if len(tensors) == 1: return tensors[0]
  return stack([g.reshape(-1) for g in meshgrid(*tensors, indexing="ij")], 1)


def combinations(input: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
  """The r-element combinations of a 1-D tensor's elements, one row each: their positions are structure (from its
  length alone), the values one gather."""
  import itertools
  if input.ndim != 1: raise RuntimeError(f"combinations: expect a 1D vector, but got shape {input.shape}")
  if r < 0: raise RuntimeError(f"combinations: expect a non-negative number, but got {r}")
  if r == 0: return input._shrink(((0, 0),))
  pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
  rows = list(pick(range(input.shape[0]), r))
  if not rows: return input._shrink(((0, 0),)).reshape(0, r)
  return input._take_along_front(Tensor(np.array(rows, dtype=np.int64), device=input.device))


def block_diag(*tensors: Tensor) -> Tensor:
  mats = [t.reshape(1, 1) if t.ndim == 0 else t.reshape(1, -1) if t.ndim == 1 else t for t in tensors]
  if any(m.ndim != 2 for m in mats): raise RuntimeError(f"block_diag: input tensors must have 2 or fewer dimensions, got shapes {[t.shape for t in tensors]}")
  if not mats: return Tensor.zeros(1, 0)
  dtype, cols, at, rows = result_type(*mats), sum(m.shape[1] for m in mats), 0, []
  for m in mats:
    rows.append(m.cast(dtype)._pad(((0, 0), (at, cols - at - m.shape[1]))))
    at += m.shape[1]
  return cat(rows, 0)


def _at_least(n: int, tensors) -> Tensor | tuple[Tensor, ...]:
  """atleast_{n}d: a 0-d tensor becomes (1,) * n, a 1-d one (1, k) for 2 and (1, k, 1) for 3, a 2-d one (m, k, 1) for
  3, as torch's; one tensor gives one tensor, several (or a list) a tuple."""
  single = len(tensors) == 1 and isinstance(tensors[0], Tensor)
  tensors = tensors[0] if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)) else tensors
  def grown(t: Tensor) -> Tensor:
    if t.ndim >= n: return t
    if t.ndim == 0: return t.reshape((1,) * n)
    return t.reshape(((1,) + t.shape if t.ndim == 1 else t.shape) + (1,) * (n == 3))
  out = tuple(grown(t) for t in tensors)
  return out[0] if single else out


def atleast_1d(*tensors): return _at_least(1, tensors)
def atleast_2d(*tensors): return _at_least(2, tensors)
def atleast_3d(*tensors): return _at_least(3, tensors)


def hstack(tensors: Sequence[Tensor]) -> Tensor:
  tensors = atleast_1d(tuple(tensors))
  return cat(tensors, 0 if tensors[0].ndim == 1 else 1)
def vstack(tensors: Sequence[Tensor]) -> Tensor: return cat(atleast_2d(tuple(tensors)), 0)
def dstack(tensors: Sequence[Tensor]) -> Tensor: return cat(atleast_3d(tuple(tensors)), 2)
def column_stack(tensors: Sequence[Tensor]) -> Tensor: return hstack([t.reshape(-1, 1) if t.ndim <= 1 else t for t in tensors])


def slice_along(input: Tensor, dim: int = 0, start=None, end=None, step: int = 1) -> Tensor:
  """torch's aten slice (lazygrad.slice): input[..., start:end:step] along dim, a view."""
  if step <= 0: raise RuntimeError(f"slice: step must be positive, got {step}")
  return input[(slice(None),) * normalize_dim(dim, input.ndim, "slice") + (slice(start, end, step),)]


def scalar_tensor(s, dtype=None, device=None, requires_grad: bool = False, layout=None, pin_memory=None) -> Tensor:
  return Tensor.full((), s, dtype=dtype or default_float, device=device, requires_grad=requires_grad)


class _RemovableHandle:
  """What a register_*_hook returns: `remove()` takes the hook off again."""
  _next_id = 0

  def __init__(self, hooks: dict, hook):
    self.hooks, self.id = hooks, _RemovableHandle._next_id
    _RemovableHandle._next_id += 1
    hooks[self.id] = hook

  def remove(self) -> None: self.hooks.pop(self.id, None)


def _unpickle_tensor(cls, values: np.ndarray, device: str, requires_grad: bool) -> Tensor:
  return Tensor._from_lazy(Tensor(values, device=device).lazydata, cls, requires_grad)


def realize(*tensors: Tensor) -> None:
  """Compute several tensors in one schedule, so the work they share is scheduled once."""
  realize_lazy(*[t._ri.lazydata if t.is_complex() else t.lazydata for t in tensors])


# ---- more math with torch's names (from torch's op database): functions torch has no Tensor method for, and helpers

AminmaxResult = collections.namedtuple("aminmax", ["min", "max"])
FrexpResult = collections.namedtuple("frexp", ["mantissa", "exponent"])


def _extreme_value(dtype: DType, highest: bool):
  """The largest (or smallest) value of a dtype: what a max (min) over nothing starts from."""
  if dtype.is_float: return math.inf if highest else -math.inf
  if dtype is bool_: return highest
  info = np.iinfo(dtype.np)
  return int(info.max if highest else info.min)


def _times_power_of_two(x: Tensor, k: Tensor) -> Tensor:
  """x * 2**k for integer-valued k, exactly: two factors, so 2**k itself never overflows (k down to -1074)."""
  half = (k / 2).floor()
  return x * half.exp2() * (k - half).exp2()


def _numpy_names(method):
  """torch's NumPy-style keyword aliases: axis= for dim=, keepdims= for keepdim=."""
  @functools.wraps(method)
  def wrapper(self, *args, **kwargs):
    for alias, name in (("axis", "dim"), ("keepdims", "keepdim")):
      if alias in kwargs:
        if name in kwargs: raise TypeError(f"{method.__name__}() got both {name!r} and its alias {alias!r}")
        kwargs[name] = kwargs.pop(alias)
    return method(self, *args, **kwargs)
  return wrapper


for _name in ("sum", "mean", "prod", "amax", "amin", "argmax", "argmin", "max", "min", "aminmax", "any", "all", "var", "std",
              "var_mean", "std_mean", "logsumexp", "norm", "count_nonzero", "nansum", "nanmean", "median", "nanmedian",
              "kthvalue", "mode", "quantile", "nanquantile", "cumsum", "cumprod", "cummax", "cummin", "logcumsumexp",
              "softmax", "log_softmax", "sort", "argsort"):
  setattr(Tensor, _name, _numpy_names(getattr(Tensor, _name)))


def rsub(input: Tensor, other, alpha=1) -> Tensor:
  """other - alpha * input."""
  return (input if alpha == 1 else input * alpha).sub(other, reverse=True)


def tensordot(a: Tensor, b: Tensor, dims=2) -> Tensor:
  """Sums over a's dims dims[0] and b's dims[1] (or a's last `dims` and b's first): one matmul. A contracted pair
  where one side has size 1 is summed on the other side first, as torch does."""
  if isinstance(dims, Tensor): dims = dims.tolist()
  if isinstance(dims, int):
    if dims < 0: raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
    if dims > min(a.ndim, b.ndim): raise RuntimeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
    dims_a, dims_b = list(range(a.ndim - dims, a.ndim)), list(range(dims))
  else:
    dims_a, dims_b = ([d] if isinstance(d, int) else list(d) for d in dims)
  if len(dims_a) != len(dims_b): raise RuntimeError("both dimension lists should have same length")
  dims_a = [normalize_dim(d, a.ndim, "tensordot") for d in dims_a]
  dims_b = [normalize_dim(d, b.ndim, "tensordot") for d in dims_b]
  for da, db in zip(dims_a, dims_b):
    s1, s2 = a.shape[da], b.shape[db]
    if s2 == 1: a = a.sum(da, keepdim=True)
    elif s1 == 1: b = b.sum(db, keepdim=True)
    elif s1 != s2:
      raise RuntimeError(f"contracted dimensions need to match, but first has size {s1} in dim {da} and second has size {s2} in dim {db}")
  free_a = [d for d in range(a.ndim) if d not in dims_a]
  free_b = [d for d in range(b.ndim) if d not in dims_b]
  k = prod(a.shape[d] for d in dims_a)
  left = a.permute(free_a + dims_a).reshape(prod(a.shape[d] for d in free_a), k)
  right = b.permute(dims_b + free_b).reshape(k, prod(b.shape[d] for d in free_b))
  return left.matmul(right).reshape(tuple(a.shape[d] for d in free_a) + tuple(b.shape[d] for d in free_b))


def cdist(x1: Tensor, x2: Tensor, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary") -> Tensor:
  """The p-norm distance between each row of x1 and each row of x2 (batch dims broadcast), as the norm of their
  broadcast difference."""
  if x1.ndim < 2 or x2.ndim < 2: raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D, X2 got: {x2.ndim}D")
  if x1.shape[-1] != x2.shape[-1]:
    raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
  if not (x1.dtype.is_float and x2.dtype.is_float): raise RuntimeError(f"cdist only supports floating-point dtypes, X1 got: {x1.dtype.name}")
  if p < 0: raise RuntimeError("cdist only supports non-negative p values")
  if compute_mode not in ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist", "donot_use_mm_for_euclid_dist"):
    raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
  return (x1.unsqueeze(-2) - x2.unsqueeze(-3)).norm(p, dim=-1)


def _along(x: Tensor, dim: int, start: int, stop: int | None = None) -> Tensor:
  """x[..., start:stop, ...] at dim."""
  return x[(slice(None),) * dim + (slice(start, stop),)]


def _spacings(y: Tensor, x, dim: int) -> Tensor:
  """The differences of sample points x along dim, shaped to broadcast with y's (1-D x lies along dim), as torch's
  trapezoid shapes them."""
  if x.ndim == 1:
    if x.shape[0] != y.shape[dim]: raise RuntimeError("trapezoid: There must be one `x` value for each sample point")
    x = x.reshape(tuple(-1 if a == dim else 1 for a in range(y.ndim)))
  elif x.ndim < y.ndim: x = x.reshape((1,) * (y.ndim - x.ndim) + x.shape)
  return _along(x, dim, 1) - _along(x, dim, 0, -1)


def trapezoid(y: Tensor, x=None, *, dx=None, dim=-1) -> Tensor:
  d = normalize_dim(dim, y.ndim, "trapezoid")
  if y.dtype is bool_: raise RuntimeError("trapezoid: received a bool input for `y`, but bool is not supported")
  if y.shape[d] == 0: return Tensor.zeros(*(s for a, s in enumerate(y.shape) if a != d), dtype=y.dtype, device=y.device)
  if x is not None: return ((_along(y, d, 0, -1) + _along(y, d, 1)) * _spacings(y, x, d)).sum(d) / 2
  first, last = _along(y, d, 0, 1).squeeze(d), _along(y, d, -1).squeeze(d)
  return (y.sum(d) - (first + last) * 0.5) * (1 if dx is None else dx)


def trapz(y: Tensor, x=None, *, dx=1, dim=-1) -> Tensor:
  return trapezoid(y, x, dim=dim) if x is not None else trapezoid(y, dx=dx, dim=dim)


def cumulative_trapezoid(y: Tensor, x=None, *, dx=None, dim=-1) -> Tensor:
  d = normalize_dim(dim, y.ndim, "cumulative_trapezoid")
  pairs = _along(y, d, 0, -1) + _along(y, d, 1)
  if x is not None: return (pairs * _spacings(y, x, d)).cumsum(d) / 2
  return ((1 if dx is None else dx) / 2 * pairs).cumsum(d)


def isin(elements, test_elements, *, assume_unique=False, invert=False) -> Tensor:
  """Whether each element is among test_elements: every pair compared (O(n * m))."""
  if not isinstance(elements, Tensor) and not isinstance(test_elements, Tensor):
    raise TypeError("isin: at least one of elements and test_elements must be a Tensor")
  ref = elements if isinstance(elements, Tensor) else test_elements
  e = elements if isinstance(elements, Tensor) else Tensor._const(elements, result_type(ref, elements), ref.device)
  t = test_elements if isinstance(test_elements, Tensor) else Tensor._const(test_elements, result_type(ref, test_elements), ref.device)
  hit = (e.unsqueeze(-1) == t.reshape(-1)).any(-1)
  return ~hit if invert else hit


def _insertion_points(boundaries: Tensor, values: Tensor, right: bool, out_int32: bool) -> Tensor:
  """How many of each row of boundaries (the last dim) come before each value: those not >= it (not > it for
  right), which for sorted boundaries is the binary search's answer, a NaN value going past all of them as there."""
  before = ~(boundaries > values.unsqueeze(-1)) if right else ~(boundaries >= values.unsqueeze(-1))
  return before.sum(-1).cast(int32 if out_int32 else int64)


def bucketize(input, boundaries: Tensor, *, out_int32=False, right=False) -> Tensor:
  if boundaries.ndim != 1: raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({boundaries.ndim})")
  x = input if isinstance(input, Tensor) else Tensor._const(input, result_type(boundaries, input), boundaries.device)
  return _insertion_points(boundaries, x, right, out_int32)


def searchsorted(sorted_sequence: Tensor, values, *, out_int32=False, right=False, side=None, sorter=None) -> Tensor:
  if side is not None:
    if side not in ("left", "right"): raise RuntimeError(f"side can only be 'left' or 'right' but got {side}")
    if right and side == "left": raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left while right was True")
    right = side == "right"
  seq = sorted_sequence if sorter is None else sorted_sequence.gather(-1, sorter)
  v = values if isinstance(values, Tensor) else Tensor._const(values, result_type(seq, values), seq.device)
  if seq.ndim > 1:
    if v.ndim != seq.ndim or v.shape[:-1] != seq.shape[:-1]:
      raise RuntimeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor "
                         f"and input value tensor must match, but we got boundaries tensor {list(seq.shape)} and input value tensor {list(v.shape)}")
    seq = seq.unsqueeze(-2)
  return _insertion_points(seq, v, right, out_int32)


def logspace(start, end, steps: int, base=10.0, *, dtype=None, device=None, requires_grad=False) -> Tensor:
  """base ** (steps evenly spaced exponents from start to end), made on the host from Python numbers as linspace is,
  with torch's arithmetic: the exponents in the dtype, the first half counted up from start, the rest down from end."""
  start, end = (v.item() if isinstance(v, Tensor) else v for v in (start, end))
  if steps < 0: raise RuntimeError(f"logspace: number of steps must be non-negative, got {steps}")
  dtype = to_dtype(dtype or default_float)
  if steps == 1: values = np.array([float(base) ** float(start)])
  elif dtype.is_float:
    t = np.dtype(dtype.np).type
    i = np.arange(steps).astype(t)
    step = (t(end) - t(start)) / t(steps - 1)
    exponents = np.where(np.arange(steps) < steps // 2, t(start) + step * i, t(end) - step * (t(steps) - i - 1))
    values = np.power(t(base), exponents.astype(t))
  else:
    step = (int(end) - int(start)) / (steps - 1)
    i = np.arange(steps, dtype=np.float64)
    values = np.power(float(base), np.where(i < steps // 2, int(start) + step * i, int(end) - step * (steps - i - 1)))
  return Tensor(values.astype(dtype.np), device=device, requires_grad=requires_grad)


def gradient(input: Tensor, *, spacing=1, dim=None, edge_order=1) -> tuple[Tensor, ...]:
  """torch.gradient: central differences inside, one-sided ones (first or second order) at the edges, along each of
  dim; spacing is one number, a number per dim, or a tensor of coordinates per dim."""
  if spacing is None: spacing = 1
  dims = list(range(input.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
  if input.dtype is uint8: raise RuntimeError("torch.gradient does not support uint8 input.")
  spacings = list(spacing) if isinstance(spacing, (list, tuple)) else [spacing] * len(dims)
  if len(spacings) != len(dims):
    raise RuntimeError(f"torch.gradient expected spacing to be unspecified, a scalar, or a list of length equal to 'self.dim() = "
                       f"{input.ndim}', since dim argument was not given, but got a list of length {len(spacings)}" if dim is None else
                       f"torch.gradient expected spacing to be unspecified, a scalar or it's spacing and dim arguments to have the same "
                       f"length, but got a spacing argument of length {len(spacings)} and a dim argument of length {len(dims)}.")
  if edge_order not in (1, 2): raise RuntimeError("torch.gradient only supports edge_order=1 and edge_order=2.")
  dims = [normalize_dim(d, input.ndim, "gradient") for d in dims]
  if any(input.shape[d] < edge_order + 1 for d in dims):
    raise RuntimeError("torch.gradient expected each dimension size to be at least edge_order+1")
  out = []
  for d, h in zip(dims, spacings):
    s = lambda start, stop=None: _along(input, d, start, stop)  # noqa: E731
    if isinstance(h, Tensor):
      if h.ndim != 1: raise RuntimeError(f"torch.gradient expected each element of spacing to have one dimension, but got an element with {h.ndim} dimensions!")
      dx = h.diff()
      d1, d2 = dx[:-1], dx[1:]
      shape = tuple(-1 if a == d else 1 for a in range(input.ndim))
      center = ((-d2 / (d1 * (d1 + d2))).reshape(shape) * s(0, -2) + ((d2 - d1) / (d1 * d2)).reshape(shape) * s(1, -1) +
                (d1 / (d2 * (d1 + d2))).reshape(shape) * s(2))
      if edge_order == 1: first, last = (s(1, 2) - s(0, 1)) / dx[0], (s(-1) - s(-2, -1)) / dx[-1]
      else:
        a, b = dx[0], dx[1]
        first = -(2.0 * a + b) / (a * (a + b)) * s(0, 1) + (a + b) / (a * b) * s(1, 2) + (-a) / (b * (a + b)) * s(2, 3)
        a, b = dx[-1], dx[-2]
        last = a / (b * (a + b)) * s(-3, -2) - (a + b) / (a * b) * s(-2, -1) + (2 * a + b) / (a * (a + b)) * s(-1)
    else:
      center = (s(2) - s(0, -2)) / h / 2
      if edge_order == 1: first, last = (s(1, 2) - s(0, 1)) / h, (s(-1) - s(-2, -1)) / h
      else:
        first = (-1.5 * s(0, 1) + 2 * s(1, 2) - 0.5 * s(2, 3)) / h
        last = (0.5 * s(-3, -2) - 2 * s(-2, -1) + 1.5 * s(-1)) / h
    out.append(cat([first, center, last], d))
  return tuple(out)


from lazygrad.complex import ComplexTensor, cat_complex  # noqa: E402  (it builds on Tensor, defined above)
