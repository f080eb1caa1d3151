"""Generation with a KV cache (examples/gpt.py): the tokens torch picks from the same weights, no kernel built once the
first positions have run, and sampling across context restarts."""
import os
import sys
import numpy as np
import torch
import lazygrad as lg
from lazygrad import device
from tests.helpers import forget_kernels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from gpt import GPT  # noqa: E402
from bench import torch_gpt  # noqa: E402


def test_greedy_decoding_picks_torchs_tokens():
  lg.manual_seed(0)
  model = GPT(32, 24, 2, 2, 16)
  prompt = np.array([3, 1, 4, 1, 5])
  got = [model.generate(prompt, 16, temperature=0) for _ in range(3)]  # recorded, then replayed
  tmodel = torch_gpt(model)
  caches = [(torch.zeros(1, 2, 24, 8), torch.zeros(1, 2, 24, 8)) for _ in range(2)]
  want = list(prompt)
  with torch.no_grad():
    for pos in range(len(prompt) - 1, len(prompt) + 15):
      idx = torch.tensor([want]) if pos == len(prompt) - 1 else torch.tensor([[want[-1]]])
      want.append(int(tmodel(idx, caches, 0 if pos == len(prompt) - 1 else pos)[0, -1].argmax()))
  assert all(list(g) == want for g in got)


def test_no_kernel_is_built_after_the_fifth_token(monkeypatch):
  lg.manual_seed(1)
  model = GPT(32, 24, 2, 2, 16)
  forget_kernels(monkeypatch, device.get(lg.Tensor([0]).device))
  built, last = [], lg.compile_count()

  def count(*args):  # the decoding step, counting the kernels each token builds
    nonlocal last
    out = step(*args)
    built.append(lg.compile_count() - last)
    last = lg.compile_count()
    return out
  model.generate(np.array([3]), 1, temperature=0)
  caches, step = model._decoder
  model._decoder = caches, count
  model.generate(np.array([3, 1, 4]), 20, temperature=0)
  assert len(built) == 20 and sum(built[5:]) == 0, built


def test_sampling_starts_again_when_the_context_is_full():
  lg.manual_seed(0)
  model = GPT(32, 8, 1, 2, 16)
  out = model.generate(np.array([1, 2, 3]), 20, temperature=0.8, rng=np.random.default_rng(0))
  assert len(out) == 23 and list(out[:3]) == [1, 2, 3] and out.min() >= 0 and out.max() < 32
  greedy = model.generate(np.array([1, 2, 3]), 20, temperature=0)
  # past the context, each token is picked from the window the restart kept: the last half of it
  with lg.no_grad():
    seq, start = [1, 2, 3], 0
    while len(seq) < 23:
      if len(seq) - start > 8: start = len(seq) - 4
      seq.append(int(model(lg.Tensor(np.array([seq[start:]])))[0, -1].argmax().item()))
  assert list(greedy) == seq


def test_multihead_attention_over_a_preallocated_cache_replays_with_torchs_numbers():
  """nn.MultiheadAttention attending from each new position to a cache of the inputs so far, written by slice
  assignment and read as cache[:, :pos + 1], inside a jitted step: the numbers torch gives, and nothing built or run
  as Python once the first positions have run."""
  torch.manual_seed(0)
  tmha = torch.nn.MultiheadAttention(16, 4, batch_first=True)
  mha = lg.nn.MultiheadAttention(16, 4, batch_first=True)
  mha.load_state_dict({k: lg.Tensor(v.detach().numpy()) for k, v in tmha.state_dict().items()})
  xs = np.random.default_rng(3).standard_normal((12, 2, 1, 16)).astype(np.float32)
  cache, tcache, ran = lg.zeros(2, 12, 16), torch.zeros(2, 12, 16), []

  @lg.jit
  def step(x, pos):
    ran.append(pos)
    cache[:, pos:pos + 1] = x
    return mha(x, cache[:, :pos + 1], cache[:, :pos + 1], need_weights=False)[0]
  with lg.no_grad(), torch.no_grad():
    for pos, x in enumerate(xs):
      if pos == 5: built = lg.compile_count()
      tcache[:, pos:pos + 1] = torch.from_numpy(x)
      want = tmha(torch.from_numpy(x), tcache[:, :pos + 1], tcache[:, :pos + 1], need_weights=False)[0]
      np.testing.assert_allclose(step(lg.Tensor(x), pos).numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
  assert ran == [0, 1, 2, 3] and lg.compile_count() == built
