"""Kernels built once per structure: numbers that change from call to call (scalars, offsets, lengths, batch sizes)
become kernel arguments after one rebuild, counted with compile_count(), with results equal to NumPy's."""
import re
import sys
import numpy as np
import pytest
import lazygrad as lg
import lazygrad.nn as nn
from lazygrad import device as devices, helpers
from lazygrad.codegen.dynamic import template, instantiate
from tests.helpers import forget_kernels, with_families
from lazygrad.shape import ShapeTracker
from lazygrad.symbolic import Var, Num


@pytest.fixture
def fresh(tmp_path, monkeypatch):
  """Nothing built yet: an empty disk cache, and the device's kernels, programs and structures forgotten (Triton's
  interpreter builds a source once per process: its loaded modules are forgotten too)."""
  monkeypatch.setenv("LAZYGRAD_CACHE_DIR", str(tmp_path))
  helpers.cache_dir.cache_clear()
  dev = forget_kernels(monkeypatch, devices.get(devices.default_device()))
  for name in [m for m in sys.modules if m.startswith("lazygrad_triton_")]: monkeypatch.delitem(sys.modules, name)
  yield dev
  helpers.cache_dir.cache_clear()


def builds(fn, values, expected) -> int:
  """Builds for values[1:] after a first call with values[0]; each result checked against `expected`."""
  np.testing.assert_allclose(fn(values[0]).numpy(), expected(values[0]), rtol=1e-5, atol=1e-6)
  before = lg.compile_count()
  for v in values[1:]: np.testing.assert_allclose(fn(v).numpy(), expected(v), rtol=1e-5, atol=1e-6)
  return lg.compile_count() - before


def data(*shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_a_python_scalar_is_an_argument_after_one_rebuild(fresh):
  xn = data(1000)
  x = lg.tensor(xn)
  scalars = [0.25 + 0.1 * i for i in range(11)]  # none is 1.0, which x * s would drop from the graph
  assert builds(lambda s: (x * s).sum(), scalars, lambda s: (xn * np.float32(s)).sum()) == 1


def test_a_slice_offset_is_an_argument(fresh):
  xn = data(300)
  x = lg.tensor(xn)
  assert builds(lambda i: x[i:i + 8].sum(), list(range(11)), lambda i: xn[i:i + 8].sum()) == 1


def test_a_slice_length_is_an_argument(fresh):
  xn = data(300)
  x = lg.tensor(xn)
  assert builds(lambda n: x[:n].sum(), list(range(2, 13)), lambda n: xn[:n].sum()) == 1


def test_an_mlp_at_new_batch_sizes_builds_each_kernel_once_more(fresh):
  lg.manual_seed(0)
  model = nn.Sequential(nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 5))
  w1, b1, w2, b2 = (p.numpy() for p in model.parameters())
  batches = {b: data(b, 24, seed=b) for b in range(1, 12)}
  forward = lambda b: model(lg.tensor(batches[b]))
  expected = lambda b: np.maximum(batches[b] @ w1.T + b1, 0) @ w2.T + b2
  assert builds(forward, list(range(1, 12)), expected) == 2  # two kernels, each rebuilt once


def test_a_rebuilt_kernel_says_so_under_debug(fresh, monkeypatch, capsys):
  monkeypatch.setattr("lazygrad.codegen.dynamic.DEBUG", 1)
  x = lg.tensor(data(50))
  for s in (2.5, 3.5): (x * s).sum().numpy()
  assert "lazygrad: kernel rebuilt as dynamic, with c0 (float32: 2.5 -> 3.5) as arguments" in capsys.readouterr().out


def test_numbers_that_were_equal_and_then_differ_are_split(fresh):
  """An offset and a length equal in the first two calls share an argument; a call where they differ rebuilds once."""
  xn = data(100)
  x = lg.tensor(xn)
  pairs = [(3, 3), (4, 4), (5, 5), (2, 7), (6, 2), (9, 4)]
  assert builds(lambda p: x[p[0]:p[0] + p[1]].sum(), pairs, lambda p: xn[p[0]:p[0] + p[1]].sum()) == 2


def test_slice_assignment_at_a_moving_position(fresh):
  """A KV cache's write: cache[:, pos:pos+1] = v, a where over padded views whose offsets and bounds move."""
  cache_n = np.zeros((2, 10, 4), np.float32)
  cache = lg.tensor(cache_n)
  before = None
  for pos in range(10):
    v = data(2, 1, 4, seed=pos)
    cache[:, pos:pos + 1] = lg.tensor(v)
    cache_n[:, pos:pos + 1] = v
    read = cache[:, :pos + 1].sum(1)
    np.testing.assert_allclose(read.numpy(), cache_n[:, :pos + 1].sum(1), rtol=1e-5, atol=1e-6)
    if pos == 2: before = lg.compile_count()
  assert lg.compile_count() - before == 0


def test_gather_along_a_dim_whose_size_changes(fresh):
  idx_n = np.array([[0, 2, 1]])
  def run(n):
    xn = data(n, 3, seed=n)
    return lg.tensor(xn).gather(0, lg.tensor(np.minimum(idx_n, n - 1))), np.take_along_axis(xn, np.minimum(idx_n, n - 1), 0)
  results = {n: run(n) for n in (3, 4, 5, 6)}
  for n, (got, ref) in results.items(): np.testing.assert_allclose(got.numpy(), ref)


def test_flipped_and_padded_views_of_changing_length(fresh):
  def expected(n):
    xn = data(n, seed=n)
    return np.pad(xn[::-1], (2, 3), constant_values=0) * 2
  assert builds(lambda n: lg.tensor(data(n, seed=n)).flip(0).pad((2, 3)) * 2, list(range(3, 10)), expected) <= 2


def test_kv_cache_decoding_builds_nothing_after_the_fifth_token(fresh):
  """Attention over a preallocated cache filled by slice assignment and read as cache[:, :, :pos+1], as a torch user
  writes it: every token's numbers differ, no kernel is built for them after the first few."""
  import lazygrad.nn.functional as F
  heads, dim, steps = 2, 8, 12
  rng = np.random.default_rng(0)
  wq, wk, wv = (rng.standard_normal((dim * heads, dim * heads)).astype(np.float32) * 0.3 for _ in range(3))
  k_cache, v_cache = lg.zeros(1, heads, steps, dim), lg.zeros(1, heads, steps, dim)
  kn, vn = np.zeros((1, heads, steps, dim), np.float32), np.zeros((1, heads, steps, dim), np.float32)
  x = rng.standard_normal((steps, dim * heads)).astype(np.float32)
  counts = []
  for pos in range(steps):
    t = lg.tensor(x[pos:pos + 1])
    q, k, v = ((t @ lg.tensor(w)).reshape(1, 1, heads, dim).transpose(1, 2) for w in (wq, wk, wv))
    k_cache[:, :, pos:pos + 1] = k
    v_cache[:, :, pos:pos + 1] = v
    out = F.scaled_dot_product_attention(q, k_cache[:, :, :pos + 1], v_cache[:, :, :pos + 1])
    qn, kk, vv = ((x[pos:pos + 1] @ w).reshape(1, 1, heads, dim).transpose(0, 2, 1, 3) for w in (wq, wk, wv))
    kn[:, :, pos:pos + 1], vn[:, :, pos:pos + 1] = kk, vv
    scores = qn @ kn[:, :, :pos + 1].transpose(0, 1, 3, 2) / np.sqrt(dim)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    np.testing.assert_allclose(out.numpy(), (p / p.sum(-1, keepdims=True)) @ vn[:, :, :pos + 1], rtol=1e-4, atol=1e-5)
    counts.append(lg.compile_count())
  assert counts[-1] - counts[4] == 0, f"kernels built per token: {np.diff(counts).tolist()}"


# ---- the pieces: symbolic index math over arguments, and templates

def test_index_math_over_arguments_evaluates_as_c_does():
  """Products, quotients, remainders and comparisons with variable operands, rendered and simplified, against NumPy
  on every value in a grid (C's truncating division for the non-negative positions index math divides)."""
  i, n, m = Var("i", 0, 50), Var("n", 1, 9), Var("m", 1, 7)
  exprs = [(i * n + 3) // n, (i * n + 3) % n, (i // m) % n, (i * n) // n, ((i + m) * n) % n, (i * 2 + m * n).lt(n * 3),
           i.ge(m + 1), (i * n * 4 + m) // 4]
  grid = np.meshgrid(np.arange(51), np.arange(1, 10), np.arange(1, 8), indexing="ij")
  env = dict(zip("inm", grid))
  refs = [(grid[0] * grid[1] + 3) // grid[1], (grid[0] * grid[1] + 3) % grid[1], (grid[0] // grid[2]) % grid[1],
          grid[0], np.zeros_like(grid[0]), (grid[0] * 2 + grid[2] * grid[1] < grid[1] * 3) * 1,
          (grid[0] >= grid[2] + 1) * 1, (grid[0] * grid[1] * 4 + grid[2]) // 4]
  for e, ref in zip(exprs, refs):
    got = np.broadcast_to(e.evaluate(env), ref.shape)
    np.testing.assert_array_equal(got, ref, err_msg=e.render())
    assert e.min <= got.min() and got.max() <= e.max, f"{e.render()} leaves its range [{e.min}, {e.max}]"
  assert ((i * n) // n).render() == "i" and ((i * n) % n) == Num(0)


@pytest.mark.parametrize("seed", range(6))
def test_views_with_every_number_an_argument_read_what_numpy_reads(seed):
  """A random chain of movements; its view's numbers each replaced by a variable and bound to the same values again
  gives the same positions and validity everywhere (the general forms hold for every value)."""
  rng = np.random.default_rng(seed)
  st = ShapeTracker.from_shape((3, 4, 5))
  for _ in range(5):
    move = rng.integers(5)
    if move == 0: st = st.permute(tuple(rng.permutation(len(st.shape))))
    elif move == 1: st = st.pad(tuple((int(rng.integers(3)), int(rng.integers(3))) for _ in st.shape))
    elif move == 2: st = st.shrink(tuple((b := int(rng.integers(s)), int(rng.integers(b + 1, s + 1))) for s in st.shape))
    elif move == 3: st = st.flip(tuple(a for a in range(len(st.shape)) if rng.integers(2)))
    else: st = st.reshape((int(np.prod(st.shape)),)) if len(st.shape) > 1 else st.reshape(st.shape + (1,))
  from lazygrad.ops import kernel_op, BufferOps
  from lazygrad.dtype import float32
  ast = kernel_op(BufferOps.LOAD, (), float32, st.shape, (1, st))
  key, values, kinds = template(ast)
  variables = {k: Var(f"n{k}", -1000, 1000) if kind in ("stride", "offset") else Var(f"n{k}", 1 if kind == "size" else 0, 1000)
               for k, kind in enumerate(kinds)}
  symbolic = instantiate(ast, variables).arg[1]
  env = {f"n{k}": v for k, v in enumerate(values)}
  idxs = [Var(f"i{d}", 0, s - 1) for d, s in enumerate(st.shape)]
  grids = np.meshgrid(*[np.arange(s) for s in st.shape], indexing="ij")
  env.update({f"i{d}": g for d, g in enumerate(grids)})
  flat, valid = st.expr(idxs)
  sflat, svalid = symbolic.expr(idxs)
  ok = np.broadcast_to(valid.evaluate(env), st.shape).astype(bool)
  np.testing.assert_array_equal(np.broadcast_to(svalid.evaluate(env), st.shape).astype(bool), ok)
  np.testing.assert_array_equal(np.broadcast_to(sflat.evaluate(env), st.shape)[ok], np.broadcast_to(flat.evaluate(env), st.shape)[ok])


@pytest.fixture(params=[True, "offsets"], ids=["every number", "offsets"])
def every_number(monkeypatch, request):
  """Every number of every kernel an argument from its first build: the symbolic path on its own; or every number but
  sizes and strides, with the tiles and vectors of kernels whose sizes are known."""
  return forget_kernels(monkeypatch, devices.get(devices.default_device()), every_number=request.param)


def test_every_number_an_argument_matches_numpy(every_number):
  """Broadcasts, pads, flips, strided slices, reductions over several dims, a matmul, softmax and a gather, each
  built with all its sizes, strides, offsets, bounds and scalars as arguments."""
  a, b = data(3, 5, 4, seed=1), data(4, 6, seed=2)
  idx = np.array([[2, 0, 1, 1]] * 3)
  x, y = lg.tensor(a), lg.tensor(b)
  cases = [
    ((x * 1.5 + 0.25).relu().sum((0, 2)), (np.maximum(a * 1.5 + 0.25, 0)).sum((0, 2))),
    (x.flip(1)[:, 1:4:2].pad((1, 2)) - 3, np.pad(a[:, ::-1][:, 1:4:2], ((0, 0), (0, 0), (1, 2))) - 3),
    (x @ y, a @ b),
    (x.softmax(-1), np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    (x.permute(2, 0, 1).reshape(4, 15).max(1).values, a.transpose(2, 0, 1).reshape(4, 15).max(1)),
    (x[:, 0].gather(1, lg.tensor(idx)), np.take_along_axis(a[:, 0], idx, 1)),
    (x[1:, ::-2].expand(2, 3, 4) * x[0, :3], a[1:, ::-2] * a[0, :3]),
  ]
  for got, ref in cases: np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)
  assert any(s.ast is not None for s in every_number.specializer.structures.values())


def test_zero_and_nan_constants_keep_their_own_kernels(fresh):
  """-0.0 == 0.0 and NaN != NaN: such constants are never arguments, so the sign of a zero reaches the result."""
  x = lg.tensor(np.array([1.0, -2.0, 4.0], np.float32))
  with np.errstate(divide="ignore"):
    for c in (3.0, 5.0, 0.0, -0.0, 2.0, -0.0):
      np.testing.assert_array_equal((x * 0 + c).reciprocal().numpy(), np.reciprocal(np.float32(0) * x.numpy() + np.float32(c)))


def test_a_big_kernel_takes_changing_scalars_as_arguments_and_new_sizes_share_a_vector_kernel(fresh):
  """Above DYNAMIC_WORK (or a reduction of DYNAMIC_REDUCE), a kernel whose scalars changed takes them as arguments; new
  sizes in later schedules share one kernel sized by arguments that keeps its vector code (a family, see
  codegen/dynamic.py), where the backend writes one (OpenCL); elsewhere each new size is built for itself."""
  from lazygrad.codegen.dynamic import DYNAMIC_REDUCE
  xn = data(2 * DYNAMIC_REDUCE)
  x = lg.tensor(xn)
  assert builds(lambda s: (x * s).sum(), [0.5, 1.5, 2.5, 3.5], lambda s: (xn * np.float32(s)).sum()) == 1
  sizes = [DYNAMIC_REDUCE + k for k in (0, 8, 16, 24)]
  families = with_families(fresh)
  assert builds(lambda n: x[:n].sum(), sizes, lambda n: xn[:n].sum()) == (1 if families else 3)
  if families:
    family = next(f for s in fresh.specializer.structures.values() for f in s.families)
    assert family.ast is not None and "float8" in fresh.programs[family.ast].src


def test_sizes_that_keep_coming_back_leave_the_family_for_a_kernel_of_their_own(fresh):
  """New sizes run on a family's kernel at once, which is slower than a kernel of their own (a later model's train
  step ran at half speed): sizes that keep coming back get one in their SHARED_RUNS-th schedule, and the family
  stays for the next new sizes."""
  if not with_families(fresh): pytest.skip("families are OpenCL's")
  from lazygrad.backends.opencl import SHARED_RUNS
  from lazygrad.codegen.dynamic import DYNAMIC_REDUCE
  xn = data(2 * DYNAMIC_REDUCE)
  x = lg.tensor(xn)
  sizes = [DYNAMIC_REDUCE + k for k in (0, 8, 16)]
  assert builds(lambda n: x[:n].sum(), sizes[:2], lambda n: xn[:n].sum()) == 1  # the family, for the second size
  programs = lambda: sorted(p.name for p in fresh.programs.values() if p.kernel is not None)
  assert programs() == ["r_1_4096", "r_dynamic"]
  before = lg.compile_count()
  for n in range(SHARED_RUNS):  # its second schedule on: in its SHARED_RUNS-th, its own kernel is built in the
    if n == SHARED_RUNS - 1:    # background, and it runs on the family's until that is done
      for future, *_ in list(fresh.promoting.values()): future.result()
    np.testing.assert_allclose(x[:sizes[1]].sum().numpy(), xn[:sizes[1]].sum(), rtol=1e-5, atol=1e-6)
    assert len(fresh.promoting) == (n == SHARED_RUNS - 2) and lg.compile_count() - before == (n == SHARED_RUNS - 1)
  assert programs() == ["r_1_4096", "r_1_4104", "r_dynamic"]
  assert builds(lambda n: x[:n].sum(), sizes[1:], lambda n: xn[:n].sum()) == 0  # a new size: the family's kernel


def test_a_promotion_whose_background_build_fails_is_built_in_its_step(fresh, monkeypatch):
  """A background build that raises (a driver's failure) leaves the AST to be built in a later step as any kernel is,
  where a kernel that does not build names itself: here it builds, and the results stay NumPy's."""
  if not with_families(fresh): pytest.skip("families are OpenCL's")
  from lazygrad.backends.opencl import SHARED_RUNS
  from lazygrad.codegen.dynamic import DYNAMIC_REDUCE
  monkeypatch.setattr(fresh, "_build_alone", lambda *a: 1 / 0)
  xn = data(2 * DYNAMIC_REDUCE)
  x = lg.tensor(xn)
  n = DYNAMIC_REDUCE + 8
  builds(lambda n: x[:n].sum(), [DYNAMIC_REDUCE, n], lambda n: xn[:n].sum())
  before = lg.compile_count()
  for _ in range(SHARED_RUNS + 1):
    np.testing.assert_allclose(x[:n].sum().numpy(), xn[:n].sum(), rtol=1e-5, atol=1e-6)
    for future, *_ in list(fresh.promoting.values()): future.exception()  # done, failed
  assert lg.compile_count() - before == 1 and not fresh.promoting


def test_a_jitted_call_at_sizes_that_keep_coming_back_is_replayed_on_kernels_of_their_own(fresh, monkeypatch):
  """Arguments of three lengths, then in turn: the later two run on a family's kernel, get kernels of their own in
  the background (held up here for many replays), and every length ends up replayed whole: its Replayer is made, the
  replays that waited for those builds not counted against it (see jit's REPLAYER_TRIES). NumPy's results throughout."""
  if not with_families(fresh): pytest.skip("families are OpenCL's")
  import threading
  release, build = threading.Event(), fresh._build_alone
  monkeypatch.setattr(fresh, "_build_alone", lambda *a: release.wait(60) and build(*a))
  xn, wn = data(1040, 64), data(64, 64, seed=1)
  x, w = lg.tensor(xn), lg.tensor(wn)
  product = lg.jit(lambda rows: rows @ w)  # 2^22 multiply-adds and more: a big kernel
  sizes = (1024, 1032, 1040)
  for n in [n for n in sizes for _ in range(4)] + list(sizes) * 8:  # each length a few times, then in turn
    np.testing.assert_allclose(product(x[:n]).numpy(), xn[:n] @ wn, rtol=1e-4, atol=1e-4)
  assert len(fresh.promoting) == 2
  release.set()
  for future, *_ in list(fresh.promoting.values()): future.result()
  for n in list(sizes) * 2:
    np.testing.assert_allclose(product(x[:n]).numpy(), xn[:n] @ wn, rtol=1e-4, atol=1e-4)
  assert not fresh.promoting
  recordings = [*product.known.values(), *product.recordings]
  assert len(recordings) == 3 and all(any(rec.replayers.values()) for rec in recordings)


def test_a_family_written_as_scalar_code_is_not_used(fresh):
  """Row sums of a length that fills no vectors (128 x 8193, after 128 x 8192) make a family that OpenCL would write
  as scalar code, one accumulator a row (a long float32 sum 10 times further off than with a vector's partial sums):
  it is not used, and the sum gets a kernel of its own. New rows (96 x 8192) make a family that keeps its vectors."""
  with_families(fresh)
  for rows, cols in ((128, 8192), (128, 8193), (96, 8192)):
    xn = data(rows, cols)
    np.testing.assert_allclose(lg.tensor(xn).sum(1).numpy(), xn.sum(1, dtype=np.float64), rtol=1e-4, atol=1e-3)
  if fresh.specializer.families:
    programs = {p.name: "float8" in p.src for p in fresh.programs.values()}
    assert programs == {"r_128_8192": True, "r_128_8193": True, "r_dynamic": True}, programs


def test_an_unrolled_recurrence_builds_its_step_once_for_any_length(fresh):
  """h = tanh(x[:, t] @ W + h @ U) over t, realized once: each time step's kernels differ only in their offsets, in one
  schedule. Small kernels share one dynamic kernel, so a sequence of any length builds next to nothing."""
  counts = recurrence_builds((10, 17, 23))
  assert counts[0] <= 6 and counts[1] + counts[2] <= 2, counts  # 13, 17 and 23 before


def recurrence_builds(lengths) -> list[int]:
  """h = tanh(x[:, t] @ W + h @ U) over each length's time steps, realized once: the kernels built for each length,
  its result checked against NumPy's."""
  rng = np.random.default_rng(0)
  wn, un = (rng.standard_normal((16, 16)).astype(np.float32) * 0.3 for _ in range(2))
  w, u = lg.tensor(wn), lg.tensor(un)
  counts = []
  for steps in lengths:
    xn = rng.standard_normal((4, steps, 16)).astype(np.float32)
    x, h, hn = lg.tensor(xn), lg.zeros(4, 16), np.zeros((4, 16), np.float32)
    for t in range(steps):
      h = (x[:, t] @ w + h @ u).tanh()
      hn = np.tanh(xn[:, t] @ wn + hn @ un)
    before = lg.compile_count()
    np.testing.assert_allclose(h.numpy(), hn, rtol=1e-4, atol=1e-5)
    counts.append(lg.compile_count() - before)
  return counts


def test_a_big_step_of_a_recurrence_is_built_twice_for_a_new_length_not_once_per_step(fresh, monkeypatch):
  """The same recurrence with every kernel counted as big: at a new length its step's strides change (x[:, t] of a
  (batch, steps, features) tensor), so the step is built for them, once specialized and once with the time step's
  offsets as arguments (vector code kept), then shared by every step. It was built once per time step."""
  monkeypatch.setattr("lazygrad.codegen.dynamic.DYNAMIC_WORK", 1)
  counts = recurrence_builds((10, 17, 23))
  assert counts[1] <= 3 and counts[2] <= 3, counts  # 17 and 23 before


def test_a_kernel_grown_twice_in_one_schedule_is_built_once(fresh, capsys, monkeypatch):
  """Small transposes of three shapes in one schedule: the second makes its sizes and strides arguments, the third,
  whose other size differs too, grows that kernel again. OpenCL, which builds a schedule's kernels together, builds
  only the last for both (the first keeps its own: scalar code would run it slower); Triton builds each as it is
  first launched: three."""
  from lazygrad.codegen import dynamic
  monkeypatch.setattr(dynamic, "DEBUG", 1)
  xs = [data(5, 3, seed=0), data(7, 3, seed=1), data(7, 4, seed=2)]
  outs = [(lg.tensor(x).T * 2).contiguous() for x in xs]
  before = lg.compile_count()
  lg.realize(*outs)
  assert capsys.readouterr().out.count("kernel rebuilt as dynamic") == 2
  assert lg.compile_count() - before == (2 if devices.default_device().startswith("OPENCL") else 3)
  for o, x in zip(outs, xs): np.testing.assert_array_equal(o.numpy(), x.T * 2)
  before = lg.compile_count()  # and a later schedule runs them on it too
  np.testing.assert_array_equal((lg.tensor(xs[0]).T * 2).contiguous().numpy(), xs[0].T * 2)
  assert lg.compile_count() == before


def test_parameter_updates_of_every_shape_share_one_vector_kernel(fresh, capsys, monkeypatch):
  """An update over each parameter (an elementwise kernel, one dim once its contiguous dims merge) is one structure:
  sizes that fill whole vectors share one kernel from the second size on, in the same schedule, and it stays vector
  code (OpenCL) with the size as an argument; a size that does not fill them (10) has a kernel of its own."""
  from lazygrad.codegen import dynamic
  monkeypatch.setattr(dynamic, "DEBUG", 1)
  shapes = [(64, 48), (64,), (32, 64), (32,), (8, 8, 8), (10,)]
  rng = np.random.default_rng(0)
  ps, gs = ([rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(2))
  outs = [(lg.tensor(p) * 0.9 - lg.tensor(g) * 0.01).exp() for p, g in zip(ps, gs)]
  before = lg.compile_count()
  lg.realize(*outs)
  # the shared kernel and the one for 10; Triton, which builds each kernel as it is first launched, builds the first
  # size's too, while OpenCL, which builds a schedule's kernels together, runs the first size on the shared one
  opencl = devices.default_device().startswith("OPENCL")
  assert lg.compile_count() - before == (2 if opencl else 3)
  for o, p, g in zip(outs, ps, gs):
    np.testing.assert_allclose(o.numpy(), np.exp(p * np.float32(0.9) - g * np.float32(0.01)), rtol=2e-6)
  assert re.fullmatch(r"lazygrad: kernel rebuilt as dynamic, with n0\*8 \(size: \d+ -> \d+\) as arguments\n",
                      capsys.readouterr().out)
  if opencl:
    dev = devices.get(devices.default_device())
    assert any(p.name == "e_dynamic" and "float8" in p.src for p in dev.programs.values())
  # the next step (a later schedule) runs on the same kernels: none is promoted to a build of its own
  before = lg.compile_count()
  lg.realize(*[(lg.tensor(p) * 0.9 - lg.tensor(g) * 0.01).exp() for p, g in zip(ps, gs)])
  assert lg.compile_count() == before
  if opencl:  # at one work-group size for every size: PoCL compiles a kernel once per work-group size
    from lazygrad.backends.opencl import DYNAMIC_LOCAL
    shared = [e for e in dev.kernels.values() if type(e) is tuple and e[0] == "e_dynamic"]
    assert len(shared) >= 4 and {e[3][1] for e in shared} == {(DYNAMIC_LOCAL,)}


@pytest.mark.parametrize("gather", [False, True])
def test_row_kernels_at_new_lengths_share_a_family(fresh, gather):
  """A softmax's row kernel over a new number of rows (a cross-entropy's batch times sequence length) runs on one
  family from the third length on, vector code or (with a gather along the rows, scalar code, as its own kernel's
  is) alike."""
  if not with_families(fresh) or not fresh.row_kernels: pytest.skip("families and row kernels are OpenCL's")
  xn = data(512 * 256).reshape(512, 256)
  order = np.random.default_rng(1).permutation(256)
  x, idx = lg.tensor(xn), lg.tensor(order)
  run = lambda n: (x[:n][:, idx] if gather else x[:n]).softmax(-1)

  def expected(n):
    rows = xn[:n][:, order] if gather else xn[:n]
    e = np.exp(rows - rows.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
  assert builds(run, [512, 448], expected) >= 1  # the family, for the second length
  assert builds(run, [448, 384, 320, 256], expected) == 0
