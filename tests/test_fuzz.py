"""Property tests: random chains of movement, elementwise and reduce ops give NumPy's results.

Hypothesis draws a starting shape (size-0 and size-1 dims and 0-d tensors included) and a chain of ops; the same ops
run on a NumPy array and on a lazygrad Tensor. Examples are derandomized, so `make test` runs the same bounded set each
time; `LAZYGRAD_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz.py` (`make fuzz`) searches much further. Every failure the
fuzzer finds becomes a plain regression test at the bottom of this file, with its exact shapes and ops.
"""

import functools
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lazygrad as lg
from lazygrad import device as devices
from tests.helpers import forget_kernels

EXAMPLES = int(os.environ.get("LAZYGRAD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True)

MAX_NDIM = 4
MAX_DIM = 4  # starting dims; pads and expands may grow a dim to MAX_GROWN
MAX_GROWN = 5


# ---- the ops, each applied to a NumPy array or a lazygrad Tensor

def np_pad(x, pad, value):
    """torch.nn.functional.pad's constant mode on a NumPy array: pairs from the last dim backwards, negatives crop."""
    pairs = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pairs[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    x = x[tuple(slice(max(0, -b), s - max(0, -a)) for (b, a), s in zip(pairs, x.shape))]
    return np.pad(x, [(max(0, b), max(0, a)) for b, a in pairs], constant_values=value)


def apply_np(x: np.ndarray, op) -> np.ndarray:
    return np.asarray(_apply_np(x, op))  # x[()] of a 0-d array is a NumPy scalar


def _apply_np(x: np.ndarray, op):
    kind, *args = op
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty slice is nan, as in torch
        if kind == "reshape": return x.reshape(args[0])
        if kind == "permute": return x.transpose(args[0])
        if kind == "expand":  # -1 keeps a dim's size, as in torch
            new = args[0]
            lead = len(new) - x.ndim
            return np.broadcast_to(x, new[:lead] + tuple(s if n == -1 else n for s, n in zip(x.shape, new[lead:])))
        if kind == "pad": return np_pad(x, args[0], np.array(args[1]).astype(x.dtype))
        if kind == "index": return x[args[0]]
        if kind == "flip": return np.flip(x, args[0]) if x.ndim else x
        if kind in ("realize", "contiguous"): return x
        if kind == "unary":
            name = args[0]
            if name == "exp": return np.exp(x.astype(np.float32))  # ints promote to float32, as in torch
            if name == "relu": return np.maximum(x, np.zeros((), x.dtype))
            if name == "abs": return np.abs(x)
            if name == "neg": return -x
        if kind == "binary":
            name, shape, reverse, seed = args
            y = operand(shape, x.dtype, seed)
            a, b = (y, x) if reverse else (x, y)
            return a + b if name == "add" else a * b
        if kind == "selfbin":
            name, axes = args
            y = np.flip(x, axes) if x.ndim else x
            return x + y if name == "add" else x * y
        if kind == "scalar":  # a Python number of the tensor's kind: the result keeps its dtype
            name, value = args
            v = np.array(value, x.dtype)
            return x + v if name == "add" else x * v
        if kind == "reduce":
            name, axes, keepdim = args
            axes = None if x.ndim == 0 else axes
            if name == "sum": return np.asarray(np.sum(x, axis=axes, keepdims=keepdim, dtype=np.int64 if x.dtype.kind == "i" else None))
            if name == "amax": return np.asarray(np.max(x, axis=axes, keepdims=keepdim))
            if name == "mean": return np.asarray(np.mean(x, axis=axes, keepdims=keepdim, dtype=x.dtype)).astype(x.dtype)
    raise AssertionError(f"unknown op {op}")


def apply_lg(t: lg.Tensor, op):
    kind, *args = op
    if kind == "reshape": return t.reshape(args[0])
    if kind == "permute": return t.permute(args[0])
    if kind == "expand": return t.expand(args[0])
    if kind == "pad": return t.pad(list(args[0]), value=args[1])
    if kind == "index": return t[args[0]]
    if kind == "flip": return t.flip(args[0])
    if kind == "realize": return t.realize()
    if kind == "contiguous": return t.contiguous()
    if kind == "unary": return getattr(t, args[0])()
    if kind == "binary":
        name, shape, reverse, seed = args
        y = lg.Tensor(operand(shape, t.dtype.np, seed))
        a, b = (y, t) if reverse else (t, y)
        return a + b if name == "add" else a * b
    if kind == "selfbin":
        name, axes = args
        y = t.flip(axes)
        return t + y if name == "add" else t * y
    if kind == "scalar":
        name, value = args
        return t + value if name == "add" else t * value
    if kind == "reduce":
        name, axes, keepdim = args
        return getattr(t, name)(axes, keepdim=keepdim)
    raise AssertionError(f"unknown op {op}")


def operand(shape, dtype, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i": return rng.integers(-3, 4, size=shape).astype(dtype)
    return rng.uniform(-1.5, 1.5, size=shape).astype(dtype)


def run_chain(shape, dtype, seed, lazy_start, ops):
    """Apply `ops` to NumPy and lazygrad copies of the same data and compare the results."""
    x = operand(shape, np.dtype(dtype), seed)
    t = lg.Tensor(x)
    if lazy_start: t = -(-t)  # start from an unrealized node, so the first views are of inlined work
    for op in ops:
        if op[0] == "reduce" and op[1] == "amax" and reduces_empty(x.shape, op[2]):
            # torch: IndexError with a dim, RuntimeError without (tests/test_reliability.py checks which)
            with pytest.raises((IndexError, RuntimeError), match="amax"):
                apply_lg(t, op)
            return
        x, t = apply_np(x, op), apply_lg(t, op)
        assert t.shape == x.shape, f"shape after {op}: {t.shape} != {x.shape}"
    got = t.numpy()
    assert got.dtype == x.dtype, f"dtype {got.dtype} != {x.dtype}"
    if x.dtype.kind == "f":
        finite = np.abs(x[np.isfinite(x)])
        atol = 1e-5 * (1 + (finite.max() if finite.size else 0))
        np.testing.assert_allclose(got, x, rtol=1e-4, atol=atol, strict=True)
    else:
        np.testing.assert_array_equal(got, x, strict=True)


def reduces_empty(shape, axes) -> bool:
    if not shape: return False
    axes = range(len(shape)) if axes is None else axes if isinstance(axes, tuple) else (axes,)
    return any(shape[a] == 0 for a in axes)


# ---- strategies: each op is drawn for the shape the chain has reached

@functools.cache
def factorizations(n: int, ndim: int) -> tuple[tuple[int, ...], ...]:
    """Every shape of exactly `ndim` dims with product n (n > 0)."""
    if ndim == 0: return ((),) if n == 1 else ()
    return tuple((d,) + rest for d in range(1, n + 1) if n % d == 0 for rest in factorizations(n // d, ndim - 1))


@st.composite
def reshape_op(draw, shape):
    n = int(np.prod(shape))
    if n == 0:
        new = draw(st.lists(st.integers(0, MAX_DIM), min_size=1, max_size=MAX_NDIM))
        new[draw(st.integers(0, len(new) - 1))] = 0
        return ("reshape", tuple(new))
    choices = [s for k in range(MAX_NDIM + 1) for s in factorizations(n, k)]
    new = list(draw(st.sampled_from(choices)))
    if new and draw(st.booleans()):
        new[draw(st.integers(0, len(new) - 1))] = -1  # the inferred dim
    return ("reshape", tuple(new))


@st.composite
def permute_op(draw, shape):
    order = draw(st.permutations(range(len(shape))))
    return ("permute", tuple(d - len(shape) if draw(st.booleans()) else d for d in order))


@st.composite
def expand_op(draw, shape):
    lead = draw(st.lists(st.integers(0, 3), max_size=MAX_NDIM - len(shape)))
    new = [draw(st.sampled_from([1, 0, 2, 3, -1])) if s == 1 else draw(st.sampled_from([s, -1])) for s in shape]
    return ("expand", tuple(lead + new))


@st.composite
def pad_op(draw, shape, dtype):
    k = draw(st.integers(1, len(shape)))
    pad = []
    for s in reversed(shape[len(shape) - k:]):
        b = draw(st.integers(-min(s, 2), 2))
        a = draw(st.integers(-min(s - max(0, -b), 2), 2))
        a = min(a, MAX_GROWN - (s + b))  # keep dims small
        pad += [b, a]
    return ("pad", tuple(pad), draw(st.sampled_from([0.0, 1.0, -2.0, 0, -1])))  # int tensors keep their dtype


@st.composite
def index_op(draw, shape):
    """Basic indexing: ints, slices with any step (negative included), None and an Ellipsis."""
    k = draw(st.integers(0, len(shape)))
    use_ellipsis = k < len(shape) and draw(st.booleans())
    dims = shape[len(shape) - k:] if use_ellipsis else shape[:k]
    items = []
    for s in dims:
        if s > 0 and draw(st.integers(0, 3)) == 0:
            items.append(draw(st.integers(-s, s - 1)))
        else:
            bound = st.none() | st.integers(-MAX_GROWN - 1, MAX_GROWN + 1)
            items.append(slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3, -1, -2, -3]))))
    ndim_out = len(shape) - sum(isinstance(i, int) for i in items)
    if ndim_out < MAX_NDIM and draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), None)
    if use_ellipsis: items.insert(0, Ellipsis)
    return ("index", tuple(items))


@st.composite
def flip_op(draw, shape):
    axes = draw(st.lists(st.integers(0, len(shape) - 1), unique=True, max_size=len(shape))) if shape else []
    return ("flip", tuple(a - len(shape) if draw(st.booleans()) else a for a in axes))


@st.composite
def binary_op(draw, shape):
    """add/mul with an operand that broadcasts: fewer dims, size-1 dims, or more leading dims than x."""
    drop = draw(st.integers(0, len(shape)))
    tail = [1 if draw(st.booleans()) else s for s in shape[drop:]]
    lead = draw(st.lists(st.integers(1, 2), max_size=MAX_NDIM - len(shape))) if drop == 0 else []
    return ("binary", draw(st.sampled_from(["add", "mul"])), tuple(lead + tail), draw(st.booleans()),
            draw(st.integers(0, 2**16)))


@st.composite
def reduce_op(draw, shape, dtype):
    names = ["sum", "amax"] + (["mean"] if dtype == "float32" else [])
    name = draw(st.sampled_from(names))
    n = max(len(shape), 1)  # a 0-d tensor takes dim 0 or -1, as in torch
    form = draw(st.sampled_from(["all", "int", "tuple"]))
    if form == "all": axes = None
    elif form == "int": axes = draw(st.integers(-n, n - 1))
    else: axes = tuple(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=n, unique_by=lambda a: a % n)))
    return ("reduce", name, axes, draw(st.booleans()))


def movement_op(shape, dtype):
    ops = [reshape_op(shape), permute_op(shape), expand_op(shape), index_op(shape), flip_op(shape)]
    if shape: ops.append(pad_op(shape, dtype))
    return st.one_of(ops)


def scalar_op(dtype):
    """x + s or x * s for a Python number s of the tensor's kind (a float exact in float32)."""
    value = st.integers(-5, 5) if dtype.startswith("int") else st.integers(-40, 40).map(lambda k: k / 8)
    return st.tuples(st.just("scalar"), st.sampled_from(["add", "mul"]), value)


def compute_op(shape, dtype):
    reduce = reduce_op(shape, dtype)
    return st.one_of(
        binary_op(shape), scalar_op(dtype),
        st.tuples(st.just("unary"), st.sampled_from(["exp", "relu", "abs", "neg"])),
        reduce, reduce,
        st.tuples(st.just("selfbin"), st.sampled_from(["add", "mul"]), flip_op(shape).map(lambda op: op[1])),
        st.sampled_from([("realize",), ("contiguous",)]),
    )


def shape_after(shape, dtype, op):
    x = apply_np(np.zeros(shape, dtype), op)
    return x.shape, x.dtype.name


@st.composite
def chains(draw, compute=True):
    """(shape, dtype, seed, lazy_start, ops): movement ops, then compute ops, then maybe more of both."""
    shape = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 4, 0, 1, 2, 3, 4]), max_size=MAX_NDIM)))  # some 0s
    dtype = draw(st.sampled_from(["float32", "float32", "float32", "int32"])) if compute else "float32"
    start = (shape, dtype, draw(st.integers(0, 2**16)), draw(st.booleans()))
    phases = [(movement_op, 0, 4), (compute_op, 1, 3), (movement_op, 0, 2), (compute_op, 0, 2)] if compute else [
        (movement_op, 1, 6)]
    ops, exps = [], 0
    for make, lo, hi in phases:
        for _ in range(draw(st.integers(lo, hi))):
            op = draw(make(shape, dtype))
            if op[0] == "unary" and op[1] == "exp":
                exps += 1
                if exps > 2: continue  # exp(exp(exp(x))) overflows near float32's edge, where roundings differ
            new_shape, new_dtype = shape_after(shape, dtype, op) if not (
                op[0] == "reduce" and op[1] == "amax" and reduces_empty(shape, op[2])) else (None, None)
            ops.append(op)
            if new_shape is None: return start + (ops,)  # amax over an empty dim raises: the chain ends there
            if len(new_shape) > MAX_NDIM or max(new_shape, default=0) > max(MAX_GROWN, int(np.prod(shape))):
                ops.pop()
                continue
            shape, dtype = new_shape, new_dtype
    return start + (ops,)


# ---- the properties

@FUZZ
@given(chains(compute=False))
def test_movement_chains_match_numpy(chain):
    run_chain(*chain)


@FUZZ
@given(chains())
def test_op_chains_match_numpy(chain):
    run_chain(*chain)


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(chains())
def test_op_chains_match_numpy_with_every_number_an_argument(chain):
    with pytest.MonkeyPatch.context() as mp:  # every number of every kernel an argument, from its first build
        forget_kernels(mp, devices.get(devices.default_device()), every_number=True)
        run_chain(*chain)


@settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
@given(chains())
def test_op_chains_match_numpy_with_offsets_as_arguments(chain):
    with pytest.MonkeyPatch.context() as mp:  # offsets, bounds and scalars arguments; vector code and tiles kept
        forget_kernels(mp, devices.get(devices.default_device()), every_number="offsets")
        run_chain(*chain)


# ---- regressions: failures the fuzzer found, as plain tests


def test_pad_int_tensor_with_float_value_keeps_dtype():
    x = np.arange(3, dtype=np.int32)
    got = lg.Tensor(x).pad([1, 1], value=1.0)
    np.testing.assert_array_equal(got.numpy(), np.array([1, 0, 1, 2, 1], np.int32), strict=True)


def empty(*shape):
    return lg.Tensor(np.empty(shape, np.float32))


@pytest.mark.parametrize("shape", [(3, 0), (0, 0), (2, 0, 3)])
def test_sum_over_trailing_zero_size_dim(shape):
    np.testing.assert_array_equal(empty(*shape).sum().numpy(), np.float32(0), strict=True)


def test_exp_sum_of_empty_2d():  # found by test_op_chains_match_numpy
    np.testing.assert_array_equal(empty(0, 0).exp().sum().numpy(), np.float32(0), strict=True)


@pytest.mark.parametrize("shape, pad", [((0, 0, 0), [0, 1]), ((1, 0), [0, 0, 0, 1])])
def test_pad_after_reshape_of_padded_empty(shape, pad):  # found by test_movement_chains_match_numpy
    got = empty(*shape).pad(pad).reshape(0).pad([0, 1])
    np.testing.assert_array_equal(got.numpy(), np.zeros(1, np.float32), strict=True)


@pytest.mark.parametrize("dim", [0, -1, (0,)])
def test_mean_of_0d_over_dim_0(dim):  # found by test_op_chains_match_numpy; torch gives the value back
    x = lg.Tensor(np.float32(2.5))
    np.testing.assert_array_equal(x.mean(dim).numpy(), np.float32(2.5), strict=True)


def test_exp_of_a_constant_nan_is_nan():  # found by test_op_chains_match_numpy; PoCL's exp2 of a NaN it can see gave garbage
    cases = {
        "x * nan": (lg.Tensor(np.array([0.0, 1.0, 2.0], np.float32)) * float("nan")).exp(),
        "mean of empty": lg.Tensor(np.empty(0, np.float32)).mean().exp(),
        "fuzz chain": lg.Tensor(np.ones((1, 1, 1), np.float32)).expand(1, 1, 0).exp().mean().exp(),
    }
    got = {name: t.numpy() for name, t in cases.items()}
    assert all(np.isnan(v).all() for v in got.values()), got
