"""Triton backend: renders a Plan as a tile-structured Triton kernel and runs it on an NVIDIA GPU through libcuda, or,
where there is no GPU (or TRITON_INTERPRET=1), in Triton's interpreter over NumPy memory. PyTorch is never imported.

A program computes BLOCK output elements at once (`gidx` is a tile of flat indices). A reduction walks its axis in
[BLOCK, RBLOCK] tiles, combining them elementwise into an accumulator tile that is reduced once, after the loop.
A matrix product (see `matmul`) is written as a person would write it instead: a program computes a [BM, BN] tile of
the output, `gidx` is that 2-D tile, and the loop over K multiplies [BM, BK] by [BK, BN] tiles with tl.dot.
float16 and bfloat16 are stored as such and computed in float32. Tile sizes are constexpr parameters, so one source
serves every launch configuration; on a GPU a big kernel's is chosen by measurement (Device.choose).
"""
from __future__ import annotations
import ctypes
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import sys
import threading
import time
import numpy as np
from lazygrad.codegen import fastmath
from lazygrad.codegen.dynamic import Specializer, promotable
from lazygrad.codegen.lower import Plan, Instr, IndexTooLarge, lower
from lazygrad import device as devices
from lazygrad.device import Allocator, KernelCache, compile_progress
from lazygrad.dtype import DType, bool_, float16, bfloat16, float32, float64
from lazygrad.helpers import DEBUG, cache_dir, code_version, disk_cache_get, disk_cache_put, getenv, tuned
from lazygrad.ops import UnaryOps, BinaryOps, TernaryOps, ReduceOps, reduce_identity
from lazygrad.symbolic import Node, Num, Var, Mul, Sum, Div, Mod, Lt, Ge, And, value


def _env_true(name: str) -> bool: return os.environ.get(name, "").strip().lower() in ("1", "true", "on", "yes")


def _open_libcuda():
  """libcuda, initialised, if this machine has at least one NVIDIA GPU; else None."""
  try: lib = ctypes.CDLL("libcuda.so.1")
  except OSError: return None
  count = ctypes.c_int()
  if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0: return None
  return lib


# The interpreter must be chosen before `import triton`: triton.jit decides at decoration time what it returns.
_libcuda = None if _env_true("TRITON_INTERPRET") else _open_libcuda()
INTERPRET = _libcuda is None
if INTERPRET: os.environ["TRITON_INTERPRET"] = "1"

import triton  # noqa: E402
import triton.language as tl  # noqa: E402,F401  (the generated modules import it themselves)

if INTERPRET:
  # The interpreter checks int32 arithmetic for overflow by default and fails on it; a GPU (and torch) wraps around.
  # Private knob, so a Triton that lacks it just keeps the check.
  try:
    from triton.runtime import interpreter as _interpreter
    _interpreter.interpreter_builder.options = dataclasses.replace(_interpreter.interpreter_builder.options,
                                                                   sanitize_overflow=False)
  except (ImportError, AttributeError, TypeError):
    pass


# read once, as the code is loaded: a program's launch data (its name, warps, shared and scratch memory) comes from
# this module's code, so an entry written by another version of it is never used
CODE_VERSION = code_version("lazygrad.backends.triton", "lazygrad.codegen.fastmath")


class KernelError(RuntimeError):
  """A generated kernel failed to compile or launch; the message carries the source and the backend's words."""


# ---------------------------------------------------------------------------------------------------------- render

# each dtype's Triton element type in memory, and the type it is computed in
TL = {"bool": "tl.int1", "uint8": "tl.uint8", "int8": "tl.int8", "int16": "tl.int16", "int32": "tl.int32",
      "int64": "tl.int64", "float16": "tl.float16", "bfloat16": "tl.bfloat16", "float32": "tl.float32",
      "float64": "tl.float64"}
COMPUTE = {**TL, "float16": "tl.float32", "bfloat16": "tl.float32"}
# pointer element types as Triton's signatures spell them (what triton.runtime.jit.mangle_type gives)
SIGNATURE = {"bool": "u1", "uint8": "u8", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
             "float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "float64": "fp64"}


def check_dtype(dtype: DType):
  if dtype.name not in TL:
    raise TypeError(f"Triton backend: dtype {dtype.name} is not supported (supported: {', '.join(TL)})")


def literal(value, dtype: DType) -> str:
  """A Python literal; Triton gives it the type of the tensor it meets (a weakly typed scalar)."""
  if dtype is bool_: return "True" if value else "False"
  if dtype.is_float:
    v = float(value)
    if math.isnan(v): return 'float("nan")'
    if math.isinf(v): return 'float("inf")' if v > 0 else 'float("-inf")'
    return repr(v) if v >= 0 else f"({v!r})"
  bits = 8 * dtype.itemsize  # wrap into range, as C's conversion of the OpenCL literal does
  v = int(value) % (1 << bits)
  if dtype.kind == "i" and v >= 1 << (bits - 1): v -= 1 << bits
  return str(v) if v >= 0 else f"({v})"


def typed(value, dtype: DType, shape: str) -> str:
  """A constant tile with its own type, for an expression no tensor gives a type to. (A tile, not a 0-d tensor:
  the interpreter mislabels 0-d comparison results and breaks when it broadcasts them.)"""
  return f"tl.full({shape}, {literal(value, dtype)}, {COMPUTE[dtype.name]})"


def index(node: Node, var, ctx: str = "top") -> str:
  """Index math as Triton text. // and % on Triton ints truncate toward zero, as the symbolic layer assumes (C).
  ctx is where the text goes, for parentheses: "top", a term of & ("and"), of + ("sum"), or of * // % ("arith")."""
  def wrap(text: str, *where: str) -> str: return f"({text})" if ctx in where else text
  if isinstance(node, Num): return wrap(str(node.v), "arith") if node.v < 0 else str(node.v)
  if isinstance(node, Var): return var(node.name)
  if isinstance(node, (Mul, Div, Mod)):
    sym = {Mul: "*", Div: "//", Mod: "%"}[type(node)]
    return wrap(f"{index(node.a, var, 'arith')} {sym} {operand(node.b, var, 'arith')}", "arith")
  if isinstance(node, (Lt, Ge)):
    return wrap(f"{index(node.a, var)} {'<' if isinstance(node, Lt) else '>='} {operand(node.b, var, 'arith')}",
                "and", "sum", "arith")
  if isinstance(node, And): return wrap(" & ".join(index(t, var, "and") for t in node.terms), "sum", "arith")
  if isinstance(node, Sum):
    text = index(node.terms[0], var, "sum")
    for t in node.terms[1:]:
      if isinstance(t, Num) and t.v < 0: text += f" - {-t.v}"
      elif isinstance(t, Mul) and not isinstance(t.b, Node) and t.b < 0:
        text += f" - {index(t.a, var, 'sum')}" if t.b == -1 else f" - {index(t.a, var, 'arith')} * {-t.b}"
      else: text += f" + {index(t, var, 'sum')}"
    return wrap(text, "and", "sum", "arith")
  raise NotImplementedError(f"Triton renderer: no rule for index node {type(node).__name__}")


def text(n) -> str:
  """A size (an int, or a Node over the kernel's arguments) as Triton text."""
  return operand(n, lambda v: v, "top")


def operand(b, var, ctx: str) -> str:
  """The right side of * // % < >=: a constant, or index math over kernel arguments."""
  return index(b, var, ctx) if isinstance(b, Node) else str(b)


# Integer division by a value that may be zero: C leaves it undefined, these make it 0 (the interpreter's answer).
HELPERS = {
  "c_div": '''@triton.jit
def c_div(a, b):
    # C's a / b on integers (truncates toward zero); 0 where b == 0
    return tl.where(b == 0, 0, a // tl.where(b == 0, 1, b))''',
  "c_mod": '''@triton.jit
def c_mod(a, b):
    # C's a % b on integers (sign of a); 0 where b == 0
    return tl.where(b == 0, 0, a % tl.where(b == 0, 1, b))''',
}


def _fast_exp(kind: str) -> str:
  """fast_exp, fast_exp2: float32 exp and exp2 by the math of lazygrad/codegen/fastmath.py, which the OpenCL renderer
  writes too, so the backends agree (and a GPU's approximate exp, which flushes subnormals, is not used)."""
  f = fastmath
  lo, hi = f.EXP_RANGE if kind == "exp" else f.EXP2_RANGE
  fit = f.horner(f.EXP_FIT, "r")
  scaled, reduced = ((f"xc * {f.LOG2E!r} + {f.ROUNDER!r}", f"(xc - n * {f.LN2_HI!r}) - n * {f.LN2_LO!r}") if kind == "exp"
                     else (f"xc + {f.ROUNDER!r}", f"(xc - n) * {f.LN2!r}"))
  return f'''@triton.jit
def fast_{kind}(x):
    xc = tl.where(x < {lo!r}, {lo!r}, x)  # clamped where the result is 0 or inf already; NaN kept
    xc = tl.where(xc > {hi!r}, {hi!r}, xc)
    m = {scaled}
    n = m - {f.ROUNDER!r}
    k = m.to(tl.int32, bitcast=True) - {f.ROUNDER_BITS}
    r = {reduced}
    p = 1.0 + (r + r * r * {fit})
    h = k >> 1
    return p * ((h + 127) << 23).to(tl.float32, bitcast=True) * ((k - h + 127) << 23).to(tl.float32, bitcast=True)'''


def _fast_log2() -> str:
  """fast_log2: float32 log2 by the math of lazygrad/codegen/fastmath.py, as the OpenCL renderer writes it."""
  f = fastmath
  fit = f.horner(f.LOG2_FIT, "f")
  return f'''@triton.jit
def fast_log2(x):
    s = tl.where(x < {f.FLT_MIN!r}, x * 8388608.0, x)  # a subnormal scaled into the normals
    b = s.to(tl.int32, bitcast=True)
    m = ((b & 8388607) | 1065353216).to(tl.float32, bitcast=True)
    e = ((b >> 23) - 127).to(tl.float32) - tl.where(x < {f.FLT_MIN!r}, 23.0, 0.0)
    e = tl.where(m > {f.SQRT2!r}, e + 1.0, e)
    m = tl.where(m > {f.SQRT2!r}, m * 0.5, m)
    f = m - 1.0
    r = e + (f + f * {fit})
    special = tl.where(x == 0.0, float("-inf"), tl.where(x < 0.0, float("nan"), x))
    return tl.where((x > 0.0) & (x < float("inf")), r, special)'''


HELPERS.update(fast_exp=_fast_exp("exp"), fast_exp2=_fast_exp("exp2"), fast_log2=_fast_log2())


def alu(op, dtype: DType, args: list[str], srcs: tuple[Instr, ...], helpers: set) -> str:
  """One instruction's Triton expression. `dtype` is the result's; srcs are the operand instructions."""
  a = args[0]
  b = args[1] if len(args) > 1 else None
  src = srcs[0].dtype
  if op is UnaryOps.NEG: return f"{a} == 0" if src is bool_ else f"-{a}"
  if op is UnaryOps.NOT: return f"{a} == 0"
  if op in (UnaryOps.EXP, UnaryOps.EXP2, UnaryOps.LOG2) and dtype is not float64:
    helpers.add(f"fast_{op.name.lower()}")
    return f"fast_{op.name.lower()}({a})"
  if op is UnaryOps.EXP2: return f"tl.exp2({a})"
  if op is UnaryOps.LOG2: return f"tl.log2({a})"
  if op is UnaryOps.SIN: return f"tl.sin({a})"
  if op is UnaryOps.COS: return f"tl.cos({a})"
  if op is UnaryOps.EXP: return f"tl.exp({a})"
  if op is UnaryOps.ABS: return f"tl.abs({a})"
  if op is UnaryOps.SQRT:  # float32 tl.sqrt is an approximation on a GPU
    return f"tl.sqrt({a})" if dtype is float64 else f"tl.sqrt_rn({a})"
  if op is UnaryOps.RECIP: return f"1.0 / {a}" if dtype is float64 else f"tl.div_rn(1.0, {a})"
  if op is UnaryOps.CAST:
    if dtype is bool_: return f"{a} != 0"
    if dtype in (float16, bfloat16): return f"{a}.to({TL[dtype.name]}).to(tl.float32)"  # round, keep computing in fp32
    return f"{a}.to({COMPUTE[dtype.name]})"
  if op is BinaryOps.ADD: return f"{a} | {b}" if src is bool_ else f"{a} + {b}"
  if op is BinaryOps.SUB: return f"{a} - {b}"
  if op is BinaryOps.MUL: return f"{a} & {b}" if src is bool_ else f"{a} * {b}"
  if op in (BinaryOps.DIV, BinaryOps.IDIV, BinaryOps.MOD):
    if op is BinaryOps.DIV and src.is_float:  # a plain / on float32 is an approximation on a GPU
      return f"{a} / {b}" if src is float64 else f"tl.div_rn({a}, {b})"
    if op is BinaryOps.MOD and src.is_float: return f"{a} % {b}"  # frem: C's fmod, exact (NaN for a zero divisor)
    if srcs[1].op == "const" and srcs[1].arg != 0: return f"{a} % {b}" if op is BinaryOps.MOD else f"{a} // {b}"
    helper = "c_mod" if op is BinaryOps.MOD else "c_div"
    helpers.add(helper)
    return f"{helper}({a}, {b})"
  if op is BinaryOps.MAX:
    if src is bool_: return f"{a} | {b}"
    if src.is_float: return f"tl.maximum({a}, {b}, propagate_nan=tl.PropagateNan.ALL)"  # NaN wins, as torch.maximum
    return f"tl.maximum({a}, {b})"
  if op is BinaryOps.CMPLT: return f"{a} < {b}"
  if op is BinaryOps.CMPLE: return f"{a} <= {b}"
  if op is BinaryOps.CMPEQ: return f"{a} == {b}"
  if op is BinaryOps.AND: return f"{a} & {b}"  # on int1 the bitwise ops are the logical ones
  if op is BinaryOps.OR: return f"{a} | {b}"
  if op is BinaryOps.XOR: return f"{a} ^ {b}"
  if op is TernaryOps.WHERE: return f"tl.where({a}, {b}, {args[2]})"
  raise NotImplementedError(f"Triton renderer: no rule for {op}")


def load(bufno: int, idx: Node, valid: Node, dtype: DType, var, mask: list[str], full: set[str], shape: str) -> str:
  """tl.load of buffer `bufno` at idx where every mask term and `valid` hold, else 0. `full` are the index variables
  that together span the tile `shape`: without all of them the pointers are broadcast, as the mask is a whole tile."""
  if valid.min != 1: mask = [*mask, index(valid, var, "and")]
  ptr = f"data{bufno}" if idx == Num(0) else f"data{bufno} + {index(idx, var, 'sum')}"
  if not idx.vars() >= full: ptr = f"tl.broadcast_to({ptr}, {shape})"
  return f"tl.load({ptr}, mask={' & '.join(mask)}, other={'0.0' if dtype.is_float else '0'})"


@dataclasses.dataclass(frozen=True)
class Operand:
  """One factor of a matrix product: its load, with the load's index and valid expressions over m or n, and ridx."""
  load: Instr
  idx: Node
  valid: Node


@dataclasses.dataclass(frozen=True)
class Matmul:
  """out[m, n] = sum over ridx < K of a[m, ridx] * b[ridx, n], for the output's flat index gidx = m * N + n."""
  M: int
  N: int
  K: int
  a: Operand
  b: Operand


def out_matrix(plan: Plan) -> tuple[int, int]:
  """The output as M rows of N: N is its last dim longer than 1 (1 if it has none), M the dims before it."""
  return plan.out_size // plan.row_size, plan.row_size


def matmul(plan: Plan) -> Matmul | None:
  """The plan as a matrix product, or None: it keeps the 1-D path. Strict, as tl.dot computes nothing else: a float
  sum of the product of two loads (of its own dtype) and nothing more in the loop, where one load (a) does not move
  with the output's column n and the other (b) not with its row m. A batched product's b moves with the batch, part
  of m, so it does not qualify."""
  r = plan.reduce
  if r is None or r.arg is not ReduceOps.SUM or r.dtype not in (float32, float16, bfloat16) or plan.sized_by_arguments \
     or plan.store is not None: return None
  mul, loop = r.srcs[0], [i for i in plan.instrs if i.region == "loop"]
  if not (mul.op == "alu" and mul.arg is BinaryOps.MUL and mul.dtype is r.dtype and len(loop) == 3 and mul in loop):
    return None
  x, y = mul.srcs
  if x is y or not all(s.op == "load" and not s.srcs and s.dtype is r.dtype and s in loop for s in (x, y)): return None
  M, N = out_matrix(plan)
  # a vector (or nothing) out keeps the 1-D path: tl.dot would pad it to 16 rows, and one row of [BM, BN] tiles
  # leaves most of a GPU idle
  if M <= 1 or N == 1: return None
  at = {"gidx": Var("m", 0, M - 1) * N + Var("n", 0, N - 1)}
  x, y = (Operand(s, s.arg[1].substitute(at), s.arg[2].substitute(at)) for s in (x, y))
  for a, b in ((x, y), (y, x)):
    if "n" not in a.idx.vars() | a.valid.vars() and "m" not in b.idx.vars() | b.valid.vars():
      return Matmul(M, N, plan.red_size, a, b)
  return None


def dot_loop(mm: Matmul, wide: bool) -> list[str]:
  """The loop of a matrix product, accumulating [BM, BK] @ [BK, BN] tiles into acc in float32. Inputs of 16 bits stay
  16 bits (tensor cores); float32 is multiplied in full precision ("ieee"), as PyTorch's float32 matmul is."""
  a, b = mm.a.load, mm.b.load
  precision = ', input_precision="ieee"' if a.dtype is float32 else ""

  def operand(o: Operand, ridx: str, mask: list[str], full: set[str], shape: str) -> str:
    """A's tile reads ridx as a row [1, BK], B's as a column [BK, 1]."""
    def var(name: str) -> str: return ridx if name == "ridx" else name
    return f"        {o.load.name} = {load(o.load.arg[0], o.idx, o.valid, o.load.dtype, var, mask, full, shape)}"

  return [
    "    acc = tl.zeros([BM, BN], dtype=tl.float32)",
    f"    for r0 in range(0, {mm.K}, BK):",
    "        ridx = r0 + tl.arange(0, BK)" + (".to(tl.int64)" if wide else ""),
    f"        rmask = ridx < {mm.K}",
    operand(mm.a, "ridx[None, :]", ["mmask", "rmask[None, :]"], {"m", "ridx"}, "[BM, BK]"),
    operand(mm.b, "ridx[:, None]", ["rmask[:, None]", "nmask"], {"n", "ridx"}, "[BK, BN]"),
    f"        acc = tl.dot({a.name}, {b.name}, acc{precision})"]


def dot_head(mm: Matmul, wide: bool) -> list[str]:
  """A matrix product's program computes one [BM, BN] output tile (pid_m, pid_n); gidx is that tile's flat indices.
  Programs take the tiles GROUP_M rows of tiles at a time, down each column of the group: the programs a GPU runs
  together read a few rows of A and columns of B, which stay in L2, rather than one column of B and all of A."""
  to64 = ".to(tl.int64)" if wide else ""
  return [
    f"    pid = tl.program_id(0){to64}",
    f"    per_group = GROUP_M * tl.cdiv({mm.N}, BN)",
    "    first_m = (pid // per_group) * GROUP_M",
    f"    group_rows = tl.minimum(tl.cdiv({mm.M}, BM) - first_m, GROUP_M)",
    "    pid_m = first_m + (pid % per_group) % group_rows",
    "    pid_n = (pid % per_group) // group_rows",
    "    m = pid_m * BM + tl.arange(0, BM)[:, None]",
    "    n = pid_n * BN + tl.arange(0, BN)[None, :]",
    f"    mmask = m < {mm.M}",
    f"    nmask = n < {mm.N}",
    f"    gidx = m * {mm.N} + n",
    "    gmask = mmask & nmask"]


def store_at(plan: Plan) -> str:
  """Where each output goes: gidx, or for a piece of a cat its place in the region it writes (a block, as tl.store
  wants one for a block of values, even where the place is one number)."""
  if plan.store is None: return "gidx"
  at = index(plan.store, lambda n: n, "sum")
  return at if "gidx" in plan.store.vars() else f"{at} + gidx * 0"


def render(plan: Plan) -> tuple[str, str]:
  """Plan -> (Triton source: a Python module defining one @triton.jit kernel, kernel name). A pure function."""
  for d in [*plan.bufs, *(i.dtype for i in plan.instrs)]: check_dtype(d)
  R = text(plan.red_size)
  mm = matmul(plan)
  names: dict[int, str] = {}
  helpers: set[str] = set()
  lines: list[str] = []

  # inside the loop, gidx and a [BLOCK] value from before it (a gathered row's index) are columns [BLOCK, 1]
  columns = {"gidx"} | {i.name for i in plan.instrs if i.region == "pre"}

  def var_in(region: str):
    return (lambda n: f"{n}[:, None]" if n in columns else n) if region == "loop" else (lambda n: n)

  def tile(region: str) -> str:
    if mm is not None: return "[BM, BN]"  # its loop renders its own tiles (dot_loop)
    return "[BLOCK, RBLOCK]" if region == "loop" else "[BLOCK]"

  def ref(i: Instr, region: str) -> str:
    """How code in `region` names the value of i. Every named value is a tile; a [BLOCK] value from before the loop
    is a column [BLOCK, 1] inside it."""
    if i.op == "const": return literal(i.arg, i.dtype)
    return f"{names[id(i)]}[:, None]" if region == "loop" and i.region == "pre" else names[id(i)]

  def operands(i: Instr, region: str) -> list[str]:
    args = [ref(s, region) for s in i.srcs]
    values = i.srcs[1:] if i.arg is TernaryOps.WHERE else i.srcs  # what the result's type comes from
    if all(s.op == "const" for s in values):
      n = i.srcs.index(values[0])
      args[n] = typed(values[0].arg, values[0].dtype, tile(region))
    return args

  def line(i: Instr, region: str, indent: str):
    if i.op in ("const", "reduce"): return  # literals inline; the reduction is written after its loop
    var = var_in(region)
    if i.op == "param": expr = f"tl.full({tile(region)}, {i.arg}, {COMPUTE[i.dtype.name]})"  # a tile, as every value is
    elif i.op == "index":
      expr = index(i.arg, var)
      if not i.arg.vars() & {"gidx", "ridx"}: expr = f"tl.full({tile(region)}, {expr}, {COMPUTE[i.dtype.name]})"
    elif i.op == "load":
      mask, full = (["gmask[:, None]", "rmask"], {"gidx", "ridx"}) if region == "loop" else (["gmask"], {"gidx"})
      expr = load(*i.arg, i.dtype, var, mask, full, tile(region))
      if i.dtype in (float16, bfloat16): expr += ".to(tl.float32)"
    elif i.op == "alu":
      expr = alu(i.arg, i.dtype, operands(i, region), i.srcs, helpers)
    else: raise NotImplementedError(f"Triton renderer: no rule for instruction {i.op}")
    lines.append(f"{indent}{i.name} = {expr}")
    names[id(i)] = i.name

  for i in plan.instrs:
    if i.region == "pre": line(i, "pre", "    ")
  # the dot kernel forms no gidx * K + ridx, only indices into buffers and the output: 64 bits when those need them
  wide = mm is not None and max(plan.out_size, *plan.buf_sizes) >= 2**31 - 1
  if mm is not None:
    lines += dot_loop(mm, wide)
    lines.append(f"    {plan.reduce.name} = acc")  # float32, as today's path sums 16-bit floats too
    names[id(plan.reduce)] = plan.reduce.name
  elif plan.reduce is not None:
    r = plan.reduce
    acc_t, x = COMPUTE[r.dtype.name], plan.reduce.srcs[0]
    xs = typed(x.arg, x.dtype, tile("loop")) if x.op == "const" else None
    ident = reduce_identity(r.arg, r.dtype)
    if ident == 0: lines.append(f"    acc = tl.zeros([BLOCK, RBLOCK], dtype={acc_t})")
    else: lines.append(f"    acc = tl.full([BLOCK, RBLOCK], {literal(ident, r.dtype)}, {acc_t})")
    lines.append(f"    for r0 in range(0, {R}, RBLOCK):")
    lines.append("        ridx = r0 + tl.arange(0, RBLOCK)[None, :]" if not plan.big_index else
                 "        ridx = (r0 + tl.arange(0, RBLOCK)[None, :]).to(tl.int64)")
    lines.append(f"        rmask = ridx < {R}")
    for i in plan.instrs:
      if i.region == "loop": line(i, "loop", "        ")
    masked = f"tl.where(rmask, {xs or ref(x, 'loop')}, {literal(ident, r.dtype)})"  # the identity past the end
    if r.dtype is bool_: upd = f"acc | {masked}"
    elif r.arg is ReduceOps.SUM: upd = f"acc + {masked}"
    elif r.dtype.is_float: upd = f"tl.maximum(acc, {masked}, propagate_nan=tl.PropagateNan.ALL)"
    else: upd = f"tl.maximum(acc, {masked})"
    lines.append(f"        acc = {upd}")
    if r.dtype is bool_: lines.append(f"    {r.name} = tl.max(acc.to(tl.int8), axis=1) != 0")
    elif r.arg is ReduceOps.SUM:
      narrow = r.dtype.is_int and r.dtype.itemsize < 4  # tl.sum widens small ints to int32
      lines.append(f"    {r.name} = tl.sum(acc, axis=1)" + (f".to({acc_t})" if narrow else ""))
    else:
      lines.append(f"    {r.name} = tl.max(acc, axis=1)")
      if r.dtype.is_float:  # tl.max skips NaN; a NaN anywhere makes the max NaN, as in torch.amax
        lines.append(f'    {r.name} = tl.where(tl.max((acc != acc).to(tl.int8), axis=1) != 0, float("nan"), {r.name})')
    names[id(r)] = r.name
  for i in plan.instrs:
    if i.region == "post": line(i, "post", "    ")

  out, v = plan.bufs[0], plan.value
  value = ref(v, "post")
  if out in (float16, bfloat16) and v.op != "const": value += f".to({TL[out.name]})"
  constexprs = (["BM", "BN", "BK", "GROUP_M"] if mm is not None else ["BLOCK", "RBLOCK"] if plan.reduce is not None
                else ["BLOCK"])
  params = [f"data{n}" for n in range(len(plan.bufs))] + [name for name, _ in plan.params] + \
    [f"{k}: tl.constexpr" for k in constexprs]
  head = dot_head(mm, wide) if mm is not None else [
    "    pid = tl.program_id(0)" + (".to(tl.int64)" if plan.big_index else ""),
    "    gidx = pid * BLOCK + tl.arange(0, BLOCK)",
    f"    gmask = gidx < {text(plan.out_size)}"]
  kernel = [
    "@triton.jit",
    f"def {plan.name}({', '.join(params)}):",
    *head,
    *lines,
    f"    tl.store(data0 + {store_at(plan)}, {value}, mask=gmask)"]
  parts = ["import triton\nimport triton.language as tl", *(HELPERS[h] for h in sorted(helpers)), "\n".join(kernel)]
  return "\n\n\n".join(parts) + "\n", plan.name


def next_pow2(n: int) -> int: return 1 << max(n - 1, 0).bit_length()


def tile_sizes(plan: Plan, interpret: bool, env: dict | None = None) -> dict[str, int]:
  """The kernel's tile sizes (its tl.constexpr parameters) by name: BLOCK and, if it reduces, RBLOCK; or a matrix
  product's BM, BN, BK and GROUP_M. The interpreter pays about a millisecond per program and little per element: big
  tiles. A GPU wants tiles that fit in registers: 1024 outputs, or a [BLOCK, RBLOCK] tile of about 4096 elements.
  A dynamic kernel's fit `env`, its arguments' values, in the interpreter (where they cost no build); on a GPU one
  choice serves every call."""
  mm = matmul(plan)
  if mm is not None: return dot_tile_sizes(mm, (256, 256, 256) if interpret else (64, 64, 32))
  if interpret: return block_sizes(plan, 1 << 16, 1 << 16, env)
  return block_sizes(plan, 1024 if plan.reduce is None else 4096, 1024, env)


def block_sizes(plan: Plan, budget: int, most_reduced: int, env: dict | None = None) -> dict[str, int]:
  """BLOCK outputs a program, up to `budget`; for a reduction a [BLOCK, RBLOCK] tile of up to `budget` elements, with
  RBLOCK up to `most_reduced` (a GPU's reductions want several rows a program). A dynamic kernel's sizes are taken at
  `env`, its arguments' values; without them (one build on a GPU serves every call) a reduction gets rows of 128."""
  if env is None and plan.sized_by_arguments: out_size, red_size = budget, 128
  else: out_size, red_size = value(plan.out_size, env or {}), value(plan.red_size, env or {})
  if plan.reduce is None: return {"BLOCK": min(next_pow2(out_size), budget)}
  rblock = min(next_pow2(red_size), most_reduced)
  return {"BLOCK": min(next_pow2(out_size), max(1, budget // rblock)), "RBLOCK": rblock}


def dot_tile_sizes(mm: Matmul, caps: tuple[int, int, int], group: int = 8) -> dict[str, int]:
  """BM, BN, BK: powers of two, at least 16 (tl.dot's smallest) and no bigger than M, N, K need, up to the caps;
  GROUP_M rows of tiles per group (see dot_head). In the interpreter tl.dot is one NumPy matmul and each tile op a
  fixed cost: 256 each, every tile within the 1-D path's budget of 65536 elements (a 1024^3 product runs 5x faster
  than with 128). A GPU's default: 64 x 64 output tiles, K in steps of 32, for 4 warps: 32 float32 accumulators a
  thread, and A and B tiles that fit shared memory for the software pipeline's stages."""
  sizes = {k: min(max(next_pow2(size), 16), cap) for k, size, cap in zip(("BM", "BN", "BK"), (mm.M, mm.N, mm.K), caps)}
  return {**sizes, "GROUP_M": group}


def default_warps(sizes: dict[str, int]) -> int:
  """4 warps for a matrix product's tile; else a warp per 256 elements of the tile, 1 to 8."""
  return 4 if "BM" in sizes else min(8, max(1, sizes["BLOCK"] * sizes.get("RBLOCK", 1) // 256))


# A kernel's launch configuration: its tile sizes, and on a GPU the warps a program runs on and the stages of the
# software pipeline that prefetches a loop's loads (Triton's num_warps and num_stages).
def config(sizes: dict[str, int], warps: int | None = None, stages: int = 3) -> dict:
  return {"sizes": sizes, "num_warps": warps or default_warps(sizes), "num_stages": stages}


# On a GPU, tile choices measured for a big kernel (see Device.choose), besides the default: (BM, BN, BK, warps,
# stages). Tensor-core (16-bit) products want bigger tiles and K steps than float32 ones, which run on the FMA units.
DOT_CHOICES_16 = ((128, 128, 64, 4, 4), (128, 256, 64, 8, 3), (256, 128, 64, 8, 3), (128, 128, 32, 8, 4),
                  (64, 128, 64, 4, 4), (128, 64, 64, 4, 4))
DOT_CHOICES_32 = ((128, 128, 32, 8, 3), (128, 64, 32, 4, 3), (64, 128, 32, 4, 3), (128, 128, 16, 8, 4),
                  (64, 64, 16, 4, 4))
# elements a program for the 1-D path, besides the defaults: 1024 outputs, or a 4096-element reduction tile
BLOCK_BUDGETS, REDUCE_BUDGETS = (512, 2048, 4096), (2048, 8192, 16384)
TUNE_WORK = 1 << 26  # multiply-adds (or outputs times reduced elements) from which a GPU kernel's tiles are measured


def tile_configs(plan: Plan, interpret: bool, env: dict | None = None) -> list[dict]:
  """Launch configurations worth measuring for this kernel, the default (tile_sizes') first, each distinct."""
  configs = [config(tile_sizes(plan, interpret, env))]
  if plan.params: return configs  # measured on one call's arguments, a choice could not be kept for the others
  mm = matmul(plan)
  if interpret: extra = [config(dot_tile_sizes(mm, (64, 64, 64), 2))] if mm is not None else []
  elif mm is not None:
    choices = DOT_CHOICES_32 if mm.a.load.dtype is float32 else DOT_CHOICES_16
    extra = [config(dot_tile_sizes(mm, (bm, bn, bk)), warps, stages) for bm, bn, bk, warps, stages in choices]
  else:
    budgets = BLOCK_BUDGETS if plan.reduce is None else REDUCE_BUDGETS
    extra = [config(block_sizes(plan, budget, 1024)) for budget in budgets]
  for c in extra:
    if c not in configs: configs.append(c)
  return configs


def grid(plan: Plan, sizes: dict[str, int], env: dict | None = None) -> tuple[int, ...]:
  """Programs: one per [BM, BN] output tile of a matrix product (see dot_head for their order), else one per block."""
  if "BM" in sizes:
    M, N = out_matrix(plan)
    return (-(-M // sizes["BM"]) * -(-N // sizes["BN"]),)
  return (-(-value(plan.out_size, env or {}) // sizes["BLOCK"]),)


# --------------------------------------------------------------------------------------------- source -> function

def module_name(src: str, name: str) -> str: return f"lazygrad_triton_{name}_{hashlib.sha256(src.encode()).hexdigest()[:16]}"


def load_kernel(src: str, name: str):
  """The @triton.jit function `name` defined in `src`. Triton reads a kernel's source with inspect, so the text
  must live in a file: it is written once under the cache folder and imported."""
  modname = module_name(src, name)
  if modname in sys.modules: return getattr(sys.modules[modname], name)
  folder = cache_dir() / "triton_src"
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f"{modname}.py"
  if not path.exists() or path.read_text() != src:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(src)
    os.replace(tmp, path)  # atomic: another process may be importing it
  spec = importlib.util.spec_from_file_location(modname, path)
  mod = importlib.util.module_from_spec(spec)
  sys.modules[modname] = mod  # inspect.getmodule must find it
  spec.loader.exec_module(mod)
  return getattr(mod, name)


# ---------------------------------------------------------------------------------------- interpreter: host memory

class NumpyStorage:
  """Stands in for torch.UntypedStorage: the interpreter copies storages to the host and back; ours are host memory."""

  def __init__(self, owner: np.ndarray): self.bytes = owner.reshape(-1).view(np.uint8)
  def data_ptr(self) -> int: return self.bytes.__array_interface__["data"][0]
  def nbytes(self) -> int: return self.bytes.nbytes
  def cpu(self) -> NumpyStorage: return self

  def copy_(self, other: NumpyStorage) -> NumpyStorage:
    if other.data_ptr() != self.data_ptr(): self.bytes[...] = other.bytes
    return self


class NumpyTensor:
  """The part of torch.Tensor's interface that Triton's interpreter uses for a pointer argument."""

  def __init__(self, array: np.ndarray, dtype: str | None = None):
    self.array = array
    self._dtype = dtype  # a Triton type name for memory NumPy has no type for ("bfloat16" over uint16)

  @property
  def dtype(self): return self._dtype or self.array.dtype  # Triton only looks at str(dtype)
  def data_ptr(self) -> int: return self.array.__array_interface__["data"][0]

  def untyped_storage(self) -> NumpyStorage:
    root = self.array
    while isinstance(root.base, np.ndarray): root = root.base
    return NumpyStorage(root)

  def storage_offset(self) -> int: return (self.data_ptr() - self.untyped_storage().data_ptr()) // self.array.itemsize
  def size(self, dim=None): return self.array.shape if dim is None else self.array.shape[dim]

  def stride(self, dim=None):
    st = tuple(s // self.array.itemsize for s in self.array.strides)
    return st if dim is None else st[dim]

  def new_empty(self, size, device=None, dtype=None) -> NumpyTensor:
    shape = (size,) if isinstance(size, int) else tuple(size)
    return NumpyTensor(np.empty(shape, dtype=self.array.dtype), self._dtype)

  def set_(self, storage: NumpyStorage, offset, size, stride) -> NumpyTensor:
    it = self.array.itemsize
    self.array = np.ndarray(tuple(size), dtype=self.array.dtype, buffer=storage.bytes, offset=offset * it,
                            strides=tuple(s * it for s in stride))
    return self


def host_view(handle: np.ndarray, dtype: DType, nbytes: int) -> NumpyTensor:
  """A device buffer (bytes) as the typed pointer argument the interpreter wants."""
  raw = handle[:nbytes]
  if dtype is bfloat16: return NumpyTensor(raw.view(np.uint16), "bfloat16")
  return NumpyTensor(raw.view(np.bool_ if dtype is bool_ else dtype.np))


# bfloat16 lives on the device as bfloat16 and on the host as float32 (lazygrad.dtype): convert when copying
def to_bf16_bits(x: np.ndarray) -> np.ndarray:
  """float32 -> bfloat16 bits, rounding to nearest even; NaN stays NaN."""
  x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
  u = x.view(np.uint32)
  bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
  return np.where(np.isnan(x), np.uint16(0x7FC0), bits)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray: return (bits.astype(np.uint32) << 16).view(np.float32)


def _is_bf16(host: np.ndarray, nbytes: int) -> bool:
  """Host float32 over half as many device bytes: only bfloat16 is held on the host wider than on the device."""
  return host.dtype == np.float32 and host.size * 2 == nbytes


class HostAllocator(Allocator):
  """Interpreter memory: a byte array per buffer, handed to kernels as typed views (no copies)."""

  def _alloc(self, nbytes):
    try: return np.empty(nbytes, np.uint8)
    except MemoryError as e: raise MemoryError(f"Triton interpreter: out of host memory allocating {nbytes} bytes") from e

  def _free(self, handle): pass

  def copyin(self, handle, host: np.ndarray):
    if _is_bf16(host, handle.nbytes): host = to_bf16_bits(host)
    src = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
    handle[:src.nbytes] = src

  def copyout(self, host: np.ndarray, handle):
    if _is_bf16(host, handle.nbytes): host.reshape(-1)[:] = from_bf16_bits(handle.view(np.uint16)); return
    out = host.reshape(-1).view(np.uint8)
    out[:] = handle[:out.nbytes]


# ---------------------------------------------------------------------------------------- GPU: libcuda via ctypes

class CUDAError(RuntimeError): pass


class CUDA:
  """The few driver calls this backend needs, on the device's primary context."""

  def __init__(self, lib, index: int):
    self.lib = lib
    count = ctypes.c_int()
    self.check(lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
    if index >= count.value:
      raise ValueError(f"TRITON:{index} does not exist; this machine has {count.value} CUDA device(s)")
    self.dev = ctypes.c_int()
    self.check(lib.cuDeviceGet(ctypes.byref(self.dev), index), "cuDeviceGet")
    self.ctx = ctypes.c_void_p()
    self.check(lib.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), self.dev), "cuDevicePrimaryCtxRetain")
    self.current()
    major, minor = self.attribute(75), self.attribute(76)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR/MINOR
    self.cc = major * 10 + minor
    name = ctypes.create_string_buffer(256)
    self.check(lib.cuDeviceGetName(name, 256, self.dev), "cuDeviceGetName")
    self.name = name.value.decode()

  def check(self, status: int, what: str):
    if status != 0:
      text = ctypes.c_char_p()
      self.lib.cuGetErrorName(status, ctypes.byref(text))
      raise CUDAError(f"CUDA: {what} failed with {text.value.decode() if text.value else status}")

  def current(self): self.check(self.lib.cuCtxSetCurrent(self.ctx), "cuCtxSetCurrent")  # per thread

  def attribute(self, attr: int) -> int:
    v = ctypes.c_int()
    self.check(self.lib.cuDeviceGetAttribute(ctypes.byref(v), attr, self.dev), "cuDeviceGetAttribute")
    return v.value

  def load(self, cubin: bytes, name: str, shared: int):
    """cubin -> (module, function), opting in to more than 48 KB of dynamic shared memory where the kernel needs it."""
    self.current()
    mod, fn = ctypes.c_void_p(), ctypes.c_void_p()
    self.check(self.lib.cuModuleLoadData(ctypes.byref(mod), ctypes.c_char_p(cubin)), f"cuModuleLoadData({name})")
    self.check(self.lib.cuModuleGetFunction(ctypes.byref(fn), mod, name.encode()), f"cuModuleGetFunction({name})")
    if shared > 49152:
      static = ctypes.c_int()
      self.check(self.lib.cuFuncGetAttribute(ctypes.byref(static), 1, fn), "cuFuncGetAttribute")  # SHARED_SIZE_BYTES
      optin = self.attribute(97)  # MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
      self.check(self.lib.cuFuncSetAttribute(fn, 8, optin - static.value), "cuFuncSetAttribute")  # MAX_DYNAMIC_SHARED
    return mod, fn

  def launch(self, fn, programs: tuple[int, ...], threads: int, shared: int, pointers: list[int]):
    self.current()
    # the arguments in one array and the array of their addresses cuLaunchKernel wants: 3 us a launch in Python,
    # where a ctypes object and a cast for each took 8 (a small GPT step launches about 550 kernels)
    args = (ctypes.c_uint64 * len(pointers))(*pointers)
    first = ctypes.addressof(args)
    params = (ctypes.c_void_p * len(pointers))(*range(first, first + 8 * len(pointers), 8))
    x, y = (*programs, 1)[:2]  # the kernels use a 1-D grid; a second dimension is passed on as well
    self.check(self.lib.cuLaunchKernel(fn, ctypes.c_uint(x), ctypes.c_uint(y), ctypes.c_uint(1),
                                       ctypes.c_uint(threads), ctypes.c_uint(1), ctypes.c_uint(1),
                                       ctypes.c_uint(shared), ctypes.c_void_p(0), params, ctypes.c_void_p(0)),
               "cuLaunchKernel")


@dataclasses.dataclass
class DevicePointer:
  ptr: int
  nbytes: int


class CUDAAllocator(Allocator):
  def __init__(self, cuda: CUDA):
    super().__init__()
    self.cuda = cuda

  def _alloc(self, nbytes):
    self.cuda.current()
    p = ctypes.c_uint64()
    status = self.cuda.lib.cuMemAlloc_v2(ctypes.byref(p), ctypes.c_size_t(nbytes))
    if status == 2: raise MemoryError(f"CUDA: out of device memory allocating {nbytes} bytes")  # ERROR_OUT_OF_MEMORY
    self.cuda.check(status, "cuMemAlloc")
    return DevicePointer(p.value, nbytes)

  def _free(self, handle):
    self.cuda.current()
    self.cuda.lib.cuMemFree_v2(ctypes.c_uint64(handle.ptr))

  def copyin(self, handle, host: np.ndarray):
    host = to_bf16_bits(host) if _is_bf16(host, handle.nbytes) else np.ascontiguousarray(host)
    self.cuda.current()  # pageable memory: returns once the copy is done, after earlier kernels on the null stream
    self.cuda.check(self.cuda.lib.cuMemcpyHtoD_v2(ctypes.c_uint64(handle.ptr), host.ctypes.data_as(ctypes.c_void_p),
                                                  ctypes.c_size_t(host.nbytes)), "cuMemcpyHtoD")

  def copyout(self, host: np.ndarray, handle):
    bf16 = _is_bf16(host, handle.nbytes)
    dst = np.empty(host.size, np.uint16) if bf16 else host
    assert dst.flags.c_contiguous
    self.cuda.current()
    self.cuda.check(self.cuda.lib.cuMemcpyDtoH_v2(dst.ctypes.data_as(ctypes.c_void_p), ctypes.c_uint64(handle.ptr),
                                                  ctypes.c_size_t(dst.nbytes)), "cuMemcpyDtoH")
    if bf16: host.reshape(-1)[:] = from_bf16_bits(dst)


# a kernel's scalar arguments (see codegen/dynamic.py): Python numbers for the interpreter, which types an int by its
# value and a float as float32; on a GPU each is one 8-byte word of the launch's argument array, read through a
# pointer by cuLaunchKernel as the signature's type (its low bytes on this little-endian machine)
PARAM_SIGNATURE = {"int32": "i32", "int64": "i64", "float32": "fp32", "float16": "fp32", "bfloat16": "fp32"}


def arg_value(v, dtype: DType):
  return float(v) if dtype.is_float else int(v)


def arg_word(v) -> int:
  """A scalar argument as the uint64 cuLaunchKernel's pointer reads: a float's float32 bits, an int's two's complement."""
  if isinstance(v, float): return int(np.array(v, np.float32).view(np.uint32))
  return v & (2**64 - 1)


@dataclasses.dataclass
class GPUProgram:
  name: str
  cubin: bytes
  num_warps: int
  shared: int
  scratch: tuple[int, int]  # global scratch bytes per program and alignment; 0 when the kernel needs none
  function: object = None
  module: object = None


def cuda_options(cfg: dict) -> dict:
  return {"num_warps": cfg["num_warps"], "num_stages": cfg["num_stages"],
          "enable_fp_fusion": False}  # no fused multiply-add: round each op on its own, as the reference does


def compile_cubin(src: str, plan: Plan, cfg: dict, cc: int) -> GPUProgram:
  """Generated source -> cubin for compute capability `cc`. Needs Triton's CUDA backend, not a GPU or a driver (but
  triton.jit must make real JITFunctions: TRITON_INTERPRET unset when the source is first loaded)."""
  from triton.compiler import ASTSource
  from triton.backends.compiler import GPUTarget
  signature = {f"data{n}": "*" + SIGNATURE[d.name] for n, d in enumerate(plan.bufs)}
  signature |= {name: PARAM_SIGNATURE[d.name] for name, d in plan.params}
  sizes = cfg["sizes"]
  signature |= {k: "constexpr" for k in sizes}
  # every buffer comes from cuMemAlloc, so every pointer is 16-byte aligned: lets Triton vectorize
  attrs = {(n,): [["tt.divisibility", 16]] for n in range(len(plan.bufs))}
  try:
    fn = load_kernel(src, plan.name)
    k = triton.compile(ASTSource(fn, signature, constexprs=dict(sizes), attrs=attrs),
                       target=GPUTarget("cuda", cc, 32), options=cuda_options(cfg))
  except Exception as e:
    raise KernelError(f"Triton failed to compile kernel {plan.name}: {e}\n--- source ---\n{src}") from e
  md = k.metadata
  return GPUProgram(md.name, k.asm["cubin"], md.num_warps, md.shared,
                    (getattr(md, "global_scratch_size", 0) or 0, getattr(md, "global_scratch_align", 1) or 1))


# ------------------------------------------------------------------------------------------------------------ device

class Device:
  def __init__(self, index: int):
    self.interpret = INTERPRET
    if self.interpret and isinstance(getattr(triton.language.standard, "sum", None), triton.runtime.jit.JITFunction):
      raise RuntimeError("Triton backend: no GPU, so kernels run in Triton's interpreter, but triton was imported "
                         "before lazygrad's Triton backend without TRITON_INTERPRET=1. Set TRITON_INTERPRET=1 in the "
                         "environment, or use the TRITON device before importing triton")
    if self.interpret:
      self.allocator: Allocator = HostAllocator()
      self.ident = f"interpreter|triton {triton.__version__}"
    else:
      self.cuda = CUDA(_libcuda, index)
      self.allocator = CUDAAllocator(self.cuda)
      self.ident = f"{self.cuda.name}|sm_{self.cuda.cc}|triton {triton.__version__}"
    self.name = f"TRITON:{index}"
    self.matmul_panel = 0
    self.row_major_matmul_operand = False  # tl.dot loads a transposed operand as well as a row-major one
    self.row_kernels = False  # see schedule.py's row rule: not written here
    self.kernels = KernelCache()  # kernel AST -> (plan, program, source, tile sizes, grid, arguments): see _entry
    self.programs = KernelCache()  # kernel AST as built (specialized or dynamic) -> (plan, program, source, tile sizes)
    self.specializer = Specializer()  # no families (see codegen/dynamic.py): one sized by arguments is never tl.dot
    self.tune = not self.interpret and getenv("LAZYGRAD_TUNE", 1) != 0  # measure big kernels' tiles (see choose)
    self.lock = threading.Lock()

  def compile(self, src: str, plan: Plan, cfg: dict):
    """Source -> a runnable program: the interpreted function, or a loaded cubin (through the on-disk cache)."""
    if self.interpret:  # a build is this process's first load of the source (there is no binary to cache)
      start, fresh = time.perf_counter(), module_name(src, plan.name) not in sys.modules
      try: fn = load_kernel(src, plan.name)
      except Exception as e:
        raise KernelError(f"Triton failed to load kernel {plan.name}: {e}\n--- source ---\n{src}") from e
      if fresh: compile_progress.compiled(time.perf_counter() - start)
      return fn
    key = json.dumps([CODE_VERSION, self.ident, src, [d.name for d in plan.bufs], cuda_options(cfg), cfg["sizes"]])
    cached = disk_cache_get("triton", key)
    if cached is not None:
      meta, cubin = cached.split(b"\n", 1)
      prog = GPUProgram(**json.loads(meta), cubin=cubin)
    else:
      start = time.perf_counter()
      prog = compile_cubin(src, plan, cfg, self.cuda.cc)
      compile_progress.compiled(time.perf_counter() - start)
      meta = {"name": prog.name, "num_warps": prog.num_warps, "shared": prog.shared, "scratch": list(prog.scratch)}
      disk_cache_put("triton", key, json.dumps(meta).encode() + b"\n" + prog.cubin)
    prog.module, prog.function = self.cuda.load(prog.cubin, prog.name, prog.shared)
    return prog

  def choose(self, plan: Plan, src: str, buffers) -> dict:
    """The kernel's launch configuration: the default, or on a GPU for a kernel of TUNE_WORK or more, the fastest of
    tile_configs measured on this call's buffers (it only writes buffers[0], which its real run then writes again),
    kept on disk per device and kernel."""
    configs = tile_configs(plan, self.interpret)
    if not self.tune or len(configs) == 1 or plan.work < TUNE_WORK or plan.out_size == 0: return configs[0]
    key = json.dumps([self.ident, src, [d.name for d in plan.bufs]])
    programs = {}  # each config compiled once, for every round of measuring

    def measure(cfg: dict) -> float:
      name = json.dumps(cfg)
      if name not in programs: programs[name] = self.compile(src, plan, cfg)
      run = lambda: self.run(programs[name], buffers, grid(plan, cfg["sizes"]), cfg["sizes"])
      run(); self.synchronize()  # a first launch may load the module; it is not timed
      start = time.perf_counter(); run(); self.synchronize()
      reps = max(1, min(50, int(0.02 / max(time.perf_counter() - start, 1e-6))))  # about 20 ms of launches
      start = time.perf_counter()
      for _ in range(reps): run()
      self.synchronize()
      return (time.perf_counter() - start) / reps
    return tuned("triton-tune", key, configs, measure, plan.name)

  def exec(self, ast, buffers, origin: str = "", numbers=None):
    """Run one kernel AST over device buffers (buffers[0] is the output); `numbers`: a template of ast's structure
    with other numbers, to run instead (see Specializer.resolve)."""
    with self.lock:
      if numbers is not None: entry = self._entry(ast, buffers, origin, numbers=numbers)
      else:
        entry = self.kernels.get(ast)
        if entry is None or entry[6] not in (None, devices.epoch):  # a dynamic kernel's AST again in a later schedule
          entry = self.kernels[ast] = self._entry(ast, buffers, origin, entry is not None)
      plan, prog, src, sizes, programs, args, _ = entry
      if programs is None: return  # no outputs
      profile = devices.profiling
      if profile is not None:  # timed by the host's clock around a launch that runs alone
        self.synchronize()
        start = time.perf_counter_ns()
      try: self.run(prog, buffers, programs, sizes, args)
      except Exception as e:
        raise KernelError(f"Triton failed to run kernel {plan.name}{' (from ' + origin + ')' if origin else ''}: "
                          f"{type(e).__name__}: {e}\n--- source ---\n{src}") from e
      if profile is not None:
        self.synchronize()
        profile.launched(self, ast, plan.name, buffers, None, start, time.perf_counter_ns())

  def _entry(self, ast, buffers, origin: str, again: bool = False, numbers=None):
    """(plan, program, source, tile sizes, grid or None, arguments, the epoch it was made in if it runs a dynamic
    kernel, else None) for an AST: the kernel built for it, or its structure's dynamic kernel (see codegen/dynamic.py)
    with this AST's numbers as arguments; an AST launched `again` gets one for its sizes
    (see Specializer.resolve's `promoted`)."""
    if self.interpret and any(n.dtype is bfloat16 for n in [*buffers, *ast.walk()]):
      raise TypeError("Triton backend: bfloat16 needs a GPU; Triton's interpreter rounds float32 -> bfloat16 "
                      "toward zero. Use float16 or float32 here")
    buf_sizes = [b.size for b in buffers]
    built, params, values = self.specializer.resolve(ast, buf_sizes, devices.epoch, numbers, promoted=again)
    env = {n: v for (n, _), v in zip(params, values)}
    program = self.programs.get(built)
    if program is None:
      try: program = self._prepare(built, buffers, origin, params, values)
      except IndexTooLarge:  # its structure is specialized from now on
        built, params, values = self.specializer.refuse(ast, built, numbers)
        env = {}
        program = self.programs.get(built) or self._prepare(built, buffers, origin, params)
      self.programs[built] = program
    plan, prog, src, sizes = program
    if self.interpret and plan.sized_by_arguments:  # the interpreter takes tile sizes as arguments: fit each call's sizes
      sizes = tile_sizes(plan, True, env)
    programs = grid(plan, sizes, env) if value(plan.out_size, env) else None
    return (plan, prog, src, sizes, programs, [arg_value(v, d) for (_, d), v in zip(params, values)],
            devices.epoch if numbers is None and plan.sized_by_arguments and promotable(ast) else None)

  def _prepare(self, ast, buffers, origin: str, params, values=()) -> tuple:
    """(plan, program, source, tile sizes) for an AST as built (specialized, or dynamic over `params`)."""
    plan = lower(ast, [b.dtype for b in buffers], [b.size for b in buffers], params, values)
    src, name = render(plan)
    if DEBUG >= 4: print(f"--- {name}{' for ' + origin if origin else ''} ---\n{src}")
    st = time.perf_counter()
    cfg = self.choose(plan, src, buffers)
    prog = self.compile(src, plan, cfg)
    if DEBUG >= 3: print(f"compiled {name} in {(time.perf_counter() - st) * 1e3:.1f} ms")
    return plan, prog, src, cfg["sizes"]

  def run(self, prog, buffers, programs: tuple[int, ...], sizes: dict[str, int], args=()):
    if self.interpret: self._run_interpreted(prog, buffers, programs, sizes, args)
    else: self._run_gpu(prog, buffers, programs, args)

  def _run_interpreted(self, fn, buffers, programs: tuple[int, ...], sizes: dict[str, int], args=()):
    pointers = [host_view(b.handle, b.dtype, b.nbytes) for b in buffers]
    with np.errstate(all="ignore"):  # lanes past the end are computed too, on whatever the masked loads gave
      fn[programs](*pointers, *args, **sizes)  # a plain tuple: callable grids break older interpreters

  def _run_gpu(self, prog: GPUProgram, buffers, programs: tuple[int, ...], args=()):
    size, align = prog.scratch
    scratch = None
    if size:
      nbytes = math.prod(programs) * size + align
      scratch = self.allocator.alloc(nbytes)
    try:
      scratch_ptr = 0 if scratch is None else -(-scratch.ptr // align) * align
      # the parameters: one pointer per buffer, then the global and profile scratch pointers every Triton kernel takes
      self.cuda.launch(prog.function, programs, 32 * prog.num_warps, prog.shared,
                       [b.handle.ptr for b in buffers] + [arg_word(v) for v in args] + [scratch_ptr, 0])
    finally:
      if scratch is not None: self.allocator.free(scratch, nbytes)  # reuse is ordered after this kernel on the stream

  def flush(self):
    """Launches are never held back here (see the OpenCL backend's): nothing to send. How far the host runs ahead is
    bounded by CUDA's launch queue (cuLaunchKernel waits when it is full), and nothing queued holds host memory:
    uploads from pageable memory are copied before cuMemcpyHtoD returns, and the interpreter runs each launch at once."""

  def synchronize(self):
    if not self.interpret:
      self.cuda.current()
      self.cuda.check(self.cuda.lib.cuCtxSynchronize(), "cuCtxSynchronize")
