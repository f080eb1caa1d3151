"""Lowering: a kernel AST becomes a Plan, a short list of SSA instructions with their index math, that every renderer shares.

A kernel computes one output element per flat index `gidx`; if it reduces, a loop over the flat reduce index `ridx`
runs inside. Each instruction belongs to a region: "pre" (needs neither the loop nor its result), "loop" (depends on
`ridx`) or "post" (depends on the reduction's result). Renderers emit pre, then the loop, then post.

A row kernel (`Plan.rows`, see schedule.py's row rule) computes a whole row of its output per `gidx`: reductions
over the row's last axis, one loop each, whose results the later loops and a last loop over the row, which stores
it, read (a softmax: the row's max, the sum of exp(x - max), then exp(x - max) / sum). There `ridx` is the column
in every loop; regions are left to the renderer (an instruction that varies along the row is computed in each loop
that needs it).
"""
from __future__ import annotations
from dataclasses import dataclass, field
from typing import Any
from lazygrad.dtype import DType, bool_
from lazygrad.dtype import int32, int64
from lazygrad.helpers import getenv
from lazygrad.ops import KernelOp, BufferOps, ReduceOps, UnaryOps, BinaryOps, TernaryOps, IndexOps, is_row_kernel
from lazygrad.shape import contiguous_strides, unravel
from lazygrad.symbolic import Node, Num, Var, make_and, make_sum


@dataclass(eq=False)
class Instr:
  op: str                 # "load", "const", "param" (a scalar argument, arg: its name), "index", "alu", "reduce"
  dtype: DType
  srcs: tuple[Instr, ...]
  arg: Any
  region: str = "pre"
  name: str = ""


@dataclass
class Plan:
  name: str
  bufs: list[DType]          # buffer 0 is the output, stored contiguously
  buf_sizes: list[int]
  out_size: int
  red_size: int              # 0 when the kernel does not reduce
  red_shape: list[int]       # the reduced dims; ridx runs over them flattened, row-major
  instrs: list[Instr]
  reduce: Instr | None
  value: Instr               # what is stored at out[gidx]
  ast: KernelOp = field(repr=False)
  # kernel arguments after the buffers (see codegen/dynamic.py): index variables "n0", "n1", ... (int32, in index
  # math) and scalars "c0", ... (of their constant's dtype, read by "param" instructions)
  params: list[tuple[str, DType]] = field(default_factory=list)
  # where output gidx is written in buffer 0: None for gidx itself; an index over gidx for a kernel that writes one
  # region of its output (a piece of a cat, see BufferOps.STORE)
  store: Node | None = None
  # a dynamic kernel's index arguments as the AST that first built it had them: what a backend's cost model (register
  # tiles, loads per output) evaluates sizes at; the code itself holds for every value
  example: dict = field(default_factory=dict)
  # a row kernel's reductions, in the order their loops run (see the module's docstring); empty otherwise
  reduces: list = field(default_factory=list)

  def at_example(self, n: int | Node) -> int:
    """A size (a number, or a Node over the kernel's arguments) at the example's values."""
    return n.evaluate(self.example) if isinstance(n, Node) else n

  @property
  def rows(self) -> bool:
    """Whether it is a row kernel: gidx a row, out_size the rows, red_size the row's length."""
    return bool(self.reduces)

  @property
  def dynamic(self) -> bool:
    """Whether sizes, strides, offsets or bounds are arguments: out_size and red_size may be Nodes."""
    return any(dtype is int32 and name.startswith("n") for name, dtype in self.params)

  @property
  def sized_by_arguments(self) -> bool:
    """Whether its loops' sizes (outputs, reduced elements) are arguments: such a kernel is written as scalar code.
    One whose arguments are offsets, bounds, strides or scalars only keeps the tiles and vectors of its sizes."""
    return isinstance(self.out_size, Node) or isinstance(self.red_size, Node)

  @property
  def row_size(self) -> int:
    """The output's last dim longer than 1 (1 if none): a row of outputs, which backends tile rows of (OpenCL's
    register tiles, Triton's matrix products)."""
    return next((d for d in reversed(self.ast.shape) if top(d) > 1), 1)

  @property
  def work(self) -> int:
    """Outputs times reduced elements: the kernel's multiply-adds, or its elements if it does not reduce."""
    return self.out_size * max(self.red_size, 1)

  @property
  def big_index(self) -> bool:
    """Whether index math needs 64 bits (never for a kernel with arguments: their ASTs are guarded instead)."""
    return not self.params and max([self.work, *self.buf_sizes]) >= 2**31 - 1


class IndexTooLarge(Exception):
  """A dynamic kernel's index math that no simplification shrinks (views stacked on views, their sizes arguments):
  the kernel is built specialized instead (see codegen/dynamic.py)."""


INDEX_NODES = 2000  # the most nodes a dynamic kernel's index expression may have, as rendered


def size(shape) -> int | Node:
  """The number of elements of a shape whose sizes may be Nodes (kernel arguments)."""
  out = 1
  for s in shape: out = out * s
  return out


def top(n: int | Node) -> int: return n.max if isinstance(n, Node) else n


def lower(ast: KernelOp, bufs: list[DType], buf_sizes: list[int], params=(), values=(),
          input_order: bool = False) -> Plan:
  """`params`: a dynamic kernel's arguments (see codegen/dynamic.py), `values` theirs in the AST being built.
  `input_order`: a copy whose input runs in short pieces along its output (a transpose) walks its outputs in its
  input's order instead (see input_order_of), for a backend on which that is faster."""
  reduces = [n for n in ast.walk() if n.op in ReduceOps]
  rows = is_row_kernel(ast, reduces)
  assert rows or len(reduces) <= 1, "a kernel holds at most one reduction, unless it is a row kernel"
  out_size = size(ast.shape[:-1] if rows else ast.shape)
  red_shape = [ast.shape[-1]] if rows else [reduces[0].src[0].shape[a] for a in reduces[0].arg] if reduces else []
  red_size = size(red_shape) if reduces else 0
  gidx = Var("gidx", 0, max(top(out_size) - 1, 0))
  ridx = Var("ridx", 0, max(top(red_size) - 1, 0), red_size if isinstance(red_size, Node) else None)

  instrs: list[Instr] = []
  cse: dict[tuple, Instr] = {}
  memo: dict[tuple, Instr] = {}

  def emit(op, dtype, srcs, arg) -> Instr:
    if op == "alu": srcs, arg = rewrite(srcs, arg)
    argkey = tuple(a.key if isinstance(a, Node) else a for a in arg) if isinstance(arg, tuple) else (
      arg.key if isinstance(arg, Node) else arg)
    key = (op, dtype.name, tuple(id(s) for s in srcs), argkey)
    if key in cse: return cse[key]
    nodes = [a for a in (arg if isinstance(arg, tuple) else (arg,)) if isinstance(a, Node)]
    if op == "reduce": region = "post"
    elif any(s.region == "post" for s in srcs): region = "post"
    elif any(s.region == "loop" for s in srcs) or any("ridx" in n.vars() for n in nodes): region = "loop"
    else: region = "pre"
    ins = Instr(op, dtype, tuple(srcs), arg, region, f"v{len(instrs)}")
    instrs.append(ins)
    cse[key] = ins
    return ins

  def lo(node: KernelOp, idxs: list[Node], guard: Node = Num(1)) -> Instr:
    """The instruction computing node at idxs. `guard` is where a masked view above it reads anything: loads below
    it are masked by it too, so work whose result the view drops never reads out of bounds."""
    key = (node, tuple(i.key for i in idxs), guard.key)
    if key in memo: return memo[key]
    if node.op is BufferOps.LOAD:
      bufno, st = node.arg
      flat, valid = st.expr(idxs)
      valid = make_and([guard, valid])
      if params and max(flat.size, valid.size) > INDEX_NODES: raise IndexTooLarge(node)
      out = emit("const", node.dtype, (), 0) if valid == Num(0) else emit("load", node.dtype, (), (bufno, flat, valid))
    elif node.op is BufferOps.CONST:
      out = emit("param", node.dtype, (), node.arg.name) if isinstance(node.arg, Node) else emit("const", node.dtype, (), node.arg)
    elif node.op is BufferOps.VIEW:
      flat, valid = node.arg.expr(idxs)
      if params and max(flat.size, valid.size) > INDEX_NODES: raise IndexTooLarge(node)
      if valid == Num(0): out = emit("const", node.dtype, (), 0)
      else:
        out = lo(node.src[0], unravel(node.src[0].shape, flat), make_and([guard, valid]))
        if valid != Num(1):
          out = emit("alu", node.dtype, (emit("index", bool_, (), valid), out, emit("const", node.dtype, (), 0)),
                     TernaryOps.WHERE)
    elif node.op in ReduceOps:
      src_shape, axes = node.src[0].shape, node.arg
      red_idxs = iter(unravel(red_shape, ridx))
      full = [next(red_idxs) if d in axes else idxs[d] for d in range(len(src_shape))]
      out = emit("reduce", node.dtype, (lo(node.src[0], full, guard),), node.op)
    elif node.op is IndexOps.GATHER:
      # the index is a value computed in the kernel; clamped, so a bad index can never read outside the buffer
      x, dim = node.src[0], node.arg
      n = x.shape[dim]
      number = lambda k: emit("index", v.dtype, (), k) if isinstance(k, Node) else emit("const", v.dtype, (), k)
      v = lo(node.src[1], idxs, guard)
      if v.op == "const" and not isinstance(n, Node): where = Num(min(max(int(v.arg), 0), n - 1))
      else:
        lo_ok = emit("alu", bool_, (v, emit("const", v.dtype, (), 0)), BinaryOps.CMPLT)
        v = emit("alu", v.dtype, (lo_ok, emit("const", v.dtype, (), 0), v), TernaryOps.WHERE)
        hi_ok = emit("alu", bool_, (v, number(n)), BinaryOps.CMPLT)
        v = emit("alu", v.dtype, (hi_ok, v, number(n - 1)), TernaryOps.WHERE)
        where = Var(v.name, 0, top(n) - 1)
      bufno, st = x.arg
      flat, valid = st.expr([where if d == dim else i for d, i in enumerate(idxs)])
      valid = make_and([guard, valid])
      out = emit("load", node.dtype, (v,) if v.op != "const" else (), (bufno, flat, valid))
    elif isinstance(node.op, (UnaryOps, BinaryOps, TernaryOps)):
      out = emit("alu", node.dtype, tuple(lo(s, idxs, guard) for s in node.src), node.op)
    else:
      raise NotImplementedError(f"cannot lower {node.op} in a kernel")
    memo[key] = out
    return out

  store = None
  order = input_order_of(ast) if input_order and not reduces else None
  if ast.op is BufferOps.STORE:  # a region of the output: its view over the whole buffer says where each value goes
    store, _ = ast.arg.expr(unravel(ast.shape, gidx))
    if params and store.size > INDEX_NODES: raise IndexTooLarge(ast)
    ast = ast.src[0]
  if order is not None:  # gidx walks the dims in `order`; each output is stored where it lies in the output
    walked, idxs = unravel([ast.shape[d] for d in order], gidx), [None] * len(order)
    for d, i in zip(order, walked): idxs[d] = i
    store = make_sum([i * st for i, st in zip(idxs, contiguous_strides(ast.shape))])
    value = lo(ast, idxs)
  else: value = lo(ast, unravel(ast.shape[:-1], gidx) + [ridx] if rows else unravel(ast.shape, gidx))
  instrs = live(instrs, value)
  reduce = next((i for i in instrs if i.op == "reduce"), None)
  row_reduces = [i for i in instrs if i.op == "reduce"] if rows else []
  kind = "w" if rows else "r" if reduces else "e"
  if isinstance(out_size, Node) or isinstance(red_size, Node): name = f"{kind}_dynamic"
  else: name = f"{kind}_{out_size}" + (f"_{red_size}" if reduces else "")
  example = {name: v for (name, dtype), v in zip(params, values) if dtype is int32 and name.startswith("n")}
  plan = Plan(name, bufs, buf_sizes, out_size, red_size, list(red_shape), instrs, reduce, value, ast, list(params), store,
              example, row_reduces)
  if CHECK_BOUNDS and not plan.dynamic: check_bounds(plan)
  return plan


ALIAS = 4096  # bytes: addresses this far apart share a set in the CPU caches (L1 and L2 sets repeat every 4 KiB)


def input_order_of(ast: KernelOp) -> list[int] | None:
  """For a copy (one load of one view, no mask or broadcast, sizes and strides numbers) that, walked in its output's
  order, steps through its input a multiple of ALIAS bytes apart: its input's order of dims (strides largest first),
  where that steps through its output otherwise and still stores 4 outputs or more next to each other. A transposing
  copy to panels of 4 columns, rows 4 KiB apart, re-read its input's cache lines from memory four times (sets alias):
  walked in its output's order it took 2.2-2.5 ms, in its input's 0.93-0.97 (PoCL). Where rows are not 4 KiB apart,
  the output's order was as fast or faster (a transformer's panels of 128 to 512 columns)."""
  nodes = ast.walk()
  loads = [n for n in nodes if n.op is BufferOps.LOAD]
  if ast.op is BufferOps.STORE or len(loads) != 1 or any(n.op in (BufferOps.VIEW, IndexOps.GATHER) for n in nodes):
    return None
  st = loads[0].arg[1]
  if len(st.views) != 1 or len(ast.shape) < 2: return None
  view = st.views[0]
  if view.mask is not None or not all(isinstance(x, int) and x > 0 for x in (*view.shape, *view.strides)): return None

  def walk(order, strides) -> tuple[int, int | None]:
    """(how many elements in a row this order reads or writes, the stride at which it then steps on)"""
    length = 1
    for d in reversed(order):
      if strides[d] != length: return length, strides[d]
      length *= view.shape[d]
    return length, None
  aliased = lambda step: step is not None and step * loads[0].dtype.itemsize % ALIAS == 0
  order = sorted(range(len(view.shape)), key=lambda d: -view.strides[d])
  stores, store_step = walk(order, contiguous_strides(view.shape))
  if not aliased(walk(range(len(view.shape)), view.strides)[1]) or aliased(store_step) or stores < 4: return None
  return order


def _is_zero(i: Instr) -> bool: return i.op == "const" and i.arg == 0


def rewrite(srcs: tuple, op) -> tuple[tuple, Any]:
  """An ALU instruction's operands and op, as the instruction the renderers should write: the Tensor-level
  compositions of ops with no primitive of their own become one instruction. For floats, (a < b) | (a == b) is
  a <= b (false with a NaN either way), and max(x, 0) + max(-x, 0) (Tensor.abs, NaN-propagating maxes) is |x|: 1 and
  8 vector instructions fewer, which made a GELU's kernel 1.5x faster together with contraction into fused
  multiply-adds. The instructions they replace stay unused (see live)."""
  if op is BinaryOps.OR and len(srcs) == 2 and srcs[0].op == srcs[1].op == "alu" and srcs[0].srcs[0].dtype.is_float:
    lt, eq = srcs if srcs[0].arg is BinaryOps.CMPLT else srcs[::-1]
    if lt.arg is BinaryOps.CMPLT and eq.arg is BinaryOps.CMPEQ and (lt.srcs == eq.srcs or lt.srcs == eq.srcs[::-1]):
      return lt.srcs, BinaryOps.CMPLE
  if op is BinaryOps.ADD and len(srcs) == 2 and all(s.op == "alu" and s.arg is BinaryOps.MAX and _is_zero(s.srcs[1])
                                                     for s in srcs):
    a, b = srcs[0].srcs[0], srcs[1].srcs[0]
    for x, neg in ((a, b), (b, a)):
      if x.dtype.is_float and neg.op == "alu" and neg.arg is UnaryOps.NEG and neg.srcs[0] is x:
        return (x,), UnaryOps.ABS
  return srcs, op


def live(instrs: list[Instr], value: Instr) -> list[Instr]:
  """The instructions `value` needs, in order (rewrite leaves some unused)."""
  needed, stack = {id(value)}, [value]
  while stack:
    for s in stack.pop().srcs:
      if id(s) not in needed: needed.add(id(s)); stack.append(s)
  return [i for i in instrs if id(i) in needed]


CHECK_BOUNDS = getenv("LAZYGRAD_CHECK_BOUNDS", 0)  # the test suite turns it on


def check_bounds(plan: Plan) -> None:
  """An internal check: every unmasked load's index range lies inside its buffer. A scheduling bug that reads out of
  bounds (a reduction fused behind a pad once did) fails here, at lowering, instead of crashing the device."""
  for i in plan.instrs:
    if i.op != "load" or i.srcs: continue  # a gather's index is a loaded value, clamped where it is computed
    bufno, idx, valid = i.arg
    if valid.min == 1 and (idx.min < 0 or idx.max >= plan.buf_sizes[bufno]):
      raise AssertionError(f"kernel {plan.name} would read buffer {bufno} of {plan.buf_sizes[bufno]} elements at "
                           f"{idx.render()}, in [{idx.min}, {idx.max}]")
