"""Fusion, measured: how many kernels each pattern costs, and that views never launch one."""
import numpy as np
import pytest
import torch
import lazygrad as lg
from lazygrad.ops import LoadOps, UnaryOps
from lazygrad.schedule import schedule
from lazygrad.tensor import matmul_panel
from tests.helpers import forget_kernels


def kernels(fn) -> int:
  before = lg.kernel_count()
  fn()
  return lg.kernel_count() - before


@pytest.fixture
def x():
  lg.manual_seed(0)
  return lg.randn(16, 32).realize()


def test_elementwise_chain_is_one_kernel(x):
  b = lg.randn(32).realize()
  out = ((x * 1.5 + b).relu() * 0.5).exp() - x
  assert kernels(out.realize) == 1
  xn, bn = x.numpy(), b.numpy()
  np.testing.assert_allclose(out.numpy(), np.exp(np.maximum(xn * 1.5 + bn, 0) * 0.5) - xn, rtol=1e-5, atol=1e-6)


def test_sum_of_chain_is_one_kernel(x):
  out = (x * 2 + 1).exp().sum()
  assert kernels(out.realize) == 1
  np.testing.assert_allclose(out.item(), np.exp(x.numpy() * 2 + 1).sum(), rtol=1e-5)


def test_elementwise_after_reduce_fuses(x):
  y = lg.randn(16).realize()
  out = x.abs().sum(1).sqrt() * 2 + y
  assert kernels(out.realize) == 1
  np.testing.assert_allclose(out.numpy(), np.sqrt(np.abs(x.numpy()).sum(1)) * 2 + y.numpy(), rtol=1e-5)


def test_right_operand_is_copied_where_the_backend_wants_panels_or_rows(x):
  """OpenCL on a CPU copies a matmul's right operand to panels of columns first, contiguous down k; on a GPU it copies
  x @ w.T's (a linear layer's) w.T to row-major, for register tiles that share its rows' loads; Triton's tl.dot reads
  either as it is."""
  a, w = lg.randn(64, 64).realize(), lg.randn(64, 64).realize()
  panel = matmul_panel(a.device, 64, 64, 64)
  want_rows = lg.device.get(a.device).row_major_matmul_operand
  assert kernels((a @ w).realize) == (2 if panel else 1)
  out = a @ w.T
  assert kernels(out.realize) == (2 if panel or want_rows else 1)
  np.testing.assert_allclose(out.numpy(), a.numpy() @ w.numpy().T, rtol=1e-4, atol=1e-4)
  small = x @ lg.randn(24, 32).realize().T  # a small product: the copy's launch would cost more than it saves
  assert kernels(small.realize) == 1
  # a weight gradient's shape, g.T @ x over a long batch: on a CPU the left operand goes to panels of rows too
  g, h = lg.randn(1024, 16).realize(), lg.randn(1024, 32).realize()
  grad = g.T @ h
  assert kernels(grad.realize) == (3 if matmul_panel(g.device, 16, 32, 1024) else 1)
  np.testing.assert_allclose(grad.numpy(), g.numpy().T @ h.numpy(), rtol=1e-4, atol=1e-4)


def test_reduction_read_through_a_pad_gets_its_own_kernel(x):
  """Fused after a pad, a reduction's loop ran where the pad reads nothing, with indices out of bounds (it crashed a
  GPT's backward, where q, k and v gradients are padded into one buffer): it is stored, and the pad reads that."""
  w = lg.randn(32, 24).realize()
  y = lg.randn(16, 40).realize()
  out = lg.nn.functional.pad(x @ w, (16, 0)) + y
  assert kernels(out.realize) == 2
  want = np.pad(x.numpy() @ w.numpy(), ((0, 0), (16, 0))) + y.numpy()
  np.testing.assert_allclose(out.numpy(), want, rtol=1e-5, atol=1e-5)


def test_work_under_a_pad_reads_only_inside_its_buffer(x):
  """A pad of inlined work (the gradient of a split, say) masks that work's loads too, not only its result: they
  would read past the end of the buffer where the pad is zero. Lowering checks every unmasked load's range in tests
  (LAZYGRAD_CHECK_BOUNDS, set in conftest.py); here the load's mask is checked directly."""
  from lazygrad.codegen.lower import lower
  from lazygrad.schedule import schedule
  out = lg.nn.functional.pad(x.exp(), (0, 0, 0, 16)) * 2  # 16 more rows
  [item] = [si for si in schedule([out.lazydata.base]) if si.ast is not None]
  plan = lower(item.ast, [item.out.dtype] + [i.dtype for i in item.inputs], [item.out.size] + [i.size for i in item.inputs])
  [load] = [i for i in plan.instrs if i.op == "load"]
  valid = load.arg[2]
  assert [valid.evaluate({"gidx": g}) for g in range(1024)] == [1] * 512 + [0] * 512, valid.render()
  np.testing.assert_allclose(out.numpy(), np.pad(np.exp(x.numpy()), ((0, 16), (0, 0))) * 2, rtol=1e-6)


def rows_here(t) -> bool:
  """Whether t's backend writes row kernels (see schedule.py's row rule)."""
  return lg.device.get(t.device).row_kernels


def test_softmax_is_one_row_kernel_or_three(x):
  # a row kernel where the backend writes them; else max, sum of exp(x - max), and exp(x - max) / sum
  out = x.softmax(-1)
  assert kernels(out.realize) == (1 if rows_here(x) else 3)
  np.testing.assert_allclose(out.numpy(), torch.softmax(torch.tensor(x.numpy()), -1).numpy(), rtol=1e-5, atol=1e-7)


def test_a_value_several_kernels_read_is_stored_once_when_it_reads_many_buffers():
  """Inlined work is recomputed by each kernel that reads it: fine for a value of two buffers, not for a residual
  stream of many (one buffer, written once, is then read by each)."""
  a, b, c, d = [lg.randn(64, 32).realize() for _ in range(4)]
  cheap = a * b + 1
  assert kernels(lambda: lg.realize(cheap.sum(1), cheap.amax(1))) == 2
  dear = a + b * c + d.exp()
  total, top = dear.sum(1), dear.amax(1)
  assert kernels(lambda: lg.realize(total, top)) == 3
  want = a.numpy() + b.numpy() * c.numpy() + np.exp(d.numpy())
  np.testing.assert_allclose(total.numpy(), want.sum(1), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(top.numpy(), want.max(1), rtol=1e-6)
  small = [lg.randn(4, 8).realize() for _ in range(4)]  # under 1024 elements: recomputing beats a launch
  dear_small = small[0] + small[1] * small[2] + small[3].exp()
  assert kernels(lambda: lg.realize(dear_small.sum(1), dear_small.amax(1))) == 2
  # ... unless it reads many: a sum of 8 scalars that two kernels read is stored once, not recomputed per element
  scalars = [lg.randn(()).realize() for _ in range(8)]
  shared = sum(scalars[1:], scalars[0])
  out = [shared * a, shared + b]
  assert kernels(lambda: lg.realize(*out)) == 3
  for o, want in zip(out, (sum(s.numpy() for s in scalars) * a.numpy(), sum(s.numpy() for s in scalars) + b.numpy())):
    np.testing.assert_allclose(o.numpy(), want, rtol=1e-5, atol=1e-6)


def test_work_after_a_reduction_runs_once_per_output_before_a_broadcast():
  """log_softmax's log of the row sums runs in the sum's kernel, once per row, rather than in the last kernel for
  every element that reads it through the broadcast."""
  from lazygrad.ops import ReduceOps, UnaryOps
  from lazygrad.schedule import schedule
  xt = torch.randn(64, 100)
  out = lg.Tensor(xt.numpy()).log_softmax(-1)
  if rows_here(out):  # one row kernel: the log is a per-row value, written between the sum's loop and the last loop
    plan = _lowered(out)
    [log] = [i for i in plan.instrs if i.op == "alu" and i.arg is UnaryOps.LOG2]
    assert len(plan.reduces) == 2 and not any("ridx" in j.arg[1].vars() for j in _needed(log) if j.op == "load")
    assert log in _needed(plan.value) and log not in _needed(plan.reduces[1])
  else:
    asts = [si.ast for si in schedule([out.lazydata.base]) if si.ast is not None]
    logs = [sum(n.op is UnaryOps.LOG2 for n in ast.walk()) for ast in asts]
    sums = [any(n.op is ReduceOps.SUM for n in ast.walk()) for ast in asts]
    assert len(asts) == 3 and logs == [0, 1, 0] and sums == [False, True, False]  # max; sum and log; x - m - log
  np.testing.assert_allclose(out.numpy(), torch.log_softmax(xt, -1).numpy(), rtol=1e-5, atol=1e-5)


def test_a_gelu_after_a_product_runs_in_the_products_kernel():
  """GELU reads its input twice (x * phi(x)): the product's kernel computes the GELU after its loop, where the paths
  meet, so a decoding step's MLP is two kernels, and the next product reads the stored GELU instead of computing it
  again for each of its outputs (a small value, 512 elements, read 128 times each)."""
  rng = np.random.default_rng(0)
  x, w1, w2 = (rng.standard_normal(s, dtype=np.float32) for s in ((1, 128), (512, 128), (128, 512)))
  X, W1, W2 = lg.Tensor(x), lg.Tensor(w1), lg.Tensor(w2)
  lg.realize(X, W1, W2)
  with lg.no_grad():
    out = lg.nn.functional.gelu(X @ W1.T) @ W2.T
  first, second = schedule([out.lazydata.base])
  exponentials = lambda item: sum(n.op in (UnaryOps.EXP, UnaryOps.EXP2) for n in item.ast.walk())
  assert exponentials(first) >= 1 and exponentials(second) == 0
  assert kernels(out.realize) == 2
  want = torch.nn.functional.gelu(torch.from_numpy(x) @ torch.from_numpy(w1).T) @ torch.from_numpy(w2).T
  np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


def test_linear_relu_is_one_kernel(x):
  w, b = lg.randn(32, 8).realize(), lg.randn(8).realize()
  out = (x @ w + b).relu()
  assert kernels(out.realize) == 1
  np.testing.assert_allclose(out.numpy(), np.maximum(x.numpy() @ w.numpy() + b.numpy(), 0), rtol=1e-4, atol=1e-5)


def test_matmul_is_one_kernel(x):
  w = lg.randn(32, 8).realize()
  assert kernels((x @ w).realize) == 1


def test_broadcast_never_materializes(x):
  b = lg.randn(1, 32).realize()
  before = lg.memory_stats()["in_use"]
  out = x + b.expand(16, 32)
  assert kernels(out.realize) == 1
  # only the output was allocated: 16*32 floats
  assert lg.memory_stats()["in_use"] - before == 16 * 32 * 4


def test_movement_ops_launch_nothing(x):
  n = kernels(lambda: x.permute(1, 0).reshape(4, 8, 16)[:, ::-1, 1:9].flip(0).expand(2, 4, 8, 8))
  assert n == 0


def test_views_of_views_copy_once(x):
  out = x.T.reshape(8, 64)[::2].contiguous()
  assert kernels(out.realize) == 1
  np.testing.assert_array_equal(out.numpy(), x.numpy().T.reshape(8, 64)[::2])


def test_contiguous_of_contiguous_is_free(x):
  assert kernels(lambda: x.contiguous().realize()) == 0


# an SGD step of a 2-layer MLP: forward, backward, the four parameter updates and the loss (computed with the step,
# for the user to read after it: see test_optim's test_the_loss_is_computed_by_the_steps_schedule)
MLP_STEP_KERNELS = 12


def test_mlp_sgd_step_kernel_count_and_values():
  rng = np.random.default_rng(0)
  xs = rng.standard_normal((16, 32)).astype(np.float32)
  labels = np.arange(16) % 10
  init = [rng.standard_normal(s).astype(np.float32) * 0.1 for s in ((32, 64), (64,), (64, 10), (10,))]
  params = [lg.Tensor(p, requires_grad=True) for p in init]
  ref = [torch.tensor(p, requires_grad=True) for p in init]
  x, onehot = lg.Tensor(xs), lg.Tensor(np.eye(10, dtype=np.float32)[labels])

  def step():
    w1, b1, w2, b2 = params
    logp = ((x @ w1 + b1).relu() @ w2 + b2).log_softmax(-1)
    loss = -(logp * onehot).sum() / 16
    loss.backward()
    with lg.no_grad():
      for p in params:
        p.assign(p - 0.1 * p.grad)
        p.grad = None
    lg.realize(*params)

  step()  # the first step also realizes the constants it was built from
  n = kernels(step)
  assert n <= MLP_STEP_KERNELS, f"an SGD step now takes {n} kernels (was {MLP_STEP_KERNELS})"

  opt = torch.optim.SGD(ref, lr=0.1)
  for _ in range(2):
    w1, b1, w2, b2 = ref
    loss = torch.nn.functional.cross_entropy(torch.relu(torch.tensor(xs) @ w1 + b1) @ w2 + b2, torch.tensor(labels))
    opt.zero_grad(); loss.backward(); opt.step()
  for p, r in zip(params, ref):
    np.testing.assert_allclose(p.numpy(), r.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_long_scalar_work_broadcast_very_far_gets_its_own_kernel():
  """An optimizer's bias correction: a scalar that takes many ops, read by every element of a big update, is computed
  once in a tiny kernel; a short one is recomputed inline, and so is a long one read by few elements."""
  t = lg.tensor(3.0).realize()
  long_scalar = t
  for _ in range(6): long_scalar = (long_scalar * 0.5 + 1).exp().log()  # 4 ops a round, 24 in all
  big, small = lg.randn(1 << 16).realize(), lg.randn(256).realize()
  assert kernels((big * (t * 0.5 + 1)).realize) == 1
  assert kernels((small * long_scalar).realize) == 1
  want = np.float32(3.0)
  for _ in range(6): want = np.log(np.exp(want * np.float32(0.5) + np.float32(1)))
  out = big * long_scalar
  assert kernels(out.realize) == 2
  np.testing.assert_allclose(out.numpy(), big.numpy() * want, rtol=1e-5)


def test_linear_weight_gradient_is_made_in_the_weight_layout():
  """x @ W.T's gradient for W comes out contiguous in W's own layout, not as a transposed view of x.T @ g."""
  w = lg.randn(64, 96, requires_grad=True)
  x = lg.randn(32, 96)
  (x @ w.T).sum().backward()
  assert w.grad.lazydata.st.contiguous
  np.testing.assert_allclose(w.grad.numpy(), np.ones((32, 64), np.float32).T @ x.numpy(), rtol=1e-4, atol=1e-4)


def test_a_graph_of_the_same_shape_reuses_its_schedule(monkeypatch):
  """Eager code builds the same graph every step: the second is scheduled from the first's plan, with its own
  buffers. A graph that reads one buffer twice where the first read two, or holds another constant, is new."""
  import lazygrad.schedule as sched
  fresh = []
  monkeypatch.setattr(sched, "CHECK_SCHEDULES", 0)  # it schedules afresh to compare: here only misses should
  monkeypatch.setattr(sched, "_schedule", lambda *a, _f=sched._schedule: fresh.append(1) or _f(*a))
  xs = [np.random.default_rng(k).standard_normal((8, 5)).astype(np.float32) for k in range(3)]
  a, b, c = [lg.Tensor(x).realize() for x in xs]
  f = lambda x, y, k: ((x * y).exp() + k).sum(1)
  want = lambda x, y, k: (np.exp(x * y) + k).sum(1)
  for x, y, k, new in ((a, b, 1.0, 1), (b, c, 1.0, 0), (c, a, 1.0, 0), (a, a, 1.0, 1), (b, b, 1.0, 0), (a, b, 2.0, 1)):
    before = len(fresh)
    np.testing.assert_allclose(f(x, y, k).numpy(), want(x.numpy(), y.numpy(), k), rtol=1e-5)
    assert len(fresh) - before == new


def test_a_long_cat_writes_each_piece_into_its_region():
  """stack of 40 steps: a kernel per piece, each computing its piece (elementwise work fused in) straight into its
  region of one buffer; a few pieces stay one fused kernel that sums them padded."""
  rng = np.random.default_rng(0)
  steps = [lg.Tensor(rng.standard_normal((3, 5)).astype(np.float32)).realize() for _ in range(40)]
  out = lg.stack([(s * 2).relu() for s in steps], 1)
  assert kernels(out.realize) == 40
  np.testing.assert_array_equal(out.numpy(), np.stack([np.maximum(s.numpy() * 2, 0) for s in steps], 1))
  few = lg.cat(steps[:3], 0) + 1
  assert kernels(few.realize) == 1
  np.testing.assert_array_equal(few.numpy(), np.concatenate([s.numpy() for s in steps[:3]]) + 1)


def test_the_gradient_of_many_slices_of_a_tensor_is_a_cat():
  """One time step per step, as an unrolled recurrence reads its input projection: the slices' gradients are written
  into their regions (zeros between), not summed as 30 tensors each padded to the whole."""
  x = np.random.default_rng(1).standard_normal((32, 4, 6)).astype(np.float32)
  a, b = lg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
  h, th = lg.zeros(4, 6), torch.zeros(4, 6)
  for t in range(1, 31): h, th = (h + a[t]).tanh(), (th + b[t]).tanh()
  h.sum().backward(); th.sum().backward()
  grad = a.grad.lazydata.base
  assert grad.op is LoadOps.CAT and len(grad.srcs) == 32  # 30 slices, and zeros before and after them
  np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_a_cats_pieces_are_vector_code_where_each_lane_stores_next_to_the_last():
  """A piece whose region holds whole vectors along a row (16 columns of 96) is copied by vector code: its scalar
  copy of a transposed piece ran at 2 ns an element (the GPT's q, k and v gradients)."""
  rng = np.random.default_rng(0)
  pieces = [lg.Tensor(rng.standard_normal((16, 64)).astype(np.float32)).realize() for _ in range(6)]
  out = lg.cat([p.T * 2 for p in pieces], 1)
  dev = lg.device.get(out.device)
  out.realize()
  np.testing.assert_array_equal(out.numpy(), np.concatenate([p.numpy().T * 2 for p in pieces], 1))
  if type(dev).__module__.endswith("opencl"):
    pieces = [p.src for p in dev.programs.values() if p.plan is not None and p.plan.store is not None and p.plan.out_size == 1024]
    assert pieces and all("float8" in src for src in pieces)


def test_the_gradients_of_a_few_transposed_slices_are_a_cat():
  """q, k and v split from one product and transposed into heads: their gradients are written into their regions
  of x's (a kernel each), not summed padded, where every element gathered all three behind masks."""
  x = np.random.default_rng(2).standard_normal((2, 8, 48)).astype(np.float32)
  a, b = lg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
  heads = lambda t: [u.reshape(2, 8, 4, 4).transpose(1, 2) for u in t.split(16, -1)]
  q, k, v = heads(a)
  tq, tk, tv = heads(b)
  ((q @ k.transpose(-1, -2)).softmax(-1) @ v).sum().backward()
  ((tq @ tk.transpose(-1, -2)).softmax(-1) @ tv).sum().backward()
  assert a.grad.lazydata.base.op is LoadOps.CAT and len(a.grad.lazydata.base.srcs) == 3
  np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make, merged", [
  (lambda a, b: a * 2 + b, (384,)),                                  # contiguous: one dim
  (lambda a, b: a + b[0, 0, 0], (384,)),                              # a broadcast scalar walks any dims as one
  (lambda a, b: a + b[0, 0], (32, 12)),                                # a broadcast row: dims 0 and 1 merge
  (lambda a, b: a + b[:1], (4, 96)),                                   # a broadcast down dim 0: the others merge
  (lambda a, b: a.permute(0, 2, 1) + b.permute(0, 2, 1), (4, 12, 8)),  # transposed: nothing merges
  (lambda a, b: a[:, 1:] + b[:, :-1], (4, 84)),                        # shrunk rows: only the last two dims merge
  (lambda a, b: a.flip(2) * 2, (32, 12)),                             # a flipped dim: the others merge
])
def test_an_elementwise_kernel_walks_dims_its_views_walk_as_one(make, merged):
  """schedule.merge_dims: adjacent dims that every view reads with one stride merge, so an update of a (512, 784)
  and of a (512, 512) parameter are one structure; the results stay NumPy's."""
  rng = np.random.default_rng(0)
  an, bn = rng.standard_normal((4, 8, 12)).astype(np.float32), rng.standard_normal((4, 8, 12)).astype(np.float32)
  out = make(lg.tensor(an), lg.tensor(bn))
  (item,) = [i for i in schedule([out.lazydata]) if i.ast is not None]
  assert item.ast.shape == merged
  np.testing.assert_allclose(out.numpy(), make(torch.tensor(an), torch.tensor(bn)).numpy(), rtol=1e-6, atol=1e-6)


def test_an_elementwise_custom_value_is_made_again_from_its_trace(monkeypatch):
  """tanh, gelu, erf...: their value is traced once per shape and dtype and made again from the trace, the Tensor ops
  that built it not run (a third of the time an LSTM step's graph took); through a view too, with the same kernel and
  values as built by those ops, and torch's gradient."""
  from lazygrad import function
  import lazygrad.nn.functional as F
  rng = np.random.default_rng(0)
  xn = rng.standard_normal((8, 24), dtype=np.float32) * 3
  ops = []
  real = function.Exp.forward
  monkeypatch.setattr(function.Exp, "forward", lambda self, x: ops.append(1) or real(self, x))
  for name, fn, tfn in (("tanh", lambda t: t.tanh(), torch.tanh), ("gelu", F.gelu, torch.nn.functional.gelu)):
    x = lg.tensor(xn, requires_grad=True)
    first = fn(x[:, 8:])  # a view: its trace reads the view's elements
    ops.clear()
    again = fn(x[:, 8:] + 0)  # another tensor of that shape: made from the trace, no Tensor op (no Exp) run
    assert ops == [] and any(k[0] == name for k in function._traces), name
    tx = torch.tensor(xn, requires_grad=True)
    np.testing.assert_allclose(again.numpy(), tfn(tx[:, 8:]).detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    (first.sum() + again.sum()).backward()
    (tfn(tx[:, 8:]).sum() * 2).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


def _lowered(t):
  """The Plan of the one kernel that computes t."""
  from lazygrad.codegen.lower import lower
  [item] = [si for si in schedule([t.lazydata.base]) if si.ast is not None]
  return lower(item.ast, [item.out.dtype] + [i.dtype for i in item.inputs], [item.out.size] + [i.size for i in item.inputs])


def _needed(root) -> list:
  """The instructions root computes from, itself included, up to the reductions it reads (not their loops)."""
  seen, stack = [], [root]
  while stack:
    i = stack.pop()
    if any(i is j for j in seen): continue
    seen.append(i)
    if i.op != "reduce" or i is root: stack.extend(i.srcs)
  return seen


def test_abs_and_at_most_are_one_instruction_each_with_torchs_values():
  """Tensor.abs (two NaN-propagating maxes) and <= on floats ((a < b) | (a == b)) are written as one instruction
  each: |x| and a <= b. NaN, -0.0 and infinities as torch gives them."""
  from lazygrad.ops import BinaryOps
  xs = np.array([-2.5, -0.0, 0.0, 1.5, np.nan, np.inf, -np.inf, 3.0], dtype=np.float32)
  ys = np.array([-2.5, 0.0, -0.0, 2.0, 1.0, np.inf, 0.0, np.nan], dtype=np.float32)
  x, y = lg.tensor(xs), lg.tensor(ys)
  tx, ty = torch.from_numpy(xs), torch.from_numpy(ys)
  for t, ref in ((x.abs(), tx.abs()), (x <= y, tx <= ty), (x >= y, tx >= ty), ((x >= 0).where(x.abs(), -x), None)):
    ops = [i.arg for i in _lowered(t).instrs if i.op == "alu"]
    assert BinaryOps.OR not in ops and BinaryOps.MAX not in ops, ops
    assert UnaryOps.ABS in ops or BinaryOps.CMPLE in ops, ops
    if ref is not None: np.testing.assert_array_equal(t.numpy(), ref.numpy())
  np.testing.assert_array_equal(np.signbit(x.abs().numpy()), np.zeros(8, bool))  # |-0.0| is +0.0


def test_opencl_fuses_a_multiply_and_an_add_across_instructions():
  """x * x - y is one multiply-add on OpenCL, rounded once: with x = 1 + 2^-12 and y = 1 + 2^-11 it is 2^-24, as
  float64 gives, where rounding x * x first gives 0."""
  x, y = lg.tensor([1 + 2.0**-12] * 8), lg.tensor([1 + 2.0**-11] * 8)
  if not type(lg.device.get(x.device)).__module__.endswith("opencl"): pytest.skip("OpenCL's rendering")
  np.testing.assert_array_equal((x * x - y).numpy(), np.full(8, 2.0**-24, np.float32))


@pytest.mark.parametrize("cols", [1024, 13])  # vector lanes along the row; scalar code (13 fills no vector)
def test_layer_norm_softmax_and_cross_entropy_match_torch_as_row_kernels(cols):
  """Reductions over a row read back across it (layer norm's mean and variance, softmax's max and sum) are one row
  kernel with the work that reads them, where the backend writes row kernels: forward and gradients as torch's."""
  rng = np.random.default_rng(cols)
  xn, g = rng.standard_normal((6, cols)).astype(np.float32), rng.standard_normal((6, cols)).astype(np.float32)
  wn, bn = rng.standard_normal(cols).astype(np.float32), rng.standard_normal(cols).astype(np.float32)
  x, w, b = (lg.Tensor(a, requires_grad=True) for a in (xn, wn, bn))
  tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xn, wn, bn))
  out = lg.nn.functional.layer_norm(x, (cols,), w, b)
  assert kernels(out.realize) == (1 if rows_here(x) else 3)
  tout = torch.nn.functional.layer_norm(tx, (cols,), tw, tb)
  (out * lg.Tensor(g)).sum().backward()
  (tout * torch.tensor(g)).sum().backward()
  for ours, theirs in ((out, tout), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-5)
  x, tx = lg.Tensor(xn, requires_grad=True), torch.tensor(xn, requires_grad=True)
  s, ts = x.softmax(-1), tx.softmax(-1)
  assert kernels(s.realize) == (1 if rows_here(x) else 3)  # its gradient reads only s: the forward stays one kernel
  s.backward(lg.Tensor(g).realize())
  ts.backward(torch.tensor(g))
  assert kernels(x.grad.realize) == 1 if rows_here(x) else True  # s * (g - sum(g * s)): one row kernel
  np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-7)
  y = rng.integers(0, cols, 6)
  x, tx = lg.Tensor(xn, requires_grad=True), torch.tensor(xn, requires_grad=True)
  loss, tloss = lg.nn.functional.cross_entropy(x, lg.Tensor(y)), torch.nn.functional.cross_entropy(tx, torch.tensor(y))
  loss.backward()
  tloss.backward()
  np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-6)
  np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_a_masked_softmax_in_a_row_kernel_keeps_torchs_infinities_and_nans():
  """A causal mask's -inf, a row that is all -inf (NaN, as torch), a NaN in a row (its row NaN), huge values."""
  xn = np.random.default_rng(3).standard_normal((4, 3, 16, 16)).astype(np.float32) * 30
  xn[0, 0, 0, 5], xn[1, 2, 3] = np.nan, -np.inf
  xn[2, 1, 4, 7] = 1e30
  mask = np.triu(np.ones((16, 16), bool), 1)
  x, tx = lg.Tensor(xn), torch.tensor(xn)
  out = x.masked_fill(lg.Tensor(mask), float("-inf")).softmax(-1)
  np.testing.assert_allclose(out.numpy(), tx.masked_fill(torch.tensor(mask), float("-inf")).softmax(-1).numpy(),
                             rtol=1e-5, atol=1e-7)


def test_a_softmax_row_kernel_computes_exp_once_per_element():
  """The sum's loop writes exp(x - max) to the output, and the last loop reads it back to divide: one exp per
  element, where the three kernels computed it twice."""
  x = lg.randn(8, 256).realize()
  if not rows_here(x): pytest.skip("a backend that writes row kernels")
  from lazygrad.backends import opencl
  src, _ = opencl.render(_lowered(x.softmax(-1)), cpu=True)
  *loops, last = src[src.index("__kernel"):].split("for (")
  assert "exp_f8(" in loops[-1] and "exp_f8(" not in last and "data0 +" in loops[-1], src


@pytest.mark.parametrize("width, walked", [(1024, True), (512, False)])
def test_a_transposing_copy_walks_its_input_in_order_where_its_rows_are_4_kib_apart(width, walked, monkeypatch):
  """A copy to panels of 4 columns (a weight gradient's transposed operand) reads 16 bytes of each row in turn: with
  rows 4 KiB apart (1024 float32), the cache sets alias, so OpenCL walks the copy in its input's order and stores
  where each output lies; 2 KiB apart, it keeps the output's order."""
  from lazygrad.codegen.lower import input_order_of
  x = np.random.default_rng(0).standard_normal((64, width)).astype(np.float32)
  out = lg.Tensor(x).T.reshape(width // 4, 4, 64).permute(0, 2, 1).contiguous()
  dev = forget_kernels(monkeypatch, lg.device.get(out.device))  # its own kernel, not one sized by arguments
  [item] = [si for si in schedule([out.lazydata.base]) if si.ast is not None]
  assert (input_order_of(item.ast) is not None) == walked
  np.testing.assert_array_equal(out.numpy(), x.T.reshape(width // 4, 4, 64).transpose(0, 2, 1))
  if type(dev).__module__.endswith("opencl"):  # its program: stores where outputs lie, 4 at a time
    [src] = [p.src for p in dev.programs.values() if p.built is item.ast]
    assert ("(data0 + (gvec*4))" not in src) == walked and "float4" in src, src


@pytest.mark.parametrize("cols", [64, 13])
def test_row_kernels_with_padding_per_row_inputs_and_strides_match_torch(cols):
  """Row kernels whose loads are masked along the row (a padded softmax: scalar code), read a per-row input (one value
  a row) or a strided slice, and an RMS norm: torch's values."""
  rng = np.random.default_rng(cols)
  xn, bn = rng.standard_normal((2, 3, cols)).astype(np.float32) * 4, rng.standard_normal((2, 3, 1)).astype(np.float32)
  x, b, tx, tb = lg.Tensor(xn), lg.Tensor(bn), torch.tensor(xn), torch.tensor(bn)
  pairs = [(lg.nn.functional.pad(x, (1, 2)).softmax(-1), torch.nn.functional.pad(tx, (1, 2)).softmax(-1)),
           ((x + b).softmax(-1), (tx + tb).softmax(-1)),
           (x[..., ::2].log_softmax(-1), tx[..., ::2].log_softmax(-1)),
           (x * (x.square().mean(-1, keepdim=True) + 1e-6).rsqrt(), tx * (tx.square().mean(-1, keepdim=True) + 1e-6).rsqrt())]
  for ours, theirs in pairs:
    if rows_here(x): assert kernels(ours.realize) == 1
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
