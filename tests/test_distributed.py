"""lazygrad.distributed and DistributedDataParallel: collectives and DDP run under `mpiexec -n 2` (see
distributed_worker.py) and are checked against NumPy and against one process on the whole batch; a rank that raises,
dies or never joins ends the job with a clear error. Also: DistributedSampler against torch's, the NCCL layer's
argument marshalling through a stand-in library (no GPU here), and the post-accumulate-grad hook DDP starts from."""
import ctypes
import os
import shutil
import subprocess
import sys
import time
import numpy as np
import pytest
import lazygrad as lg
import lazygrad.distributed as dist
from lazygrad.data import DataLoader, DistributedSampler, TensorDataset

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")


def mpiexec(case: str, timeout_s: float = 1800) -> tuple[subprocess.CompletedProcess, float]:
  pytest.importorskip("mpi4py")
  launcher = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
  assert launcher, "mpiexec not found: pip install 'lazygrad[distributed]' (mpich) or a system MPI"
  env = dict(os.environ, LAZYGRAD_DIST_TIMEOUT=str(timeout_s))
  start = time.monotonic()
  run = subprocess.run([launcher, "-n", "2", sys.executable, WORKER, case], capture_output=True, text=True, env=env,
                       timeout=240)
  return run, time.monotonic() - start


def test_collectives_match_numpy():
  run, _ = mpiexec("collectives")
  assert run.returncode == 0, run.stdout + run.stderr
  assert "collectives ok rank 0" in run.stdout and "collectives ok rank 1" in run.stdout


def test_ddp_two_ranks_match_one_process_on_the_whole_batch():
  """5 SGD (momentum) and 5 Adam steps: the same weights to 1e-5; no_sync accumulates locally; buffers from rank 0."""
  run, _ = mpiexec("ddp")
  assert run.returncode == 0, run.stdout + run.stderr
  assert "ddp ok rank 0" in run.stdout and "ddp ok rank 1" in run.stdout


def test_a_rank_that_raises_ends_the_job():
  run, seconds = mpiexec("raise")  # rank 0 waits in all_reduce with a 30-minute timeout: the abort must end it
  assert run.returncode != 0
  assert "ValueError: rank 1 fails on purpose" in run.stderr
  assert "lazygrad.distributed: rank 1 raised ValueError; aborting all 2 ranks" in run.stderr
  assert seconds < 60 and "ok rank" not in run.stdout


def test_a_rank_that_dies_ends_the_job():
  run, seconds = mpiexec("exit")
  assert run.returncode != 0 and seconds < 60 and "ok rank" not in run.stdout


def test_a_rank_that_never_joins_times_out():
  run, seconds = mpiexec("timeout", timeout_s=2)
  assert run.returncode != 0, run.stdout + run.stderr
  assert ("RuntimeError: lazygrad.distributed: all_reduce on rank 0 of 2 timed out after 2 s waiting for the other "
          "ranks") in run.stderr
  assert "LAZYGRAD_DIST_TIMEOUT" in run.stderr
  assert seconds < 45  # rank 1 sleeps 60 s: the abort ended it


# ---- without a process group


def test_collectives_need_a_process_group():
  with pytest.raises(RuntimeError, match=r"all_reduce: the default process group has not been initialized; call "
                                         r"lazygrad.distributed.init_process_group\('mpi'\) first"):
    dist.all_reduce(lg.ones(2))
  from lazygrad.nn.parallel import DistributedDataParallel
  with pytest.raises(RuntimeError, match="DistributedDataParallel: the default process group has not been initialized"):
    DistributedDataParallel(lg.nn.Linear(2, 2))
  with pytest.raises(ValueError, match="init_process_group: backend 'gloo' is not supported"):
    dist.init_process_group("gloo")


def test_import_lazygrad_does_not_import_mpi4py():
  code = "import sys, lazygrad, lazygrad.distributed, lazygrad.nn.parallel; print('mpi4py' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "False"


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (9, 3, False), (2, 5, False),
                                                  (11, 4, True), (7, 2, False)])
def test_distributed_sampler_splits_as_torch_does(n, replicas, drop_last):
  torch_data = pytest.importorskip("torch.utils.data")
  for rank in range(replicas):
    ours = DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
    theirs = torch_data.DistributedSampler(range(n), num_replicas=replicas, rank=rank, shuffle=False, drop_last=drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_shuffles_by_seed_and_epoch():
  ranks = [DistributedSampler(range(10), num_replicas=2, rank=r, seed=3) for r in range(2)]
  first = [list(s) for s in ranks]
  assert sorted(first[0] + first[1]) == list(range(10))  # the ranks' shares partition one permutation
  assert first[0] == list(DistributedSampler(range(10), num_replicas=2, rank=0, seed=3))  # the same on every call
  for s in ranks: s.set_epoch(1)
  assert [list(s) for s in ranks] != first and sorted(list(ranks[0]) + list(ranks[1])) == list(range(10))
  with pytest.raises(ValueError, match=r"DistributedSampler: invalid rank 2, rank should be in the interval \[0, 1\]"):
    DistributedSampler(range(4), num_replicas=2, rank=2)


def test_data_loader_takes_a_sampler():
  data = TensorDataset(np.arange(10, dtype=np.float32))
  loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, num_replicas=2, rank=1, shuffle=False))
  assert len(loader) == 3 and [b[0].numpy().tolist() for b in loader] == [[1, 3], [5, 7], [9]]
  with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
    DataLoader(data, sampler=DistributedSampler(data, num_replicas=2, rank=0), shuffle=True)


# ---- NCCL, through a stand-in for libnccl (no GPU here)


class FakeNCCL:
  """Records each call with its arguments as NCCL would read them."""

  def __init__(self): self.calls = []

  def ncclGetUniqueId(self, uid):
    ctypes.memmove(ctypes.addressof(uid._obj), bytes(range(1, 129)), 128)
    return 0

  def ncclCommInitRank(self, comm, nranks, uid, rank):
    ctypes.c_void_p.from_address(ctypes.addressof(comm._obj)).value = 0xC0FFEE
    self.calls.append(("init", nranks.value, bytes(uid), rank.value))
    return 0

  def ncclAllReduce(self, send, recv, count, dtype, op, comm, stream):
    self.calls.append(("all_reduce", send.value, recv.value, count.value, dtype.value, op.value, comm.value, stream.value))
    return 0

  def ncclBroadcast(self, send, recv, count, dtype, root, comm, stream):
    self.calls.append(("broadcast", send.value, recv.value, count.value, dtype.value, root.value, comm.value, stream.value))
    return 0

  def ncclAllGather(self, send, recv, count, dtype, comm, stream):
    self.calls.append(("all_gather", send.value, recv.value, count.value, dtype.value, comm.value, stream.value))
    return 0

  def ncclReduceScatter(self, send, recv, count, dtype, op, comm, stream):
    self.calls.append(("reduce_scatter", send.value, recv.value, count.value, dtype.value, op.value, comm.value, stream.value))
    return 5  # ncclInvalidUsage

  def ncclGetErrorString(self, status): return b"invalid usage"


def test_nccl_arguments_are_marshalled_as_nccl_h_declares():
  lib = FakeNCCL()
  uid = dist.NCCL.unique_id(lib)
  assert uid == bytes(range(1, 129))
  nccl = dist.NCCL(lib, 2, 1, uid)
  assert lib.calls[0] == ("init", 2, uid, 1) and nccl.comm.value == 0xC0FFEE  # the id by value, whole
  big = 2**40 + 256  # a device address beyond 32 bits must arrive whole
  nccl.all_reduce(big, big, 3_000_000_000, "float32", dist.ReduceOp.AVG)
  nccl.broadcast(big, big + 64, 10, "float16", 1)
  nccl.all_gather(big, big + 4096, 7, "bfloat16")
  assert lib.calls[1:] == [("all_reduce", big, big, 3_000_000_000, 7, 4, 0xC0FFEE, None),
                           ("broadcast", big, big + 64, 10, 6, 1, 0xC0FFEE, None),
                           ("all_gather", big, big + 4096, 7, 9, 0xC0FFEE, None)]
  with pytest.raises(RuntimeError, match="NCCL: ncclReduceScatter failed: invalid usage"):
    nccl.reduce_scatter(big, big, 1, "int64", dist.ReduceOp.MAX)
  assert lib.calls[-1][3:6] == (1, 4, 2)


# ---- the hook DistributedDataParallel starts its all-reduces from


def test_post_accumulate_grad_hook_sees_each_accumulated_grad():
  w = lg.Tensor([1.0, 2.0], requires_grad=True)
  seen = []
  handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().tolist()))
  (w * w).sum().backward()
  (w * 3).sum().backward()
  handle.remove()
  (w * 3).sum().backward()
  assert seen == [[2.0, 4.0], [5.0, 7.0]] and w.grad.numpy().tolist() == [8.0, 10.0]
  with pytest.raises(RuntimeError, match="register_post_accumulate_grad_hook: only leaf tensors"):
    (w * 2).register_post_accumulate_grad_hook(print)
