"""Small shared helpers: environment knobs, files written whole or not at all, the on-disk cache (compiled kernels,
measured choices), list utilities."""
from __future__ import annotations
import contextlib
import functools
import gc
import math
import os
import pathlib
import stat
import threading
import time
from math import prod  # re-exported: one definition for every room
# hashlib, json, secrets and tempfile are imported where used: `import lazygrad` stays quick (about 15 ms of them)

DEBUG = int(os.environ.get("LAZYGRAD_DEBUG", "0") or 0)


def getenv(name: str, default=0):
  return type(default)(os.environ.get(name, default))


_gc_lock = threading.Lock()
_gc_paused = [0, False]  # threads inside gc_paused, and whether the collector was on when the first came in


@contextlib.contextmanager
def gc_paused():
  """Python's cyclic garbage collector off while a graph is differentiated or scheduled, and back as it was after:
  those make hundreds of thousands of objects, freed by reference counting, and each collection the allocations set
  off walks every object alive (a new sequence length of the bench LSTM's jitted step took 2.7 to 5.0 s with it on,
  2.2 to 2.7 s off). Threads may nest it: the last one out turns it back on."""
  with _gc_lock:
    if _gc_paused[0] == 0: _gc_paused[1] = gc.isenabled()
    _gc_paused[0] += 1
    gc.disable()
  try: yield
  finally:
    with _gc_lock:
      _gc_paused[0] -= 1
      if _gc_paused[0] == 0 and _gc_paused[1]: gc.enable()


@functools.cache
def cache_dir() -> pathlib.Path:
  """Where compiled kernels are kept between processes (LAZYGRAD_CACHE_DIR, else ~/.cache/lazygrad)."""
  base = os.environ.get("LAZYGRAD_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                               os.path.expanduser("~/.cache"), "lazygrad")
  path = pathlib.Path(base)
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    import tempfile
    path = pathlib.Path(tempfile.gettempdir()) / "lazygrad-cache"
    path.mkdir(parents=True, exist_ok=True)
  return path


@contextlib.contextmanager
def atomic_write(path, durable: bool = True):
  """`with atomic_write(path) as f: f.write(...)`: the file is written whole or not at all. `f` is a new temporary
  file beside `path` (the same folder: the same file system, where a rename is one step); when the block ends without
  an error it is renamed onto `path`, so a reader, or a crash, finds the old file or the new one, never half of one.
  On any error, KeyboardInterrupt included, the temporary file is removed and the error goes on.

  The file gets the mode a plain open() would give: an existing file's, else 0o666 less the umask (created with that
  mode, not chmodded: the umask cannot be read without setting it, for every thread). A symlink at `path` stays and
  its target is replaced, as open() would write through it. `durable`: the data reaches the disk before the rename
  (a checkpoint: else a power cut can leave an empty file where the old one was); a cache entry can do without."""
  import secrets
  given = os.fspath(path)
  path = os.path.realpath(given)
  folder, name = os.path.split(path)
  try: mode = stat.S_IMODE(os.stat(path).st_mode)
  except FileNotFoundError: mode = None
  for attempt in range(100):  # a name taken by another writer (or a stale one left by a killed process): another
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
      fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
      break
    except FileExistsError:
      if attempt == 99: raise
    except OSError as e:  # no such folder, no permission: named as open(path) names it, not by the temporary name
      raise type(e)(e.errno, e.strerror, given) from None
  try:
    with os.fdopen(fd, "wb") as f:
      if mode is not None: os.chmod(tmp, mode)
      yield f
      if durable:
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError): os.remove(tmp)
    raise
  if durable and hasattr(os, "O_DIRECTORY"):  # the rename itself reaches the disk (POSIX; elsewhere nothing to do)
    with contextlib.suppress(OSError):
      dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
      try: os.fsync(dir_fd)
      finally: os.close(dir_fd)


def disk_cache_path(table: str, key: str) -> pathlib.Path:
  """Where the on-disk cache keeps `key`'s entry in `table`: a file named by the key's digest."""
  import hashlib
  return cache_dir() / table / hashlib.sha256(key.encode()).hexdigest()


def disk_cache_get(table: str, key: str) -> bytes | None:
  try: return disk_cache_path(table, key).read_bytes()
  except OSError: return None


def disk_cache_put(table: str, key: str, data: bytes):
  """Write atomically, so a process reading at the same time never sees half a file."""
  path = disk_cache_path(table, key)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, durable=False) as f: f.write(data)
  except OSError:
    pass  # a cache that cannot be written only costs a recompile


def disk_cache_claim(table: str, key: str, seconds: float) -> bool:
  """True for the first process to claim `key` in `table` (work that one process does for all of them), and again
  once that claim is `seconds` old (the process that made it died, or could not do the work); see disk_cache_drop."""
  path = disk_cache_path(table, key)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    return True
  except FileExistsError:
    try:
      if time.time() - path.stat().st_mtime < seconds: return False
      os.utime(path)
      return True
    except OSError: return False
  except OSError: return False  # a cache that cannot be written: nobody does the work


def disk_cache_drop(table: str, key: str):
  with contextlib.suppress(OSError): disk_cache_path(table, key).unlink()


def tuned(table: str, key: str, candidates: list, measure, label: str = "", rounds: int = 3):
  """The fastest of `candidates` (JSON values, the default first) by `measure(candidate) -> seconds`, taken in
  `rounds` rounds of every candidate in turn, each counted by its best round: the load that other processes put on a
  shared machine comes and goes, and should not favour whichever candidate ran in a quiet moment. It is measured once
  per key; the choice is kept in the on-disk cache, so a second run pays nothing. A candidate whose measure raises
  (a tile too big for the device's shared memory) is dropped; if every one is, the default's error is raised."""
  import json
  cached = disk_cache_get(table, key)
  if cached is not None and (choice := json.loads(cached)) in candidates: return choice
  best: dict[int, float] = {}
  errors: dict[int, Exception] = {}
  for _ in range(rounds):
    for n, candidate in enumerate(candidates):
      if n in errors: continue
      try: best[n] = min(best.get(n, math.inf), measure(candidate))
      except Exception as e:  # noqa: PERF203 (each measure is a compile or kernel runs: the try costs nothing)
        errors[n] = e
        best.pop(n, None)
  if DEBUG >= 1:
    for n, candidate in enumerate(candidates):
      got = f"{best[n] * 1e3:.3f} ms" if n in best else f"failed: {errors[n]}".splitlines()[0]
      print(f"tuning {label}: {json.dumps(candidate)} {got}")
  if not best: raise errors[0]
  choice = candidates[min(best, key=best.__getitem__)]
  disk_cache_put(table, key, json.dumps(choice).encode())
  return choice


def code_version(*modules: str) -> str:
  """A digest of the named modules' source files: part of a cache key for what that code generates, so a change to
  the code never reuses what older code made."""
  import hashlib
  import importlib.util
  digest = hashlib.sha256()
  for name in modules: digest.update(pathlib.Path(importlib.util.find_spec(name).origin).read_bytes())
  return digest.hexdigest()


def argsort(x): return sorted(range(len(x)), key=x.__getitem__)


def normalize_dim(dim: int, ndim: int, op: str = "dim") -> int:
  """A dim in [-ndim, ndim) as a non-negative index, else IndexError as PyTorch words it."""
  lo, hi = (-ndim, ndim - 1) if ndim > 0 else (-1, 0)
  if not isinstance(dim, int) or isinstance(dim, bool):
    raise TypeError(f"{op}: dim must be an int, got {dim!r}")
  if not lo <= dim <= hi:
    raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dimension{'s' if ndim != 1 else ''} "
                     f"(expected to be in range of [{lo}, {hi}])")
  return dim % max(ndim, 1)


__all__ = ["DEBUG", "getenv", "gc_paused", "cache_dir", "atomic_write", "disk_cache_path", "disk_cache_get", "disk_cache_put", "disk_cache_claim",
           "disk_cache_drop", "tuned", "code_version", "argsort", "normalize_dim", "prod"]
