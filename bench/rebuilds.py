"""Kernels built when numbers change: each row runs a first call, then 10 more with other numbers (Python scalars,
slice offsets and lengths, batch sizes), and counts the kernels built from source for those 10, with their wall time
beside torch eager's for the same calls. Then greedy decoding with a KV cache, a GPT's first training step, a GPT's
and the bench's LSTM's train steps at new sequence lengths. Every row starts from an empty kernel cache.
`python bench/rebuilds.py [--tokens N] [--gpt-lengths 64,56,48,40,32] [--lengths 100,90,80,70]`."""
from __future__ import annotations
import argparse
import os
import sys
import tempfile
import time
import numpy as np

os.environ["LAZYGRAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="lazygrad-rebuilds-")  # before lazygrad reads it
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
import lazygrad as lg  # noqa: E402
import lazygrad.nn as nn  # noqa: E402
import lazygrad.nn.functional as F  # noqa: E402

try: import torch
except ImportError: torch = None


def builds() -> int:
  return lg.compile_count()


if not hasattr(lg, "compile_count"):  # an older lazygrad, for a before-and-after: count the builds it reports
  from lazygrad import device as _devices
  _built, _compiled = [0], _devices.compile_progress.compiled
  def _count(seconds):
    _built[0] += 1
    _compiled(seconds)
  _devices.compile_progress.compiled = _count
  def builds() -> int: return _built[0]  # noqa: F811


def row(name: str, values, run_lg, run_torch, check):
  """First call with values[0]; then builds and seconds for values[1:], each result checked."""
  run_lg(values[0]).numpy()
  before, start = builds(), time.perf_counter()
  ok = True
  for v in values[1:]: ok &= check(v, run_lg(v).numpy())
  seconds = time.perf_counter() - start
  torch_seconds = None
  if torch is not None:
    run_torch(values[0])
    start = time.perf_counter()
    for v in values[1:]: run_torch(v)
    torch_seconds = time.perf_counter() - start
  ts = f"{torch_seconds * 1e3:8.1f} ms" if torch_seconds is not None else ""
  print(f"{name:<44}{builds() - before:>7}{seconds:>9.2f} s  {ts}  {'ok' if ok else 'WRONG'}")


def close(a, b) -> bool: return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5))


class Block(nn.Module):
  """A pre-norm transformer block whose attention can append to a preallocated KV cache, as a torch user writes it."""

  def __init__(self, width: int, heads: int):
    super().__init__()
    self.heads = heads
    self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
    self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
    self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

  def forward(self, x, cache, pos: int):
    B, T, C = x.shape
    q, k, v = self.qkv(self.ln1(x)).reshape(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
    k_cache, v_cache = cache
    k_cache[:, :, pos:pos + T] = k
    v_cache[:, :, pos:pos + T] = v
    att = F.scaled_dot_product_attention(q, k_cache[:, :, :pos + T], v_cache[:, :, :pos + T], is_causal=T > 1)
    x = x + self.proj(att.transpose(1, 2).reshape(B, T, C))
    return x + self.out(F.gelu(self.fc(self.ln2(x))))


def decode(tokens: int):
  """Greedy decoding, one token at a time, 4 layers, width 128, 4 heads, vocabulary 256: kernels built per token."""
  lg.manual_seed(0)
  width, heads, layers, vocab, context = 128, 4, 4, 256, tokens + 8
  emb, pos_emb = nn.Embedding(vocab, width), nn.Embedding(context, width)
  blocks = [Block(width, heads) for _ in range(layers)]
  head = nn.Linear(width, vocab)
  caches = [(lg.zeros(1, heads, context, width // heads), lg.zeros(1, heads, context, width // heads)) for _ in blocks]
  token, out, per_token = 1, [], []
  start = time.perf_counter()
  for pos in range(tokens):
    before = builds()
    x = emb(lg.Tensor([[token]])) + pos_emb(lg.Tensor([[pos]]))
    for b, cache in zip(blocks, caches): x = b(x, cache, pos)
    token = int(head(x)[0, -1].argmax().item())
    out.append(token)
    per_token.append(builds() - before)
    if pos == 4: start = time.perf_counter()
  rate = (tokens - 5) / (time.perf_counter() - start)
  print(f"{'greedy decoding, KV cache, ' + str(tokens) + ' tokens':<44}{sum(per_token[5:]):>7} built after the 5th token"
        f" ({sum(per_token[:5])} for the first 5); {rate:.1f} tokens/s after the 5th")
  return out


def gpt_first_step():
  """The bench GPT's first training step (vocab 256, context 128, 4 layers, 4 heads, width 128, batch 16)."""
  from gpt import GPT
  rng = np.random.default_rng(0)
  x, y = lg.Tensor(rng.integers(0, 256, (16, 128))), lg.Tensor(rng.integers(0, 256, (16, 128)))
  model = GPT(256, 128, 4, 4, 128)
  opt = lg.optim.AdamW(model.parameters(), lr=1e-3)
  before, launched, start = builds(), lg.kernel_count(), time.perf_counter()
  loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
  opt.zero_grad(); loss.backward(); opt.step()
  loss.item()
  print(f"{'GPT first training step':<44}{builds() - before:>7}{time.perf_counter() - start:>9.2f} s  "
        f"{lg.kernel_count() - launched} launches")


def gpt_lengths(lengths: list[int]):
  """A 2-layer GPT (width 128, 4 heads, batch 8, AdamW) trained eagerly for three steps at each sequence length: the
  kernels built per length (its attention's rows, the cross-entropy's and the layer norms' change with it)."""
  from gpt import GPT
  lg.manual_seed(0)
  model = GPT(256, max(lengths), 2, 4, 128)
  opt = lg.optim.AdamW(model.parameters(), lr=1e-3)
  rng = np.random.default_rng(0)
  for steps in lengths:
    x, y = lg.Tensor(rng.integers(0, 256, (8, steps))), lg.Tensor(rng.integers(0, 256, (8, steps)))
    before, start, ok = builds(), time.perf_counter(), True
    for _ in range(3):
      loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
      opt.zero_grad(); loss.backward(); opt.step()
      ok &= bool(np.isfinite(loss.item()))
    print(f"{'GPT train step x3, ' + str(steps) + ' tokens':<44}{builds() - before:>7}"
          f"{time.perf_counter() - start:>9.2f} s  {'':11}  {'ok' if ok else 'WRONG'}")


def lstm_lengths(lengths: list[int]):
  """The bench's jitted LSTM train step (2 layers of 256, batch 32, a linear head, MSE, Adam), three steps at each
  sequence length: the kernels built and the seconds taken per length, promotions in the later steps included."""
  from bench import lstm_step  # bench/bench.py, beside this script
  hidden, batch = 256, 32
  _, step = lstm_step(hidden, 2)
  rng = np.random.default_rng(0)
  for steps in lengths:
    x = lg.Tensor(rng.standard_normal((batch, steps, hidden), dtype=np.float32))
    y = lg.Tensor(rng.standard_normal((batch, steps, 1), dtype=np.float32))
    before, start = builds(), time.perf_counter()
    ok = all(np.isfinite(step(x, y).item()) for _ in range(3))
    print(f"{'LSTM train step x3, ' + str(steps) + ' time steps':<44}{builds() - before:>7}"
          f"{time.perf_counter() - start:>9.2f} s  {'':11}  {'ok' if ok else 'WRONG'}")


def main():
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--tokens", type=int, default=43)
  ap.add_argument("--lengths", default="100,90,80,70", help="the LSTM's sequence lengths, in order ('' skips it)")
  ap.add_argument("--gpt-lengths", default="64,56,48,40,32", help="the GPT's sequence lengths, in order ('' skips it)")
  args = ap.parse_args()
  print(f"lazygrad on {lg.Tensor([0]).device}; kernels built for the 10 calls after a first one, their time, torch eager's")
  print(f"{'what':<44}{'built':>7}{'time':>9}    {'torch':>8}")
  rng = np.random.default_rng(0)
  xn = rng.random(4096, dtype=np.float32) + 0.5
  x = lg.Tensor(xn)
  tx = torch.from_numpy(xn) if torch is not None else None
  scalars = [0.5 + 0.1 * i for i in range(11) if i != 5]  # x * 1.0 is x: no kernel of this shape
  scalars.append(2.25)
  row("(x * s).sum(), 10 Python floats", scalars, lambda s: (x * s).sum(), lambda s: (tx * s).sum(),
      lambda s, got: close(got, (xn.astype(np.float64) * s).sum()))
  row("x[i:i+8].sum(), i = 1..10", list(range(11)), lambda i: x[i:i + 8].sum(), lambda i: tx[i:i + 8].sum(),
      lambda i, got: close(got, xn[i:i + 8].sum()))
  row("x[:n].sum(), n = 2..11", list(range(1, 12)), lambda n: x[:n].sum(), lambda n: tx[:n].sum(),
      lambda n, got: close(got, xn[:n].sum()))
  lg.manual_seed(0)
  mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
  w1, b1, w2, b2 = (p.numpy() for p in mlp.parameters())
  batch = {b: rng.standard_normal((b, 784)).astype(np.float32) for b in range(1, 12)}
  tmlp = None
  if torch is not None:
    tmlp = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    with torch.no_grad():
      for p, v in zip(tmlp.parameters(), (w1, b1, w2, b2)): p.copy_(torch.from_numpy(v))
  row("2-layer MLP forward, batch sizes 2..11", list(range(1, 12)), lambda b: mlp(lg.Tensor(batch[b])),
      lambda b: tmlp(torch.from_numpy(batch[b])) if tmlp is not None else None,
      lambda b, got: close(got, np.maximum(batch[b] @ w1.T + b1, 0) @ w2.T + b2))
  decode(args.tokens)
  gpt_first_step()
  if args.gpt_lengths: gpt_lengths([int(t) for t in args.gpt_lengths.split(",")])
  if args.lengths: lstm_lengths([int(t) for t in args.lengths.split(",")])


if __name__ == "__main__":
  main()
