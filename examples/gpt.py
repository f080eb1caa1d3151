"""A character-level GPT, trained with lazygrad on Python's own standard library source (or any text file).

  python examples/gpt.py                       # a small model, a few hundred steps, then a sample
  python examples/gpt.py --text book.txt --steps 2000 --layers 6 --width 256
  python examples/gpt.py --device TRITON       # LAZYGRAD_DEVICE works too

Everything a GPT needs is here in a page: token and position embeddings, causal self-attention, LayerNorm, a GELU
MLP, AdamW with a cosine learning-rate schedule, and sampling.
"""
import argparse
import glob
import math
import os
import sysconfig
import time
import numpy as np
import lazygrad as lg
import lazygrad.nn as nn
import lazygrad.nn.functional as F


class SelfAttention(nn.Module):
  def __init__(self, width, heads):
    super().__init__()
    self.heads = heads
    self.qkv = nn.Linear(width, 3 * width)
    self.proj = nn.Linear(width, width)

  def forward(self, x, cache=None, pos=0):
    b, t, c = x.shape
    q, k, v = self.qkv(x).split(c, dim=2)
    # (b, t, c) -> (b, heads, t, c / heads)
    q, k, v = (y.reshape(b, t, self.heads, c // self.heads).transpose(1, 2) for y in (q, k, v))
    if cache is not None:  # generation: keys and values of earlier positions are kept, this call's written after them
      k_cache, v_cache = cache
      k_cache[:, :, pos:pos + t] = k
      v_cache[:, :, pos:pos + t] = v
      k, v = k_cache[:, :, :pos + t], v_cache[:, :, :pos + t]
    # a single new position sees every cached one; a prompt (written at position 0) is causal
    y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
    return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
  def __init__(self, width, heads):
    super().__init__()
    self.ln1, self.attn = nn.LayerNorm(width), SelfAttention(width, heads)
    self.ln2 = nn.LayerNorm(width)
    self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

  def forward(self, x, cache=None, pos=0):
    x = x + self.attn(self.ln1(x), cache, pos)
    return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
  def __init__(self, vocab, context, layers, heads, width):
    super().__init__()
    self.context = context
    self.tokens, self.positions = nn.Embedding(vocab, width), nn.Embedding(context, width)
    self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
    self.ln, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)

  def forward(self, idx, caches=None, pos=0):
    """Logits for each position of idx; with `caches` (see new_caches), idx continues the sequence at `pos`."""
    t = idx.shape[1]
    x = self.tokens(idx) + self.positions(lg.arange(pos, pos + t))
    for n, block in enumerate(self.blocks): x = block(x, caches[n] if caches else None, pos)
    return self.head(self.ln(x))

  def new_caches(self, batch=1):
    """A preallocated key and value cache per block: (batch, heads, context, width / heads) each."""
    attn = self.blocks[0].attn
    shape = (batch, attn.heads, self.context, self.tokens.weight.shape[1] // attn.heads)
    return [(lg.zeros(*shape), lg.zeros(*shape)) for _ in self.blocks]

  def generate(self, idx: np.ndarray, n: int, temperature=0.8, rng=None) -> np.ndarray:
    """idx continued by n tokens, sampled at `temperature` (0: greedy). The prompt runs once, filling the KV cache;
    each new token is then one step at its position. Steps are jitted: after its first few positions a step replays,
    building and scheduling nothing (a prompt of a length seen before replays too). The next token is picked on the
    device (the Gumbel-max trick: the argmax of the logits plus noise passed in), so nothing waits for a token's
    value until the end."""
    rng = rng or np.random.default_rng(0)
    if not hasattr(self, "_decoder"):  # kept for the next call: its cache, and the jit's recordings
      caches = self.new_caches()
      step = lg.jit(lambda token, noise, pos, temperature: pick_token(self(token, caches, pos)[:, -1], noise, temperature))
      self._decoder = caches, step
    caches, step = self._decoder

    def gumbel(): return lg.Tensor(rng.gumbel(size=(1, self.head.weight.shape[0])).astype(np.float32))
    out, picked, keep = [int(t) for t in idx], [], self.context
    with lg.no_grad():
      while len(out) + len(picked) < len(idx) + n:
        out += [t.item() for t in picked]
        picked, window = [], out[-keep:]
        keep = self.context // 2  # a full context starts again from its last half: the model knows no later position
        token = step(lg.Tensor(np.array([window])), gumbel(), 0, float(temperature))  # the prompt: a jitted step too
        picked.append(token)
        for pos in range(len(window), min(self.context, len(window) + len(idx) + n - len(out) - 1)):
          token = step(token, gumbel(), pos, float(temperature))
          picked.append(token)
      out += [t.item() for t in picked]
    return np.array(out, dtype=np.int64)


def pick_token(logits, noise, temperature):
  """The next token, (batch, 1), from logits (batch, vocab): their argmax plus Gumbel noise at `temperature` (0: none)."""
  return (logits / temperature + noise if temperature else logits).argmax(-1, keepdim=True)


def load_corpus(path):
  """(its characters, the text as their indices): a UTF-8 file, or the first 40 modules of Python's standard library."""
  if path:
    with open(path, encoding="utf-8", errors="replace") as f: text = f.read()
  else:
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    text = "".join(open(f, encoding="utf-8", errors="replace").read() for f in files[:40])
  chars = sorted(set(text))
  index = {ch: i for i, ch in enumerate(chars)}
  return chars, np.array([index[ch] for ch in text], dtype=np.int64)


def random_windows(data, length, batch, rng):
  """`batch` windows of `length` characters at random places in data, and the same one character later (targets)."""
  starts = rng.integers(0, len(data) - length - 1, batch)
  x = np.stack([data[s:s + length] for s in starts])
  y = np.stack([data[s + 1:s + length + 1] for s in starts])
  return lg.Tensor(x), lg.Tensor(y)


def main():
  from tqdm import tqdm  # the examples' extra: the models import without it (the tests use them)
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--text", help="a UTF-8 text file to learn (default: the standard library's source)")
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--batch-size", type=int, default=16)
  ap.add_argument("--context", type=int, default=64)
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--heads", type=int, default=4)
  ap.add_argument("--width", type=int, default=64)
  ap.add_argument("--lr", type=float, default=3e-3)
  ap.add_argument("--device", default=None, help="OPENCL, OPENCL:1, TRITON (default: LAZYGRAD_DEVICE or OPENCL)")
  args = ap.parse_args()
  if args.device: os.environ["LAZYGRAD_DEVICE"] = args.device
  lg.manual_seed(0)
  rng = np.random.default_rng(0)

  chars, data = load_corpus(args.text)
  split = int(len(data) * 0.95)
  print(f"device {lg.Tensor([0]).device}; corpus {len(data):,} characters, vocabulary {len(chars)}")

  model = GPT(len(chars), args.context, args.layers, args.heads, args.width)
  print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
  opt = lg.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)
  schedule = lg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps, eta_min=args.lr / 10)

  # @lg.jit records the step's kernels on its first calls and then replays them with each new batch, skipping the
  # Python work of building and scheduling the graph (without it the step runs the same, about half as fast here)
  @lg.jit
  def train_step(x, y):
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    lg.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss

  start = time.perf_counter()
  print("the first steps compile the model's kernels (cached on disk for the next run)")
  bar = tqdm(range(1, args.steps + 1), desc="training", unit="step")
  for step in bar:
    loss = train_step(*random_windows(data[:split], args.context, args.batch_size, rng))
    schedule.step()
    if step % 25 == 0 or step == args.steps: bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{schedule.get_last_lr()[0]:.2e}")
  elapsed = time.perf_counter() - start

  with lg.no_grad():
    x, y = random_windows(data[split:], args.context, args.batch_size, rng)
    val = F.cross_entropy(model(x).reshape(-1, len(chars)), y.reshape(-1)).item()
  print(f"{args.steps} steps in {elapsed:.1f} s ({args.steps / elapsed:.2f} steps/s); final training loss "
        f"{loss.item():.3f}, validation loss {val:.3f} (uniform guessing: {math.log(len(chars)):.3f})")
  prompt = np.array([chars.index(ch) for ch in "def "], dtype=np.int64)
  sample = model.generate(prompt, 200, rng=rng)
  print("--- sample ---\n" + "".join(chars[i] for i in sample))


if __name__ == "__main__":
  main()
