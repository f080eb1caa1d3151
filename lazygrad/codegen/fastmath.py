"""float32 exp and exp2 as code of our own, shared by the renderers: the constants here, each backend's syntax there.

PoCL compiles OpenCL's exp to a library call: on vectors it is about as fast as the polynomial below, but a scalar
kernel (one element per work-item: a size that is not a multiple of 8, a gather) calls it once per element, 4-6 ns
against 0.5 for this code, which PoCL vectorizes across work-items. Both backends use the same math, so they agree.

exp(x) = 2^n * e^r with n = rint(x / ln2) and r = x - n * ln2 (Cody-Waite: ln2 in two parts, the first with few
enough bits that n * LN2_HI is exact), |r| <= ln2 / 2; e^r = 1 + r + r^2 * P(r), P of degree 4 (EXP_FIT, lowest
first); 2^n put together from its bits as two factors, so results below 2^-126 round once into the subnormals.
exp2(x) is the same with n = rint(x) and r = (x - n) * ln2. n is rounded with the magic number 1.5 * 2^23, whose
float's low bits are then n itself: no float-to-int conversion, and none of its undefined cases for NaN.
Inputs are clamped (keeping NaN) to where the result is 0 or inf already: the clamp gives 0, inf and NaN as torch.
"""
import math

# P for e^r = 1 + r + r^2 * P(r) on |r| <= ln2 / 2, lowest first (fit_exp below, rounded to float32): 3.1e-9
# relative error in exact arithmetic; exp within 1 ulp of float64 evaluated in float32
EXP_FIT = (0.4999999403953552, 0.1666652113199234, 0.04166838899254799, 0.008368710055947304, 0.001381461275741458)
LN2_HI = 0.693359375          # 355 / 512: 9 significant bits
LN2_LO = -0.00021219444170128554  # ln2 - LN2_HI, rounded to float32
LN2 = 0.6931471824645996      # ln2 rounded to float32
LOG2E = 1.4426950216293335    # 1 / ln2 rounded to float32
ROUNDER = 12582912.0          # 1.5 * 2^23: x + ROUNDER - ROUNDER is rint(x) for |x| < 2^22
ROUNDER_BITS = 0x4B400000     # its float's bits: bits(x + ROUNDER) - ROUNDER_BITS is rint(x) as an integer
EXP_RANGE = (-104.0, 89.0)    # exp is 0 below (under half of the least subnormal) and inf above
EXP2_RANGE = (-151.0, 129.0)


def fit_exp(degree: int = 4, nodes: int = 4000, rounds: int = 200):
  """P's coefficients, lowest first: a weighted least-squares fit to (e^r - 1 - r) / r^2 on Chebyshev nodes, weighted
  by r^2 / e^r (the error relative to e^r), then reweighted toward the minimax (Lawson's algorithm)."""
  import numpy as np
  half = math.log(2) / 2
  r = half * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
  target, weight = (np.expm1(r) - r) / r**2, r**2 / np.exp(r)
  basis = np.vander(r, degree + 1, increasing=True)
  lawson = np.full(nodes, 1 / nodes)
  for _ in range(rounds):
    w = weight * np.sqrt(lawson)
    coeffs = np.linalg.lstsq(basis * w[:, None], target * w, rcond=None)[0]
    lawson *= np.abs(basis @ coeffs - target) * weight
    lawson /= lawson.sum()
  return tuple(float(np.float32(c)) for c in coeffs)
