"""Compare lazygrad's tensor ops, gradients, dtypes and creation functions against PyTorch."""

import numpy as np
import pytest
import torch

import lazygrad as lg

DTYPE_NAMES = ("float32", "float16", "int32", "int64", "bool")


def lg_dtype(torch_dtype):
    """The lazygrad dtype with the same name as `torch_dtype`."""
    return getattr(lg, str(torch_dtype).removeprefix("torch."))


def assert_same(actual, expected, atol=1e-5, rtol=1e-4, what="output"):
    """Assert a lazygrad tensor matches a torch tensor in shape, dtype and values."""
    assert actual.shape == tuple(expected.shape), f"{what} shape"
    assert actual.dtype == lg_dtype(expected.dtype), f"{what} dtype"
    got, want = actual.numpy(), expected.detach().numpy()
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, strict=True, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, strict=True, err_msg=what)


def check(fn, *shapes, lg_fn=None, low=-2.0, high=2.0, atol=1e-5, rtol=1e-4,
          grad=True, positive=False, dtype=np.float32, seed=0):
    """Run `fn` on random inputs of `shapes` in torch and lazygrad; compare outputs and input grads.

    `lg_fn` replaces `fn` on the lazygrad side. `positive` raises `low` to 0.5. Integer
    dtypes draw integers in [low, high] and never check gradients.
    """
    rng = np.random.default_rng(seed)
    if positive:
        low = max(low, 0.5)
    if np.issubdtype(dtype, np.integer):
        grad = False
        arrays = [rng.integers(int(low), int(high), size=s, endpoint=True).astype(dtype) for s in shapes]
    else:
        arrays = [np.asarray(rng.uniform(low, high, size=s), dtype=dtype) for s in shapes]

    torch_inputs = [torch.tensor(a, requires_grad=grad) for a in arrays]
    lg_inputs = [lg.Tensor(a, requires_grad=grad) for a in arrays]
    torch_out = fn(*torch_inputs)
    lg_out = (lg_fn or fn)(*lg_inputs)
    assert_same(lg_out, torch_out, atol, rtol)
    if not grad:
        return

    if torch_out.ndim == 0:
        torch_out.backward()
        lg_out.backward()
    else:
        upstream = rng.standard_normal(torch_out.shape).astype(dtype)
        torch_out.backward(torch.tensor(upstream))
        lg_out.backward(lg.Tensor(upstream))
    for i, (lg_x, torch_x) in enumerate(zip(lg_inputs, torch_inputs)):
        if torch_x.grad is None:  # the output does not depend on this input differentiably
            assert lg_x.grad is None or not lg_x.grad.numpy().any(), f"input {i} grad should be zero"
        else:
            assert lg_x.grad is not None, f"input {i} got no gradient"
            assert_same(lg_x.grad, torch_x.grad, atol, rtol, what=f"grad of input {i}")


# ---------------------------------------------------------------- elementwise

UNARY = {
    "neg": (lambda x: x.neg(), {}),
    "unary minus": (lambda x: -x, {}),
    "exp": (lambda x: x.exp(), {}),
    "log": (lambda x: x.log(), dict(positive=True)),
    "exp2": (lambda x: x.exp2(), {}),
    "log2": (lambda x: x.log2(), dict(positive=True)),
    "sqrt": (lambda x: x.sqrt(), dict(positive=True)),
    "sin": (lambda x: x.sin(), dict(low=-4, high=4)),
    "cos": (lambda x: x.cos(), dict(low=-4, high=4)),
    "reciprocal": (lambda x: x.reciprocal(), dict(positive=True)),
    "relu": (lambda x: x.relu(), {}),
    "abs": (lambda x: x.abs(), {}),
    "sigmoid": (lambda x: x.sigmoid(), dict(low=-6, high=6)),
    "tanh": (lambda x: x.tanh(), dict(low=-3, high=3)),
    "x ** 2": (lambda x: x ** 2, {}),
    "pow(3) of negatives": (lambda x: x.pow(3), {}),
    "x ** 0.5": (lambda x: x ** 0.5, dict(positive=True)),
    "pow(-1.5)": (lambda x: x.pow(-1.5), dict(positive=True)),
    "2 ** x": (lambda x: 2 ** x, {}),
}


@pytest.mark.parametrize("fn, kwargs", UNARY.values(), ids=UNARY.keys())
def test_unary(fn, kwargs):
    check(fn, (3, 5), **kwargs)


def test_unary_on_0d_tensor():
    check(lambda x: x.exp() * x.sin(), ())


BROADCAST_PAIRS = [((3, 4), (4,)), ((2, 1, 5), (3, 1))]
BINARY = {
    "add": (lambda a, b: a + b, {}),
    "sub": (lambda a, b: a - b, {}),
    "mul": (lambda a, b: a * b, {}),
    "div": (lambda a, b: a / b, dict(positive=True)),
    "pow": (lambda a, b: a ** b, dict(positive=True)),
    "maximum": (lambda a, b: a.maximum(b), {}),
    "minimum": (lambda a, b: a.minimum(b), {}),
}


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("fn, kwargs", BINARY.values(), ids=BINARY.keys())
def test_binary_broadcasting(fn, kwargs, shapes):
    check(fn, *shapes, **kwargs)


@pytest.mark.parametrize("op", ["add", "mul", "div"])
def test_binary_with_0d_tensor(op):
    fn, kwargs = BINARY[op]
    check(fn, (), (3, 4), **kwargs)


@pytest.mark.parametrize("op", ["sub", "div", "pow"])
def test_asymmetric_binary_broadcasting_reversed(op):
    fn, kwargs = BINARY[op]
    check(fn, (3, 1), (2, 1, 5), **kwargs)


def test_pow_method_with_tensor_exponent():
    check(lambda a, b: a.pow(b), (3, 4), (4,), positive=True)


SCALAR_OPS = {
    "x + 1.5": (lambda x: x + 1.5, {}),
    "1.5 + x": (lambda x: 1.5 + x, {}),
    "x - 2": (lambda x: x - 2, {}),
    "2 - x": (lambda x: 2 - x, {}),
    "x * 3": (lambda x: x * 3, {}),
    "3 * x": (lambda x: 3 * x, {}),
    "x / 4": (lambda x: x / 4, {}),
    "4 / x": (lambda x: 4 / x, dict(positive=True)),
}


@pytest.mark.parametrize("fn, kwargs", SCALAR_OPS.values(), ids=SCALAR_OPS.keys())
def test_python_scalar_operands(fn, kwargs):
    check(fn, (3, 4), **kwargs)


INT_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "maximum": lambda a, b: a.maximum(b),
    "neg": lambda a, b: -a,
    "abs": lambda a, b: a.abs(),
}


@pytest.mark.parametrize("fn", INT_OPS.values(), ids=INT_OPS.keys())
def test_int32_ops(fn):
    check(fn, (3, 4), (4,), low=-5, high=5, dtype=np.int32)


COMPARISONS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@pytest.mark.parametrize("fn", COMPARISONS.values(), ids=COMPARISONS.keys())
def test_comparison_with_ties(fn):
    check(fn, (3, 4), (3, 4), low=-2, high=2, dtype=np.int32)  # small int range: many ties


@pytest.mark.parametrize("fn", COMPARISONS.values(), ids=COMPARISONS.keys())
def test_comparison_broadcasting_float(fn):
    check(fn, (2, 1, 5), (3, 1), grad=False)


@pytest.mark.parametrize("fn", [lambda x: x > 0, lambda x: x == 1.0, lambda x: 0.5 <= x],
                         ids=["x > 0", "x == 1.0", "0.5 <= x"])
def test_comparison_with_scalar(fn):
    check(fn, (3, 4), low=-2, high=2, dtype=np.int32)


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ())], ids=str)
def test_where(shapes):
    check(lambda c, a, b: torch.where(c > 0, a, b), *shapes,
          lg_fn=lambda c, a, b: lg.where(c > 0, a, b))


def test_where_with_scalar_branch():
    check(lambda x: torch.where(x > 0, x, 0.0), (3, 4), lg_fn=lambda x: lg.where(x > 0, x, 0.0))


def test_where_cond_first_semantics():
    cond = lg.Tensor([True, False, True])
    out = lg.where(cond, lg.Tensor([1.0, 2.0, 3.0]), lg.Tensor([10.0, 20.0, 30.0]))
    np.testing.assert_array_equal(out.numpy(), np.array([1.0, 20.0, 3.0], dtype=np.float32))


# ---------------------------------------------------------------- reductions

REDUCE_KWARGS = [{}, dict(dim=0), dict(dim=-1, keepdim=True), dict(dim=(0, 2)),
                 dict(dim=(-1, 1), keepdim=True)]


@pytest.mark.parametrize("kwargs", REDUCE_KWARGS, ids=str)
def test_sum(kwargs):
    check(lambda x: x.sum(**kwargs), (2, 3, 4))


@pytest.mark.parametrize("kwargs", [REDUCE_KWARGS[0], REDUCE_KWARGS[2], REDUCE_KWARGS[3]], ids=str)
def test_mean(kwargs):
    check(lambda x: x.mean(**kwargs), (2, 3, 4))


def test_sum_positional_dim_and_size_1_dim():
    check(lambda x: x.sum(1) + x.mean(-1), (2, 1, 4))


def test_sum_1d_to_scalar():
    check(lambda x: x.sum(0), (5,))


@pytest.mark.parametrize("shape", [(7,), (2, 3, 4)], ids=str)
def test_max_whole_tensor(shape):
    check(lambda x: x.max(), shape)


@pytest.mark.parametrize("kwargs", [{}, dict(dim=1, correction=0), dict(dim=(0, 2), keepdim=True),
                                    dict(dim=-1, correction=2)], ids=str)
def test_var(kwargs):
    check(lambda x: x.var(**kwargs), (2, 3, 4))


@pytest.mark.parametrize("kwargs", [{}, dict(dim=1, correction=0)], ids=str)
def test_std(kwargs):
    check(lambda x: x.std(**kwargs), (2, 3, 4))


@pytest.mark.parametrize("dim, keepdim", [(0, False), (-1, True)])
def test_logsumexp(dim, keepdim):
    check(lambda x: x.logsumexp(dim, keepdim=keepdim), (2, 3, 4))


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax(op, dim):
    check(lambda x: getattr(x, op)(dim), (2, 3, 4))


@pytest.mark.parametrize("fn", [lambda x: x.softmax(-1), lambda x: x.log_softmax(-1),
                                lambda x: x.logsumexp(-1, keepdim=True)],
                         ids=["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_is_numerically_stable(fn):
    check(fn, (2, 3, 4), low=50, high=100, atol=1e-4)  # exp(100) overflows float32


@pytest.mark.parametrize("kwargs", [{}, dict(dim=0), dict(dim=1), dict(dim=-1, keepdim=True)],
                         ids=str)
def test_argmax(kwargs):
    check(lambda x: x.argmax(**kwargs), (2, 3, 4), grad=False)


def test_argmax_returns_first_of_ties():
    check(lambda x: x.argmax(dim=1), (4, 6), low=0, high=1, dtype=np.int32)


# ---------------------------------------------------------------- matmul

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (3, 4, 2)),
    # big enough that OpenCL on a CPU copies the right operand to panels of 16 or 8 columns first
    ((64, 72), (72, 64)),
    ((128, 64), (64, 40)),
    ((2, 32, 64), (2, 64, 80)),
    ((4, 16, 64), (64, 48)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes):
    check(lambda a, b: a @ b, *shapes)


def test_matmul_of_a_transposed_left_operand_over_a_long_k():
    # OpenCL on a CPU copies both operands to panels here (a weight gradient's shape): forward and both gradients
    check(lambda a, b: a.T @ b, (1024, 16), (1024, 24))
    check(lambda x, w: (x @ w.T).relu(), (1024, 16), (24, 16))


def test_matmul_method():
    check(lambda a, b: a.matmul(b), (3, 4), (4, 5))


# ---------------------------------------------------------------- movement

MOVEMENT = {
    "transpose(0, 1)": ((3, 4), lambda x: x.transpose(0, 1)),
    "transpose(0, 2)": ((2, 3, 4), lambda x: x.transpose(0, 2)),
    "transpose(-1, -2)": ((2, 3, 4), lambda x: x.transpose(-1, -2)),
    ".T": ((3, 4), lambda x: x.T),
    "squeeze(1)": ((3, 1, 4), lambda x: x.squeeze(1)),
    "squeeze(-2)": ((3, 1, 4), lambda x: x.squeeze(-2)),
    "squeeze non-1 dim is a no-op": ((3, 1, 4), lambda x: x.squeeze(0)),
    "unsqueeze(0)": ((3, 4), lambda x: x.unsqueeze(0)),
    "unsqueeze(2)": ((3, 4), lambda x: x.unsqueeze(2)),
    "unsqueeze(-1)": ((3, 4), lambda x: x.unsqueeze(-1)),
    "unsqueeze(-3)": ((3, 4), lambda x: x.unsqueeze(-3)),
    "flatten()": ((2, 3, 4), lambda x: x.flatten()),
    "flatten(1)": ((2, 3, 4), lambda x: x.flatten(1)),
    "flatten(0, 1)": ((2, 3, 4), lambda x: x.flatten(0, 1)),
    "flatten(-2, -1)": ((2, 3, 4), lambda x: x.flatten(-2, -1)),
    "view(-1)": ((2, 3, 4), lambda x: x.view(-1)),
    "view(4, 6)": ((2, 3, 4), lambda x: x.view(4, 6)),
    "view((6, 4))": ((2, 3, 4), lambda x: x.view((6, 4))),
    "reshape(4, -1)": ((2, 3, 4), lambda x: x.reshape(4, -1)),
    "reshape(-1, 2, 3)": ((2, 3, 4), lambda x: x.reshape(-1, 2, 3)),
    "reshape((3, 8))": ((2, 3, 4), lambda x: x.reshape((3, 8))),
    "reshape to 0-d": ((1, 1), lambda x: x.reshape(())),
    "permute(2, 0, 1)": ((2, 3, 4), lambda x: x.permute(2, 0, 1)),
    "permute(-1, -3, -2)": ((2, 3, 4), lambda x: x.permute(-1, -3, -2)),
    "permute((2, 1, 0))": ((2, 3, 4), lambda x: x.permute((2, 1, 0))),
    "expand(3, 4)": ((3, 1), lambda x: x.expand(3, 4)),
    "expand(-1, 4)": ((3, 1), lambda x: x.expand(-1, 4)),
    "expand new dims": ((4,), lambda x: x.expand(2, 3, 4)),
    "expand (1, 3, 1)": ((1, 3, 1), lambda x: x.expand(2, 3, 4)),
    "transpose then reshape": ((3, 4), lambda x: x.transpose(0, 1).reshape(-1)),
    "contiguous then view": ((3, 4), lambda x: x.T.contiguous().view(-1)),
    "permute then matmul": ((2, 3, 4), lambda x: x.permute(0, 2, 1) @ x),
    "flip(0)": ((3, 4), lambda x: x.flip(0)),
    "flip(-1)": ((2, 3, 4), lambda x: x.flip(-1)),
    "flip((0, 2))": ((2, 3, 4), lambda x: x.flip((0, 2))),
}


@pytest.mark.parametrize("shape, fn", MOVEMENT.values(), ids=MOVEMENT.keys())
def test_movement(shape, fn):
    check(fn, shape)


def test_movement_ops_compose_with_elementwise():
    check(lambda a, b: (a.permute(1, 0, 2) * b.unsqueeze(0)).flip(2).sum(1), (2, 3, 4), (2, 4))


# ---------------------------------------------------------------- indexing

INDEXES = {
    "[1]": ((4, 5), np.s_[1]),
    "[:, 1]": ((4, 5), np.s_[:, 1]),
    "[1, -2]": ((4, 5), np.s_[1, -2]),
    "[::2, 1::2]": ((4, 5), np.s_[::2, 1::2]),
    "[1:100]": ((4, 5), np.s_[1:100]),
    "[None]": ((4, 5), np.s_[None]),
    "[..., 2]": ((2, 3, 4), np.s_[..., 2]),
    "[1:, ..., None]": ((2, 3, 4), np.s_[1:, ..., None]),
    "[0, :, 1:3]": ((2, 3, 4), np.s_[0, :, 1:3]),
    "[-1, None, ::3]": ((2, 3, 4), np.s_[-1, None, ::3]),
}


@pytest.mark.parametrize("shape, index", INDEXES.values(), ids=INDEXES.keys())
def test_indexing(shape, index):
    check(lambda x: x[index], shape)


NEGATIVE_STEP_INDEXES = {
    "[::-1]": np.s_[::-1],
    "[1:, ::-1]": np.s_[1:, ::-1],
    "[::-1, 3:0:-2]": np.s_[::-1, 3:0:-2],
    "[..., ::-3]": np.s_[..., ::-3],
    "[2, ::-1]": np.s_[2, ::-1],
}


@pytest.mark.parametrize("index", NEGATIVE_STEP_INDEXES.values(), ids=NEGATIVE_STEP_INDEXES.keys())
def test_negative_step_slicing(index):
    """torch rejects negative steps, so numpy is the reference here."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    upstream = rng.standard_normal(x[index].shape).astype(np.float32)
    expected_grad = np.zeros_like(x)
    expected_grad[index] = upstream

    t = lg.Tensor(x, requires_grad=True)
    out = t[index]
    assert out.shape == x[index].shape
    np.testing.assert_array_equal(out.numpy(), x[index])
    out.backward(lg.Tensor(upstream))
    np.testing.assert_array_equal(t.grad.numpy(), expected_grad)


def test_negative_step_matches_torch_flip():
    check(lambda x: torch.flip(x, [0, 1]) * 2, (3, 4), lg_fn=lambda x: x[::-1, ::-1] * 2)


# ---------------------------------------------------------------- cat / stack

CAT_CASES = [
    ([(2, 3), (4, 3)], 0),
    ([(2, 3), (2, 1)], 1),
    ([(2, 3), (2, 2), (2, 1)], -1),
    ([(2, 3, 4), (2, 1, 4)], -2),
]


@pytest.mark.parametrize("shapes, dim", CAT_CASES, ids=str)
def test_cat(shapes, dim):
    check(lambda *xs: torch.cat(xs, dim), *shapes, lg_fn=lambda *xs: lg.cat(list(xs), dim))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_stack(dim):
    shapes = [(2, 3)] * 3
    check(lambda *xs: torch.stack(xs, dim), *shapes, lg_fn=lambda *xs: lg.stack(list(xs), dim))


def test_cat_with_keyword_dim():
    check(lambda a, b: torch.cat([a, b], dim=1), (2, 3), (2, 2),
          lg_fn=lambda a, b: lg.cat([a, b], dim=1))


# ---------------------------------------------------------------- dtypes

CAST_SOURCES = {
    "float32": [[-2.7, -0.5, 0.0], [0.5, 1.0, 2.5]],
    "int32": [[-3, 0, 1], [2, 7, -1]],
    "bool": [[True, False, True], [False, False, True]],
}


def make(lib, data, dtype):
    """A torch or lazygrad tensor of `data` with the dtype named `dtype`."""
    if lib is torch:
        return torch.tensor(data, dtype=getattr(torch, dtype))
    return lg.Tensor(data, dtype=getattr(lg, dtype))


@pytest.mark.parametrize("method", ["float", "half", "int", "long", "bool"])
@pytest.mark.parametrize("src", CAST_SOURCES)
def test_cast_methods(src, method):
    expected = getattr(make(torch, CAST_SOURCES[src], src), method)()
    actual = getattr(make(lg, CAST_SOURCES[src], src), method)()
    assert_same(actual, expected, atol=0, rtol=0)


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
@pytest.mark.parametrize("src", ["float32", "int32"])
def test_to_dtype(src, dtype):
    expected = make(torch, CAST_SOURCES[src], src).to(getattr(torch, dtype))
    actual = make(lg, CAST_SOURCES[src], src).to(getattr(lg, dtype))
    assert_same(actual, expected, atol=0, rtol=0)


def test_cast_result_used_in_arithmetic():
    expected = (make(torch, CAST_SOURCES["float32"], "float32") > 0).float() * 3 + 1
    actual = (make(lg, CAST_SOURCES["float32"], "float32") > 0).float() * 3 + 1
    assert_same(actual, expected)


def test_gradient_through_casts():
    check(lambda x: x.half().float() * 3, (3, 4), atol=1e-2, rtol=1e-2)
    check(lambda x: x.to(torch.float32).exp(), (3, 4), lg_fn=lambda x: x.to(lg.float32).exp())


def test_float16_arithmetic_and_grad():
    check(lambda a, b: (a * b + a).sum(), (3, 4), (4,), dtype=np.float16, atol=1e-2, rtol=1e-2)


PROMOTIONS = {
    "int32 + float scalar": lambda t: t([1, 2, 3], "int32") + 1.5,
    "int32 + int scalar": lambda t: t([1, 2, 3], "int32") + 2,
    "int32 + int64": lambda t: t([1, 2, 3], "int32") + t([4, 5, 6], "int64"),
    "int64 * int32": lambda t: t([1, 2, 3], "int64") * t([4, 5, 6], "int32"),
    "float16 + float32": lambda t: t([1.5, 2.25, 3.0], "float16") + t([0.5, 0.25, 1.0], "float32"),
    "float16 * float scalar": lambda t: t([1.5, 2.25, 3.0], "float16") * 2.5,
    "int32 + float32": lambda t: t([1, 2, 3], "int32") + t([0.5, 0.25, 1.0], "float32"),
    "bool + int32": lambda t: t([True, False, True], "bool") + t([1, 2, 3], "int32"),
    "bool + int64": lambda t: t([True, False, True], "bool") + t([1, 2, 3], "int64"),
    "bool * float32": lambda t: t([True, False, True], "bool") * t([1.5, 2.5, 3.5], "float32"),
    "int32 / int32": lambda t: t([1, 2, 7], "int32") / t([2, 4, 2], "int32"),
    "int64 / int scalar": lambda t: t([1, 2, 7], "int64") / 2,
    "int32 < float scalar": lambda t: t([1, 2, 3], "int32") < 2.5,
}


@pytest.mark.parametrize("case", PROMOTIONS.values(), ids=PROMOTIONS.keys())
def test_dtype_promotion(case):
    expected = case(lambda data, dtype: make(torch, data, dtype))
    actual = case(lambda data, dtype: make(lg, data, dtype))
    assert_same(actual, expected)


@pytest.mark.parametrize("data", [
    [1.0, 2.5], [[1, 2], [3, 4]], [True, False], 3.5, 7, True,
    np.array([1, 2], dtype=np.int32), np.array([1.0, 2.0], dtype=np.float32),
    np.array([1.0, 2.0], dtype=np.float16), np.array([1, 2], dtype=np.int64),
], ids=repr)
def test_tensor_constructor_infers_dtype(data):
    assert_same(lg.Tensor(data), torch.tensor(data))


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
def test_tensor_constructor_explicit_dtype(dtype):
    assert_same(make(lg, [[0, 1, 2], [3, 0, 5]], dtype), make(torch, [[0, 1, 2], [3, 0, 5]], dtype))


def test_shape_is_a_tuple():
    x = lg.Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert isinstance(x.shape, tuple)
    assert x.shape == (2, 3)
    assert lg.Tensor(1.0).shape == ()


# ---------------------------------------------------------------- creation

def to_lib_kwargs(lib, kwargs):
    """Replace a dtype name in `kwargs` with `lib`'s dtype object."""
    if "dtype" in kwargs:
        return {**kwargs, "dtype": getattr(lib, kwargs["dtype"])}
    return kwargs


CREATION = {
    "zeros(2, 3)": ("zeros", (2, 3), {}),
    "zeros((2, 3))": ("zeros", ((2, 3),), {}),
    "zeros int32": ("zeros", (4,), dict(dtype="int32")),
    "ones(4)": ("ones", (4,), {}),
    "ones bool": ("ones", (2, 2), dict(dtype="bool")),
    "ones float16": ("ones", (2, 2), dict(dtype="float16")),
    "full float": ("full", ((2, 3), 1.5), {}),
    "full int32": ("full", ((2, 3), 7), dict(dtype="int32")),
    "arange(5)": ("arange", (5,), {}),
    "arange(1, 7, 2)": ("arange", (1, 7, 2), {}),
    "arange(5, 0, -1)": ("arange", (5, 0, -1), {}),
    "arange(0, 1, 0.25)": ("arange", (0, 1, 0.25), {}),
    "arange float32": ("arange", (4,), dict(dtype="float32")),
    "linspace(0, 1, 5)": ("linspace", (0, 1, 5), {}),
    "linspace(-1, 1, 7)": ("linspace", (-1, 1, 7), {}),
    "linspace(2, 3, 1)": ("linspace", (2, 3, 1), {}),
    "eye(3)": ("eye", (3,), {}),
    "eye(2, 4)": ("eye", (2, 4), {}),
}


@pytest.mark.parametrize("name, args, kwargs", CREATION.values(), ids=CREATION.keys())
def test_creation(name, args, kwargs):
    expected = getattr(torch, name)(*args, **to_lib_kwargs(torch, kwargs))
    actual = getattr(lg, name)(*args, **to_lib_kwargs(lg, kwargs))
    assert_same(actual, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("args", [(2**60, 2**60 + 5), (2**60 + 3, 2**60, -1), (-7, 7, 4), (10, 0, -3), (3, 3)], ids=str)
def test_arange_of_integers_is_exact(args):
    # in int64, as torch does: float64 steps would round 2**60 + 1 to 2**60
    assert lg.arange(*args).numpy().tolist() == torch.arange(*args).tolist()


def test_arange_whose_step_goes_away_from_the_end_is_refused():
    with pytest.raises(RuntimeError, match=r"^arange: upper bound and lower bound inconsistent with step sign \(start 5, end 1, step 1\)"):
        lg.arange(5, 1)


@pytest.mark.parametrize("args, kwargs", [((2, 3), {}), (((3,),), dict(dtype="int32"))], ids=str)
def test_empty_shape_and_dtype(args, kwargs):
    expected = torch.empty(*args, **to_lib_kwargs(torch, kwargs))
    actual = lg.empty(*args, **to_lib_kwargs(lg, kwargs))
    assert actual.shape == tuple(expected.shape)
    assert actual.dtype == lg_dtype(expected.dtype)


LIKE = {
    "zeros_like": ("zeros_like", (), {}),
    "ones_like": ("ones_like", (), {}),
    "full_like": ("full_like", (2.5,), {}),
    "zeros_like int32": ("zeros_like", (), dict(dtype="int32")),
}


@pytest.mark.parametrize("name, args, kwargs", LIKE.values(), ids=LIKE.keys())
def test_like_creation(name, args, kwargs):
    data = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    expected = getattr(torch, name)(make(torch, data, "float32"), *args, **to_lib_kwargs(torch, kwargs))
    actual = getattr(lg, name)(make(lg, data, "float32"), *args, **to_lib_kwargs(lg, kwargs))
    assert_same(actual, expected)


def test_empty_like_shape_and_dtype():
    x = make(lg, [[1, 2, 3]], "int32")
    y = lg.empty_like(x)
    assert (y.shape, y.dtype) == ((1, 3), lg.int32)


@pytest.mark.parametrize("args", [(2, 3), ((2, 3),)], ids=str)
@pytest.mark.parametrize("name", ["rand", "randn"])
def test_random_shapes(name, args):
    x = getattr(lg, name)(*args)
    assert (x.shape, x.dtype) == ((2, 3), lg.float32)


def test_rand_is_uniform_in_unit_interval():
    lg.manual_seed(0)
    x = lg.rand(2000).numpy()
    assert x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.04
    assert abs(x.std() - np.sqrt(1 / 12)) < 0.03
    assert len(np.unique(x)) > 1900


def test_randn_is_standard_normal():
    lg.manual_seed(0)
    x = lg.randn(10000).numpy()
    assert x.dtype == np.float32
    assert abs(x.mean()) < 0.05
    assert abs(x.std() - 1.0) < 0.05
    assert abs(np.mean(np.abs(x) < 1.0) - 0.6827) < 0.03  # normal, not some other unit-variance shape
    assert x.min() < -2.5 and x.max() > 2.5


def test_randint_range_and_dtype():
    lg.manual_seed(0)
    x = lg.randint(3, 10, (1000,))
    assert (x.shape, x.dtype) == ((1000,), lg.int64)
    assert set(x.numpy().tolist()) == set(range(3, 10))


def test_randint_high_only():
    lg.manual_seed(0)
    x = lg.randint(4, (500,))
    assert x.shape == (500,)
    assert set(x.numpy().tolist()) == set(range(4))


@pytest.mark.parametrize("draw", [lambda: lg.rand(2, 3), lambda: lg.randn(5),
                                  lambda: lg.randint(0, 100, (8,))],
                         ids=["rand", "randn", "randint"])
def test_manual_seed_reproducibility(draw):
    lg.manual_seed(123)
    first, second = draw().numpy(), draw().numpy()
    lg.manual_seed(123)
    np.testing.assert_array_equal(draw().numpy(), first)
    np.testing.assert_array_equal(draw().numpy(), second)
    assert not np.array_equal(first, second)
    lg.manual_seed(124)
    assert not np.array_equal(draw().numpy(), first)


# ---------------------------------------------------------------- conversion to Python

@pytest.mark.parametrize("data, dtype", [(2.5, "float32"), ([[3]], "int64"), (True, "bool"),
                                         ([-4], "int32"), (0.5, "float16")], ids=str)
def test_item(data, dtype):
    expected = make(torch, data, dtype).item()
    actual = make(lg, data, dtype).item()
    assert actual == expected
    assert type(actual) is type(expected)


def test_item_of_computed_result():
    x = lg.Tensor([1.0, 2.0, 4.5])
    assert (x * 2).sum().item() == 15.0


@pytest.mark.parametrize("data, dtype", [
    ([[1.0, 2.5], [3.0, -4.0]], "float32"),
    ([[1, 2, 3]], "int32"),
    ([True, False], "bool"),
    (2.5, "float32"),
    ([], "float32"),
], ids=str)
def test_tolist(data, dtype):
    expected = make(torch, data, dtype).tolist()
    actual = make(lg, data, dtype).tolist()
    assert actual == expected
    assert repr(actual) == repr(expected)  # same nesting and element types (int vs float vs bool)


def test_tolist_of_view():
    x = lg.Tensor([[1, 2, 3], [4, 5, 6]], dtype=lg.int32)
    assert x.T[::2].tolist() == [[1, 4], [3, 6]]


# ---------------------------------------------------------------- autograd behaviour

def test_requires_grad_propagates():
    x = lg.Tensor([1.0, 2.0], requires_grad=True)
    y = lg.Tensor([3.0, 4.0])
    assert x.requires_grad and not y.requires_grad
    assert (x * y).requires_grad
    assert not (y * 2).requires_grad


def test_no_grad_disables_tracking():
    x = lg.Tensor([1.0, 2.0], requires_grad=True)
    with lg.no_grad():
        y = x * 2
    assert not y.requires_grad
    assert (x * 2).requires_grad  # re-enabled on exit


def test_detach_blocks_gradient():
    check(lambda x: (x.detach() * x).sum(), (3, 4))
    x = lg.Tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad
    np.testing.assert_array_equal(d.numpy(), x.numpy())


def test_gradients_accumulate_across_backward_calls():
    x = lg.Tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * 2).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.array([4.0, -2.0, 8.0], dtype=np.float32))


def test_leaf_without_requires_grad_gets_no_grad():
    x = lg.Tensor([1.0, 2.0], requires_grad=True)
    y = lg.Tensor([3.0, 4.0])
    (x * y).sum().backward()
    assert y.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), np.array([3.0, 4.0], dtype=np.float32))


def test_diamond_graph():
    check(lambda x: ((x.exp() + x.sin()) * (x.exp() - x)).mean(), (3, 4))


def test_realized_tensor_reused_in_new_graph():
    x = lg.Tensor([1.0, 2.0, 3.0])
    y = x * 2 + 1
    np.testing.assert_array_equal(y.numpy(), np.array([3.0, 5.0, 7.0], dtype=np.float32))
    np.testing.assert_array_equal((y * y).numpy(), np.array([9.0, 25.0, 49.0], dtype=np.float32))
    np.testing.assert_array_equal(y.numpy(), np.array([3.0, 5.0, 7.0], dtype=np.float32))


def test_small_mlp_end_to_end():
    def mlp(x, w1, b1, w2):
        return ((x @ w1 + b1).relu() @ w2).log_softmax(-1).mean()

    check(mlp, (5, 4), (4, 6), (6,), (6, 3))
