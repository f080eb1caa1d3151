"""GPU benchmarks (issue: Triton backend): lazygrad on the current device beside torch eager on CUDA, same process.
`LAZYGRAD_DEVICE=TRITON python bench/gpu_bench.py` prints a table; figures are medians of timed runs after warm-up."""
import statistics
import sys
import time
import numpy as np
import lazygrad as lg

try:
  import torch
except ImportError:
  torch = None


def timed(fn, sync, runs=10):
  fn(); sync()
  times = []
  for _ in range(runs):
    start = time.perf_counter(); fn(); sync(); times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  rows = []
  tsync = (lambda: torch.cuda.synchronize()) if torch is not None and torch.cuda.is_available() else None
  n = 2**28
  x, b = lg.randn(n).realize(), lg.randn(n).realize()
  gb = 3 * n * 4 / 1e9
  rows.append(("ew_chain 2^28", "GB/s", gb / timed(lambda: ((x * 1.5 + b).relu() * 0.5).exp().sub(x).realize(), lg.synchronize),
               gb / timed(lambda: torch.exp(torch.relu(tx * 1.5 + tb) * 0.5) - tx, tsync) if tsync and (tx := torch.randn(n, device="cuda")) is not None and (tb := torch.randn(n, device="cuda")) is not None else None))
  # the reference the issue sets: a device-to-device copy (lazygrad's is a one-load one-store kernel)
  rows.append(("copy 2^28", "GB/s", 2 * n * 4 / 1e9 / timed(lambda: x.clone().realize(), lg.synchronize),
               2 * n * 4 / 1e9 / timed(lambda: tx.clone(), tsync) if tsync else None))
  rows.append(("sum 2^28", "GB/s", n * 4 / 1e9 / timed(lambda: x.sum().realize(), lg.synchronize),
               n * 4 / 1e9 / timed(lambda: tx.sum(), tsync) if tsync else None))
  s = lg.randn(4096, 1024).realize()
  ts = torch.randn(4096, 1024, device="cuda") if tsync else None
  rows.append(("softmax 4096x1024", "GB/s", 2 * s.numel() * 4 / 1e9 / timed(lambda: s.softmax(-1).realize(), lg.synchronize),
               2 * s.numel() * 4 / 1e9 / timed(lambda: torch.softmax(ts, -1), tsync) if tsync else None))
  for dtype, tdt in ((lg.float32, "float32"), (lg.float16, "float16")):
    m = 8192
    a, c = lg.randn(m, m).cast(dtype).realize(), lg.randn(m, m).cast(dtype).realize()
    flop = 2 * m**3 / 1e12
    ta = torch.randn(m, m, device="cuda", dtype=getattr(torch, tdt)) if tsync else None
    rows.append((f"matmul 8192 {tdt}", "TFLOP/s", flop / timed(lambda: (a @ c).realize(), lg.synchronize, 3),
                 flop / timed(lambda: ta @ ta, tsync, 3) if tsync else None))
  sys.path.insert(0, __file__.rsplit("/", 1)[0])
  from bench import gpt_train_step
  [(_, _, figs, ok)] = gpt_train_step(6, torch_device="cuda" if tsync else "cpu")
  rows.append(("gpt_train_step" + ("" if ok else " WRONG"), "steps/s", figs["lazygrad"], figs.get("torch")))
  print(f"lazygrad on {x.device}; torch {torch.__version__ if torch else 'absent'}")
  print(f"{'workload':<22}{'unit':<9}{'lazygrad':>10}{'torch':>10}{'ratio':>8}")
  for name, unit, mine, theirs in rows:
    print(f"{name:<22}{unit:<9}{mine:10.1f}{(theirs or float('nan')):10.1f}{(mine / theirs if theirs else float('nan')):8.2f}")
  dev = lg.device.get(x.device)
  if hasattr(dev, "tune") and hasattr(dev, "cuda"):  # TRITON on a GPU: the tiles it measured for its big kernels
    from lazygrad.backends.triton import TUNE_WORK
    for plan, prog, _, sizes in list(dev.programs.values()):
      if not plan.params and plan.work >= TUNE_WORK: print(f"tuned {plan.name}: {sizes}, {prog.num_warps} warps")


if __name__ == "__main__":
  sys.exit(main())
