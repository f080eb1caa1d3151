"""Benchmarks: each workload run by lazygrad, NumPy and PyTorch in one process, checked against NumPy float64,
reported as medians and ratios, with torch.compile beside torch eager where it runs here.
`python bench/bench.py [--json out.json] [--only name,name] [--runs N] [--no-compile]`."""
from __future__ import annotations
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lazygrad as lg  # noqa: E402

try:
  import torch
  torch.set_num_threads(os.cpu_count() or 1)
except ImportError:  # the table shows lazygrad and NumPy only
  torch = None


WARM_CALLS, WARM_SECONDS, MOST_WARM_CALLS = 8, 0.5, 20
# untimed calls at the start of each framework's turn: NumPy's OpenBLAS threads and torch's OpenMP threads spin for a
# while after a call, on the cores the next one needs (lazygrad's 1024^3 matmul took 26 ms right after NumPy's,
# 13 ms alone). Not a pause: the bench MLP's jitted step took 11 ms for 30 ms after 0.2 s of idle, 6.5 ms otherwise.
SETTLE = 0.1


def warm(fn, sync=None, calls: int = WARM_CALLS, seconds: float = WARM_SECONDS):
  """Call fn into its steady state: at least `calls` calls and `seconds`, at most MOST_WARM_CALLS. A jitted step
  replays from its fourth call, and its first replays still allocate the memory later ones reuse; an eager step's
  optimizer update is replayed from its fifth, and kernels that ran on shared code get their own in the fourth."""
  start, done = time.perf_counter(), 0
  while done < calls or (done < MOST_WARM_CALLS and time.perf_counter() - start < seconds):
    fn()
    if sync: sync()
    done += 1


BOUNDS: list[str] = []  # what bounded each lazygrad measurement of the workload running (see compare)


def compare(fns: dict, runs: int) -> dict[str, float]:
  """Median seconds of a call of each framework's function ({name: fn, or (fn, sync)}; lazygrad's is synchronized),
  after each is warmed up. Their timed runs alternate, so every framework sees the machine of the same minutes (a
  shared machine's speed moves by 30% from minute to minute), and each turn starts with SETTLE seconds of untimed calls
  (at least one). Then lazygrad's function once more under lazygrad.profiler: what bounds it (bandwidth, flops or
  launch overhead, from the profiler's roofline) goes in BOUNDS for main to print under the workload's row."""
  fns = {name: f if isinstance(f, tuple) else (f, lg.synchronize if name == "lazygrad" else None) for name, f in fns.items()}
  for fn, sync in fns.values(): warm(fn, sync)
  times: dict[str, list] = {name: [] for name in fns}
  names = list(fns)
  for r in range(runs):
    for name in names[r % len(names):] + names[:r % len(names)]:
      fn, sync = fns[name]
      if len(fns) > 1: warm(fn, sync, 1, SETTLE)
      start = time.perf_counter()
      fn()
      if sync: sync()
      times[name].append(time.perf_counter() - start)
  seconds = {name: statistics.median(t) for name, t in times.items()}
  if "lazygrad" in fns:
    from lazygrad import profiler
    fn, sync = fns["lazygrad"]
    with profiler.profile() as prof:
      fn()
      sync()
    bound, why = prof.bound(seconds["lazygrad"])
    BOUNDS.append(f"bound by {bound} ({why})")
  return seconds


def rates(amount: float, seconds: dict) -> dict[str, float]:
  """Each framework's amount per second (GB/s, GFLOP/s, steps/s) from compare's seconds."""
  return {name: amount / t for name, t in seconds.items()}


def close(actual, reference, rtol=1e-3, atol=1e-3) -> bool:
  return bool(np.allclose(np.asarray(actual, np.float64), reference, rtol=rtol, atol=atol))


# each workload returns rows: (workload, unit, {peer: value}, checked)

# torch.compile beside torch eager (inductor's C++ and OpenMP code on a CPU): `--no-compile` leaves it out, a minute
# or two of compiling fewer
COMPILE = True


def with_compiled(fns: dict, step=None) -> dict:
  """fns with "torch.compile": torch.compile(fns["torch"]), or `step` (a training step whose model a caller made with
  torch.compile, as its users do: the backward and the optimizer stay eager), compiled by a first call here, outside
  the timing; fns as they are where torch is missing, --no-compile was given, or torch.compile fails on this machine
  (it needs a C++ compiler), which is said."""
  if torch is None or not COMPILE or "torch" not in fns: return fns
  eager, sync = fns["torch"] if isinstance(fns["torch"], tuple) else (fns["torch"], None)
  fn = step if step is not None else torch.compile(eager)
  try: fn()
  except Exception as e:  # noqa: BLE001 -- any failure of inductor's: the row goes on without it
    print(f"  (torch.compile failed here: {type(e).__name__}: {str(e).splitlines()[0][:120]})")
    return fns
  return {**fns, "torch.compile": (fn, sync) if sync else fn}


def ew_chain(runs, n=2**24):
  rng = np.random.default_rng(0)
  x, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
  ref = np.exp(np.maximum(x.astype(np.float64) * 1.5 + b, 0) * 0.5) - x
  gb = 3 * n * 4 / 1e9
  lx, lb = lg.Tensor(x).realize(), lg.Tensor(b).realize()
  fn_lg = lambda: ((lx * 1.5 + lb).relu() * 0.5).exp().sub(lx).realize()
  fns = {"lazygrad": fn_lg, "numpy": lambda: np.exp(np.maximum(x * 1.5 + b, 0) * 0.5) - x}
  if torch is not None:
    tx, tb = torch.from_numpy(x), torch.from_numpy(b)
    fns["torch"] = lambda: torch.exp(torch.relu(tx * 1.5 + tb) * 0.5) - tx
  out = rates(gb, compare(with_compiled(fns), runs))
  return [("ew_chain", "GB/s", out, close(fn_lg().numpy(), ref))]


def reduce_sum(runs, n=2**24):
  x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
  gb = n * 4 / 1e9
  lx = lg.Tensor(x).realize()
  fn_lg = lambda: lx.sum().realize()
  fns = {"lazygrad": fn_lg, "numpy": lambda: x.sum()}
  if torch is not None:
    tx = torch.from_numpy(x)
    fns["torch"] = lambda: tx.sum()
  out = rates(gb, compare(with_compiled(fns), runs))
  return [("reduce_sum", "GB/s", out, close(fn_lg().item(), x.astype(np.float64).sum(), rtol=1e-4, atol=1e-1))]


def softmax(runs, shape=(4096, 1024)):
  x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
  gb = 2 * x.size * 4 / 1e9
  lx = lg.Tensor(x).realize()
  fn_lg = lambda: lx.softmax(-1).realize()

  def np_softmax():
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
  fns = {"lazygrad": fn_lg, "numpy": np_softmax}
  if torch is not None:
    tx = torch.from_numpy(x)
    fns["torch"] = lambda: torch.softmax(tx, -1)
  out = rates(gb, compare(with_compiled(fns), runs))
  x64 = x.astype(np.float64)
  ref = np.exp(x64 - x64.max(-1, keepdims=True)); ref /= ref.sum(-1, keepdims=True)
  return [("softmax", "GB/s", out, close(fn_lg().numpy(), ref, atol=1e-6))]


def matmul(runs, n=1024):
  rng = np.random.default_rng(0)
  a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
  gflop = 2 * n ** 3 / 1e9
  la, lb = lg.Tensor(a).realize(), lg.Tensor(b).realize()
  fn_lg = lambda: (la @ lb).realize()
  fns = {"lazygrad": fn_lg, "numpy": lambda: a @ b}
  if torch is not None:
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    fns["torch"] = lambda: ta @ tb
  out = rates(gflop, compare(with_compiled(fns), runs))
  return [("matmul", "GFLOP/s", out, close(fn_lg().numpy(), a.astype(np.float64) @ b, rtol=1e-3, atol=1e-2))]


def conv2d(runs):
  import lazygrad.nn.functional as F
  rng = np.random.default_rng(0)
  x = rng.standard_normal((32, 32, 28, 28), dtype=np.float32)
  w = rng.standard_normal((64, 32, 3, 3), dtype=np.float32)
  gflop = 2 * 32 * 64 * 28 * 28 * 32 * 9 / 1e9
  lx, lw = lg.Tensor(x).realize(), lg.Tensor(w).realize()
  fn_lg = lambda: F.conv2d(lx, lw, padding=1).realize()

  def np_conv():  # im2col with strided views, then one matmul
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # N C H W kh kw
    return np.einsum("nchwij,ocij->nohw", cols, w, optimize=True)
  fns = {"lazygrad": fn_lg, "numpy": np_conv}
  if torch is not None:
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    fns["torch"] = lambda: torch.nn.functional.conv2d(tx, tw, padding=1)
  out = rates(gflop, compare(with_compiled(fns), runs))
  checked = close(fn_lg().numpy(), np_conv().astype(np.float64), rtol=1e-3, atol=1e-2)
  return [("conv2d", "GFLOP/s", out, checked)]


def onnx_resnet50(runs):
  """onnx's light ResNet-50 graph (shipped in the onnx package; its weights are constants) at batch 1 on the CPU, in
  images/s: lazygrad.onnx (with `@lg.jit`) beside onnxruntime, each on the same input, outputs compared."""
  try:
    import onnx
    from lazygrad.onnx import load
  except ImportError:
    return []  # pip install lazygrad[onnx]
  path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", "light_resnet50.onnx")
  x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
  model = load(path)
  step, lx = lg.jit(model.forward), lg.Tensor(x).realize()
  fns, checked = {"lazygrad": lambda: step(lx).numpy()}, True
  try:
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {model.input_names[0]: x}
    fns["onnxruntime"] = lambda: sess.run(None, feed)
    checked = close(step(lx).numpy(), sess.run(None, feed)[0].astype(np.float64), rtol=1e-3, atol=1e-6)
  except ImportError:
    pass
  out = rates(1, compare(fns, runs))
  return [("onnx_resnet50", "img/s", out, checked)]


def mlp_train_step(runs, batch=256, jit=True):
  """MLP 784-512-512-10, ReLU, cross-entropy, Adam 1e-3: forward + backward + step, in steps/s (with `@lg.jit`, or
  eagerly: graph building, scheduling and launching every step, as code without it runs)."""
  import lazygrad.nn as nn
  import lazygrad.nn.functional as F
  rng = np.random.default_rng(0)
  x, y = rng.standard_normal((batch, 784), dtype=np.float32), rng.integers(0, 10, batch)
  model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
  opt = lg.optim.Adam(model.parameters(), lr=1e-3)
  lx, ly = lg.Tensor(x), lg.Tensor(y)

  def step(xb, yb):
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
  if jit: step = lg.jit(step)
  fns = {"lazygrad": lambda: step(lx, ly).realize()}
  if torch is not None:
    tm = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                             torch.nn.Linear(512, 10))
    topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def tstep(model=tm):
      loss = torch.nn.functional.cross_entropy(model(tx), ty)
      topt.zero_grad(); loss.backward(); topt.step()
    fns["torch"] = tstep
    if jit:  # beside lazygrad's jitted step: the model under torch.compile
      compiled = torch.compile(tm) if COMPILE else None
      fns = with_compiled(fns, lambda: tstep(compiled))
  out = rates(1, compare(fns, runs))
  return [("mlp_train_step" if jit else "mlp_eager_step", "steps/s", out, bool(np.isfinite(step(lx, ly).item())))]


def gpt_train_step(runs, torch_device: str = "cpu", jit: bool = True):
  """GPT: vocab 256, context 128, 4 layers, 4 heads, width 128, batch 16, AdamW: steps/s (torch on `torch_device`),
  with `@lg.jit` or eagerly (graph building, scheduling and launching every step)."""
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
  from gpt import GPT
  import lazygrad.nn.functional as F
  rng = np.random.default_rng(0)
  x, y = rng.integers(0, 256, (16, 128)), rng.integers(0, 256, (16, 128))
  model = GPT(256, 128, 4, 4, 128)
  opt = lg.optim.AdamW(model.parameters(), lr=1e-3)
  lx, ly = lg.Tensor(x), lg.Tensor(y)

  def step(xb, yb):
    loss = F.cross_entropy(model(xb).reshape(-1, 256), yb.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
  if jit: step = lg.jit(step)
  fns = {"lazygrad": lambda: step(lx, ly).realize()}
  if torch is not None:
    torch.manual_seed(0)
    dev = torch.device(torch_device)
    layer = lambda: torch.nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    tok, pos = torch.nn.Embedding(256, 128).to(dev), torch.nn.Embedding(128, 128).to(dev)
    blocks, head = torch.nn.ModuleList([layer() for _ in range(4)]).to(dev), torch.nn.Linear(128, 256).to(dev)
    params = [p for m in (tok, pos, blocks, head) for p in m.parameters()]
    topt = torch.optim.AdamW(params, lr=1e-3)
    tx, ty, positions = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev), torch.arange(128, device=dev)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(128, device=dev)

    def loss_of():
      h = tok(tx) + pos(positions)
      for b in blocks: h = b(h, src_mask=mask, is_causal=True)
      return torch.nn.functional.cross_entropy(head(h).reshape(-1, 256), ty.reshape(-1))

    def tstep(loss_fn=loss_of):
      loss = loss_fn()
      topt.zero_grad(); loss.backward(); topt.step()
    fns["torch"] = (tstep, torch.cuda.synchronize if dev.type == "cuda" else None)
    if jit:  # beside lazygrad's jitted step: the forward and loss under torch.compile
      compiled = torch.compile(loss_of) if COMPILE else None
      fns = with_compiled(fns, lambda: tstep(compiled))
  out = rates(1, compare(fns, max(2, runs // 2)))
  return [("gpt_train_step" if jit else "gpt_eager_step", "steps/s", out, bool(np.isfinite(step(lx, ly).item())))]


def lstm_step(hidden: int = 256, layers: int = 2):
  """The bench's LSTM (batch first), a linear head to one output, MSE and Adam 1e-3, seeded: (its parameters, the
  jitted train step(x, y) -> loss)."""
  import lazygrad.nn as nn
  lg.manual_seed(0)
  lstm, head = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True), nn.Linear(hidden, 1)
  params = [*lstm.parameters(), *head.parameters()]
  opt = lg.optim.Adam(params, lr=1e-3)

  @lg.jit
  def step(xb, yb):
    loss = ((head(lstm(xb)[0]) - yb) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
  return params, step


def lstm_train_step(runs, batch=32, steps=100, hidden=256, layers=2, torch_device: str = "cpu"):
  """nn.LSTM, 2 layers of 256, batch 32, 100 time steps of 256 features, a linear head, MSE, Adam: forward through
  time, backward through time and the update, in steps/s (jitted), beside torch's nn.LSTM from the same weights."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, steps, hidden), dtype=np.float32)
  y = rng.standard_normal((batch, steps, 1), dtype=np.float32)
  params, step = lstm_step(hidden, layers)
  weights = [p.numpy() for p in params]
  lx, ly = lg.Tensor(x), lg.Tensor(y)
  first = step(lx, ly).item()
  fns = {"lazygrad": lambda: step(lx, ly).realize()}
  ok = bool(np.isfinite(first))
  if torch is not None:
    dev = torch.device(torch_device)
    tlstm = torch.nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True).to(dev)
    thead = torch.nn.Linear(hidden, 1).to(dev)
    tparams = [*tlstm.parameters(), *thead.parameters()]
    with torch.no_grad():
      for p, w in zip(tparams, weights): p.copy_(torch.from_numpy(w))
    topt = torch.optim.Adam(tparams, lr=1e-3)
    tx, ty = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

    def tstep():
      loss = ((thead(tlstm(tx)[0]) - ty) ** 2).mean()
      topt.zero_grad(); loss.backward(); topt.step()
      return loss
    ok = ok and abs(tstep().item() - first) < 1e-4 * max(1.0, abs(first))  # the first step's loss, same weights
    fns["torch"] = (tstep, torch.cuda.synchronize if dev.type == "cuda" else None)
  out = rates(1, compare(fns, max(2, runs // 2)))
  return [("lstm_train_step", "steps/s", out, ok)]


def generate(runs, tokens=100, torch_device: str = "cpu"):
  """The bench GPT (vocab 256, context 128, 4 layers, 4 heads, width 128) generating greedily at batch 1 with a KV
  cache after a 16-token prompt: tokens/s over whole generate() calls (the prompt included). torch eager runs the same
  model from the same weights with a cache written the same way; both must pick the same tokens."""
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
  from gpt import GPT
  lg.manual_seed(0)
  model = GPT(256, 128, 4, 4, 128)
  prompt = np.random.default_rng(0).integers(0, 256, 16)
  got = model.generate(prompt, tokens, temperature=0)
  fns, same = {"lazygrad": lambda: model.generate(prompt, tokens, temperature=0)}, True
  if torch is not None:
    dev = torch.device(torch_device)
    tmodel = torch_gpt(model).to(dev)
    caches = [(torch.zeros(1, 4, 128, 32, device=dev), torch.zeros(1, 4, 128, 32, device=dev)) for _ in range(4)]

    @torch.no_grad()
    def tgenerate():
      token, picked = tmodel(torch.from_numpy(prompt)[None].to(dev), caches, 0)[:, -1].argmax(-1, keepdim=True), []
      for pos in range(len(prompt), len(prompt) + tokens - 1):
        picked.append(token)
        token = tmodel(token, caches, pos)[:, -1].argmax(-1, keepdim=True)
      return [int(t) for t in picked + [token]]
    fns["torch"] = tgenerate
    same = list(got[len(prompt):]) == tgenerate()
  out = rates(tokens, compare(fns, runs))
  return [("generate", "tokens/s", out, same)]


def torch_gpt(model):
  """examples/gpt.py's GPT in torch, with the lazygrad model's weights; forward(idx, caches, pos) writes the caches by
  slice assignment and reads them back by slicing, as examples/gpt.py does."""
  F = torch.nn.functional

  class Block(torch.nn.Module):
    def __init__(self, width, heads):
      super().__init__()
      self.heads = heads
      self.ln1, self.ln2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
      self.attn = torch.nn.Module()
      self.attn.qkv, self.attn.proj = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
      self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width))

    def forward(self, x, cache, pos):
      b, t, c = x.shape
      q, k, v = (y.reshape(b, t, self.heads, c // self.heads).transpose(1, 2) for y in self.attn.qkv(self.ln1(x)).split(c, 2))
      cache[0][:, :, pos:pos + t], cache[1][:, :, pos:pos + t] = k, v
      y = F.scaled_dot_product_attention(q, cache[0][:, :, :pos + t], cache[1][:, :, :pos + t], is_causal=t > 1)
      x = x + self.attn.proj(y.transpose(1, 2).reshape(b, t, c))
      return x + self.mlp(self.ln2(x))

  class GPT(torch.nn.Module):
    def __init__(self, vocab, context, layers, heads, width):
      super().__init__()
      self.tokens, self.positions = torch.nn.Embedding(vocab, width), torch.nn.Embedding(context, width)
      self.blocks = torch.nn.ModuleList([Block(width, heads) for _ in range(layers)])
      self.ln, self.head = torch.nn.LayerNorm(width), torch.nn.Linear(width, vocab)

    def forward(self, idx, caches, pos):
      x = self.tokens(idx) + self.positions(torch.arange(pos, pos + idx.shape[1], device=idx.device))
      for block, cache in zip(self.blocks, caches): x = block(x, cache, pos)
      return self.head(self.ln(x))
  vocab, width = model.head.weight.shape
  tmodel = GPT(vocab, model.context, len(model.blocks), model.blocks[0].attn.heads, width)
  tmodel.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in model.state_dict().items()})
  return tmodel.eval()


FIRST_CALL = """
import time; start = time.perf_counter()
import numpy as np, lazygrad as lg
x = lg.Tensor(np.ones(2**24, np.float32)); b = lg.Tensor(np.ones(2**24, np.float32))
((x * 1.5 + b).relu() * 0.5).exp().sub(x).realize(); lg.synchronize()
print(time.perf_counter() - start)
"""


def first_call(runs):
  """Wall time of a fresh process's first ew_chain (import included), with an empty and with a warm kernel cache, and
  `later`: once the program's PoCL binary is filed (the second run asks a helper process for it, see
  opencl.BinaryMaker), as a program's runs find it from then on."""
  # the fresh process should not compete with this one's leftovers: the memory its allocator keeps, and the worker
  # threads NumPy's and PyTorch's thread pools leave spinning for a while after their last call
  gc.collect()
  lg.empty_cache()
  time.sleep(1)
  with tempfile.TemporaryDirectory() as cache:
    # both kernel caches start empty, lazygrad's binaries and PoCL's (which keeps the machine code it generates for
    # each binary's work-group size): cold is a first run on a fresh machine, warm a user's second run
    env = {**os.environ, "LAZYGRAD_CACHE_DIR": cache, "POCL_CACHE_DIR": os.path.join(cache, "pocl")}
    env.pop("POCL_KERNEL_CACHE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install keeps compiled bytecode: import as fast as theirs
    run = lambda: float(subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True,
                                       check=True).stdout.strip().splitlines()[-1])
    cold = run()
    warm = statistics.median(run() for _ in range(max(1, min(runs, 3))))
    claims, deadline = os.path.join(cache, "opencl-binary-claims"), time.time() + 60
    while os.path.isdir(claims) and os.listdir(claims) and time.time() < deadline: time.sleep(0.2)  # lowest priority
    later = statistics.median(run() for _ in range(max(1, min(runs, 3))))
  return [("first_call cold", "s", {"lazygrad": cold}, True), ("first_call warm", "s", {"lazygrad": warm}, True),
          ("first_call later", "s", {"lazygrad": later}, True)]


FIRST_STEP_LAZYGRAD = """
import os, sys, time
sys.path[:0] = [sys.argv[2], os.path.join(sys.argv[2], "examples")]
import numpy as np, lazygrad as lg, lazygrad.nn as nn, lazygrad.nn.functional as F
rng = np.random.default_rng(0)
if sys.argv[1] == "mlp":
  model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
  opt = lg.optim.Adam(model.parameters(), lr=1e-3)
  x, y = lg.Tensor(rng.standard_normal((256, 784), dtype=np.float32)), lg.Tensor(rng.integers(0, 10, 256))
  loss_fn = lambda x, y: F.cross_entropy(model(x), y)
else:
  from gpt import GPT
  model = GPT(256, 128, 4, 4, 128)
  opt = lg.optim.AdamW(model.parameters(), lr=1e-3)
  x, y = lg.Tensor(rng.integers(0, 256, (16, 128))), lg.Tensor(rng.integers(0, 256, (16, 128)))
  loss_fn = lambda x, y: F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
start = time.perf_counter()
loss = loss_fn(x, y)
opt.zero_grad(); loss.backward(); opt.step()
value = loss.item(); lg.synchronize()  # the updates' kernels have run too
print(time.perf_counter() - start, lg.compile_count(), value)
"""

FIRST_STEP_TORCH = """
import os, sys, time
import numpy as np, torch
torch.set_num_threads(os.cpu_count() or 1)
F, compiled = torch.nn.functional, sys.argv[2] == "compile"
rng = np.random.default_rng(0)
if sys.argv[1] == "mlp":
  model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 10))
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)
  x, y = torch.from_numpy(rng.standard_normal((256, 784), dtype=np.float32)), torch.from_numpy(rng.integers(0, 10, 256))
  forward = torch.compile(model) if compiled else model
  loss_fn = lambda x, y: F.cross_entropy(forward(x), y)
else:
  torch.manual_seed(0)
  layer = lambda: torch.nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, activation="gelu", batch_first=True,
                                                   norm_first=True)
  tok, pos = torch.nn.Embedding(256, 128), torch.nn.Embedding(128, 128)
  blocks, head = torch.nn.ModuleList([layer() for _ in range(4)]), torch.nn.Linear(128, 256)
  opt = torch.optim.AdamW([p for m in (tok, pos, blocks, head) for p in m.parameters()], lr=1e-3)
  x, y = torch.from_numpy(rng.integers(0, 256, (16, 128))), torch.from_numpy(rng.integers(0, 256, (16, 128)))
  positions, mask = torch.arange(128), torch.nn.Transformer.generate_square_subsequent_mask(128)

  def loss_fn(x, y):
    h = tok(x) + pos(positions)
    for b in blocks: h = b(h, src_mask=mask, is_causal=True)
    return F.cross_entropy(head(h).reshape(-1, 256), y.reshape(-1))
  if compiled: loss_fn = torch.compile(loss_fn)  # AOTAutograd compiles the backward at the first backward()
start = time.perf_counter()
loss = loss_fn(x, y)
opt.zero_grad(); loss.backward(); opt.step()
loss.item()
print(time.perf_counter() - start)
"""


def cold_child(script: str, *args: str) -> list[float]:
  """Runs script in a fresh Python process with every compile cache empty; the numbers on its last line of output."""
  with tempfile.TemporaryDirectory() as cache:
    env = {**os.environ, "LAZYGRAD_CACHE_DIR": cache, "POCL_CACHE_DIR": os.path.join(cache, "pocl"),
           "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor"), "TRITON_CACHE_DIR": os.path.join(cache, "triton")}
    env.pop("POCL_KERNEL_CACHE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's install keeps compiled bytecode, as in first_call
    try:
      done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as e:  # one line for the table: the child's last words
      tail = " | ".join(line.strip() for line in e.stderr.strip().splitlines()[-3:])
      raise RuntimeError(f"child {' '.join(args)} exited {e.returncode}: {tail[-400:]}") from None
  return [float(v) for v in done.stdout.strip().splitlines()[-1].split()]


def first_step_cold(runs):
  """Wall time of the first training step (forward, loss, backward, optimizer step, loss.item()) of the bench MLP
  (Adam, batch 256) and the bench GPT (AdamW, batch 16 of 128 tokens) in a fresh process whose compile caches are
  empty: what a user waits for before training starts. Eager lazygrad (no jit) beside torch eager and torch.compile
  (inductor compiling from scratch); imports and model building are not timed. One run each: a second would be warm."""
  gc.collect()  # as in first_call: the children should not compete with this process's memory and threads
  lg.empty_cache()
  time.sleep(1)
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  rows, kernels = [], []
  for model in ("mlp", "gpt"):
    seconds, built, loss = cold_child(FIRST_STEP_LAZYGRAD, model, root)
    kernels.append(f"{int(built)} for the {model}")
    out = {"lazygrad": seconds}
    if torch is not None:
      out["torch"] = cold_child(FIRST_STEP_TORCH, model, "eager")[0]
      out["torch.compile"] = cold_child(FIRST_STEP_TORCH, model, "compile")[0]
    rows.append((f"first_step_cold {model}", "s", out, bool(np.isfinite(loss))))
  print(f"first_step_cold: lazygrad built {', '.join(kernels)} (kernels compiled in its first step)")
  return rows


WORKLOADS = {"ew_chain": ew_chain, "reduce_sum": reduce_sum, "softmax": softmax, "matmul": matmul, "conv2d": conv2d,
             "mlp_train_step": mlp_train_step, "mlp_eager_step": lambda runs: mlp_train_step(runs, jit=False),
             "gpt_train_step": gpt_train_step, "gpt_eager_step": lambda runs: gpt_train_step(runs, jit=False),
             "lstm_train_step": lstm_train_step, "generate": generate,
             "onnx_resnet50": onnx_resnet50, "first_call": first_call, "first_step_cold": first_step_cold}


def main():
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--json", help="write the figures to this file")
  ap.add_argument("--only", help="comma-separated workload names")
  ap.add_argument("--runs", type=int, default=5)
  ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the steady-state rows")
  args = ap.parse_args()
  global COMPILE
  COMPILE = not args.no_compile
  names = args.only.split(",") if args.only else list(WORKLOADS)
  rows = []
  print(f"lazygrad on {lg.Tensor([0]).device}; {args.runs} timed runs after a warm-up; higher is better except rows in"
        " s (first_call, first_step_cold), where lower is")
  print(f"{'workload':<20}{'unit':<9}{'lazygrad':>10}{'numpy':>10}{'torch':>10}{'lg/numpy':>10}{'lg/torch':>10}  check")
  fmt = lambda v: f"{v:10.3g}" if v is not None else f"{'':>10}"
  ratio = lambda a, b: f"{a / b:10.2f}" if a is not None and b else f"{'':>10}"
  for name in names:
    BOUNDS.clear()
    try: results = WORKLOADS[name](args.runs)
    except Exception as e:  # one broken workload must not hide the others
      print(f"{name:<20}failed: {type(e).__name__}: {e}")
      continue
    for workload, unit, figs, ok in results:
      lgv, npv, tv = figs.get("lazygrad"), figs.get("numpy"), figs.get("torch")
      print(f"{workload:<20}{unit:<9}{fmt(lgv)}{fmt(npv)}{fmt(tv)}{ratio(lgv, npv)}{ratio(lgv, tv)}  {'ok' if ok else 'WRONG'}")
      if "torch.compile" in figs:  # a line of its own, its figure in the torch column
        tc = figs["torch.compile"]
        print(f"{'  (torch.compile)':<20}{unit:<9}{fmt(None)}{fmt(None)}{fmt(tc)}{fmt(None)}{ratio(lgv, tc)}")
      if "onnxruntime" in figs:  # the same, its figure in the torch column
        ort_v = figs["onnxruntime"]
        print(f"{'  (onnxruntime)':<20}{unit:<9}{fmt(None)}{fmt(None)}{fmt(ort_v)}{fmt(None)}{ratio(lgv, ort_v)}")
      rows.append({"workload": workload, "unit": unit, **figs, "correct": ok})
    for line in BOUNDS: print(f"  {line}")
  if args.json:
    with open(args.json, "w") as f: json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
