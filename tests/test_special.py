"""lazygrad.special, the special functions of the torch namespace (lgamma, digamma, polygamma, ...) and
lazygrad.signal.windows against torch, over wide ranges and at the edges (0, +-1, poles, inf, NaN, overflow): the op
database's samples cover a narrow range (its zeta samples are all NaN)."""
import math

import numpy as np
import pytest
import torch

import lazygrad as lg
import lazygrad.special as S

rng = np.random.default_rng(0)
WIDE = np.concatenate([np.linspace(-30, 30, 601), rng.uniform(-3, 3, 200), np.linspace(-1, 1, 101),
                       [0.0, -0.0, 1.0, -1.0, 2.0, 5.0, 8.0, -8.0, 1e-6, -1e-6, 1e-30, 50, 90, 120, math.inf, -math.inf,
                        math.nan]]).astype(np.float32)
UNIT = np.concatenate([np.linspace(-1.1, 1.1, 1101), [1 - 1e-7, -1 + 1e-7, 0.9999]]).astype(np.float32)
PROB = np.concatenate([np.linspace(-0.1, 1.1, 1201), [1e-30, 1e-10, 1 - 1e-7, 0, 1]]).astype(np.float32)


def check(got: lg.Tensor, want: torch.Tensor, where, tol=1e-4):
  assert got.dtype.name == str(want.dtype).split(".")[1] and tuple(got.shape) == tuple(want.shape), where
  np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=tol, atol=tol, equal_nan=True, err_msg=str(where))


UNARY = [(n, getattr(S, n), getattr(torch.special, n), WIDE) for n in (
  "i0e", "i1", "i1e", "ndtr", "log_ndtr", "erfcx", "entr", "airy_ai", "bessel_j0", "bessel_j1", "bessel_y0", "bessel_y1",
  "modified_bessel_i0", "modified_bessel_i1", "modified_bessel_k0", "modified_bessel_k1", "scaled_modified_bessel_k0",
  "scaled_modified_bessel_k1", "spherical_bessel_j0")] + [
  ("ndtri", S.ndtri, torch.special.ndtri, PROB), ("i0", lg.i0, torch.i0, WIDE), ("lgamma", lg.lgamma, torch.lgamma, WIDE),
  ("digamma", lg.digamma, torch.digamma, WIDE), ("erfinv", lg.erfinv, torch.erfinv, UNIT),
  # polygamma(1) at the poles (negative integers) is inf here, a large finite number from torch's float trigamma
  ("polygamma2", lambda x: lg.polygamma(2, x), lambda t: torch.polygamma(2, t), WIDE),
  ("polygamma5", lambda x: lg.polygamma(5, x), lambda t: torch.polygamma(5, t), WIDE),
  ("polygamma1", lambda x: lg.polygamma(1, x), lambda t: torch.polygamma(1, t), WIDE[(WIDE != np.floor(WIDE)) | (WIDE > 0)]),
  ("mvlgamma3", lambda x: lg.mvlgamma(x, 3), lambda t: torch.mvlgamma(t, 3), np.linspace(1.01, 30, 200).astype(np.float32))]


@pytest.mark.parametrize("name,fn,ref,xs", UNARY, ids=[u[0] for u in UNARY])
def test_unary_like_torch(name, fn, ref, xs):
  check(fn(lg.Tensor(xs)), ref(torch.tensor(xs)), name)


GRADS = [("i0", lg.i0, torch.i0, WIDE[:700]), ("i0e", S.i0e, torch.special.i0e, WIDE[:700]),
         ("i1", S.i1, torch.special.i1, WIDE[:700]), ("i1e", S.i1e, torch.special.i1e, WIDE[:700]),
         ("log_ndtr", S.log_ndtr, torch.special.log_ndtr, WIDE[:700]),
         ("erfcx", S.erfcx, torch.special.erfcx, np.linspace(-5, 12, 90, dtype=np.float32)),
         ("ndtri", S.ndtri, torch.special.ndtri, np.linspace(0.001, 0.999, 90, dtype=np.float32)),
         ("lgamma", lg.lgamma, torch.lgamma, np.linspace(-12.3, 12.3, 90, dtype=np.float32)),
         ("digamma", lg.digamma, torch.digamma, np.linspace(-12.3, 12.3, 90, dtype=np.float32)),
         ("erfinv", lg.erfinv, torch.erfinv, np.linspace(-0.999, 0.999, 91, dtype=np.float32))]


@pytest.mark.parametrize("name,fn,ref,xs", GRADS, ids=[g[0] for g in GRADS])
def test_gradient_like_torch(name, fn, ref, xs):
  t = torch.tensor(xs, requires_grad=True)
  ref(t).sum().backward()
  x = lg.Tensor(xs, requires_grad=True)
  fn(x).sum().backward()
  check(x.grad, t.grad, name)


POLYNOMIALS = ["chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v", "chebyshev_polynomial_w",
               "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u", "shifted_chebyshev_polynomial_v",
               "shifted_chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he"]


@pytest.mark.parametrize("name", POLYNOMIALS)
def test_polynomials_like_torch(name):
  # torch's recurrence leaves NaN x with a garbage value (an uninitialized result), so no NaN here; and H of degree
  # 33 at 8.5 is at float32's largest, where the last rounding decides between finite and inf
  xs = np.array([-30, -8.5, -3.3, -1.5, -1, -0.99, -0.5, -0.1, 0, 0.1, 0.3, 0.5, 0.9, 0.999, 1, 1.2, 2.7, 8.5, math.inf],
                np.float32)
  ns = np.array([-2, -0.5, 0, 0.7, 1, 2, 3, 3.6, 5, 6, 7, 8, 9, 10, 13, 20, 32, 60, 100, 127, 128, 129, 200], np.float32)
  x, n = (a.ravel() for a in np.meshgrid(xs, ns))
  check(getattr(S, name)(lg.Tensor(x), lg.Tensor(n)), getattr(torch.special, name)(torch.tensor(x), torch.tensor(n)), name)
  check(getattr(S, name)(lg.Tensor(x), 3), getattr(torch.special, name)(torch.tensor(x), 3), name)


def test_zeta_like_torch():
  qs = np.array([-8.5, -3, -2.5, -1.77, -0.5, -1e-6, 0, 0.01, 0.5, 1, 3.6, 20, 1e4], np.float32)
  xs = np.array([-2, 0.5, 1, 1.5, 2, 3, 4.5, 5, 8, 20, 60], np.float32)
  x, q = (a.ravel() for a in np.meshgrid(xs, qs))
  check(S.zeta(lg.Tensor(x), lg.Tensor(q)), torch.special.zeta(torch.tensor(x), torch.tensor(q)), "zeta")
  check(S.zeta(2.0, lg.Tensor(q)), torch.special.zeta(2.0, torch.tensor(q)), "zeta(2, q)")


def test_xlog1py_like_torch():
  x = np.array([0, 0, 1.5, -2, 3, 0], np.float32)
  y = np.array([math.nan, 2, -0.5, 1e-8, -1, -3], np.float32)
  check(S.xlog1py(lg.Tensor(x), lg.Tensor(y)), torch.special.xlog1py(torch.tensor(x), torch.tensor(y)), "xlog1py")
  check(S.xlog1py(2.0, lg.Tensor(y)), torch.special.xlog1py(2.0, torch.tensor(y)), "xlog1py(2, y)")


def test_errors_like_torch():
  with pytest.raises(RuntimeError, match="negative n"): lg.polygamma(-1, lg.Tensor([1.0]))
  with pytest.raises(RuntimeError, match="p has to be greater than or equal to 1"): lg.mvlgamma(lg.Tensor([3.0]), 0)


WINDOWS = ["hamming", "hann", "bartlett", "blackman", "cosine", "exponential", "gaussian", "kaiser", "general_hamming",
           "nuttall"]


@pytest.mark.parametrize("name", WINDOWS)
def test_windows_like_torch(name):
  for M in (0, 1, 2, 7, 64):
    for sym in (True, False):
      check(getattr(lg.signal.windows, name)(M, sym=sym), getattr(torch.signal.windows, name)(M, sym=sym), (name, M, sym), 2e-5)


def test_window_arguments_like_torch():
  W, TW = lg.signal.windows, torch.signal.windows
  check(W.general_cosine(33, a=[0.46, 0.23, 0.31]), TW.general_cosine(33, a=[0.46, 0.23, 0.31]), "general_cosine", 2e-6)
  check(W.exponential(20, center=3.0, tau=0.7, sym=False), TW.exponential(20, center=3.0, tau=0.7, sym=False), "exp", 2e-6)
  check(W.kaiser(40, beta=0.5, dtype=lg.float64), TW.kaiser(40, beta=0.5, dtype=torch.float64), "kaiser", 1e-6)
  for bad in (lambda w: w.hann(-1), lambda w: w.gaussian(4, std=0), lambda w: w.exponential(4, center=1.0),
              lambda w: w.general_cosine(4, a=[])):
    with pytest.raises(ValueError) as want: bad(TW)
    with pytest.raises(ValueError) as got: bad(W)
    assert str(got.value) == str(want.value)
