"""complex64 tensors and lazygrad.fft against torch: values, dtypes and shapes, the gradients of a real loss (torch's
convention for complex inputs, real gradients for real inputs), the sizes each algorithm takes (a table, Cooley-Tukey,
Bluestein), the number of kernels of a 4096-point fft, and the errors."""
import numpy as np
import pytest
import torch

import lazygrad as lg

rng = np.random.default_rng(0)


def randc(*shape) -> np.ndarray:
  return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def randr(*shape) -> np.ndarray: return rng.standard_normal(shape).astype(np.float32)


def check(got: lg.Tensor, want: torch.Tensor, where, tol=1e-4):
  assert got.dtype.name == str(want.dtype).split(".")[1], f"{where}: dtype {got.dtype.name}, torch {want.dtype}"
  assert tuple(got.shape) == tuple(want.shape), f"{where}: shape {got.shape}, torch {tuple(want.shape)}"
  w = want.detach().resolve_conj().numpy()
  np.testing.assert_allclose(got.numpy(), w, rtol=tol, atol=tol * max(1.0, float(np.abs(w).max())), err_msg=str(where))


def real_view(t):
  return (lg.view_as_real(t) if t.is_complex() else t) if isinstance(t, lg.Tensor) else (
    torch.view_as_real(t.resolve_conj()) if t.is_complex() else t)


def check_with_grad(lg_fn, torch_fn, x: np.ndarray, where, tol=1e-4):
  """The forward, then the gradient of sum(w * real view of the output) for a random w, against torch."""
  a, b = lg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
  got, want = lg_fn(a), torch_fn(b)
  check(got, want, where, tol)
  w = rng.standard_normal(real_view(want).shape).astype(np.float32)
  (real_view(got) * lg.Tensor(w)).sum().backward()
  (real_view(want) * torch.from_numpy(w)).sum().backward()
  check(a.grad, b.grad, f"{where}: gradient", tol)


# ---- complex64

def test_complex_tensor_basics():
  x = randc(3, 4)
  z = lg.Tensor(x)
  assert (z.dtype, z.shape, z.is_complex(), lg.tensor([1.0]).is_complex()) == (lg.complex64, (3, 4), True, False)
  assert lg.cfloat is lg.complex64 and z.numpy().dtype == np.complex64
  np.testing.assert_array_equal(z.numpy(), x)
  np.testing.assert_array_equal(lg.view_as_real(z).numpy(), np.stack([x.real, x.imag], -1))
  assert lg.view_as_real(z).shape == (3, 4, 2) and lg.view_as_real(z).dtype is lg.float32
  np.testing.assert_array_equal(lg.view_as_complex(lg.view_as_real(z)).numpy(), x)
  assert lg.tensor([1 + 2j, 3]).tolist() == [1 + 2j, 3 + 0j] and lg.tensor(2j).item() == 2j
  np.testing.assert_array_equal(lg.zeros(2, dtype=lg.complex64).numpy(), np.zeros(2, np.complex64))
  np.testing.assert_array_equal(lg.full((2,), 1 - 1j).numpy(), np.full(2, 1 - 1j, np.complex64))
  np.testing.assert_array_equal(lg.tensor([1.0, 2.0]).cast(lg.complex64).numpy(), np.array([1, 2], np.complex64))
  np.testing.assert_array_equal(lg.eye(2, 3, dtype=lg.complex64).numpy(), np.eye(2, 3, dtype=np.complex64))
  np.testing.assert_array_equal(lg.empty(2, dtype=lg.complex64).numpy(), np.zeros(2, np.complex64))
  np.testing.assert_array_equal(z.new_zeros(2).numpy(), np.zeros(2, np.complex64))
  lg.manual_seed(0)
  r = lg.randn(20000, dtype=lg.complex64).numpy()  # torch's: variance 1/2 in each part
  assert abs(r.real.var() - 0.5) < 0.03 and abs(r.imag.var() - 0.5) < 0.03, (r.real.var(), r.imag.var())


@pytest.mark.parametrize("name, fn", [
  ("add", lambda z, w, r, lib: z + w + r + 2 + 1j), ("sub", lambda z, w, r, lib: r - z - w - (1 - 2j)),
  ("mul", lambda z, w, r, lib: z * w * r * 3 * (0.5 + 1j)), ("div", lambda z, w, r, lib: (z / w + r / z + z / r) / (2 - 1j)),
  ("matmul", lambda z, w, r, lib: z @ w.mT + (r + 0j) @ w.mT), ("sum/mean", lambda z, w, r, lib: z.sum(1) + w.mean(0, keepdim=True).sum(-1)),
  ("parts", lambda z, w, r, lib: z.real * w.imag + z.abs() + z.angle() + lib.real(w) + lib.imag(z)),
  ("conj/exp/sgn", lambda z, w, r, lib: z.conj() * w.exp() + z.sgn()),
  ("pow/log/sqrt/where", lambda z, w, r, lib: z ** 2 + w ** -1 + z.log() + w.sqrt() + z ** 1.5 + 2 ** z
   + lib.where(r > 0, z, w).masked_fill(r > 1, 2j)),
  ("complex/polar", lambda z, w, r, lib: lib.complex(r, r * 2) * lib.polar(r.abs(), r)),
  ("movement", lambda z, w, r, lib: z.permute(1, 0)[::2, 1:].reshape(-1).flip(0)[None] + w.mT.transpose(0, 1)[1, :]),
  ("indexing", lambda z, w, r, lib: z[lib.tensor([2, 0])] + z[..., 1:2][:2] * w[r > 0].sum()),
  ("cat/stack", lambda z, w, r, lib: lib.cat([z, r, w], 1)[:, 2:6] + lib.stack([z, w, z], 0).sum(0)),
])
def test_complex_ops_like_torch(name, fn):
  x, y, r = randc(3, 4), randc(3, 4), randr(3, 4)
  a, b, c = (lg.Tensor(v, requires_grad=True) for v in (x, y, r))
  ta, tb, tc = (torch.tensor(v, requires_grad=True) for v in (x, y, r))
  got, want = fn(a, b, c, lg), fn(ta, tb, tc, torch)
  check(got, want, name)
  w = rng.standard_normal(real_view(want).shape).astype(np.float32)
  (real_view(got) * lg.Tensor(w)).sum().backward()
  (real_view(want) * torch.from_numpy(w)).sum().backward()
  for k, (g, t) in enumerate(((a, ta), (b, tb), (c, tc))):
    if t.grad is not None: check(g.grad, t.grad, f"{name}: gradient of input {k}")


def test_complex_errors():
  z = lg.Tensor(randc(2, 3))
  with pytest.raises(TypeError, match="sin is not supported for complex64 tensors"): z.sin()
  with pytest.raises(TypeError, match="__lt__ is not supported for complex64 tensors"): z < z
  with pytest.raises(TypeError, match="relu is not supported for complex64 tensors"): z.relu()
  with pytest.raises(TypeError, match="would drop the imaginary part"): z.float()
  with pytest.raises(TypeError, match="view_as_real is only supported for complex tensors, got float32"): lg.view_as_real(lg.ones(2))
  with pytest.raises(lg.ShapeError, match=r"last dimension of size 2, got shape \(2, 3\)"): lg.view_as_complex(lg.ones(2, 3))
  with pytest.raises(TypeError, match="complex: expected imag to be a float32 tensor, got int64"): lg.complex(lg.ones(2), lg.tensor([1, 2]))
  with pytest.raises(TypeError, match="gives complex128"): z + lg.ones(3, dtype=lg.float64)
  with pytest.raises(RuntimeError, match="real scalar outputs"): lg.Tensor(randc(1), requires_grad=True).sum().backward()
  with pytest.raises(TypeError, match="imag is not implemented for tensors with non-complex dtypes"): lg.ones(2).imag
  with pytest.raises(TypeError, match="relu is not supported for complex64"): lg.nn.functional.relu(z)
  with pytest.raises(TypeError, match="full: a float32 tensor cannot hold the complex fill_value 1j"): lg.full_like(lg.ones(2), 1j)
  with pytest.raises(TypeError, match="lazygrad.jit: complex64 tensors cannot be a jitted function's arguments or results"):
    lg.jit(lambda x: lg.fft.rfft(x))(lg.ones(4))


# ---- fft

N_CASES = [(None, None), (7, "ortho"), (12, "forward"), (5, "backward")]


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"])
def test_fft_1d(name):
  real_in = name in ("rfft", "ihfft")
  for k, (n, norm) in enumerate(N_CASES):
    x = randr(3, 10) if real_in or k % 2 else randc(3, 10)
    dim = -1 if k < 2 else 0
    x = x if dim == -1 else x.T.copy()
    check_with_grad(lambda t: getattr(lg.fft, name)(t, n=n, dim=dim, norm=norm),
                    lambda t: getattr(torch.fft, name)(t, n=n, dim=dim, norm=norm), x, f"{name} n={n} dim={dim} norm={norm}")


@pytest.mark.parametrize("name", ["fft2", "ifft2", "fftn", "ifftn", "rfft2", "irfft2", "rfftn", "irfftn", "hfft2", "ihfft2",
                                  "hfftn", "ihfftn"])
def test_fft_nd(name):
  real_in = name.startswith(("rfft", "ihfft"))
  cases = [({}, None), ({"s": (3, 8)}, "ortho"), ({"dim": (0, 2)}, "forward"), ({"s": (5, 4), "dim": (2, 0)}, None)]
  if name.endswith("2"): cases = cases[:2]  # fftn's own code with other default dims: two cases are enough (a cold run's time)
  for k, (kw, norm) in enumerate(cases):
    x = randr(4, 6, 5) if real_in or k % 2 else randc(4, 6, 5)
    check_with_grad(lambda t: getattr(lg.fft, name)(t, norm=norm, **kw), lambda t: getattr(torch.fft, name)(t, norm=norm, **kw),
                    x, f"{name} {kw} norm={norm}")


@pytest.mark.parametrize("n", [64, 96, 4096, 1031])  # a table, Cooley-Tukey (8 * 12, 64 * 64), Bluestein (a prime > 1024)
def test_fft_sizes(n):
  x = randc(2, n)
  check_with_grad(lg.fft.fft, torch.fft.fft, x, f"fft n={n}")
  check(lg.fft.rfft(lg.Tensor(x.real.copy())), torch.fft.rfft(torch.tensor(x.real.copy())), f"rfft n={n}")
  check(lg.fft.irfft(lg.Tensor(x), n=n), torch.fft.irfft(torch.tensor(x), n=n), f"irfft n={n}")


def test_gradient_convention_of_a_nonlinear_loss():
  """torch's convention for complex inputs (d/dRe + i d/dIm of a real loss), and real gradients for real inputs."""
  x, r = randc(2, 6), randr(2, 6)
  a, b = lg.Tensor(x, requires_grad=True), lg.Tensor(r, requires_grad=True)
  ta, tb = torch.tensor(x, requires_grad=True), torch.tensor(r, requires_grad=True)
  (lg.view_as_real(lg.fft.fft(a)).pow(2).sum() + (lg.fft.rfft(b) * a[:, :4]).abs().sum()).backward()
  (torch.view_as_real(torch.fft.fft(ta)).pow(2).sum() + (torch.fft.rfft(tb) * ta[:, :4]).abs().sum()).backward()
  check(a.grad, ta.grad, "complex input")
  check(b.grad, tb.grad, "real input")

def test_fft_4096_is_not_a_dense_product():
  z = lg.Tensor(randc(4096))
  lg.fft.fft(z).realize()  # the tables uploaded
  before = lg.kernel_count()
  lg.fft.fft(lg.Tensor(randc(4096))).realize()
  assert lg.kernel_count() - before <= 8, lg.kernel_count() - before
  assert max(t.numel() for t in (lg.fft._dft_table(64, 64, False, False, z.device),)) == 128 * 128


def test_freq_and_shifts():
  check(lg.fft.fftfreq(9, 0.3), torch.fft.fftfreq(9, 0.3), "fftfreq")
  check(lg.fft.rfftfreq(10), torch.fft.rfftfreq(10), "rfftfreq")
  x = randc(4, 5, 3)
  check(lg.fft.fftshift(lg.Tensor(x)), torch.fft.fftshift(torch.tensor(x)), "fftshift")
  check(lg.fft.ifftshift(lg.Tensor(x.real.copy()), dim=(0, 1)), torch.fft.ifftshift(torch.tensor(x.real.copy()), dim=(0, 1)), "ifftshift")
  check(lg.fft.ifftshift(lg.fft.fftshift(lg.Tensor(x), -1), -1), torch.tensor(x), "round trip")


def test_fft_errors():
  x = lg.ones(4)
  with pytest.raises(ValueError, match="fft: invalid norm 'bogus'"): lg.fft.fft(x, norm="bogus")
  with pytest.raises(ValueError, match=r"invalid number of data points \(0\)"): lg.fft.fft(x, n=0)
  with pytest.raises(TypeError, match="rfft expects a real input tensor, but got complex64"): lg.fft.rfft(lg.Tensor(randc(4)))
  with pytest.raises(TypeError, match="fft: float64 input gives complex128"): lg.fft.fft(lg.ones(4, dtype=lg.float64))
  with pytest.raises(ValueError, match="fftn: s .* and dim .* have different lengths"): lg.fft.fftn(lg.ones(2, 2), s=(2,), dim=(0, 1))
  with pytest.raises(IndexError): lg.fft.fft(x, dim=2)
