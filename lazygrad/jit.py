"""lazygrad.jit: capture the kernels one call of a function launches, then replay them for later calls with the new
inputs' buffers, skipping graph building, scheduling and lowering.

The first call runs normally (kernels compile, optimizer state gets real buffers); the second and third calls run
normally too and record their launches. If both recordings launch the same kernels, later calls replay them; if not
(the function bakes a changing Python number of its own into its kernels, or copies different data from the host,
say), the function keeps running normally, with a warning, rather than replaying something wrong.

A call whose arguments differ from the recorded ones (a tensor's shape, dtype or device; a Python number) is recorded
once, running normally, and the calls after it with the same arguments replay that recording. Its kernels are not
built again: numbers that change are kernel arguments after one rebuild (see codegen/dynamic.py). The last few
argument signatures' recordings are kept, so alternating between them (training and evaluation batches, a
DataLoader's short last batch) replays each. A function that never launched the same kernels twice starts the
whole cycle again instead.

What a replayed function may do: read its tensor arguments, read other tensors it does not change, and update
tensors with `Tensor.assign` (parameters, optimizer state); it returns a Tensor, a tuple/list of them, or None.
Python side effects (prints, `.item()`) happen only in the calls that run normally.
"""
from __future__ import annotations
import functools
import warnings
from collections import OrderedDict
from lazygrad import lazy
from lazygrad import tensor as tensor_module
from lazygrad.device import Buffer, count_kernel, next_epoch
from lazygrad.lazy import LazyBuffer
from lazygrad.tensor import Tensor, realize

WARMUP_CALLS = 1
SIGNATURES = 4  # argument signatures whose recordings are kept for replay


class _Recording:
  def __init__(self, launches, uploads, args, assigned, outputs, structure):
    self.launches = launches          # [(device, ast, [Buffer], origin)]
    self.uploads = uploads            # [(id of a buffer copied from the host during the call, its bytes)]
    self.arg_bufs = args              # id(Buffer) -> argument position
    self.assigned = assigned          # [(tensor, id(buffer before the call), buffer after, view after)]
    self.outputs = outputs            # [(buffer, view)] of the returned tensors
    self.structure = structure        # how the returned tensors were packed: None, "tensor", "tuple", "list"

  def same_kernels(self, other: _Recording) -> bool:
    """Same kernels, and the same data copied from the host (a replay repeats the first recording's copies' data)."""
    return (len(self.launches) == len(other.launches) and all(a[1] is b[1] for a, b in zip(self.launches, other.launches))
            and [u[1] for u in self.uploads] == [u[1] for u in other.uploads])


def _signature(args) -> tuple:
  return tuple((t.shape, t.dtype.name, t.device) if isinstance(t, Tensor) else ("py", repr(t)) for t in args)


def _base_buffer(t: Tensor) -> Buffer:
  return t.lazydata.base.realized


class jit:
  """Decorator: `@lazygrad.jit def step(x, y): ...`."""

  def __init__(self, fn):
    self.fn = fn
    self.reset()
    functools.update_wrapper(self, fn)

  def reset(self):
    self.calls, self.signature, self.recordings, self.replayable = 0, None, [], None
    self.trusted = False  # two calls launched the same kernels: a new signature then needs one recording
    self.known: OrderedDict[tuple, _Recording] = OrderedDict()  # replayable recordings of recent signatures

  def _switch(self, signature):
    """Arguments unlike the last call's: replay this signature's recording if one is kept, else record it once (a
    function never found replayable starts over)."""
    if self.replayable: self.known[self.signature] = self.recordings[-1]
    while len(self.known) > SIGNATURES: self.known.popitem(last=False)
    if not self.trusted: self.reset()
    self.signature, rec = signature, self.known.pop(signature, None)
    self.recordings, self.replayable = ([rec], True) if rec is not None else ([], None)
    if self.trusted: self.calls = WARMUP_CALLS

  def __call__(self, *args, **kwargs):
    if kwargs: raise TypeError("lazygrad.jit: pass tensors as positional arguments")
    signature = _signature(args)
    if signature != self.signature: self._switch(signature)
    tensors = [a for a in args if isinstance(a, Tensor)]
    if tensors: realize(*tensors)
    self.calls += 1
    if self.replayable: return self._replay(tensors)
    if self.replayable is False: return self.fn(*args)
    out = self._record(args, tensors)  # warm-up calls record too, so what they update ends realized
    if self.calls <= WARMUP_CALLS:
      self.recordings.clear()
      return out
    if self.trusted: self.replayable = True
    elif len(self.recordings) == 2:
      self.replayable = self.trusted = self.recordings[0].same_kernels(self.recordings[1])
      if not self.replayable:
        warnings.warn(f"lazygrad.jit: {getattr(self.fn, '__name__', 'function')} launched different kernels in two "
                      f"calls (a Python number that changes each call, in a kernel or copied from the host?); running it without replay")
      self.recordings = self.recordings[1:]
    return out

  def _record(self, args, tensors):
    arg_bufs = {id(_base_buffer(t)): n for n, t in enumerate(tensors)}
    assigned: dict[int, tuple] = {}

    def on_assign(t: Tensor):
      if id(t) not in assigned:
        before = t.lazydata.base.realized
        assigned[id(t)] = (t, id(before) if before is not None else None)

    launches: list = []
    uploads: list = []
    lazy.capture, lazy.uploads, tensor_module.assign_hook = launches, uploads, on_assign
    try:
      out = self.fn(*args)
      outs = [] if out is None else [out] if isinstance(out, Tensor) else list(out)
      if not all(isinstance(o, Tensor) for o in outs):
        raise TypeError("lazygrad.jit: the function must return a Tensor, a tuple or list of Tensors, or None")
      realize(*outs, *(t for t, _ in assigned.values()))
    finally:
      lazy.capture, lazy.uploads, tensor_module.assign_hook = None, None, None
    structure = None if out is None else "tensor" if isinstance(out, Tensor) else type(out).__name__
    self.recordings.append(_Recording(
      launches, uploads, arg_bufs,
      [(t, before, _base_buffer(t), (t.lazydata.base.shape, t.lazydata.st)) for t, before in assigned.values()],
      [(_base_buffer(o), (o.lazydata.base.shape, o.lazydata.st)) for o in outs], structure))
    return out

  def _replay(self, tensors):
    rec = self.recordings[-1]
    mapping: dict[int, Buffer] = {}
    for buf_id, n in rec.arg_bufs.items(): mapping[buf_id] = _base_buffer(tensors[n])
    for t, before, after, _ in rec.assigned:
      if before is not None: mapping[before] = _base_buffer(t)  # the state as it is now
    fresh = {}
    for _, _, after, _ in rec.assigned: fresh[id(after)] = after
    for buf, _ in rec.outputs: fresh[id(buf)] = buf
    for buf_id, buf in fresh.items(): mapping[buf_id] = Buffer(buf.device, buf.size, buf.dtype)
    next_epoch()
    for dev, ast, buffers, origin in rec.launches:
      dev.exec(ast, [mapping.get(id(b), b) for b in buffers], origin)
      count_kernel()
    for t, _, after, st in rec.assigned:
      t.lazydata = _wrap(mapping[id(after)], st)
    outs = [Tensor._from_lazy(_wrap(mapping[id(buf)], st)) for buf, st in rec.outputs]
    if rec.structure is None: return None
    if rec.structure == "tensor": return outs[0]
    return tuple(outs) if rec.structure == "tuple" else outs


def _wrap(buf: Buffer, view) -> LazyBuffer:
  """A realized LazyBuffer over `buf` (of the recorded base shape), seen through the recorded view."""
  from lazygrad.ops import LoadOps
  from lazygrad.shape import ShapeTracker
  base_shape, st = view
  base = LazyBuffer(buf.device, ShapeTracker.from_shape(base_shape), buf.dtype, LoadOps.FROM_HOST)
  base.realized = buf
  return base._view(st)
