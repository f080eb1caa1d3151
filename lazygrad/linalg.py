"""torch.linalg for lazygrad: small dense factorizations (LU, Cholesky, QR, Jacobi eigen and singular value solvers)
written as Python loops over the matrix size, each step a few Tensor ops on the device, so that autograd of the
composition gives the gradients (eigh and svd, whose iterations are not differentiated, carry torch's formulas)."""
from __future__ import annotations
import math
import numpy as np  # for dtypes' epsilon only
from lazygrad.tensor import Tensor, broadcast_shape, cat, stack
from lazygrad.dtype import bool_, int32, int64
from lazygrad.function import CustomGrad
from lazygrad.helpers import normalize_dim, prod

JACOBI_SWEEPS = 8  # cyclic Jacobi converges quadratically: 8 sweeps reach float32 rounding for small matrices (checked to n = 16)


# ---- helpers

def _matrices(A: Tensor, op: str, square: bool = False) -> None:
  if A.ndim < 2: raise RuntimeError(f"linalg.{op}: The input tensor A must have at least 2 dimensions.")
  if not A.dtype.is_float: raise RuntimeError(f"linalg.{op}: Expected a floating point tensor, got {A.dtype.name}")
  if square and A.shape[-1] != A.shape[-2]:
    raise RuntimeError(f"linalg.{op}: A must be batches of square matrices, but they are {A.shape[-2]} by "
                       f"{A.shape[-1]} matrices")


def _unit(n: int, j, like: Tensor) -> Tensor:
  """The j-th unit vector of length n in like's dtype; j a Python int or an integer tensor (a batch of them)."""
  pos = Tensor.arange(n, device=like.device)
  return ((j.unsqueeze(-1) if isinstance(j, Tensor) else j) == pos).cast(like.dtype)


def _eye(n: int, like: Tensor, batch=()) -> Tensor:
  return Tensor.eye(n, dtype=like.dtype, device=like.device).expand(*batch, n, n)


def _rows_cols(m: int, n: int, like: Tensor) -> tuple[Tensor, Tensor]:
  return Tensor.arange(m, device=like.device).reshape(m, 1), Tensor.arange(n, device=like.device).reshape(1, n)


def _batch_broadcast(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
  batch = broadcast_shape(A.shape[:-2], B.shape[:-2], op="linalg")
  return A.expand(*batch, *A.shape[-2:]), B.expand(*batch, *B.shape[-2:])


def _joined(out: Tensor, *inputs: Tensor) -> Tensor:
  """out, kept in the graph of inputs it does not depend on (an empty matrix's determinant, a zeroth power): torch
  gives those inputs zero gradients, and backward needs a path to them. A where that never picks them: no NaN."""
  for x in inputs:
    if x.requires_grad and (not out.requires_grad or x.numel() == 0):
      out = out + Tensor.full((), False, dtype=bool_, device=x.device).where(x.sum(), 0.0).cast(out.dtype)
  return out


def _pack(batch: tuple, *parts: Tensor) -> Tensor:
  """Several outputs flattened into one tensor along a last dim (a CustomGrad has one output)."""
  return cat([p.reshape(*batch, prod(p.shape[len(batch):])) for p in parts], -1)


def _unpack(packed: Tensor, shapes: list[tuple[int, ...]]) -> list[Tensor]:
  out, at = [], 0
  for s in shapes:
    n = prod(s)
    out.append(packed[..., at:at + n].reshape(*packed.shape[:-1], *s))
    at += n
  return out


# ---- LU with partial pivoting

def _swap_rows(X: Tensor, j: int, e_j: Tensor, e_p: Tensor) -> Tensor:
  """X with rows j and p exchanged, p given as a one-hot e_p (a batch of them): no host read of the pivot."""
  row_j = X[..., j, :]
  row_p = (e_p.unsqueeze(-1) * X).sum(-2)
  return X + e_j.unsqueeze(-1) * (row_p - row_j).unsqueeze(-2) + e_p.unsqueeze(-1) * (row_j - row_p).unsqueeze(-2)


def _lu(A: Tensor, pivot: bool = True):
  """Doolittle elimination of (..., m, n) matrices: (LU packed as LAPACK's getrf, P with P @ A = L @ U, pivots
  (1-based int32, LAPACK's), the permutation's sign). The pivot is the largest magnitude on or below the diagonal,
  chosen on the device by argmax and applied as a one-hot row exchange."""
  m, n = A.shape[-2:]
  batch = A.shape[:-2]
  rows, cols = _rows_cols(m, n, A)
  P = _eye(m, A, batch)
  sign = A.new_ones(*batch)
  pivots = []
  for j in range(min(m, n)):
    e_j = _unit(m, j, A)
    if pivot:
      p = (rows.reshape(m) >= j).where(A[..., :, j].abs().detach(), -1.0).argmax(-1)
      e_p = _unit(m, p, A)
      A, P = _swap_rows(A, j, e_j, e_p), _swap_rows(P, j, e_j, e_p)
      sign = (p == j).where(sign, -sign)
      pivots.append(p.cast(int32) + 1)
    else: pivots.append(Tensor.full(batch, j + 1, dtype=int32, device=A.device))
    piv = A[..., j:j + 1, j:j + 1]
    below = rows > j
    # a zero pivot leaves its column as it is (LAPACK's getf2), instead of dividing by zero
    f = (below & (piv != 0)).where(A[..., :, j:j + 1] / (piv == 0).where(1.0, piv), 0.0)
    A = (cols > j).where(A - f * A[..., j:j + 1, :], (below & (cols == j)).where(f, A))
  piv_t = stack(pivots, -1) if pivots else Tensor.zeros(*batch, 0, dtype=int32, device=A.device)
  return A, P, piv_t, sign


def _first_bad(bad: Tensor) -> Tensor:
  """LAPACK's info: 1 + the index of the first True along the last dim, 0 where none (int32)."""
  if bad.shape[-1] == 0: return Tensor.zeros(*bad.shape[:-1], dtype=int32, device=bad.device)
  return bad.any(-1).where(bad.cast(int32).argmax(-1).cast(int32) + 1, 0).cast(int32)


def _unpack_lu(LU: Tensor) -> tuple[Tensor, Tensor]:
  m, n = LU.shape[-2:]
  k = min(m, n)
  L = LU[..., :, :k].tril(-1) + Tensor.eye(m, k, dtype=LU.dtype, device=LU.device)
  return L, LU[..., :k, :].triu()


def _permutation(pivots: Tensor, m: int, like: Tensor) -> Tensor:
  """P with P @ A the rows of A in the order LAPACK's pivots (1-based row exchanges, in turn) put them."""
  P = _eye(m, like, pivots.shape[:-1])
  for j in range(pivots.shape[-1]): P = _swap_rows(P, j, _unit(m, j, like), _unit(m, pivots[..., j].cast(int64) - 1, like))
  return P


def lu_factor_ex(A: Tensor, *, pivot: bool = True, check_errors: bool = False):
  _matrices(A, "lu_factor_ex")
  if not pivot: raise RuntimeError("linalg.lu_factor: LU without pivoting is not implemented on the CPU")
  LU, _, pivots, _ = _lu(A, pivot)
  k = min(A.shape[-2:])
  info = _first_bad(LU.diagonal(0, -2, -1)[..., :k] == 0)
  if check_errors: _raise_info(info, "lu_factor_ex", "The factorization could not be completed because the input is singular")
  return LU, pivots, info


def lu_factor(A: Tensor, *, pivot: bool = True):
  LU, pivots, _ = lu_factor_ex(A, pivot=pivot)
  return LU, pivots


def lu(A: Tensor, *, pivot: bool = True):
  """(P, L, U) with A = P @ L @ U."""
  _matrices(A, "lu")
  LU, P, _, _ = _lu(A, pivot)
  L, U = _unpack_lu(LU)
  return P.mT, L, U


def lu_unpack(LU_data: Tensor, LU_pivots: Tensor, unpack_data: bool = True, unpack_pivots: bool = True):
  m = LU_data.shape[-2]
  P = _permutation(LU_pivots, m, LU_data).mT if unpack_pivots else LU_data.new_zeros(0)
  L, U = _unpack_lu(LU_data) if unpack_data else (LU_data.new_zeros(0), LU_data.new_zeros(0))
  return P, L, U


def _raise_info(info: Tensor, op: str, what: str) -> None:
  """torch's error for a failed factorization: the info read back to the host, as torch's CPU kernels do."""
  if info.numel() and int(info.amax().item()) > 0: raise RuntimeError(f"linalg.{op}: {what}.")


# ---- triangular solves

def _tri_solve(T: Tensor, B: Tensor, upper: bool, unit: bool = False) -> Tensor:
  """X with T @ X = B for triangular T (..., n, n), B (..., n, k), by substitution a row at a time; only T's
  triangle is read."""
  n = T.shape[-1]
  T = (T.triu(1) if upper else T.tril(-1)) if unit else (T.triu() if upper else T.tril())
  T, B = _batch_broadcast(T, B)
  X = B.zeros_like()
  for i in (range(n - 1, -1, -1) if upper else range(n)):
    x = B[..., i:i + 1, :] - T[..., i:i + 1, :] @ X
    if not unit: x = x / T[..., i:i + 1, i:i + 1]
    X = X + _unit(n, i, B).unsqueeze(-1) * x
  return _joined(X, T, B)


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True, unitriangular: bool = False) -> Tensor:
  _matrices(A, "solve_triangular", square=True)
  if left: return _tri_solve(A, B, upper, unitriangular)
  return _tri_solve(A.mT, B.mT, not upper, unitriangular).mT


def triangular_solve(b: Tensor, A: Tensor, upper: bool = True, transpose: bool = False, unitriangular: bool = False):
  """torch.triangular_solve: (X with op(A) @ X = b, a copy of A)."""
  X = _tri_solve(A.mT, b, not upper, unitriangular) if transpose else _tri_solve(A, b, upper, unitriangular)
  return X, A.clone()


# ---- solves, inverses and determinants through LU

def _lu_apply(LU: Tensor, P: Tensor, B: Tensor, adjoint: bool = False) -> Tensor:
  """X with A @ X = B (or A^T @ X = B), A given as P @ A = L @ U."""
  if adjoint: return P.mT @ _tri_solve(LU.mT, _tri_solve(LU.mT, B, upper=False), upper=True, unit=True)
  return _tri_solve(LU, _tri_solve(LU, P @ B, upper=False, unit=True), upper=True)


def lu_solve(LU: Tensor, pivots: Tensor, B: Tensor, *, left: bool = True, adjoint: bool = False) -> Tensor:
  P = _permutation(pivots, LU.shape[-1], LU)
  if left: return _lu_apply(LU, P, B, adjoint)
  return _lu_apply(LU, P, B.mT, not adjoint).mT


def _vector_rhs(A: Tensor, B: Tensor) -> bool:
  """torch's rule: B is a (batch of) vector(s) where it is 1-D or has A's batch shape and one dim fewer."""
  return B.ndim == 1 or (B.ndim == A.ndim - 1 and B.shape == A.shape[:-1])


def solve_ex(A: Tensor, B: Tensor, *, left: bool = True, check_errors: bool = False):
  _matrices(A, "solve_ex", square=True)
  vector = _vector_rhs(A, B)
  if vector: B = B.unsqueeze(-1)
  if not left: A, B = A.mT, B.mT
  LU, P, _, _ = _lu(A)
  info = _first_bad(LU.diagonal(0, -2, -1) == 0)
  if check_errors: _raise_info(info, "solve", "The solver failed because the input matrix is singular")
  X = _lu_apply(LU, P, B)
  if not left: X = X.mT
  return X.squeeze(-1) if vector else X, info


def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor: return solve_ex(A, B, left=left, check_errors=True)[0]


def inv_ex(A: Tensor, *, check_errors: bool = False):
  _matrices(A, "inv_ex", square=True)
  n = A.shape[-1]
  LU, P, _, _ = _lu(A)
  info = _first_bad(LU.diagonal(0, -2, -1) == 0)
  if check_errors: _raise_info(info, "inv", "The diagonal element is zero, the inversion could not be completed "
                                            "because the input matrix is singular")
  return _lu_apply(LU, P, _eye(n, A, A.shape[:-2])), info


def inv(A: Tensor) -> Tensor: return inv_ex(A, check_errors=True)[0]


def slogdet(A: Tensor):
  """(sign, log|det|): the sign of the permutation and of U's diagonal, the logs of its magnitudes summed."""
  _matrices(A, "slogdet", square=True)
  LU, _, _, sign = _lu(A)
  d = LU.diagonal(0, -2, -1)
  return sign * d.sign().prod(-1), _joined(d.abs().log().sum(-1), A)


def det(A: Tensor) -> Tensor:
  _matrices(A, "det", square=True)
  LU, _, _, sign = _lu(A)
  return _joined(sign * LU.diagonal(0, -2, -1).prod(-1), A)


def logdet(A: Tensor) -> Tensor:
  """log(det A): NaN for a negative determinant, as torch.logdet."""
  sign, logabs = slogdet(A)
  return (sign < 0).where(math.nan, logabs)


def matrix_power(A: Tensor, n: int) -> Tensor:
  _matrices(A, "matrix_power", square=True)
  if n == 0: return _joined(_eye(A.shape[-1], A, A.shape[:-2]).contiguous(), A)
  if n < 0: A, n = inv(A), -n
  out, base = None, A
  while n:  # by squaring, as torch
    if n & 1: out = base if out is None else out @ base
    n >>= 1
    if n: base = base @ base
  return out


def tensorinv(A: Tensor, ind: int = 2) -> Tensor:
  out_shape, in_shape = A.shape[ind:], A.shape[:ind]
  if ind <= 0: raise RuntimeError(f"Expected a strictly positive integer for 'ind', but got {ind}")
  if prod(out_shape) != prod(in_shape):
    raise RuntimeError(f"Expected self to satisfy the requirement prod(self.shape[ind:]) == prod(self.shape[:ind]), "
                       f"but got {prod(out_shape)} != {prod(in_shape)}")
  return inv(A.reshape(prod(in_shape), prod(out_shape))).reshape(*out_shape, *in_shape)


def tensorsolve(A: Tensor, B: Tensor, dims=None) -> Tensor:
  if dims is not None:
    dims = [normalize_dim(d, A.ndim, "tensorsolve") for d in dims]
    A = A.permute(*[d for d in range(A.ndim) if d not in dims], *dims)
  x_shape = A.shape[B.ndim:]
  return solve(A.reshape(B.numel(), prod(x_shape)), B.reshape(B.numel())).reshape(x_shape)


# ---- Cholesky

def cholesky_ex(A: Tensor, *, upper: bool = False, check_errors: bool = False):
  """Column by column (Cholesky-Banachiewicz); A is read as (A + A^T) / 2, so the gradient is symmetric, as torch's."""
  _matrices(A, "cholesky", square=True)
  n = A.shape[-1]
  S = (A + A.mT) / 2
  rows = Tensor.arange(n, device=A.device)
  L, bad = S.zeros_like(), []
  for j in range(n):
    v = S[..., :, j] - (L @ L[..., j, :].unsqueeze(-1)).squeeze(-1)  # L has its first j columns so far
    d = v[..., j:j + 1]
    bad.append(~(d[..., 0] > 0))
    L = L + (rows >= j).where(v / d.sqrt(), 0.0).unsqueeze(-1) * _unit(n, j, A)
  info = _first_bad(stack(bad, -1)) if bad else _first_bad(A.new_zeros(*A.shape[:-2], 0).cast(bool_))
  if check_errors: _raise_info(info, "cholesky", "The factorization could not be completed because the input is not "
                                                 "positive-definite")
  L = _joined(L, A)
  return (L.mT if upper else L), info


def cholesky(A: Tensor, upper: bool = False, *, out=None) -> Tensor:
  return cholesky_ex(A, upper=upper, check_errors=True)[0]


def cholesky_inverse(L: Tensor, upper: bool = False) -> Tensor:
  """(L @ L^T)^-1 = L^-T @ L^-1 (U^-1 @ U^-T for upper=True)."""
  Linv = _tri_solve(L, _eye(L.shape[-1], L, L.shape[:-2]), upper)
  return Linv @ Linv.mT if upper else Linv.mT @ Linv


def cholesky_solve(B: Tensor, L: Tensor, upper: bool = False) -> Tensor:
  if upper: return _tri_solve(L, _tri_solve(L.mT, B, upper=False), upper=True)
  return _tri_solve(L.mT, _tri_solve(L, B, upper=False), upper=True)


# ---- products and norms

def multi_dot(tensors) -> Tensor:
  tensors = list(tensors)
  if len(tensors) < 2: raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
  first, last = tensors[0].ndim == 1, tensors[-1].ndim == 1
  mats = [tensors[0].unsqueeze(0) if first else tensors[0]] + tensors[1:-1] + [tensors[-1].unsqueeze(-1) if last else tensors[-1]]
  out = mats[0]
  for m in mats[1:]: out = out @ m
  if first: out = out.squeeze(0)
  if last: out = out.squeeze(-1)
  return out


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor: return (x * y).sum(dim)


def cross(input: Tensor, other: Tensor, *, dim: int = -1) -> Tensor:
  shape = broadcast_shape(input.shape, other.shape, op="linalg.cross")
  x, y = input.expand(shape), other.expand(shape)
  d = normalize_dim(dim, len(shape), "linalg.cross")
  if shape[d] != 3: raise RuntimeError(f"linalg.cross: inputs dimension {dim} must have length 3. Got {x.shape[d]} and {y.shape[d]}")
  a, b = x.unbind(d), y.unbind(d)
  return stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], d)


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor: return A.diagonal(offset, dim1, dim2)


def vander(x: Tensor, *, N: int | None = None) -> Tensor:
  if x.ndim == 0: x = x.reshape(1)  # as torch
  N = x.shape[-1] if N is None else N
  if N <= 1: raise RuntimeError("N must be greater than 1.")
  out = [x.ones_like()]
  for _ in range(N - 1): out.append(out[-1] * x)  # repeated products, as torch's cumprod: exact signs and zeros
  return stack(out, -1)


def vector_norm(x: Tensor, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
  return x.norm(ord, dim, keepdim, dtype=dtype)


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:
  if dtype is not None: A = A.cast(dtype)
  _matrices(A, "matrix_norm")
  d = tuple(normalize_dim(a, A.ndim, "linalg.matrix_norm") for a in dim)
  if len(d) != 2 or d[0] == d[1]: raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple of different dims, got {dim}")
  if ord == "fro": return A.norm(2, d, keepdim)
  if ord in ("nuc", 2, -2):
    s = svdvals(A.permute(*[a for a in range(A.ndim) if a not in d], *d))
    out = s.sum(-1) if ord == "nuc" else s[..., 0] if ord == 2 else s[..., -1]
    if keepdim:
      for a in sorted(d): out = out.unsqueeze(a)
    return out
  if ord in (1, -1, math.inf, -math.inf):
    across, along = (d[0], d[1]) if abs(ord) == 1 else (d[1], d[0])  # sum down columns (1) or along rows (inf)
    sums = A.abs().sum(across, keepdim=True)
    out = sums.amax(along, keepdim=True) if ord > 0 else sums.amin(along, keepdim=True)
    return out if keepdim else out.squeeze(tuple(sorted(d)))
  raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
  if dim is not None and not isinstance(dim, (tuple, list)): dim = (dim,)
  if dim is None and ord is not None:
    if A.ndim not in (1, 2): raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got {A.ndim}D.")
    dim = tuple(range(A.ndim))
  if dim is not None and len(dim) == 2: return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
  return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


# ---- QR by Householder reflections (LAPACK's geqrf conventions: R's diagonal takes the sign -sign(a_jj))

def _reflect(X: Tensor, v: Tensor, tau: Tensor) -> Tensor:
  """(I - tau v v^T) @ X for v (..., m), tau (...)."""
  return X - (tau.unsqueeze(-1) * v).unsqueeze(-1) * (v.unsqueeze(-2) @ X)


def _apply_reflectors(V: Tensor, tau: Tensor, C: Tensor, left: bool = True, transpose: bool = False) -> Tensor:
  """Q @ C (Q^T @ C, C @ Q, C @ Q^T) for Q = H_1 @ ... @ H_k, H_j = I - tau_j v_j v_j^T with v_j column j of V below
  the diagonal and 1 on it (LAPACK's ormqr; orgqr where C is the identity's first columns)."""
  m = V.shape[-2]
  rows = Tensor.arange(m, device=V.device)
  k = tau.shape[-1]
  # H_k is applied to C first for Q @ C and for C @ Q^T
  for j in (range(k - 1, -1, -1) if left != transpose else range(k)):
    v = (rows > j).where(V[..., :, j], (rows == j).where(1.0, 0.0))
    C = _reflect(C, v, tau[..., j]) if left else _reflect(C.mT, v, tau[..., j]).mT
  return C


def householder_product(A: Tensor, tau: Tensor) -> Tensor:
  _matrices(A, "householder_product")
  m, n = A.shape[-2:]
  if n > m: raise RuntimeError("torch.linalg.householder_product: input.shape[-2] must be greater than or equal to input.shape[-1]")
  if tau.shape[-1] > n: raise RuntimeError("torch.linalg.householder_product: input.shape[-1] must be greater than or equal to tau.shape[-1]")
  return _joined(_apply_reflectors(A, tau, Tensor.eye(m, n, dtype=A.dtype, device=A.device)), A, tau)


def geqrf(A: Tensor):
  """torch.geqrf: (R with the Householder vectors below its diagonal, tau), LAPACK's layout."""
  _matrices(A, "geqrf")
  return _geqrf(A)


def ormqr(A: Tensor, tau: Tensor, other: Tensor, left: bool = True, transpose: bool = False) -> Tensor:
  """torch.ormqr: other multiplied by the Q that geqrf's (A, tau) stand for."""
  return _joined(_apply_reflectors(A, tau, other, left, transpose), A, tau, other)


def _geqrf(A: Tensor) -> tuple[Tensor, Tensor]:
  """(R with the reflectors' tails below its diagonal, tau), as LAPACK's geqrf."""
  m, n = A.shape[-2:]
  rows = Tensor.arange(m, device=A.device)
  taus = []
  for j in range(min(m, n)):
    alpha = A[..., j, j]
    tail = (rows > j).where(A[..., :, j], 0.0)
    tail2 = (tail * tail).sum(-1)
    flat = tail2 == 0  # nothing to annihilate: H = I (tau = 0), as LAPACK's larfg
    beta = -(alpha >= 0).where(1.0, -1.0) * (alpha * alpha + tail2).sqrt()
    tau = flat.where(0.0, (beta - alpha) / flat.where(1.0, beta))
    scale = flat.where(0.0, 1 / flat.where(1.0, alpha - beta))
    v = tail * scale.unsqueeze(-1) + _unit(m, j, A)
    A = (Tensor.arange(n, device=A.device) > j).where(_reflect(A, v, tau), A)  # the columns left of j hold earlier tails
    # column j: beta on the diagonal, the reflector's tail below it
    col = (rows == j).where(flat.where(alpha, beta).unsqueeze(-1), (rows > j).where(v, A[..., :, j]))
    A = A + (col - A[..., :, j]).unsqueeze(-1) * _unit(n, j, A)
    taus.append(tau)
  tau = stack(taus, -1) if taus else A.new_zeros(*A.shape[:-2], 0)
  return A, tau


def qr(A: Tensor, mode: str = "reduced"):
  _matrices(A, "qr")
  if mode not in ("reduced", "complete", "r"):
    raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', or 'complete'")
  m, n = A.shape[-2:]
  k = min(m, n)
  H, tau = _geqrf(A)
  rows_r = m if mode == "complete" else k
  R = _joined(H[..., :rows_r, :].triu(), A)
  if mode == "r": return A.new_zeros(0), R
  return _joined(_apply_reflectors(H, tau, Tensor.eye(m, m if mode == "complete" else k, dtype=A.dtype, device=A.device)), A), R


def lstsq(A: Tensor, B: Tensor, rcond=None, *, driver=None):
  """Least squares by QR (LAPACK's gels; the other drivers' rank and singular values are not given): the minimum norm
  solution where A is wide. (solution, residuals, rank, singular_values)."""
  _matrices(A, "lstsq")
  if driver not in (None, "gels", "gelsy", "gelsd", "gelss"): raise RuntimeError(f"torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)")
  if driver not in (None, "gels"): raise NotImplementedError(f"linalg.lstsq: driver={driver!r} is not supported yet; driver='gels' is")
  vector = B.ndim == A.ndim - 1
  if vector: B = B.unsqueeze(-1)
  A, B = _batch_broadcast(A, B)
  m, n = A.shape[-2:]
  if m >= n:
    Q, R = qr(A)
    X = _tri_solve(R, Q.mT @ B, upper=True)
  else:  # A^T = Q R: X = Q R^-T B
    Q, R = qr(A.mT)
    X = Q @ _tri_solve(R.mT, B, upper=False)
  residuals = ((A @ X - B) ** 2).sum(-2) if m > n else A.new_zeros(0)
  if vector: X = X.squeeze(-1)
  return X, residuals, Tensor.zeros(0, dtype=int64, device=A.device), A.new_zeros(0)


# ---- symmetric eigenproblems and singular values: cyclic Jacobi rotations, with torch's gradient formulas

def _rotation(n: int, p: int, q: int, c: Tensor, s: Tensor, like: Tensor) -> Tensor:
  """The identity with c at (p, p) and (q, q), s at (p, q) and -s at (q, p): a batch of plane rotations."""
  rows, cols = _rows_cols(n, n, like)
  at = lambda i, j: ((rows == i) & (cols == j)).cast(like.dtype)
  c, s = c.unsqueeze(-1).unsqueeze(-1), s.unsqueeze(-1).unsqueeze(-1)
  return _eye(n, like) + (c - 1) * (at(p, p) + at(q, q)) + s * (at(p, q) - at(q, p))


def _jacobi_angle(app: Tensor, aqq: Tensor, apq: Tensor) -> tuple[Tensor, Tensor]:
  """(c, s) of the rotation that zeroes apq in [[app, apq], [apq, aqq]], the smaller angle (Numerical Recipes)."""
  zero = apq == 0
  theta = (aqq - app) / (2 * zero.where(1.0, apq))
  t = zero.where(0.0, (theta >= 0).where(1.0, -1.0) / (theta.abs() + (theta * theta + 1).sqrt()))
  c = 1 / (t * t + 1).sqrt()
  return c, t * c


def _by_rank(values: Tensor, descending: bool) -> Tensor:
  """The permutation matrix P (..., n, n) with P @ values sorted (ties by index), built on the device."""
  n = values.shape[-1]
  a, b = values.unsqueeze(-1), values.unsqueeze(-2)  # a: value i, b: value j
  idx = Tensor.arange(n, device=values.device)
  before = ((b > a) if descending else (b < a)) | ((b == a) & (idx.reshape(1, n) < idx.reshape(n, 1)))
  rank = before.cast(int32).sum(-1)  # (..., n): where value i goes
  return (rank.unsqueeze(-2) == idx.reshape(n, 1)).cast(values.dtype)


def _eigh_values(S: Tensor) -> tuple[Tensor, Tensor]:
  """(eigenvalues ascending, eigenvectors) of symmetric S by cyclic Jacobi sweeps."""
  n = S.shape[-1]
  V = _eye(n, S, S.shape[:-2])
  for _ in range(JACOBI_SWEEPS if n > 1 else 0):
    for p in range(n):
      for q in range(p + 1, n):
        J = _rotation(n, p, q, *_jacobi_angle(S[..., p, p], S[..., q, q], S[..., p, q]), S)
        S, V = J.mT @ S @ J, V @ J
  P = _by_rank(S.diagonal(0, -2, -1), descending=False)
  return (P @ S.diagonal(0, -2, -1).unsqueeze(-1)).squeeze(-1), V @ P.mT


def eigh(A: Tensor, UPLO: str = "L"):
  """(eigenvalues ascending, eigenvectors) of the symmetric matrix A's UPLO triangle stands for."""
  _matrices(A, "eigh", square=True)
  if UPLO not in ("L", "U"): raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
  n, batch = A.shape[-1], A.shape[:-2]
  found = {}
  def value(x):
    half = x.tril(-1) if UPLO == "L" else x.triu(1)
    found["L"], found["V"] = _eigh_values(half + half.mT + x.diagonal(0, -2, -1).unsqueeze(-1) * _eye(n, x))
    return _pack(batch, found["L"], found["V"])
  def grad(x, g):  # torch's linalg_eig_backward for Hermitian input
    L, V = found["L"], found["V"]
    gL, gV = _unpack(g, [(n,), (n, n)])
    VhgV = V.mT @ gV
    E = L.unsqueeze(-2) - L.unsqueeze(-1)
    eye = _eye(n, x)
    inner = (eye > 0).where(gL.unsqueeze(-1) * eye, (VhgV - VhgV.mT) / 2 / (eye > 0).where(1.0, E))
    return V @ inner @ V.mT
  L, V = _unpack(CustomGrad.apply(A, value=value, grad=grad), [(n,), (n, n)])
  return _joined(L, A), _joined(V, A)


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor: return eigh(A, UPLO)[0]


def _svd_tall(A: Tensor) -> tuple[Tensor, Tensor, Tensor]:
  """(U (m, n), S descending, V (n, n)) of A (..., m, n), m >= n, by one-sided Jacobi: plane rotations of A's columns
  until they are orthogonal (Hestenes); the columns' norms are the singular values, accurate for small ones too."""
  n = A.shape[-1]
  U, V = A, _eye(n, A, A.shape[:-2])
  for _ in range(JACOBI_SWEEPS if n > 1 else 0):
    for p in range(n):
      for q in range(p + 1, n):
        a, b = U[..., :, p], U[..., :, q]
        J = _rotation(n, p, q, *_jacobi_angle((a * a).sum(-1), (b * b).sum(-1), (a * b).sum(-1)), A)
        U, V = U @ J, V @ J
  S = (U * U).sum(-2).sqrt()
  P = _by_rank(S, descending=True)
  S = (P @ S.unsqueeze(-1)).squeeze(-1)
  U = U @ P.mT
  return (S == 0).unsqueeze(-2).where(0.0, U / (S == 0).where(1.0, S).unsqueeze(-2)), S, V @ P.mT


def _svd_reduced(A: Tensor):
  """(U, S, Vh) with k = min(m, n) columns, and torch's svd_backward as the gradient."""
  m, n = A.shape[-2:]
  k, batch = min(m, n), A.shape[:-2]
  found = {}
  def value(x):
    if m >= n: U, S, V = _svd_tall(x)
    else:
      V, S, U = _svd_tall(x.mT)
    found.update(U=U, S=S, Vh=V.mT)
    return _pack(batch, U, S, V.mT)
  def grad(x, g):  # torch's svd_backward (FunctionsManual.cpp), every output's gradient given
    U, S, Vh = found["U"], found["S"], found["Vh"]
    gU, gS, gVh = _unpack(g, [(m, k), (k,), (k, n)])
    skew = lambda X: X - X.mT
    UhgU, VhgV = skew(U.mT @ gU), skew(Vh @ gVh.mT)
    S2 = S * S
    eye = _eye(k, x)
    E = (eye > 0).where(1.0, S2.unsqueeze(-2) - S2.unsqueeze(-1))
    gA = (UhgU * S.unsqueeze(-2) + S.unsqueeze(-1) * VhgV) / E + gS.unsqueeze(-1) * eye
    if m > n:
      gUSinv = gU / S.unsqueeze(-2)
      return (U @ gA + gUSinv - U @ (U.mT @ gUSinv)) @ Vh
    if m < n:
      SinvgVh = gVh / S.unsqueeze(-1)
      return U @ (gA @ Vh + SinvgVh - (SinvgVh @ Vh.mT) @ Vh)
    return U @ gA @ Vh
  return tuple(_joined(t, A) for t in _unpack(CustomGrad.apply(A, value=value, grad=grad), [(m, k), (k,), (k, n)]))


def svdvals(A: Tensor) -> Tensor:
  """The singular values, descending; the gradient U @ diag(g) @ Vh (torch's, without the singular vectors' terms,
  which would divide by the zero singular values of a rank-deficient A)."""
  _matrices(A, "svdvals")
  m, n = A.shape[-2:]
  found = {}
  def value(x):
    U, S, V = _svd_tall(x) if m >= n else _svd_tall(x.mT)
    found.update(U=U if m >= n else V, Vh=V.mT if m >= n else U.mT)
    return S
  return _joined(CustomGrad.apply(A, value=value, grad=lambda x, g: found["U"] @ (g.unsqueeze(-1) * found["Vh"])), A)


def _complete(Q: Tensor) -> Tensor:
  """Q (..., m, k) with orthonormal columns, completed to an orthogonal (m, m) matrix (the added columns span the
  complement, as LAPACK's are: which basis of it is a choice)."""
  m, k = Q.shape[-2:]
  if m == k: return Q
  full, _ = qr(Q.detach(), mode="complete")
  return cat([Q, full[..., :, k:]], -1)


def svd(A: Tensor, full_matrices: bool = True, *, driver=None):
  """(U, S, Vh) with A = U @ diag(S) @ Vh. Singular vectors are unique up to sign (and, for repeated singular values,
  a rotation): they may differ from LAPACK's by those."""
  _matrices(A, "svd")
  U, S, Vh = _svd_reduced(A)
  if full_matrices: U, Vh = _complete(U), _complete(Vh.mT).mT
  return U, S, Vh


def _tolerance(S_max: Tensor, atol, rtol, m: int, n: int, dtype) -> Tensor:
  """torch's cut-off for singular values: max(atol, rtol * largest); rtol is eps * max(m, n) where neither is given,
  0 where only atol is."""
  if rtol is None: rtol = 0.0 if atol is not None else float(np.finfo(dtype.np).eps) * max(m, n)
  tol = S_max * rtol
  return tol if atol is None else (tol < atol).where(atol, tol)


def pinv(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:
  """The pseudo-inverse: from the SVD (the eigendecomposition of A's lower triangle where hermitian), singular values
  at most the tolerance dropped; the gradient is torch's pinv_backward."""
  _matrices(A, "pinv")
  m, n = A.shape[-2:]
  def value(x):
    if hermitian:
      L, V = eigh(x)
      big = L.abs().amax(-1, keepdim=True) if n else L.abs()
      keep = L.abs() > _tolerance(big, atol, rtol, m, n, x.dtype)
      return (V * keep.where(1 / keep.where(L, 1.0), 0.0).unsqueeze(-2)) @ V.mT
    U, S, Vh = _svd_reduced(x)
    keep = S > _tolerance(S[..., :1] if min(m, n) else S, atol, rtol, m, n, x.dtype)
    return (Vh.mT * keep.where(1 / keep.where(S, 1.0), 0.0).unsqueeze(-2)) @ U.mT
  found = {}
  def grad(x, g):
    P, gh = found["P"], g.mT
    if m <= n:
      K = gh @ P
      KPh = K @ P.mT
      return -(P @ K).mT + KPh - (x @ P) @ KPh + (P.mT @ P) @ (gh - K @ x)
    K = P @ gh
    PhK = P.mT @ K
    return -(K @ P).mT + (gh - x @ K) @ P @ P.mT + PhK - PhK @ P @ x
  out = CustomGrad.apply(A, value=lambda x: found.setdefault("P", value(x)), grad=grad)
  return _joined(out, A)


def matrix_rank(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:
  _matrices(A, "matrix_rank")
  m, n = A.shape[-2:]
  S = eigvalsh(A).abs() if hermitian else svdvals(A)
  big = S.amax(-1, keepdim=True) if min(m, n) else S.sum(-1, keepdim=True)
  return (S > _tolerance(big, atol, rtol, m, n, A.dtype)).sum(-1)


def cond(A: Tensor, p=None) -> Tensor:
  _matrices(A, "cond")
  if p in (None, 2, -2):
    S = svdvals(A)
    return S[..., 0] / S[..., -1] if p != -2 else S[..., -1] / S[..., 0]
  _matrices(A, "cond", square=True)
  return matrix_norm(A, p) * matrix_norm(inv(A), p)


# ---- the matrix exponential

# A is scaled by 2^-s (s <= EXP_SQUARINGS) to a 1-norm of at most EXP_THETA, torch's threshold for its degree-18
# polynomial: the same squarings as torch, so the same rounding; EXP_TAYLOR terms reach float64's rounding there
EXP_SQUARINGS, EXP_THETA, EXP_TAYLOR = 32, 3.010066362817634, 30


def matrix_exp(A: Tensor) -> Tensor:
  """exp(A) by scaling and squaring: a Taylor polynomial of A / 2^s, squared s times, s chosen from A's norm on the
  device (the squarings past s pass the matrix through unchanged: no host read)."""
  _matrices(A, "matrix_exp", square=True)
  n = A.shape[-1]
  if n == 0: return _joined(A.zeros_like(), A)
  s = (A.detach().abs().sum(-2).amax(-1) / EXP_THETA).log2().ceil().maximum(0).minimum(EXP_SQUARINGS)
  X = A / s.exp2().unsqueeze(-1).unsqueeze(-1)
  eye = _eye(n, A)
  T = eye + X / EXP_TAYLOR
  for k in range(EXP_TAYLOR - 1, 0, -1): T = eye + (X @ T) / k  # Horner: I + X (I + X/2 (I + X/3 (...)))
  for i in range(EXP_SQUARINGS): T = (s > i).unsqueeze(-1).unsqueeze(-1).where(T @ T, T)
  return T
