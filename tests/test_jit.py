"""lazygrad.jit: replayed calls give the same numbers as plain calls, launch the same kernels, and never replay wrong."""
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


def test_new_shapes_start_over():
  @lg.jit
  def double(x): return x * 2
  for _ in range(4): np.testing.assert_array_equal(double(lg.Tensor([1.0, 2.0])).numpy(), [2.0, 4.0])
  assert double.replayable
  np.testing.assert_array_equal(double(lg.Tensor([[1.0], [3.0]])).numpy(), [[2.0], [6.0]])  # retraced, not replayed
  assert not double.replayable


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
