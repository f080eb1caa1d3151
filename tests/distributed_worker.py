"""What each rank runs for tests/test_distributed.py, under `mpiexec -n 2`: `python distributed_worker.py CASE`.
Each check raises on a mismatch (the excepthook then ends the job); a rank that passes prints "CASE ok rank R"."""
import os
import sys
import time
import numpy as np
import lazygrad as lg
import lazygrad.distributed as dist
import lazygrad.nn as nn
import lazygrad.nn.functional as F
from lazygrad.nn.parallel import DistributedDataParallel as DDP


def collectives(rank: int, world: int):
  rng = np.random.default_rng(0)
  data = rng.standard_normal((world, 3, 5)).astype(np.float32)  # every rank draws the same: row r is rank r's
  for op, reduce in ((dist.ReduceOp.SUM, data.sum(0)), (dist.ReduceOp.AVG, data.mean(0)), (dist.ReduceOp.MAX, data.max(0)),
                     (dist.ReduceOp.MIN, data.min(0)), (dist.ReduceOp.PRODUCT, data.prod(0))):
    t = lg.Tensor(data[rank])
    dist.all_reduce(t, op=op)
    np.testing.assert_allclose(t.numpy(), reduce, rtol=1e-6, err_msg=f"all_reduce {op}")
  ints = lg.Tensor(np.arange(4) * (rank + 1))  # int64
  dist.all_reduce(ints, op=dist.ReduceOp.MAX)
  assert ints.dtype is lg.int64 and ints.numpy().tolist() == [0, world, 2 * world, 3 * world], ints.numpy()
  half = lg.Tensor(data[rank]).half()
  dist.all_reduce(half)
  assert half.dtype is lg.float16
  np.testing.assert_allclose(half.numpy(), data.astype(np.float16).astype(np.float32).sum(0), rtol=2e-3, atol=2e-3)

  for src in range(world):
    t = lg.Tensor(data[rank]).permute(1, 0)  # a view: broadcast writes the tensor as it is seen
    dist.broadcast(t, src=src)
    np.testing.assert_array_equal(t.numpy(), data[src].T, err_msg=f"broadcast from {src}")

  gathered = [lg.zeros(3, 5) for _ in range(world)]
  dist.all_gather(gathered, lg.Tensor(data[rank]))
  for r in range(world): np.testing.assert_array_equal(gathered[r].numpy(), data[r], err_msg=f"all_gather [{r}]")

  inputs = rng.standard_normal((world, world, 4)).astype(np.float32)  # inputs[r][i]: rank r's input_list[i]
  for op, reduce in ((dist.ReduceOp.SUM, inputs.sum(0)), (dist.ReduceOp.AVG, inputs.mean(0)), (dist.ReduceOp.MAX, inputs.max(0))):
    out = lg.zeros(4)
    dist.reduce_scatter(out, [lg.Tensor(x) for x in inputs[rank]], op=op)
    np.testing.assert_allclose(out.numpy(), reduce[rank], rtol=1e-6, err_msg=f"reduce_scatter {op}")

  # a gradient flows through the tensors before and after (all_reduce writes in place, as torch's does, under no_grad)
  w = lg.Tensor(data[rank], requires_grad=True)
  g = (w * 2).sum()
  g.backward()
  dist.all_reduce(w.grad)
  np.testing.assert_allclose(w.grad.numpy(), np.full((3, 5), 2.0 * world))

  # DistributedSampler takes its rank and world size from the process group
  from lazygrad.data import DistributedSampler
  assert list(DistributedSampler(range(5), shuffle=False)) == [[0, 2, 4], [1, 3, 0]][rank]

  # bad arguments are refused before anything is sent, with messages that name them
  for call, kind, message in (
      (lambda: dist.all_gather([lg.zeros(2)], lg.zeros(2)), ValueError,
       "all_gather: tensor_list must hold one tensor per rank (2), got 1 tensors"),
      (lambda: dist.all_gather([lg.zeros(2), lg.zeros(3)], lg.zeros(2)), ValueError,
       "all_gather: tensor_list[1] is float32 (3,), but the tensor is float32 (2,)"),
      (lambda: dist.all_reduce(lg.ones(2, dtype=lg.int32), op=dist.ReduceOp.AVG), TypeError,
       "all_reduce: ReduceOp.AVG needs a floating-point tensor, got int32"),
      (lambda: dist.broadcast(lg.ones(2), src=2), ValueError, "broadcast: src=2 is not a rank of this group (0 to 1)"),
      (lambda: dist.all_reduce(np.ones(2)), TypeError, "all_reduce: tensor must be a lazygrad Tensor, got ndarray")):
    try: call()
    except kind as e: assert str(e) == message, str(e)
    else: raise AssertionError(f"no {kind.__name__}: {message}")
  dist.barrier()


class Net(nn.Module):
  """A conv and a linear, few kernels to build. (No batch norm: its statistics are each rank's own batch's, as in
  torch, so it would not match one process on the whole batch.)"""
  def __init__(self):
    super().__init__()
    self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1, bias=False)
    self.fc = nn.Linear(4 * 4 * 4, 3)

  def forward(self, x): return self.fc(self.conv(x).relu().flatten(1))


def ddp_matches_one_process(rank: int, world: int, steps: int = 5, per_rank: int = 4):
  rng = np.random.default_rng(1)
  images = rng.standard_normal((steps, world * per_rank, 1, 8, 8)).astype(np.float32)
  labels = rng.integers(0, 3, (steps, world * per_rank))
  # SGD with a bucket per parameter (3 all-reduces in flight, started in order), Adam with one bucket for all
  for make_opt, bucket_mb in ((lambda p: lg.optim.SGD(p, lr=0.1, momentum=0.9), 1e-4), (lambda p: lg.optim.Adam(p, lr=1e-2), 25)):
    lg.manual_seed(100)
    reference = Net()
    lg.manual_seed(100 + rank)  # different weights on each rank: DDP must start every rank from rank 0's
    model = DDP(Net(), bucket_cap_mb=bucket_mb)
    assert len(model._buckets) == (3 if bucket_mb < 1 else 1)
    assert list(model.state_dict())[0] == "module.conv.weight" and model.module.conv is not None
    ref_opt, opt = make_opt(reference.parameters()), make_opt(model.parameters())
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    for step in range(steps):
      ref_opt.zero_grad()
      F.cross_entropy(reference(lg.Tensor(images[step])), lg.Tensor(labels[step])).backward()
      ref_opt.step()
      opt.zero_grad()
      F.cross_entropy(model(lg.Tensor(images[step][mine])), lg.Tensor(labels[step][mine])).backward()
      opt.step()
    for (name, p), q in zip(model.module.named_parameters(), reference.parameters()):
      np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{type(opt).__name__} {name}")


def ddp_no_sync(rank: int, world: int, per_rank: int = 4):
  """Two micro-batches, the first under no_sync: the same gradients as one process on both, whole."""
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2, world * per_rank, 1, 8, 8)).astype(np.float32)
  y = rng.integers(0, 3, (2, world * per_rank))
  lg.manual_seed(0)
  reference = Net()
  lg.manual_seed(0)
  model = DDP(Net())
  for m in range(2): F.cross_entropy(reference(lg.Tensor(x[m])), lg.Tensor(y[m])).backward()
  mine = slice(rank * per_rank, (rank + 1) * per_rank)
  with model.no_sync():
    F.cross_entropy(model(lg.Tensor(x[0][mine])), lg.Tensor(y[0][mine])).backward()
  local = [lg.zeros(3, 64) for _ in range(world)]
  dist.all_gather(local, model.module.fc.weight.grad)
  assert not np.allclose(local[0].numpy(), local[1].numpy()), "no_sync: the gradients were averaged anyway"
  F.cross_entropy(model(lg.Tensor(x[1][mine])), lg.Tensor(y[1][mine])).backward()
  for p, q in zip(model.parameters(), reference.parameters()):
    np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6)


def ddp_buffers_from_rank_0(rank: int):
  norm = nn.BatchNorm1d(3)
  norm.running_mean.fill_(float(rank + 1))
  model = DDP(norm)
  np.testing.assert_array_equal(model.module.running_mean.numpy(), [1.0, 1.0, 1.0])
  assert "module.running_mean" in model.state_dict()


def main():
  case = sys.argv[1]
  dist.init_process_group("mpi")
  rank, world = dist.get_rank(), dist.get_world_size()
  if case == "collectives": collectives(rank, world)
  elif case == "ddp":
    ddp_matches_one_process(rank, world)
    ddp_no_sync(rank, world)
    ddp_buffers_from_rank_0(rank)
  elif case == "raise":  # rank 1 fails; rank 0 is already waiting in a collective
    if rank == 1: raise ValueError("rank 1 fails on purpose")
    dist.all_reduce(lg.ones(3))
  elif case == "exit":  # rank 1 dies without a word; rank 0 is waiting in a collective
    if rank == 1: os._exit(3)
    dist.all_reduce(lg.ones(3))
  elif case == "timeout":  # rank 1 is alive but never joins; rank 0's all_reduce must give up
    if rank == 1: time.sleep(60)
    else: dist.all_reduce(lg.ones(3))
  else: raise SystemExit(f"unknown case {case!r}")
  print(f"{case} ok rank {rank}", flush=True)
  dist.destroy_process_group()


if __name__ == "__main__":
  main()
