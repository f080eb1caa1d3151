"""Small shared helpers: environment knobs, the on-disk cache (compiled kernels, measured choices), list utilities."""
from __future__ import annotations
import functools
import hashlib
import json
import math
import os
import pathlib
import tempfile
import threading
from math import prod  # re-exported: one definition for every room

DEBUG = int(os.environ.get("LAZYGRAD_DEBUG", "0") or 0)


def getenv(name: str, default=0):
  return type(default)(os.environ.get(name, default))


@functools.cache
def cache_dir() -> pathlib.Path:
  """Where compiled kernels are kept between processes (LAZYGRAD_CACHE_DIR, else ~/.cache/lazygrad)."""
  base = os.environ.get("LAZYGRAD_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                               os.path.expanduser("~/.cache"), "lazygrad")
  path = pathlib.Path(base)
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    path = pathlib.Path(tempfile.gettempdir()) / "lazygrad-cache"
    path.mkdir(parents=True, exist_ok=True)
  return path


def disk_cache_get(table: str, key: str) -> bytes | None:
  path = cache_dir() / table / hashlib.sha256(key.encode()).hexdigest()
  try: return path.read_bytes()
  except OSError: return None


def disk_cache_put(table: str, key: str, data: bytes):
  """Write atomically, so a process reading at the same time never sees half a file."""
  folder = cache_dir() / table
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / hashlib.sha256(key.encode()).hexdigest()
  tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")  # unique to this writer
  try:
    tmp.write_bytes(data)
    os.replace(tmp, path)
  except OSError:
    pass  # a cache that cannot be written only costs a recompile


def tuned(table: str, key: str, candidates: list, measure, label: str = "", rounds: int = 3):
  """The fastest of `candidates` (JSON values, the default first) by `measure(candidate) -> seconds`, taken in
  `rounds` rounds of every candidate in turn, each counted by its best round: the load that other processes put on a
  shared machine comes and goes, and should not favour whichever candidate ran in a quiet moment. It is measured once
  per key; the choice is kept in the on-disk cache, so a second run pays nothing. A candidate whose measure raises
  (a tile too big for the device's shared memory) is dropped; if every one is, the default's error is raised."""
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


__all__ = ["DEBUG", "getenv", "cache_dir", "disk_cache_get", "disk_cache_put", "tuned", "code_version", "argsort", "normalize_dim", "prod"]
