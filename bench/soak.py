"""Soak: a long training run that never reads its loss, reporting steps/s, resident memory, the allocator's bytes and
the kernels held as it goes; exits non-zero if memory grew (the last tenth more than 5% above the first).

  python bench/soak.py mlp --steps 100000            # jitted MLP 784-256-10, Adam, batch 64
  python bench/soak.py gpt --steps 10000 --eager     # the example GPT, graph built every step
"""
import argparse
import os
import sys
import time
import numpy as np
import lazygrad as lg
import lazygrad.nn as nn
import lazygrad.nn.functional as F
from lazygrad import device as devices

GROWTH = 1.05  # the last tenth's resident memory over the first's


def resident_mb() -> float:
  with open("/proc/self/statm") as f: return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def mlp():
  rng = np.random.default_rng(0)
  model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
  opt = lg.optim.Adam(model.parameters(), lr=1e-3)
  data = [(rng.standard_normal((64, 784), dtype=np.float32), rng.integers(0, 10, 64)) for _ in range(16)]

  def step(x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
  return step, data


def gpt():
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
  from gpt import GPT
  rng = np.random.default_rng(0)
  model = GPT(256, 64, 2, 4, 64)  # the example's defaults: context 64, 2 layers, 4 heads, width 64, batch 16
  opt = lg.optim.AdamW(model.parameters(), lr=1e-3)
  data = [(rng.integers(0, 256, (16, 64)), rng.integers(0, 256, (16, 64))) for _ in range(16)]

  def step(x, y):
    loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
  return step, data


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("model", choices=["mlp", "gpt"])
  ap.add_argument("--steps", type=int, default=100_000)
  ap.add_argument("--eager", action="store_true", help="no lg.jit: build the graph every step")
  ap.add_argument("--reports", type=int, default=20, help="lines printed over the run")
  args = ap.parse_args(argv)
  step, data = {"mlp": mlp, "gpt": gpt}[args.model]()
  if not args.eager: step = lg.jit(step)
  dev = devices.get(devices.default_device())
  every = max(1, args.steps // args.reports)
  batch = lambda n: [lg.Tensor(a) for a in data[n % len(data)]]  # uploaded every step, as from a data loader
  first_loss = step(*batch(0)).item()  # the only reads: the first and last losses
  rss, start, last = [], time.perf_counter(), time.perf_counter()
  print(f"soak: {args.model}, {'eager' if args.eager else 'jitted'}, {args.steps} steps on {dev.name}, loss read only at the end",
        flush=True)
  for n in range(1, args.steps + 1):
    step(*batch(n))
    if n % every == 0 or n == args.steps:
      now = time.perf_counter()
      rss.append(resident_mb())
      stats = lg.memory_stats()
      print(f"  step {n:>7}  {every / (now - last):7.0f} steps/s  resident {rss[-1]:6.0f} MB  device in use "
            f"{stats['in_use'] / 2**20:6.1f} MB cached {stats['cached'] / 2**20:6.1f} MB  kernels held {len(dev.kernels)}",
            flush=True)
      last = now
  final_loss = step(*batch(0)).item()
  tenth = max(1, len(rss) // 10)
  first, end = max(rss[:tenth]), max(rss[-tenth:])
  ok = end <= first * GROWTH and np.isfinite(final_loss)
  print(f"soak: {args.steps / (time.perf_counter() - start):.0f} steps/s; loss {first_loss:.4f} -> {final_loss:.4f}; resident "
        f"{first:.0f} MB in the first tenth, {end:.0f} MB in the last ({'flat' if ok else 'GREW'})", flush=True)
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
