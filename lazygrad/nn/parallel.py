"""DistributedDataParallel, as torch.nn.parallel's: one model replica per rank, gradients averaged across ranks.

At construction the parameters and buffers are broadcast from rank 0. Parameters are grouped into buckets of about
25 MB, in reverse order (the order backward produces them). A post-accumulate-grad hook on each parameter marks it
ready; once all of a bucket's gradients are there they are realized in one schedule (computed together), packed into
one flat buffer (on the host for MPI, on the GPU for NCCL) and the bucket's all-reduce starts, while backward goes on
realizing the next bucket. When the last bucket has started, backward waits for them all and each `.grad` becomes its
slice of the averaged bucket, all within the same `loss.backward()`.
"""
from __future__ import annotations
import contextlib
import zlib
from lazygrad import distributed as dist
from lazygrad.function import grad_enabled
from lazygrad.lazy import this_thread
from lazygrad.nn.module import Module
from lazygrad.tensor import Tensor

__all__ = ["DistributedDataParallel"]


class _Bucket:
  def __init__(self, params: list[Tensor], names: list[str]):
    self.params, self.names = params, names
    self.ready: set[int] = set()
    self.started = None  # what the group's all_reduce_start returned, until the step's results are written back


class DistributedDataParallel(Module):
  """Wrap `module` (already on this rank's device) for data-parallel training; `ddp.module` is the model itself, and
  state-dict keys start with "module.", as in torch. Call `init_process_group` first."""

  def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0, broadcast_buffers: bool = True,
               process_group=None, bucket_cap_mb: float = 25, find_unused_parameters: bool = False,
               gradient_as_bucket_view: bool = False, static_graph: bool = False):
    super().__init__()
    if not isinstance(module, Module): raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
    if find_unused_parameters:
      raise NotImplementedError("DistributedDataParallel: find_unused_parameters=True is not supported; every parameter "
                                "that requires grad must receive a gradient in each step")
    if not bucket_cap_mb > 0: raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
    self.module = module
    group = dist._world("DistributedDataParallel")
    self.broadcast_buffers = broadcast_buffers
    self.require_backward_grad_sync = True
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    # ranks must hold the same model: compare a checksum of names, shapes and dtypes before anything is exchanged
    layout = repr([(n, p.shape, p.dtype.name) for n, p in module.named_parameters()] +
                  [(n, b.shape, b.dtype.name) for n, b in module.named_buffers()])
    if not dist._same_on_all_ranks([zlib.crc32(layout.encode()), len(named)], "DistributedDataParallel"):
      raise RuntimeError(f"DistributedDataParallel: rank {group.rank}'s model differs from another rank's (parameter "
                         f"names, shapes or dtypes); every rank must build the same model")
    dist._broadcast_coalesced(list(module.parameters()) + list(module.buffers()), 0, "DistributedDataParallel")
    self._buckets = self._make_buckets(named[::-1], int(bucket_cap_mb * 2**20))
    self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
    self._next = 0  # buckets started in this step (in order: every rank must start the same collectives in turn)
    self._sync = False  # whether the backward of the latest forward averages gradients
    self._reduced = False  # whether it has (a second backward after one forward is refused, as torch does)
    for _, p in named: p.register_post_accumulate_grad_hook(self._grad_ready)

  @staticmethod
  def _make_buckets(named: list, cap_bytes: int) -> list[_Bucket]:
    """Consecutive parameters of one dtype and device, up to cap_bytes a bucket."""
    buckets, params, names, size = [], [], [], 0
    for n, p in named:
      nbytes = p.numel() * p.dtype.itemsize
      if params and (size + nbytes > cap_bytes or (p.dtype, p.device) != (params[0].dtype, params[0].device)):
        buckets.append(_Bucket(params, names))
        params, names, size = [], [], 0
      params.append(p)
      names.append(n)
      size += nbytes
    if params: buckets.append(_Bucket(params, names))
    return buckets

  def forward(self, *inputs, **kwargs):
    if 0 < self._next:
      missing = [n for b in self._buckets for p, n in zip(b.params, b.names) if id(p) not in b.ready]
      raise RuntimeError(f"DistributedDataParallel: the previous backward did not finish reducing gradients: these "
                         f"parameters received no gradient: {', '.join(missing)}. Every parameter that requires grad "
                         f"must take part in the loss (find_unused_parameters=True is not supported)")
    for b in self._buckets: b.ready.clear()
    self._sync, self._reduced = self.require_backward_grad_sync and grad_enabled(), False
    buffers = list(self.module.buffers())
    if self._sync and self.broadcast_buffers and buffers:  # rank 0's running statistics, as torch does each forward
      dist._broadcast_coalesced(buffers, 0, "DistributedDataParallel buffers")
    return self.module(*inputs, **kwargs)

  @contextlib.contextmanager
  def no_sync(self):
    """Forwards run inside this block accumulate their gradients locally, unaveraged; the first backward after it
    averages the sum, as in torch (gradient accumulation)."""
    old = self.require_backward_grad_sync
    self.require_backward_grad_sync = False
    try: yield
    finally: self.require_backward_grad_sync = old

  def _grad_ready(self, p: Tensor):
    if self._reduced:
      raise RuntimeError("DistributedDataParallel: gradients were already averaged since the last forward; backward "
                         "twice after one forward (or through ddp.module directly) is not supported: run ddp(...) again")
    if not self._sync: return
    if this_thread.capture is not None:
      raise RuntimeError("DistributedDataParallel: a step that all-reduces gradients cannot be recorded by lazygrad.jit "
                         "(a replay would skip the communication); leave the step un-jitted")
    bucket = self._bucket_of[id(p)]
    bucket.ready.add(id(p))
    group = dist._world("DistributedDataParallel")
    while self._next < len(self._buckets) and len(self._buckets[self._next].ready) == len(self._buckets[self._next].params):
      b = self._buckets[self._next]
      b.started = group.all_reduce_start([q.grad for q in b.params], dist.ReduceOp.AVG, "DistributedDataParallel gradient all_reduce")
      self._next += 1
    if self._next == len(self._buckets): self._write_back(group)

  def _write_back(self, group):
    """Wait for every bucket's all-reduce; each gradient becomes its slice of its averaged bucket (views, no copies)."""
    for b in self._buckets:
      averaged, b.started = group.all_reduce_finish(b.started), None
      offset = 0
      for q in b.params:
        q.grad = averaged[offset:offset + q.numel()].reshape(q.shape)
        offset += q.numel()
    self._next, self._reduced = 0, True
