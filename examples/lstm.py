"""A character-level LSTM language model, trained with lazygrad on Python's own standard library source (or any text).

  python examples/lstm.py                      # 2 layers of 256, a few hundred steps, a loss plot, then a sample
  python examples/lstm.py --text book.txt --steps 2000 --hidden 512
  python examples/lstm.py --device TRITON      # LAZYGRAD_DEVICE works too

An embedding, a 2-layer nn.LSTM and a linear head, written as a PyTorch user writes them; the training step is
jitted, and sampling carries the LSTM's state from one character to the next.
"""
import argparse
import math
import os
import time
import numpy as np
import lazygrad as lg
import lazygrad.nn as nn
import lazygrad.nn.functional as F
from gpt import load_corpus, pick_token, random_windows


class CharLSTM(nn.Module):
  def __init__(self, vocab, embedding, hidden, layers, dropout=0.0):
    super().__init__()
    self.embed = nn.Embedding(vocab, embedding)
    self.lstm = nn.LSTM(embedding, hidden, num_layers=layers, batch_first=True, dropout=dropout)
    self.head = nn.Linear(hidden, vocab)

  def forward(self, idx, state=None):
    out, state = self.lstm(self.embed(idx), state)
    return self.head(out), state

  def sample(self, prompt: np.ndarray, n: int, temperature=0.8, rng=None) -> np.ndarray:
    """prompt continued by n characters: the prompt runs once, then each character is one jitted step that takes
    the previous one's state; characters are picked on the device (Gumbel-max) and read at the end."""
    rng = rng or np.random.default_rng(0)
    vocab = self.head.weight.shape[0]
    gumbel = lambda: lg.Tensor(rng.gumbel(size=(1, vocab)).astype(np.float32))

    @lg.jit
    def step(token, h, c, noise):
      logits, (h, c) = self(token, (h, c))
      return pick_token(logits[:, -1], noise, temperature), h, c
    with lg.no_grad():
      logits, (h, c) = self(lg.Tensor(prompt[None]))
      token, picked = pick_token(logits[:, -1], gumbel(), temperature), []
      for _ in range(n - 1):
        picked.append(token)
        token, h, c = step(token, h, c, gumbel())
      return np.concatenate([prompt, [t.item() for t in picked + [token]]])


def plot(losses, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot(range(1, len(losses) + 1), losses, linewidth=0.8)
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (nats per character)")
  ax.set_title("character-level LSTM")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def main():
  from tqdm import tqdm  # the examples' extra: the models import without it (the tests use them)
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--text", help="a UTF-8 text file to learn (default: the standard library's source)")
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--batch-size", type=int, default=32)
  ap.add_argument("--seq-len", type=int, default=64)
  ap.add_argument("--layers", type=int, default=2)
  ap.add_argument("--hidden", type=int, default=256)
  ap.add_argument("--embedding", type=int, default=64)
  ap.add_argument("--lr", type=float, default=3e-3)
  ap.add_argument("--out", default="runs/lstm", help="where the loss plot goes")
  ap.add_argument("--device", default=None, help="OPENCL, OPENCL:1, TRITON (default: LAZYGRAD_DEVICE or OPENCL)")
  args = ap.parse_args()
  if args.device: os.environ["LAZYGRAD_DEVICE"] = args.device
  lg.manual_seed(0)
  rng = np.random.default_rng(0)

  chars, data = load_corpus(args.text)
  split = int(len(data) * 0.95)
  print(f"device {lg.Tensor([0]).device}; corpus {len(data):,} characters, vocabulary {len(chars)}")

  model = CharLSTM(len(chars), args.embedding, args.hidden, args.layers)
  print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
  opt = lg.optim.Adam(model.parameters(), lr=args.lr)
  schedule = lg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps, eta_min=args.lr / 10)

  @lg.jit
  def train_step(x, y):
    logits, _ = model(x)
    loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss

  start, losses = time.perf_counter(), []
  print("the first steps compile the model's kernels (cached on disk for the next run)")
  bar = tqdm(range(1, args.steps + 1), desc="training", unit="step")
  for step in bar:
    losses.append(train_step(*random_windows(data[:split], args.seq_len, args.batch_size, rng)))
    schedule.step()
    if step % 25 == 0 or step == args.steps: bar.set_postfix(loss=f"{losses[-1].item():.3f}")
  losses = [loss.item() for loss in losses]  # read once at the end: the steps never waited for them
  elapsed = time.perf_counter() - start

  with lg.no_grad():
    x, y = random_windows(data[split:], args.seq_len, args.batch_size, rng)
    val = F.cross_entropy(model(x)[0].reshape(-1, len(chars)), y.reshape(-1)).item()
  print(f"{args.steps} steps in {elapsed:.1f} s ({args.steps / elapsed:.2f} steps/s); final training loss "
        f"{losses[-1]:.3f}, validation loss {val:.3f} (uniform guessing: {math.log(len(chars)):.3f})")
  os.makedirs(args.out, exist_ok=True)
  plot(losses, os.path.join(args.out, "loss.png"))
  print(f"saved {os.path.join(args.out, 'loss.png')}")
  prompt = np.array([chars.index(ch) for ch in "def "], dtype=np.int64)
  print("--- sample ---\n" + "".join(chars[i] for i in model.sample(prompt, 300, rng=rng)))


if __name__ == "__main__":
  main()
