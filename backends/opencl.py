"""OpenCL backend: renders a Plan as OpenCL C and runs it with pyopencl (PoCL on a CPU, or a vendor's GPU driver).

One work-item computes one output element; a reduction loops inside it. float16 is stored as `half` and computed in
float through vload_half/vstore_half, which OpenCL has without the cl_khr_fp16 extension.
"""
from __future__ import annotations
import atexit
import collections
import functools
import hashlib
import json
import math
import os
import random
import re
import sys
import threading
import time
from typing import NamedTuple
import numpy as np
from lazygrad.codegen import fastmath
from lazygrad.codegen.dynamic import INT_MAX, Specializer, promotable
from lazygrad.codegen.lower import Plan, Instr, IndexTooLarge, lower, size, top
from lazygrad import device as devices
from lazygrad.device import Allocator, KernelCache, compile_progress
from lazygrad.dtype import DType, bool_, float16, bfloat16, float32, float64
from lazygrad.helpers import (DEBUG, cache_dir, code_version, disk_cache_claim, disk_cache_drop, disk_cache_get,
                              disk_cache_put, getenv, tuned)
from lazygrad.ops import UnaryOps, BinaryOps, TernaryOps, ReduceOps, kernel_text, reduce_identity
from lazygrad.symbolic import Node, Num, Var, make_sum, text, value

# what each dtype is called in memory (pointer element type) and in arithmetic
STORAGE = {"bool": "uchar", "uint8": "uchar", "int8": "char", "int16": "short", "int32": "int", "int64": "long",
           "float16": "half", "float32": "float", "float64": "double"}
COMPUTE = {**STORAGE, "bool": "bool", "float16": "float"}
ALIGN = {"uchar": 1, "char": 1, "short": 2, "int": 4, "long": 8, "float": 4, "double": 8}


class KernelError(RuntimeError):
  """A generated kernel failed to compile or launch; the message carries the source and the backend's words."""


def literal(value, dtype: DType) -> str:
  if dtype is bool_: return "1" if value else "0"
  if dtype.is_float:
    v = float(value)
    if math.isnan(v): return "NAN"
    if math.isinf(v): return "INFINITY" if v > 0 else "(-INFINITY)"
    text = repr(v) + ("" if dtype is float64 else "f")
    return f"({text})" if v < 0 else text
  v = int(value)
  if v == -2**63: return "(-9223372036854775807L-1)"
  if v == -2**31 and dtype.itemsize == 4: return "(-2147483647-1)"
  text = f"{v}L" if dtype.itemsize == 8 else str(v)
  return f"({text})" if v < 0 else text


ROUND_HALF = ("float round_half(float x) { ushort t; vstore_half(x, 0, (__private half*)&t); "
              "return vload_half(0, (__private const half*)&t); }")


def _f(v: float) -> str: return f"({v!r}f)" if v < 0 else f"{v!r}f"


def fast_exp_source(name: str) -> str:
  """The one-line C definition of a fast exp helper (see lazygrad/codegen/fastmath.py): `exp_f`, `exp2_f` on floats,
  `exp_f8`, `exp2_f4`... on vectors. One line: batch_source declares a program's helper lines once."""
  kind, width = name.split("_f")
  t, i = f"float{width}", f"int{width}"
  lo, hi = fastmath.EXP_RANGE if kind == "exp" else fastmath.EXP2_RANGE
  fit = fastmath.horner(fastmath.EXP_FIT, "r", _f)
  scaled = (f"xc * {_f(fastmath.LOG2E)} + {_f(fastmath.ROUNDER)}" if kind == "exp" else f"xc + {_f(fastmath.ROUNDER)}")
  reduced = (f"(xc - n * {_f(fastmath.LN2_HI)}) - n * {_f(fastmath.LN2_LO)}" if kind == "exp" else
             f"(xc - n) * {_f(fastmath.LN2)}")
  # ?: rather than select: PoCL calls a library function for a scalar select, which keeps a scalar kernel from being
  # vectorized across work-items (10x slower), and the vector ?: measured faster than the vector select too
  clamp = f"{t} xc = x < {_f(lo)} ? ({t})({_f(lo)}) : x; xc = xc > {_f(hi)} ? ({t})({_f(hi)}) : xc;"
  return (f"{t} {name}({t} x) {{ {clamp} {t} m = {scaled}; {t} n = m - {_f(fastmath.ROUNDER)}; "
          f"{i} k = as_{i}(m) - {fastmath.ROUNDER_BITS}; {t} r = {reduced}; {t} p = 1.0f + (r + r * r * {fit}); "
          f"{i} h = k >> 1; return p * as_{t}((h + 127) << 23) * as_{t}((k - h + 127) << 23); }}")


def fast_log2_source(name: str) -> str:
  """The one-line C definition of `log2_f` (floats) or `log2_f8`... (vectors): see lazygrad/codegen/fastmath.py."""
  width = name.split("_f")[1]
  t, i = f"float{width}", f"int{width}"
  fit = fastmath.horner(fastmath.LOG2_FIT, "f", _f)
  tiny, root2 = _f(fastmath.FLT_MIN), _f(fastmath.SQRT2)
  return (f"{t} {name}({t} x) {{ {t} s = x < {tiny} ? x * 8388608.0f : x; {i} b = as_{i}(s); "
          f"{t} m = as_{t}((b & 8388607) | 1065353216); "
          f"{t} e = convert_{t}((b >> 23) - 127) - (x < {tiny} ? ({t})(23.0f) : ({t})(0.0f)); "
          f"e = m > {root2} ? e + 1.0f : e; m = m > {root2} ? m * 0.5f : m; {t} f = m - 1.0f; {t} r = e + (f + f * {fit}); "
          f"return ((x > 0.0f) & (x < INFINITY)) ? r : x == 0.0f ? ({t})(-INFINITY) : x < 0.0f ? ({t})(NAN) : x; }}")


def math_helpers(body: str) -> list[str]:
  """The definitions of the fast math helpers that `body` calls."""
  names = sorted(set(re.findall(r"\b((?:exp2?|log2)_f\d*)\(", body)))
  return [fast_log2_source(n) if n.startswith("log2") else fast_exp_source(n) for n in names]


def alu(op, dtype: DType, args: list[str], src_dtypes: list[DType]) -> str:
  """One instruction's C expression. `dtype` is the result's, src_dtypes the operands'."""
  a = args[0]
  b = args[1] if len(args) > 1 else None
  fl = src_dtypes[0].is_float
  if op is UnaryOps.NEG: return f"(!{a})" if src_dtypes[0] is bool_ else f"(-{a})"
  if op is UnaryOps.NOT: return f"(!{a})"
  if op in (UnaryOps.EXP, UnaryOps.EXP2):  # float32 (and float16, computed in float): our own, see fast_exp_source
    return f"{op.name.lower()}({a})" if dtype is float64 else f"{op.name.lower()}_f({a})"
  if op is UnaryOps.LOG2: return f"log2({a})" if dtype is float64 else f"log2_f({a})"
  if op is UnaryOps.SIN: return f"sin({a})"
  if op is UnaryOps.COS: return f"cos({a})"
  if op is UnaryOps.SQRT: return f"sqrt({a})"
  if op is UnaryOps.ABS: return f"fabs({a})"
  if op is UnaryOps.RECIP: return f"(1.0f/{a})" if dtype is not float64 else f"(1.0/{a})"
  if op is UnaryOps.CAST:
    if dtype is bool_: return f"({a}!=0)"
    if dtype is float16: return f"round_half((float)({a}))"
    return f"(({COMPUTE[dtype.name]})({a}))"
  if op is BinaryOps.ADD: return f"({a}+{b})" if src_dtypes[0] is not bool_ else f"({a}||{b})"
  if op is BinaryOps.SUB: return f"({a}-{b})"
  if op is BinaryOps.MUL: return f"({a}*{b})" if src_dtypes[0] is not bool_ else f"({a}&&{b})"
  if op is BinaryOps.DIV: return f"({a}/{b})"
  # an integer division by zero is undefined in C (a CPU traps): it gives 0 here, as on the Triton backend
  if op is BinaryOps.MOD and fl: return f"fmod({a},{b})"  # exact; NaN for a zero divisor, as torch gives
  if op in (BinaryOps.IDIV, BinaryOps.MOD):
    sym = "/" if op is BinaryOps.IDIV else "%"
    nonzero_literal = b.lstrip("(-").rstrip(")L").isdigit() and b.strip("()L-") != "0"
    return f"({a}{sym}{b})" if nonzero_literal else f"(({b})==0?0:({a}){sym}({b}))"
  if op is BinaryOps.MAX:  # NaN wins, as in torch.maximum (a != a: PoCL calls a function for isnan)
    return f"((({a}>{b})||({a}!={a}))?{a}:{b})" if fl else f"(({a}>{b})?{a}:{b})"
  if op is BinaryOps.CMPLT: return f"({a}<{b})"
  if op is BinaryOps.CMPLE: return f"({a}<={b})"
  if op is BinaryOps.CMPEQ: return f"({a}=={b})"
  if op is BinaryOps.AND: return f"({a}&{b})" if src_dtypes[0] is not bool_ else f"({a}&&{b})"
  if op is BinaryOps.OR: return f"({a}|{b})" if src_dtypes[0] is not bool_ else f"({a}||{b})"
  if op is BinaryOps.XOR: return f"({a}^{b})" if src_dtypes[0] is not bool_ else f"({a}!={b})"
  if op is TernaryOps.WHERE: return f"({a}?{b}:{args[2]})"
  raise NotImplementedError(f"OpenCL renderer: no rule for {op}")


# clang fuses a * b + c into one multiply-add only within a C expression, and the renderers write an instruction a
# statement: a polynomial's Horner steps were a multiply and an add each. Fused across statements (as torch's
# vectorized math does by hand), GELU's kernel ran 1.4x faster (2.28 -> 1.60 ms on one PoCL thread). A fused
# multiply-add rounds once: a result moves by an ulp at most, toward the exact one.
CONTRACT = "#pragma clang fp contract(fast)"


def render(plan: Plan, cpu: bool = False) -> tuple[str, str]:
  """Plan -> (OpenCL C source, kernel name). A pure function of the plan and the target. For a CPU (`cpu`), vectors
  move through pointers to element-aligned vector types instead of vloadN/vstoreN, which PoCL compiles to library
  calls that spill every register around them (a matmul tile ran at half speed)."""
  for d in plan.bufs:
    if d is bfloat16: raise TypeError("OpenCL backend: bfloat16 is not supported; use float16 or float32")
  if plan.rows: return render_rows(plan, cpu)
  choice = vector_choice(plan)
  return render_vector(plan, *choice, cpu) if choice else render_scalar(plan)


def scalar_params(plan: Plan) -> list[str]:
  """The kernel's arguments after its buffers: index variables and scalars (see codegen/dynamic.py)."""
  return [f"{COMPUTE[d.name]} {name}" for name, d in plan.params]


def kernel_params(plan: Plan) -> list[str]:
  """A kernel's parameter list: its output buffer, its input buffers (restrict: no kernel writes what it reads) and
  its scalar arguments."""
  return ([f"__global {STORAGE[plan.bufs[0].name]}* data0"] +
          [f"__global const {STORAGE[d.name]}* restrict data{n}" for n, d in enumerate(plan.bufs) if n > 0] +
          scalar_params(plan))


def reduce_combine(op: ReduceOps) -> BinaryOps:
  """The binary op that folds one more element into a reduction's accumulator."""
  return BinaryOps.ADD if op is ReduceOps.SUM else BinaryOps.MAX


def vector_load(ctype: str, base: str, n: int, cpu: bool, typedefs: dict) -> str:
  """n elements from `base` as a vector: through an element-aligned vector pointer on a CPU (see render), whose typedef
  goes in `typedefs`; vloadN elsewhere."""
  if not cpu: return f"vload{n}(0, {base})"
  name, typedefs[ctype] = unaligned_vector(ctype, n)
  return f"(*(__global const {name}*)({base}))"


def vector_store(ctype: str, value: str, base: str, n: int, cpu: bool, typedefs: dict) -> str:
  """The statement that stores a vector of n elements at `base` (see vector_load)."""
  if not cpu: return f"vstore{n}({value}, 0, {base});"
  name, typedefs[ctype] = unaligned_vector(ctype, n)
  return f"*(__global {name}*)({base}) = {value};"


def fold_lanes(red: str, acc: str, op: ReduceOps, dtype: DType, n: int) -> list[str]:
  """The statements that fold the n lanes of vector accumulator `acc` into the scalar `red`."""
  combine = reduce_combine(op)
  return [f"  {COMPUTE[dtype.name]} {red} = {acc}.s0;",
          *(f"  {red} = {alu(combine, dtype, [red, f'{acc}.s{u:x}'], [dtype, dtype])};" for u in range(1, n))]


def param_values(plan: Plan, values: list) -> list:
  """Launch arguments for the plan's parameters, as Python numbers: the kernel's invoker knows their types (see
  Device._kernel), and converts them faster than a NumPy scalar is passed to an untyped one (5 against 35 us)."""
  return [float(v) if COMPUTE_NP[d.name] is np.float32 else int(v) for (_, d), v in zip(plan.params, values)]


COMPUTE_NP = {"float32": np.float32, "float16": np.float32, "int32": np.int32, "int64": np.int64}


def unaligned_vector(ctype: str, lanes: int) -> tuple[str, str]:
  """(name, typedef) of a vector type that needs only its element's alignment, as vloadN does."""
  name = f"{ctype}{lanes}_u"
  return name, f"typedef {ctype} {name} __attribute__((ext_vector_type({lanes}), aligned({ALIGN[ctype]})));"


def global_size(plan: Plan) -> int:
  choice = vector_choice(plan)
  if not choice: return plan.out_size
  if choice[1] == "ridx": return plan.out_size // _dot_tiling(plan, choice[0])[0]
  rows, cols, _ = _tiling(plan, *choice)
  return plan.out_size // (choice[0] * rows * cols)


def reduce_loops(plan: Plan, itype: str, indent: str = "  "):
  """The reduce loop as C loop headers and the substitution for `ridx` in index math: one loop per reduced dim, so
  no iteration divides to find its position (a convolution's weight gradient reduces over batch, height and width).
  A dim may be an argument (a Node)."""
  dims = [d for d in plan.red_shape if isinstance(d, Node) or d > 1]
  if len(dims) < 2:
    return [f"{indent}for ({itype} ridx = 0; ridx < {text(plan.red_size)}; ridx++) {{"], "}", {}
  loop_vars = [Var(f"r{k}", 0, top(d) - 1) for k, d in enumerate(dims)]
  flat, stride = Num(0), 1
  for v, d in reversed(list(zip(loop_vars, dims))):
    flat, stride = flat + v * stride, stride * d
  heads = [f"{indent}for ({itype} r{k} = 0; r{k} < {text(d)}; r{k}++) {'{' if k == len(dims) - 1 else ''}"
           for k, d in enumerate(dims)]
  return heads, "}", {"ridx": flat}


def render_scalar(plan: Plan) -> tuple[str, str]:
  """One output per work-item, scalar code."""
  itype = "long" if plan.big_index else "int"
  ivar = lambda name: name
  lines: list[str] = []
  names: dict[int, str] = {}

  def val(i: Instr) -> str: return names[id(i)]

  heads, close, nest = reduce_loops(plan, itype) if plan.reduce is not None else ([], "", {})
  sub = lambda node: node.substitute(nest) if nest else node

  def line(i: Instr, indent: str):
    ctype = COMPUTE[i.dtype.name]
    if i.op == "const": names[id(i)] = literal(i.arg, i.dtype); return
    if i.op == "param": names[id(i)] = i.arg; return
    if i.op == "index":
      expr = sub(i.arg).render(ivar)
    elif i.op == "load":
      bufno, idx, valid = i.arg
      idx, valid = sub(idx), sub(valid)
      expr = _read(bufno, idx.render(ivar), valid, i.dtype)
    elif i.op == "alu":
      expr = alu(i.arg, i.dtype, [val(s) for s in i.srcs], [s.dtype for s in i.srcs])
    elif i.op == "reduce":
      names[id(i)] = "acc"; return
    else: raise NotImplementedError(i.op)
    lines.append(f"{indent}{ctype} {i.name} = {expr};")
    names[id(i)] = i.name

  for i in plan.instrs:
    if i.region == "pre": line(i, "  ")
  if plan.reduce is not None:
    r = plan.reduce
    acc_t = COMPUTE[r.dtype.name]
    lines.append(f"  {acc_t} acc = {literal(reduce_identity(r.arg, r.dtype), r.dtype)};")
    lines.extend(heads)
    for i in plan.instrs:
      if i.region == "loop": line(i, "    ")
    x = val(r.srcs[0])
    upd = alu(reduce_combine(r.arg), r.dtype, ["acc", x], [r.dtype, r.dtype])
    lines.append(f"    acc = {upd};")
    lines.append("  " + close)
  for i in plan.instrs:
    if i.region == "post": line(i, "  ")

  out, v = plan.bufs[0], val(plan.value)
  at = "gidx" if plan.store is None else plan.store.render()  # a piece of a cat writes its region
  if out is float16: store = f"vstore_half({v}, {at}, data0);"
  elif out is bool_: store = f"data0[{at}] = (uchar)({v});"
  else: store = f"data0[{at}] = {v};"
  params = kernel_params(plan)
  head = [CONTRACT]
  if any(d is float64 for d in plan.bufs) or any(i.dtype is float64 for i in plan.instrs):
    head.append("#pragma OPENCL EXTENSION cl_khr_fp64 : enable")
  if "round_half" in "\n".join(lines): head.append(ROUND_HALF)
  head += math_helpers("\n".join(lines))
  src = "\n".join(head + [
    f"__kernel void {plan.name}({', '.join(params)}) {{",
    f"  {itype} gidx = get_global_id(0);",
    f"  if (gidx >= {text(plan.out_size)}) return;",
    *lines,
    f"  {store}",
    "}"])
  return src, plan.name


# ---- vectorized rendering: PoCL (and GPUs) run explicit vector code far faster than scalar code, whose math calls
# stay scalar. A kernel computes LANES (or 8, or 2) neighbouring outputs per work-item ("gidx" lanes), or, for a
# reduction, reads them at neighbouring reduce positions per loop step ("ridx" lanes).

LANES = 4
VECTOR_DTYPES = {"float32": "float", "float16": "float", "int32": "int", "int64": "long", "bool": "int"}


def _lane_exprs(node: Node, lane: str, size: int | Node, n: int = LANES) -> list[Node]:
  vec = Var(_vec_name(lane), 0, max(top(size) // n - 1, 0))
  return [node.substitute({lane: vec * n + u}) for u in range(n)]


def _vec_name(lane: str) -> str: return "gvec" if lane == "gidx" else "rvec"


def _lane_kind(lanes: list[Node]) -> str:
  if all(x == lanes[0] for x in lanes[1:]): return "uniform"
  if all(make_sum([x, lanes[0] * -1]) == Num(u) for u, x in enumerate(lanes)): return "contiguous"
  return "gather"


def vector_choice(plan: Plan):
  """(LANES, "gidx" or "ridx") when the kernel can run as vector code, else None. Kept on the plan: render and the
  launch's global size both ask."""
  if "_vector_choice" not in plan.__dict__: plan.__dict__["_vector_choice"] = _vector_choice(plan)
  return plan.__dict__["_vector_choice"]


def _vector_choice(plan: Plan):
  if plan.rows: return None  # its own vector code (see render_rows), no register tiles
  choice = _vector_choice_of(plan)
  # loops over arguments keep vectors (and tiles) where the lanes still read neighbouring elements: a size that is an
  # argument known to fill whole vectors (see codegen/dynamic.py's VECTOR_MULTIPLE), or an outer dim whose inner
  # ones are numbers (a matrix product's rows). Lanes that divide by arguments to find their elements are scalar code
  if choice is not None and plan.sized_by_arguments:
    n, lane = choice
    if "gather" in _load_kinds(plan, lane, plan.out_size if lane == "gidx" else plan.red_size, n): return None
  return choice


def _load_kinds(plan: Plan, lane: str, size, n: int) -> list[str]:
  """The lane kind (see _lane_kind) of each load that n lanes along `lane` (of `size` elements) would make."""
  loads = [i for i in plan.instrs if i.op == "load" and (lane == "gidx" or i.region == "loop")]
  return [_lane_kind(_lane_exprs(i.arg[1], lane, size, n)) for i in loads]


def _vector_choice_of(plan: Plan):
  if plan.store is not None:  # a piece of a cat, or a copy walked in its input's order (see lower.input_order_of),
    # written where its outputs lie: vector code where lanes store in a row
    return _lanes_for_work(plan, stored_in_a_row=True) if plan.reduce is None else None
  return _lanes_for_work(plan)


def _lanes_for_work(plan: Plan, stored_in_a_row: bool = False):
  """_vector_choice_of: lanes along the outputs or the loop (`stored_in_a_row`: only lanes that store next to each
  other where plan.store puts them)."""
  if any(i.op == "alu" and i.arg in (BinaryOps.IDIV, BinaryOps.MOD) for i in plan.instrs): return None
  if any(i.op == "load" and i.srcs for i in plan.instrs): return None  # gathers index with computed values
  if any(d.name not in VECTOR_DTYPES for d in plan.bufs) or any(i.dtype.name not in VECTOR_DTYPES for i in plan.instrs):
    return None
  wide = any(VECTOR_DTYPES[d.name] == "long" for d in [*plan.bufs, *(i.dtype for i in plan.instrs)])
  if _long_reduction(plan): return _reduction_vector_choice(plan, wide)
  options = [("ridx", plan.red_size)] if plan.reduce is not None else []
  options.append(("gidx", plan.out_size))
  best, best_score = None, -1
  # elementwise work takes 8 lanes of 32 bits where it can (one AVX register; a GELU ran 2x faster than with 4)
  widths = (LANES,) if wide or plan.reduce is not None else (8, LANES)
  for (lane, size), n in ((o, n) for o in options for n in widths):
    if not _fills(size, n): continue
    if stored_in_a_row and _lane_kind(_lane_exprs(plan.store, "gidx", plan.out_size, n)) != "contiguous": continue
    kinds = _load_kinds(plan, lane, size, n)
    score = kinds.count("contiguous") - kinds.count("gather")  # a gather is four scalar loads
    # elementwise work is vector code even when every load gathers (a transposing copy): the store is one vector
    # and the lanes' index math shares its divisions (2.5x faster on PoCL for a weight's copy to panels)
    if plan.reduce is None: score += len(kinds)
    if score > best_score: best, best_score = (n, lane), score
  return best


def _scalar_code(plan: Plan) -> bool:
  """Whether a plan renders as scalar code (one element a lane)."""
  return _row_lanes(plan) == 1 if plan.rows else vector_choice(plan) is None


def _code_shape(plan: Plan) -> tuple:
  """A plan's vector lanes and how many outputs each work-item computes (its register tile): two plans of one kernel
  structure with equal code shapes run the same vector code, their index math aside."""
  if plan.rows: return "rows", _row_lanes(plan)
  choice = vector_choice(plan)
  if choice is None: return ()
  if choice[1] == "ridx": return choice, _dot_tiling(plan, choice[0])[0]
  rows, cols, _ = _tiling(plan, *choice)
  return choice, rows * cols


def _long_reduction(plan: Plan) -> bool:
  """Whether a kernel reduces over 16 or more elements per output, or over a number of them that is an argument: its
  lanes and tiles are chosen as for a long loop whatever the AST that built it had (lanes along a loop of contiguous
  loads keep several partial sums, which a long float32 sum needs)."""
  return plan.reduce is not None and (isinstance(plan.red_size, Node) or plan.red_size >= 16)


def _fills(size: int | Node, n: int) -> bool:
  """Whether `size` elements (a number, or a Node over a kernel's arguments) are whole vectors of n lanes."""
  return (size >= n if isinstance(size, int) else size.min >= n) and _divides(n, size)


def _divides(n: int, size: int | Node) -> bool:
  """Whether n divides `size` (a number, or a Node over a kernel's arguments: for every value they take)."""
  return size % n == 0 if isinstance(size, int) else size % n == Num(0)


def _reduction_vector_choice(plan: Plan, wide: bool):
  """A reduction's (lanes, "gidx" or "ridx"), by a count of instructions per output per reduced element: its loop's
  distinct loads (a gather is one per lane) and its vector multiply-adds, over the tile the choice comes with. Lanes
  along the outputs (with rows of outputs sharing loads) suit a matmul or a convolution whose rows are a multiple of
  the lanes; lanes along the loop suit dot products (x @ w.T) and contiguous sums; 2 lanes suit odd widths (14)."""
  best, best_cost = None, None
  for n in (4, 2) if wide else (8, 4, 2):
    if _divides(n, plan.out_size):
      cost = tile_options(plan, n, "gidx")[0][1][0] + 1 / n  # its best tile's (the one _tiling gives)
      if best_cost is None or cost < best_cost: best, best_cost = (n, "gidx"), cost
    if _divides(n, plan.red_size):
      _, ra, rb, stride = _dot_tiling(plan, n)
      cost = (_dot_loads_per_output(plan, n, [(ra, rb)], stride)[0][0] + 1) / n
      if best_cost is None or cost < best_cost: best, best_cost = (n, "ridx"), cost
  return best


def _vtype(dtype, n: int = LANES) -> str: return f"{VECTOR_DTYPES[dtype.name]}{n}"


def _broadcast(x: str, dtype, n: int = LANES) -> str:
  if dtype is bool_: return f"(({_vtype(dtype, n)})(-(int)({x})))"  # a C truth value as a lane mask (-1 or 0)
  return f"(({_vtype(dtype, n)})({x}))"


def valu(op, dtype, args: list[str], src_dtypes, LANES: int = LANES) -> str:
  """A vector instruction. Bools are lane masks (-1 true, 0 false) in int vectors, as OpenCL's comparisons give."""
  a = args[0]
  b = args[1] if len(args) > 1 else None
  sd = src_dtypes[0]
  wide = lambda d: VECTOR_DTYPES[d.name] == "long"
  mask = lambda expr, d: f"convert_int{LANES}({expr})" if wide(d) else expr  # comparisons of longs give long masks
  if op is UnaryOps.NEG: return f"(~{a})" if sd is bool_ else f"(-{a})"
  if op is UnaryOps.NOT: return f"(~{a})"
  if op in (UnaryOps.EXP, UnaryOps.EXP2, UnaryOps.LOG2): return f"{op.name.lower()}_f{LANES}({a})"  # floats: see alu
  if op in (UnaryOps.SIN, UnaryOps.COS, UnaryOps.SQRT): return f"{op.name.lower()}({a})"
  if op is UnaryOps.ABS: return f"fabs({a})"
  if op is UnaryOps.RECIP: return f"(1.0f/{a})"
  if op is UnaryOps.CAST:
    vt = _vtype(dtype, LANES)
    if sd is bool_:
      cond = f"convert_long{LANES}({a})" if wide(dtype) else a
      out = f"select(({vt})(0), ({vt})(1), {cond})"
    elif dtype is bool_: return mask(f"({a}!=({_vtype(sd, LANES)})(0))", sd)
    else: out = f"convert_{vt}({a})" if VECTOR_DTYPES[dtype.name] != VECTOR_DTYPES[sd.name] else a
    return f"round_half{LANES}({out})" if dtype is float16 else out
  if op is BinaryOps.ADD: return f"({a}|{b})" if sd is bool_ else f"({a}+{b})"
  if op is BinaryOps.SUB: return f"({a}-{b})"
  if op is BinaryOps.MUL: return f"({a}&{b})" if sd is bool_ else f"({a}*{b})"
  if op is BinaryOps.DIV: return f"({a}/{b})"
  if op is BinaryOps.MAX:
    if sd is bool_: return f"({a}|{b})"
    # NaN wins; ?: and a != a rather than select and isnan, which PoCL calls functions for: a row max 1.5x faster
    if sd.is_float: return f"((({a}>{b})|({a}!={a})) ? {a} : {b})"
    return f"max({a}, {b})"
  if op is BinaryOps.CMPLT: return f"((~{a})&{b})" if sd is bool_ else mask(f"({a}<{b})", sd)
  if op is BinaryOps.CMPLE: return mask(f"({a}<={b})", sd)  # floats only (see lower.rewrite)
  if op is BinaryOps.CMPEQ: return f"({a}=={b})" if sd is bool_ else mask(f"({a}=={b})", sd)
  if op is BinaryOps.AND: return f"({a}&{b})"
  if op is BinaryOps.OR: return f"({a}|{b})"
  if op is BinaryOps.XOR: return f"({a}^{b})"
  if op is TernaryOps.WHERE:
    cond = f"convert_long{LANES}({a})" if wide(dtype) else a
    return f"select({args[2]}, {b}, {cond})"
  raise NotImplementedError(f"OpenCL vector renderer: no rule for {op}")


def _read(bufno: int, index: str, valid: Node, dtype) -> str:
  """One element of buffer bufno at index, or zero where `valid` is false. (A CPU runs the branch around a masked
  load about as fast as a branch-free read of index 0 and a select: tried, 5% on a padded convolution.)"""
  ptr = f"data{bufno}"
  if dtype is float16: read = f"vload_half({index}, {ptr})"
  elif dtype is bool_: read = f"({ptr}[{index}]!=0)"
  else: read = f"{ptr}[{index}]"
  return read if valid.min == 1 else f"({valid.render()}?{read}:{literal(0, dtype)})"


def render_vector(plan: Plan, LANES: int, lane: str, cpu: bool = False) -> tuple[str, str]:
  """LANES outputs per work-item ("gidx"), or LANES reduce positions per loop step ("ridx"), as vector code."""
  typedefs: dict[str, str] = {}

  vload = lambda ctype, base: vector_load(ctype, base, LANES, cpu, typedefs)
  vstore = lambda ctype, value, base: vector_store(ctype, value, base, LANES, cpu, typedefs)

  _vt = lambda d: _vtype(d, LANES)
  _bc = lambda x, d: _broadcast(x, d, LANES)
  itype = "long" if plan.big_index else "int"
  trows, cols, stride = _tiling(plan, LANES, lane)
  rows = trows * cols  # accumulators; j below counts them, row j // cols and column j % cols of the tile
  slot = lambda j: Var("gidx", 0, top(plan.out_size) - 1)  # the output a scalar row computes (lanes along ridx)
  if lane == "ridx":
    rvec = Var("rvec", 0, max(top(plan.red_size) // LANES - 1, 0))
    at = lambda j, u: rvec * LANES + u
    rows, ra, rb, stride = _dot_tiling(plan, LANES)
    if rows > 1:  # ra x rb outputs per work-item: loads that depend on one of the two are shared by the others
      mi, ni = Var("mi", 0, top(plan.out_size) // (rows * stride // rb) - 1), Var("ni", 0, stride // rb - 1)
      slot = lambda j: (mi * ra + j // rb) * stride + ni * rb + j % rb
  elif rows > 1:
    mi = Var("mi", 0, top(plan.out_size) // (trows * stride) - 1)
    ni = Var("ni", 0, stride // (LANES * cols) - 1)
    at = lambda j, u: (mi * trows + j // cols) * stride + (ni * cols + j % cols) * LANES + u
  else:
    gvec = Var("gvec", 0, top(plan.out_size) // LANES - 1)
    at = lambda j, u: gvec * LANES + u
  heads, close, nest = reduce_loops(plan, itype) if plan.reduce is not None and lane == "gidx" else ([], "", {})
  outer = lambda j: {"gidx": slot(j)} if lane == "ridx" else {}
  # the values a row's lane (u), or a scalar row (u None), substitutes, each made once with a memo of what it gave
  # each node: every load of every row asks (twice where the loop is written twice), and loads share subexpressions
  substitutions: dict[tuple, tuple[dict, dict]] = {}

  def substituted(node: Node, j: int, u: int | None = None) -> Node:
    if (j, u) not in substitutions:
      substitutions[(j, u)] = ({**nest, **outer(j)} if u is None else {lane: at(j, u), **nest, **outer(j)}), {}
    return node.substitute(*substitutions[(j, u)])
  lanes_of = lambda node, j: [substituted(node, j, u) for u in range(LANES)]
  vector_regions = {"pre", "loop", "post"} if lane == "gidx" else {"loop"}
  lines: list[str] = []
  names: dict[tuple, tuple[str, bool]] = {}  # (instr, row) -> (expression, is a vector)
  emitted: dict[tuple, str] = {}  # (region, type, expression) -> name: rows share what does not depend on the row
  # masks of loop loads that do not change along the innermost loop (a convolution's padding per tap): on a CPU the
  # loop is written twice, without them where they all hold, and with them elsewhere
  dims = [d for d in plan.red_shape if isinstance(d, Node) or d > 1]
  inner = f"r{len(dims) - 1}" if len(dims) >= 2 else "ridx"
  invariant: dict[str, None] = {}
  assumed: set[str] = set()

  def condition(valid: Node) -> Node:
    if valid.min == 1: return valid
    text = valid.render()
    if text in assumed: return Num(1)
    if cpu and lane == "gidx" and inner not in valid.vars(): invariant[text] = None
    return valid

  def use(i: Instr, j: int, as_vector: bool) -> str:
    expr, is_vec = names[(id(i), j)] if (id(i), j) in names else names[(id(i), 0)]
    return _bc(expr, i.dtype) if as_vector and not is_vec else expr

  def read(i: Instr, j: int) -> tuple[str, bool]:
    bufno, idx, valid = i.arg
    idx_l, valid_l = lanes_of(idx, j), lanes_of(valid, j)
    if i.region == "loop": valid_l = [condition(v) for v in valid_l]
    vk, ik = _lane_kind(valid_l), _lane_kind(idx_l)
    zero = literal(0, i.dtype)
    if vk == "uniform" and ik in ("uniform", "contiguous"):
      if ik == "uniform": return _read(bufno, idx_l[0].render(), valid_l[0], i.dtype), False
      else:
        base = f"data{bufno} + {idx_l[0].render()}"
        if i.dtype is float16: expr = f"vload_half{LANES}(0, {base})"
        elif i.dtype is bool_: expr = f"(convert_int{LANES}({vload('uchar', base)})!=({_vt(i.dtype)})(0))"
        else: expr = vload(STORAGE[i.dtype.name], base)
        is_vec = True
      if valid_l[0].min != 1:
        expr = f"({valid_l[0].render()}?{expr}:{_bc(zero, i.dtype) if is_vec else zero})"
      return expr, is_vec
    parts = []
    for x, v in zip(idx_l, valid_l):
      r = _read(bufno, x.render(), v, i.dtype)
      parts.append(f"-(int)({r})" if i.dtype is bool_ else r)
    return f"({_vt(i.dtype)})({', '.join(parts)})", True

  def emit(i: Instr, j: int, ctype: str, expr: str, indent: str, is_vec: bool):
    key = (i.region, ctype, expr)
    if key not in emitted:
      name = i.name if j == 0 else f"{i.name}_{j}"
      lines.append(f"{indent}{ctype} {name} = {expr};")
      emitted[key] = name
    names[(id(i), j)] = (emitted[key], is_vec)

  def line(i: Instr, indent: str, only_row: int | None = None):
    vector = i.region in vector_regions
    if i.op == "const":
      names[(id(i), 0)] = (literal(i.arg, i.dtype), False); return
    if i.op == "param":
      names[(id(i), 0)] = (i.arg, False); return
    if i.op == "reduce":
      for j in range(rows): names[(id(i), j)] = (f"acc{j}", True) if lane == "gidx" else (f"red{j}", False)
      return
    if not vector:  # scalar instructions, as render_scalar writes them, one per row
      for j in range(rows) if only_row is None else (only_row,):
        if i.op == "index": expr = substituted(i.arg, j).render()
        elif i.op == "load":
          bufno, idx, valid = i.arg
          idx, valid = substituted(idx, j), substituted(valid, j)
          expr = _read(bufno, idx.render(), valid, i.dtype)
        else: expr = alu(i.arg, i.dtype, [use(s, j, False) for s in i.srcs], [s.dtype for s in i.srcs])
        emit(i, j, COMPUTE[i.dtype.name], expr, indent, False)
      return
    for j in range(rows) if only_row is None else (only_row,):
      if i.op == "index":
        conds = lanes_of(i.arg, j)
        if _lane_kind(conds) == "uniform": expr = _bc(conds[0].render(), bool_)
        else: expr = f"({_vt(bool_)})({', '.join(f'-(int)({c.render()})' for c in conds)})"
      elif i.op == "load":
        expr, is_vec = read(i, j)
        if not is_vec: expr = _bc(expr, i.dtype)
      else: expr = valu(i.arg, i.dtype, [use(s, j, True) for s in i.srcs], [s.dtype for s in i.srcs], LANES)
      emit(i, j, _vt(i.dtype), expr, indent, True)

  for i in plan.instrs:
    if i.region == "pre": line(i, "  ")
  if plan.reduce is not None:
    r = plan.reduce
    ident = literal(reduce_identity(r.arg, r.dtype), r.dtype)
    combine = reduce_combine(r.arg)
    init = _bc(ident, r.dtype) if r.dtype is not bool_ else f"({_vt(r.dtype)})(0)"
    accs = [f"acc{j}" for j in range(rows)]
    lines.extend(f"  {_vt(r.dtype)} {a} = {init};" for a in accs)
    if lane == "ridx": heads, close = [f"  for ({itype} rvec = 0; rvec < {text(plan.red_size // LANES)}; rvec++) {{"], "}"
    lines.extend(heads)
    body_start = len(lines)
    src = r.srcs[0]
    # a sum of products is written as one expression, acc + x*y, which the compiler contracts to a fused multiply-add
    # (it does not fuse across statements; an explicit fma() call is a slow library call on PoCL)
    fused = r.arg is ReduceOps.SUM and r.dtype in (float32, float64) and src.op == "alu" and src.arg is BinaryOps.MUL \
      and src.region == "loop" and all(s.dtype is r.dtype for s in src.srcs) and plan.value is not src \
      and not any(s is src for i in plan.instrs if i is not r for s in i.srcs)

    def body() -> list[str]:
      # row by row, each row's loads just before its update: a load shared by the rows is written once, at its
      # first use, and fewer values stay live (all rows' loads first spilled registers: 8x8 matmul tiles ran 30%
      # slower)
      for j, a in enumerate(accs):
        for i in plan.instrs:
          if i.region == "loop" and not (fused and i is src): line(i, "    ", j)
        if fused: lines.append(f"    {a} = ({a}+({use(src.srcs[0], j, True)}*{use(src.srcs[1], j, True)}));")
        else: lines.append(f"    {a} = {valu(combine, r.dtype, [a, use(src, j, True)], [r.dtype, r.dtype], LANES)};")
      written = lines[body_start:]
      del lines[body_start:]
      return written

    masked = body()
    if invariant:  # 20-25% faster on a padded convolution: no test or branch per load where no mask can fail
      conds = list(invariant)
      assumed.update(conds)
      for key in [k for k in emitted if k[0] == "loop"]: del emitted[key]  # names declared in the other branch
      fast = body()
      test = " && ".join(f"({c})" for c in conds)
      lines[body_start - 1:] = [f"  if ({test}) {{", heads[-1], *fast, "  }", "  } else {", heads[-1], *masked, "  }", "  }"]
    else: lines.extend(masked + ["  " + close])
    if lane == "ridx":  # fold each accumulator's lanes into one value
      for j in range(rows):
        if r.dtype is bool_: lines.append(f"  bool red{j} = ({'|'.join(f'acc{j}.s{u}' for u in range(LANES))})!=0;")
        else: lines += fold_lanes(f"red{j}", f"acc{j}", r.arg, r.dtype, LANES)
  for i in plan.instrs:
    if i.region == "post": line(i, "  ")

  out = plan.bufs[0]
  stores = []
  if lane == "gidx":
    for j in range(rows):
      # a piece of a cat stores where its region lies (its lanes' places in a row: see _vector_choice_of)
      first = at(j, 0) if plan.store is None else substituted(plan.store, j, 0)
      v, where = use(plan.value, j, True), f"data0 + {first.render()}"
      if out is float16: stores.append(f"vstore_half{LANES}({v}, 0, {where});")
      elif out is bool_: stores.append(vstore("uchar", f"convert_uchar{LANES}(-({v}))", where))
      else: stores.append(vstore(STORAGE[out.name], v, where))
    work = plan.out_size // (LANES * rows)
    head = [f"  {itype} w = get_global_id(0);", f"  if (w >= {text(work)}) return;"]
    head += [f"  {itype} mi = w / {stride // (LANES * cols)};", f"  {itype} ni = w % {stride // (LANES * cols)};"] if rows > 1 else [f"  {itype} gvec = w;"]
  else:
    for j in range(rows):
      v, where = use(plan.value, j, False), slot(j).render()
      if out is float16: stores.append(f"vstore_half({v}, {where}, data0);")
      elif out is bool_: stores.append(f"data0[{where}] = (uchar)({v});")
      else: stores.append(f"data0[{where}] = {v};")
    if rows > 1:
      head = [f"  {itype} w = get_global_id(0);", f"  if (w >= {text(plan.out_size // rows)}) return;",
              f"  {itype} mi = w / {stride // rb};", f"  {itype} ni = w % {stride // rb};"]
    else: head = [f"  {itype} gidx = get_global_id(0);", f"  if (gidx >= {text(plan.out_size)}) return;"]
  params = kernel_params(plan)
  body = "\n".join(lines)
  helpers = [CONTRACT, *typedefs.values()]
  if "round_half(" in body: helpers.append(ROUND_HALF)
  helpers += math_helpers(body)
  if f"round_half{LANES}(" in body:
    helpers.append(f"float{LANES} round_half{LANES}(float{LANES} x) {{ ushort{LANES} t; "
                   f"vstore_half{LANES}(x, 0, (__private half*)&t); return vload_half{LANES}(0, (__private const half*)&t); }}")
  src = "\n".join(helpers + [f"__kernel void {plan.name}({', '.join(params)}) {{", *head, *lines, *(f"  {x}" for x in stores), "}"])
  return src, plan.name


ROW_LANES = 8


def _row_lanes(plan: Plan) -> int:
  """A row kernel's vector lanes along its row: ROW_LANES where the row fills whole vectors and every load that varies
  along it reads neighbouring elements (or one element) under one mask per vector, else 1 (scalar code)."""
  n = ROW_LANES
  if not _fills(plan.red_size, n) or plan.big_index: return 1
  if any(i.dtype.name not in VECTOR_DTYPES or VECTOR_DTYPES[i.dtype.name] == "long" or i.dtype is float16
         for i in plan.instrs): return 1  # half loads and 64-bit lanes: scalar code
  for i in plan.instrs:
    if i.op != "load": continue
    if i.srcs or _lane_kind(_lane_exprs(i.arg[1], "ridx", plan.red_size, n)) == "gather": return 1
    if _lane_kind(_lane_exprs(i.arg[2], "ridx", plan.red_size, n)) != "uniform": return 1
  return n


def render_rows(plan: Plan, cpu: bool = False) -> tuple[str, str]:
  """A row kernel (see codegen/lower.py): a work-item per row, a loop along the row per reduction, each computing
  the instructions that vary along the row which it needs (vectors of ROW_LANES), the per-row values between the
  loops, and a last loop that stores the row. The costliest value that the last loop shares with an earlier one (a
  softmax's exp(x - max)) is written to the output in the earlier loop and read back in the last, not computed twice."""
  n = _row_lanes(plan)
  itype = "long" if plan.big_index else "int"
  typedefs: dict[str, str] = {}
  vtype = lambda d: COMPUTE[d.name] if n == 1 else _vtype(d, n)
  row = f"gidx*{text(plan.red_size)} + " + ("rvec*" + str(n) if n > 1 else "ridx")

  vload = lambda ctype, base: vector_load(ctype, base, n, cpu, typedefs)
  store_row = lambda value: (f"data0[{row}] = {value};" if n == 1 else
                             vector_store("float", value, f"data0 + {row}", n, cpu, typedefs))

  varies: dict[int, bool] = {}  # along the row: reads ridx, or computes from what does
  for i in plan.instrs:
    nodes = [i.arg[1], i.arg[2]] if i.op == "load" else [i.arg] if i.op == "index" else []
    varies[id(i)] = i.op != "reduce" and (any("ridx" in x.vars() for x in nodes) or any(varies[id(s)] for s in i.srcs))

  def needs(root: Instr, stop: Instr | None = None) -> list[Instr]:
    """The instructions that vary along the row which root needs (not those only `stop` needs), in plan order."""
    seen, stack = set(), [root]
    while stack:
      i = stack.pop()
      if id(i) in seen or not varies[id(i)]: continue
      seen.add(id(i))
      if i is not stop: stack.extend(i.srcs)
    return [i for i in plan.instrs if id(i) in seen]

  costly = (UnaryOps.EXP, UnaryOps.EXP2, UnaryOps.LOG2, UnaryOps.SIN, UnaryOps.COS, UnaryOps.SQRT, BinaryOps.DIV)
  cost = lambda i: sum(j.op == "alu" and j.arg in costly for j in needs(i))
  bodies = [needs(r.srcs[0]) for r in plan.reduces]
  last = needs(plan.value)
  out = plan.bufs[0]
  shared = [i for body in bodies for i in body if i in last and i.dtype is float32 and out is float32]
  stash = max(shared, key=cost, default=None)
  if stash is not None and cost(stash) == 0: stash = None
  stash_loop = next((k for k, body in enumerate(bodies) if stash in body), None) if stash is not None else None
  if stash is not None: last = needs(plan.value, stop=stash)
  lines: list[str] = []
  names: dict[int, str] = {}

  def name_of(s: Instr, vector: bool) -> str:
    """An operand: a per-row value is broadcast where a vector instruction reads it."""
    return _broadcast(names[id(s)], s.dtype, n) if vector and n > 1 and not varies[id(s)] else names[id(s)]

  def emit(i: Instr, indent: str, read_stash: bool = False):
    if i.op == "const": names[id(i)] = literal(i.arg, i.dtype); return
    if i.op == "param": names[id(i)] = i.arg; return
    vector = varies[id(i)]
    ctype = vtype(i.dtype) if vector else COMPUTE[i.dtype.name]
    if read_stash: expr = vload("float", f"data0 + {row}") if n > 1 else f"data0[{row}]"
    elif i.op == "index":
      conds = _lane_exprs(i.arg, "ridx", plan.red_size, n) if vector and n > 1 else [i.arg]
      if len(conds) == 1: expr = conds[0].render()
      elif _lane_kind(conds) == "uniform": expr = _broadcast(conds[0].render(), bool_, n)
      else: expr = f"({_vtype(bool_, n)})({', '.join(f'-(int)({c.render()})' for c in conds)})"
    elif i.op == "load":
      bufno, idx, valid = i.arg
      if vector and n > 1:  # neighbouring elements, or one, under one mask (see _row_lanes)
        idxs, valid = _lane_exprs(idx, "ridx", plan.red_size, n), _lane_exprs(valid, "ridx", plan.red_size, n)[0]
        if _lane_kind(idxs) == "uniform": expr = _broadcast(_read(bufno, idxs[0].render(), valid, i.dtype), i.dtype, n)
        else:
          base = f"data{bufno} + {idxs[0].render()}"
          expr = f"(convert_int{n}({vload('uchar', base)})!=({_vtype(bool_, n)})(0))" if i.dtype is bool_ else \
            vload(STORAGE[i.dtype.name], base)
          if valid.min != 1: expr = f"({valid.render()}?{expr}:{_broadcast(literal(0, i.dtype), i.dtype, n)})"
      else: expr = _read(bufno, idx.render(), valid, i.dtype)
    elif i.arg is BinaryOps.DIV and vector and i.dtype is float32 and not varies[id(i.srcs[1])]:
      # a division by a per-row value (a softmax's sum) multiplies by its reciprocal, made once per row where the
      # compiler hoists it, as torch's softmax does (one rounding more): the softmax's kernel took 2.60 ms on one
      # thread, 2.85 with a division per element
      inverse = f"(1.0f/{names[id(i.srcs[1])]})"
      expr = f"({name_of(i.srcs[0], True)}*{_broadcast(inverse, float32, n) if n > 1 else inverse})"
    else:
      srcs = [name_of(s, vector) for s in i.srcs]
      dtypes = [s.dtype for s in i.srcs]
      expr = valu(i.arg, i.dtype, srcs, dtypes, n) if vector and n > 1 else alu(i.arg, i.dtype, srcs, dtypes)
    lines.append(f"{indent}{ctype} {i.name} = {expr};")
    names[id(i)] = i.name

  def per_row():
    """The per-row instructions whose operands are all written by now."""
    for i in plan.instrs:
      if id(i) not in names and not varies[id(i)] and i.op != "reduce" and all(id(s) in names for s in i.srcs):
        emit(i, "  ")

  var, steps = ("rvec", plan.red_size // n) if n > 1 else ("ridx", plan.red_size)
  loop = f"for ({itype} {var} = 0; {var} < {text(steps)}; {var}++) {{"
  # a reduction's loop keeps `unroll` accumulators, each a step in turn: one would wait on the last update every
  # step (a max's NaN test and select are four dependent instructions: the softmax's max took 1.2 of its 3.2 ms)
  unroll = next(u for u in (4, 2, 1) if isinstance(steps, int) and steps % u == 0 or u == 1)
  op = lambda combine, dtype, args: (valu(combine, dtype, args, [dtype] * 2, n) if n > 1 else
                                     alu(combine, dtype, args, [dtype] * 2))
  for k, (r, body) in enumerate(zip(plan.reduces, bodies)):
    per_row()
    combine = reduce_combine(r.arg)
    ident = literal(reduce_identity(r.arg, r.dtype), r.dtype)
    accs = [f"acc{k}_{u}" for u in range(unroll)]
    lines += [f"  {vtype(r.dtype)} {a} = {_broadcast(ident, r.dtype, n) if n > 1 else ident};" for a in accs]
    lines.append(f"  for ({itype} step = 0; step < {text(steps)}; step += {unroll}) {{")
    for u, a in enumerate(accs):
      lines.append(f"    {{ {itype} {var} = step + {u};")  # the loop variable the index math reads, this step's
      for i in body: emit(i, "    ")
      if k == stash_loop: lines.append(f"    {store_row(names[id(stash)])}")
      lines.append(f"    {a} = {op(combine, r.dtype, [a, name_of(r.srcs[0], True)])}; }}")
      for i in body: del names[id(i)]  # values of the step's own: the next step, and later loops, make their own
    lines.append("  }")
    lines.append(f"  {vtype(r.dtype)} acc{k} = {accs[0]};")
    lines += [f"  acc{k} = {op(combine, r.dtype, [f'acc{k}', a])};" for a in accs[1:]]
    if n > 1: lines += fold_lanes(f"red{k}", f"acc{k}", r.arg, r.dtype, n)
    else: lines.append(f"  {COMPUTE[r.dtype.name]} red{k} = acc{k};")
    names[id(r)] = f"red{k}"
  per_row()
  lines.append(f"  {loop}")
  for i in last: emit(i, "    ", read_stash=i is stash)
  lines += [f"    {store_row(name_of(plan.value, True))}", "  }"]
  body = "\n".join(lines)
  head = [f"__kernel void {plan.name}({', '.join(kernel_params(plan))}) {{", f"  {itype} gidx = get_global_id(0);",
          f"  if (gidx >= {text(plan.out_size)}) return;"]
  src = "\n".join([CONTRACT, *typedefs.values(), *math_helpers(body), *head, *lines, "}"])
  return src, plan.name


# (rows, columns) of a register tile of vector accumulators, columns of adjacent lanes: at most 8 accumulators, plus
# the columns' loads and a row's broadcast, fit AVX2's 16 vector registers
TILES = ((8, 1), (4, 2), (2, 4), (1, 8), (4, 1), (2, 2), (1, 4), (2, 1), (1, 2))


def _tiling(plan: Plan, lanes: int, lane: str) -> tuple[int, int, int]:
  """(rows, columns, row stride) of the register tile of a reduction with lanes along its outputs: the model's best
  (see tile_options), unless Device.choose_tile measured another and set it."""
  cache = plan.__dict__.setdefault("_tilings", {})
  if lanes not in cache: cache[lanes] = tile_options(plan, lanes, lane)[0][0]
  return cache[lanes]


def tile_options(plan: Plan, lanes: int, lane: str) -> list[tuple[tuple[int, int, int], tuple[float, float]]]:
  """Register tiles for a reduction with lanes along its outputs, best first, each with its (memory instructions,
  elements moved) per output: rows at the stride of an output dim, columns of lanes next to each other, fewest loads
  first (a matmul's right operand is shared down the rows, its left operand across the columns). Kept on the plan
  per lanes: _tiling and measured_tiles both ask, and each option's cost evaluates every loop load's index math."""
  cache = plan.__dict__.setdefault("_tile_options", {})
  if (lanes, lane) not in cache: cache[(lanes, lane)] = _tile_options(plan, lanes, lane)
  return cache[(lanes, lane)]


def _tile_options(plan: Plan, lanes: int, lane: str):
  if not (lane == "gidx" and _long_reduction(plan)):
    return [((1, 1, plan.row_size), (0, 0))]
  dims = [d for d in plan.ast.shape if d != 1]
  # rows at a stride that is a number (a dynamic kernel's outer dims may be arguments, its rows' inner ones not)
  strides = {size(dims[k + 1:]) for k in range(len(dims) - 1)} | {plan.out_size}
  options = [(1, 1, plan.row_size)] + [(rows, cols, stride) for rows, cols in TILES
                                       for stride in sorted(x for x in strides if isinstance(x, int))
                                       if stride % (lanes * cols) == 0 and _divides(rows * stride, plan.out_size)
                                       and (rows == 1) == (stride == plan.out_size)]
  # among equal counts: fewer elements moved (a matmul's rows down its left operand share one vector of the
  # right, where rows across the right operand's panels would load a vector each), more rows (fewer loaded columns
  # stay live), then the nearest rows, whose loads share cache lines and pages (a convolution's neighbouring pixels
  # rather than its images)
  costs = list(zip(options, _loads_per_output(plan, lanes, options)))
  return sorted(costs, key=lambda oc: (*oc[1], -oc[0][0], oc[0][2]))


# multiply-adds (outputs times reduced elements) from which a kernel's register tile is measured: 5 ms or more on two
# cores, long enough that a wall-clock time tells tiles apart (a GPT's 1-2 ms kernels, measured alone, ranked their
# tiles at random: the training step ran no faster)
TUNE_WORK = 1 << 28
TUNE_TILES = 8  # the most tiles measured for one kernel: each is a compile (0.1 to 0.7 s with PoCL)


def measured_tiles(plan: Plan) -> list[list[int]]:
  """The register tiles worth measuring for a big kernel, the model's best first: those with its fewest memory
  instructions per output. The model cannot rank them further: the bench's convolution ran 12% faster on a tile of
  2 pixels, one above the other, by 4 vectors of channels than on the model's 4 neighbouring pixels by 2 vectors.
  Empty if there is no choice."""
  choice = vector_choice(plan)
  if choice is None or plan.work < TUNE_WORK: return []
  options = tile_options(plan, *choice)
  return [list(tile) for tile, cost in options if cost[0] == options[0][1][0]][:TUNE_TILES]


def set_tiling(plan: Plan, tile) -> Plan:
  """The plan, rendered from now on with this register tile (one of measured_tiles)."""
  plan.__dict__["_tilings"] = {vector_choice(plan)[0]: tuple(tile)}
  return plan


DOT_TILES = ((2, 4), (4, 2), (2, 2), (1, 4), (4, 1))  # (ra, rb): at most 8 vector accumulators stay in registers


def _dot_tiling(plan: Plan, lanes: int) -> tuple[int, int, int, int]:
  """(outputs, ra, rb, row stride) of the tile of a reduction with lanes along its loop (a dot product per output,
  as `x @ w.T` is): ra rows of rb consecutive outputs; the rows share the loads that depend only on the column and
  the columns those that depend only on the row."""
  stride = plan.row_size
  if not _long_reduction(plan): return 1, 1, 1, stride
  cache = plan.__dict__.setdefault("_dot_tilings", {})
  if lanes not in cache:  # rows at a stride that is a number (see _tile_options)
    options = [(1, 1)] + [(ra, rb) for ra, rb in DOT_TILES
                          if isinstance(stride, int) and stride % rb == 0 and _divides(ra * stride, plan.out_size)]
    ra, rb = min(zip(options, _dot_loads_per_output(plan, lanes, options, stride)), key=lambda oc: oc[1][0])[0]
    cache[lanes] = (ra * rb, ra, rb, stride)
  return cache[lanes]


def _dot_loads_per_output(plan: Plan, lanes: int, tiles, stride: int) -> list[tuple[float, float]]:
  """(memory instructions, elements moved) per output per vector step of the loop, for each (ra, rb) tile: distinct
  loads over the tile's outputs, one for a contiguous run of lanes, one per lane otherwise."""
  def tile(ra: int, rb: int):
    if ra * rb == 1: slot = lambda p, j: p[0]
    else: slot = lambda p, j: (p[0] * ra + j // rb) * stride + p[1] * rb + j % rb
    out_size = plan.at_example(plan.out_size)
    sizes = (out_size,) if ra * rb == 1 else (out_size // (ra * stride), stride // rb)
    return ra * rb, _sample_points(sizes + (plan.at_example(plan.red_size) // lanes,)), \
        lambda p, j, u: (slot(p, j), p[-1] * lanes + u)
  counts = _count_loads(plan, lanes, [tile(ra, rb) for ra, rb in tiles])
  return [(count / (ra * rb), elements / (ra * rb)) for (ra, rb), (count, elements) in zip(tiles, counts)]


def _loads_per_output(plan: Plan, lanes: int, tiles) -> list[tuple[float, float]]:
  """(memory instructions, elements moved) per output per reduce step, for each (rows, cols, stride) tile of rows x
  cols vectors (lanes along the outputs)."""
  def tile(rows: int, cols: int, stride: int):
    out_size = plan.at_example(plan.out_size)
    if rows * cols == 1: at, sizes = (lambda p, j, u: (p[0] * lanes + u, p[-1])), (out_size // lanes,)
    else:
      at = lambda p, j, u: ((p[0] * rows + j // cols) * stride + (p[1] * cols + j % cols) * lanes + u, p[-1])
      sizes = (out_size // (rows * stride), stride // (lanes * cols))
    return rows * cols, _sample_points(sizes + (max(plan.at_example(plan.red_size), 1),)), at
  counts = _count_loads(plan, lanes, [tile(*t) for t in tiles])
  return [(count / (rows * cols * lanes), elements / (rows * cols * lanes))
          for (rows, cols, _), (count, elements) in zip(tiles, counts)]


@functools.lru_cache(maxsize=4096)
def _sample_points(sizes) -> tuple[tuple[int, ...], ...]:
  """A few points of a grid of the given sizes (both corners and some between), where a cost estimate evaluates
  index math by number: much cheaper than rewriting it symbolically for every choice. Kept per sizes: every tile of
  every lane count asks, and a seeded generator costs more to make than the points."""
  rng = random.Random(0)
  return (tuple(0 for _ in sizes), tuple(s - 1 for s in sizes)) + tuple(tuple(rng.randrange(s) for s in sizes) for _ in range(3))


def _count_loads(plan: Plan, lanes: int, tiles) -> list[tuple[int, int]]:
  """(memory instructions, elements moved) of the loop for each tile (rows, points, at) of `rows` rows of `lanes`
  lanes, `at(point, row, lane)` giving (gidx, ridx): a load's lane kind comes from row 0 (one instruction if its mask
  is uniform and its index uniform or contiguous, else one per lane), and rows whose index and mask agree at every
  point share one load."""
  # a kernel's index arguments (offsets, bounds, strides, sizes) as the AST that first built it had them (its
  # scalars at 1): an estimate, the code itself holds for every value
  arguments = {**{name: 1 for name, _ in plan.params}, **plan.example}
  # every tile's spots (each point's lanes of row 0, then its rows at lane 0) as one pair of NumPy arrays: each loop
  # load's index and mask are evaluated once for them all, instead of once a point, lane, row and tile (a GPT's first
  # step spent seconds on it)
  spots, spans = [], []
  for rows, points, at in tiles:
    spans.append((len(spots), len(points) * lanes, len(points) * rows))
    spots += [at(p, 0, u) for p in points for u in range(lanes)] + [at(p, j, 0) for p in points for j in range(rows)]
  gidx, ridx = np.array(spots).T
  env = {**arguments, "gidx": gidx, "ridx": ridx}
  loads = [i.arg for i in plan.instrs if i.op == "load" and i.region == "loop"]
  values = np.empty((len(loads), 2, len(spots)), np.int64)  # load, (index, mask), spot
  for k, (_, idx, valid) in enumerate(loads): values[k, 0], values[k, 1] = idx.evaluate(env), valid.evaluate(env)
  out = []
  for (rows, _, _), (start, n_lanes, n_rows) in zip(tiles, spans):
    by_lane = values[:, :, start:start + n_lanes].reshape(len(loads), 2, n_lanes // lanes, lanes)  # point, lane
    uniform = (by_lane == by_lane[..., :1]).all(axis=(2, 3))  # each load's index's and mask's
    contiguous = (by_lane[:, 0] - by_lane[:, 0, :, :1] == np.arange(lanes)).all(axis=(1, 2))
    by_row = values[:, :, start + n_lanes:start + n_lanes + n_rows].reshape(len(loads), 2, n_rows // rows, rows)
    total, elements = 0, 0
    for (uniform_index, uniform_mask), contiguous_index, load_rows in zip(uniform.tolist(), contiguous.tolist(),
                                                                       by_row.transpose(0, 3, 2, 1)):  # row, point
      distinct = len({r.tobytes() for r in load_rows})
      total += (1 if uniform_mask and (uniform_index or contiguous_index) else lanes) * distinct
      elements += (1 if uniform_index and uniform_mask else lanes) * distinct
    out.append((total, elements))
  return out


BATCH_KERNELS = 64  # the most kernels built as one program (see Device._build)
# schedules an AST runs on a shared kernel (a family's, see codegen/dynamic.py, or scalar code sized by arguments)
# before it gets a kernel of its own: a sequence length or batch size that keeps coming back gets kernels as fast as
# the first one's (a family's kernel ran a later model's train step at half speed when it was kept for good), and
# one seen for a few steps builds nothing
SHARED_RUNS = 4
SCRATCH_BYTES = 256 << 20  # the most memory compile_for_launches takes to run a kernel on
MIN_SHARE = 4  # the fewest compiles worth a build worker's share
# PoCL's machine code for a kernel, a build worker's start to its first kernel, and what a process's first build costs
# more than the next (see _compile_shares)
KERNEL_SECONDS, WORKER_START, FIRST_BUILD = 0.07, 0.8, 0.3
EARLY_START = 2 * MIN_SHARE  # new kernels, none of them on disk, that start the build workers (see Device._bind)


class Program:
  """A kernel's source and what its launches need; `kernel` is None until flush() builds it. `source_key` is the
  disk-cache key its source is filed under once it builds; `built` the kernel AST it is the source of."""
  __slots__ = ("name", "out_size", "gsize", "src", "plan", "source_key", "built", "kernel", "most")

  def __init__(self, name, out_size, gsize, src, plan, source_key, built):
    self.name, self.out_size, self.gsize, self.src, self.plan, self.source_key = name, out_size, gsize, src, plan, source_key
    self.built, self.kernel, self.most = built, None, None

  def at(self, params: list, values: list) -> tuple[int, int, list]:
    """(outputs, work-items, launch arguments) with these values of its parameters (a dynamic kernel's)."""
    if not params: return self.out_size, self.gsize, values
    env = {n: v for (n, _), v in zip(params, values)}
    return value(self.out_size, env), value(self.gsize, env), param_values(self.plan, values)

  def warm_run(self, params: list, values: list, buffers) -> list | None:
    """What compile_for_launches runs of it for a launch with these values on these buffers: [work-items, the bytes
    of each buffer, [NumPy type, value] of each scalar argument]; None for a launch with no outputs."""
    out_size, gsize, args = self.at(params, values)
    if not out_size: return None
    return [gsize, [b.nbytes for b in buffers], [[COMPUTE_NP[d.name].__name__, v] for (_, d), v in zip(params, args)]]


class ReplayLaunch(NamedTuple):
  """One launch of a Replayer: its program, the buffers as recorded, the [(place, id of a recorded buffer)] a replay
  swaps, and either its parameters and the slots of the moving numbers they take, or fixed launch sizes and
  arguments."""
  program: Program
  buffers: list
  swaps: list
  params: list | None
  slots: list | None
  sizes: tuple | None
  args: list
  origin: str
  index: int  # its place in the recording: where its moving numbers are
  ast: object  # its kernel AST as recorded, for a profile (see lazygrad.profiler)


class Replayer:
  """A jit recording's launches on one device, each with a kernel object of its own whose arguments stay set from one
  replay to the next: a replay sets only the buffers it swaps (new outputs, the updated tensors' state) and the numbers
  that move, then enqueues. Through exec, a launch looked its kernel up, bound every argument and took the lock on
  its own, which was most of a decoding step's time."""

  def __init__(self, device: Device, launches: list):
    self.device, self.launches = device, launches
    self.moving = [launch.index for launch in launches if launch.params is not None]
    self.kernels = []
    for launch in launches:
      shared = launch.program.kernel
      kernel = device.cl.Kernel(shared.get_info(device.cl.kernel_info.PROGRAM), shared.function_name)
      plan = launch.program.plan
      if plan is not None and plan.params:
        kernel.set_scalar_arg_dtypes([None] * len(plan.bufs) + [COMPUTE_NP[d.name] for _, d in plan.params])
      if launch.params is None: kernel.set_args(*[b.handle for b in launch.buffers], *launch.args)
      self.kernels.append(kernel)

  def run(self, mapping: dict, numbers: list | None) -> bool:
    """Launch them all, with the buffers of `mapping` (id of a recorded buffer -> the one this call uses) in their
    places; False, having launched nothing, where a buffer is too large for 32-bit index math (see _bound_entry) or
    where `numbers` are not those the Replayer was made for."""
    if any(b.size >= INT_MAX for b in mapping.values()): return False
    if numbers is not None and any(numbers[i] is None for i in self.moving): return False  # the base's own numbers
    dev, cl = self.device, self.device.cl
    dev.flush()  # launches held back before these go first
    profile = devices.profiling
    if profile is not None: dev.profile_queue(True)
    enqueue, queue, n = cl.enqueue_nd_range_kernel, dev.queue, 0
    with dev.lock:
      try:
        for n, (launch, kernel) in enumerate(zip(self.launches, self.kernels)):
          program, buffers, swaps, params, slots, sizes, _, _, index, ast = launch
          if params is not None:  # numbers that move: every argument is set again
            out_size, gsize, args = program.at(params, [numbers[index][1][k] for k in slots])
            if not out_size: continue
            handles = [b.handle for b in buffers]
            for k, i in swaps: handles[k] = mapping.get(i, buffers[k]).handle
            kernel.set_args(*handles, *args)
            sizes = dev.launch_sizes(gsize, program.most, True)
          else:
            for k, i in swaps: kernel.set_arg(k, mapping.get(i, buffers[k]).handle)
          event = enqueue(queue, kernel, *sizes)
          if profile is not None:
            profile.launched(dev, ast, program.name, [mapping.get(id(b), b) for b in buffers], event)
          dev.unmarked += 1
          if dev.unmarked >= MARK_EVERY: dev._sent(event, 0)
      except cl.Error as e:
        launch = self.launches[n]
        raise KernelError(f"OpenCL failed to launch kernel {launch.program.name}"
                          f"{' (from ' + launch.origin + ')' if launch.origin else ''}: {e}\n--- source ---\n"
                          f"{launch.program.src}") from None
    return True


class Unbuilt(NamedTuple):
  """A launch's program and parameter values, waiting for the program to be built (see Device._bind)."""
  program: Program
  params: list
  values: list
  epoch: int | None


def batch_source(sources: list) -> tuple[str, list[str]]:
  """One program's text for [source, kernel name] pairs, and each kernel's name in it: kernels are renamed apart (two
  kernels of one shape share a name), and the lines before each kernel, which render keeps to one declaration a line
  (vector typedefs, pragmas, small helpers), are declared once."""
  if len(sources) == 1: return sources[0][0], [sources[0][1]]
  head, kernels, names = {}, [], []
  for n, (src, name) in enumerate(sources):
    at = src.index(f"__kernel void {name}(")
    for line in src[:at].splitlines(): head.setdefault(line, None)
    names.append(f"{name}__b{n}")
    kernels.append(f"__kernel void {names[-1]}(" + src[at + len(f"__kernel void {name}("):])
  return "\n".join([*head, *kernels]), names


PAGE = 4096  # bytes: the alignment of a CPU device's host-memory buffers
ASYNC_COPY_BYTES = 4 << 20  # uploads up to this size are copied once more on the host and do not wait for the queue
# how far the host may run ahead of the device (see Device._sent): a loop that never reads a result would otherwise
# queue work without limit, and the queue's memory (the driver's commands, uploads' private copies) with it
RUNAHEAD_LAUNCHES = getenv("LAZYGRAD_RUNAHEAD", 1024)
RUNAHEAD_BYTES = 256 << 20  # of uploads' private copies
MARK_EVERY = 32  # launches per event kept to learn how far the device has got


class CLAllocator(Allocator):
  def __init__(self, dev: "Device"):
    super().__init__()
    self.dev = dev

  def _alloc(self, nbytes):
    import pyopencl as cl
    if self.dev.cpu:
      # a CPU device's memory is host memory: PoCL's own allocations take two to four times as long to fault in on
      # first touch as a page-aligned NumPy block, which the buffer uses in place (the buffer keeps it alive)
      try: raw = np.empty(nbytes + PAGE, np.uint8)
      except MemoryError as e: raise MemoryError(f"OpenCL: out of host memory allocating {nbytes} bytes") from e
      start = -raw.ctypes.data % PAGE
      return cl.Buffer(self.dev.ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR, hostbuf=raw[start:start + nbytes])
    try: return cl.Buffer(self.dev.ctx, cl.mem_flags.READ_WRITE, nbytes)
    except cl.MemoryError as e: raise MemoryError(f"OpenCL: out of device memory allocating {nbytes} bytes") from e

  def _free(self, handle): handle.release()

  def empty_cache(self):
    # a freed buffer may still be in use by kernels in the queue (reuse is ordered after them, a release is not), and
    # a CPU buffer's memory is a NumPy block that releasing lets go: the queue finishes first
    self.dev.synchronize()
    super().empty_cache()

  def copyin(self, handle, host: np.ndarray):
    import pyopencl as cl
    self.dev.flush()  # launches held back for a build come first
    if host.nbytes > ASYNC_COPY_BYTES:
      cl.enqueue_copy(self.dev.queue, handle, np.ascontiguousarray(host), is_blocking=True)
      return
    # a blocking copy waits for every kernel before it in the queue: a training step that uploads a small array
    # (cross-entropy's class ids, a batch) would wait for the previous step's kernels before building the rest of
    # its graph. A private copy of the data goes instead, and the transfer's event keeps it alive until it is done.
    with self.dev.lock:
      event = cl.enqueue_copy(self.dev.queue, handle, np.array(host, order="C", copy=True), is_blocking=False)
      self.dev.unmarked += 1
      self.dev._sent(event, host.nbytes)  # kept until done: dropping an unfinished transfer's event would wait for it

  def copyout(self, host: np.ndarray, handle):
    import pyopencl as cl
    self.dev.flush()
    cl.enqueue_copy(self.dev.queue, host, handle, is_blocking=True)


def _pick_device(index: int):
  """OPENCL:N counts GPUs first, then every other device, across platforms."""
  import pyopencl as cl
  # PoCL keeps the kernels it builds and the machine code it makes for each work-group size in its own disk cache,
  # which is read before a platform is first listed: it goes with ours (LAZYGRAD_CACHE_DIR)
  os.environ.setdefault("POCL_CACHE_DIR", str(cache_dir() / "pocl"))
  try: platforms = cl.get_platforms()
  except cl.Error as e:
    raise RuntimeError("OpenCL: no platform found. `pip install pocl-binary-distribution` gives a CPU device; "
                       "a GPU needs its vendor's OpenCL driver (see OCL_ICD_VENDORS in the README)") from e
  devices = [d for p in platforms for d in p.get_devices()]
  gpus = [d for d in devices if d.type & cl.device_type.GPU]
  ordered = gpus + [d for d in devices if not d.type & cl.device_type.GPU]
  if not ordered: raise RuntimeError("OpenCL: platforms found but no device")
  if index >= len(ordered):
    raise ValueError(f"OPENCL:{index} does not exist; this machine has {len(ordered)} OpenCL device(s): " +
                     ", ".join(f"OPENCL:{n} {d.name.strip()}" for n, d in enumerate(ordered)))
  return ordered[index]


def device_ident(device) -> str:
  """What the on-disk tables key a built program by besides its text: the driver, its version and the device."""
  return f"{device.platform.name}|{device.name}|{device.driver_version}"


# the modules whose code decides a kernel's source: a change to any of them renders every kernel again
CODEGEN_MODULES = ("lazygrad.ops", "lazygrad.dtype", "lazygrad.symbolic", "lazygrad.shape", "lazygrad.codegen.lower",
                   "lazygrad.codegen.fastmath", "lazygrad.backends.opencl")
# read once, as the code is loaded: a process that outlives an edit or an upgrade of these files must not file what
# its older code renders under the newer code's key
CODE_VERSION = code_version(*CODEGEN_MODULES)


WORK_GROUPS_PER_CORE = 32  # on a CPU: enough that a core slowed by a neighbour's load does not hold up the kernel
DYNAMIC_LOCAL = 256  # a dynamic kernel's work-group on a CPU (see cpu_launch_sizes)


def cpu_launch_sizes(work: int, most: int | None, cores: int, max_local: int,
                     dynamic: bool = False) -> tuple[tuple[int], tuple[int]]:
  """(global, local) sizes for `work` work-items on a CPU. PoCL picks the largest work-group that divides the work,
  as few as 7 for a convolution's 25088 items on 2 cores: one core then runs 4 of them while the other waits after
  3. Work-groups of a power of two, at least WORK_GROUPS_PER_CORE per core, balance the cores (the kernels return
  early past the work's end, so the global size may round up); `most` is the kernel's largest work-group. A `dynamic`
  kernel (sizes as arguments) runs at DYNAMIC_LOCAL whatever its work: PoCL compiles a kernel for each work-group
  size it runs at, and one kernel serving a model's parameter updates ran at 3 or 4."""
  limit = min(most or max_local, max_local)  # the kernel's own limit can be below the device's
  wanted = DYNAMIC_LOCAL if dynamic else 1 << max(0, (work // (WORK_GROUPS_PER_CORE * cores)).bit_length() - 1)
  local = min(wanted, 1 << (limit.bit_length() - 1))
  return (-(-work // local) * local,), (local,)


def compile_for_launches(ctx, queue, device, text: str, launches: list):
  """Build a batch's text and run each kernel once, on scratch memory. PoCL compiles a kernel to
  machine code for the work-group size it runs at (about 0.1 s a kernel, one at a time within a process) and files
  it in its disk cache, where a process building the same text finds it: build workers do this for a share of a
  realize's new kernels while the realizing process does its own. `launches`: [kernel name, work-items, the bytes of
  each buffer argument, [NumPy type, value] of each scalar argument] (with a scalar, a dynamic kernel: see
  cpu_launch_sizes)."""
  import pyopencl as cl
  prg = cl.Program(ctx, text).build(options=["-w"])
  scratch, size = None, 0
  for name, work, nbytes, scalars in launches:
    if max(nbytes) > SCRATCH_BYTES: continue  # compiled where it first runs instead
    kernel = cl.Kernel(prg, name)
    most = kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, device)
    sizes = cpu_launch_sizes(work, most, device.max_compute_units, device.max_work_group_size, bool(scalars))
    if max(nbytes) > size:
      size = max(nbytes)
      scratch = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, size)
    # every buffer argument is the same scratch memory, as large as the largest, its bytes set to 1 before each
    # run: integers in it are nonzero (a gather clamps its indices anyway). It runs at the launch's own sizes, as
    # PoCL's machine code is made for a work-group size and for grids below or above 65535 work-items.
    cl.enqueue_fill_buffer(queue, scratch, np.uint8(1), 0, size)
    kernel(queue, *sizes, *[scratch] * len(nbytes), *[np.dtype(t).type(v) for t, v in scalars])
  queue.finish()
  return prg


# what a build worker builds as it starts, while the process that started it lowers the kernels it will be sent: a
# process's first build loads PoCL's compiler and its kernel library (FIRST_BUILD, see _serve_builds)
WARM_UP = ("__kernel void warm_up(__global float* a) { a[0] = 0.0f; }", [["warm_up", 1, [4], []]])


class BuildWorker:
  """A process that runs compile_for_launches for batches it is sent, one at a time (`python -m
  lazygrad.backends.opencl --build-worker N`): PoCL compiles within a process one kernel at a time, so a new model's
  kernels are compiled on every core by several processes. It never imports the user's script, as a multiprocessing
  worker started by spawn would."""

  def __init__(self, index: int):
    import subprocess
    self.proc = subprocess.Popen([sys.executable, "-m", "lazygrad.backends.opencl", "--build-worker", str(index)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    self.started = time.perf_counter()

  def head_start(self) -> float:
    """The seconds it may still take to be ready for a batch (see _serve_builds)."""
    return max(0.0, WORKER_START - (time.perf_counter() - self.started))

  def send(self, text: str, launches: list) -> bool:
    try:
      self.proc.stdin.write(json.dumps([text, launches]) + "\n")
      self.proc.stdin.flush()
      return True
    except OSError: return False

  def done(self, timeout: float) -> bool:
    """Wait for the batch sent last; False if it failed or took over `timeout` seconds (the worker is then stopped),
    and its kernels are compiled where they first run."""
    import select
    if not select.select([self.proc.stdout], [], [], timeout)[0]:
      self.proc.kill()  # it hangs: a new one starts when next needed
      return False
    return self.proc.stdout.readline().strip() == "ok"  # "" if it died

  def alive(self) -> bool: return self.proc.poll() is None


def _serve_builds(index: int):
  import pyopencl as cl
  import signal
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the terminal's whole process group: the user's
  # process decides (an interrupted realize stops its workers, see _compile_shares); one left alone ends at EOF
  device = _pick_device(index)
  ctx = cl.Context([device])
  queue = cl.CommandQueue(ctx)
  compile_for_launches(ctx, queue, device, *WARM_UP)  # before a batch comes
  for line in sys.stdin:
    try:
      compile_for_launches(ctx, queue, device, *json.loads(line))
      print("ok", flush=True)
    except Exception as e:  # the asking process compiles these kernels itself
      print(f"error {type(e).__name__}: {e}".replace("\n", " "), flush=True)


class BinaryMaker:
  """A process that files PoCL binaries of batches a process built from source a second time (_serve_binaries, at
  the lowest priority from its start, imports included): PoCL builds a source it has built before from
  its own cache, but preprocesses the source with its 19,000 lines of OpenCL headers first, 60 ms a program; a binary
  loads in 2 to 4 ms. Asking PoCL for a binary compiles every kernel in it for any work-group size (about 0.1 s a
  kernel), so it is done away from the user's process, once per batch, for batches that a second process has
  built. It is sent batch keys (see Device._build_batch) and ends when the asking process closes its pipe."""

  def __init__(self, index: int):
    import subprocess
    # in this session, not a new one: Linux shares the CPU fairly between sessions ("autogroups") whatever their
    # processes' priorities, and a helper in its own would take a core from the user's process
    serve = ("import os, sys; os.nice(19)\n"
             "from lazygrad.backends.opencl import _serve_binaries; _serve_binaries(int(sys.argv[1]))")
    self.proc = subprocess.Popen([sys.executable, "-c", serve, str(index)], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.set_blocking(self.proc.stdin.fileno(), False)  # a maker that falls behind never holds up a realize

  def send(self, key: str) -> bool:
    try: return os.write(self.proc.stdin.fileno(), (key + "\n").encode()) > 0
    except OSError: return False  # its pipe is full, or it died: the batch is built from source again next time


CLAIM_SECONDS = 600  # how long a batch's binary is left to the helper asked for it first (see Device._make_binary)


def make_binaries(ctx, device, keys):
  """File a PoCL binary (in the on-disk table "opencl", as Device.compile reads it) for each batch key in `keys`."""
  import pyopencl as cl
  ident = device_ident(device)
  for key in map(str.strip, keys):
    if not cache_dir().is_dir(): return  # a temporary cache, removed: nothing is left to file binaries for
    sources = disk_cache_get("opencl-batch-sources", key)
    if sources is None: continue
    text = batch_source(json.loads(sources))[0]
    try: binary = cl.Program(ctx, text).build(options=["-w"]).binaries[0]
    except cl.Error: continue  # its claim stays: no process asks for it again for CLAIM_SECONDS
    if not cache_dir().is_dir(): return
    disk_cache_put("opencl", ident + "\n" + text, binary)
    disk_cache_drop("opencl-binary-claims", key)


def _serve_binaries(index: int):
  import pyopencl as cl
  import signal
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is for the user's process: this one ends at EOF
  device = _pick_device(index)
  make_binaries(cl.Context([device]), device, sys.stdin)


class Device:
  def __init__(self, index: int):
    import pyopencl as cl
    self.cl = cl
    self.device = _pick_device(index)
    self.ctx = cl.Context([self.device])
    self.queue = cl.CommandQueue(self.ctx)
    self.plain_queue = self.timed_queue = None  # while a profile is active: the queue put aside, the timing one
    self.allocator = CLAllocator(self)
    self.index, self.name = index, f"OPENCL:{index}"
    self.ident = device_ident(self.device)
    self.kernels = KernelCache()  # kernel AST -> (name, cl.Kernel, source, launch sizes, arguments): see _entry
    self.programs = KernelCache()  # kernel AST as built (specialized or dynamic) -> see _prepare
    # families (see codegen/dynamic.py) unless asked not to: their kernels run a step at up to 1.6x the time of
    # kernels of their own, which ASTs that keep coming back get (see SHARED_RUNS)
    self.specializer = Specializer(families=getenv("LAZYGRAD_FAMILIES", 1) != 0)
    self.shared_runs = KernelCache()  # AST -> the schedules it has run on a shared kernel in (see exec)
    # ASTs whose own kernel a thread builds (see _promote): AST -> (future, Program, its parameters and values, the
    # program's text and the kernel's name in it)
    self.promoting = KernelCache()
    self.promoter = None  # that thread's executor, made when first needed
    self.background = getenv("LAZYGRAD_BACKGROUND_BUILDS", 1) != 0
    # matmul's right operand as a row-major buffer: its register tiles share a row's load across rows of outputs
    self.row_major_matmul_operand = True
    # kernels rendered for a CPU compiler (see render), whose tiles want matmul operands in panels
    self.cpu = bool(self.device.type & cl.device_type.CPU)
    # a row per work-item (see schedule.py's row rule and render_rows) suits a CPU's few cores; a GPU wants its rows
    # spread over many threads, which the three kernels a softmax is made of there give it
    self.row_kernels = self.cpu and getenv("LAZYGRAD_ROW_KERNELS", 1) != 0
    self.matmul_panel = 16 if self.cpu else 0
    self.cores, self.max_local = self.device.max_compute_units, self.device.max_work_group_size
    self.tune = getenv("LAZYGRAD_TUNE", 1) != 0  # measure big kernels' register tiles (see choose_tile)
    self.lock = threading.Lock()
    # work sent and not known to be done, for bounded run-ahead (see _sent): (event, launches up to it, bytes it holds)
    self.inflight: collections.deque = collections.deque()
    self.inflight_launches = self.inflight_bytes = self.unmarked = 0  # unmarked: launches sent since the last event kept
    self.sizes_seen = KernelCache()  # (work, largest work-group) -> launch_sizes: a dynamic kernel's, every launch
    self.bound = KernelCache()  # (AST, steps) -> a jit replay's moving launch, see _bound_entry
    # PoCL keeps the programs it builds in its own disk cache (POCL_CACHE_DIR, see _pick_device)
    self.pocl = "Portable Computing Language" in self.device.platform.name
    self.batch_lock = threading.RLock()
    # (entry or Unbuilt, buffers, origin, AST, whether the AST is the launch's own: not a jit's template of other
    # numbers) of launches held back until flush()
    self.waiting: list = []
    self.unbuilt: dict[int, Program] = {}  # id -> a program that waiting launches need built (two may share a source)
    self.batches = KernelCache()  # source -> (the built program holding its kernel, the kernel's name there)
    # started when a schedule first needs enough new kernels (see _bind), while this process lowers the rest
    self.workers: list[BuildWorker] = []
    self.fresh_waiting = 0  # programs waiting to be built whose source no cache holds, until the workers start
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    self.build_workers = getenv("LAZYGRAD_BUILD_WORKERS", cores - 1) if self.cpu else 0
    # PoCL's binaries are made by a helper process (see BinaryMaker), started when first needed; no helper processes
    # at all where LAZYGRAD_BUILD_WORKERS=0 (the test suite's setting)
    self.binary_maker: BinaryMaker | None = None
    self.make_binaries = self.pocl and getenv("LAZYGRAD_BUILD_WORKERS", 1) != 0

  def compile(self, src: str, name: str, kernels: int = 1, again: bool = False):
    """Source -> built program, counted as `kernels` kernels built; from its binary in our disk cache where there is
    one. Other drivers' binaries are filed as they are built. PoCL keeps what it builds in its own disk cache (see
    _pick_device), but building a source again still costs 60 ms, and making its binary compiles every kernel for
    any work-group size (0.1 s a kernel): a batch built `again` (a second process builds its text) has its binary
    made by a helper process (see BinaryMaker)."""
    cl = self.cl
    key = self.ident + "\n" + src
    binary = disk_cache_get("opencl", key)
    if binary is not None:
      try: return cl.Program(self.ctx, [self.device], [binary]).build()
      except cl.Error: pass  # a stale or foreign binary: build from source
    start = time.perf_counter()
    try:
      prg = cl.Program(self.ctx, src).build(options=["-w"])  # warnings would reach the user's terminal
    except cl.Error as e:
      raise KernelError(f"OpenCL failed to compile kernel {name}:\n{e}\n--- source ---\n{src}") from None
    compile_progress.compiled(time.perf_counter() - start, kernels)
    if not self.pocl: disk_cache_put("opencl", key, prg.binaries[0])
    elif again and self.make_binaries: self._make_binary(self.batch_key(src))
    return prg

  def batch_key(self, text: str) -> str:
    """The name a batch's text is filed under (its sources, a claim on its binary): a digest of the text."""
    return hashlib.sha256((self.ident + "\n" + text).encode()).hexdigest()

  def _make_binary(self, batch_key: str):
    """Ask the helper process to file the binary of the batch filed under `batch_key` (see _build_batch), unless
    another process's helper was asked first: processes that build the batch from source again before its binary is
    filed (a batch of 40 kernels takes a helper seconds) leave it to that one."""
    if not disk_cache_claim("opencl-binary-claims", batch_key, CLAIM_SECONDS): return
    if self.binary_maker is None or self.binary_maker.proc.poll() is not None:
      try: self.binary_maker = BinaryMaker(self.index)
      except Exception:  # no process can be started here (no sys.executable in an embedded Python, no fork): the
        # batch builds from source next time too, and never a realize fails for it
        self.make_binaries = False
        return
    self.binary_maker.send(batch_key)

  def exec(self, ast, buffers, origin: str = "", numbers=None):
    """Run one kernel AST over device buffers (buffers[0] is the output); `numbers`: a template of ast's structure
    with other numbers, to run instead (see Specializer.resolve). A launch whose kernel is not built yet waits, with
    every launch after it, until flush() builds the waiting kernels together."""
    if numbers is not None:
      entry = self._bound_entry(ast, buffers, numbers) or self._entry(ast, buffers, origin, numbers=numbers)
    else:
      entry = self.kernels.get(ast)
      if type(entry) is Unbuilt: entry = self.kernels[ast] = self._bind(*entry)  # built by now, perhaps
      if entry is None or (type(entry) is not Unbuilt and entry[5] not in (None, devices.epoch)):
        # an AST that runs on a shared kernel (scalar code or a family's, see _promotion_epoch), in a later schedule:
        # it gets a kernel of its own from its SHARED_RUNS-th, built in the background where it can be (see _promote)
        if entry is None: entry = self.kernels[ast] = self._entry(ast, buffers, origin)
        else:
          own = None
          if self._shared_runs(ast) >= SHARED_RUNS:
            own = self._promote(ast, buffers, origin) if self.background else self._entry(ast, buffers, origin, True)
          entry = self.kernels[ast] = own if own is not None else (*entry[:5], devices.epoch, entry[6])
    if type(entry) is not Unbuilt and not self.waiting:  # as almost always: no lock (another thread's waiting
      self._launch(entry, buffers, origin, ast)           # launches need not come before this thread's)
      return
    with self.batch_lock:
      self.waiting.append((entry, buffers, origin, ast, numbers is None))
      # a program per process building (see _compile_shares): a schedule's new kernels in one round, on every core
      if len(self.unbuilt) < BATCH_KERNELS * (1 + self.build_workers): return
    self.flush()

  def _launch(self, entry, buffers, origin: str, ast=None):
    name, kernel, src, sizes, args, *_ = entry
    if sizes is None: return  # no outputs
    profile = devices.profiling
    if profile is not None: self.profile_queue(True)
    with self.lock:
      try:
        event = kernel(self.queue, *sizes, *[b.handle for b in buffers], *args)
      except self.cl.Error as e:
        raise KernelError(f"OpenCL failed to launch kernel {name}{' (from ' + origin + ')' if origin else ''}:"
                          f" {e}\n--- source ---\n{src}") from None
      self.unmarked += 1
      if self.unmarked >= MARK_EVERY: self._sent(event, 0)
    if profile is not None: profile.launched(self, ast, name, buffers, event)

  def profile_queue(self, on: bool):
    """Send work to a queue that times each command (while a lazygrad.profiler.profile is active), or back to the
    plain one. The queue in use finishes first: two in-order queues do not order their commands among themselves."""
    with self.lock:
      if on and self.plain_queue is None:
        self.plain_queue = self.queue
        self.queue.finish()
        if self.timed_queue is None:
          self.timed_queue = self.cl.CommandQueue(self.ctx, properties=self.cl.command_queue_properties.PROFILING_ENABLE)
        self.queue = self.timed_queue
      elif not on and self.plain_queue is not None:
        self.queue.finish()
        self.queue, self.plain_queue = self.plain_queue, None

  def _sent(self, event, nbytes: int):
    """Keep the event of the last launch or upload sent (`nbytes`: the private host copy it holds), and forget those
    the device has done: once more than RUNAHEAD_LAUNCHES launches or RUNAHEAD_BYTES of uploads are in flight, wait for
    the oldest, as CUDA's launch queue makes a host wait. Called with self.lock held."""
    self.inflight.append((event, self.unmarked, nbytes))
    self.inflight_launches += self.unmarked
    self.inflight_bytes += nbytes
    self.unmarked = 0
    done = self.cl.command_execution_status.COMPLETE
    while self.inflight:
      oldest, launches, held = self.inflight[0]
      if self.inflight_launches <= RUNAHEAD_LAUNCHES and self.inflight_bytes <= RUNAHEAD_BYTES:
        if oldest.command_execution_status != done: break
      else:
        self.queue.flush()  # a GPU driver may not have submitted it yet
        oldest.wait()
      self.inflight.popleft()
      self.inflight_launches -= launches
      self.inflight_bytes -= held
    if not self.inflight: self.inflight_launches = self.inflight_bytes = 0  # exact again after a Ctrl-C mid-count

  def flush(self):
    """Build the kernels that waiting launches need, together, then send those launches in their order."""
    with self.batch_lock:
      if not self.waiting: return
      # the list stays non-empty until its launches are sent: a launch whose kernel is built goes straight to the
      # queue only while nothing waits (see exec), and another thread's would otherwise overtake its own waiting ones
      try:
        self._settle()
        unbuilt, self.unbuilt = self.unbuilt, {}
        self._build(list(unbuilt.values()), self.waiting)
        for entry, buffers, origin, ast, _ in self.waiting:
          self._launch(self._bind(*entry) if type(entry) is Unbuilt else entry, buffers, origin, ast)
      finally: self.waiting = []  # sent, or failed to build: none is sent later

  def _settle(self):
    """Before waiting launches' kernels are built: a launch whose structure's dynamic kernel now serves it better
    (see Specializer.settled) runs on that one, and the kernel it was resolved to is not built unless another launch
    needs it. A model's first step built the panel copy of each of its products' operands as the first one's kernel,
    then one dynamic kernel for each later size that made more numbers arguments, only the last of which runs later."""
    for n, (entry, buffers, origin, ast, own) in enumerate(self.waiting):
      if type(entry) is not Unbuilt or not own: continue
      better = self.specializer.settled(ast, entry.program.built, [b.size for b in buffers])
      if better is None: continue
      built, params, values = better
      program = self._program(built, buffers, origin, params, values)
      entry = self.kernels[ast] = self._bind(program, params, values, self._promotion_epoch(ast, program))
      self.waiting[n] = (entry, buffers, origin, ast, own)
    self.unbuilt = {id(e.program): e.program for e, *_ in self.waiting if type(e) is Unbuilt}

  def _build(self, programs: list, waiting: list):
    """Build programs' sources in batches: PoCL's front end takes 0.2 to 0.3 s a program however small it is, and
    about as long for a batch of dozens of kernels. A source is built again in the batch it was first built in,
    which the driver's cache (or ours) holds; the rest form new batches, which the disk cache remembers, and which
    build workers compile in parallel (see _compile_shares)."""
    remembered: dict[str, list] = {}
    fresh = []
    for p in {p.src: p for p in programs}.values():  # ASTs that render alike build once
      if p.src in self.batches: continue
      known = disk_cache_get("opencl-batch", self.ident + "\n" + p.src)
      if known is not None: remembered.setdefault(known.decode(), []).append(p)
      else: fresh.append(p)
    for key in remembered:
      sources = disk_cache_get("opencl-batch-sources", key)
      if sources is None: fresh += remembered[key]  # a half-written entry: its programs build afresh
      else: self._build_batch(json.loads(sources))
    shares = self._compile_shares(fresh, waiting) if self.pocl and self.build_workers else []
    counted = bool(shares)  # _compile_shares counted them as built
    if not shares: shares = [fresh[n:n + BATCH_KERNELS] for n in range(0, len(fresh), BATCH_KERNELS)]
    for share in shares: self._build_batch([[p.src, p.name] for p in share], remember=True, counted=counted)
    for p in programs:
      prg, name = self.batches[p.src]
      p.kernel, p.most = self._kernel(prg, name, p.plan)
      self._file_source(p)

  @staticmethod
  def _file_source(p: Program):
    """File a built program's source on disk under its source key (see _prepare), once."""
    if p.source_key is not None:
      disk_cache_put("opencl-source", p.source_key, json.dumps([p.name, p.out_size, p.gsize, p.src]).encode())
      p.source_key = None

  def _start_workers(self, program):
    """Start the build workers once EARLY_START programs whose sources no cache holds wait to be built: they start
    (WORKER_START) while this process lowers the schedule's other kernels. A process that builds none starts none."""
    if program.src in self.batches or disk_cache_get("opencl-batch", self.ident + "\n" + program.src) is not None: return
    self.fresh_waiting += 1
    if self.fresh_waiting < EARLY_START: return
    self.workers = [w for w in self.workers if w.alive()]
    try:
      while len(self.workers) < self.build_workers: self.workers.append(BuildWorker(self.index))
    except OSError: self.build_workers = len(self.workers)  # no process can be started here: build in this one

  def _compile_shares(self, fresh: list, waiting: list) -> list[list]:
    """Split new programs into shares, one for this process and one for each build worker, and compile each share
    for the launches waiting on it (see compile_for_launches); returns the shares, [] if too few to pay for it. A
    worker takes WORKER_START seconds to start, once per process, so a share here is larger while one is starting.
    Shares are balanced by compiles, not programs: PoCL compiles a kernel once per work-group size it runs at, and a
    dynamic kernel that several sizes share (a model's parameter updates) runs at several."""
    self.workers = [w for w in self.workers if w.alive()]
    n, workers = len(fresh), self.build_workers
    # each share's head start, in compiles: this process's first build (see WARM_UP) if it has built none, a worker's
    # what it has left of its start, or all of it for one not started yet
    ahead = [FIRST_BUILD if not self.batches else 0.0] + [w.head_start() for w in self.workers]
    ahead = [seconds / KERNEL_SECONDS for seconds in ahead + [WORKER_START] * (workers - len(self.workers))]
    runs = self._warm_launches(waiting)

    def compiled_for(gsize, scalars):  # what PoCL compiles a kernel for: its work-group size, and a grid above 65535
      (whole,), (local,) = cpu_launch_sizes(gsize, None, self.cores, self.max_local, bool(scalars))
      return local, whole > 65535
    compiles = {id(p): max(1, len({compiled_for(g, run[2]) for g, run in runs.get(id(p), {}).items()})) for p in fresh}
    shares, loads = [[] for _ in range(workers + 1)], list(ahead)
    for p in sorted(fresh, key=lambda p: -compiles[id(p)]):  # the heaviest first, each to the lightest share
      k = min(range(workers + 1), key=loads.__getitem__)
      shares[k].append(p)
      loads[k] += compiles[id(p)]
    if sum(loads[1:]) - sum(ahead[1:]) < MIN_SHARE: return []  # each share's build costs 0.2 s before its first kernel
    shares = [shares[0]] + [share for share in shares[1:] if share]
    while len(self.workers) < len(shares) - 1: self.workers.append(BuildWorker(self.index))
    start = time.perf_counter()
    texts = [batch_source([[p.src, p.name] for p in share]) for share in shares]
    launches = [[[name, *run] for p, name in zip(share, names) for run in runs.get(id(p), {}).values()]
                for share, (_, names) in zip(shares, texts)]
    sent = [w.send(text, share_runs) for w, (text, _), share_runs in zip(self.workers, texts[1:], launches[1:])]
    try:
      try:
        with self.lock: compile_for_launches(self.ctx, self.queue, self.device, texts[0][0], launches[0])
      except self.cl.Error: pass  # built again by _build_batch, which names the kernel that fails
      for w, ok, share_runs in zip(self.workers, sent, launches[1:]):
        if not (ok and w.done(WORKER_START + 2 * KERNEL_SECONDS * len(share_runs) + 30)) and DEBUG >= 1:
          print("lazygrad: a build worker failed; its kernels compile where they first run")
    except BaseException:  # Ctrl-C: a worker's answer must not be read as a later batch's
      for w in self.workers: w.proc.kill()
      raise
    compile_progress.compiled(time.perf_counter() - start, n)
    return shares

  def _warm_launches(self, waiting: list) -> dict[int, dict]:
    """What compile_for_launches runs of each program that waiting launches need built (by id): one run per number
    of work-items it waits to run at (a dynamic kernel's work-group size follows its arguments), with that launch's
    work-items, buffer sizes and scalars."""
    runs: dict[int, dict] = {}
    for entry, buffers, *_ in waiting:
      if type(entry) is not Unbuilt: continue
      program, params, values, _ = entry
      run = program.warm_run(params, values, buffers)
      if run is not None: runs.setdefault(id(program), {}).setdefault(run[0], run)
    return runs

  def _build_batch(self, sources: list, remember: bool = False, counted: bool = False):
    """Build [source, kernel name] pairs as one program (one alone keeps its name), filing each source's kernel
    under self.batches; `remember`: file the batch on disk, for the next process to build the same text (a batch
    built before is in the driver's cache, or ours: it is loaded, not counted as kernels built, nor one `counted`)."""
    text, names = batch_source(sources)
    try: prg = self.compile(text, names[0] if len(names) == 1 else f"batch of {len(names)}",
                            len(names) if remember and not counted else 0, not remember)
    except KernelError:
      if len(sources) == 1: raise
      for src, name in sources: self.compile(src, name)  # the kernel that fails raises with its own source
      raise
    for (src, _), name in zip(sources, names): self.batches[src] = (prg, name)
    if remember: self._file_batch(text, sources)

  def _file_batch(self, text: str, sources: list):
    """File a built batch on disk: its [source, kernel name] pairs under its text's digest, and that digest under
    each source, so the next process builds the same text (which the driver's cache, or ours, holds)."""
    key = self.batch_key(text)
    disk_cache_put("opencl-batch-sources", key, json.dumps(sources).encode())
    for src, _ in sources: disk_cache_put("opencl-batch", self.ident + "\n" + src, key.encode())

  def _bound_entry(self, ast, buffers, numbers):
    """A jit replay's launch whose numbers move along a line (see Specializer.bound): its program, parameters and the
    slots its arguments come from are kept per AST and steps, so each call only reads its arguments."""
    hit = self.bound.get((ast, numbers[3]))
    if hit is None: return None
    program, params, slots = hit
    if max(b.size for b in buffers) >= INT_MAX: return None  # 64-bit index math: resolved (and specialized) anew
    return self._bind(program, params, [numbers[1][k] for k in slots])

  def _entry(self, ast, buffers, origin: str, again: bool = False, numbers=None):
    """(name, kernel, source, launch sizes or None, arguments, the epoch it was made in if it runs a dynamic kernel,
    else None) for an AST, or Unbuilt until its kernel is built: the kernel built for it, or its structure's dynamic
    kernel (see codegen/dynamic.py) with this AST's numbers as arguments; an AST launched `again` gets one for its sizes
    (see Specializer.resolve's `promoted`)."""
    buf_sizes = [b.size for b in buffers]
    built, params, values = self.specializer.resolve(ast, buf_sizes, devices.epoch, numbers, promoted=again)
    try: program = self._program(built, buffers, origin, params, values)
    except IndexTooLarge:  # its structure is specialized from now on
      built, params, values = self.specializer.refuse(ast, built, numbers)
      program = self._program(built, buffers, origin, params)
    if params and numbers is None and self.specializer.is_family(built):
      # a family's kernel (see codegen/dynamic.py) runs ast only as the same vector code as ast's own kernel would be
      plan, scalar = program.plan, _scalar_code(program.plan)
      own = lambda: lower(ast, [b.dtype for b in buffers], buf_sizes, input_order=True)  # ast's own kernel's plan
      differs = lambda: _code_shape(plan) != _code_shape(own())
      # a row kernel's scalar code (a gather along its rows) is its own kernel's too: it leaves only where they differ
      if (differs() if plan.rows else scalar or differs()) \
         and self.specializer.leave_family(ast, built, numbers, devices.epoch, scalar):
        if scalar: self.programs.pop(built, None)  # the family is dropped: never launched
        built, params, values = self.specializer.resolve(ast, buf_sizes, devices.epoch, numbers, promoted=again)
        program = self._program(built, buffers, origin, params, values)
    if numbers is not None and len(numbers) == 4 and params:
      slots = self.specializer.bound(numbers, built)
      if slots is not None: self.bound[(ast, numbers[3])] = (program, params, slots)
    return self._bind(program, params, values, self._promotion_epoch(ast, program) if numbers is None else None)

  def _promotion_epoch(self, ast, program) -> int | None:
    """The epoch of an AST's first schedule on `program`, where the AST gets a kernel of its own once it keeps coming
    back (SHARED_RUNS schedules, see exec and Specializer.resolve's `promoted`): program is scalar code sized by
    arguments and ast is big enough to pay for a build, or program is a family's; else None."""
    plan = program.plan
    if plan is not None and plan.sized_by_arguments and _scalar_code(plan) and promotable(ast): return devices.epoch
    if self.specializer.is_family(program.built): return devices.epoch
    return None

  def _promote(self, ast, buffers, origin: str):
    """The entry of ast's own kernel (see exec) once the promotion thread has built it, else None: its build is
    started now, and ast runs on its shared kernel meanwhile. A step then waits for no build: a sequence length back for a
    4th step built the bench LSTM's 20 kernels before running it (1 to 2 s on 2 cores)."""
    pending = self.promoting.get(ast)
    if pending is None:
      built, params, values = self.specializer.resolve(ast, [b.size for b in buffers], devices.epoch, promoted=True)
      program = self._program(built, buffers, origin, params, values, tune=False)  # the model's tile: no compiles here
      if program.kernel is not None: return self._bind(program, params, values)
      run = program.warm_run(params, values, buffers)
      text, names = batch_source([[program.src, program.name]])
      if self.promoter is None:
        import concurrent.futures
        self.promoter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lazygrad-promote")
        # at exit: the build under way finishes (cut off, it could take the interpreter down), the queued ones go
        atexit.register(functools.partial(self.promoter.shutdown, wait=True, cancel_futures=True))
      future = self.promoter.submit(self._build_alone, text, [[names[0], *run]] if run is not None else [])
      self.promoting[ast] = (future, program, params, values, text, names[0])
      return None
    future, program, params, values, text, name = pending
    if not future.done(): return None
    del self.promoting[ast]
    try: prg = future.result()
    except Exception: return self._entry(ast, buffers, origin, True)  # built here, where a failure names the kernel
    if program.kernel is None:
      program.kernel, program.most = self._kernel(prg, name, program.plan)
      self.batches[program.src] = (prg, name)
      self._file_batch(text, [[program.src, program.name]])
      self._file_source(program)
      compile_progress.compiled(0.0, 1)  # counted as built; no step waited for it (see CompileProgress)
    return self._bind(program, params, values)

  def _build_alone(self, text: str, launches: list):
    """A program built on a queue of its own, in the promotion thread (see _promote); on PoCL also run once at its
    launch's sizes, for which it makes the machine code (see compile_for_launches)."""
    return compile_for_launches(self.ctx, self.cl.CommandQueue(self.ctx), self.device, text, launches if self.pocl else [])

  @property
  def promotions_pending(self) -> bool:
    """Whether kernels of their own are being built in the background for ASTs that run on shared ones (see _promote)."""
    return bool(self.promoting)

  def _shared_runs(self, ast) -> int:
    """Count one more schedule AST runs on a shared kernel in (see exec): the count, the first schedule's included."""
    runs = self.shared_runs[ast] = self.shared_runs.get(ast, 1) + 1
    return runs

  def _bind(self, program, params, values, epoch=None):
    """The entry (see _entry) that launches a program with these values of its parameters; Unbuilt until the program
    is built."""
    if program.kernel is None:
      with self.batch_lock:
        if program.kernel is None:
          if id(program) not in self.unbuilt and len(self.workers) < self.build_workers and self.pocl:
            self._start_workers(program)
          self.unbuilt[id(program)] = program
          return Unbuilt(program, params, values, epoch)
    out_size, gsize, args = program.at(params, values)
    return program.name, program.kernel, program.src, \
        self.launch_sizes(gsize, program.most, bool(params)) if out_size else None, \
        args, epoch, program

  def replayer(self, plan: list, numbers: list | None) -> Replayer | None:
    """A jit recording's launches (see jit._Recording.plan; `numbers`: each launch's moving numbers, or None) as one
    Replayer, once each launch's kernel is built and resolved for good; None before (a launch waits to be built, or
    runs a dynamic kernel that a later schedule may still specialize)."""
    launches = []
    for n, (_, ast, buffers, swaps, origin) in enumerate(plan):
      moving = numbers[n] if numbers is not None else None
      if moving is not None:  # as _bound_entry: the program and the slots its arguments come from
        hit = self.bound.get((ast, moving[3])) if len(moving) == 4 else None
        if hit is None or hit[0].kernel is None or max(b.size for b in buffers) >= INT_MAX: return None
        program, params, slots = hit
        launches.append(ReplayLaunch(program, buffers, swaps, params, slots, None, [], origin, n, ast))
        continue
      entry = self.kernels.get(ast)
      if entry is None or type(entry) is Unbuilt or entry[5] is not None: return None
      if entry[3] is not None:
        launches.append(ReplayLaunch(entry[6], buffers, swaps, None, None, entry[3], entry[4], origin, n, ast))
    return Replayer(self, launches)

  def _program(self, built, buffers, origin: str, params, values=(), tune: bool = True) -> "Program":
    """The Program of `built`, a kernel AST as resolve chose it: the one prepared before, or one prepared now (`tune`:
    big kernels' register tiles measured, see _prepare)."""
    program = self.programs.get(built)
    if program is None: program = self.programs[built] = self._prepare(built, buffers, origin, params, values, tune)
    return program

  def _prepare(self, ast, buffers, origin: str, params, values=(), tune: bool = True) -> "Program":
    """The Program for an AST, its kernel built later (see flush); its outputs and work-items are Nodes over the
    parameters of a dynamic one. A specialized kernel's source comes from the disk cache when this version of the
    code generator has written it before: lowering and rendering a big kernel takes longer than loading its binary,
    and a model's first step would pay it for every kernel."""
    tune = self.tune and tune  # measuring tiles compiles each one here: not for a build in the background
    key = json.dumps([CODE_VERSION, self.ident, kernel_text(ast), [b.dtype.name for b in buffers],
                      [b.size for b in buffers], tune])  # a measured tile or the model's: not one for the other
    cached = disk_cache_get("opencl-source", key) if not params else None
    plan = None
    if cached is not None: name, out_size, gsize, src = json.loads(cached)
    else:
      plan = lower(ast, [b.dtype for b in buffers], [b.size for b in buffers], params, values, input_order=True)
      tiles = measured_tiles(plan) if tune and not params else []
      if len(tiles) > 1: set_tiling(plan, self.choose_tile(plan, tiles, buffers, key))
      src, name = render(plan, self.cpu)
      out_size, gsize = plan.out_size, global_size(plan)
    if DEBUG >= 4: print(f"--- {name}{' for ' + origin if origin else ''} ---\n{src}")
    return Program(name, out_size, gsize, src, plan, key if cached is None and not params else None, ast)

  def _kernel(self, prg, name: str, plan: Plan | None = None):
    """A built program's kernel and its largest work-group; a dynamic plan's kernel is told its arguments' types."""
    kernel = self.cl.Kernel(prg, name)
    if plan is not None and plan.params:
      kernel.set_scalar_arg_dtypes([None] * len(plan.bufs) + [COMPUTE_NP[d.name] for _, d in plan.params])
    return kernel, kernel.get_work_group_info(self.cl.kernel_work_group_info.WORK_GROUP_SIZE, self.device)

  def choose_tile(self, plan: Plan, tiles: list, buffers, key: str) -> list[int]:
    """The fastest of a big kernel's register tiles, each compiled and timed on this call's buffers (it only writes
    buffers[0], which its real run then writes again); the choice is kept on disk per device and kernel."""
    kernels = {}

    def measure(tile) -> float:
      if str(tile) not in kernels:
        src, name = render(set_tiling(plan, tile), self.cpu)
        kernel, most = self._kernel(self.compile(src, name), name)
        kernels[str(tile)] = kernel, self.launch_sizes(global_size(plan), most)
      kernel, sizes = kernels[str(tile)]
      times = []
      with self.lock:
        for _ in range(3):  # the first run of a new kernel pays PoCL's code generation for its work-group size
          start = time.perf_counter()
          kernel(self.queue, *sizes, *[b.handle for b in buffers])
          self.queue.finish()
          times.append(time.perf_counter() - start)
      return min(times[1:])
    return tuned("opencl-tune", key, tiles, measure, plan.name)

  def launch_sizes(self, work: int, most: int | None = None, dynamic: bool = False) -> tuple[tuple[int], tuple[int] | None]:
    """(global, local) sizes for `work` work-items (see cpu_launch_sizes); a GPU's driver picks its own work-groups.
    `most` is the kernel's largest work-group."""
    if not self.cpu: return (work,), None
    sizes = self.sizes_seen.get((work, most, dynamic))
    if sizes is None:
      sizes = self.sizes_seen[(work, most, dynamic)] = cpu_launch_sizes(work, most, self.cores, self.max_local, dynamic)
    return sizes

  def synchronize(self):
    self.flush()
    self.queue.finish()
    with self.lock:
      self.inflight.clear()
      self.inflight_launches = self.inflight_bytes = self.unmarked = 0


if __name__ == "__main__" and sys.argv[1:2] == ["--build-worker"]:
  _serve_builds(int(sys.argv[2]))
