"""LazyBuffer: an unevaluated node of the op graph, and `realize`, which schedules and runs what a result needs.

A base LazyBuffer holds an op and its sources (or, once realized, a device Buffer). A view LazyBuffer points at a
base and holds a ShapeTracker: movement ops make views and never copy.
"""
from __future__ import annotations
import math
import sys
import threading
import time
import weakref
from math import prod
import numpy as np
from lazygrad import device as devices
from lazygrad.dtype import DType, bool_
from lazygrad.helpers import DEBUG, gc_paused
from lazygrad.ops import UnaryOps, BinaryOps, TernaryOps, ReduceOps, LoadOps, BufferOps, ELEMENTWISE, reduce_identity
from lazygrad.schedule import schedule
from lazygrad.shape import ShapeTracker

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))  # graph walks recurse through long elementwise chains


class ThreadState(threading.local):
  """What one Python thread is in the middle of, kept apart from every other thread's: two threads training their own
  models must neither realize each other's in-place writes nor record each other's launches into a jit recording.
  Threads may share realized tensors; an unrealized graph is realized in place, so one thread at a time works on it."""

  def __init__(self):  # runs once in each thread that reads it (attributes of the instance: faster than the class's)
    # equal nodes built twice are one node, so a recomputed expression (an op's backward, say) is scheduled once; per
    # thread, because realizing a node changes it in place (a constant's, shared by every graph that uses it, too)
    # while another thread's scheduler may be reading it
    self.nodes: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
    # tensors the next realize on their device computes too (by id: a Tensor's == is elementwise, so it cannot sit in
    # a set): ones written in place (x[i] = v, x.add_(1)), so a loop of writes that is never read whole (a KV cache)
    # does not grow one graph, and new kernels, per write; and a loss that backward ran from, which the user reads
    # after the step (loss.item()): computed in the step's schedule, from values it computes anyway, instead of in a
    # realize of its own that computes some of them again (and, in a model's first step, builds its kernels apart)
    self.realize_next: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
    # while lazygrad.jit records a call: every launch as (device, kernel AST, buffers, origin), every host-to-device
    # copy as (its buffer, the data), and a hook told of each tensor the call updates (see Tensor.assign)
    self.capture: list | None = None
    self.uploads: list | None = None
    self.assign_hook = None


this_thread = ThreadState()


# float ops whose result is NaN whenever an operand is NaN
NAN_IN_NAN_OUT = (UnaryOps.NEG, UnaryOps.EXP2, UnaryOps.LOG2, UnaryOps.SIN, UnaryOps.COS, UnaryOps.EXP, UnaryOps.SQRT, UnaryOps.RECIP, UnaryOps.CAST,
                  BinaryOps.ADD, BinaryOps.SUB, BinaryOps.MUL, BinaryOps.DIV, BinaryOps.MAX)


def _is_nan(value) -> bool: return isinstance(value, float) and math.isnan(value)


def _is_identity_zero(value, dtype: DType, sign: int) -> bool:
  """Whether adding (sign -1) or subtracting (sign 1) this constant leaves every value as it is: any zero for
  integers, only a zero of that sign for floats."""
  return value == 0 and (not dtype.is_float or math.copysign(1.0, value) == sign)


class LazyBuffer:
  def __init__(self, device: str, st: ShapeTracker, dtype: DType, op=None, srcs=(), arg=None, base=None):
    self.device, self.st, self.dtype = device, st, dtype
    self.shape: tuple[int, ...] = st.shape  # read thousands of times per step: an attribute, not a property
    self._base = base  # None for a base
    if base is None:
      self.op, self.srcs, self.arg = op, tuple(srcs), arg
      self.realized: devices.Buffer | None = None
      self.origin = ""  # the user op that made this node, for kernel error messages

  def __repr__(self):
    if self._base is not None: return f"<LB view {self.shape} of {self._base!r}>"
    return f"<LB {self.device} {self.shape} {self.dtype.name} {'realized' if self.realized else self.op}>"

  @property
  def base(self) -> LazyBuffer: return self if self._base is None else self._base
  @property
  def size(self) -> int: return prod(self.st.shape)
  @property
  def is_realized(self) -> bool: return self.base.realized is not None

  # ---- creation

  @staticmethod
  def new(device, shape, dtype, op, srcs=(), arg=None) -> LazyBuffer:
    key = None
    if op not in (LoadOps.EMPTY, LoadOps.FROM_HOST):
      key = (device, tuple(shape), dtype.name, op, tuple(id(s) for s in srcs), repr(arg))
      nodes = this_thread.nodes
      hit = nodes.get(key)
      if hit is not None and hit.realized is None and len(hit.srcs) == len(srcs) and all(a is b for a, b in zip(hit.srcs, srcs)):
        return hit
    lb = LazyBuffer(device, ShapeTracker.from_shape(shape), dtype, op, srcs, arg)
    lb._cache_key = key
    if key is not None: nodes[key] = lb
    return lb

  @staticmethod
  def from_numpy(x: np.ndarray, device: str) -> LazyBuffer:
    from lazygrad.dtype import from_numpy_dtype
    dtype = from_numpy_dtype(x.dtype)
    lb = LazyBuffer(device, ShapeTracker.from_shape(x.shape), dtype, LoadOps.FROM_HOST)
    lb.realized = devices.Buffer(device, x.size, dtype)
    if x.size: lb.realized.copyin(x.reshape(-1))
    if this_thread.uploads is not None: this_thread.uploads.append((lb.realized, x.copy()))
    return lb

  def overwrite(self, x: np.ndarray) -> None:
    """Copy host data into this realized base's buffer in place, so every kernel that reads the buffer, a jit's
    replayed ones included, sees the new values."""
    if self._base is not None or self.realized is None or x.size != self.size:
      raise RuntimeError(f"overwrite: needs a realized buffer of {x.size} elements, got {'a view' if self._base else self.size}")
    x = np.ascontiguousarray(x, dtype=self.dtype.np).reshape(-1)
    self.realized.copyin(x)
    self.__dict__.pop("_panels", None)  # copies of the old values made for matmuls (see function.MatMul)
    if this_thread.uploads is not None: this_thread.uploads.append((self.realized, x.copy()))

  @staticmethod
  def const(value, dtype: DType, device: str, shape=()) -> LazyBuffer:
    value = bool(value) if dtype is bool_ else (int(value) if dtype.is_int else float(value))
    lb = LazyBuffer.new(device, (), dtype, LoadOps.CONST, (), value)
    return lb.reshape((1,) * len(shape)).expand(tuple(shape)) if shape else lb

  @staticmethod
  def empty(shape, dtype: DType, device: str) -> LazyBuffer:
    return LazyBuffer(device, ShapeTracker.from_shape(shape), dtype, LoadOps.EMPTY)

  def const_like(self, value) -> LazyBuffer: return LazyBuffer.const(value, self.dtype, self.device, self.shape)

  @property
  def const_value(self):
    """The value if this is a broadcast constant (and not padded), else None."""
    b = self.base
    if b.realized is None and b.op is LoadOps.CONST and all(v.mask is None for v in self.st.views): return b.arg
    return None

  # ---- compute

  def e(self, op, *others: LazyBuffer, dtype: DType | None = None, arg=None) -> LazyBuffer:
    srcs = (self, *others)
    assert all(s.shape == self.shape for s in srcs), f"elementwise sources differ in shape: {[s.shape for s in srcs]}"
    if dtype is None:
      dtype = bool_ if op in (BinaryOps.CMPLT, BinaryOps.CMPEQ, UnaryOps.NOT) else (srcs[-1].dtype if op is TernaryOps.WHERE else self.dtype)
    # algebraic shortcuts that keep backward graphs small
    if op in (BinaryOps.ADD, BinaryOps.SUB, BinaryOps.MUL, BinaryOps.DIV) and dtype is self.dtype and others[0].dtype is dtype:
      b = others[0].const_value
      a = self.const_value
      # x + 0 is not x where x is -0.0 (it is +0.0): only x + (-0.0) and x - (+0.0) are x for every float
      if b is not None and ((op is BinaryOps.ADD and _is_identity_zero(b, dtype, -1)) or
                            (op is BinaryOps.SUB and _is_identity_zero(b, dtype, 1)) or
                            (op in (BinaryOps.MUL, BinaryOps.DIV) and b == 1)): return self
      if a is not None and op is BinaryOps.ADD and _is_identity_zero(a, dtype, -1): return others[0]
      if a is not None and op is BinaryOps.MUL and a == 1: return others[0]
    if op is UnaryOps.CAST and dtype is self.dtype: return self
    # float arithmetic on a constant NaN is NaN: fold it here, because PoCL's vector exp2/floor/tanh of a NaN the
    # compiler can see give garbage (a NaN known only at run time is fine)
    if dtype.is_float and op in NAN_IN_NAN_OUT and any(s.dtype.is_float and _is_nan(s.const_value) for s in srcs):
      return LazyBuffer.const(math.nan, dtype, self.device, self.shape)
    return LazyBuffer.new(self.device, self.shape, dtype, op, srcs, arg)

  def cast(self, dtype: DType) -> LazyBuffer: return self.e(UnaryOps.CAST, dtype=dtype)

  def r(self, op: ReduceOps, axes: tuple[int, ...]) -> LazyBuffer:
    """Reduce over `axes`, keeping them as size 1."""
    axes = tuple(sorted(a for a in axes if self.shape[a] != 1))
    if not axes: return self
    shape = tuple(1 if i in axes else s for i, s in enumerate(self.shape))
    if any(self.shape[a] == 0 for a in axes):  # nothing to reduce: the identity (amax's caller raises first)
      return LazyBuffer.const(reduce_identity(op, self.dtype), self.dtype, self.device, shape)
    split = self._split_reduce(op, axes, shape)
    if split is not None: return split
    return LazyBuffer.new(self.device, shape, self.dtype, op, (self,), axes)

  def _split_reduce(self, op: ReduceOps, axes, shape):
    """A big reduction to a few outputs runs in two stages, so the first has enough work-items to fill the device:
    (.., n, ..) -> (.., k, n/k, ..) reduced over n/k, then over k. Each work-item of the first stage reads one
    contiguous run (measured faster on PoCL than work-items reading interleaved elements)."""
    red = prod(self.shape[a] for a in axes)
    if red < 2**15 or prod(shape) > 256 or axes != tuple(range(axes[0], axes[-1] + 1)): return None
    k = next((k for k in (1024, 512, 256, 128) if red % k == 0 and red // k >= 256), None)
    if k is None: return None
    first = axes[0]
    merged = self.reshape(self.shape[:first] + (red,) + self.shape[axes[-1] + 1:])
    staged = merged.reshape(self.shape[:first] + (k, red // k) + self.shape[axes[-1] + 1:])
    partial = staged.r(op, (first + 1,))
    total = partial.r(op, (first,))
    return total.reshape(shape)

  def gather(self, index: LazyBuffer, dim: int) -> LazyBuffer:
    """torch.gather: the output has index's shape; index's values pick positions along `dim` of self."""
    from lazygrad.ops import IndexOps
    return LazyBuffer.new(self.device, index.shape, self.dtype, IndexOps.GATHER, (self, index), dim)

  @staticmethod
  def cat(pieces: list[LazyBuffer], axis: int) -> LazyBuffer:
    """pieces (one dtype, equal shapes off `axis`) joined along axis: each is computed into its own region of one
    buffer, so the work is the output's size whatever the number of pieces."""
    shape = list(pieces[0].shape)
    shape[axis] = sum(p.shape[axis] for p in pieces)
    return LazyBuffer.new(pieces[0].device, tuple(shape), pieces[0].dtype, LoadOps.CAT, tuple(pieces), axis)

  def contiguous(self, force: bool = False) -> LazyBuffer:
    """A contiguous version; a copy only where the view needs one (or `force` asks for a new buffer)."""
    if not force and (self._base is None or (self.st.contiguous and self.size == self.base.size)):
      return self if self._base is None else self.base.reshape(self.shape)
    return LazyBuffer.new(self.device, self.shape, self.dtype, LoadOps.CONTIGUOUS, (self,))

  # ---- movement: views only

  def _view(self, st: ShapeTracker) -> LazyBuffer:
    base = self.base
    if st.contiguous and st.shape == base.shape: return base
    return LazyBuffer(self.device, st, self.dtype, base=base)

  def reshape(self, shape) -> LazyBuffer:
    return self if tuple(shape) == self.shape else self._view(self.st.reshape(tuple(shape)))
  def permute(self, order) -> LazyBuffer:
    return self if tuple(order) == tuple(range(len(order))) else self._view(self.st.permute(tuple(order)))
  def expand(self, shape) -> LazyBuffer:
    return self if tuple(shape) == self.shape else self._view(self.st.expand(tuple(shape)))
  def pad(self, padding) -> LazyBuffer:
    return self if all(p == (0, 0) for p in padding) else self._view(self.st.pad(tuple(padding)))
  def shrink(self, bounds) -> LazyBuffer:
    return self if all(b == (0, s) for b, s in zip(bounds, self.shape)) else self._view(self.st.shrink(tuple(bounds)))
  def flip(self, axes) -> LazyBuffer:
    axes = tuple(a for a in axes if self.shape[a] > 1)
    return self if not axes else self._view(self.st.flip(axes))

  # ---- evaluation

  def realize(self) -> LazyBuffer:
    realize(self)
    return self

  def numpy(self) -> np.ndarray:
    lb = self.contiguous()
    realize(lb)
    host = lb.base.realized.numpy() if lb.size else np.empty(0, lb.dtype.np)
    return host.reshape(self.shape)


def pending(lbs) -> tuple[list[LazyBuffer], list[int]]:
  """The bases a realize of these buffers computes: theirs that are not realized, and those of the tensors this thread
  left for the next realize on the same device (in-place writes, a loss: see ThreadState.realize_next), with those
  tensors' keys in realize_next."""
  todo = [lb.base for lb in lbs if lb.base.realized is None]
  keys = []
  for key, t in list(this_thread.realize_next.items()) if todo else ():
    b = t.lazydata.base
    if b.device == todo[0].device:
      keys.append(key)
      if b.realized is None and all(b is not x for x in todo): todo.append(b)
  return todo, keys


def realize(*lbs: LazyBuffer):
  """Schedule and run every kernel needed to give these buffers' bases device memory (see pending)."""
  todo, keys = pending(lbs)
  if not todo: return
  for key in keys: this_thread.realize_next.pop(key, None)
  start = time.perf_counter() if DEBUG >= 1 else 0
  with gc_paused():
    items = schedule(todo)
    launched = run_schedule(items)
  if DEBUG >= 1:
    devices.get(todo[0].device).synchronize()
    print(f"realize: {launched} kernel(s) in {(time.perf_counter() - start) * 1e3:.2f} ms")


def run_schedule(items) -> int:
  devices.next_epoch()
  devices.compile_progress.start(len(items))
  try: return _run_schedule(items)
  finally: devices.compile_progress.finish()


def _run_schedule(items) -> int:
  launched = 0
  capture, nodes = this_thread.capture, this_thread.nodes
  made: dict[int, devices.Buffer] = {}  # each output's buffer, realized once every kernel is sent
  used = {}
  for si in items:
    out = si.out
    # the kernels of a CAT each write a region of one buffer: the first piece allocates it
    piece = si.ast is not None and si.ast.op is BufferOps.STORE
    buffer = made.get(id(out)) if piece else None
    if buffer is None: buffer = made[id(out)] = devices.Buffer(out.device, out.size, out.dtype)
    if si.ast is not None and out.size:
      dev = used[out.device] = devices.get(out.device)
      if DEBUG >= 2: print(f"kernel {devices.kernel_count()}: {out.shape} {out.dtype.name} <- "
                           f"{len(si.inputs)} input(s){' for ' + si.origin if si.origin else ''}")
      buffers = [buffer] + [made.get(id(i)) or i.realized for i in si.inputs]
      dev.exec(si.ast, buffers, si.origin)
      if capture is not None: capture.append((dev, si.ast, buffers, si.origin))
      devices.count_kernel()
      launched += 1
  # a backend may hold launches back to build their kernels together; one that fails to build leaves every output
  # of the schedule unrealized, to be computed again
  for dev in used.values(): dev.flush()
  for si in items:
    out = si.out
    out.realized = made[id(out)]
    # the graph below a realized node is no longer needed: let it be freed
    if getattr(out, "_cache_key", None) is not None and nodes.get(out._cache_key) is out:
      del nodes[out._cache_key]  # (a node another thread built stays in its cache, where it is seen as realized)
    out.op, out.srcs, out.arg = None, (), None
  return launched
