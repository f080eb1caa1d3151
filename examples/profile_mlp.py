"""Profile the bench MLP's training step (784-512-512-10, ReLU, cross-entropy, Adam, batch 256): the kernel table
against the device's roofline, a Chrome trace, and a picture of what fused into which kernel.

  python examples/profile_mlp.py [--out runs/profile]   # writes step.json (trace), step.dot, and step.svg with Graphviz
"""
import argparse
import os
import shutil
import numpy as np
import lazygrad as lg
import lazygrad.nn as nn
import lazygrad.nn.functional as F
from lazygrad import profiler

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--out", default="runs/profile")
ap.add_argument("--steps", type=int, default=5, help="profiled steps")
ap.add_argument("--top", type=int, default=None, help="print only the kernels that took the most time")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)

rng = np.random.default_rng(0)
x, y = lg.Tensor(rng.standard_normal((256, 784), dtype=np.float32)), lg.Tensor(rng.integers(0, 10, 256))
lg.manual_seed(0)
model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
opt = lg.optim.Adam(model.parameters(), lr=1e-3)


def step(xb, yb):
  loss = F.cross_entropy(model(xb), yb)
  opt.zero_grad(); loss.backward(); opt.step()
  return loss


# the picture: every kernel one (plain, not jitted) step runs, boxed with the ops fused into it
step(x, y)  # the first step makes Adam's state: a step like every later one comes next
picture = os.path.join(args.out, "step.svg" if shutil.which("dot") else "step.dot")
profiler.schedule_graph(lambda: step(x, y).realize(), os.path.join(args.out, "step.dot"))
if picture.endswith(".svg"): profiler.schedule_graph(lambda: step(x, y).realize(), picture)

jitted = lg.jit(step)
for _ in range(4): jitted(x, y)  # builds, records, then replays
profiler.roofline()  # measured once per device (a few seconds), then read from the cache
lg.synchronize()
with profiler.profile() as prof:
  for _ in range(args.steps): jitted(x, y)
print(f"{args.steps} steps of the jitted MLP step, {len(prof.launches) // args.steps} kernels each")
prof.table(top=args.top)
prof.export_chrome_trace(os.path.join(args.out, "step.json"))
print(f"wrote {os.path.join(args.out, 'step.json')} (open it in ui.perfetto.dev) and {picture}")
