"""lazygrad.jit: replayed calls give the same numbers as plain calls, launch the same kernels, and never replay wrong."""
import gc
import warnings
import numpy as np
import pytest
import lazygrad as lg


def make_params(seed=0, sizes=(8, 16, 4)):
  rng = np.random.default_rng(seed)
  i, h, o = sizes
  shapes = ((i, h), (h,), (h, o), (o,))
  return [lg.Tensor(rng.standard_normal(s).astype(np.float32) * 0.3, requires_grad=True) for s in shapes]


def sgd_step(params, x, y):
  w1, b1, w2, b2 = params
  loss = (((x @ w1 + b1).relu() @ w2 + b2 - y) ** 2).mean()
  loss.backward()
  with lg.no_grad():
    for p in params:
      p.assign(p - 0.05 * p.grad)
      p.grad = None
  return loss


def batches(n, seed=1, rows=5, sizes=(8, 16, 4)):
  rng = np.random.default_rng(seed)
  return [(lg.Tensor(rng.standard_normal((rows, sizes[0])).astype(np.float32)),
           lg.Tensor(rng.standard_normal((rows, sizes[2])).astype(np.float32))) for _ in range(n)]


# the second is big enough that OpenCL on a CPU copies matmuls' right operands to panels (of 16 and of 8 columns)
@pytest.mark.parametrize("rows, sizes", [(5, (8, 16, 4)), (64, (72, 64, 16))], ids=["small", "panels"])
def test_jitted_training_matches_plain_training(rows, sizes):
  plain, jitted = make_params(sizes=sizes), make_params(sizes=sizes)
  step = lg.jit(lambda x, y: sgd_step(jitted, x, y))
  for x, y in batches(8, rows=rows, sizes=sizes):
    want = sgd_step(plain, x, y).item()
    got = step(x, y).item()
    assert abs(got - want) < 1e-5 * max(1, abs(want))
  for a, b in zip(plain, jitted): np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
  assert step.replayable


def test_replay_launches_the_recorded_kernels_only():
  params = make_params()
  step = lg.jit(lambda x, y: sgd_step(params, x, y))
  data = batches(6)
  for x, y in data[:4]: step(x, y)
  before = lg.kernel_count()
  step(*data[4])
  per_call = lg.kernel_count() - before
  assert per_call == len(step.recordings[-1].launches) > 0


@pytest.mark.skipif(not lg.device.default_device().startswith("OPENCL"), reason="OpenCL's Replayer")
def test_replays_go_straight_to_the_queue_once_every_kernel_is_built(monkeypatch):
  """After the first replay, a call's launches go through one Replayer (kernels with their arguments kept set) and
  never through exec; the numbers are still plain calls' for new inputs, and the outputs of earlier calls stay."""
  plain, jitted = make_params(), make_params()
  step = lg.jit(lambda x, y: sgd_step(jitted, x, y))
  data = batches(8)
  dev = lg.device.get(lg.device.default_device())
  execs = [0]
  real = dev.exec
  monkeypatch.setattr(dev, "exec", lambda *a, **k: (execs.__setitem__(0, execs[0] + 1), real(*a, **k))[1])
  losses, replayed = [], 0
  for n, (x, y) in enumerate(data):
    want = sgd_step(plain, x, y).item()
    execs[0] = 0
    losses.append((step(x, y), want))
    if n >= 4: replayed += execs[0]
  assert replayed == 0
  for got, want in losses: assert abs(got.item() - want) < 1e-5 * max(1, abs(want))
  for a, b in zip(plain, jitted): np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_new_shapes_record_once_then_replay():
  ran = []  # the calls that ran the function's Python (not replayed)

  @lg.jit
  def double(x):
    ran.append(x.shape)
    return x * 2
  for _ in range(4): np.testing.assert_array_equal(double(lg.Tensor([1.0, 2.0])).numpy(), [2.0, 4.0])
  assert ran == [(2,)] * 3  # a warm-up call and two recordings
  for v in ([[1.0], [3.0]], [[2.0], [5.0]], [[0.5], [1.0]]): np.testing.assert_array_equal(double(lg.Tensor(v)).numpy(), np.multiply(v, 2))
  assert ran == [(2,)] * 3 + [(2, 1)]  # recorded once, then replayed
  np.testing.assert_array_equal(double(lg.Tensor([7.0, 8.0])).numpy(), [14.0, 16.0])  # the first shape's, kept
  assert len(ran) == 4


def test_an_argument_seen_through_another_view_is_recorded_again():
  # the kernels read an argument through its view: a transpose replayed for a plain tensor of its shape read it
  # transposed (a wrong result, and no error)
  @lg.jit
  def double(x): return x * 2
  a = np.arange(6, dtype=np.float32).reshape(2, 3)
  for _ in range(4): np.testing.assert_array_equal(double(lg.Tensor(a).T).numpy(), a.T * 2)
  b = np.arange(6, dtype=np.float32).reshape(3, 2)
  np.testing.assert_array_equal(double(lg.Tensor(b)).numpy(), b * 2)
  row = np.array([[1.0, 5.0]], dtype=np.float32)
  np.testing.assert_array_equal(double(lg.Tensor(row).expand(3, 2)).numpy(), np.broadcast_to(row, (3, 2)) * 2)


def test_batch_sizes_and_python_numbers_that_change_are_recorded_once_and_replayed():
  """A training step at a DataLoader's short last batch, and at a learning rate passed as a Python float: each new
  signature runs normally once (its new numbers are kernel arguments: nothing is built for them but a dynamic kernel
  per structure, and a specialized one for numbers that come back), then replays; no warning."""
  params, ran = make_params(sizes=(8, 16, 4)), []

  def step(x, y, lr):
    ran.append((x.shape[0], lr))
    w1, b1, w2, b2 = params
    loss = (((x @ w1 + b1).relu() @ w2 + b2 - y) ** 2).mean()
    loss.backward()
    with lg.no_grad():
      for p in params:
        p.assign(p - lr * p.grad)
        p.grad = None
    return loss
  calls = [(5, 0.05)] * 3 + [(3, 0.05)] * 2 + [(5, 0.04)] * 2 + [(3, 0.04)] * 2
  calls += calls  # a second pass: every signature seen before
  data = [batches(1, seed=n, rows=rows)[0] for n, (rows, _) in enumerate(calls)]
  start = [p.numpy() for p in params]
  want = [step(x, y, lr).item() for (x, y), (_, lr) in zip(data, calls)]  # plain calls, for reference
  plain = [p.numpy() for p in params]
  for p, v in zip(params, start): p.assign(lg.Tensor(v))
  ran.clear()
  jitted = lg.jit(step)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for n, ((x, y), (_, lr)) in enumerate(zip(data, calls)):
      if n == len(calls) // 2: before, normal = lg.compile_count(), len(ran)
      got = jitted(x, y, lr).item()
      assert abs(got - want[n]) < 1e-5 * max(1, abs(want[n]))
  assert ran[:normal] == [(5, 0.05)] * 3 + [(3, 0.05), (5, 0.04), (3, 0.04)]  # each new signature ran once
  assert len(ran) == normal and lg.compile_count() == before  # the second pass: all replayed, nothing built
  for a, b in zip(params, plain): np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-6)


def test_changing_constants_are_not_replayed():
  state = {"n": 0}

  @lg.jit
  def add_counter(x):
    state["n"] += 1
    return x + state["n"]  # a Python number baked into the kernel, different every call
  with pytest.warns(UserWarning, match="launched different kernels"):
    outs = [add_counter(lg.Tensor([0.0])).item() for _ in range(5)]
  assert outs == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_outputs_of_earlier_calls_are_not_overwritten():
  @lg.jit
  def square(x): return x * x
  results = [square(lg.Tensor([float(i)])) for i in range(5)]
  assert [r.item() for r in results] == [0.0, 1.0, 4.0, 9.0, 16.0]


def test_host_data_that_changes_is_not_replayed():
  state = {"n": 0}

  @lg.jit
  def add_uploaded(x):
    state["n"] += 1
    return x + lg.Tensor([float(state["n"])])  # copied from the host inside the call: differs every call
  with pytest.warns(UserWarning, match="launched different kernels"):
    outs = [add_uploaded(lg.Tensor([0.0])).item() for _ in range(5)]
  assert outs == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_replayed_call_writes_slices_in_place():
  """A tensor written by slice assignment inside a jitted call (a decoding step's KV cache) is updated by every
  replay, each reading the last one's values, as plain calls do."""
  cache = lg.zeros(4, 3)

  @lg.jit
  def accumulate(row):
    cache[1:2] = cache[1:2] + row
    return cache.sum(0)
  for n in range(1, 6):
    out = accumulate(lg.Tensor([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(cache.numpy()[1], [n, 2.0 * n, 3.0 * n])
    np.testing.assert_allclose(out.numpy(), [n, 2.0 * n, 3.0 * n])
  assert accumulate.replayable


def decoder(width=8, context=12, seed=0):
  """One attention step over a preallocated key/value cache written at `pos`, as a torch user writes a decoder's."""
  rng = np.random.default_rng(seed)
  wq, wk, wv = (lg.Tensor(rng.standard_normal((width, width)).astype(np.float32) * 0.3) for _ in range(3))
  pos_table = lg.Tensor(rng.standard_normal((context, width)).astype(np.float32))
  cache = {"k": lg.zeros(1, context, width), "v": lg.zeros(1, context, width)}
  ran = []

  def step(x, pos):
    ran.append(pos)
    x = x + pos_table[pos] + lg.Tensor([[float(pos)]]) * 0.01  # a row picked by the int, a value copied from the host
    q, k, v = x @ wq, x @ wk, x @ wv
    cache["k"][:, pos:pos + 1] = k
    cache["v"][:, pos:pos + 1] = v
    att = (q @ cache["k"][:, :pos + 1].transpose(1, 2) / width ** 0.5).softmax(-1)
    return att @ cache["v"][:, :pos + 1]
  return step, cache, ran


def test_a_changing_int_is_followed_and_replayed():
  """A decoding step called at positions 0, 1, 2...: three calls after a warm-up show how its kernels' numbers (the
  cache's offset and length, the uploaded value) move with the position; then every later position replays,
  building no kernel, with the numbers plain calls give."""
  rng = np.random.default_rng(1)
  xs = [rng.standard_normal((1, 1, 8)).astype(np.float32) for _ in range(12)]
  plain, plain_cache, _ = decoder()
  want = [plain(lg.Tensor(x), pos).numpy() for pos, x in enumerate(xs)]
  step, cache, ran = decoder()
  jitted = lg.jit(step)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    for pos, x in enumerate(xs):
      if pos == 5: built = lg.compile_count()
      np.testing.assert_allclose(jitted(lg.Tensor(x), pos).numpy(), want[pos], rtol=1e-5, atol=1e-6)
  assert ran == [0, 1, 2, 3] and lg.compile_count() == built  # a warm-up, three recordings; then replays only
  np.testing.assert_allclose(cache["k"].numpy(), plain_cache["k"].numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(jitted(lg.Tensor(xs[3]), 3).numpy(), want[3], rtol=1e-5, atol=1e-6)  # back to a position


def test_an_int_whose_numbers_do_not_move_in_step_is_not_replayed():
  """pos * pos in a kernel fits a line through two calls but not a third: no model is trusted, and every call runs
  normally with its own numbers."""
  ran = []

  @lg.jit
  def f(x, pos):
    ran.append(pos)
    return x[:pos * pos + 1].sum()
  x = np.arange(64, dtype=np.float32)
  for pos in range(7): assert f(lg.Tensor(x), pos).item() == x[:pos * pos + 1].sum()
  assert ran == list(range(7)) and not f.models


def test_two_ints_that_change_together_run_normally():
  ran = []

  @lg.jit
  def f(x, start, stop):
    ran.append(start)
    return x[start:stop].sum()
  x = np.arange(64, dtype=np.float32)
  for n in range(5): assert f(lg.Tensor(x), n, n + 3).item() == x[n:n + 3].sum()  # both move: no model
  assert ran == list(range(5))
  for n in range(5, 9): assert f(lg.Tensor(x), 2, n).item() == x[2:n].sum()  # one moves: followed after three
  assert ran == list(range(5)) + [2, 2, 2]


def test_a_recording_keeps_no_memory_of_the_buffers_a_replay_swaps():
  # a recording kept the arguments and the updated tensors' buffers before and after its call: a jitted train step
  # held its parameters, optimizer state and gradients twice over
  lg.synchronize(); gc.collect()
  base, n = lg.device.memory_stats()["in_use"], 1 << 20
  p, g = lg.Tensor(np.ones(n, np.float32)), lg.Tensor(np.full(n, 2.0, np.float32))

  @lg.jit
  def update(grad): p.assign(p * 0.5 + grad)
  for _ in range(6): update(g)
  np.testing.assert_array_equal(p.numpy()[:3], [4 - 3 / 64] * 3)  # 1, 2.5, 3.25, ...: 4 - 3 / 2**k
  gc.collect()
  assert lg.device.memory_stats()["in_use"] - base <= 2 * 4 * n  # p and g, nothing else (it held 4 * 4 * n)
