"""complex64 tensors: a float32 tensor with a trailing dim of 2 (real, imaginary) under torch's complex API.

A ComplexTensor holds that real tensor (what `view_as_real` gives) and composes every op from real Tensor ops on it,
so the primitive op set and the code generator never see a complex number. Autograd runs on the real tensor: the
gradient of a real loss there, read back as complex, is d/dRe + i d/dIm, which is torch's convention (the conjugate
Wirtinger derivative times 2). Ops not written here raise a TypeError naming the op and complex64.
"""
from __future__ import annotations
import builtins
import numpy as np
from lazygrad.dtype import DType, complex64, float32, float64, to_dtype
from lazygrad.device import BACKENDS
from lazygrad.helpers import normalize_dim, prod
from lazygrad.tensor import Tensor, ShapeError, broadcast_shape, stack, cat, _is_number


def _parts(x, op: str) -> tuple:
  """(real, imaginary) of an operand: tensors or Python numbers, None for a zero imaginary part."""
  if isinstance(x, ComplexTensor): return x.real, x.imag
  if isinstance(x, Tensor):
    if x.dtype is float64 and x.ndim:  # torch would promote to complex128
      raise TypeError(f"{op}: complex64 with a float64 tensor gives complex128, which lazygrad does not have; cast it to float32")
    return x.float() if x.dtype is not float32 else x, None
  if isinstance(x, (builtins.complex, np.complexfloating)): return float(x.real), float(x.imag)
  if _is_number(x): return float(x), None
  if isinstance(x, (list, tuple, np.ndarray)): return _parts(Tensor(x), op)
  raise TypeError(f"{op}: unsupported operand type {type(x).__name__} for a complex64 tensor")


def _plus(a, b):
  if a is None: return b
  if b is None: return a
  return a + b


def _times(a, b):
  return None if a is None or b is None else a * b


def _neg(a): return None if a is None else -a


def from_parts(re, im) -> ComplexTensor:
  """The complex tensor re + i im (tensors or numbers, None for 0), broadcast to one shape."""
  re = re if re is not None else 0.0
  im = im if im is not None else 0.0
  shapes = [x.shape for x in (re, im) if isinstance(x, Tensor)]
  if not shapes: raise TypeError("from_parts: needs a tensor")
  like = next(x for x in (re, im) if isinstance(x, Tensor))
  shape = broadcast_shape(*shapes)
  re, im = (x.expand(shape) if isinstance(x, Tensor) else Tensor.full(shape, x, dtype=float32, device=like.device)
            for x in (re, im))
  return ComplexTensor._wrap(stack([re.float(), im.float()], -1))


def _dims(x: ComplexTensor, dim, op: str) -> tuple[int, ...]:
  """dim (None, an int or a sequence) as non-negative dims of the complex shape: the same dims of the real view."""
  if dim is None: return tuple(range(x.ndim))
  dims = dim if isinstance(dim, (tuple, list)) else (dim,)
  return tuple(normalize_dim(d, x.ndim, op) for d in dims)


class ComplexTensor(Tensor):
  """A complex64 tensor (see the module's docstring). Made by `Tensor(complex data)`, `lazygrad.complex`,
  `view_as_complex`, `polar`, or an op with a complex result."""

  def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
    if dtype is not None and to_dtype(dtype) is not complex64:
      raise TypeError(f"cannot make a {to_dtype(dtype).name} tensor from complex data; take .real or .abs() first")
    if isinstance(data, Tensor):
      ri = data.cast(complex64)._ri.detach()
      ri = ri if device is None else ri.to(device)
    else:
      if isinstance(data, np.ndarray) and data.dtype == np.complex128 and dtype is None:  # torch would keep complex128
        raise TypeError("cannot make a tensor from a NumPy array of dtype complex128; lazygrad has complex64 only: pass "
                        "dtype=lazygrad.complex64 or convert it with .astype(np.complex64)")
      arr = np.asarray(data)
      if arr.dtype == object or arr.dtype.kind not in "biufc":
        raise TypeError(f"cannot make a complex64 tensor of {type(data).__name__} {data!r}")
      arr = arr.astype(np.complex64)
      ri = Tensor(np.stack([arr.real, arr.imag], -1).astype(np.float32), device=device)
    self._ri = ri.requires_grad_(requires_grad) if requires_grad else ri

  @staticmethod
  def _wrap(ri: Tensor) -> ComplexTensor:
    """The complex tensor whose real view is `ri` (float32, trailing dim 2): no copy, autograd through ri."""
    z = object.__new__(ComplexTensor)
    z._ri = ri
    return z

  # ---- what a tensor is

  @property
  def lazydata(self):
    raise TypeError("this op takes real tensors only, and was given a complex64 tensor (lazygrad.view_as_real(z) is "
                    "its float32 view)")
  @property
  def shape(self) -> tuple[int, ...]: return self._ri.shape[:-1]
  @property
  def dtype(self) -> DType: return complex64
  @property
  def device(self) -> str: return self._ri.device
  @property
  def requires_grad(self) -> bool: return self._ri.requires_grad
  @requires_grad.setter
  def requires_grad(self, value: bool): self._ri.requires_grad = value
  @property
  def grad(self) -> ComplexTensor | None: return None if self._ri.grad is None else ComplexTensor._wrap(self._ri.grad)
  @grad.setter
  def grad(self, value):
    self._ri.grad = None if value is None else value.cast(complex64)._ri
  @property
  def _ctx(self): return self._ri._ctx
  def is_complex(self) -> bool: return True
  def isreal(self) -> Tensor: return self.imag == 0
  def is_floating_point(self) -> bool: return False

  def __repr__(self):
    grad = ", requires_grad=True" if self.requires_grad else ""
    return f"tensor({np.array2string(self.numpy(), separator=', ', prefix='tensor(')}, dtype=complex64, device='{self.device}'{grad})"

  def realize(self) -> ComplexTensor:
    self._ri.realize()
    return self

  def numpy(self) -> np.ndarray:
    return np.ascontiguousarray(self._ri.numpy()).view(np.complex64).reshape(self.shape)

  def item(self):
    if self.numel() != 1: raise ShapeError(f"item: a Tensor with {self.numel()} elements (shape {self.shape}) cannot be converted to a Python number")
    return builtins.complex(self.numpy().reshape(-1)[0])

  def tolist(self): return self.numpy().tolist()
  def detach(self) -> ComplexTensor: return ComplexTensor._wrap(self._ri.detach())
  def clone(self) -> ComplexTensor: return ComplexTensor._wrap(self._ri.clone())
  def contiguous(self) -> ComplexTensor: return ComplexTensor._wrap(self._ri.contiguous())

  def requires_grad_(self, requires_grad: bool = True) -> ComplexTensor:
    self._ri.requires_grad_(requires_grad)
    return self

  def backward(self, gradient=None, retain_graph=None, create_graph=False):
    if gradient is None: raise RuntimeError("grad can be implicitly created only for real scalar outputs; this output is complex64")
    gradient = gradient if isinstance(gradient, Tensor) else Tensor(gradient, device=self.device)
    return self._ri.backward(gradient.cast(complex64)._ri, retain_graph, create_graph)

  def cast(self, dtype) -> ComplexTensor:
    dtype = to_dtype(dtype)
    if dtype is complex64: return self
    raise TypeError(f"cast: a complex64 tensor to {dtype.name} would drop the imaginary part; take .real or .abs() first")

  def to(self, *args, dtype=None, device=None) -> ComplexTensor:
    devices = [a for a in args if isinstance(a, str) and a.split(":")[0].upper() in BACKENDS + ("CPU", "GPU", "CUDA")]
    for d in [a for a in args if a not in devices] + ([dtype] if dtype is not None else []): self.cast(d)
    ri = self._ri.to(*devices, device=device)
    return self if ri is self._ri else ComplexTensor._wrap(ri)

  def type(self, dtype=None): return "complex64" if dtype is None else self.cast(dtype)
  def float(self): return self.cast("float32")
  def half(self): return self.cast("float16")
  def double(self): return self.cast("float64")
  def int(self): return self.cast("int32")
  def long(self): return self.cast("int64")
  def bool(self): return self.cast("bool")
  def cfloat(self): return self
  def type_as(self, other): return self.cast(other.dtype)

  def zeros_like(self, dtype=None) -> Tensor: return self.full_like(0, dtype)
  def ones_like(self, dtype=None) -> Tensor: return self.full_like(1, dtype)
  def full_like(self, value, dtype=None) -> Tensor: return Tensor.full(self.shape, value, dtype=dtype or complex64, device=self.device)

  # ---- complex parts

  @property
  def real(self) -> Tensor: return self._ri[..., 0]
  @property
  def imag(self) -> Tensor: return self._ri[..., 1]
  def conj(self) -> ComplexTensor: return ComplexTensor._wrap(self._ri * Tensor([1.0, -1.0], device=self.device))
  conj_physical = conj
  def resolve_conj(self) -> ComplexTensor: return self
  def resolve_neg(self) -> ComplexTensor: return self
  def abs(self) -> Tensor:
    # |z| with torch's gradient z/|z| and 0 at 0 (sqrt's would be nan there)
    return self._ri.norm(dim=-1)
  absolute = abs
  def angle(self) -> Tensor: return self.imag.atan2(self.real)
  def sgn(self) -> ComplexTensor:
    r = self.abs()
    safe = (r == 0).where(1.0, r)
    return ComplexTensor._wrap(self._ri / safe.unsqueeze(-1) * (r != 0).float().unsqueeze(-1))

  # ---- arithmetic: (a + ib) op (c + id) from the parts

  def add(self, other, alpha=1, reverse=False) -> ComplexTensor:
    if alpha != 1: other = other * alpha
    (a, b), (c, d) = _parts(self, "add"), _parts(other, "add")
    return from_parts(_plus(a, c), _plus(b, d))
  def sub(self, other, alpha=1, reverse=False) -> ComplexTensor:
    if alpha != 1: other = other * alpha
    (a, b), (c, d) = _parts(self, "sub"), _parts(other, "sub")
    if reverse: (a, b), (c, d) = (c, d), (a, b)
    return from_parts(_plus(a, _neg(c)), _plus(b, _neg(d)))
  def mul(self, other, reverse=False) -> ComplexTensor:
    (a, b), (c, d) = _parts(self, "mul"), _parts(other, "mul")
    return from_parts(_plus(_times(a, c), _neg(_times(b, d))), _plus(_times(a, d), _times(b, c)))
  def div(self, other, reverse=False, rounding_mode=None) -> ComplexTensor:
    if rounding_mode is not None: raise TypeError(f"div: rounding_mode={rounding_mode!r} is not supported for complex64 tensors")
    (a, b), (c, d) = _parts(self, "div"), _parts(other, "div")
    if reverse: (a, b), (c, d) = (c, d), (a, b)
    if d is None: return from_parts(a / c, None if b is None else b / c)
    # (a + ib) / (c + id) = (a + ib)(c - id) / (c^2 + d^2)
    den = c * c + d * d
    return from_parts(_plus(_times(a, c), _times(b, d)) / den, _plus(_times(b, c), _neg(_times(a, d))) / den)
  true_divide = div
  def neg(self) -> ComplexTensor: return ComplexTensor._wrap(-self._ri)
  def reciprocal(self) -> ComplexTensor: return self.div(1.0, reverse=True)
  def square(self) -> ComplexTensor: return self * self
  def exp(self) -> ComplexTensor:
    r = self.real.exp()
    return from_parts(r * self.imag.cos(), r * self.imag.sin())

  def log(self) -> ComplexTensor: return from_parts(self.abs().log(), self.angle())
  def sqrt(self) -> ComplexTensor:
    """The principal root: |z|^(1/2) at half z's angle."""
    r, half = self.abs().sqrt(), self.angle() * 0.5
    return from_parts(r * half.cos(), r * half.sin())
  def pow(self, exponent, reverse=False) -> ComplexTensor:
    if reverse: return (self * Tensor._wrap_tensor(exponent, self).cast(complex64).log()).exp()  # exponent ** self
    if isinstance(exponent, int) and not isinstance(exponent, bool) and abs(exponent) <= 8:
      # an integer power by repeated products: exact where exp(p log z) would round (and z = 0 has no log)
      out = self.ones_like()
      for _ in range(abs(exponent)): out = out * self
      return out if exponent >= 0 else out.reciprocal()
    return (self.log() * exponent).exp()
  def __pow__(self, exponent): return self.pow(exponent)
  def __rpow__(self, base): return self.pow(base, reverse=True)
  def masked_fill(self, mask: Tensor, value) -> ComplexTensor: return mask.where(value, self)
  def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor:
    """|self - other| <= atol + rtol |other|, as torch's for complex tensors (equal_nan is not supported)."""
    if equal_nan: raise TypeError("isclose: equal_nan=True is not supported for complex64 tensors")
    other = Tensor._wrap_tensor(other, self).cast(complex64)
    return (self - other).abs() <= atol + rtol * other.abs()
  def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

  def __add__(self, other): return self.add(other)
  def __radd__(self, other): return self.add(other)
  def __sub__(self, other): return self.sub(other)
  def __rsub__(self, other): return self.sub(other, reverse=True)
  def __mul__(self, other): return self.mul(other)
  def __rmul__(self, other): return self.mul(other)
  def __truediv__(self, other): return self.div(other)
  def __rtruediv__(self, other): return self.div(other, reverse=True)
  def __neg__(self): return self.neg()
  def __pos__(self): return self
  def __abs__(self): return self.abs()
  def __matmul__(self, other): return self.matmul(other)
  def __rmatmul__(self, other): return Tensor._wrap_tensor(other, self).cast(complex64).matmul(self)
  def __eq__(self, other):
    (a, b), (c, d) = _parts(self, "eq"), _parts(other, "eq")
    return (a == c) & (b == (d if d is not None else 0.0))
  def __ne__(self, other): return ~self.__eq__(other)
  def eq(self, other): return self == other
  def ne(self, other): return self != other
  __hash__ = Tensor.__hash__

  def matmul(self, other) -> ComplexTensor:
    (a, b), (c, d) = _parts(self, "matmul"), _parts(other if isinstance(other, Tensor) else Tensor(other), "matmul")
    return from_parts(_plus(a @ c, _neg(_times_mm(b, d))), _plus(_times_mm(a, d), _times_mm(b, c)))
  mm = bmm = matmul
  def dot(self, other) -> ComplexTensor:
    if self.ndim != 1 or other.ndim != 1: raise ShapeError(f"dot: expected 1-D tensors, got shapes {self.shape} and {other.shape}")
    return self.matmul(other)
  def vdot(self, other) -> ComplexTensor: return self.conj().dot(other)

  # ---- reductions

  def sum(self, dim=None, keepdim=False, dtype=None) -> ComplexTensor:
    if dtype is not None: self.cast(dtype)
    return ComplexTensor._wrap(self._ri.sum(_dims(self, dim, "sum"), keepdim=keepdim))
  def mean(self, dim=None, keepdim=False, dtype=None) -> ComplexTensor:
    if dtype is not None: self.cast(dtype)
    return ComplexTensor._wrap(self._ri.mean(_dims(self, dim, "mean"), keepdim=keepdim))

  # ---- movement: the real view's, with the trailing 2 kept last

  def reshape(self, *shape) -> ComplexTensor:
    shape = tuple(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    if shape.count(-1) == 1:  # inferred from the complex size: -1 before the trailing 2 means the same
      known = prod(s for s in shape if s != -1)
      if known == 0 or self.numel() % known:
        raise ShapeError(f"reshape: shape {shape} is invalid for input of size {self.numel()} (shape {self.shape})")
      shape = tuple(self.numel() // known if s == -1 else s for s in shape)
    if prod(shape) != self.numel():
      raise ShapeError(f"reshape: shape {shape} is invalid for input of size {self.numel()} (shape {self.shape})")
    return ComplexTensor._wrap(self._ri.reshape(*shape, 2))
  view = reshape
  def view_as(self, other) -> ComplexTensor: return self.reshape(other.shape)
  def reshape_as(self, other) -> ComplexTensor: return self.reshape(other.shape)
  def flatten(self, start_dim=0, end_dim=-1) -> ComplexTensor:
    if self.ndim == 0: return self.reshape(1)
    s, e = _dims(self, (start_dim, end_dim), "flatten")
    return ComplexTensor._wrap(self._ri.flatten(s, e))
  def ravel(self) -> ComplexTensor: return self.reshape(-1)
  def unflatten(self, dim, sizes) -> ComplexTensor:
    return ComplexTensor._wrap(self._ri.unflatten(_dims(self, dim, "unflatten")[0], sizes))
  def permute(self, *order) -> ComplexTensor:
    order = order[0] if len(order) == 1 and isinstance(order[0], (tuple, list)) else order
    if len(order) != self.ndim:
      raise ShapeError(f"permute: order {tuple(order)} does not match the {self.ndim} dims of shape {self.shape}")
    return ComplexTensor._wrap(self._ri.permute(*_dims(self, order, "permute"), self.ndim))
  def transpose(self, dim0=0, dim1=1) -> ComplexTensor:
    return ComplexTensor._wrap(self._ri.transpose(*_dims(self, (dim0, dim1), "transpose")))
  swapaxes = swapdims = transpose
  def movedim(self, source, destination) -> ComplexTensor:
    return ComplexTensor._wrap(self._ri.movedim(_dims(self, source, "movedim"), _dims(self, destination, "movedim")))
  moveaxis = movedim
  @property
  def T(self) -> ComplexTensor:
    if self.ndim > 2: raise ShapeError(f"T: expected a tensor of at most 2 dimensions, got shape {self.shape}")
    return self.permute(*reversed(range(self.ndim)))
  def t(self) -> ComplexTensor: return self.T
  @property
  def mT(self) -> ComplexTensor: return self.transpose(-2, -1)
  @property
  def mH(self) -> ComplexTensor: return self.mT.conj()
  @property
  def H(self) -> ComplexTensor: return self.T.conj()
  def adjoint(self) -> ComplexTensor: return self.mH
  def expand(self, *shape) -> ComplexTensor:
    shape = tuple(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    return ComplexTensor._wrap(self._ri.expand(*shape, 2))
  def expand_as(self, other) -> ComplexTensor: return self.expand(other.shape)
  broadcast_to = expand
  def squeeze(self, dim=None) -> ComplexTensor:
    dims = _dims(self, dim, "squeeze")
    return self.reshape(tuple(s for a, s in enumerate(self.shape) if not (a in dims and s == 1)))
  def unsqueeze(self, dim: int) -> ComplexTensor:
    return ComplexTensor._wrap(self._ri.unsqueeze(normalize_dim(dim, self.ndim + 1, "unsqueeze")))
  def flip(self, *args, dims=None) -> ComplexTensor:
    dims = dims if dims is not None else (args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args)
    return ComplexTensor._wrap(self._ri.flip(_dims(self, dims, "flip")))
  def roll(self, shifts, dims=None) -> ComplexTensor:
    if dims is None: return self.flatten().roll(shifts, 0).reshape(self.shape)
    return ComplexTensor._wrap(self._ri.roll(shifts, _dims(self, dims, "roll")))
  def __getitem__(self, index) -> ComplexTensor:
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, ComplexTensor) for i in index): raise IndexError("a complex64 tensor cannot be an index")
    # the trailing 2 kept whole: after an ellipsis the index's dims end where the complex ones do
    index = index + ((slice(None),) if any(i is Ellipsis for i in index) else (Ellipsis, slice(None)))
    return ComplexTensor._wrap(self._ri[index])
  def narrow(self, dim: int, start, length: int) -> ComplexTensor:
    return ComplexTensor._wrap(self._ri.narrow(_dims(self, dim, "narrow")[0], start, length))
  def select(self, dim: int, index: int) -> ComplexTensor:
    return ComplexTensor._wrap(self._ri.select(_dims(self, dim, "select")[0], index))
  def split(self, split_size_or_sections, dim=0) -> tuple[ComplexTensor, ...]:
    return tuple(ComplexTensor._wrap(p) for p in self._ri.split(split_size_or_sections, _dims(self, dim, "split")[0]))
  def chunk(self, chunks: int, dim=0) -> tuple[ComplexTensor, ...]:
    return tuple(ComplexTensor._wrap(p) for p in self._ri.chunk(chunks, _dims(self, dim, "chunk")[0]))
  def unbind(self, dim=0) -> tuple[ComplexTensor, ...]:
    return tuple(ComplexTensor._wrap(p) for p in self._ri.unbind(_dims(self, dim, "unbind")[0]))


def _times_mm(a, b): return None if a is None or b is None else a @ b


# what a complex64 tensor keeps of Tensor as it is (it reads only shape and dtype); every other method of Tensor that
# ComplexTensor does not define raises, naming itself, instead of running on the real view as if it were the tensor
_INHERITED = {"__init__", "__new__", "__hash__", "__len__", "__init_subclass__", "dim", "numel", "size", "element_size",
              "ndim", "is_leaf", "_wrap_tensor", "_from_lazy", "__dict__", "__weakref__", "__doc__", "__module__",
              "new_full", "new_zeros", "new_ones", "new_empty", "new_tensor", "empty_like", "rand_like", "randn_like"}


def _unsupported(name: str):
  def method(self, *args, **kwargs):
    raise TypeError(f"{name} is not supported for complex64 tensors (lazygrad's complex64 has arithmetic, pow, exp, log, "
                    f"sqrt, sum, mean, matmul, where, movement, indexing and lazygrad.fft; view_as_real(z) gives its "
                    f"float32 view)")
  method.__name__ = name
  return method


for _name, _value in list(vars(Tensor).items()):
  if _name in _INHERITED or _name in vars(ComplexTensor) or isinstance(_value, (staticmethod, classmethod)): continue
  if isinstance(_value, property): setattr(ComplexTensor, _name, property(_unsupported(_name)))
  elif callable(_value): setattr(ComplexTensor, _name, _unsupported(_name))


# ---- torch's functions for complex tensors

def view_as_real(input: Tensor) -> Tensor:
  """The float32 tensor of shape input.shape + (2,) holding the real and imaginary parts (autograd flows through it)."""
  if not isinstance(input, ComplexTensor):
    raise TypeError(f"view_as_real is only supported for complex tensors, got {input.dtype.name} of shape {tuple(input.shape)}")
  return input._ri


def view_as_complex(input: Tensor) -> ComplexTensor:
  """The complex64 tensor whose real and imaginary parts are input[..., 0] and input[..., 1]."""
  if input.dtype is not float32:
    raise TypeError(f"view_as_complex: expected a float32 tensor, got {input.dtype.name}")
  if input.ndim == 0 or input.shape[-1] != 2:
    raise ShapeError(f"view_as_complex: tensor must have a last dimension of size 2, got shape {tuple(input.shape)}")
  return ComplexTensor._wrap(input)


def _check_float32(op: str, **tensors):
  for what, t in tensors.items():
    if not isinstance(t, Tensor) or t.dtype is not float32:
      raise TypeError(f"{op}: expected {what} to be a float32 tensor, got "
                      f"{t.dtype.name if isinstance(t, Tensor) else type(t).__name__}")


def complex(real: Tensor, imag: Tensor) -> ComplexTensor:  # noqa: A001  (torch's name)
  """real + i imag, from two float32 tensors (broadcast together)."""
  _check_float32("complex", real=real, imag=imag)
  return from_parts(real, imag)


def polar(abs: Tensor, angle: Tensor) -> ComplexTensor:  # noqa: A002  (torch's names)
  """abs * (cos(angle) + i sin(angle))."""
  _check_float32("polar", abs=abs, angle=angle)
  return from_parts(abs * angle.cos(), abs * angle.sin())


def real(input: Tensor) -> Tensor: return input.real
def imag(input: Tensor) -> Tensor: return input.imag
def conj(input: Tensor) -> Tensor: return input.conj()
def angle(input: Tensor) -> Tensor: return input.angle()
def is_complex(input: Tensor) -> bool: return input.is_complex()
def isreal(input: Tensor) -> Tensor: return input.isreal()


def cat_complex(tensors, dim: int) -> ComplexTensor:
  """cat of tensors some of which are complex: the real views' cat (the real ones made complex first)."""
  zs = [t.cast(complex64) for t in tensors]
  return ComplexTensor._wrap(cat([z._ri for z in zs], normalize_dim(dim, zs[0].ndim, "cat")))
