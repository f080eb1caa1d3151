"""What an all-reduce through host memory costs: `mpiexec -n 2 python bench/allreduce.py`.

For each size, the median over 21 repeats (after 3 more) of: the copy of a realized float32 tensor to the host,
MPI's Allreduce of the host buffer alone, the upload of the result, and lazygrad.distributed.all_reduce whole (all
three, and realized).
"""
import statistics
import time
import numpy as np
import lazygrad as lg
import lazygrad.distributed as dist


def median_ms(fn, repeats: int) -> float:
  for _ in range(3): fn()  # first calls set up MPI's shared memory and the allocators' blocks
  times = []
  for _ in range(repeats):
    dist.barrier()
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times) * 1e3


def main():
  dist.init_process_group("mpi")
  rank, world = dist.get_rank(), dist.get_world_size()
  comm = dist._world("bench").comm
  from mpi4py import MPI
  if rank == 0: print(f"{world} ranks; float32; median ms of 21 repeats after 3\n{'MB':>6} {'to host':>8} {'MPI':>8} {'upload':>8} {'all_reduce':>11} {'GB/s':>6}")
  for mb in (0.8, 4, 25, 100):
    n = int(mb * 2**20 / 4)
    t = lg.Tensor(np.random.default_rng(rank).standard_normal(n).astype(np.float32)).realize()
    whole = median_ms(lambda: dist.all_reduce(t) or t.realize(), 21)
    host = t.numpy()
    down = median_ms(t.numpy, 21)  # a realized tensor: only the copy
    mpi = median_ms(lambda: comm.Allreduce(MPI.IN_PLACE, host, op=MPI.SUM), 21)
    up = median_ms(lambda: lg.Tensor(host).realize(), 21)
    if rank == 0: print(f"{mb:>6} {down:>8.2f} {mpi:>8.2f} {up:>8.2f} {whole:>11.2f} {mb / 1024 / whole * 1e3:>6.2f}")
  dist.destroy_process_group()


if __name__ == "__main__":
  main()
