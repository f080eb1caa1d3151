"""float32 exp, exp2 and log2 as code of our own, shared by the renderers: the constants here, each backend's syntax there.

PoCL compiles OpenCL's exp to a library call: on vectors it is about as fast as the polynomial below, but a scalar
kernel (one element per work-item: a size that is not a multiple of 8, a gather) calls it once per element, 4-6 ns
against 0.5 for this code, which PoCL vectorizes across work-items. Both backends use the same math, so they agree.

exp(x) = 2^n * e^r with n = rint(x / ln2) and r = x - n * ln2 (Cody-Waite: ln2 in two parts, the first with few
enough bits that n * LN2_HI is exact), |r| <= ln2 / 2; e^r = 1 + r + r^2 * P(r), P of degree 4 (EXP_FIT, lowest
first); 2^n put together from its bits as two factors, so results below 2^-126 round once into the subnormals.
exp2(x) is the same with n = rint(x) and r = (x - n) * ln2. n is rounded with the magic number 1.5 * 2^23, whose
float's low bits are then n itself: no float-to-int conversion, and none of its undefined cases for NaN.
Inputs are clamped (keeping NaN) to where the result is 0 or inf already: the clamp gives 0, inf and NaN as torch.

log2(x) = e + log2(m) with x = m * 2^e read from x's bits (a subnormal x scaled by 2^23 first), m in [sqrt(1/2),
sqrt(2)), and log2(1 + f) = f + f * R(f) for f = m - 1 (exact), R of degree 9 (LOG2_FIT; f + f * R rather than
f * Q keeps most of the result out of the rounding of the product: 1.6 ulp became 1.0); 0, negatives, inf and NaN are
picked out after. PoCL's log2 costs 3x its exp on vectors (1.4-2.4 ns/element), this 1.0; within 1.0 ulp of
float64 (PoCL's: 0.6).
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
# R for log2(1 + f) = f + f * R(f) on [sqrt(1/2) - 1, sqrt(2) - 1], lowest first (fit_log2): log2 within 1.0 ulp
# of float64 evaluated in float32
LOG2_FIT = (0.4426950514316559, -0.7213473320007324, 0.4808982312679291, -0.3606966435909271, 0.2885673940181732,
            -0.23961740732192993, 0.20460067689418793, -0.1910628378391266, 0.1861746609210968, -0.1099490076303482)
SQRT2 = 1.4142135381698608    # sqrt(2) rounded to float32
FLT_MIN = 1.1754943508222875e-38  # the least normal float32: below it, x is scaled by 2^23 before its bits are read
EXP_RANGE = (-104.0, 89.0)    # exp is 0 below (under half of the least subnormal) and inf above
EXP2_RANGE = (-151.0, 129.0)


def horner(coeffs, var: str, literal=repr) -> str:
  """A polynomial (coefficients lowest first) as nested multiply-adds in `var`, each coefficient written by
  `literal`: the expression both renderers put in their exp and log2 code."""
  out = literal(coeffs[-1])
  for c in reversed(coeffs[:-1]): out = f"({out} * {var} + {literal(c)})"
  return out


def _minimax(points, target, weight, degree: int, rounds: int = 100):
  """A polynomial's coefficients, lowest first, rounded to float32: a weighted least-squares fit to `target` at
  `points` (Chebyshev nodes), reweighted toward the minimax of weight * error (Lawson's algorithm)."""
  import numpy as np
  basis = np.vander(points, degree + 1, increasing=True)
  lawson = np.full(len(points), 1 / len(points))
  for _ in range(rounds):
    w = weight * np.sqrt(lawson)
    coeffs = np.linalg.lstsq(basis * w[:, None], target * w, rcond=None)[0]
    lawson *= np.abs(basis @ coeffs - target) * weight
    lawson /= lawson.sum()
  return tuple(float(np.float32(c)) for c in coeffs)


def _chebyshev(lo: float, hi: float, nodes: int = 1000):
  import numpy as np
  return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)


def fit_exp():
  """EXP_FIT: P(r) ~ (e^r - 1 - r) / r^2 on |r| <= ln2 / 2, weighted by r^2 / e^r (the error relative to e^r)."""
  import numpy as np
  r = _chebyshev(-math.log(2) / 2, math.log(2) / 2)
  return _minimax(r, (np.expm1(r) - r) / r**2, r**2 / np.exp(r), 4)


def fit_log2():
  """LOG2_FIT: R(f) ~ log2(1 + f) / f - 1 on [sqrt(1/2) - 1, sqrt(2) - 1], weighted by f / log2(1 + f) (the error
  relative to log2(1 + f))."""
  import numpy as np
  f = _chebyshev(math.sqrt(0.5) - 1, math.sqrt(2) - 1)
  q = np.log2(1 + f) / f
  return _minimax(f, q - 1, 1 / q, 9)
