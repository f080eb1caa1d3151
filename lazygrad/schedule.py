"""The scheduler: cut a lazy graph into kernels, deciding which nodes get a real buffer.

Rules, in order:
- what the caller asks for, every reduction and every CONTIGUOUS node get a buffer;
- a gather's source gets a buffer (it is read at data-dependent places); the gather itself is inlined like
  elementwise work;
- everything elementwise is inlined into the kernels that read it (recomputed rather than stored), and views of
  inlined nodes become index math, so broadcasting never materializes; except where recomputing costs more than a
  buffer: long work read through an expand, and work that several kernels read which itself reads many buffers;
- a reduction whose only reader is elementwise work, through a view that reads each element at most once and
  everywhere (a reshape, permute, shrink or flip; not an expand or a pad), is not stored: that work runs in the reduction's kernel, after its
  loop ("elementwise after a reduction fuses into it"), up to a stored node, or up to the last node before a
  broadcast or a second reader, which is stored instead of the reduction;
- where the backend writes row kernels (OpenCL): reductions over a row's last axis whose results are read back
  across the row, by elementwise work that ends in one node of the row's shape, are that node's kernel, a row per
  work-item (a softmax, a layer norm, and their gradients: one kernel where there were three, which read the input
  three times and computed exp twice). See _row_kernel.
"""
from __future__ import annotations
import threading
from collections import OrderedDict
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING
from lazygrad import device as devices
from lazygrad.dtype import float32
from lazygrad.helpers import getenv
from lazygrad.ops import KernelOp, kernel_op, BufferOps, ReduceOps, LoadOps, IndexOps, ELEMENTWISE
from lazygrad.shape import ShapeTracker
if TYPE_CHECKING: from lazygrad.lazy import LazyBuffer  # lazy.py imports this module, never the other way


@dataclass
class ScheduleItem:
  ast: KernelOp | None      # None: only allocate (EMPTY)
  out: LazyBuffer           # a base
  inputs: list[LazyBuffer]  # realized bases, in the order of the AST's buffer numbers 1..n
  origin: str = ""


def _graph(outs: list[LazyBuffer]):
  """Unrealized bases reachable from outs in topological order, and each one's readers (reader, through a view)."""
  order, readers, seen = [], {}, set()
  stack = [(b, False) for b in outs]
  while stack:
    node, done = stack.pop()
    if done: order.append(node); continue
    if id(node) in seen: continue
    seen.add(id(node))
    readers.setdefault(node, [])
    stack.append((node, True))
    for s in node.srcs:
      b = s.base
      if b.realized is not None: continue
      readers.setdefault(b, []).append((node, s))
      if id(b) not in seen: stack.append((b, False))
  return order, readers


def _is_elementwise(n: LazyBuffer) -> bool: return isinstance(n.op, ELEMENTWISE)


def schedule(outs: list[LazyBuffer]) -> list[ScheduleItem]:
  """The kernels that compute outs, in an order that runs each after its inputs. Code without @lazygrad.jit builds
  the same graph every step: its schedule is remembered by the graph's shape (see _signature), and a graph of the
  same shape reuses it, skipping the fusion passes and the kernels' ASTs (a third of an eager GPT step's Python)."""
  outs = list({id(o): o for o in outs}.values())
  order, readers = _graph(outs)
  key, at, realized = _signature(order, outs)
  with _schedules_lock:  # threads may schedule at once: another's insert could evict this key between get and move
    plan = _schedules.get(key)
    if plan is not None: _schedules.move_to_end(key)
  if plan is not None:
    items = [ScheduleItem(ast, order[out], [order[i] if i >= 0 else realized[-1 - i] for i in inputs], order[out].origin)
             for out, ast, inputs in plan]
    if CHECK_SCHEDULES: _check_reuse(items, _schedule(outs, order, readers))
    return items
  items = _schedule(outs, order, readers)
  plan = [(at[id(si.out)], si.ast, [at[id(b)] for b in si.inputs]) for si in items]
  with _schedules_lock:
    _schedules[key] = plan
    while len(_schedules) > SCHEDULES: _schedules.popitem(last=False)
  return items


SCHEDULES = 32  # graph shapes whose schedules are remembered (least recently used go)
_schedules: OrderedDict[tuple, list] = OrderedDict()
_schedules_lock = threading.Lock()
CHECK_SCHEDULES = getenv("LAZYGRAD_CHECK_SCHEDULES", 0)  # the test suite checks every reuse against a fresh schedule


def _signature(order: list[LazyBuffer], outs: list[LazyBuffer]) -> tuple[tuple, dict[int, int], list[LazyBuffer]]:
  """The graph's shape, everything the schedule depends on, as a hashable key: per node in order its op, arg, dtype
  and shape, whether it is an output, and per source the node (by position) or realized buffer (by first use) it
  reads, through which view, and which of the node's sources are the same object. Also where each base is (its
  position in order, or -1 - k for the k-th realized buffer read) and the realized buffers read."""
  at: dict[int, int] = {}
  realized: list[LazyBuffer] = []
  out_ids = {id(o) for o in outs}
  key = []
  for i, n in enumerate(order):
    at[id(n)] = i
    srcs = []
    for s in n.srcs:
      b = s.base
      if b.realized is None or id(b) in at: ref = at[id(b)]  # an unrealized source comes earlier in order
      else:
        ref = at[id(b)] = -1 - len(realized)
        realized.append(b)
        srcs.append((b.dtype.name, b.shape))  # a realized buffer's dtype and shape, where it is first read
      srcs.append((ref, None if s is b else s.st.views))
    if len(n.srcs) > 1: srcs.append(tuple(next(j for j, t in enumerate(n.srcs) if t is s) for s in n.srcs))
    key.append((n.op, n.dtype.name, n.shape, None if n.arg is None else (type(n.arg).__name__, repr(n.arg)),
                id(n) in out_ids, tuple(srcs)))
  return tuple(key), at, realized


def _check_reuse(reused: list[ScheduleItem], fresh: list[ScheduleItem]):
  """An internal check: a remembered schedule, reused, is the one scheduling this graph afresh gives."""
  same = len(reused) == len(fresh) and all(a.ast is b.ast and a.out is b.out and len(a.inputs) == len(b.inputs) and
                                           all(x is y for x, y in zip(a.inputs, b.inputs)) for a, b in zip(reused, fresh))
  if not same: raise AssertionError("a remembered schedule differs from a fresh one for the same graph shape")


def _schedule(outs: list[LazyBuffer], order: list[LazyBuffer], readers: dict) -> list[ScheduleItem]:
  stored = {id(o) for o in outs}
  stored |= {id(n) for n in order if isinstance(n.op, ReduceOps) or n.op in (LoadOps.CONTIGUOUS, LoadOps.EMPTY, LoadOps.CAT)}
  # a gather reads its source at data-dependent places: the source must be a real buffer
  stored |= {id(n.srcs[0].base) for n in order if n.op is IndexOps.GATHER and n.srcs[0].base.realized is None}

  # row kernels first: the work inside one (a softmax's exp(x - max), read by the sum and by the division) is then
  # read by one kernel, and the passes below leave it inlined
  in_rows: set[int] = set()  # the reductions and the work inside row kernels (see _row_kernel)
  out_ids = {id(o) for o in outs}
  for r in order:
    if r.op in ReduceOps and id(r) not in out_ids and id(r) not in in_rows and devices.get(r.device).row_kernels:
      found = _row_kernel(r, readers, stored, out_ids)
      if found is None: continue
      sink, inside = found
      for q in inside:
        stored.discard(id(q))
        in_rows.add(id(q))
      stored.add(id(sink))

  # expensive elementwise work read through an expand (each value used many times, as a matmul's operand is) gets a
  # buffer, rather than being recomputed for every use inside a reduction's loop
  _store_expensive_expanded(order, readers, stored, in_rows)
  _store_shared(order, readers, stored, in_rows)

  # a reduction fuses forward into a single elementwise reader chain that ends at a stored elementwise node
  fused_into: dict[int, LazyBuffer] = {}  # id(stored root) -> the reduction inlined into it
  for r in order:
    if r.op not in ReduceOps or id(r) in {id(o) for o in outs} or id(r) in in_rows: continue
    node, ok = r, True
    while True:
      rs = readers.get(node, [])
      if len(rs) != 1: ok = False; break
      reader, via = rs[0]
      # not through a pad: the reduction's loop would run, reading out of bounds, where the pad reads nothing
      if not _is_elementwise(reader) or not (via is node or (_reads_each_once(via) and not _masked(via))): ok = False; break
      if any(s.base is node for s in reader.srcs if s is not via): ok = False; break  # read twice
      node = reader
      if id(node) in stored: break
    if not ok and (node is r or id(node) not in stored):
      sink = _single_sink(node, readers, stored)
      if sink is not None and id(sink) not in fused_into and not _reads_reduce(sink, r, stored):
        stored.discard(id(r))
        stored.add(id(sink))
        fused_into[id(sink)] = r
        continue
    if id(node) in fused_into or _reads_reduce(node, r, stored): continue
    if ok and id(node) in stored:
      stored.discard(id(r))
      fused_into[id(node)] = r
    elif not ok and node is not r and id(node) not in stored:
      # the chain ends where its value is read through a broadcast, or by several readers: that value, not the
      # reduction, is stored, computed once per output after the loop instead of for every element that reads it
      # (log_softmax's log of the row sums, layer norm's 1 / sqrt(var + eps))
      stored.discard(id(r))
      stored.add(id(node))
      fused_into[id(node)] = r

  items = []
  for node in order:
    if id(node) not in stored: continue
    if node.op is LoadOps.EMPTY: items.append(ScheduleItem(None, node, [])); continue
    for piece in range(len(node.srcs)) if node.op is LoadOps.CAT else (None,):
      if piece is not None and node.srcs[piece].size == 0: continue
      inputs: list[LazyBuffer] = []
      ast = merge_dims(_build_ast(node, stored, inputs, piece))
      items.append(ScheduleItem(ast, node, inputs, node.origin))
  return items


EXPENSIVE = 12  # elementwise ops (inlined, up to the nearest buffers) above which expanded reads get a buffer
REUSED = 8      # an expanded read that repeats each element at least this often, into a reduction's loop, gets one too
BROADCAST = 1 << 16  # a small expensive value (under 1024 elements) read this often gets a buffer


def _store_expensive_expanded(order, readers, stored: set, inlined: set):
  """Elementwise work read through an expand is recomputed for every repeat. It gets a buffer when that is costly:
  when it is long, or when the repeats run inside a reduction's loop (a matmul's operand after a bias and a ReLU is
  otherwise recomputed once per output column, and its ops slow the inner loop)."""
  cost: dict[int, int] = {}
  for n in order:  # sources first
    if id(n) in stored or not isinstance(n.op, ELEMENTWISE): cost[id(n)] = 0; continue
    cost[id(n)] = 1 + sum(cost.get(id(s.base), 0) for s in n.srcs if s.base.realized is None)
  feeds: dict[int, bool] = {}
  for n in reversed(order):  # readers first
    feeds[id(n)] = any(r.op in ReduceOps or (id(r) not in stored and _is_elementwise(r) and feeds.get(id(r), False))
                       for r, _ in readers.get(n, []))
  for n in order:
    if id(n) in stored or cost.get(id(n), 0) == 0 or id(n) in inlined: continue  # `inlined`: inside a row kernel
    for reader, via in readers.get(n, []):
      repeats = _repeats(via)
      if n.size < 1024:
        # a small value is cheaper to recompute than to launch a kernel for, unless it is long and recomputed very
        # many times in all: an optimizer's bias corrections (two exponentials and a series) cost more than the rest
        # of each parameter's update, recomputed for every element; a decoding step's GELU of its MLP's 512 hidden
        # values was recomputed for each of the next product's 128 outputs (most of that product's time)
        if cost[id(n)] >= EXPENSIVE and repeats * n.size >= BROADCAST: stored.add(id(n)); break
        continue
      if repeats > 1 and (cost[id(n)] >= EXPENSIVE or (repeats >= REUSED and (reader.op in ReduceOps or feeds[id(reader)]))):
        stored.add(id(n))
        break


SHARED_LOADS = 4  # an elementwise value that several kernels read gets a buffer when it reads this many buffers
SHARED_SIZE = 1024  # ... and has at least this many elements (below, a kernel launch costs more than the reads)
SHARED_SMALL_LOADS = 8  # ... or, smaller, when it reads this many (a sum of many norms, read by every update)


def _inlined(n: LazyBuffer, stored: set) -> bool:
  return id(n) not in stored and (_is_elementwise(n) or n.op is IndexOps.GATHER)


def _store_shared(order, readers, stored: set, inlined: set):
  """Inlined work is recomputed in every kernel that reads it. Where several kernels read a value whose recomputation
  reads many buffers, it gets a buffer of its own: a transformer's residual stream (the embeddings plus every block's
  output so far) was otherwise re-read from all of them, through gathers, by each of the next block's kernels; a
  scalar made of many buffers' values is otherwise recomputed for every element of every kernel that reads it."""
  kernels: dict[int, frozenset] = {}  # id(node) -> the stored nodes whose kernels compute it
  for n in reversed(order):  # readers first
    if not _inlined(n, stored): kernels[id(n)] = frozenset((id(n),)); continue
    into = frozenset().union(*(kernels[id(r)] for r, _ in readers.get(n, [])))
    need = SHARED_LOADS if n.size >= SHARED_SIZE else SHARED_SMALL_LOADS
    if len(into) >= 2 and id(n) not in inlined and _loads(n, stored, need) >= need:  # `inlined`: in a row kernel
      stored.add(id(n))
      into = frozenset((id(n),))
    kernels[id(n)] = into


def _loads(n: LazyBuffer, stored: set, enough: int) -> int:
  """The distinct buffers n's inlined work reads, counted up to `enough`."""
  seen, found, stack = set(), set(), [n]
  while stack and len(found) < enough:
    for s in stack.pop().srcs:
      b = s.base
      if id(b) in seen: continue
      seen.add(id(b))
      if b.realized is not None or id(b) in stored: found.add(id(b))
      elif _inlined(b, stored): stack.append(b)
  return len(found)


def _repeats(view: LazyBuffer) -> int:
  """How many times a view reads each element: the product of its expanded dims."""
  return max((prod(s for s, st in zip(v.shape, v.strides) if st == 0) for v in view.st.views), default=1)


def _reads_each_once(view: LazyBuffer) -> bool:
  """Whether a view reads no element twice (no expand), so work fused behind it is not repeated."""
  return _repeats(view) == 1


def _masked(view: LazyBuffer) -> bool: return any(v.mask is not None for v in view.st.views)


def _single_sink(start: LazyBuffer, readers: dict, stored: set) -> LazyBuffer | None:
  """Where a reduction's value, read by several elementwise nodes, comes together again: the one node in which every
  path of elementwise readers from `start` ends, each reading its source element for element in the same order (a
  GELU, x * phi(x), after a product and its bias). The reduction's kernel then computes that node after its loop,
  instead of storing `start` for another kernel, or for every reader of it to recompute the rest. A path ends at a
  stored node or at one read otherwise (through a broadcast, by a reduction). None where paths end at several nodes."""
  region, frontier, sinks = {id(start)}, [start], {}
  while frontier:
    n = frontier.pop()
    rs = readers.get(n, [])
    same_order = [(r, via) for r, via in rs if _is_elementwise(r) and (via is n or via.st.contiguous)]
    if n is not start and (id(n) in stored or not rs or len(same_order) < len(rs)):
      sinks[id(n)] = n
      continue
    if len(same_order) < len(rs): return None
    for r, _ in same_order:
      if id(r) not in region:
        region.add(id(r))
        frontier.append(r)
  return next(iter(sinks.values())) if len(sinks) == 1 else None


ROW_MAX = 1 << 14  # the longest row a row kernel takes: its loops read it again from the cache (64 KiB of float32)


def _row_kernel(first: LazyBuffer, readers: dict, stored: set, outs: set) -> tuple[LazyBuffer, list[LazyBuffer]] | None:
  """A row kernel starting at a reduction over the last axis of its source's shape S (kept as 1): (its sink, the
  reductions and work inside it), or None. From the reduction, per-row values (shape S[:-1] + (1,)) are read by
  elementwise work of that shape, or broadcast back across the row to elementwise work of shape S; work of shape S is
  read element for element, or reduced over the last axis again (a softmax's sum of exp(x - max)). All of it must end
  in one node of shape S, which is stored, and nothing else may read into the middle of it. `outs`: the ids of the
  nodes asked for."""
  row = first.srcs[0].shape
  last = len(row) - 1
  per_row = row[:-1] + (1,)
  float_reduce = lambda n: n.op in ReduceOps and n.arg == (last,) and n.dtype is float32 and n.srcs[0].shape == row
  if not float_reduce(first) or not 2 <= row[-1] <= ROW_MAX: return None
  broadcast = ShapeTracker.from_shape(per_row).expand(row).views
  region, frontier, members, sinks = {id(first)}, [first], [first], {}

  def inside(n: LazyBuffer, reader: LazyBuffer, via: LazyBuffer) -> bool:
    same = via is n or (via.shape == n.shape and via.st.contiguous)
    if n.shape == per_row and _is_elementwise(reader):
      return (reader.shape == per_row and same) or (reader.shape == row and via.st.views == broadcast)
    if n.shape == row:
      return same and ((_is_elementwise(reader) and reader.shape == row) or float_reduce(reader))
    return False

  while frontier:
    n = frontier.pop()
    rs = readers.get(n, [])
    kept = id(n) in outs if n.op in ReduceOps else id(n) in stored  # every reduction is in stored until here
    read_inside = all(inside(n, r, via) for r, via in rs)
    if n is not first and (kept or not rs or not read_inside):
      if n.shape != row or not _is_elementwise(n) or n.dtype is not float32: return None  # a per-row value read outside
      sinks[id(n)] = n
      continue
    if not read_inside: return None
    for r, _ in rs:
      if id(r) not in region:
        region.add(id(r))
        frontier.append(r)
        members.append(r)
  if len(sinks) != 1: return None
  sink = next(iter(sinks.values()))
  return sink, [n for n in members if n is not sink]


def _reads_reduce(root: LazyBuffer, allowed: LazyBuffer, stored: set) -> bool:
  """Whether root's inlined tree holds an unstored reduction other than `allowed` (one reduction per kernel)."""
  stack, seen = [root], set()
  while stack:
    n = stack.pop()
    for s in n.srcs:
      b = s.base
      if b.realized is not None or id(b) in seen or (id(b) in stored and b is not allowed): continue
      seen.add(id(b))
      if b.op in ReduceOps and b is not allowed: return True
      if b is not allowed: stack.append(b)
  return False


def _build_ast(root: LazyBuffer, stored: set, inputs: list[LazyBuffer], piece: int | None = None) -> KernelOp:
  """root's kernel AST: its inlined work, down to loads of realized or stored buffers (numbered 1.. in the order
  they are first read, appended to `inputs`). Runs for every node of every kernel, every step: kept lean. For a CAT
  root, the kernel of its `piece`-th source: that source stored into its region of the output."""
  memo: dict[int, KernelOp] = {}

  def load(lb: LazyBuffer) -> KernelOp:
    base = lb.base
    for n, b in enumerate(inputs):
      if b is base: break
    else:
      inputs.append(base)
      n = len(inputs) - 1
    return kernel_op(BufferOps.LOAD, (), base.dtype, lb.shape, (n + 1, lb.st))

  def view_of(lb: LazyBuffer) -> KernelOp:
    base = lb if lb._base is None else lb._base
    if base.realized is not None or (id(base) in stored and base is not root): return load(lb)
    node = memo[id(base)] if id(base) in memo else inline(base)
    if lb is base or (lb.shape == base.shape and lb.st.contiguous): return node
    return kernel_op(BufferOps.VIEW, (node,), base.dtype, lb.shape, lb.st)

  def inline(base: LazyBuffer) -> KernelOp:
    op = base.op
    if isinstance(op, ELEMENTWISE):
      out = kernel_op(op, tuple([view_of(s) for s in base.srcs]), base.dtype, base.shape, base.arg)
    elif op is LoadOps.CONST: out = kernel_op(BufferOps.CONST, (), base.dtype, base.shape, base.arg)
    elif op is LoadOps.CONTIGUOUS: out = view_of(base.srcs[0])
    elif isinstance(op, ReduceOps): out = kernel_op(op, (view_of(base.srcs[0]),), base.dtype, base.shape, base.arg)
    elif op is IndexOps.GATHER:
      out = kernel_op(IndexOps.GATHER, (load(base.srcs[0]), view_of(base.srcs[1])), base.dtype, base.shape, base.arg)
    else: raise RuntimeError(f"cannot schedule {op}")
    memo[id(base)] = out
    return out

  try:
    if piece is None: return inline(root)
    src, axis = root.srcs[piece], root.arg
    start = sum(s.shape[axis] for s in root.srcs[:piece])
    region = ShapeTracker.from_shape(root.shape).shrink(
      tuple((start, start + n) if d == axis else (0, n) for d, n in enumerate(src.shape)))
    return kernel_op(BufferOps.STORE, (view_of(src),), root.dtype, src.shape, region)
  finally: load = view_of = inline = None  # the closures refer to each other: break the cycle, free the buffers now


def merge_dims(ast: KernelOp) -> KernelOp:
  """An elementwise kernel's AST over fewer dims: adjacent dims that every view in it walks as one (the outer one's
  stride is the inner one's times its size, and no mask cuts either) become one. Updates of a (512, 784) and a
  (512, 512) parameter are then one structure over 401408 and 262144 elements, which can share a kernel whose size
  is an argument (see codegen/dynamic.py), and each element's index is one number instead of a division and a
  modulo. Nodes under a VIEW index a shape of their own and are left as they are."""
  shape, nodes = ast.shape, ast.walk()
  if len(shape) < 2 or any(n.op in ReduceOps for n in nodes): return ast  # a reduction's dims stay as they are
  trackers, stack, seen = [], [ast], set()  # the views over the kernel's own dims, and the nodes in them
  while stack:
    node = stack.pop()
    if id(node) in seen: continue
    seen.add(id(node))
    if node.shape != shape or node.op is IndexOps.GATHER: return ast
    if node.op is BufferOps.LOAD: trackers.append(node.arg[1])
    elif node.op in (BufferOps.VIEW, BufferOps.STORE): trackers.append(node.arg)
    if node.op is not BufferOps.VIEW: stack.extend(node.src)
  groups = [[shape[0]]]
  for d in range(1, len(shape)):
    joined = shape[:d - 1] + (shape[d - 1] * shape[d],) + shape[d + 1:]
    if all(st.views[-1].reshape(joined) is not None for st in trackers): groups[-1].append(shape[d])
    else: groups.append([shape[d]])
  if len(groups) == len(shape): return ast
  merged = tuple(prod(g) for g in groups)
  views = {}
  for st in trackers:
    view = st.views[-1].reshape(merged)
    if view is None: return ast  # mergeable pair by pair but not as a whole (a mask): left as it is
    views[id(st)] = st._replace(view)
  made: dict[int, KernelOp] = {}
  for node in nodes:  # sources first
    if id(node) not in seen: continue  # under a VIEW
    arg = node.arg
    if node.op is BufferOps.LOAD: arg = (arg[0], views[id(arg[1])])
    elif node.op in (BufferOps.VIEW, BufferOps.STORE): arg = views[id(arg)]
    src = node.src if node.op is BufferOps.VIEW else tuple(made[id(s)] for s in node.src)
    made[id(node)] = kernel_op(node.op, src, node.dtype, merged, arg)
  return made[id(ast)]
