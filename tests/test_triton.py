"""The Triton backend: the shape of the kernels it writes, dtypes at its edges, and its errors.

Runs on the TRITON device whatever LAZYGRAD_DEVICE says; with no GPU that is Triton's interpreter.
"""
import json
import os
import subprocess
import sys
import numpy as np
import pytest

# the backend first: on a machine without a GPU it must turn the interpreter on before triton is imported
backend = pytest.importorskip("lazygrad.backends.triton")
import lazygrad as lg  # noqa: E402
from lazygrad.codegen.lower import lower  # noqa: E402
from lazygrad.dtype import DType  # noqa: E402
from lazygrad.schedule import schedule  # noqa: E402
from tests.helpers import forget_kernels  # noqa: E402

DEV = "TRITON"


def plans(t: lg.Tensor):
  """The lowered plan of every kernel that realizing t would launch."""
  items = [si for si in schedule([t.lazydata.base]) if si.ast is not None]
  return [lower(si.ast, [si.out.dtype] + [i.dtype for i in si.inputs], [si.out.size] + [i.size for i in si.inputs])
          for si in items]


def only_plan(t: lg.Tensor):
  ps = plans(t)
  assert len(ps) == 1, f"expected one kernel, got {len(ps)}"
  return ps[0]


def test_elementwise_chain_renders_one_masked_tile():
  a = lg.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device=DEV)
  b = lg.Tensor(np.ones(4, np.float32), device=DEV)
  out = ((a + b) * 2).exp()
  src, name = backend.render(only_plan(out))
  assert src == backend.render(only_plan(out))[0], "render is a pure function of the plan"
  for text in ("@triton.jit", f"def {name}(data0, data1, data2, BLOCK: tl.constexpr):", "pid = tl.program_id(0)",
               "gidx = pid * BLOCK + tl.arange(0, BLOCK)", "gmask = gidx < 12",
               "tl.load(data1 + gidx, mask=gmask, other=0.0)", "tl.load(data2 + gidx % 4, mask=gmask, other=0.0)",
               "fast_exp(", "tl.store(data0 + gidx, "):
    assert text in src, f"{text!r} not in\n{src}"
  assert "for " not in src and "RBLOCK" not in src
  an = np.arange(12, dtype=np.float32).reshape(3, 4)
  np.testing.assert_allclose(out.numpy(), np.exp((an + 1) * 2), rtol=1e-5)


def test_reduction_renders_a_2d_tile_loop():
  x = np.random.default_rng(0).standard_normal((5, 300)).astype(np.float32)
  t = lg.Tensor(x, device=DEV)
  out = (t * 2).abs().sum(1).sqrt()  # the sqrt runs after the loop, in the same kernel
  src, _ = backend.render(only_plan(out))
  for text in ("BLOCK: tl.constexpr, RBLOCK: tl.constexpr", "gmask = gidx < 5",
               "acc = tl.zeros([BLOCK, RBLOCK], dtype=tl.float32)", "for r0 in range(0, 300, RBLOCK):",
               "ridx = r0 + tl.arange(0, RBLOCK)[None, :]", "rmask = ridx < 300",
               "tl.load(data1 + (gidx[:, None] * 300 + ridx), mask=gmask[:, None] & rmask, other=0.0)",
               "acc = acc + tl.where(rmask, ", "tl.sum(acc, axis=1)", "tl.sqrt_rn(", "mask=gmask)"):
    assert text in src, f"{text!r} not in\n{src}"
  np.testing.assert_allclose(out.numpy(), np.sqrt(np.abs(x * 2).sum(1)), rtol=1e-5)


def test_rows_gathered_by_loaded_indices_are_reduced():
  """An embedding lookup summed over its row: each output's row index is loaded before the loop and is a column
  [BLOCK, 1] inside it (as a [BLOCK] vector it broadcast against the [1, RBLOCK] row offsets only when BLOCK happened
  to equal RBLOCK)."""
  rng = np.random.default_rng(2)
  table, idx = rng.standard_normal((32, 16)).astype(np.float32), np.array([3, 1, 4, 1, 5])
  out = lg.Tensor(table, device=DEV)[lg.Tensor(idx, device=DEV)].sum(1)
  np.testing.assert_allclose(out.numpy(), table[idx].sum(1), rtol=1e-5)


def test_a_long_cat_of_single_elements_stores_each_in_its_place():
  """A cat's piece of one element writes one place that does not move with gidx: still a block for tl.store."""
  x = np.arange(6, dtype=np.float32)
  t = lg.Tensor(x, device=DEV)
  np.testing.assert_array_equal(lg.cat([t[i:i + 1] * 2 for i in reversed(range(6))]).numpy(), x[::-1] * 2)


def test_max_reduction_propagates_nan():
  x = np.random.default_rng(1).standard_normal((4, 70)).astype(np.float32)
  x[2, 33] = np.nan
  got = lg.Tensor(x, device=DEV).max(1)[0].numpy()
  np.testing.assert_array_equal(got, x.max(1))  # NumPy's max returns NaN too, as torch.amax does


def test_float16_round_trip_and_arithmetic():
  h = (np.random.default_rng(2).standard_normal(1000) * 100).astype(np.float16)
  t = lg.Tensor(h, device=DEV)
  np.testing.assert_array_equal(t.numpy(), h)
  out = t * 3 + 1
  assert out.dtype == lg.float16
  src, _ = backend.render(only_plan(out))
  assert ".to(tl.float32)" in src and ".to(tl.float16)" in src  # stored as fp16, computed in fp32
  np.testing.assert_array_equal(out.numpy(), (h.astype(np.float32) * 3 + 1).astype(np.float16))


def test_bool_kernel_stores_one_byte_per_element():
  rng = np.random.default_rng(3)
  a, b = rng.standard_normal(100).astype(np.float32), rng.standard_normal(100).astype(np.float32)
  c = rng.random(100) > 0.5
  ta, tb, tc = (lg.Tensor(v, device=DEV) for v in (a, b, c))
  out = (ta < tb) & tc.logical_not() | (ta == ta).logical_not()
  got = out.numpy()
  assert got.dtype == np.bool_
  np.testing.assert_array_equal(got, (a < b) & ~c)
  assert set(got.view(np.uint8).tolist()) <= {0, 1}
  np.testing.assert_array_equal(tc.any().numpy(), c.any())
  np.testing.assert_array_equal(tc.sum().numpy(), c.sum())


def test_integer_division_truncates_like_c():
  a = np.array([7, -7, 7, -7, 0, 9], np.int32)
  b = np.array([2, 2, -2, -2, 3, 0], np.int32)
  ta, tb = lg.Tensor(a, device=DEV), lg.Tensor(b, device=DEV)
  q = ta.div(tb, rounding_mode="trunc").numpy()
  r = ta.fmod(tb).numpy()
  np.testing.assert_array_equal(q, [3, -3, -3, 3, 0, 0])  # a zero divisor gives 0 (C leaves it undefined)
  np.testing.assert_array_equal(r, [1, -1, 1, -1, 0, 0])


def test_unsupported_dtype_is_named():
  plan = only_plan(lg.Tensor(np.ones(4, np.float32), device=DEV) * 2)
  fp8 = DType("float8_e4m3", 1, "f", 0, np.uint8)
  plan.bufs[0] = fp8
  with pytest.raises(TypeError, match="float8_e4m3"):
    backend.render(plan)


@pytest.mark.skipif(not backend.INTERPRET, reason="a GPU runs bfloat16")
def test_bfloat16_in_the_interpreter_is_refused_by_name():
  t = lg.Tensor(np.ones(4, np.float32), device=DEV).to(lg.bfloat16)
  with pytest.raises(TypeError, match="bfloat16"):
    t.numpy()


def test_a_kernel_that_fails_to_load_carries_its_source():
  plan = only_plan(lg.Tensor(np.ones(4, np.float32), device=DEV) + 1)
  dev = lg.device.get(DEV)
  bad = "import triton\n\n@triton.jit\ndef broken(data0:\n    pass\n"
  if not backend.INTERPRET: pytest.skip("covered by the compile check below")
  with pytest.raises(backend.KernelError, match="(?s)failed to load kernel.*--- source ---.*def broken"):
    dev.compile(bad, plan, {"BLOCK": 4})


def matmul_source(out: lg.Tensor) -> str:
  """The source of out's one kernel, which must be a tl.dot kernel."""
  plan = only_plan(out)
  assert backend.matmul(plan) is not None, "not seen as a matrix product"
  return backend.render(plan)[0]


def rand(*shape, dtype=np.float32, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# float16: inputs are exact and sums are float32 either way, so results differ by the final rounding at most
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float16: dict(rtol=1e-3, atol=1e-3)}


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
def test_matmul_renders_dot_tiles_in_groups_of_rows(dtype):
  an, bn = rand(37, 29, dtype=dtype), rand(29, 23, dtype=dtype, seed=1)  # no size is a multiple of 16
  out = lg.Tensor(an, device=DEV) @ lg.Tensor(bn, device=DEV)
  src = matmul_source(out)
  for text in ("BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, GROUP_M: tl.constexpr",
               "per_group = GROUP_M * tl.cdiv(23, BN)", "pid_n = (pid % per_group) // group_rows",
               "m = pid_m * BM + tl.arange(0, BM)[:, None]", "gidx = m * 23 + n", "gmask = mmask & nmask",
               "acc = tl.zeros([BM, BN], dtype=tl.float32)", "for r0 in range(0, 29, BK):", "tl.dot(",
               "tl.store(data0 + gidx, "):
    assert text in src, f"{text!r} not in\n{src}"
  if dtype is np.float32: assert 'input_precision="ieee"' in src  # as torch's float32 matmul
  else: assert src.count(".to(tl.float32)") == 0, "float16 tiles go to tl.dot as they are"
  want = (an.astype(np.float32) @ bn.astype(np.float32)).astype(dtype)
  np.testing.assert_allclose(out.numpy(), want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
def test_linear_layer_with_bias_and_relu_is_one_dot_kernel(dtype):
  """A 3-D input times a 2-D weight: the batch folds into the rows; bias and relu run on the accumulator tile."""
  xn, wn, bn = rand(3, 20, 33, dtype=dtype), rand(33, 18, dtype=dtype, seed=1), rand(18, dtype=dtype, seed=2)
  out = (lg.Tensor(xn, device=DEV) @ lg.Tensor(wn, device=DEV) + lg.Tensor(bn, device=DEV)).relu()
  src = matmul_source(out)
  assert src.index("tl.dot(") < src.index("tl.maximum(") < src.index("tl.store(")
  f32 = [v.astype(np.float32) for v in (xn, wn, bn)]
  np.testing.assert_allclose(out.numpy(), np.maximum(f32[0] @ f32[1] + f32[2], 0).astype(dtype), **TOL[dtype])


def test_dot_programs_cover_every_tile_of_partial_groups(monkeypatch):
  """16 x 16 tiles in groups of 3 rows of tiles: 5 rows of tiles make a group of 3 and one of 2, and 70 x 60 leaves
  partial tiles at both edges."""
  small = lambda plan, interpret, env=None: backend.dot_tile_sizes(backend.matmul(plan), (16, 16, 16), group=3)
  monkeypatch.setattr(backend, "tile_sizes", small)
  forget_kernels(monkeypatch, lg.device.get(DEV))  # built as its own kernel, with the small tiles
  an, bn = rand(70, 41), rand(41, 60, seed=1)
  out = lg.Tensor(an, device=DEV) @ lg.Tensor(bn, device=DEV)
  assert backend.grid(only_plan(out), small(only_plan(out), True)) == (5 * 4,)
  np.testing.assert_allclose(out.numpy(), an @ bn, **TOL[np.float32])


def test_matmul_with_a_transposed_operand():
  an, bn = rand(19, 40), rand(21, 40, seed=1)
  out = lg.Tensor(an, device=DEV) @ lg.Tensor(bn, device=DEV).T
  assert "tl.dot(" in matmul_source(out)
  np.testing.assert_allclose(out.numpy(), an @ bn.T, **TOL[np.float32])


def test_linear_forward_and_backward_match_torch():
  """The backward pass's products read transposed views: they take the tl.dot path too."""
  torch = pytest.importorskip("torch")
  xn, wn, bn, gn = rand(2, 17, 24), rand(20, 24, seed=1), rand(20, seed=2), rand(2, 17, 20, seed=3)
  x, w, b = (lg.Tensor(v, device=DEV, requires_grad=True) for v in (xn, wn, bn))
  out = lg.nn.functional.linear(x, w, b)
  out.backward(lg.Tensor(gn, device=DEV))
  assert all(backend.matmul(p) is not None for t in (out, x.grad, w.grad) for p in plans(t))
  tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (xn, wn, bn))
  tout = torch.nn.functional.linear(tx, tw, tb)
  tout.backward(torch.tensor(gn))
  for got, want in ((out, tout), (x.grad, tx.grad), (w.grad, tw.grad), (b.grad, tb.grad)):
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), **TOL[np.float32])


def test_reductions_that_are_not_matrix_products_keep_the_1d_path():
  x, y = lg.Tensor(rand(6, 40), device=DEV), lg.Tensor(rand(6, 40, seed=1), device=DEV)
  v = lg.Tensor(rand(40, seed=2), device=DEV)
  bmm = lg.Tensor(rand(2, 5, 7), device=DEV) @ lg.Tensor(rand(2, 7, 3, seed=1), device=DEV)  # b moves with the batch
  for out in (x.sum(1), (x * y).sum(1), x @ v, (v * v).sum(), x.max(1)[0], bmm):
    plan = only_plan(out)
    src = backend.render(plan)[0]
    assert backend.matmul(plan) is None and "tl.dot(" not in src and "gidx = pid * BLOCK" in src, src
  np.testing.assert_allclose((x * y).sum(1).numpy(), (rand(6, 40) * rand(6, 40, seed=1)).sum(1), rtol=1e-5)


def test_fft_of_complex64_matches_numpy():
  """lazygrad.fft's tables, Cooley-Tukey twiddles and complex64's float32 pairs, on this backend (12 points: one
  table product; 96: 8 x 12 with twiddles)."""
  for n in (12, 96):
    x = (rand(3, n) + 1j * rand(3, n, seed=1)).astype(np.complex64)
    np.testing.assert_allclose(lg.fft.fft(lg.Tensor(x, device=DEV)).numpy(), np.fft.fft(x), rtol=1e-4, atol=1e-4 * n)
    np.testing.assert_allclose(lg.fft.irfft(lg.Tensor(x, device=DEV), n=n).numpy(), np.fft.irfft(x, n=n), rtol=1e-4, atol=1e-4)

CUBIN_CHECK = r"""
import json, os, sys, types
os.environ["TRITON_INTERPRET"] = "0"
import triton  # first, for real: on a machine without a GPU the backend would pick the interpreter
from lazygrad.backends import triton as backend
from lazygrad.dtype import BY_NAME
os.environ["TRITON_INTERPRET"] = "0"
for k in json.loads(sys.stdin.read()):
  plan = types.SimpleNamespace(name=k["name"], bufs=[BY_NAME[d] for d in k["bufs"]],
                               params=[(n, BY_NAME[d]) for n, d in k["params"]])
  prog = backend.compile_cubin(k["src"], plan, k["config"], 90)
  assert prog.cubin[:4] == b"\x7fELF" and prog.name == k["name"], prog.name
print("ok")
"""


def dynamic_plans(t: lg.Tensor):
  """plans(t), each with every number an argument (see codegen/dynamic.py)."""
  from lazygrad.codegen.dynamic import Specializer
  specializer, out = Specializer(every_number=True), []
  for si in schedule([t.lazydata.base]):
    if si.ast is None: continue
    dtypes, sizes = [si.out.dtype] + [i.dtype for i in si.inputs], [si.out.size] + [i.size for i in si.inputs]
    built, params, _ = specializer.resolve(si.ast, sizes)
    out.append(lower(built, dtypes, sizes, params))
  return out


def compile_to_cubins(*outs: lg.Tensor, every_config: bool = False, make_plans=plans) -> list[str]:
  """Compile every kernel of outs for sm_90 (in its default launch configuration, or in each one a GPU measures), in
  a process of its own where triton.jit is real; their sources. No GPU is needed to compile: this keeps the GPU path
  honest on CPU-only machines."""
  import triton
  if "nvidia" not in getattr(triton.backends, "backends", {}): pytest.skip("this Triton has no CUDA backend")
  kernels = []
  for out in outs:
    for plan in make_plans(out):
      src, name = backend.render(plan)
      env = {n: 7 for n, _ in plan.params}  # a dynamic kernel's tiles: chosen for the sizes it is first built at
      configs = backend.tile_configs(plan, interpret=False, env=env)
      kernels += [dict(src=src, name=name, bufs=[d.name for d in plan.bufs], config=c,
                       params=[(n, d.name) for n, d in plan.params]) for c in (configs if every_config else configs[:1])]
  env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
  res = subprocess.run([sys.executable, "-c", CUBIN_CHECK], input=json.dumps(kernels), capture_output=True, text=True,
                       env=env, timeout=300)
  assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-4000:]
  return [k["src"] for k in kernels]


def test_gpu_path_compiles_kernels_to_cubins():
  rng = np.random.default_rng(4)
  x = lg.Tensor(rng.standard_normal((8, 100)).astype(np.float32), device=DEV)
  h = lg.Tensor(rng.standard_normal(64).astype(np.float16), device=DEV)
  i = lg.Tensor(rng.integers(-9, 9, 64).astype(np.int64), device=DEV)
  compile_to_cubins((x.softmax(1) * 2).max(1)[0], h * h + 1, (i // 3 > 0) | (i % 2 == 0), x.to(lg.bfloat16) * 2)


def test_gpu_path_compiles_dynamic_kernels_to_cubins():
  """Kernels whose sizes, strides, offsets, bounds and scalars are arguments: int32 and float32 scalar parameters."""
  rng = np.random.default_rng(7)
  x = lg.Tensor(rng.standard_normal((8, 100)).astype(np.float32), device=DEV)
  i = lg.Tensor(rng.integers(0, 8, (3, 5)).astype(np.int64), device=DEV)
  outs = [(x[:, 3:90:2] * 1.5 + 0.25).softmax(1), x.flip(0).pad((2, 1)).sum(0), x.gather(0, i) - 2]
  srcs = compile_to_cubins(*outs, make_plans=dynamic_plans)
  assert all(", n0" in src for src in srcs), "\n".join(srcs)


def test_gpu_scalar_arguments_read_back_as_their_types():
  """A scalar argument is one 8-byte word of the launch's argument array; cuLaunchKernel reads its low bytes as the
  kernel's parameter type."""
  import ctypes
  words = (ctypes.c_uint64 * 3)(backend.arg_word(0.3), backend.arg_word(-5), backend.arg_word(2**40 + 3))
  base = ctypes.addressof(words)
  assert ctypes.c_float.from_address(base).value == np.float32(0.3)
  assert ctypes.c_int32.from_address(base + 8).value == -5
  assert ctypes.c_int64.from_address(base + 16).value == 2**40 + 3


def test_gpu_path_compiles_dot_kernels_to_cubins():
  """float32 in full precision, and 16-bit tiles for the tensor cores, with a 2-D grid of programs."""
  rng = np.random.default_rng(5)
  a = lg.Tensor(rng.standard_normal((3, 40, 70)).astype(np.float32), device=DEV)
  w = lg.Tensor(rng.standard_normal((50, 70)).astype(np.float32), device=DEV)
  b = lg.Tensor(rng.standard_normal(50).astype(np.float32), device=DEV)
  outs = [a @ w.T, *((a.to(dt) @ w.T.to(dt) + b.to(dt)).relu() for dt in (lg.float16, lg.bfloat16))]
  srcs = compile_to_cubins(*outs)
  assert sum("tl.dot(" in src for src in srcs) == 3, "\n".join(srcs)


def test_every_tile_choice_a_gpu_measures_compiles():
  """The tile choices of a big float16 and float32 product (see DOT_CHOICES_16 and _32) and of a big elementwise
  kernel each compile for sm_90."""
  rng = np.random.default_rng(6)
  a = lg.Tensor(rng.standard_normal((512, 512)).astype(np.float32), device=DEV)
  outs = [a @ a, a.half() @ a.half(), (a * 2).exp()]
  assert len(compile_to_cubins(*outs, every_config=True)) == sum(
    len(backend.tile_configs(plan, interpret=False)) for out in outs for plan in plans(out))


@pytest.fixture
def tuning(monkeypatch, tmp_path):
  """Tuning turned on for every kernel, as a GPU does for big ones, with an empty on-disk cache; yields the device
  and the configs it compiles, in order."""
  from lazygrad import device as devices, helpers
  monkeypatch.setattr(helpers, "cache_dir", lambda: tmp_path)
  monkeypatch.setattr(backend, "TUNE_WORK", 0)
  dev = devices.get(DEV)
  monkeypatch.setattr(dev, "tune", True)
  forget_kernels(monkeypatch, dev)  # as a new process: nothing compiled in memory
  compiled, compile = [], dev.compile
  monkeypatch.setattr(dev, "compile", lambda src, plan, cfg: compiled.append(cfg) or compile(src, plan, cfg))
  yield dev, compiled


def test_tuning_measures_each_config_then_keeps_the_choice_on_disk(tuning, monkeypatch):
  dev, compiled = tuning
  an, bn = rand(96, 80), rand(80, 72, seed=1)
  product = lambda: lg.Tensor(an, device=DEV) @ lg.Tensor(bn, device=DEV)
  configs = backend.tile_configs(only_plan(product()), dev.interpret)
  assert len(configs) == 2 and configs[1]["sizes"] == {"BM": 64, "BN": 64, "BK": 64, "GROUP_M": 2}
  np.testing.assert_allclose(product().numpy(), an @ bn, **TOL[np.float32])
  assert compiled[:2] == configs and compiled[2] in configs and len(compiled) == 3  # each measured, then the choice
  compiled.clear()
  forget_kernels(monkeypatch, dev)  # a new process again, now with the choice on disk
  np.testing.assert_allclose(product().numpy(), an @ bn, **TOL[np.float32])
  assert len(compiled) == 1 and compiled[0] in configs  # read from disk, not measured again


def test_tuning_skips_a_config_that_fails(tuning, monkeypatch):
  dev, compiled = tuning
  broken = backend.config({"BLOCK": 48})  # not a power of two: tl.arange refuses it
  configs = backend.tile_configs
  monkeypatch.setattr(backend, "tile_configs", lambda plan, interpret, env=None: [broken, *configs(plan, interpret)])
  xn = rand(1000)
  np.testing.assert_allclose((lg.Tensor(xn, device=DEV) * 3 + 1).numpy(), xn * 3 + 1, rtol=1e-6)
  assert compiled[0] == broken and compiled[-1] != broken


def test_gpu_launch_passes_each_pointer_by_address():
  """cuLaunchKernel takes an array of pointers to the arguments: read back, they must give the buffers' addresses,
  the 2-D grid, the threads and the shared memory (checked with a stand-in for libcuda: no GPU here)."""
  import ctypes
  seen = {}

  class FakeLib:
    def cuCtxSetCurrent(self, ctx): return 0
    def cuLaunchKernel(self, fn, gx, gy, gz, bx, by, bz, shared, stream, params, extra):
      seen.update(grid=(gx.value, gy.value, gz.value), block=(bx.value, by.value, bz.value), shared=shared.value,
                  args=[ctypes.c_uint64.from_address(params[i]).value for i in range(4)])
      return 0
  cuda = backend.CUDA.__new__(backend.CUDA)
  cuda.lib, cuda.ctx = FakeLib(), None
  pointers = [0x7F0000001000, 0x7F0000002000, 2**40 + 16, 0]
  cuda.launch(None, (12, 5), 128, 49152, pointers)
  assert seen == dict(grid=(12, 5, 1), block=(128, 1, 1), shared=49152, args=pointers)
