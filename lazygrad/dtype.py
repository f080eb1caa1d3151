"""Data types and PyTorch's type-promotion rules."""
from __future__ import annotations
from dataclasses import dataclass
import numpy as np


@dataclass(frozen=True, eq=False)
class DType:
  name: str        # PyTorch's name: "float32"
  itemsize: int
  kind: str        # "b" bool, "i" signed int, "u" unsigned int, "f" float, "c" complex
  rank: int        # order inside a kind: a higher rank holds every value of a lower one
  np: type         # the NumPy scalar type that stores it on the host

  def __repr__(self): return f"lazygrad.{self.name}"
  @property
  def is_float(self): return self.kind == "f"
  @property
  def is_int(self): return self.kind in "iu"
  @property
  def is_complex(self): return self.kind == "c"


bool_ = DType("bool", 1, "b", 0, np.bool_)
uint8 = DType("uint8", 1, "u", 1, np.uint8)
int8 = DType("int8", 1, "i", 1, np.int8)
int16 = DType("int16", 2, "i", 2, np.int16)
int32 = DType("int32", 4, "i", 3, np.int32)
int64 = DType("int64", 8, "i", 4, np.int64)
float16 = DType("float16", 2, "f", 1, np.float16)
bfloat16 = DType("bfloat16", 2, "f", 1, np.float32)  # no NumPy type: the host side holds float32
float32 = DType("float32", 4, "f", 2, np.float32)
float64 = DType("float64", 8, "f", 3, np.float64)

# complex64 is a float32 pair in one buffer (lazygrad/complex.py): no kernel ever sees it, so it is not in ALL, the
# dtypes the backends store
complex64 = DType("complex64", 8, "c", 0, np.complex64)

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
BY_NAME = {d.name: d for d in ALL + (complex64,)}
BY_NAME.update({"cfloat": complex64, "bool_": bool_, "half": float16, "float": float32, "double": float64, "int": int32, "long": int64})
default_float = float32
default_int = int64


def to_dtype(x) -> DType:
  """Accept a DType, a name ("float32"), a NumPy dtype or a Python type."""
  if isinstance(x, DType): return x
  if isinstance(x, str) and x in BY_NAME: return BY_NAME[x]
  if x is float: return default_float
  if x is int: return default_int
  if x is bool: return bool_
  try: npd = np.dtype(x)
  except TypeError: npd = None
  if npd is not None:
    if npd == np.complex64: return complex64
    for d in ALL:
      if d is not bfloat16 and np.dtype(d.np) == npd: return d
  raise TypeError(f"unknown dtype {x!r}; expected one of {', '.join(d.name for d in ALL + (complex64,))}")


def from_numpy_dtype(npd) -> DType:
  return to_dtype(np.dtype(npd))


def promote_types(a: DType, b: DType) -> DType:
  """torch.promote_types for two dtypes."""
  if a is b: return a
  if a.is_complex or b.is_complex:
    if float64 in (a, b): raise TypeError(f"promote_types: {a.name} with {b.name} gives complex128, which lazygrad does not have")
    return complex64
  if a.kind == b.kind:
    if {a, b} == {float16, bfloat16}: return float32
    return a if a.rank >= b.rank else b
  if a.is_float or b.is_float:
    return a if a.is_float else b
  if a.kind == "b": return b
  if b.kind == "b": return a
  # signed with unsigned: the unsigned type here is uint8, so any wider signed type holds both
  s, u = (a, b) if a.kind == "i" else (b, a)
  return s if s.itemsize > u.itemsize else int16


def scalar_dtype(x) -> DType:
  """The dtype a Python scalar stands for when it meets a tensor."""
  if isinstance(x, bool): return bool_
  if isinstance(x, int): return default_int
  if isinstance(x, float): return default_float
  if isinstance(x, complex): return complex64
  raise TypeError(f"expected a Python number, got {type(x).__name__}")


def _category(d: DType) -> int: return {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}[d.kind]


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
  # the tier with priority wins unless the other tier is of a higher category (torch's combine_categories)
  if higher is None: return lower
  if lower is None: return higher
  if higher.is_complex: return higher
  if lower.is_complex: return complex64 if higher is not float64 else promote_types(higher, lower)
  if higher.is_float: return higher
  if higher is bool_ or _category(lower) > _category(higher): return promote_types(higher, lower)
  return higher


def result_type(*operands) -> DType:
  """torch.result_type: dimensioned tensors outrank 0-dim tensors, which outrank Python scalars, within a category."""
  tiers: list[DType | None] = [None, None, None]
  for x in operands:
    if isinstance(x, (bool, int, float, complex)): tier, d = 2, scalar_dtype(x)
    else: tier, d = (0 if len(x.shape) else 1), x.dtype
    tiers[tier] = d if tiers[tier] is None else promote_types(tiers[tier], d)
  return _combine(tiers[0], _combine(tiers[1], tiers[2]))
