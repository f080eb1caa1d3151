"""Where a new model's first training step spends its time: `python bench/first_step.py mlp|gpt [--jit]`. Run it with
an empty LAZYGRAD_CACHE_DIR for a cold start (LAZYGRAD_BUILD_WORKERS=0 to build in this process only): it prints the
first and second steps' times, the OpenCL builds (program front ends), and our own lowering and rendering."""
import argparse
import os
import sys
import time

start = time.perf_counter()
import numpy as np  # noqa: E402
import lazygrad as lg  # noqa: E402
import lazygrad.nn as nn  # noqa: E402
import lazygrad.nn.functional as F  # noqa: E402
from lazygrad.backends import opencl  # noqa: E402
imported = time.perf_counter() - start

spent = {"builds": 0.0, "programs built": 0, "lowering": 0.0}


def timed(name, fn, count=None):
  def wrapper(*args, **kwargs):
    t = time.perf_counter()
    try: return fn(*args, **kwargs)
    finally:
      spent[name] += time.perf_counter() - t
      if count: spent[count] += 1
  return wrapper


opencl.Device.compile = timed("builds", opencl.Device.compile, "programs built")
opencl.Device._prepare = timed("lowering", opencl.Device._prepare)


def main():
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("model", choices=("mlp", "gpt"))
  ap.add_argument("--jit", action="store_true")
  args = ap.parse_args()
  rng = np.random.default_rng(0)
  if args.model == "mlp":  # as bench.py's mlp_train_step
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    opt = lg.optim.Adam(model.parameters(), lr=1e-3)
    x, y = lg.Tensor(rng.standard_normal((256, 784), dtype=np.float32)), lg.Tensor(rng.integers(0, 10, 256))
    loss_of = lambda: F.cross_entropy(model(x), y)
  else:  # as bench.py's gpt_train_step
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
    from gpt import GPT
    model = GPT(256, 128, 4, 4, 128)
    opt = lg.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = lg.Tensor(rng.integers(0, 256, (16, 128))), lg.Tensor(rng.integers(0, 256, (16, 128)))
    loss_of = lambda: F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))

  def step():
    loss = loss_of()
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
  if args.jit: step = lg.jit(step)
  times, built = [], []
  for _ in range(2):
    t = time.perf_counter()
    step().item(); lg.synchronize()
    times.append(time.perf_counter() - t)
    built.append(lg.compile_count() - sum(built))
  print(f"{args.model}: import {imported:.2f} s, first step {times[0]:.2f} s, second {times[1]:.2f} s; "
        f"{built[0]} + {built[1]} kernels built in {spent['programs built']} programs, whose front ends took "
        f"{spent['builds']:.2f} s; lowering and rendering {spent['lowering']:.2f} s")


if __name__ == "__main__":
  main()
