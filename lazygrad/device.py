"""Devices: the registry behind LAZYGRAD_DEVICE, device buffers, and an allocator that reuses freed memory.

A backend is a module `lazygrad.backends.<name>` with a `Device(index)` class that provides `allocator`
(an Allocator), `exec(kernel AST, buffers, origin)`, `flush()` (send launches it held back, to build their kernels
together; run_schedule calls it last) and `synchronize()`. Backends are loaded by name, so nothing here knows any
of them. While a `lazygrad.profiler.profile()` is active, `profiling` is that profile, and a backend tells it of each
launch (see Profile.launched); otherwise it is None, and a launch costs one check of it.
"""
from __future__ import annotations
import importlib
import os
import threading
from collections import OrderedDict, defaultdict
from lazygrad.dtype import DType

BACKENDS = ("OPENCL", "TRITON")
EXTRAS = {"TRITON": "triton"}  # the pip extra that installs a backend's packages (OpenCL's come with lazygrad)
_lock = threading.RLock()  # guards the registry, allocators' caches and counters across Python threads
_devices: dict[str, object] = {}
_kernel_count = 0
_compile_count = 0
MIRROR_BYTES = 64 << 10  # uploads up to this size keep a host copy
profiling = None  # the active lazygrad.profiler.Profile, told of each kernel launch; None when none is active


def default_device() -> str:
  return canonical(os.environ.get("LAZYGRAD_DEVICE", "OPENCL"))


_canonical: dict[str, str] = {}  # names seen -> their canonical form: every Buffer asks


def canonical(name) -> str:
  """"opencl" -> "OPENCL:0"; unknown names raise ValueError naming what was passed."""
  known = _canonical.get(name) if isinstance(name, str) else None
  if known is not None: return known
  if name is None: return default_device()
  if not isinstance(name, str): raise TypeError(f"device must be a string like 'OPENCL' or 'TRITON:0', got {name!r}")
  base, _, index = name.upper().partition(":")
  if base == "GPU" or base == "CUDA": base = "TRITON" if base == "CUDA" else "OPENCL"
  if base == "CPU": base = "OPENCL"
  if base not in BACKENDS or (index and not index.isdigit()):
    raise ValueError(f"unknown device {name!r}; expected one of {', '.join(BACKENDS)} (optionally with ':N')")
  _canonical[name] = f"{base}:{int(index or 0)}"
  return _canonical[name]


def get(name: str):
  """The backend device object for a canonical or plain device name, created on first use."""
  name = canonical(name)
  with _lock:
    if name not in _devices:
      base, index = name.split(":")
      try: module = importlib.import_module(f"lazygrad.backends.{base.lower()}")
      except ModuleNotFoundError as e:
        package = (e.name or "lazygrad").split(".")[0]
        if package == "lazygrad": raise
        get_it = f"pip install 'lazygrad[{EXTRAS[base]}]'" if base in EXTRAS else f"pip install {package}"
        raise ModuleNotFoundError(f"device {name}: the {base} backend needs the Python package '{package}', "
                                  f"which is not installed here ({get_it})", name=e.name) from None
      _devices[name] = module.Device(int(index))
    return _devices[name]


def existing(name) -> str:
  """The canonical name of a device that exists. It opens the device, so a tensor made for a missing one raises at
  the line that makes it, not when it is first computed."""
  return get(name).name


class KernelCache(OrderedDict):
  """A device's compiled kernels by AST, least recently used first: a long run that makes many different kernels
  (a fuzzer, a sweep over shapes) keeps at most `limit` in memory; an evicted one reloads from the disk cache."""

  def __init__(self, limit: int = 2048):
    super().__init__()
    self.limit = limit

  def get(self, key, default=None):
    entry = super().get(key, default)
    if entry is not default:
      try: self.move_to_end(key)
      except KeyError: pass  # another thread's insert evicted it meanwhile
    return entry

  def __setitem__(self, key, value):
    super().__setitem__(key, value)
    while len(self) > self.limit: self.popitem(last=False)


class CompileProgress:
  """Kernels built from source during one realize. A new model's first step can compile for a minute: once the
  builds have taken REPORT_AFTER seconds, progress goes to stderr (updated in place on a terminal, a line every
  few seconds elsewhere), so a long first step does not look like a hang."""
  REPORT_AFTER = 2.0  # seconds of compiling in one realize before anything is printed
  LINE_EVERY = 5.0  # seconds between lines where stderr is not a terminal

  def __init__(self): self.depth = 0

  def start(self, kernels: int):
    with _lock:
      if self.depth == 0: self.kernels, self.built, self.seconds, self.shown, self.last = kernels, 0, 0.0, False, 0.0
      self.depth += 1

  def compiled(self, seconds: float, kernels: int = 1):
    """A backend built `kernels` kernels from source in `seconds` (measuring candidate tiles included)."""
    import sys
    global _compile_count
    with _lock:
      _compile_count += kernels
      if self.depth == 0: return
      self.built += kernels
      self.seconds += seconds
      if self.seconds < self.REPORT_AFTER: return
      tty = sys.stderr.isatty()
      if not tty and self.shown and self.seconds - self.last < self.LINE_EVERY: return
      self.shown, self.last = True, self.seconds
      line = (f"lazygrad: compiling kernels ({self.built} new of {self.kernels} in this computation, {self.seconds:.0f} s;"
              " kept on disk for the next run)")
      print("\r" + line if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

  def finish(self):
    import sys
    with _lock:
      self.depth -= 1
      if self.depth == 0 and self.shown and sys.stderr.isatty(): print(file=sys.stderr, flush=True)


compile_progress = CompileProgress()


def count_kernel(n: int = 1):
  global _kernel_count
  with _lock: _kernel_count += n


# counts schedules run (realizes, jit replays): a kernel AST launched again in a later one has numbers that stay, and
# gets a specialized kernel of its own (see codegen/dynamic.py); one launched twice in the same schedule (a key and a
# value cache written at one position) has not shown that
epoch = 0


def next_epoch():
  global epoch
  with _lock: epoch += 1


def kernel_count() -> int:
  """The number of kernels launched so far in this process, on every device."""
  return _kernel_count


def compile_count() -> int:
  """The number of kernels built from source so far in this process, on every device: a kernel loaded from the disk
  cache is not a build (Triton's interpreter builds each kernel source once per process)."""
  return _compile_count


class Allocator:
  """Hands out device memory, keeping freed blocks by size for reuse. Backends implement _alloc/_free/copies."""

  def __init__(self):
    self.cache: dict[int, list] = defaultdict(list)
    self.in_use = self.peak = self.cached = 0

  def alloc(self, nbytes: int):
    try: return self._take(nbytes)
    except MemoryError: pass
    self.empty_cache()  # not under the lock: a backend's waits for its queue, whose launches may take the lock
    return self._take(nbytes)

  def _take(self, nbytes: int):
    with _lock:
      if self.cache[nbytes]:
        self.cached -= nbytes
        handle = self.cache[nbytes].pop()
      else: handle = self._alloc(max(nbytes, 1))
      self.in_use += nbytes
      self.peak = max(self.peak, self.in_use)
      return handle

  def free(self, handle, nbytes: int):
    with _lock:
      self.in_use -= nbytes
      self.cached += nbytes
      self.cache[nbytes].append(handle)

  def empty_cache(self):
    with _lock:
      for nbytes, handles in self.cache.items():
        for h in handles: self._free(h)
      self.cache.clear()
      self.cached = 0

  def _alloc(self, nbytes: int): raise NotImplementedError
  def _free(self, handle): raise NotImplementedError
  def copyin(self, handle, host): raise NotImplementedError
  def copyout(self, host, handle): raise NotImplementedError


class Buffer:
  """Device memory for `size` elements of `dtype`; returned to its allocator when the last reference goes."""

  def __init__(self, device: str, size: int, dtype: DType):
    self.device, self.size, self.dtype = canonical(device), size, dtype
    self.nbytes = size * dtype.itemsize
    self.allocator = get(self.device).allocator
    self.handle = self.allocator.alloc(self.nbytes)
    self.mirror = None  # a small upload's values, kept on the host (see copyin)

  def __del__(self):
    if getattr(self, "handle", None) is not None:
      try: self.allocator.free(self.handle, self.nbytes)
      except Exception: pass  # interpreter shutdown
      self.handle = None

  def copyin(self, host):
    import numpy as np
    self.allocator.copyin(self.handle, host)
    # a small upload stays readable on the host: reading it back (cross-entropy checks its targets' values every
    # step) then does not wait for the kernels queued before it. A buffer is filled either from the host or by one
    # kernel, never both, so the copy cannot go stale (bfloat16 is rounded on the device: not kept).
    exact = host.dtype == self.dtype.np and host.itemsize == self.dtype.itemsize
    self.mirror = np.array(host, copy=True).reshape(-1) if exact and host.nbytes <= MIRROR_BYTES else None
    return self

  def numpy(self):
    import numpy as np
    if self.mirror is not None: return self.mirror.copy()
    out = np.empty(self.size, dtype=self.dtype.np)
    if self.size: self.allocator.copyout(out, self.handle)
    return out

  def __repr__(self): return f"<Buffer {self.device} {self.size} {self.dtype.name}>"


def memory_stats(device=None) -> dict:
  """Bytes in use, peak and cached (freed, kept for reuse) for a device (default: the default device)."""
  dev = get(canonical(device))
  a = dev.allocator
  return {"in_use": a.in_use, "peak": a.peak, "cached": a.cached}


def empty_cache(device=None):
  """Give the freed memory a device's allocator keeps for reuse back to the device (default: the default device)."""
  get(canonical(device)).allocator.empty_cache()


def synchronize(device=None):
  get(canonical(device)).synchronize()

