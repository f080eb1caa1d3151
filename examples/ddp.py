"""Data-parallel training: the Fashion-MNIST CNN of examples/mnist.py on every rank, each on its share of the data.

  mpiexec -n 2 python examples/ddp.py            # 2 ranks, one thread each (what `make ddp` runs, after 1 rank)
  mpiexec -n 1 python examples/ddp.py            # the same on one rank: the baseline for the speed-up
  mpiexec -f hosts -n 4 python examples/ddp.py   # across machines (see the README)

Each rank prints its throughput (training images a second, after the first steps, which build kernels) and rank 0
the combined one. A run on N ranks leaves its combined figure in --out; a run on more ranks prints its speed-up over it.
"""
import argparse
import json
import os
import sys
import time

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--batch-size", type=int, default=128, help="images per rank per step")
ap.add_argument("--steps", type=int, default=60, help="timed steps per rank (0: whole epochs)")
ap.add_argument("--warmup", type=int, default=5, help="steps before the clock starts (the first builds kernels)")
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--threads", type=int, default=1, help="CPU threads per rank (PoCL's, OpenMP's, BLAS's)")
ap.add_argument("--lr", type=float, default=2e-3)
ap.add_argument("--data", default=None, help="folder of the IDX files (default: LAZYGRAD_DATA, then Debian's)")
ap.add_argument("--out", default="runs/ddp")
args = ap.parse_args()
for name in ("POCL_MAX_PTHREAD_COUNT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before pyopencl loads PoCL
  os.environ.setdefault(name, str(args.threads))

import lazygrad as lg  # noqa: E402
import lazygrad.distributed as dist  # noqa: E402
import lazygrad.nn.functional as F  # noqa: E402
from lazygrad.data import DataLoader, DistributedSampler  # noqa: E402
from lazygrad.data.datasets import FashionMNIST  # noqa: E402
from lazygrad.nn.parallel import DistributedDataParallel  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mnist import CNN, evaluate  # noqa: E402


def main():
  dist.init_process_group("mpi")
  rank, world = dist.get_rank(), dist.get_world_size()
  train_set = FashionMNIST(args.data, train=True)
  sampler = DistributedSampler(train_set, shuffle=True, seed=0, drop_last=True)  # each rank its own 1/world
  loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True)
  lg.manual_seed(0)
  model = DistributedDataParallel(CNN())  # rank 0's initial weights on every rank
  opt = lg.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
  if rank == 0:
    print(f"{world} rank(s), {args.threads} thread(s) each, {args.batch_size} images per rank per step "
          f"({world * args.batch_size} per step in all), {len(loader)} steps per epoch", flush=True)

  steps, start, loss = 0, None, None
  for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    for images, labels in loader:
      if steps == args.warmup:  # from here on, the clock runs
        if loss is not None: loss.item()
        dist.barrier()
        start, cpu_start = time.perf_counter(), time.process_time()
      loss = F.cross_entropy(model(images), labels)
      opt.zero_grad()
      loss.backward()  # gradients are averaged across the ranks in here
      opt.step()
      steps += 1
      if args.steps and steps == args.warmup + args.steps: break
    if args.steps and steps == args.warmup + args.steps: break
  last = loss.item()
  timed = steps - args.warmup
  if start is None or timed <= 0: raise SystemExit(f"ddp: only {steps} steps, not more than --warmup {args.warmup}")
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
  rate = timed * args.batch_size / seconds
  rates = [lg.zeros(1) for _ in range(world)]
  dist.all_gather(rates, lg.Tensor([rate]))
  rates = [r.item() for r in rates]
  # CPU seconds per second: about 1 for a rank that had its core to itself (its device thread and Python's together)
  print(f"rank {rank}: {rate:.0f} images/s over {timed} steps ({cpu / seconds:.2f} CPU s per s), last loss {last:.3f}",
        flush=True)
  dist.barrier()
  if rank == 0:
    combined = sum(rates)
    print(f"combined: {combined:.0f} images/s on {world} rank(s)")
    os.makedirs(args.out, exist_ok=True)
    for n in range(1, world):  # a run on fewer ranks with the same settings: the speed-up over it
      path = os.path.join(args.out, f"throughput-{n}-ranks-bs{args.batch_size}-t{args.threads}.json")
      if os.path.exists(path):
        before = json.load(open(path))["combined"]
        print(f"speed-up over {n} rank(s): {combined / before:.2f}x ({combined:.0f} / {before:.0f} images/s)")
    with open(os.path.join(args.out, f"throughput-{world}-ranks-bs{args.batch_size}-t{args.threads}.json"), "w") as f:
      json.dump({"ranks": world, "rates": rates, "combined": combined}, f)
    test_loader = DataLoader(FashionMNIST(args.data, train=False), batch_size=1000)
    print(f"test accuracy after {steps} steps: {evaluate(model.module, test_loader):.2%}")
  dist.destroy_process_group()


if __name__ == "__main__":
  main()
