"""The op vocabulary: the primitive ops the lazy graph is made of, and the kernel AST node built from them."""
from __future__ import annotations
import weakref
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any
from lazygrad.dtype import DType


class UnaryOps(Enum):
  NEG = auto(); EXP2 = auto(); LOG2 = auto(); SIN = auto(); SQRT = auto(); RECIP = auto(); CAST = auto()
  # primitives of their own, for accuracy: sin(pi/2 - x) loses the rounding of pi/2 - x (17% off near 3pi/2), and
  # exp2(x * log2(e)) the rounding of the product (65 ulp at x = 88)
  COS = auto(); EXP = auto()
  NOT = auto()  # logical not, on bool
  ABS = auto()  # made by lowering only (see codegen/lower.py's rewrites), never a lazy graph's node


class BinaryOps(Enum):
  ADD = auto(); SUB = auto(); MUL = auto(); DIV = auto(); MAX = auto(); CMPLT = auto(); CMPEQ = auto()
  IDIV = auto()  # integer division truncating toward zero, as C does
  MOD = auto()   # remainder with the sign of the dividend, as C does (fmod for floats: exact)
  AND = auto(); OR = auto(); XOR = auto()
  CMPLE = auto()  # made by lowering only (see codegen/lower.py's rewrites), never a lazy graph's node


class TernaryOps(Enum):
  WHERE = auto()


class ReduceOps(Enum):
  SUM = auto(); MAX = auto()


class IndexOps(Enum):
  GATHER = auto()  # torch.gather: out[..i..] = x[..idx[..i..] at dim..]; arg is dim. x is read from a real buffer


def reduce_identity(op: "ReduceOps", dtype: DType):
  """The value a reduction starts from: 0 for a sum (and for bool), the lowest value of the dtype for a max."""
  if op is ReduceOps.SUM or dtype.kind == "b": return 0
  if dtype.is_float: return -float("inf")
  return -(2 ** (8 * dtype.itemsize - 1)) if dtype.kind == "i" else 0


class MovementOps(Enum):
  RESHAPE = auto(); PERMUTE = auto(); EXPAND = auto(); PAD = auto(); SHRINK = auto(); FLIP = auto()


class LoadOps(Enum):
  CONST = auto()       # a scalar broadcast to a shape; arg is the value
  FROM_HOST = auto()   # data copied from the host; the buffer is realized at creation
  EMPTY = auto()       # uninitialised memory
  CONTIGUOUS = auto()  # a contiguous copy of its source's view, made only when the view is not contiguous already
  CAT = auto()         # its sources joined along axis `arg`: one kernel per source, each writing its own region


class BufferOps(Enum):
  LOAD = auto()  # arg: (buffer number, ShapeTracker)
  VIEW = auto()  # arg: ShapeTracker applied to a computed (not loaded) source
  CONST = auto()  # arg: the value
  STORE = auto()  # a kernel's root that writes its source into a region of the output buffer; arg: the region's
                  # ShapeTracker over the whole buffer


Op = UnaryOps | BinaryOps | TernaryOps | ReduceOps | IndexOps | MovementOps | LoadOps | BufferOps
ELEMENTWISE = (UnaryOps, BinaryOps, TernaryOps)


@dataclass(frozen=True, eq=False)
class KernelOp:
  """A node of a kernel's AST. Build nodes with `kernel_op`: equal trees are then the same object, so comparing and
  hashing them (the kernel cache's key) is by identity, however deep the tree."""
  op: Op
  src: tuple[KernelOp, ...]
  dtype: DType
  shape: tuple[int, ...]
  arg: Any = None

  def walk(self):
    """Every node once, sources before users (iterative: kernels can be deep)."""
    seen, order, stack = set(), [], [(self, False)]
    while stack:
      node, expanded = stack.pop()
      if expanded: order.append(node); continue
      if node in seen: continue
      seen.add(node)
      stack.append((node, True))
      stack.extend((s, False) for s in reversed(node.src) if s not in seen)
    return order


_interned: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def kernel_text(ast: KernelOp) -> str:
  """A kernel AST as text, the same in every process (ops, dtypes, shapes, args, and sources by position): a key
  for what is derived from the AST alone, such as its generated source."""
  nodes = ast.walk()
  at = {id(n): i for i, n in enumerate(nodes)}
  return "\n".join(f"{n.op}|{n.dtype.name}|{n.shape}|{n.arg!r}|{[at[id(s)] for s in n.src]}" for n in nodes)


def kernel_op(op: Op, src: tuple[KernelOp, ...], dtype: DType, shape: tuple[int, ...], arg: Any = None) -> KernelOp:
  """The one KernelOp with these fields (hash-consed: sources are compared by identity, args by value). The scheduler
  calls this for every node of every kernel, every step: it is kept lean."""
  if arg is None: argkey = None
  else:
    argkey = arg.key if hasattr(arg, "key") else arg
    if isinstance(argkey, tuple): argkey = tuple(a.key if hasattr(a, "key") else a for a in argkey)
    elif isinstance(argkey, float): argkey = repr(argkey)  # -0.0 and 0.0 differ; 1.0 differs from 1 by the type below
  key = (op, tuple(map(id, src)), dtype.name, shape, type(arg).__name__, argkey)
  ref = _interned.data.get(key)  # the dict under the WeakValueDictionary: its own get is Python code, 3x slower
  node = ref() if ref is not None else None
  if node is None:
    node = KernelOp(op, src, dtype, shape, arg)
    _interned[key] = node
  return node


def is_row_kernel(ast: KernelOp, reduces: list[KernelOp]) -> bool:
  """Whether a kernel AST (with these reductions) is a row kernel's (see schedule.py's row rule): its output has the
  shape its reductions reduce (over the last axis, keeping it as 1), which they are read back into through a
  broadcast, a row per work-item. Elsewhere a reduction's kernel outputs its reduced shape."""
  if not reduces or ast.op is BufferOps.STORE or len(ast.shape) == 0: return False
  last = len(ast.shape) - 1
  return all(r.arg == (last,) and r.src[0].shape == ast.shape for r in reduces)
