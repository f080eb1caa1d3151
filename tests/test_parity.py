"""PyTorch parity for the Tensor API beyond the basics: math, reductions, sorting, shape ops, einsum, higher-order grads."""
import math
import numpy as np
import pytest
import torch
import lazygrad as lg
from tests.test_ops import check, assert_same

MATH = {
  "sign": (lambda x: x.sign(), {}),
  "square": (lambda x: x.square(), {}),
  "log1p": (lambda x: x.log1p(), dict(low=-0.5)),
  "expm1": (lambda x: x.expm1(), {}),
  "tan": (lambda x: x.tan(), dict(low=-1.2, high=1.2)),
  "erf": (lambda x: x.erf(), dict(atol=1e-6)),
  "rsqrt": (lambda x: x.rsqrt(), dict(positive=True)),
  "floor": (lambda x: x.floor(), dict(low=-5, high=5)),
  "ceil": (lambda x: x.ceil(), dict(low=-5, high=5)),
  "round": (lambda x: (x * 2).round(), dict(low=-5, high=5)),
  "trunc": (lambda x: x.trunc(), dict(low=-5, high=5)),
  "clamp": (lambda x: x.clamp(-0.5, 0.7), {}),
  "clamp min only": (lambda x: x.clamp(min=0.1), {}),
  "clip max only": (lambda x: x.clip(max=0.3), {}),
  "nan_to_num": (lambda x: (x / x.round()).nan_to_num(), dict(grad=False)),
  "2 ** x": (lambda x: 2 ** x, {}),
  "x ** 2.5": (lambda x: x ** 2.5, dict(positive=True)),
}


@pytest.mark.parametrize("name", MATH)
def test_math(name):
  fn, kw = MATH[name]
  check(fn, (3, 4), **kw)


@pytest.mark.parametrize("name,fn", [
  ("fmod", lambda x, y: torch.fmod(x, y) if isinstance(x, torch.Tensor) else x.fmod(y)),
  ("remainder", lambda x, y: x.remainder(y)),
  ("floor_divide", lambda x, y: x // y),
  ("pow tensor", lambda x, y: x.abs() ** y),
  ("lerp", lambda x, y: x.lerp(y, 0.3)),
  ("minimum", lambda x, y: x.minimum(y)),
])
def test_binary_math(name, fn):
  check(fn, (3, 4), (4,), grad=name in ("pow tensor", "lerp", "minimum"), low=0.6)


@pytest.mark.parametrize("op", ["fmod", "remainder", "floor_divide"])
def test_integer_division_signs(op):
  a = np.array([7, -7, 7, -7, 0], np.int32)
  b = np.array([2, 2, -2, -2, 3], np.int32)
  fn = {"fmod": lambda x, y: torch.fmod(x, y) if isinstance(x, torch.Tensor) else x.fmod(y),
        "remainder": lambda x, y: x.remainder(y), "floor_divide": lambda x, y: x // y}[op]
  assert_same(fn(lg.Tensor(a), lg.Tensor(b)), fn(torch.tensor(a), torch.tensor(b)))


def test_logical_and_bitwise():
  a, b = np.array([True, False, True]), np.array([True, True, False])
  for fn in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y, lambda x, y: ~x,
             lambda x, y: x.logical_and(y), lambda x, y: x.logical_or(y), lambda x, y: x.logical_not()):
    assert_same(fn(lg.Tensor(a), lg.Tensor(b)), fn(torch.tensor(a), torch.tensor(b)))
  i, j = np.array([5, -3, 12], np.int32), np.array([3, 6, -1], np.int32)
  for fn in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y, lambda x, y: ~x):
    assert_same(fn(lg.Tensor(i), lg.Tensor(j)), fn(torch.tensor(i), torch.tensor(j)))


def test_isnan_isinf():
  v = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
  assert_same(lg.Tensor(v).isnan(), torch.tensor(v).isnan())
  assert_same(lg.Tensor(v).isinf(), torch.tensor(v).isinf())


@pytest.mark.parametrize("name,fn,kw", [
  ("prod", lambda x: x.prod(1), {}),
  ("prod all", lambda x: x.prod(), dict(low=0.5, high=1.5)),
  ("cumsum", lambda x: x.cumsum(1), {}),
  ("cumprod", lambda x: x.cumprod(0), {}),
  ("amax", lambda x: x.amax(-1), {}),
  ("amin keepdim", lambda x: x.amin(0, keepdim=True), {}),
  ("max dim values", lambda x: x.max(1)[0], {}),
  ("min dim values", lambda x: x.min(0).values, {}),
  ("norm", lambda x: x.norm(), {}),
  ("norm 1 dim", lambda x: x.norm(1, dim=1), {}),
  ("var correction 0", lambda x: x.var(1, correction=0), {}),
  ("std keepdim", lambda x: x.std(0, keepdim=True), {}),
  ("logsumexp", lambda x: x.logsumexp(-1), {}),
])
def test_reductions(name, fn, kw):
  check(fn, (3, 5), **kw)


def test_max_min_with_dim_return_indices():
  x = np.array([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]], np.float32)
  v, i = lg.Tensor(x).max(1)
  tv, ti = torch.tensor(x).max(1)
  assert_same(v, tv); assert_same(i, ti)
  assert_same(lg.Tensor(x).argmin(1), torch.tensor(x).argmin(1))


def test_any_all():
  x = np.array([[0, 1, 0], [0, 0, 0]], np.int32)
  assert_same(lg.Tensor(x).any(1), torch.tensor(x).any(1))
  assert_same(lg.Tensor(x).all(), torch.tensor(x).all())


@pytest.mark.parametrize("descending", [False, True])
def test_sort_and_topk(descending):
  x = np.array([[3.0, 1.0, 2.0, 1.0], [0.5, -1.0, 4.0, 0.5]], np.float32)
  v, i = lg.Tensor(x).sort(dim=1, descending=descending, stable=True)
  tv, ti = torch.tensor(x).sort(dim=1, descending=descending, stable=True)
  assert_same(v, tv); assert_same(i, ti)
  tk, tki = torch.tensor(x).topk(2, 1, largest=descending)
  k, ki = lg.Tensor(x).topk(2, 1, largest=descending)
  assert_same(k, tk)
  check(lambda t: t.sort(1)[0], (3, 5))


@pytest.mark.parametrize("name,fn", [
  ("movedim", lambda x: x.movedim(0, -1)),
  ("split sizes", lambda x: x.split([1, 3], 1)[1]),
  ("split size", lambda x: x.split(2, 1)[1]),
  ("chunk", lambda x: x.chunk(2, 2)[0]),
  ("repeat", lambda x: x.repeat(2, 1, 2)),
  ("repeat_interleave", lambda x: x.repeat_interleave(2, 1)),
  ("roll", lambda x: x.roll(1, -1)),
  ("tril", lambda x: x.tril()),
  ("triu diag", lambda x: x.triu(1)),
  ("unflatten", lambda x: x.unflatten(1, (2, 2))),
  ("expand_as", lambda x: x[:, :1].expand_as(x)),
  ("flip", lambda x: x.flip(0, 2)),
  ("masked_fill", lambda x: x.masked_fill(x > 0, 0.5)),
])
def test_shape_ops(name, fn):
  check(fn, (2, 4, 3))


def test_einsum():
  check(lambda a, b: torch.einsum("bij,bjk->bik", a, b) if isinstance(a, torch.Tensor) else lg.einsum("bij,bjk->bik", a, b), (2, 3, 4), (2, 4, 5))
  check(lambda a, b: torch.einsum("i,j->ij", a, b) if isinstance(a, torch.Tensor) else lg.einsum("i,j->ij", a, b), (3,), (4,))
  check(lambda a: torch.einsum("ijk->kj", a) if isinstance(a, torch.Tensor) else lg.einsum("ijk->kj", a), (2, 3, 4))


@pytest.mark.parametrize("equation,shapes", [
  ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),  # batched matmul, the batch dims broadcast
  ("...ij,...jk", [(3, 4), (2, 4, 5)]),            # implicit output: `...` first, and one operand has no batch dim
  ("ij...,jk...->ik...", [(2, 3, 4), (3, 5, 4)]),
  ("a...,a...->...", [(2, 3, 4), (2, 1, 4)]),
  ("...ij->ij", [(2, 3, 4)]),                      # `...` left out of an explicit output: summed
  ("ii->i", [(3, 3)]), ("ii", [(3, 3)]),           # diagonal, trace
  ("iij->ji", [(3, 3, 2)]), ("iji->j", [(3, 2, 3)]), ("...ii->...i", [(2, 3, 3)]),
])
def test_einsum_with_ellipsis_and_repeated_letters(equation, shapes):
  """Forward and every gradient against torch's einsum."""
  check(lambda *xs: (torch.einsum if isinstance(xs[0], torch.Tensor) else lg.einsum)(equation, *xs), *shapes)


def test_einsum_errors_name_what_was_passed():
  x = lg.tensor(np.zeros((3, 4), np.float32))
  with pytest.raises(ValueError, match=r"einsum: 'i\.\.j\.\.\.': a term is letters with at most one '\.\.\.'"):
    lg.einsum("i..j...", x)
  with pytest.raises(lg.ShapeError, match=r"einsum: letter 'i' repeated in 'ii' has sizes 3 and 4"):
    lg.einsum("ii->i", x)
  with pytest.raises(lg.ShapeError, match=r"einsum: term 'ijk\.\.\.' has 3 letters and \.\.\. but its operand has shape \(3, 4\)"):
    lg.einsum("ijk...", x)
  with pytest.raises(ValueError, match=r"einsum: 'ij->k': output letter 'k' is in no operand"):
    lg.einsum("ij->k", x)


@pytest.mark.parametrize("name,fn", [
  ("mul", lambda x, y: (x * y * x).sum()),
  ("exp log", lambda x, y: (x.exp() * y.abs().log()).sum()),
  ("matmul", lambda x, y: ((x @ y.T).tanh() ** 2).sum()),
  ("sigmoid div", lambda x, y: (x.sigmoid() / (y * y + 1)).sum()),
  ("softmax", lambda x, y: (x.softmax(-1) * y).sum()),  # its gradient reads its output: differentiated again here
  ("log_softmax", lambda x, y: (x.log_softmax(-1) * y * y).sum()),
])
def test_second_order_gradients(name, fn):
  """The gradient of a gradient, against torch.autograd.grad(create_graph=True)."""
  rng = np.random.default_rng(1)
  xs, ys = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
  tx, ty = torch.tensor(xs, requires_grad=True), torch.tensor(ys, requires_grad=True)
  (gx,) = torch.autograd.grad(fn(tx, ty), tx, create_graph=True)
  gx.square().sum().backward()
  x, y = lg.Tensor(xs, requires_grad=True), lg.Tensor(ys, requires_grad=True)
  fn(x, y).backward(create_graph=True)
  first = x.grad
  np.testing.assert_allclose(first.numpy(), gx.detach().numpy(), rtol=1e-4, atol=1e-5)
  x.grad, y.grad = None, None
  first.square().sum().backward()
  np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_numerics_of_large_logits():
  x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
  assert_same(lg.Tensor(x).log_softmax(-1), torch.tensor(x).log_softmax(-1))
  assert_same(lg.Tensor(x).logsumexp(-1), torch.tensor(x).logsumexp(-1))
  neg_inf = np.full((1, 3), -np.inf, np.float32)
  assert_same(lg.Tensor(neg_inf).softmax(-1), torch.tensor(neg_inf).softmax(-1))
  assert_same(lg.Tensor(neg_inf).logsumexp(-1), torch.tensor(neg_inf).logsumexp(-1))


INPLACE = {  # torch's in-place methods: the tensor itself changes, as torch's does
  "add_": lambda x, y: x.add_(y, alpha=2), "sub_": lambda x, y: x.sub_(y), "mul_": lambda x, y: x.mul_(y),
  "div_": lambda x, y: x.div_(y.abs() + 1), "pow_": lambda x, y: x.abs().pow_(y), "clamp_": lambda x, y: x.clamp_(-0.5, 0.5),
  "lerp_": lambda x, y: x.lerp_(y, 0.25), "masked_fill_": lambda x, y: x.masked_fill_(y > 0, 3.0),
  "exp_": lambda x, y: x.exp_(), "sigmoid_": lambda x, y: x.sigmoid_(), "relu_": lambda x, y: x.relu_(),
  "copy_ broadcast": lambda x, y: x.copy_(y[0]), "zero_": lambda x, y: x.zero_(), "fill_": lambda x, y: x.fill_(2.5),
}


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_methods_change_the_tensor(name):
  xn, yn = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
  ours, theirs = lg.Tensor(xn), torch.from_numpy(xn.copy())
  result = INPLACE[name](ours, lg.Tensor(yn))
  INPLACE[name](theirs, torch.from_numpy(yn))
  if name != "pow_": assert result is ours  # pow_ acts on abs()'s result, a new tensor, as in torch
  else: ours, theirs = result, theirs.abs().pow_(torch.from_numpy(yn))
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_inplace_methods_refuse_what_torch_refuses():
  with pytest.raises(RuntimeError, match=r"^div_: result type float32 can't be cast to the tensor's dtype int64$"):
    lg.tensor([1, 2]).div_(2)
  with pytest.raises(lg.ShapeError, match=r"^add_: the result's shape \(2, 3\) does not match the tensor's \(3,\)"):
    lg.ones(3).add_(lg.ones(2, 3))
  w = lg.ones(2, requires_grad=True)
  with pytest.raises(RuntimeError, match=r"^mul_: a tensor that requires grad cannot be changed in place"):
    w.mul_(2)
  with lg.no_grad(): w.sub_(0.25)  # a hand-written update, as in torch
  np.testing.assert_array_equal(w.numpy(), [0.75, 0.75])
  assert w.requires_grad


def test_new_tensors_t_type_isclose():
  x = lg.tensor([[1, 2, 3]], dtype=lg.int32)
  for ours, theirs in ((x.new_zeros(2, 3), torch.zeros(2, 3, dtype=torch.int32)), (x.new_ones((4,)), torch.ones(4, dtype=torch.int32)),
                       (x.new_full((2,), 7), torch.full((2,), 7, dtype=torch.int32)), (x.new_tensor([4, 5]), torch.tensor([4, 5], dtype=torch.int32)),
                       (x.t(), torch.tensor([[1, 2, 3]], dtype=torch.int32).t())):
    assert ours.dtype is lg.int32 and ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
  assert x.new_empty(3, dtype=lg.float16).dtype is lg.float16 and x.type() == "int32" and x.type(lg.float32).dtype is lg.float32
  with pytest.raises(lg.ShapeError, match=r"^t: expected a tensor of at most 2 dimensions, got shape \(1, 1, 1\)$"):
    lg.ones(1, 1, 1).t()
  a = [1.0, float("inf"), float("nan"), 1e-9, -float("inf")]
  b = [1.000001, float("inf"), float("nan"), 0.0, float("inf")]
  for equal_nan in (False, True):
    want = torch.isclose(torch.tensor(a), torch.tensor(b), equal_nan=equal_nan).numpy()
    np.testing.assert_array_equal(lg.isclose(lg.tensor(a), lg.tensor(b), equal_nan=equal_nan).numpy(), want)
  assert lg.allclose(lg.tensor([1.0, 2.0]), lg.tensor([1.0, 2.0 + 1e-6])) and not lg.allclose(lg.tensor([1.0]), lg.tensor([1.1]))


def test_nan_and_infinities_compare_sort_and_sign_as_in_torch():
  """NaN compares false, <= and >= included (not (y < x) would be true), sorts above +inf, and has sign 0."""
  n, i = float("nan"), float("inf")
  v, w = [n, 1.0, n, i, -i, 2.0, 1.0, n, -1.0], [1.0, n, n, i, i, 1.0, 1.0, -i, n]
  a, b, ta, tb = lg.tensor(v), lg.tensor(w), torch.tensor(v), torch.tensor(w)
  for op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    np.testing.assert_array_equal(getattr(a, op)(b).numpy(), getattr(ta, op)(tb).numpy(), err_msg=op)
    np.testing.assert_array_equal(getattr(a, op)(1.0).numpy(), getattr(ta, op)(1.0).numpy(), err_msg=op)
  for descending in (False, True):
    values, indices = a.sort(descending=descending, stable=True)
    t_values, t_indices = ta.sort(descending=descending, stable=True)
    np.testing.assert_array_equal(values.numpy(), t_values.numpy())
    np.testing.assert_array_equal(indices.numpy(), t_indices.numpy())
  np.testing.assert_array_equal(a.sign().numpy(), ta.sign().numpy())
  np.testing.assert_array_equal(lg.nn.functional.hardswish(a).numpy(), torch.nn.functional.hardswish(ta).numpy())


def test_exp_and_cos_are_accurate_over_their_range():
  """exp is a primitive: exp2(x * log2(e)) lost the product's rounding, 65 ulp at x = 88. cos is one too:
  sin(pi/2 - x) lost the rounding of pi/2 - x, 17% near cos's zeros. Relative errors against float64, as torch's."""
  x = np.linspace(-87, 88, 20001).astype(np.float32)
  want = np.exp(x.astype(np.float64))
  assert (np.abs(lg.tensor(x).exp().numpy() - want) / want).max() < 2e-7
  z = np.array([1.5707, 1.57079, 4.712388, 10.99557, 100.0, 1000.0, -3.0, 1e6], np.float32)
  for name in ("cos", "tan"):
    want = getattr(np, name)(z.astype(np.float64))
    assert (np.abs(getattr(lg.tensor(z), name)().numpy() - want) / np.abs(want)).max() < 2e-7, name
  t = lg.tensor([0.3, -2.0, 5.0], requires_grad=True)
  (t.exp() + t.cos()).sum().backward()
  np.testing.assert_allclose(t.grad.numpy(), np.exp([0.3, -2.0, 5.0]) - np.sin([0.3, -2.0, 5.0]), rtol=1e-6)


def test_pow_log1p_expm1_special_values_as_in_torch():
  n, i = float("nan"), float("inf")
  v = [n, 1.0, -2.0, i, -i, 0.0, -0.0, 0.5, 3.0, 1e30, 88.0, -100.0, 1.0, 0.0, 100.0]
  w = [2.0, n, 0.0, i, i, -0.0, 0.0, -1.0, n, 2.0, -i, 1.0, i, -1.0, 0.5]
  a, b, ta, tb = lg.tensor(v), lg.tensor(w), torch.tensor(v), torch.tensor(w)
  np.testing.assert_allclose((a ** b).numpy(), (ta ** tb).numpy(), rtol=1e-6)  # NaNs in the same places too
  np.testing.assert_allclose(a.log1p().numpy(), ta.log1p().numpy(), rtol=1e-6)
  np.testing.assert_allclose(a.expm1().numpy(), ta.expm1().numpy(), rtol=1e-6)


def test_float_fmod_remainder_floor_divide_are_exact():
  """C's fmod is exact: x - trunc(x / y) * y was garbage once x / y passed 2**24 (half of these pairs). floor
  division follows torch (and Python) from the exact remainder; both match torch bit for bit, specials included."""
  rng = np.random.default_rng(0)
  x = (rng.standard_normal(2000) * 10.0 ** rng.integers(-3, 8, 2000)).astype(np.float32)
  y = (rng.standard_normal(2000) * 10.0 ** rng.integers(-3, 3, 2000)).astype(np.float32)
  n, i = float("nan"), float("inf")
  x = np.concatenate([x, np.array([88, -88, 5, -5, 0, -0.0, 1, i, n, 3, 7.5, -7.5], np.float32)])
  y = np.concatenate([y, np.array([-i, i, 0, 0, 2, 2, n, 2, 1, -0.0, 2.5, 2.5], np.float32)])
  ours, theirs = lg.tensor(x), torch.tensor(x)
  for op in (lambda a, b: a.fmod(b), lambda a, b: a.remainder(b), lambda a, b: a // b):
    np.testing.assert_array_equal(op(ours, lg.tensor(y)).numpy(), op(theirs, torch.tensor(y)).numpy())
  a, b = lg.tensor([7.5, -3.0], requires_grad=True), lg.tensor([2.0, 0.7], requires_grad=True)
  a.fmod(b).sum().backward()
  np.testing.assert_allclose(b.grad.numpy(), -np.trunc(np.array([7.5, -3.0]) / np.array([2.0, 0.7])), rtol=1e-6)
  np.testing.assert_allclose(a.grad.numpy(), [1.0, 1.0])


def test_tanh_and_the_elu_family_keep_their_precision_near_zero():
  """tanh was 2 * sigmoid(2x) - 1 and elu alpha * (exp(x) - 1): both cancelled near 0 (1.5e-4 and 1% off)."""
  x = np.array([5.3032e-4, -1.05344e-3, 1.493464e-2, -8.8628184e-7, -7.4481562e-5, 3.0, -20.0, 0.0], np.float32)
  a, t = lg.tensor(x), torch.tensor(x)
  np.testing.assert_allclose(a.tanh().numpy(), t.tanh().numpy(), rtol=1e-6)
  for name in ("elu", "celu", "selu"):
    np.testing.assert_allclose(getattr(lg.nn.functional, name)(a).numpy(), getattr(torch.nn.functional, name)(t).numpy(),
                               rtol=1e-6, err_msg=name)


def test_float32_tanh_is_within_2_ulp_of_float64_everywhere():
  """The polynomial below |x| = 0.625 and 1 - 2 / (exp(2|x|) + 1) above it, on both sides of the switch, near 0, in
  the tail, and at the special values (NaN, infinities, -0.0, whose sign is kept)."""
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.uniform(-12, 12, 200000), rng.uniform(-0.7, 0.7, 100000), np.logspace(-30, 1.2, 2000),
                      -np.logspace(-30, 1.2, 2000), np.nextafter(np.float32(0.625), [0, 1]), [0.625, -0.625]])
  x = x.astype(np.float32)
  got, want = lg.tensor(x).tanh().numpy(), np.tanh(x.astype(np.float64))
  ulps = np.abs(got - want) / np.spacing(want.astype(np.float32)).astype(np.float64)
  assert ulps.max() <= 2, (ulps.max(), x[ulps.argmax()])
  special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 100.0, -100.0], np.float32)
  out = lg.tensor(special).tanh().numpy()
  np.testing.assert_array_equal(out[1:], [1, -1, -0.0, 0.0, 1, -1])
  assert np.isnan(out[0]) and np.signbit(out[3]) and not np.signbit(out[4])


def test_float32_sigmoid_is_within_4_ulp_of_float64_and_keeps_its_tails():
  """One division (a reciprocal, times exp(-|x|) for x < 0): the tails neither overflow nor round to 0 early."""
  x = np.concatenate([np.random.default_rng(0).uniform(-30, 30, 200000), [-87.0, -103.0, 88.0, 1e-30, -1e-30]])
  x = x.astype(np.float32)
  got, want = lg.tensor(x).sigmoid().numpy(), 1 / (1 + np.exp(-x.astype(np.float64)))
  ulps = np.abs(got - want) / np.spacing(want.astype(np.float32)).astype(np.float64)
  assert ulps.max() <= 4, (ulps.max(), x[ulps.argmax()])  # 2.4 on both backends (their exp is one code)
  out = lg.tensor(np.array([np.nan, np.inf, -np.inf], np.float32)).sigmoid().numpy()
  assert np.isnan(out[0]) and out[1] == 1 and out[2] == 0


def test_shifts_round_decimals_and_integer_prod_as_in_torch():
  x = [1, 3, -7, 2**20, -1]
  for n in (0, 1, 3, 11, [1, 2, 3, 4, 5]):
    ours_n, theirs_n = (lg.tensor(n), torch.tensor(n)) if isinstance(n, list) else (n, n)
    assert (lg.tensor(x) << ours_n).tolist() == (torch.tensor(x) << theirs_n).tolist()
    assert (lg.tensor(x) >> ours_n).tolist() == (torch.tensor(x) >> theirs_n).tolist()
  with pytest.raises(TypeError, match=r"^bitwise_left_shift: not supported for float32 tensors \(integers only\)$"):
    lg.ones(2) << 1
  v = [0.25, 1.35, 2.5, 1234.5678, -0.05]
  for d in (1, 2, -2):
    np.testing.assert_array_equal(lg.tensor(v).round(decimals=d).numpy(), torch.tensor(v).round(decimals=d).numpy())
  for dt in (lg.int32, lg.bool):
    assert lg.tensor([1, 1, 1], dtype=dt).prod().dtype is lg.int64  # as torch.prod promotes
  assert lg.tensor([2**20, 2**20], dtype=lg.int32).prod().item() == 2**40


GRADIENT_CORNERS = {  # where torch's gradient is a convention: ties, bounds and zeros
  "clamp at its bounds": (lambda m, x: x.clamp(-1.0, 1.0), [-1.0, 1.0, 0.5, 2.0, -2.0]),
  "clamp min only": (lambda m, x: x.clamp(min=0.0), [0.0, 1.0, -1.0]),
  "max(dim) ties: the index's": (lambda m, x: x.max(0)[0], [3.0, 1.0, 3.0]),
  "min(dim, keepdim) ties": (lambda m, x: x.min(1, keepdim=True)[0], [[1.0, 0.0, 0.0], [2.0, 2.0, 5.0]]),
  "amax ties: shared": (lambda m, x: x.amax(0), [3.0, 1.0, 3.0]),
  "std of a constant: 0": (lambda m, x: x.std(), [2.0, 2.0, 2.0]),
  "elu at 0": (lambda m, x: (lg.nn.functional if m is lg else torch.nn.functional).elu(x), [0.0, -1.0]),
  "celu at 0": (lambda m, x: (lg.nn.functional if m is lg else torch.nn.functional).celu(x, 2.0), [0.0, -1.0]),
}


@pytest.mark.parametrize("name", GRADIENT_CORNERS)
def test_gradients_at_ties_bounds_and_zeros_follow_torch(name):
  fn, values = GRADIENT_CORNERS[name]
  grads = []
  for m in (lg, torch):
    x = m.tensor(values, requires_grad=True)
    fn(m, x).sum().backward()
    grads.append(x.grad.numpy() if m is lg else x.grad.numpy())
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


@pytest.mark.parametrize("dtype,values", [("uint8", [2, 0, 255, 1]), ("int8", [-128, 5, 127, -3]),
                                          ("int32", [-2**31, 0, 2**31 - 1, 7]), ("int16", [3, 3, -1, -1])])
def test_integer_minimum_at_the_ends_of_the_range(dtype, values):
  """amin and argmin were -amax(-x): -x wraps for unsigned values and for the most negative one (uint8 min gave 1)."""
  ours, theirs = lg.tensor(values, dtype=getattr(lg, dtype)), torch.tensor(values, dtype=getattr(torch, dtype))
  for fn in (lambda x: x.amin(), lambda x: x.min(), lambda x: x.argmin(), lambda x: x.min(0)[1], lambda x: x.any(), lambda x: x.all()):
    got, want = fn(ours), fn(theirs)
    assert got.item() == want.item() and got.dtype.name == str(want.dtype).replace("torch.", "")


def test_inverse_and_hyperbolic_functions_against_float64():
  """Composed, so checked for accuracy over wide ranges and at the special values, and their gradients against torch's."""
  rng = np.random.default_rng(5)
  n, i = np.nan, np.inf
  x = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.uniform(-5, 5, 500), [0, -0.0, i, -i, n, 1, -1, 1e30, 0]])
  y = np.concatenate([rng.standard_normal(500) * 10.0 ** rng.uniform(-5, 5, 500), [0, 0, i, i, 1, -0.0, 1, 1e30, -0.0]])
  u = np.concatenate([rng.uniform(-1, 1, 500), [1, -1, 0.999999, -0.9986393, 0, 1.5, n]])
  x, y, u = (a.astype(np.float32) for a in (x, y, u))
  small = np.clip(x, -80, 80)
  cases = [("atan", x, np.arctan, 4e-7), ("asin", u, np.arcsin, 2e-6), ("acos", u, np.arccos, 2e-6), ("sinh", small, np.sinh, 1e-6),
           ("cosh", small, np.cosh, 1e-6), ("asinh", x, np.arcsinh, 1e-6), ("acosh", np.abs(x) + 1, np.arccosh, 1e-6),
           ("atanh", u, np.arctanh, 1e-6)]
  with np.errstate(all="ignore"):
    for name, v, ref, rtol in cases:
      np.testing.assert_allclose(getattr(lg.tensor(v), name)().numpy(), ref(v.astype(np.float64)), rtol=rtol, atol=1e-7, err_msg=name)
    near_overflow = np.array([88.5, -89.0, 89.4], np.float32)  # e^|x| overflows float32 here; sinh and cosh do not
    for name in ("sinh", "cosh"):
      np.testing.assert_allclose(getattr(lg.tensor(near_overflow), name)().numpy(),
                                 getattr(np, name)(near_overflow.astype(np.float64)), rtol=4e-7, err_msg=name)
    np.testing.assert_allclose(lg.tensor(x).atan2(lg.tensor(y)).numpy(), np.arctan2(x.astype(np.float64), y.astype(np.float64)), rtol=4e-7)
    np.testing.assert_allclose(lg.hypot(lg.tensor(x), lg.tensor(y)).numpy(), np.hypot(x.astype(np.float64), y.astype(np.float64)), rtol=4e-7)
  for name in ("atan", "asin", "acos", "sinh", "cosh", "asinh", "atanh", "logit", "frac"):
    v = np.array([0.1, 0.45, 0.7], np.float32)
    ours, theirs = lg.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
    getattr(ours, name)().sum().backward()
    getattr(theirs, name)().sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, err_msg=name)
  a, b = lg.tensor([1.0, -2.0], requires_grad=True), lg.tensor([3.0, 0.5], requires_grad=True)
  ta, tb = torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([3.0, 0.5], requires_grad=True)
  (a.atan2(b) + a.hypot(b) + a.xlogy(b)).sum().backward()
  (torch.atan2(ta, tb) + torch.hypot(ta, tb) + torch.xlogy(ta, tb)).sum().backward()
  np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-5)
  np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-5)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
  """|got - want| in float32 ulps of want (a float64), subnormal ulps included; 0 where want overflows float32 and
  got is inf."""
  with np.errstate(over="ignore"): want32 = want.astype(np.float32)
  spacing = np.spacing(np.abs(want32)).astype(np.float64)
  return np.where(np.isinf(want32) & (got == want32), 0.0, np.abs(got.astype(np.float64) - want) / spacing)


@pytest.mark.parametrize("name, low, high, bound", [("exp", -110, 95, 1.0), ("exp2", -160, 135, 1.1)])
def test_float32_exp_and_exp2_are_within_an_ulp_of_float64_everywhere(name, low, high, bound):
  """Our own code on both backends (lazygrad/codegen/fastmath.py): the whole range, with the subnormal and overflow
  tails, in a vector kernel and in a scalar one (an odd size), and torch's answers at the special values. Largest
  errors measured here: 0.98 (exp) and 1.01 (exp2, whose (x - n) * ln2 is rounded) ulp, on PoCL and on Triton."""
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.uniform(low, high, 200000), rng.uniform(-2, 2, 50000), rng.uniform(low, low + 20, 50000),
                      [0.0, -0.0, 1e-30, -1e-30, 88.72283, 88.7228, -103.97, -103.98, 127.99, 128.0, -149.0, -149.5]])
  x = x.astype(np.float32)
  for points in (x, x[:-1]):
    got, want = getattr(lg.tensor(points), name)().numpy(), getattr(np, name)(points.astype(np.float64))
    ulps = _ulps(got, want)
    assert ulps.max() <= bound, (ulps.max(), points[ulps.argmax()])
  special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.73, -87.3, -103.9, -104.0, -200.0, 128.0,
                      -149.0, -150.0, 1e30, -1e30], np.float32)
  np.testing.assert_array_equal(getattr(lg.tensor(special), name)().numpy(),
                                getattr(torch, name)(torch.tensor(special)).numpy())


def test_fits_are_the_ones_their_fits_give_and_float16_float64_exp_are_right():
  from lazygrad.codegen import fastmath
  assert fastmath.fit_exp() == fastmath.EXP_FIT and fastmath.fit_log2() == fastmath.LOG2_FIT
  x = np.linspace(-20, 11, 1001)
  np.testing.assert_allclose(lg.tensor(x, dtype=lg.float64).exp().numpy(), np.exp(x), rtol=1e-15)  # the library's
  half = lg.tensor(x, dtype=lg.float16).exp()
  assert half.dtype is lg.float16
  np.testing.assert_array_equal(half.numpy(), torch.tensor(x, dtype=torch.float16).exp().numpy())


def test_max_lets_nan_win_in_vector_and_scalar_kernels_as_torch():
  """amax along rows (a float8 loop for 1024, scalar code for 7) and maximum, with NaN in either operand's place."""
  for cols in (1024, 7):
    x = np.random.default_rng(0).standard_normal((6, cols)).astype(np.float32)
    x[1, 0], x[2, cols - 1], x[3, cols // 2], x[4, :] = np.nan, np.nan, np.nan, -np.inf
    np.testing.assert_array_equal(lg.tensor(x).amax(1).numpy(), torch.tensor(x).amax(1).numpy())
  n = float("nan")
  a, b = [n, 1.0, n, -1.0, 2.0, -0.5, 3.0, n], [1.0, n, n, -2.0, 5.0, n, 3.0, -1.0]
  np.testing.assert_array_equal(lg.tensor(a).maximum(lg.tensor(b)).numpy(), torch.tensor(a).maximum(torch.tensor(b)).numpy())
  np.testing.assert_array_equal(lg.tensor(a[:7]).maximum(lg.tensor(b[:7])).numpy(),
                                torch.tensor(a[:7]).maximum(torch.tensor(b[:7])).numpy())


def test_float32_log2_and_log_are_within_2_ulp_of_float64_everywhere():
  """Our own log2 on both backends (lazygrad/codegen/fastmath.py), and log = log2(x) * ln2: over every exponent, the
  subnormals, both sides of the switch at sqrt(2), in vector and scalar kernels, and torch's special values. Largest
  errors measured: 1.0 (log2) and 1.73 (log) ulp on PoCL, 1.11 and 1.68 on Triton's interpreter; PoCL's own log2 was
  0.57 ulp and 2.4x slower."""
  rng = np.random.default_rng(0)
  x = np.concatenate([np.exp(rng.uniform(-103, 88.7, 200000)), rng.uniform(0.5, 2, 100000), rng.uniform(0, 1e-38, 20000),
                      [1.0, 2.0, 0.5, 1.4142135, 1.4142137, np.nextafter(np.float32(1), np.float32(0))]]).astype(np.float32)
  for points in (x, x[:-1]):
    for name, bound in (("log2", 1.3), ("log", 2.0)):
      got, want = getattr(lg.tensor(points), name)().numpy(), getattr(np, name)(points.astype(np.float64))
      ulps = _ulps(got, want)
      assert ulps.max() <= bound, (name, ulps.max(), points[ulps.argmax()])
  special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 1e-45, 1e-40, 3.4e38, -1e-45], np.float32)
  for name in ("log2", "log"):
    np.testing.assert_array_equal(getattr(lg.tensor(special), name)().numpy(),
                                  getattr(torch, name)(torch.tensor(special)).numpy(), err_msg=name)


def test_opencl_renders_exp_exp2_log2_as_helpers_each_declared_once():
  """float32 (and float16) kernels call our helpers, one C line each, declared once in a batched program; float64
  keeps the library's functions."""
  from lazygrad.backends import opencl
  from lazygrad.codegen.lower import lower
  from lazygrad.schedule import schedule

  def source(t):
    [item] = [si for si in schedule([t.lazydata.base]) if si.ast is not None]
    plan = lower(item.ast, [item.out.dtype] + [i.dtype for i in item.inputs], [item.out.size] + [i.size for i in item.inputs])
    return opencl.render(plan, cpu=True)

  rows = lg.tensor(np.random.default_rng(0).uniform(0.5, 2, (64, 1024)).astype(np.float32))
  vector, name = source((rows.exp() + rows.log2()).exp2())  # 8 lanes
  for helper in ("float8 exp_f8(float8 x) {", "float8 exp2_f8(float8 x) {", "float8 log2_f8(float8 x) {"):
    assert vector.count(helper) == 1, vector
  assert not any(f" {f}(" in vector or f"({f}(" in vector for f in ("exp", "exp2", "log2"))
  scalar, _ = source(lg.tensor([0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).exp())  # 7: one element per work-item
  assert "float exp_f(float x) {" in scalar and "= exp_f(" in scalar
  double, _ = source(lg.tensor([0.5, 1.0], dtype=lg.float64).log2())
  assert "log2(" in double and "log2_f" not in double
  program, _ = opencl.batch_source([(vector, name), source(rows.exp() * 2)])
  assert program.count("float8 exp_f8(float8 x) {") == 1
