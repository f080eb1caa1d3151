"""Views against NumPy's strided views: each movement's index math gives the elements NumPy's view holds."""
import numpy as np
import pytest
from lazygrad.shape import ShapeTracker
import lazygrad as lg


def gather(st: ShapeTracker, base: np.ndarray, fill=-1) -> np.ndarray:
  """What a kernel reading `base` through `st` sees: padding reads `fill` (a kernel reads 0; -1 shows it here)."""
  flat, valid = st.index_arrays()
  safe = np.where(valid, flat, 0)
  return np.where(valid, base.reshape(-1)[safe], fill)


def base_and_st(shape):
  return np.arange(int(np.prod(shape))).reshape(shape), ShapeTracker.from_shape(shape)


def test_reshape_of_permuted_view():
  a, st = base_and_st((3, 4, 5))
  st = st.permute((2, 0, 1)).reshape((5, 12))
  np.testing.assert_array_equal(gather(st, a), a.transpose(2, 0, 1).reshape(5, 12))
  st2 = ShapeTracker.from_shape((3, 4, 5)).permute((2, 0, 1)).reshape((10, 6))
  assert len(st2.views) == 2  # one view cannot express it: a second is stacked
  np.testing.assert_array_equal(gather(st2, a), a.transpose(2, 0, 1).reshape(10, 6))


def test_reshape_keeps_one_view_when_dims_merge():
  st = ShapeTracker.from_shape((4, 6)).permute((1, 0)).reshape((2, 3, 4))
  assert len(st.views) == 1
  a = np.arange(24).reshape(4, 6)
  np.testing.assert_array_equal(gather(st, a), a.T.reshape(2, 3, 4))


def test_pad_then_shrink():
  a, st = base_and_st((3, 4))
  st = st.pad(((1, 2), (2, 0))).shrink(((0, 5), (1, 5)))
  ref = np.pad(a, ((1, 2), (2, 0)), constant_values=-1)[0:5, 1:5]
  np.testing.assert_array_equal(gather(st, a), ref)


def test_shrink_inside_padding_is_the_original():
  a, st = base_and_st((3, 4))
  st = st.pad(((2, 2), (1, 1))).shrink(((2, 5), (1, 5)))
  assert st.contiguous
  np.testing.assert_array_equal(gather(st, a), a)


def test_flip():
  a, st = base_and_st((3, 4, 2))
  np.testing.assert_array_equal(gather(st.flip((0, 2)), a), a[::-1, :, ::-1])


def test_expand():
  a, st = base_and_st((3, 1))
  st = st.reshape((1, 3, 1)).expand((2, 3, 4))
  np.testing.assert_array_equal(gather(st, a), np.broadcast_to(a.reshape(1, 3, 1), (2, 3, 4)))


def test_flip_of_padded_then_reshape():
  a, st = base_and_st((2, 3))
  st = st.pad(((0, 0), (1, 1))).flip((1,)).reshape((10,))
  ref = np.pad(a, ((0, 0), (1, 1)), constant_values=-1)[:, ::-1].reshape(10)
  np.testing.assert_array_equal(gather(st, a), ref)


@pytest.mark.parametrize("seed", range(20))
def test_random_movement_chains(seed):
  """Random permute/reshape/pad/shrink/flip/expand chains agree with the same NumPy ops."""
  rng = np.random.default_rng(seed)
  a = np.arange(24).reshape(2, 3, 4)
  ref, st = a.copy(), ShapeTracker.from_shape(a.shape)
  for _ in range(6):
    op = rng.integers(6)
    if op == 0:
      order = tuple(rng.permutation(ref.ndim)); ref, st = ref.transpose(order), st.permute(order)
    elif op == 1 and ref.size:
      sizes = [d for d in range(1, ref.size + 1) if ref.size % d == 0]
      first = int(rng.choice(sizes)); shape = (first, ref.size // first)
      ref, st = ref.reshape(shape), st.reshape(shape)
    elif op == 2:
      pads = tuple((int(rng.integers(2)), int(rng.integers(2))) for _ in ref.shape)
      ref, st = np.pad(ref, pads, constant_values=-1), st.pad(pads)
    elif op == 3:
      bounds = []
      for s in ref.shape:
        lo = int(rng.integers(0, max(s, 1))); hi = int(rng.integers(lo + 1, s + 1)) if s else 0
        bounds.append((lo, hi))
      ref, st = ref[tuple(slice(lo, hi) for lo, hi in bounds)], st.shrink(tuple(bounds))
    elif op == 4:
      axes = tuple(i for i in range(ref.ndim) if rng.integers(2))
      ref, st = np.flip(ref, axes), st.flip(axes)
    elif op == 5 and 1 in ref.shape:
      shape = tuple(3 if s == 1 else s for s in ref.shape)
      ref, st = np.broadcast_to(ref, shape), st.expand(shape)
    np.testing.assert_array_equal(gather(st, a), ref)


def test_tensor_views_match_numpy():
  a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
  t = lg.Tensor(a)
  np.testing.assert_array_equal(t.permute(2, 0, 1).reshape(10, 6).numpy(), a.transpose(2, 0, 1).reshape(10, 6))
  np.testing.assert_array_equal(t[::-1, 1:, ::2].numpy(), a[::-1, 1:, ::2])
  np.testing.assert_array_equal(t[:, None, 2, ...].numpy(), a[:, None, 2, ...])
  np.testing.assert_array_equal(t[-1, ::-2].numpy(), a[-1, ::-2])


def test_unravelled_index_ravels_back():
  """(g/16384)*512 + ((g/4096)%4)*128 + (g/32)%128 is g/32 (an attention softmax's row index): the merge sees g/4096
  as (g/32)/128. Checked by value over the whole range, and by its rendering."""
  from lazygrad.symbolic import Var
  g = Var("g", 0, 2**18 - 1)
  expr = (g // 16384) * 512 + ((g // 4096) % 4) * 128 + (g // 32) % 128
  assert expr.render() == "(g/32)"
  values = np.arange(2**18)
  np.testing.assert_array_equal((values // 16384) * 512 + ((values // 4096) % 4) * 128 + (values // 32) % 128, values // 32)
  x = Var("x", 0, 1000)
  assert (((x // 7) % 3) * 14 + (x % 7) * 2).render() == "((x%21)*2)"


def test_comparisons_of_a_quotient_compare_the_dividend():
  """(x//c) < b is x < b*c for x >= 0 (and >= likewise): one compare, no division, in a mask. Checked by value."""
  from lazygrad.symbolic import Var
  x = Var("x", 0, 200)
  assert (x // 32).lt(3).render() == "(x<96)" and (x // 32).ge(3).render() == "(x>=96)"
  for c in (1, 3, 7, 32):
    for b in range(-2, 10):
      lt, ge = (x // c).lt(b), (x // c).ge(b)
      assert all(lt.evaluate({"x": v}) == (v // c < b) and ge.evaluate({"x": v}) == (v // c >= b) for v in range(201))
