"""Fashion-MNIST with lazygrad: an MLP and a small CNN, trained with AdamW, evaluated, saved and plotted.

  python examples/mnist.py                     # both models, a few epochs each
  python examples/mnist.py --model mlp --epochs 1 --limit 10000 --out runs/example   # what `make example` runs
  python examples/mnist.py --device TRITON     # any backend; LAZYGRAD_DEVICE works too

The data are Zalando's IDX files: `apt-get install dataset-fashion-mnist` puts them where lazygrad looks, or point
LAZYGRAD_DATA (or --data) at a folder holding them.
"""
import argparse
import os
import time
import numpy as np
from tqdm import tqdm
import lazygrad as lg
import lazygrad.nn as nn
import lazygrad.nn.functional as F
from lazygrad.data import DataLoader
from lazygrad.data.datasets import FashionMNIST


class MLP(nn.Module):
  def __init__(self):
    super().__init__()
    self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))

  def forward(self, x): return self.net(x)


class CNN(nn.Module):
  def __init__(self):
    super().__init__()
    self.features = nn.Sequential(
      nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 x 14 x 14
      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 7 x 7
    )
    self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

  def forward(self, x): return self.classifier(self.features(x))


def evaluate(model, loader) -> float:
  model.eval()
  correct = total = 0
  with lg.no_grad():
    for images, labels in loader:
      correct += int((model(images).argmax(-1) == labels).sum().item())
      total += labels.shape[0]
  model.train()
  return correct / total


def train(name, model, train_loader, test_loader, epochs, lr):
  opt = lg.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
  # one cycle: the learning rate warms up to `lr`, then anneals to almost 0 by the last step
  schedule = lg.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(train_loader))

  @lg.jit
  def step(images, labels):
    loss = F.cross_entropy(model(images), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss

  history = []
  for epoch in range(1, epochs + 1):
    start, losses = time.perf_counter(), []
    bar = tqdm(train_loader, desc=f"{name} epoch {epoch}/{epochs}", unit="batch", leave=False)
    for images, labels in bar:
      loss = step(images, labels)
      if epoch == 1 and not losses:  # the wait before training starts: building this model's kernels
        loss.item()
        tqdm.write(f"{name}: first step {time.perf_counter() - start:.1f} s ({lg.compile_count()} kernels built so far;"
                   " the disk cache keeps them for the next run)")
      schedule.step()
      losses.append(loss)
      if len(losses) % 20 == 0: bar.set_postfix(loss=f"{loss.item():.3f}")
    train_loss = float(np.mean([l.item() for l in losses]))
    elapsed = time.perf_counter() - start
    accuracy = evaluate(model, test_loader)
    history.append((train_loss, accuracy))
    print(f"{name} epoch {epoch}: loss {train_loss:.4f}, test accuracy {accuracy:.2%}, {elapsed:.1f} s")
  return history


def plot(histories, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
  for name, history in histories.items():
    epochs = range(1, len(history) + 1)
    ax_loss.plot(epochs, [h[0] for h in history], marker="o", label=name)
    ax_acc.plot(epochs, [h[1] for h in history], marker="o", label=name)
  ax_loss.set(title="training loss", xlabel="epoch"); ax_acc.set(title="test accuracy", xlabel="epoch")
  ax_loss.legend(); ax_acc.legend()
  fig.tight_layout()
  fig.savefig(path)


def main():
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
  ap.add_argument("--epochs", type=int, default=6)
  ap.add_argument("--batch-size", type=int, default=64)
  ap.add_argument("--limit", type=int, default=0, help="train on the first N images only (0: all 60,000)")
  ap.add_argument("--device", default=None, help="OPENCL, OPENCL:1, TRITON (default: LAZYGRAD_DEVICE or OPENCL)")
  ap.add_argument("--data", default=None, help="folder of the IDX files (default: LAZYGRAD_DATA, then Debian's)")
  ap.add_argument("--out", default="runs/mnist", help="where weights and the plot go")
  args = ap.parse_args()
  if args.device: os.environ["LAZYGRAD_DEVICE"] = args.device
  lg.manual_seed(0)

  train_set, test_set = FashionMNIST(args.data, train=True), FashionMNIST(args.data, train=False)
  if args.limit: train_set = _first(train_set, args.limit)
  train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
  test_loader = DataLoader(test_set, batch_size=1000)
  print(f"device {lg.Tensor([0]).device}; {len(train_set)} training images, {len(test_set)} test images")

  os.makedirs(args.out, exist_ok=True)
  histories = {}
  for name in (["mlp", "cnn"] if args.model == "both" else [args.model]):
    model = MLP() if name == "mlp" else CNN()
    histories[name] = train(name, model, train_loader, test_loader, args.epochs, lr=1e-3 if name == "mlp" else 2e-3)
    lg.save(model.state_dict(), os.path.join(args.out, f"{name}.safetensors"))
  plot(histories, os.path.join(args.out, "history.png"))
  print(f"saved weights and {os.path.join(args.out, 'history.png')}")


class _first(lg.data.Dataset):
  """The first n items of a dataset."""
  def __init__(self, dataset, n): self.dataset, self.n = dataset, min(n, len(dataset))
  def __len__(self): return self.n
  def __getitem__(self, i):
    if not 0 <= i < self.n: raise IndexError(i)
    return self.dataset[i]
  def get_batch(self, indices): return self.dataset.get_batch(indices)


if __name__ == "__main__":
  main()
