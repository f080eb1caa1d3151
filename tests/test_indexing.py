"""Advanced indexing, gather/scatter and __setitem__ against NumPy and PyTorch, and what they cost in kernels."""
import numpy as np
import pytest
import torch
import lazygrad as lg

rng = np.random.default_rng(0)
X = rng.standard_normal((5, 4, 3)).astype(np.float32)


def kernels(fn) -> int:
  before = lg.kernel_count()
  fn()
  return lg.kernel_count() - before


@pytest.mark.parametrize("index", [
  (np.array([[0, 4], [2, 2]]),),
  (slice(None), np.array([1, 3])),
  (np.array([[0, 4], [2, 2]]), slice(None), np.array([0, 2])),
  (1, np.array([1, 3]), slice(0, 2)),
  (Ellipsis, np.array([2, -1])),
  (np.array([-1, 0]), np.array([1, 1])),
  (np.array(3),),
], ids=str)
def test_fancy_index_matches_numpy_and_grad_matches_torch(index):
  lg_index = tuple(lg.Tensor(i) if isinstance(i, np.ndarray) else i for i in index)
  x = lg.Tensor(X, requires_grad=True)
  out = x[lg_index]
  np.testing.assert_array_equal(out.numpy(), X[index])
  g = rng.standard_normal(out.shape).astype(np.float32)
  out.backward(lg.Tensor(g))
  tx = torch.tensor(X, requires_grad=True)
  tx[tuple(torch.tensor(i) if isinstance(i, np.ndarray) else i for i in index)].backward(torch.tensor(g))
  np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_bool_mask_read():
  mask = X[:, :, 0] > 0
  np.testing.assert_array_equal(lg.Tensor(X)[lg.Tensor(mask)].numpy(), X[mask])
  np.testing.assert_array_equal(lg.Tensor(X).masked_select(lg.Tensor(X > 0)).numpy(), X[X > 0])


def test_index_is_one_gather_kernel():
  from lazygrad.ops import ReduceOps
  from lazygrad.schedule import schedule
  table = lg.randn(1000, 16).realize()
  out = table[lg.Tensor(np.array([3, 999, 0, 3]))] * 2
  items = schedule([out.lazydata.base])
  assert len(items) == 1
  # a gather reads the table at the indexes only: no reduction over a one-hot mask of the 1000 rows
  assert not any(n.op in ReduceOps for n in items[0].ast.walk())
  assert kernels(out.realize) == 1
  np.testing.assert_array_equal(out.numpy(), table.numpy()[[3, 999, 0, 3]] * 2)


def test_gather_matches_torch():
  idx = rng.integers(0, 4, (5, 2, 3))
  x = lg.Tensor(X, requires_grad=True)
  out = x.gather(1, lg.Tensor(idx))
  tx = torch.tensor(X, requires_grad=True)
  ref = tx.gather(1, torch.tensor(idx))
  np.testing.assert_array_equal(out.numpy(), ref.detach().numpy())
  out.sum().backward(); ref.sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_scatter_add_and_scatter_match_torch():
  idx = np.array([[0, 1, 0], [2, 0, 1]])
  src = rng.standard_normal((2, 3)).astype(np.float32)
  base = rng.standard_normal((3, 3)).astype(np.float32)
  out = lg.Tensor(base).scatter_add(0, lg.Tensor(idx), lg.Tensor(src))
  ref = torch.tensor(base).scatter_add(0, torch.tensor(idx), torch.tensor(src))
  np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)
  uniq = np.array([[0, 1, 2], [2, 0, 1]])
  out = lg.Tensor(base).scatter(0, lg.Tensor(uniq), lg.Tensor(src))
  ref = torch.tensor(base).scatter(0, torch.tensor(uniq), torch.tensor(src))
  np.testing.assert_array_equal(out.numpy(), ref.numpy())


def test_index_select_matches_torch():
  idx = np.array([2, 0, 2])
  np.testing.assert_array_equal(lg.Tensor(X).index_select(1, lg.Tensor(idx)).numpy(),
                                torch.tensor(X).index_select(1, torch.tensor(idx)).numpy())


@pytest.mark.parametrize("index,value", [
  ((slice(1, 3), slice(None, None, 2)), 7.0),
  ((Ellipsis, 1), np.arange(20, dtype=np.float32).reshape(5, 4)),
  ((slice(None, None, -2), 2, slice(0, 3, 2)), 3.0),
  ((0,), np.float32(1.5)),
  ((np.array([0, 3]),), np.ones((4, 3), np.float32)),
  ((slice(None), np.array([1, 2])), 0.0),
], ids=str)
def test_setitem_matches_numpy(index, value):
  x = lg.Tensor(X)
  lg_index = tuple(lg.Tensor(i) if isinstance(i, np.ndarray) else i for i in index)
  x[lg_index] = lg.Tensor(value) if isinstance(value, np.ndarray) else value
  ref = X.copy()
  ref[index] = value
  np.testing.assert_array_equal(x.numpy(), ref)


def test_setitem_with_slices_is_one_kernel():
  x = lg.randn(64, 64).realize()
  x[:, ::3] = 0.0
  assert kernels(x.realize) == 1


def test_setitem_on_leaf_requiring_grad_raises():
  x = lg.Tensor(X, requires_grad=True)
  with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
    x[0] = 1.0


@pytest.mark.parametrize("bad,message", [
  (np.array([0, 7]), "index 7 is out of bounds for dimension 0 with size 5"),
  (np.array([-6]), "index -6 is out of bounds for dimension 0 with size 5"),
])
def test_out_of_range_index_raises_at_the_call(bad, message):
  with pytest.raises(IndexError, match=message):
    lg.Tensor(X)[lg.Tensor(bad)]


def test_gather_out_of_range_raises():
  with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
    lg.Tensor(X).gather(1, lg.Tensor(np.full((5, 1, 3), 4)))


def test_float_index_raises():
  with pytest.raises(IndexError, match="tensors used as indices must be long, int or bool, got float32"):
    lg.Tensor(X)[lg.Tensor([0.0])]


def test_diagonal_diag_nonzero_where_and_index_add_match_torch():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 4, 5)).astype(np.float32)
  ours, theirs = lg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
  for offset in (0, 1, -2, 4, 9):
    for d1, d2 in ((0, 1), (2, 0), (-1, -2)):
      np.testing.assert_array_equal(ours.diagonal(offset, d1, d2).numpy(), theirs.diagonal(offset, d1, d2).detach().numpy())
  (ours.diagonal(1, 1, 2) * 3).sum().backward()
  (theirs.diagonal(1, 1, 2) * 3).sum().backward()
  np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())
  for k in (0, 2, -1):
    np.testing.assert_array_equal(lg.Tensor(x[0, 0]).diag(k).numpy(), torch.tensor(x[0, 0]).diag(k).numpy())
    np.testing.assert_array_equal(lg.Tensor(x[0]).diag(k).numpy(), torch.tensor(x[0]).diag(k).numpy())
  mask = x > 0.5
  np.testing.assert_array_equal(lg.Tensor(mask).nonzero().numpy(), torch.tensor(mask).nonzero().numpy())
  for a, b in zip(lg.where(lg.Tensor(mask)), torch.where(torch.tensor(mask))):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  src = rng.standard_normal((3, 2, 5)).astype(np.float32)
  got = lg.Tensor(x).index_add(1, lg.Tensor(np.array([3, 3])), lg.Tensor(src), alpha=2)
  np.testing.assert_allclose(got.numpy(), torch.tensor(x).index_add(1, torch.tensor([3, 3]), torch.tensor(src), alpha=2).numpy(),
                             rtol=1e-6)
