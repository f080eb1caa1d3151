"""Process groups and collectives with torch.distributed's names, for data-parallel training across processes.

backend="mpi": mpi4py (with an MPI from pip, `pip install 'lazygrad[distributed]'`, or the system's). Tensors go
through host memory: each collective copies its tensor to the host, runs the MPI collective there, and uploads the
result. backend="nccl": libnccl (the nvidia-nccl-cu12 wheel) through ctypes, on TRITON devices: collectives run on
the device buffers in place, on the backend's CUDA stream; MPI only hands out the NCCL id and runs barriers.

Every wait is bounded: a collective that the other ranks do not join within LAZYGRAD_DIST_TIMEOUT seconds (default
1800, as torch's) raises a RuntimeError naming it, and an exception nobody catches aborts the whole job, so one rank's
death never leaves the others waiting forever. mpi4py is imported by init_process_group, never by `import lazygrad`.
"""
from __future__ import annotations
import ctypes
import datetime
import os
import sys
import time
import numpy as np
from lazygrad import device as devices
from lazygrad.dtype import float16, bfloat16, float32, bool_, uint8
from lazygrad.tensor import Tensor, ShapeError, no_grad, realize, cat, stack

__all__ = ["ReduceOp", "init_process_group", "destroy_process_group", "is_initialized", "is_available", "get_rank",
           "get_world_size", "get_backend", "barrier", "all_reduce", "broadcast", "all_gather", "reduce_scatter"]

DEFAULT_TIMEOUT = 1800.0  # seconds, as torch's default process-group timeout


class ReduceOp:
  SUM, PRODUCT, MAX, MIN, AVG = "sum", "product", "max", "min", "avg"


_OPS = (ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MAX, ReduceOp.MIN, ReduceOp.AVG)
_group = None  # the default (world) process group, once init_process_group has run


def is_available() -> bool: return True
def is_initialized() -> bool: return _group is not None


def _world(what: str):
  if _group is None:
    raise RuntimeError(f"{what}: the default process group has not been initialized; call "
                       f"lazygrad.distributed.init_process_group('mpi') first (and start the ranks with mpiexec)")
  return _group


def _timeout_seconds(timeout) -> float:
  env = os.environ.get("LAZYGRAD_DIST_TIMEOUT")
  if env is not None:
    try: seconds = float(env)
    except ValueError: raise ValueError(f"LAZYGRAD_DIST_TIMEOUT must be a number of seconds, got {env!r}") from None
  elif timeout is None: seconds = DEFAULT_TIMEOUT
  else: seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
  if not seconds > 0: raise ValueError(f"the collective timeout must be positive, got {seconds} s")
  return seconds


def init_process_group(backend: str = "mpi", init_method=None, timeout=None, world_size: int = -1, rank: int = -1,
                       store=None, group_name: str = "", device_id=None):
  """Join the job started by mpiexec. world_size and rank come from MPI (given, they must agree with it).
  `timeout` (a timedelta or seconds) bounds every collective's wait; LAZYGRAD_DIST_TIMEOUT overrides it."""
  global _group
  if _group is not None: raise RuntimeError("init_process_group: the default process group is already initialized")
  if not isinstance(backend, str) or backend.lower() not in ("mpi", "nccl"):
    raise ValueError(f"init_process_group: backend {backend!r} is not supported; use 'mpi' (any device, through host "
                     f"memory) or 'nccl' (TRITON devices on NVIDIA GPUs)")
  if init_method not in (None, "env://") or store is not None:
    raise ValueError("init_process_group: lazygrad's ranks find each other through MPI (start them with mpiexec); "
                     f"init_method={init_method!r} and store= are not used")
  group = (_NCCLGroup if backend.lower() == "nccl" else _MPIGroup)(_timeout_seconds(timeout))
  for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
    if given not in (-1, None) and given != actual:
      group.close()
      raise ValueError(f"init_process_group: {name}={given}, but MPI started this process with {name} {actual}")
  _group = group
  group.install_excepthook()


def destroy_process_group(group=None):
  global _group
  if _group is None: return
  _group.close()
  _group = None


def get_rank(group=None) -> int: return _world("get_rank").rank
def get_world_size(group=None) -> int: return _world("get_world_size").size
def get_backend(group=None) -> str: return _world("get_backend").backend


def _no_async(op: str, async_op: bool):
  if async_op: raise NotImplementedError(f"{op}: async_op=True is not supported; collectives return when done")


def _check_tensor(op: str, t, name: str = "tensor"):
  if not isinstance(t, Tensor): raise TypeError(f"{op}: {name} must be a lazygrad Tensor, got {type(t).__name__}")


def _check_op(op_name: str, op, dtype):
  if op not in _OPS: raise ValueError(f"{op_name}: unknown reduce op {op!r}; use ReduceOp.SUM, AVG, MAX, MIN or PRODUCT")
  if op == ReduceOp.AVG and not dtype.is_float:
    raise TypeError(f"{op_name}: ReduceOp.AVG needs a floating-point tensor, got {dtype.name}")


def barrier(group=None, async_op: bool = False, device_ids=None):
  _no_async("barrier", async_op)
  _world("barrier").barrier()


def all_reduce(tensor: Tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
  """In place: every rank's tensor becomes the elementwise reduction of all ranks' tensors."""
  _no_async("all_reduce", async_op)
  _check_tensor("all_reduce", tensor)
  _check_op("all_reduce", op, tensor.dtype)
  g = _world("all_reduce")
  with no_grad(): tensor.assign(g.all_reduce_finish(g.all_reduce_start([tensor], op, "all_reduce")).reshape(tensor.shape))


def broadcast(tensor: Tensor, src: int, group=None, async_op: bool = False):
  """In place: every rank's tensor becomes rank `src`'s."""
  _no_async("broadcast", async_op)
  _check_tensor("broadcast", tensor)
  g = _world("broadcast")
  g.check_rank("broadcast", "src", src)
  with no_grad(): tensor.assign(g.broadcast(tensor.reshape(-1), src, "broadcast").reshape(tensor.shape))


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group=None, async_op: bool = False):
  """tensor_list[i] becomes rank i's tensor, on every rank."""
  _no_async("all_gather", async_op)
  _check_tensor("all_gather", tensor)
  g = _world("all_gather")
  _check_list("all_gather", "tensor_list", tensor_list, tensor, g.size)
  gathered = g.all_gather(tensor.reshape(-1), "all_gather")  # (world_size, numel), one upload
  with no_grad():
    for i, out in enumerate(tensor_list): out.assign(gathered[i].reshape(tensor.shape))


def reduce_scatter(output: Tensor, input_list: list[Tensor], op=ReduceOp.SUM, group=None, async_op: bool = False):
  """output on rank i becomes the reduction over ranks of their input_list[i]."""
  _no_async("reduce_scatter", async_op)
  _check_tensor("reduce_scatter", output, "output")
  _check_op("reduce_scatter", op, output.dtype)
  g = _world("reduce_scatter")
  _check_list("reduce_scatter", "input_list", input_list, output, g.size)
  with no_grad(): output.assign(g.reduce_scatter(stack([t.reshape(-1) for t in input_list]), op, "reduce_scatter").reshape(output.shape))


def _check_list(op: str, name: str, tensors, like: Tensor, world: int):
  if not isinstance(tensors, (list, tuple)) or len(tensors) != world:
    got = f"{len(tensors)} tensors" if isinstance(tensors, (list, tuple)) else f"a {type(tensors).__name__}"
    raise ValueError(f"{op}: {name} must hold one tensor per rank ({world}), got {got}")
  for i, t in enumerate(tensors):
    _check_tensor(op, t, f"{name}[{i}]")
    if t.shape != like.shape or t.dtype is not like.dtype:
      raise ShapeError(f"{op}: {name}[{i}] is {t.dtype.name} {t.shape}, but the tensor is {like.dtype.name} {like.shape}")


def _broadcast_coalesced(tensors: list[Tensor], src: int, what: str):
  """Broadcast many tensors as one flat buffer per dtype (what DistributedDataParallel does with a model's state)."""
  g = _world(what)
  by_dtype: dict = {}
  for t in tensors: by_dtype.setdefault((t.dtype, t.device), []).append(t)
  with no_grad():
    for group in by_dtype.values():
      flat = g.broadcast(cat([t.reshape(-1) for t in group]), src, what)
      if g.rank == src: continue  # its tensors already hold these values
      offset = 0
      for t in group:
        t.assign(flat[offset:offset + t.numel()].reshape(t.shape).contiguous())
        offset += t.numel()
      realize(*group)  # each its own buffer again, in one schedule


def _same_on_all_ranks(values: list[int], what: str) -> bool:
  """Whether every rank passed the same integers (a cheap check that ranks agree on a model's shapes)."""
  g = _world(what)
  mine = np.asarray(values, np.int64)
  everyone = np.empty((g.size, mine.size), np.int64)
  g.wait(g.comm.Iallgather(mine, everyone), what)
  return bool((everyone == mine).all())


# ---------------------------------------------------------------------------------------- MPI: through the host

class _MPIGroup:
  backend = "mpi"

  def __init__(self, timeout: float):
    try: from mpi4py import MPI
    except ImportError:
      raise ModuleNotFoundError("lazygrad.distributed: backend 'mpi' needs mpi4py and an MPI: "
                                "pip install 'lazygrad[distributed]' (mpi4py and MPICH from pip)", name="mpi4py") from None
    self.MPI = MPI
    self.comm = MPI.COMM_WORLD.Dup()  # our own communicator: the user's MPI traffic never matches ours
    self.rank, self.size, self.timeout = self.comm.Get_rank(), self.comm.Get_size(), timeout
    self.broken = ""  # why the group can no longer be used (a collective timed out)
    self.previous_excepthook = None

  # ---- waiting, with a deadline

  def wait(self, request, what: str):
    """Poll a non-blocking MPI request until it completes, or raise once the timeout has passed. MPI moves a
    collective on only inside its calls, so the first 2 ms poll without a pause (a collective whose ranks are all
    there); a longer wait (another rank still computing) sleeps between polls, from 0.1 up to 1 ms, leaving the core
    to others: on a busy machine, to the rank being waited for."""
    start = time.monotonic()
    spin_until, deadline, pause = start + 0.002, start + self.timeout, 1e-4
    while not request.Test():
      now = time.monotonic()
      if now > deadline: self.timed_out(what)
      if now > spin_until:
        time.sleep(pause)
        pause = min(pause * 1.5, 1e-3)

  def timed_out(self, what: str):
    self.broken = (f"lazygrad.distributed: {what} on rank {self.rank} of {self.size} timed out after {self.timeout:g} s "
                   f"waiting for the other ranks (one may have died, raised, or called a different collective); "
                   f"LAZYGRAD_DIST_TIMEOUT sets the limit in seconds")
    raise RuntimeError(self.broken)

  def check_usable(self, what: str):
    if self.broken: raise RuntimeError(f"{what}: the process group cannot be used after an earlier failure: {self.broken}")

  def check_rank(self, op: str, name: str, rank):
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < self.size:
      raise ValueError(f"{op}: {name}={rank!r} is not a rank of this group (0 to {self.size - 1})")

  def install_excepthook(self):
    """An exception nobody catches, on any rank, ends the whole job (MPI Abort) instead of leaving the others
    waiting in their next collective."""
    if self.size == 1: return
    self.previous_excepthook = previous = sys.excepthook

    def abort_job(kind, value, tb):
      previous(kind, value, tb)
      sys.stderr.write(f"lazygrad.distributed: rank {self.rank} raised {kind.__name__}; aborting all {self.size} ranks\n")
      sys.stderr.flush()
      # mpiexec's proxies forward output through pipes and stop forwarding when the abort kills them: a moment first,
      # or the error's last lines (what was raised) may never reach the terminal on a busy machine
      time.sleep(0.5)
      self.MPI.COMM_WORLD.Abort(1)
    sys.excepthook = abort_job

  def close(self):
    if self.previous_excepthook is not None and sys.excepthook is not self.previous_excepthook:
      sys.excepthook = self.previous_excepthook
    if not self.broken: self.comm.Free()

  # ---- collectives on flat tensors: host copies around MPI's non-blocking collectives

  def mpi_op(self, op):
    MPI = self.MPI
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MAX: MPI.MAX,
            ReduceOp.MIN: MPI.MIN}[op]

  @staticmethod
  def host_form(t: Tensor) -> Tensor:
    """t contiguous, in a type MPI reduces: float16 and bfloat16 go as float32, bool as uint8."""
    if t.dtype in (float16, bfloat16): t = t.cast(float32)
    elif t.dtype is bool_: t = t.cast(uint8)
    return t.contiguous()

  def to_host(self, t: Tensor) -> np.ndarray: return np.ascontiguousarray(self.host_form(t).numpy())

  @staticmethod
  def from_host(host: np.ndarray, like: Tensor) -> Tensor:
    return Tensor(host, device=like.device).cast(like.dtype)

  def barrier(self):
    self.check_usable("barrier")
    self.wait(self.comm.Ibarrier(), "barrier")

  def all_reduce_start(self, tensors: list[Tensor], op, what: str):
    """Start reducing tensors of one dtype as one flat buffer: they are computed in one schedule and copied to the host
    now; the reduction overlaps what the caller does next. all_reduce_finish gives the result, flat."""
    self.check_usable(what)
    ready = [self.host_form(t) for t in tensors]
    realize(*ready)
    host = ready[0].numpy().reshape(-1) if len(ready) == 1 else np.concatenate([t.numpy().reshape(-1) for t in ready])
    return (self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.mpi_op(op)), host, tensors[0], op, what)

  def all_reduce_finish(self, started) -> Tensor:
    request, host, like, op, what = started
    self.wait(request, what)
    out = self.from_host(host, like)
    return out / self.size if op == ReduceOp.AVG else out

  def broadcast(self, flat: Tensor, src: int, what: str) -> Tensor:
    self.check_usable(what)
    host = self.to_host(flat)
    self.wait(self.comm.Ibcast(host, root=src), what)
    return flat if self.rank == src else self.from_host(host, flat)

  def all_gather(self, flat: Tensor, what: str) -> Tensor:
    self.check_usable(what)
    mine = self.to_host(flat)
    everyone = np.empty((self.size, mine.size), mine.dtype)
    self.wait(self.comm.Iallgather(mine, everyone), what)
    return self.from_host(everyone, flat)

  def reduce_scatter(self, stacked: Tensor, op, what: str) -> Tensor:
    """stacked: (world_size, n); rank i gets the reduction of every rank's row i."""
    self.check_usable(what)
    send = self.to_host(stacked)
    mine = np.empty(send.shape[1:], send.dtype)
    self.wait(self.comm.Ireduce_scatter_block(send, mine, op=self.mpi_op(op)), what)
    out = self.from_host(mine, stacked)
    return out / self.size if op == ReduceOp.AVG else out


# ---------------------------------------------------------------------------------------- NCCL: device buffers

class NcclUniqueId(ctypes.Structure):
  _fields_ = [("internal", ctypes.c_char * 128)]  # NCCL_UNIQUE_ID_BYTES


# ncclDataType_t and ncclRedOp_t, from nccl.h
NCCL_DTYPES = {"int8": 0, "uint8": 1, "bool": 1, "int32": 2, "int64": 4, "float16": 6, "float32": 7, "float64": 8,
               "bfloat16": 9}
NCCL_OPS = {ReduceOp.SUM: 0, ReduceOp.PRODUCT: 1, ReduceOp.MAX: 2, ReduceOp.MIN: 3, ReduceOp.AVG: 4}
CUDA_ERROR_NOT_READY = 600


def nccl_dtype(name: str) -> int:
  if name not in NCCL_DTYPES:
    raise TypeError(f"backend 'nccl' has no {name} collectives; NCCL takes {', '.join(sorted(NCCL_DTYPES))}")
  return NCCL_DTYPES[name]


def open_libnccl():
  """libnccl.so.2 from the nvidia-nccl-cu12 wheel, else from the system's library path."""
  places = []
  try:
    import nvidia.nccl
    places += [os.path.join(p, "lib", "libnccl.so.2") for p in nvidia.nccl.__path__]
  except ImportError: pass
  for place in places + ["libnccl.so.2"]:
    try: lib = ctypes.CDLL(place)
    except OSError: continue
    lib.ncclGetErrorString.restype = ctypes.c_char_p
    # the id goes by value (a 128-byte struct): say so, rather than rely on ctypes' default for a Structure
    lib.ncclCommInitRank.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, NcclUniqueId, ctypes.c_int]
    return lib
  raise RuntimeError("backend 'nccl' needs libnccl.so.2: pip install nvidia-nccl-cu12 (or 'lazygrad[nccl]')")


class NCCL:
  """The few NCCL calls lazygrad needs, with their arguments marshalled as nccl.h declares them."""

  def __init__(self, lib, world: int, rank: int, unique_id: bytes):
    self.lib, self.comm = lib, ctypes.c_void_p()
    uid = NcclUniqueId.from_buffer_copy(unique_id)  # passed by value: the struct itself, not a pointer
    self.check(lib.ncclCommInitRank(ctypes.byref(self.comm), ctypes.c_int(world), uid, ctypes.c_int(rank)),
               "ncclCommInitRank")

  @staticmethod
  def unique_id(lib) -> bytes:
    uid = NcclUniqueId()
    status = lib.ncclGetUniqueId(ctypes.byref(uid))
    if status != 0: raise RuntimeError(f"NCCL: ncclGetUniqueId failed with status {status}")
    return bytes(uid)

  def check(self, status: int, what: str):
    if status != 0:
      text = self.lib.ncclGetErrorString(status)
      raise RuntimeError(f"NCCL: {what} failed: {text.decode() if isinstance(text, bytes) else status}")

  def all_reduce(self, send: int, recv: int, count: int, dtype: str, op, stream: int = 0):
    self.check(self.lib.ncclAllReduce(ctypes.c_void_p(send), ctypes.c_void_p(recv), ctypes.c_size_t(count),
                                      ctypes.c_int(nccl_dtype(dtype)), ctypes.c_int(NCCL_OPS[op]), self.comm,
                                      ctypes.c_void_p(stream)), "ncclAllReduce")

  def broadcast(self, send: int, recv: int, count: int, dtype: str, root: int, stream: int = 0):
    self.check(self.lib.ncclBroadcast(ctypes.c_void_p(send), ctypes.c_void_p(recv), ctypes.c_size_t(count),
                                      ctypes.c_int(nccl_dtype(dtype)), ctypes.c_int(root), self.comm,
                                      ctypes.c_void_p(stream)), "ncclBroadcast")

  def all_gather(self, send: int, recv: int, count: int, dtype: str, stream: int = 0):
    """count: elements each rank sends (recv holds world_size * count)."""
    self.check(self.lib.ncclAllGather(ctypes.c_void_p(send), ctypes.c_void_p(recv), ctypes.c_size_t(count),
                                      ctypes.c_int(nccl_dtype(dtype)), self.comm, ctypes.c_void_p(stream)),
               "ncclAllGather")

  def reduce_scatter(self, send: int, recv: int, count: int, dtype: str, op, stream: int = 0):
    """count: elements each rank receives (send holds world_size * count)."""
    self.check(self.lib.ncclReduceScatter(ctypes.c_void_p(send), ctypes.c_void_p(recv), ctypes.c_size_t(count),
                                          ctypes.c_int(nccl_dtype(dtype)), ctypes.c_int(NCCL_OPS[op]), self.comm,
                                          ctypes.c_void_p(stream)), "ncclReduceScatter")

  def abort(self): self.lib.ncclCommAbort(self.comm)
  def destroy(self): self.lib.ncclCommDestroy(self.comm)


class _NCCLGroup(_MPIGroup):
  """Collectives on TRITON device buffers through NCCL, on the null stream the Triton backend launches on: they are
  ordered after the kernels that computed their inputs, with no copy to the host. Each rank uses the GPU of its
  index among the ranks on its machine (TRITON:<local rank>), which becomes the default device."""
  backend = "nccl"

  def __init__(self, timeout: float):
    super().__init__(timeout)
    local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
    self.local_rank = local.Get_rank()
    local.Free()
    self.device = devices.canonical(f"TRITON:{self.local_rank}")
    os.environ["LAZYGRAD_DEVICE"] = self.device
    self.cuda = getattr(devices.get(self.device), "cuda", None)
    if self.cuda is None:
      raise RuntimeError(f"backend 'nccl': {self.device} has no GPU (the Triton backend is in its interpreter); "
                         f"use backend='mpi'")
    lib = open_libnccl()
    unique_id = NCCL.unique_id(lib) if self.rank == 0 else None
    unique_id = self.comm.bcast(unique_id, root=0)
    self.cuda.current()
    self.nccl = NCCL(lib, self.size, self.rank, unique_id)

  def close(self):
    if self.broken: self.nccl.abort()
    else: self.nccl.destroy()
    super().close()

  def pointer(self, t: Tensor, what: str) -> int:
    """The device address of a realized, contiguous, unshared tensor on this rank's GPU."""
    if t.device != self.device:
      raise ValueError(f"{what}: backend 'nccl' works on tensors on {self.device}, got one on {t.device}")
    buffer = t.lazydata.base.realized
    buffer.mirror = None  # NCCL writes the device memory: a host copy kept from an upload would go stale
    return buffer.handle.ptr

  def fresh(self, tensors: list[Tensor]) -> Tensor:
    """A new flat device buffer holding the tensors one after another, which the collective may write in place
    (never a view: a view's buffer may be a larger tensor's, at an offset)."""
    flat = [t.reshape(-1) for t in tensors]
    return (cat(flat) if len(flat) > 1 else flat[0].clone()).realize()

  def stream_wait(self, what: str):
    """Wait for the stream (NCCL's kernels included), or raise after the timeout and abort the communicator."""
    self.cuda.current()
    deadline, pause = time.monotonic() + self.timeout, 1e-5
    while True:
      status = self.cuda.lib.cuStreamQuery(ctypes.c_void_p(0))
      if status != CUDA_ERROR_NOT_READY:
        self.cuda.check(status, "cuStreamQuery")
        return
      if time.monotonic() > deadline:
        try: self.timed_out(what)
        finally: self.nccl.abort()
      time.sleep(pause)
      pause = min(pause * 2, 1e-3)

  def all_reduce_start(self, tensors: list[Tensor], op, what: str):
    self.check_usable(what)
    realize(*tensors)  # computed in one schedule, then copied into one buffer on the device
    buf = self.fresh(tensors)
    ptr = self.pointer(buf, what)
    self.cuda.current()
    self.nccl.all_reduce(ptr, ptr, buf.numel(), buf.dtype.name, op)
    return buf, what

  def all_reduce_finish(self, started) -> Tensor:
    buf, what = started
    self.stream_wait(what)
    return buf

  def broadcast(self, flat: Tensor, src: int, what: str) -> Tensor:
    self.check_usable(what)
    buf = self.fresh([flat])
    ptr = self.pointer(buf, what)
    self.cuda.current()
    self.nccl.broadcast(ptr, ptr, buf.numel(), buf.dtype.name, src)
    self.stream_wait(what)
    return buf

  def all_gather(self, flat: Tensor, what: str) -> Tensor:
    self.check_usable(what)
    send = self.fresh([flat])
    recv = Tensor.empty(self.size, flat.numel(), dtype=flat.dtype, device=flat.device).realize()
    self.cuda.current()
    self.nccl.all_gather(self.pointer(send, what), self.pointer(recv, what), flat.numel(), flat.dtype.name)
    self.stream_wait(what)
    return recv

  def reduce_scatter(self, stacked: Tensor, op, what: str) -> Tensor:
    self.check_usable(what)
    send = self.fresh([stacked])
    recv = Tensor.empty(stacked.shape[1], dtype=stacked.dtype, device=stacked.device).realize()
    self.cuda.current()
    self.nccl.reduce_scatter(self.pointer(send, what), self.pointer(recv, what), stacked.shape[1], stacked.dtype.name, op)
    self.stream_wait(what)
    return recv
