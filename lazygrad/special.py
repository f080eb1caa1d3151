"""torch.special: special functions composed from Tensor ops (Cephes' and torch's algorithms, each branch computed
everywhere and picked by `where`, loops of fixed length), with torch's names, signatures and gradients."""
from __future__ import annotations
import math
from lazygrad.tensor import Tensor


# functions that are Tensor methods too (torch.lgamma, torch.i0, ...): one definition, reached from here as well
def gammaln(input: Tensor) -> Tensor: return input.lgamma()
def digamma(input: Tensor) -> Tensor: return input.digamma()
def multigammaln(input: Tensor, p: int) -> Tensor: return input.mvlgamma(p)
def polygamma(n: int, input: Tensor) -> Tensor: return input.polygamma(n)
def erfinv(input: Tensor) -> Tensor: return input.erfinv()
def i0(input: Tensor) -> Tensor: return input.i0()
def erf(input: Tensor) -> Tensor: return input.erf()
def erfc(input: Tensor) -> Tensor: return input.erfc()
def expm1(input: Tensor) -> Tensor: return input.expm1()
def exp2(input: Tensor) -> Tensor: return input.exp2()
def log1p(input: Tensor) -> Tensor: return input.log1p()
def expit(input: Tensor) -> Tensor: return input.sigmoid()
def logit(input: Tensor, eps=None) -> Tensor: return input.logit(eps)


psi = digamma


def xlogy(input, other) -> Tensor:
  x, y = _pair(input, other, "xlogy")
  return x.xlogy(y)


def _pair(a, b, op: str) -> tuple[Tensor, Tensor]:
  """Two arguments, tensors or numbers (not both numbers), broadcast to one float dtype."""
  if isinstance(a, Tensor): return a._float_broadcasted(b, op)
  if isinstance(b, Tensor): return b._float_broadcasted(a, op, reverse=True)
  raise TypeError(f"{op}: expected a Tensor argument, got {type(a).__name__} and {type(b).__name__}")


def _unary(input: Tensor) -> Tensor:
  if not isinstance(input, Tensor): raise TypeError(f"expected a Tensor, got {type(input).__name__}")
  return input._float()


# ---- error function family

def ndtr(input: Tensor) -> Tensor:
  """The standard normal CDF, erfc(-x / sqrt(2)) / 2 (no cancellation in either tail)."""
  return (_unary(input) * -math.sqrt(0.5)).erfc() * 0.5


def _erfcx(x: Tensor) -> Tensor:
  t, acc = Tensor._erfc_fit(x.abs())
  pos = t * (t * acc - 1.26551223).exp()
  return (x < 0).where(2 * (x * x).exp() - pos, pos)  # erfcx(-x) = 2 exp(x^2) - erfcx(x)


def erfcx(input: Tensor) -> Tensor:
  """exp(x^2) erfc(x): erfc's fit without its exp(-x^2), so no underflow for large x; derivative 2x erfcx(x) - 2/sqrt(pi)."""
  return _unary(input)._custom_grad(_erfcx, lambda x, g: g * (2 * x * _erfcx(x) - 2 / math.sqrt(math.pi)))


def log_ndtr(input: Tensor) -> Tensor:
  """log(ndtr(x)): below -1 from erfcx (ndtr underflows there), above from log1p; derivative sqrt(2/pi) / erfcx(-x/sqrt(2))."""
  def value(x):
    t = x * math.sqrt(0.5)
    return (x < -1).where((_erfcx(-t) / 2).log() - t * t, (-(t.erfc()) / 2).log1p())
  return _unary(input)._custom_grad(value, lambda x, g: g * math.sqrt(2 / math.pi) / _erfcx(x * -math.sqrt(0.5)))


def ndtri(input: Tensor) -> Tensor:
  """The inverse of ndtr (Cephes' ndtri): a rational fit around 1/2, two in sqrt(-2 log y) for the tails."""
  def value(y0):
    upper = y0 > 1 - 0.13533528323661269189  # exp(-2)
    y = upper.where(1 - y0, y0)
    c = y - 0.5
    c2 = c * c
    central = (c + c * (c2 * Tensor._polevl(c2, _NDTRI_P0) / Tensor._polevl(c2, _NDTRI_Q0))) * 2.50662827463100050242
    x = (-2 * y.maximum(1e-38).log()).sqrt()
    z = 1 / x
    x1 = (x < 8).where(z * Tensor._polevl(z, _NDTRI_P1) / Tensor._polevl(z, _NDTRI_Q1),
                       z * Tensor._polevl(z, _NDTRI_P2) / Tensor._polevl(z, _NDTRI_Q2))
    tail = x - x.log() / x - x1
    out = (y > 0.13533528323661269189).where(central, upper.where(tail, -tail))
    out = (y0 == 0).where(-math.inf, (y0 == 1).where(math.inf, out))
    return ((y0 < 0) | (y0 > 1)).where(math.nan, out)
  return _unary(input)._custom_grad(value, lambda y, g: g * math.sqrt(2 * math.pi) * (ndtri(y).square() / 2).exp())


# ---- entropy and logarithms

def entr(input: Tensor) -> Tensor:
  """-x log(x): 0 at 0, -inf below."""
  x = _unary(input)
  return (x > 0).where(-x * x.maximum(1e-45).log(), (x == 0).where(0.0, (x < 0).where(-math.inf, x)))


def xlog1py(input, other) -> Tensor:
  """x * log1p(y), 0 where x is 0 (unless y is NaN), as xlogy."""
  x, y = _pair(input, other, "xlog1py")
  return ((x == 0) & (y == y)).where(0.0, x * y.log1p())


# igamma and igammac (gammainc, gammaincc) are left out: torch's series and continued fraction run up to 2000 terms,
# as many as a and x need, and a fixed length that is right for every a would need the uniform asymptotic expansion
# (a 25 x 25 table) everywhere for large a


def zeta(input, other) -> Tensor:
  """The Hurwitz zeta function sum_k (q + k)^-x."""
  return Tensor._zeta(*_pair(input, other, "zeta"))


# ---- modified Bessel functions I and K

def i0e(input: Tensor) -> Tensor:
  """exp(-|x|) I0(x); derivative i1e(x) - sgn(x) i0e(x)."""
  return _unary(input)._custom_grad(lambda x: x._i0e(), lambda x, g: g * (x._i1e() - x.sign() * x._i0e()))


def i1(input: Tensor) -> Tensor:
  """I1(x); derivative I0(x) - I1(x) / x (1/2 at 0)."""
  def value(x): return x.abs().exp() * x._i1e()
  def grad(x, g):
    safe = (x == 0).where(1.0, x)
    return g * (x == 0).where(0.5, safe.i0() - value(safe) / safe)
  return _unary(input)._custom_grad(value, grad)


def i1e(input: Tensor) -> Tensor:
  """exp(-|x|) I1(x); derivative i0e(x) - i1e(x) (sgn(x) + 1/x) (1/2 at 0)."""
  def grad(x, g):
    safe = (x == 0).where(1.0, x)
    return g * (x == 0).where(0.5, safe._i0e() - safe._i1e() * (safe.sign() + 1 / safe))
  return _unary(input)._custom_grad(lambda x: x._i1e(), grad)


modified_bessel_i0 = i0
modified_bessel_i1 = i1


def _k_small(x: Tensor, a, i_of_x: Tensor, order: int) -> Tensor:
  """K0 or K1 on (0, 2]: a Chebyshev series in x^2 - 2 and the log(x/2) I term."""
  series = Tensor._chbevl(x * x - 2, a)
  return series - (0.5 * x).log() * i_of_x if order == 0 else (0.5 * x).log() * i_of_x + series / x


def _bessel_k(input: Tensor, order: int, scaled: bool) -> Tensor:
  """K0 or K1 (Cephes' k0, k1, k0e, k1e): a series on (0, 2], a Chebyshev series in 8/x - 2 (times e^-x / sqrt(x)) above."""
  x = _unary(input)
  small = x.minimum(2.0)
  i_small = i0(small) if order == 0 else i1(small)
  near = _k_small(small, _K0_A if order == 0 else _K1_A, i_small, order)
  far_x = x.maximum(2.0)
  far = Tensor._chbevl(8 / far_x - 2, _K0_B if order == 0 else _K1_B) / far_x.sqrt()
  out = (x <= 2).where(near * small.exp() if scaled else near, far if scaled else (-far_x).exp() * far)
  return (x == 0).where(math.inf, (x < 0).where(math.nan, out))


def modified_bessel_k0(input: Tensor) -> Tensor: return _bessel_k(input, 0, scaled=False)
def modified_bessel_k1(input: Tensor) -> Tensor: return _bessel_k(input, 1, scaled=False)
def scaled_modified_bessel_k0(input: Tensor) -> Tensor: return _bessel_k(input, 0, scaled=True)
def scaled_modified_bessel_k1(input: Tensor) -> Tensor: return _bessel_k(input, 1, scaled=True)


# ---- Bessel functions J and Y, spherical J0, Airy Ai

def _bessel_far(x: Tensor, order: int, second_kind: bool) -> Tensor:
  """J or Y for x > 5 (Cephes): the Hankel asymptotic form, amplitude and phase corrections as rational functions of 25/x^2."""
  pp, pq, qp, qq = (_J0_PP, _J0_PQ, _J0_QP, _J0_QQ) if order == 0 else (_J1_PP, _J1_PQ, _J1_QP, _J1_QQ)
  w = 25 / (x * x)
  p = Tensor._polevl(w, pp) / Tensor._polevl(w, pq)
  q = 5 / x * (Tensor._polevl(w, qp) / Tensor._polevl(w, qq))
  phase = x - (math.pi / 4 if order == 0 else 3 * math.pi / 4)
  s, c = phase.sin(), phase.cos()
  return (p * s + q * c if second_kind else p * c - q * s) * math.sqrt(2 / math.pi) / x.sqrt()


def _j0(x: Tensor) -> Tensor:
  x = x.abs()
  z = x * x
  near = (z - 5.78318596294678452118) * (z - 30.4712623436620863991) * Tensor._polevl(z, _J0_RP) / Tensor._polevl(z, _J0_RQ)
  near = (x < 1e-5).where(1 - z / 4, near)
  return (x <= 5).where(near, _bessel_far(x.maximum(5.0), 0, False))


def _j1(x: Tensor) -> Tensor:
  t = x.abs()
  z = t * t
  near = Tensor._polevl(z, _J1_RP) / Tensor._polevl(z, _J1_RQ) * t * (z - 14.6819706421238932572) * (z - 49.2184563216946036703)
  out = (t <= 5).where(near, _bessel_far(t.maximum(5.0), 1, False))
  return (x < 0).where(-out, out)


def bessel_j0(input: Tensor) -> Tensor: return _j0(_unary(input))
def bessel_j1(input: Tensor) -> Tensor: return _j1(_unary(input))


def bessel_y0(input: Tensor) -> Tensor:
  x = _unary(input)
  small = x.minimum(5.0).maximum(1e-30)
  near = Tensor._polevl(small * small, _Y0_YP) / Tensor._polevl(small * small, _Y0_YQ) + 2 / math.pi * small.log() * _j0(small)
  out = (x <= 5).where(near, _bessel_far(x.maximum(5.0), 0, True))
  return (x == 0).where(-math.inf, (x < 0).where(math.nan, out))


def bessel_y1(input: Tensor) -> Tensor:
  x = _unary(input)
  small = x.minimum(5.0).maximum(1e-30)
  z = small * small
  near = small * (Tensor._polevl(z, _Y1_YP) / Tensor._polevl(z, _Y1_YQ)) + 2 / math.pi * (_j1(small) * small.log() - 1 / small)
  out = (x <= 5).where(near, _bessel_far(x.maximum(5.0), 1, True))
  return (x == 0).where(-math.inf, (x < 0).where(math.nan, out))


def spherical_bessel_j0(input: Tensor) -> Tensor:
  """sin(x) / x, by its Taylor series below 1/2."""
  x = _unary(input)
  z = x * x
  series = 1 + z * (-1 / 6 + z * (1 / 120 + z * (-1 / 5040 + z * (1 / 362880 + z * (-1 / 39916800 + z / 6227020800)))))
  return x.isinf().where(0.0, (x.abs() < 0.5).where(series, x.sin() / x))


def airy_ai(input: Tensor) -> Tensor:
  """Ai(x) (Cephes' airy): asymptotic forms below -2.09 and from 2.09, the Maclaurin series (fixed length) between."""
  x = _unary(input)
  # x < -2.09: oscillating
  xn = x.minimum(-2.09)
  zeta_n = -2 * xn * (-xn).sqrt() / 3
  z = 1 / zeta_n
  zz = z * z
  t = zeta_n + math.pi / 4
  osc = 5.64189583547756286948e-01 / (-xn).sqrt().sqrt() * (
    t.sin() * (1 + zz * Tensor._polevl(zz, _AIRY_AFN) / Tensor._polevl(zz, _AIRY_AFD)) -
    t.cos() * (z * Tensor._polevl(zz, _AIRY_AGN) / Tensor._polevl(zz, _AIRY_AGD)))
  # x >= 2.09: decaying
  xp = x.maximum(2.09)
  zeta_p = 2 * xp * xp.sqrt() / 3
  decay = 5.64189583547756286948e-01 * (Tensor._polevl(1 / zeta_p, _AIRY_AN) / Tensor._polevl(1 / zeta_p, _AIRY_AD)) / \
    (2 * xp.sqrt().sqrt() * zeta_p.exp())
  # between: Ai = c1 f - c2 g with f, g the two power series in x^3 (terms shrink like 9^k / (3k)!: 16 are plenty)
  xm = x.maximum(-2.09).minimum(2.09)
  cube = xm * xm * xm
  f, g, m, n, k = x.ones_like(), xm, x.ones_like(), xm, 1.0
  for _ in range(16):
    m, n = m * cube / (k + 1), n * cube / (k + 2)
    m, n = m / (k + 2), n / (k + 3)
    f, g, k = f + m, g + n, k + 3
  series = 0.355028053887817239260 * f - 0.258819403792806798405 * g
  out = (x < -2.09).where(osc, (x >= 2.09).where((x > 103.892).where(0.0, decay), series))
  return x.isinf().where(math.nan, out)


# ---- orthogonal polynomials of a degree n given as a tensor (truncated to an integer, as torch does): Chebyshev's in
# closed form, Hermite's by torch's own recurrence, which it stops at degree 128. Laguerre's and Legendre's are left
# out: torch runs their recurrence to any degree, which only the data says, and they have no elementary closed form,
# so a fixed-length loop (n is never read on the host) would be wrong beyond its length.

def _degree(n: Tensor) -> Tensor: return n.trunc()  # torch casts the degree to an integer


def _chebyshev(x: Tensor, n: Tensor, kind: str) -> Tensor:
  """Chebyshev polynomials T, U, V, W of degree n, in closed form on |x|: with |x| = cos(theta) inside [-1, 1] and
  |x| = cosh(t) outside, T = cos(n theta), U = sin((n+1) theta) / sin(theta), V = cos((n+1/2) theta) / cos(theta/2),
  W = sin((n+1/2) theta) / sin(theta/2), and the hyperbolic forms. At negative x, T_n(x) = (-1)^n T_n(|x|), the same
  for U, and V_n(x) = (-1)^n W_n(|x|), W_n(x) = (-1)^n V_n(|x|). (The angle of |x| is small where it matters: the
  angle of x near -1, pi less a little, would cost n times its rounding.)
  torch runs the three-term recurrence instead; where it overflows to inf, the next step gives inf - inf and it stops
  at NaN, so here too a value whose degree n-2 already overflows is NaN."""
  n = _degree(n)
  sign = (n - 2 * (n / 2).floor() == 1).where(-1.0, 1.0)  # (-1)^n
  ax = x.abs()
  inside = ax <= 1
  theta = ax.minimum(1.0).acos()
  t = ax.maximum(1.0).acosh()

  def ratio(a, hyper, den):
    # hyper(a) / den, through exp(a - log(2 den)) where hyper(a) alone would overflow before the quotient does
    return (a > 20).where((a - (2 * den).log()).exp(), hyper(a) / den)

  def value(n):
    if kind == "t": pos = neg = inside.where((n * theta).cos(), (n * t).cosh())
    elif kind == "u": pos = neg = inside.where(((n + 1) * theta).sin() / theta.sin(), ratio((n + 1) * t, Tensor.sinh, t.sinh()))
    else:
      h = n + 0.5
      v = inside.where((h * theta).cos() / (theta / 2).cos(), ratio(h * t, Tensor.cosh, (t / 2).cosh()))
      w = inside.where((h * theta).sin() / (theta / 2).sin(), ratio(h * t, Tensor.sinh, (t / 2).sinh()))
      pos, neg = (v, w) if kind == "v" else (w, v)
    return (x < 0).where(sign * neg, pos)

  out = value(n)
  # the endpoints, where the quotients are 0/0
  m = 2 * n + 1
  at_one = {"t": 1.0, "u": n + 1, "v": x.ones_like(), "w": m}[kind]
  at_minus_one = {"t": sign, "u": sign * (n + 1), "v": sign * m, "w": sign}[kind]
  out = (x == 1).where(at_one, (x == -1).where(at_minus_one, out))
  first = {"t": x, "u": 2 * x, "v": 2 * x - 1, "w": 2 * x + 1}[kind]
  out = (n == 0).where(1.0, (n == 1).where(first, out))
  out = (~inside & (value(n - 2).abs() == math.inf) & (n >= 3)).where(math.nan, out)
  out = (x.isinf() & (n == 2)).where(math.inf, out)  # the recurrence's one step from +-inf, before inf - inf
  return (n < 0).where(0.0, out)


def chebyshev_polynomial_t(input, n) -> Tensor: return _chebyshev(*_pair(input, n, "chebyshev_polynomial_t"), "t")
def chebyshev_polynomial_u(input, n) -> Tensor: return _chebyshev(*_pair(input, n, "chebyshev_polynomial_u"), "u")
def chebyshev_polynomial_v(input, n) -> Tensor: return _chebyshev(*_pair(input, n, "chebyshev_polynomial_v"), "v")
def chebyshev_polynomial_w(input, n) -> Tensor: return _chebyshev(*_pair(input, n, "chebyshev_polynomial_w"), "w")


def _shifted(kind: str, op: str):
  def fn(input, n) -> Tensor:
    x, n = _pair(input, n, op)
    return _chebyshev(x + x - 1, n, kind)  # the polynomial of 2x - 1 on [0, 1]
  fn.__name__ = op
  return fn


shifted_chebyshev_polynomial_t = _shifted("t", "shifted_chebyshev_polynomial_t")
shifted_chebyshev_polynomial_u = _shifted("u", "shifted_chebyshev_polynomial_u")
shifted_chebyshev_polynomial_v = _shifted("v", "shifted_chebyshev_polynomial_v")
shifted_chebyshev_polynomial_w = _shifted("w", "shifted_chebyshev_polynomial_w")


def _hermite(x: Tensor, n: Tensor, physicists: bool) -> Tensor:
  """Hermite H (physicists') or He (probabilists'): torch's recurrence, which it runs to degree 128 at most (NaN
  beyond), so here a fixed 127 steps with the step of degree n picked out."""
  n = _degree(n)
  p, q = x.ones_like(), (x + x if physicists else x)
  out = (n == 0).where(1.0, (n == 1).where(q, math.nan))
  for k in range(1, 128):
    r = (x + x) * q - (2 * k) * p if physicists else x * q - k * p
    p, q = q, r
    out = (n == k + 1).where(r, out)
  if physicists: out = (n.isinf() | n.isnan()).where(0.0, out)  # torch takes such a degree for -1
  return (n < 0).where(0.0, out)


def hermite_polynomial_h(input, n) -> Tensor: return _hermite(*_pair(input, n, "hermite_polynomial_h"), physicists=True)
def hermite_polynomial_he(input, n) -> Tensor: return _hermite(*_pair(input, n, "hermite_polynomial_he"), physicists=False)


# ---- coefficients (Cephes, as torch's ATen/native/Math.h has them)

_AIRY_AN = (3.46538101525629032477e-01, 1.20075952739645805542e+01, 7.62796053615234516538e+01,
            1.68089224934630576269e+02, 1.59756391350164413639e+02, 7.05360906840444183113e+01,
            1.40264691163389668864e+01, 9.99999999999999995305e-01)
_AIRY_AD = (5.67594532638770212846e-01, 1.47562562584847203173e+01, 8.45138970141474626562e+01,
            1.77318088145400459522e+02, 1.64234692871529701831e+02, 7.14778400825575695274e+01,
            1.40959135607834029598e+01, 1.00000000000000000470e+00)
_AIRY_AFN = (-1.31696323418331795333e-01, -6.26456544431912369773e-01, -6.93158036036933542233e-01,
             -2.79779981545119124951e-01, -4.91900132609500318020e-02, -4.06265923594885404393e-03,
             -1.59276496239262096340e-04, -2.77649108155232920844e-06, -1.67787698489114633780e-08)
_AIRY_AFD = (1.33560420706553243746e+01, 3.26825032795224613948e+01, 2.67367040941499554804e+01,
             9.18707402907259625840e+00, 1.47529146771666414581e+00, 1.15687173795188044134e-01,
             4.40291641615211203805e-03, 7.54720348287414296618e-05, 4.51850092970580378464e-07)
_AIRY_AGN = (1.97339932091685679179e-02, 3.91103029615688277255e-01, 1.06579897599595591108e+00,
             9.39169229816650230044e-01, 3.51465656105547619242e-01, 6.33888919628925490927e-02,
             5.85804113048388458567e-03, 2.82851600836737019778e-04, 6.98793669997260967291e-06,
             8.11789239554389293311e-08, 3.41551784765923618484e-10)
_AIRY_AGD = (9.30892908077441974853e+00, 1.98352928718312140417e+01, 1.55646628932864612953e+01,
             5.47686069422975497931e+00, 9.54293611618961883998e-01, 8.64580826352392193095e-02,
             4.12656523824222607191e-03, 1.01259085116509135510e-04, 1.17166733214413521882e-06,
             4.91834570062930015649e-09)
_J0_PP = (7.96936729297347051624e-04, 8.28352392107440799803e-02, 1.23953371646414299388e+00,
          5.44725003058768775090e+00, 8.74716500199817011941e+00, 5.30324038235394892183e+00,
          9.99999999999999997821e-01)
_J0_PQ = (9.24408810558863637013e-04, 8.56288474354474431428e-02, 1.25352743901058953537e+00,
          5.47097740330417105182e+00, 8.76190883237069594232e+00, 5.30605288235394617618e+00,
          1.00000000000000000218e+00)
_J0_QP = (-1.13663838898469149931e-02, -1.28252718670509318512e+00, -1.95539544257735972385e+01,
          -9.32060152123768231369e+01, -1.77681167980488050595e+02, -1.47077505154951170175e+02,
          -5.14105326766599330220e+01, -6.05014350600728481186e+00)
_J0_QQ = (6.43178256118178023184e+01, 8.56430025976980587198e+02, 3.88240183605401609683e+03,
          7.24046774195652478189e+03, 5.93072701187316984827e+03, 2.06209331660327847417e+03,
          2.42005740240291393179e+02)
_J0_RP = (-4.79443220978201773821e+09, 1.95617491946556577543e+12, -2.49248344360967716204e+14,
          9.70862251047306323952e+15)
_J0_RQ = (4.99563147152651017219e+02, 1.73785401676374683123e+05, 4.84409658339962045305e+07,
          1.11855537045356834862e+10, 2.11277520115489217587e+12, 3.10518229857422583814e+14,
          3.18121955943204943306e+16, 1.71086294081043136091e+18)
_J1_PP = (7.62125616208173112003e-04, 7.31397056940917570436e-02, 1.12719608129684925192e+00,
          5.11207951146807644818e+00, 8.42404590141772420927e+00, 5.21451598682361504063e+00,
          1.00000000000000000254e+00)
_J1_PQ = (5.71323128072548699714e-04, 6.88455908754495404082e-02, 1.10514232634061696926e+00,
          5.07386386128601488557e+00, 8.39985554327604159757e+00, 5.20982848682361821619e+00,
          9.99999999999999997461e-01)
_J1_QP = (5.10862594750176621635e-02, 4.98213872951233449420e+00, 7.58238284132545283818e+01,
          3.66779609360150777800e+02, 7.10856304998926107277e+02, 5.97489612400613639965e+02,
          2.11688757100572135698e+02, 2.52070205858023719784e+01)
_J1_QQ = (7.42373277035675149943e+01, 1.05644886038262816351e+03, 4.98641058337653607651e+03,
          9.56231892404756170795e+03, 7.99704160447350683650e+03, 2.82619278517639096600e+03,
          3.36093607810698293419e+02)
_J1_RP = (-8.99971225705559398224e+08, 4.52228297998194034323e+11, -7.27494245221818276015e+13,
          3.68295732863852883286e+15)
_J1_RQ = (6.20836478118054335476e+02, 2.56987256757748830383e+05, 8.35146791431949253037e+07,
          2.21511595479792499675e+10, 4.74914122079991414898e+12, 7.84369607876235854894e+14,
          8.95222336184627338078e+16, 5.32278620332680085395e+18)
_Y0_YP = (1.55924367855235737965e+04, -1.46639295903971606143e+07, 5.43526477051876500413e+09,
          -9.82136065717911466409e+11, 8.75906394395366999549e+13, -3.46628303384729719441e+15,
          4.42733268572569800351e+16, -1.84950800436986690637e+16)
_Y0_YQ = (1.04128353664259848412e+03, 6.26107330137134956842e+05, 2.68919633393814121987e+08,
          8.64002487103935000337e+10, 2.02979612750105546709e+13, 3.17157752842975028269e+15,
          2.50596256172653059228e+17)
_Y1_YP = (1.26320474790178026440e+09, -6.47355876379160291031e+11, 1.14509511541823727583e+14,
          -8.12770255501325109621e+15, 2.02439475713594898196e+17, -7.78877196265950026825e+17)
_Y1_YQ = (5.94301592346128195359e+02, 2.35564092943068577943e+05, 7.34811944459721705660e+07,
          1.87601316108706159478e+10, 3.88231277496238566008e+12, 6.20557727146953693363e+14,
          6.87141087355300489866e+16, 3.97270608116560655612e+18)
_K0_A = (1.37446543561352307156e-16, 4.25981614279661018399e-14, 1.03496952576338420167e-11,
         1.90451637722020886025e-09, 2.53479107902614945675e-07, 2.28621210311945178607e-05,
         1.26461541144692592338e-03, 3.59799365153615016266e-02, 3.44289899924628486886e-01,
         -5.35327393233902768720e-01)
_K0_B = (5.30043377268626276149e-18, -1.64758043015242134646e-17, 5.21039150503902756861e-17,
         -1.67823109680541210385e-16, 5.51205597852431940784e-16, -1.84859337734377901440e-15,
         6.34007647740507060557e-15, -2.22751332699166985548e-14, 8.03289077536357521100e-14,
         -2.98009692317273043925e-13, 1.14034058820847496303e-12, -4.51459788337394416547e-12,
         1.85594911495471785253e-11, -7.95748924447710747776e-11, 3.57739728140030116597e-10,
         -1.69753450938905987466e-09, 8.57403401741422608519e-09, -4.66048989768794782956e-08,
         2.76681363944501510342e-07, -1.83175552271911948767e-06, 1.39498137188764993662e-05,
         -1.28495495816278026384e-04, 1.56988388573005337491e-03, -3.14481013119645005427e-02,
         2.44030308206595545468e+00)
_K1_A = (-7.02386347938628759343e-18, -2.42744985051936593393e-15, -6.66690169419932900609e-13,
         -1.41148839263352776110e-10, -2.21338763073472585583e-08, -2.43340614156596823496e-06,
         -1.73028895751305206302e-04, -6.97572385963986435018e-03, -1.22611180822657148235e-01,
         -3.53155960776544875667e-01, 1.52530022733894777053e+00)
_K1_B = (-5.75674448366501715755e-18, 1.79405087314755922667e-17, -5.68946255844285935196e-17,
         1.83809354436663880070e-16, -6.05704724837331885336e-16, 2.03870316562433424052e-15,
         -7.01983709041831346144e-15, 2.47715442448130437068e-14, -8.97670518232499435011e-14,
         3.34841966607842919884e-13, -1.28917396095102890680e-12, 5.13963967348173025100e-12,
         -2.12996783842756842877e-11, 9.21831518760500529508e-11, -4.19035475934189648750e-10,
         2.01504975519703286596e-09, -1.03457624656780970260e-08, 5.74108412545004946722e-08,
         -3.50196060308781257119e-07, 2.40648494783721712015e-06, -1.93619797416608296024e-05,
         1.95215518471351631108e-04, -2.85781685962277938680e-03, 1.03923736576817238437e-01,
         2.72062619048444266945e+00)
_NDTRI_P0 = (-5.99633501014107895267E1, 9.80010754185999661536E1, -5.66762857469070293439E1, 1.39312609387279679503E1,
             -1.23916583867381258016E0)
_NDTRI_Q0 = (1.00000000000000000000E0, 1.95448858338141759834E0, 4.67627912898881538453E0, 8.63602421390890590575E1,
             -2.25462687854119370527E2, 2.00260212380060660359E2, -8.20372256168333339912E1, 1.59056225126211695515E1,
             -1.18331621121330003142E0)
_NDTRI_P1 = (4.05544892305962419923E0, 3.15251094599893866154E1, 5.71628192246421288162E1, 4.40805073893200834700E1,
             1.46849561928858024014E1, 2.18663306850790267539E0, -1.40256079171354495875E-1,
             -3.50424626827848203418E-2, -8.57456785154685413611E-4)
_NDTRI_Q1 = (1.00000000000000000000E0, 1.57799883256466749731E1, 4.53907635128879210584E1, 4.13172038254672030440E1,
             1.50425385692907503408E1, 2.50464946208309415979E0, -1.42182922854787788574E-1,
             -3.80806407691578277194E-2, -9.33259480895457427372E-4)
_NDTRI_P2 = (3.23774891776946035970E0, 6.91522889068984211695E0, 3.93881025292474443415E0, 1.33303460815807542389E0,
             2.01485389549179081538E-1, 1.23716634817820021358E-2, 3.01581553508235416007E-4,
             2.65806974686737550832E-6, 6.23974539184983293730E-9)
_NDTRI_Q2 = (1.00000000000000000000E0, 6.02427039364742014255E0, 3.67983563856160859403E0, 1.37702099489081330271E0,
             2.16236993594496635890E-1, 1.34204006088543189037E-2, 3.28014464682127739104E-4,
             2.89247864745380683936E-6, 6.79019408009981274425E-9)
