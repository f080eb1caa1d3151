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

A Python int argument that changes on every call (a decoding step's position in its KV cache) is followed instead:
two recordings that differ only in that int show how each number in their kernels (an offset, a length, a value
copied from the host) moves with it; once a third recording is predicted exactly, later calls with any value of it
replay, each kernel launched with its numbers for that value (see Specializer.resolve's `numbers`).

What a replayed function may do: read its tensor arguments, read other tensors it does not change, and update
tensors with `Tensor.assign` or slice assignment (parameters, optimizer state, a KV cache); it returns a Tensor, a
tuple/list of them, or None. Python side effects (prints, `.item()`) happen only in the calls that run normally.

Threads: a recording holds only the launches, host copies and updates of the thread that makes it (see
lazy.ThreadState), so two threads may each run their own jitted function at once; one jitted function is called from
one thread at a time.
"""
from __future__ import annotations
import collections
import functools
import itertools
import warnings
from collections import OrderedDict
import numpy as np
from lazygrad import lazy
from lazygrad.codegen.dynamic import RANGES, template
from lazygrad.device import Buffer, count_kernel, next_epoch
from lazygrad.helpers import gc_paused
from lazygrad.lazy import LazyBuffer
from lazygrad.tensor import Tensor, realize

WARMUP_CALLS = 1
SIGNATURES = 4  # argument signatures whose recordings are kept for replay
REPLAYER_TRIES = 8  # replays that may ask the device for a Replayer before one is made (see _Recording.make_replayer)


class _Recording:
  def __init__(self, signature, ints, launches, uploads, args, assigned, outputs, structure):
    self.signature, self.ints = signature, ints  # see _signature
    self.launches = launches          # [(device, ast, [Buffer], origin)]
    self.devices = list({id(dev): dev for dev, *_ in launches}.values())  # each once: a replay flushes them
    self.uploads = uploads            # [(a buffer copied from the host during the call, the data)]
    self.arg_bufs = args              # id(Buffer) -> argument position
    self.assigned = assigned          # [(tensor, id(buffer before the call), buffer after, view after)]
    self.outputs = outputs            # [(buffer, view)] of the returned tensors
    self.structure = structure        # how the returned tensors were packed: None, "tensor", "tuple", "list"
    self.replayers: dict = {}         # (resized buffers, whether numbers stay) -> the device's Replayer, see _replay
    self.tries = 0                    # replays that asked the device for a Replayer (see make_replayer)
    self._stand_in()

  def _stand_in(self):
    """Put a _StandIn in place of every recorded buffer that a replay swaps for another (arguments, updated tensors'
    state before and after the call, returned tensors): kept, they held a training step's parameters, optimizer state
    and gradients twice over for as long as the recording lived (13x the parameters' memory for an Adam MLP step,
    against 3.6x without the jit)."""
    swapped = {*self.arg_bufs, *(before for _, before, _, _ in self.assigned if before is not None),
               *(id(after) for _, _, after, _ in self.assigned), *(id(buf) for buf, _ in self.outputs)}
    stand_ins: dict[int, _StandIn] = {}

    def stand_in(buf):
      if id(buf) not in swapped: return buf
      if id(buf) not in stand_ins: stand_ins[id(buf)] = _StandIn(buf.device, buf.size, buf.dtype)
      return stand_ins[id(buf)]
    self.launches = [(dev, ast, [stand_in(b) for b in bufs], origin) for dev, ast, bufs, origin in self.launches]
    new_id = lambda i: id(stand_ins[i]) if i in stand_ins else i  # a buffer no launch reads keeps its (unused) id
    self.arg_bufs = {new_id(i): n for i, n in self.arg_bufs.items()}
    self.assigned = [(t, None if before is None else new_id(before), stand_in(after), view)
                     for t, before, after, view in self.assigned]
    self.outputs = [(stand_in(buf), view) for buf, view in self.outputs]
    self.stand_ins = list(stand_ins.values())  # alive with the recording: their ids stay unique

  def same_kernels(self, other: _Recording) -> bool:
    """Same kernels, and the same data copied from the host (a replay repeats the first recording's copies' data)."""
    return (len(self.launches) == len(other.launches) and all(a[1] is b[1] for a, b in zip(self.launches, other.launches))
            and [u[1].tobytes() for u in self.uploads] == [u[1].tobytes() for u in other.uploads])

  def roles(self) -> list:
    """Each launch's buffers by what they are (an argument, a tensor's state before or after the call, a returned
    tensor, or the n-th buffer of the call's own), so two recordings' launches can be matched buffer for buffer."""
    known = {i: ("arg", n) for i, n in self.arg_bufs.items()}
    for k, (_, before, after, _) in enumerate(self.assigned):
      known[before], known[id(after)] = ("before", k), ("after", k)
    for k, (buf, _) in enumerate(self.outputs): known.setdefault(id(buf), ("out", k))
    own: dict[int, int] = {}
    return [[known.get(id(b)) or ("own", own.setdefault(id(b), len(own))) for b in bufs] for _, _, bufs, _ in self.launches]

  def make_replayer(self, plan: list, numbers: list | None):
    """The device's launcher of the whole plan (see Replayer in backends/opencl.py) once it can make one: None to ask
    again at the next replay (a kernel not yet built or not yet resolved for good), False to stop asking (another
    backend, several devices, or REPLAYER_TRIES replays asked)."""
    if not getattr(self.devices[0], "promotions_pending", False): self.tries += 1  # not while kernels are built for it
    make = getattr(self.devices[0], "replayer", None) if len(self.devices) == 1 else None
    if make is None or self.tries > REPLAYER_TRIES: return False
    return make(plan, numbers)

  def views(self) -> list:
    return [v for *_, v in self.assigned] + [v for _, v in self.outputs]

  def plan(self, resized: frozenset = frozenset()) -> list:
    """The launches as a replay runs them: (device, AST, the buffers as recorded, [(place, id of a recorded buffer a
    replay puts another in its place)], origin). Only arguments, updated tensors, returned tensors and the own
    buffers whose ids are `resized` (see _Affine) are put in place; the call's other own buffers are used again."""
    plans = self.__dict__.setdefault("_plans", {})
    if resized not in plans:
      plans[resized] = [(dev, ast, bufs, [(n, id(b)) for n, (b, role) in enumerate(zip(bufs, roles))
                                          if role[0] != "own" or id(b) in resized], origin)
                        for (dev, ast, bufs, origin), roles in zip(self.launches, self.roles())]
    return plans[resized]


class _Affine:
  """How the numbers of a recording's kernels, the sizes of its own buffers and the data it copies from the host
  move with one int argument: fitted on two recordings that differ only in that argument (each number's step per
  unit must be a whole number), and trusted once it predicts a third recording exactly."""

  def __init__(self, base: _Recording, arg: int, launches: list, sizes: dict, uploads: list):
    self.base, self.arg = base, arg  # replays run the base recording's launches
    self.launches = launches  # per launch: None (its numbers stay) or (key, kinds, base values, [(slot, step)])
    self.sizes = sizes        # id(own buffer) -> (buffer, step of its size)
    self.uploads = uploads    # [(buffer, base data, step of each element)]
    self.resized: dict[int, Buffer] = {}  # own buffers at the last replayed call's sizes
    self.resized_ids = frozenset(sizes)

  @staticmethod
  def fit(a: _Recording, b: _Recording) -> _Affine | None:
    if a.signature != b.signature or len(a.ints) != len(b.ints): return None
    moved = [k for k, (x, y) in enumerate(zip(a.ints, b.ints)) if x != y]
    if len(moved) != 1 or not _same_shape(a, b): return None
    arg = moved[0]
    d = b.ints[arg] - a.ints[arg]
    launches = []
    for (_, ast_a, _, _), (_, ast_b, _, _) in zip(a.launches, b.launches):
      if ast_a is ast_b:
        launches.append(None)
        continue
      (key_a, va, kinds), (key_b, vb, _) = template(ast_a), template(ast_b)
      if key_a != key_b: return None
      steps = [(k, _step(x, y, d, kinds[k])) for k, (x, y) in enumerate(zip(va, vb)) if x != y]
      if any(s is None for _, s in steps): return None
      launches.append((key_b, kinds, list(vb), tuple(steps)))
    sizes = {}
    for (_, _, bufs_a, _), (_, _, bufs_b, _), roles in zip(a.launches, b.launches, b.roles()):
      for x, y, role in zip(bufs_a, bufs_b, roles):
        if role[0] == "own" and x.size != y.size:
          if (y.size - x.size) % d: return None
          sizes[id(y)] = (y, (y.size - x.size) // d)
    uploads = []
    for (_, xa), (buf, xb) in zip(a.uploads, b.uploads):
      if np.array_equal(xa, xb): continue
      if xa.dtype.kind not in "iuf" or not all(np.all(np.abs(x) < 2**24) and np.all(x == np.round(x)) for x in (xa, xb)):
        return None  # only whole numbers are followed, floats too while they hold them exactly
      delta = xb.astype(np.int64) - xa.astype(np.int64)
      if np.any(delta % d): return None
      uploads.append((buf, xb, delta // d))
    return _Affine(b, arg, launches, sizes, uploads)

  def numbers(self, ints: tuple) -> list | None:
    """Each launch's numbers for these ints (None for a launch whose numbers stay), or None where the model does not
    cover them: another int changed, or a size or bound would leave its range."""
    base = self.base.ints
    if len(ints) != len(base) or any(x != y for k, (x, y) in enumerate(zip(ints, base)) if k != self.arg): return None
    d = ints[self.arg] - base[self.arg]
    if d == 0: return [None] * len(self.launches)
    out = []
    for launch in self.launches:
      if launch is None:
        out.append(None)
        continue
      key, kinds, values, steps = launch
      values = list(values)
      for k, s in steps:
        v = values[k] + s * d
        kind = kinds[k]
        if kind in RANGES:
          if not RANGES[kind][0] <= v <= RANGES[kind][1]: return None
        elif isinstance(values[k], float): v = float(v)
        values[k] = v
      out.append((key, tuple(values), kinds, steps))
    if any(buf.size + s * d < 1 for buf, s in self.sizes.values()): return None
    return out

  def predicts(self, c: _Recording) -> bool:
    """Whether this model, fitted on earlier recordings, gives exactly the numbers of recording `c`."""
    numbers = self.numbers(c.ints)
    base = self.base
    if numbers is None or not _same_shape(base, c): return False
    d = c.ints[self.arg] - base.ints[self.arg]
    for (_, ast_b, _, _), (_, ast_c, _, _), want in zip(base.launches, c.launches, numbers):
      if want is None:
        if ast_b is not ast_c: return False
      elif template(ast_c) != want[:3]: return False
    for (_, _, bufs_b, _), (_, _, bufs_c, _) in zip(base.launches, c.launches):
      for x, y in zip(bufs_b, bufs_c):
        if id(x) in self.sizes and x.size + self.sizes[id(x)][1] * d != y.size: return False
        if id(x) not in self.sizes and x.size != y.size: return False
    moving = {id(buf): (x, s) for buf, x, s in self.uploads}
    for (buf, xb), (_, xc) in zip(base.uploads, c.uploads):
      x, s = moving.get(id(buf), (xb, 0))
      if not np.array_equal(x + s * d, xc): return False
    return True

  def buffers(self, ints: tuple) -> dict[int, Buffer]:
    """The call's own buffers whose size moves, at these ints' sizes; and uploads the moving host data into its
    buffers (they are the call's own: each replay fills them again)."""
    d = ints[self.arg] - self.base.ints[self.arg]
    mapping = {}
    for i, (buf, s) in self.sizes.items():
      size = buf.size + s * d
      now = self.resized.get(i)
      if now is None or now.size != size: now = self.resized[i] = Buffer(buf.device, size, buf.dtype)
      mapping[i] = now
    for buf, x, s in self.uploads:
      target = mapping.get(id(buf), buf)
      target.copyin((x + s * d).astype(x.dtype).reshape(-1))
    return mapping


def _same_shape(a: _Recording, b: _Recording) -> bool:
  """The same launches on the same kinds of buffers, returning and updating tensors of the same views, copying as
  many arrays of the same shapes from the host: recordings that may differ only in their numbers."""
  return (len(a.launches) == len(b.launches) and len(a.uploads) == len(b.uploads) and a.structure == b.structure
          and all(x[0] is y[0] for x, y in zip(a.launches, b.launches)) and a.roles() == b.roles()
          and a.views() == b.views()
          and all(x.shape == y.shape and x.dtype == y.dtype for (_, x), (_, y) in zip(a.uploads, b.uploads)))


def _step(x, y, d: int, kind: str):
  """How much a number moves per unit of the int, if a whole number (floats only where they hold whole numbers)."""
  if kind not in RANGES and not (float(x).is_integer() and float(y).is_integer()): return None
  delta = int(y) - int(x)
  return None if delta % d else delta // d


_COMPLEX = ("lazygrad.jit: complex64 tensors cannot be a jitted function's arguments or results; pass and return "
            "their float32 views (lazygrad.view_as_real, lazygrad.view_as_complex)")


def _signature(args) -> tuple[tuple, tuple]:
  """(what a recording is replayed for: tensors' shapes, dtypes and devices and other arguments' values, with each
  int's place; the ints' values, which an affine model may follow)."""
  signature, ints = [], []
  for a in args:
    if isinstance(a, Tensor):  # the kernels read an argument through its view (a transpose, an expand): part of them
      signature.append((a.shape, a.dtype.name, a.device, a.lazydata.base.shape, a.lazydata.st.key))
    elif type(a) is int:
      signature.append("int")
      ints.append(a)
    else: signature.append(("py", repr(a)))
  return tuple(signature), tuple(ints)


class _StandIn:
  """What a recording keeps of a buffer a replay swaps for another: its device, size and dtype, no memory (a launch
  reads the buffer put in its place; a kernel's arguments are set to None until then)."""
  handle = None
  mirror = None

  def __init__(self, device: str, size: int, dtype):
    self.device, self.size, self.dtype, self.nbytes = device, size, dtype, size * dtype.itemsize

  def __repr__(self): return f"<stand-in for a Buffer {self.device} {self.size} {self.dtype.name}>"


def _base_buffer(t: Tensor) -> Buffer:
  return t.lazydata.base.realized


class jit:
  """Decorator: `@lazygrad.jit def step(x, y): ...`."""

  def __init__(self, fn, *, warn: bool = True):
    self.fn, self.warn = fn, warn  # warn: say so when the function is found not replayable
    self.reset()
    self.models: OrderedDict[tuple, _Affine] = OrderedDict()  # trusted affine models of recent signatures
    functools.update_wrapper(self, fn)

  @staticmethod
  def recording() -> bool:
    """Whether this thread is in a call that a jit records: what runs in it is recorded with it."""
    return lazy.this_thread.capture is not None

  def reset(self):
    self.calls, self.signature, self.recordings, self.replayable = 0, None, [], None
    self.trusted = False  # two calls launched the same kernels: a new signature then needs one recording
    self.known: OrderedDict[tuple, _Recording] = OrderedDict()  # replayable recordings of recent signatures
    self.last: _Recording | None = None  # the latest recording, and an affine model fitted on it and the one before
    self.candidate: _Affine | None = None

  def _switch(self, signature):
    """Arguments unlike the last call's: replay this signature's recording if one is kept, else record it once (a
    function never found replayable starts over, unless only an int changed)."""
    if self.replayable: self.known[self.signature] = self.recordings[-1]
    while len(self.known) > SIGNATURES: self.known.popitem(last=False)
    if not self.trusted and (self.signature is None or self.signature[0] != signature[0]): self.reset()
    self.signature, rec = signature, self.known.pop(signature, None)
    self.recordings, self.replayable = ([rec], True) if rec is not None else ([], None)
    if self.trusted: self.calls = WARMUP_CALLS

  def __call__(self, *args, **kwargs):
    if kwargs: raise TypeError("lazygrad.jit: pass tensors as positional arguments")
    tensors = [a for a in args if isinstance(a, Tensor)]
    if any(t.is_complex() for t in tensors): raise TypeError(_COMPLEX)
    if tensors: realize(*tensors)
    signature = _signature(args)  # after realize: how each argument views its buffer is part of it
    model = self.models.get(signature[0])
    if model is not None and signature != self.signature:
      numbers = model.numbers(signature[1])
      if numbers is not None:
        self.models.move_to_end(signature[0])
        return self._replay(tensors, model.base, model, numbers, signature[1])
    if signature != self.signature: self._switch(signature)
    self.calls += 1
    if self.replayable: return self._replay(tensors, self.recordings[-1])
    if self.replayable is False: return self.fn(*args)
    out = self._record(args, tensors, signature)  # warm-up calls record too, so what they update ends realized
    if self.calls <= WARMUP_CALLS:
      self.recordings.clear()
      return out
    self._follow(self.recordings[-1])
    if self.trusted: self.replayable = True
    elif len(self.recordings) == 2:
      self.replayable = self.trusted = self.recordings[0].same_kernels(self.recordings[1])
      if not self.replayable and self.warn:
        warnings.warn(f"lazygrad.jit: {getattr(self.fn, '__name__', 'function')} launched different kernels in two "
                      f"calls (a Python number that changes each call, in a kernel or copied from the host?); running it without replay")
      self.recordings = self.recordings[1:]
    return out

  def _follow(self, rec: _Recording):
    """Learn how the numbers move with an int argument: a candidate model that predicts this recording is trusted;
    otherwise a new candidate is fitted on the previous recording and this one."""
    last, self.last = self.last, rec
    if self.candidate is not None and self.candidate.predicts(rec):
      self.models[rec.signature] = self.candidate
      while len(self.models) > SIGNATURES: self.models.popitem(last=False)
      self.candidate, self.trusted = None, True
    else: self.candidate = _Affine.fit(last, rec) if last is not None else None

  def _record(self, args, tensors, signature):
    arg_bufs = {id(_base_buffer(t)): n for n, t in enumerate(tensors)}
    assigned: dict[int, tuple] = {}

    def on_assign(t: Tensor):
      if id(t) not in assigned:
        before = t.lazydata.base.realized
        assigned[id(t)] = (t, id(before) if before is not None else None)

    launches: list = []
    uploads: list = []
    state = lazy.this_thread  # only this thread's launches, copies and updates are the call's
    state.capture, state.uploads, state.assign_hook = launches, uploads, on_assign
    try:
      with gc_paused(): out = self.fn(*args)  # a recorded call builds a whole step's graph (see helpers.gc_paused)
      outs = [] if out is None else [out] if isinstance(out, Tensor) else list(out)
      if not all(isinstance(o, Tensor) for o in outs):
        raise TypeError("lazygrad.jit: the function must return a Tensor, a tuple or list of Tensors, or None")
      if any(o.is_complex() for o in outs): raise TypeError(_COMPLEX)
      realize(*outs, *(t for t, _ in assigned.values()))
    finally:
      state.capture, state.uploads, state.assign_hook = None, None, None
    structure = None if out is None else "tensor" if isinstance(out, Tensor) else type(out).__name__
    self.recordings.append(_Recording(
      *signature, launches, uploads, arg_bufs,
      [(t, before, _base_buffer(t), (t.lazydata.base.shape, t.lazydata.st)) for t, before in assigned.values()],
      [(_base_buffer(o), (o.lazydata.base.shape, o.lazydata.st)) for o in outs], structure))
    return out

  def _replay(self, tensors, rec: _Recording, model: _Affine | None = None, numbers=None, ints=()):
    mapping: dict[int, Buffer] = {}
    if model is not None: mapping.update(model.buffers(ints))
    for buf_id, n in rec.arg_bufs.items(): mapping[buf_id] = _base_buffer(tensors[n])
    for t, before, after, _ in rec.assigned:
      if before is not None: mapping[before] = _base_buffer(t)  # the state as it is now
    fresh = {}
    for _, _, after, _ in rec.assigned: fresh[id(after)] = after
    for buf, _ in rec.outputs: fresh[id(buf)] = buf
    for buf_id, buf in fresh.items(): mapping[buf_id] = Buffer(buf.device, buf.size, buf.dtype)
    next_epoch()
    resized = model.resized_ids if model else frozenset()
    plan, key = rec.plan(resized), (resized, numbers is None)
    replayer = rec.replayers.get(key)
    if not (replayer and replayer.run(mapping, numbers)):
      for n, (dev, ast, buffers, swaps, origin) in enumerate(plan):
        if swaps:
          buffers = list(buffers)
          for k, i in swaps: buffers[k] = mapping.get(i, buffers[k])
        dev.exec(ast, buffers, origin, numbers[n] if numbers is not None else None)
      for dev in rec.devices: dev.flush()  # launches held back to build their kernels together (a new number's)
      if replayer is None: rec.replayers[key] = rec.make_replayer(plan, numbers)
    count_kernel(len(rec.launches))
    # every updated tensor takes its new buffer in one C-level loop, which a Ctrl-C cannot stop halfway (Python runs
    # signal handlers between bytecodes): an interrupted replay leaves all of them as they were before the call
    updated = [(t, _wrap(mapping[id(after)], st)) for t, _, after, st in rec.assigned]
    collections.deque(map(setattr, [t for t, _ in updated], itertools.repeat("lazydata"), [d for _, d in updated]), 0)
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
