"""Kernels built once per structure: the numbers in a kernel AST (sizes, strides, offsets, mask bounds and scalars)
as slots, and the policy that turns the ones that change into kernel arguments.

A kernel is first built with every number in its source (a constant trip count vectorizes). When an AST of the same
structure comes back with other numbers in a later schedule, the slots that changed become arguments (symbolic variables with bounds) and
the kernel is built once more; every later AST of that structure whose unchanged slots still hold reuses that build,
its numbers passed at launch. Slots that have always held equal values (a batch size in every node's shape) share one
argument; an AST that breaks such an equality is built again with the split made; one that needs 64-bit index math
is specialized. A big one (see DYNAMIC_WORK) keeps its own kernel for each set of sizes and strides seen in the
schedule that first showed its structure (a training step's products), whose offsets, bounds and scalars may still
become arguments (a recurrence's time steps share one). Sizes and strides that are new in a later schedule (a
sequence of another length, another batch size) go to a family, where the backend asks for them (OpenCL, unless
LAZYGRAD_FAMILIES=0): a kernel with the sizes and strides in which they differ from the nearest ones seen as
arguments, which the next new ones reuse. A backend that cannot write a family's
kernel as the vector code and tiles an AST's own kernel would have says so (Specializer.leave_family), and that AST
gets a kernel of its own instead (and seeds the next family). A family's kernel runs slower than an AST's own: the
backend gives an AST that keeps coming back to it a kernel of its own (resolve's `promoted`; OpenCL's SHARED_RUNS).

A dynamic kernel whose sizes are arguments is written as scalar code (one output per work-item, no register tiles)
unless its lanes still read neighbouring elements (OpenCL: an outer dim as an argument, or a size known to fill whole
vectors, see VECTOR_MULTIPLE): the backends give an AST that ran on scalar code and is launched a second time a
kernel for its sizes (a family's, or one of its own).
Numbers that change every call (a position in a sequence, a slice's offset) cost no build; numbers that stay (every
parameter's shape in a training step) get the fast kernel from their second step on. A kernel whose arguments are
only offsets, mask bounds and scalars keeps its tiles and vectors: big or small, it is shared by every offset, the
time steps of a recurrence in one step included.
"""
from __future__ import annotations
import threading
from collections import OrderedDict
from math import prod
from lazygrad.dtype import DType, float16, float32, bfloat16, int32, int64
from lazygrad.helpers import DEBUG
from lazygrad.ops import KernelOp, kernel_op, BufferOps, ReduceOps
from lazygrad.shape import ShapeTracker, View
from lazygrad.symbolic import Node, Var

INT_MAX = 2**31 - 1
# index numbers by kind: the range an argument standing for them may take (a size of 0 runs no kernel)
RANGES = {"size": (1, INT_MAX), "bound": (0, INT_MAX), "stride": (-INT_MAX, INT_MAX), "offset": (-INT_MAX, INT_MAX)}
SCALAR_DTYPES = (float32, float16, bfloat16, int32, int64)  # constants that may become arguments (as float or int)
SHAPE_KINDS = ("size", "stride")  # as arguments, these make a kernel scalar code (see Plan.sized_by_arguments)
# ...except a flat elementwise kernel's (one dim, no reduction: a parameter's update) when its sizes are multiples of
# this: its argument then stands for the size over VECTOR_MULTIPLE, so the size is known to fill whole vectors, and
# the kernel keeps its vector code (one build serves every parameter of a model); a family's size arguments too, where
# every size they stood for was a multiple (a product's T*B rows keep their register tiles of up to 8 rows)
VECTOR_MULTIPLE = 8


def scalar_slot(node: KernelOp) -> bool:
  """Whether a constant's value is a slot. Zero and NaN stay in the structure: -0.0 == 0.0 and NaN != NaN would
  confuse the comparison of values (and 1 / -0.0 is not 1 / 0.0)."""
  v = node.arg
  return node.op is BufferOps.CONST and node.dtype in SCALAR_DTYPES and not isinstance(v, bool) and v == v and v != 0


def template(ast: KernelOp) -> tuple[str, tuple, tuple]:
  """(structure key, the numbers in slot order, each slot's kind: a RANGES key or a scalar's dtype name). Two ASTs
  with the same key differ only in those numbers."""
  return _template(ast)[:3]


def _template(ast: KernelOp) -> tuple[str, tuple, tuple, tuple]:
  """template(ast) and where its work lies among the slots: (the output shape's slots, [(a reduction's input shape
  slots, its output shape slots)]), so that `work` can be told from an AST's numbers alone."""
  at: dict[int, int] = {}
  parts, values, kinds, shapes, reduces = [], [], [], {}, []

  def number(value, kind: str) -> str:
    values.append(value); kinds.append(kind)
    return "#"

  def tracker(st: ShapeTracker) -> str:
    text = []
    for v in st.views:
      text.append("(" + ",".join(number(s, "size") for s in v.shape) + "|" + ",".join(number(s, "stride") for s in v.strides)
                  + "|" + number(v.offset, "offset") + "|" +
                  ("-" if v.mask is None else ",".join(number(b, "bound") for m in v.mask for b in m)) + ")")
    return "".join(text)

  for n, node in enumerate(ast.walk()):
    at[id(node)] = n
    shapes[id(node)] = range(len(values), len(values) + len(node.shape))
    if node.op in ReduceOps: reduces.append(node)
    shape = ",".join(number(s, "size") for s in node.shape)
    if node.op is BufferOps.LOAD: arg = f"{node.arg[0]}:{tracker(node.arg[1])}"
    elif node.op in (BufferOps.VIEW, BufferOps.STORE): arg = tracker(node.arg)
    elif scalar_slot(node): arg = number(node.arg, node.dtype.name)
    else: arg = repr(node.arg)
    parts.append(f"{node.op}|{node.dtype.name}|{shape}|{arg}|{[at[id(s)] for s in node.src]}")
  work_slots = (tuple(shapes[id(ast)]), tuple((tuple(shapes[id(r.src[0])]), tuple(shapes[id(r)])) for r in reduces))
  if len(work_slots[0]) == 1 and not reduces and all(v % VECTOR_MULTIPLE == 0 for v, k in zip(values, kinds) if k == "size"):
    parts.append("fills vectors")  # its own structure: a flat kernel of other sizes would make its kernel scalar code
  return "\n".join(parts), tuple(values), tuple(kinds), work_slots


def instantiate(ast: KernelOp, slots: dict[int, Node]) -> KernelOp:
  """The AST with the numbers in `slots` (slot index -> variable) replaced, walked in template's order."""
  counter = iter(range(1 << 62))

  def number(value):
    k = next(counter)
    return slots.get(k, value)

  def tracker(st: ShapeTracker) -> ShapeTracker:
    views = []
    for v in st.views:  # built directly: View.create would treat the variables as numbers
      shape, strides, offset = tuple(number(s) for s in v.shape), tuple(number(s) for s in v.strides), number(v.offset)
      mask = None if v.mask is None else tuple((number(lo), number(hi)) for lo, hi in v.mask)
      views.append(View(shape, strides, offset, mask))
    return ShapeTracker(tuple(views))

  made: dict[int, KernelOp] = {}
  for node in ast.walk():
    shape = tuple(number(s) for s in node.shape)
    arg = node.arg
    if node.op is BufferOps.LOAD: arg = (arg[0], tracker(arg[1]))
    elif node.op in (BufferOps.VIEW, BufferOps.STORE): arg = tracker(arg)
    elif scalar_slot(node): arg = number(arg)
    made[id(node)] = kernel_op(node.op, tuple(made[id(s)] for s in node.src), node.dtype, shape, arg)
  return made[id(ast)]


class Structure:
  """What has been seen of one kernel structure: the numbers of the ASTs that were built (the first one specialized),
  and the dynamic kernel for the slots that changed among them."""

  def __init__(self, values: tuple, kinds: tuple, epoch: int = 0, work_slots: tuple = ((), ())):
    self.history, self.kinds, self.epoch = [values], kinds, epoch  # the schedule that first showed it
    self.work_slots = work_slots  # see _template
    self.groups: list[list[int]] = []  # slots sharing an argument, in argument order
    self.scales: list[int] = []  # each argument stands for its slots' value over this (see VECTOR_MULTIPLE)
    self.params: list[tuple[str, DType]] = []
    self.ranges: list[tuple[int, int] | None] = []
    self.dynamic: set[int] = set()
    self.ast: KernelOp | None = None
    self.outgrown: list[KernelOp] = []  # its earlier dynamic kernels, which grow replaced (see Specializer.settled)
    self.refused = False  # its dynamic kernel could not be built: always specialized
    self.bindings: dict[tuple, tuple | None] = {}  # see Specializer.resolve's `numbers` with steps
    # a big kernel's ASTs with other sizes or strides: a structure of their own per sizes and strides (see `sized`)
    self.by_shape: OrderedDict[tuple, Structure] = OrderedDict()
    # kernels whose sizes and strides are arguments, for new ones in a later schedule (see `family`)
    self.families: list[Structure] = []
    self.scaled = False  # a family: its size arguments stand for sizes over VECTOR_MULTIPLE where all of them allow
    self.no_families = False  # a family's kernel could not be built (see Specializer.refuse): none is made again

  def sized(self, values: tuple, epoch: int) -> Structure | None:
    """The structure of the ASTs with these values' sizes and strides, None (and made) if it is new: within it only
    offsets, bounds and scalars change, so its dynamic kernel keeps the vector code that a big kernel needs."""
    shape = self.shape_of(values)
    sub = self.by_shape.get(shape)
    if sub is not None:
      self.by_shape.move_to_end(shape)
      return sub
    self.by_shape[shape] = Structure(values, self.kinds, epoch, self.work_slots)
    while len(self.by_shape) > SHAPES_KEPT: self.by_shape.popitem(last=False)
    return None

  def family(self, values: tuple, epoch: int) -> Structure | None:
    """The kernel for an AST whose sizes or strides are new in a later schedule (a sequence of another length, a new
    batch size), when it is a big one or ran on scalar code: a family of this structure, a kernel over the sizes and
    strides in which it differs from the sizes and strides seen nearest (fewest numbers apart), so that the next new
    ones reuse it. A backend that would write it worse than an AST's own kernel says so (see Specializer.leave_family).
    None where these sizes and strides have been seen: they keep their own kernel."""
    shape = self.shape_of(values)
    if self.no_families or epoch == self.epoch or shape == self.shape_of(self.history[0]) or shape in self.by_shape: return None
    for f in self.families:
      if f.ast is not None and f.arguments(values) is not None: return f
    for f in self.families:  # one whose arguments cover where these numbers differ: its groups are split
      if f.ast is not None and all(k in f.dynamic for k, (v, w) in enumerate(zip(values, f.history[0])) if v != w):
        return f
    # else a new one from the sizes and strides seen nearest (not a family of another kernel of the structure: a
    # panel copy 16 wide beside one 4 wide would take sizes that stay as arguments)
    apart = lambda st: sum(a != b for a, b in zip(self.shape_of(st.history[0]), shape))
    nearest = min([self, *self.by_shape.values()], key=apart)
    # only for sizes that are mostly those of a kernel seen (a sequence length, a batch size): a family of another
    # model's product took arguments for most of its sizes and strides, and ran a training step at half speed
    if apart(nearest) * FAMILY_APART > len(shape): return None
    made = Structure(nearest.history[0], self.kinds, epoch, self.work_slots)
    made.scaled = True
    self.families = [*self.families, made][-FAMILIES_KEPT:]
    return made

  def shape_of(self, values: tuple) -> tuple:
    """The sizes and strides among these numbers (what keys `by_shape`)."""
    return tuple(v for v, kind in zip(values, self.kinds) if kind in SHAPE_KINDS)

  @property
  def flat(self) -> bool:
    """Whether its ASTs are elementwise over one dim (see schedule.merge_dims)."""
    return len(self.work_slots[0]) == 1 and not self.work_slots[1]

  def vector_sized(self, values: tuple) -> bool:
    """Whether its dynamic kernel, with these values among its ASTs', keeps its vector code with sizes as arguments:
    a flat one whose sizes are all multiples of VECTOR_MULTIPLE."""
    return self.flat and all(v % VECTOR_MULTIPLE == 0 for h in (*self.history, values)
                             for v, kind in zip(h, self.kinds) if kind == "size")

  def shape_changes(self, values: tuple) -> bool:
    """Whether a size or a stride is an argument, or would become one for these values: the kernel would lose its
    tiles and vectors (an offset, a mask's bound or a scalar as an argument keeps them)."""
    return any(self.kinds[k] in SHAPE_KINDS and (k in self.dynamic or v != f)
               for k, (v, f) in enumerate(zip(values, self.history[0])))

  def binding(self, values: tuple, steps: tuple) -> tuple | None:
    """The slot each argument is read from, for numbers that move from `values` by `steps` ((slot, step per unit)
    pairs, see jit.py): when the dynamic kernel covers these values and every value on their line, that is, the
    moving slots are arguments and each argument's slots move together."""
    if self.arguments(values) is None: return None
    step = dict(steps)
    if not step.keys() <= self.dynamic: return None
    if any(len({step.get(k, 0) for k in group}) > 1 for group in self.groups): return None
    if any(scale != 1 for scale in self.scales): return None  # a replay reads its arguments from the slots as they are
    return tuple(group[0] for group in self.groups)

  def arguments(self, values: tuple) -> list | None:
    """The argument values for an AST with these numbers, or None if the dynamic kernel does not cover them."""
    if self.ast is None: return None
    first, dynamic = self.history[0], self.dynamic
    if any(v != f for k, (v, f) in enumerate(zip(values, first)) if k not in dynamic): return None
    args = []
    for group, rng, scale in zip(self.groups, self.ranges, self.scales):
      v = values[group[0]]
      if any(values[k] != v for k in group[1:]): return None
      if scale != 1:
        if v % scale: return None
        v //= scale
      if rng is not None and not rng[0] <= v <= rng[1]: return None
      args.append(v)
    return args

  def grow(self, ast: KernelOp, values: tuple, every: bool | str = False) -> list:
    """Make the slots that changed arguments, over every AST built so far and this one (`every`: all slots, or with
    "offsets" all but sizes and strides); build the dynamic AST."""
    if not every: self.history.append(values)
    self.bindings.clear()
    if every == "offsets": changed = [k for k, kind in enumerate(self.kinds) if kind not in SHAPE_KINDS]
    else: changed = [k for k in range(len(values)) if every or any(h[k] != values[k] for h in self.history)]
    self.dynamic = set(changed)
    by_values: dict[tuple, list[int]] = {}
    for k in changed:  # slots equal in every AST so far (and of one family: index or a scalar dtype) share one
      family = "index" if self.kinds[k] in RANGES else self.kinds[k]
      by_values.setdefault((family, *(h[k] for h in self.history)), []).append(k)
    self.groups, self.params, self.ranges, self.scales, slots = [], [], [], [], {}
    vector = self.vector_sized(values)
    for (family, *seen), group in by_values.items():
      scale = 1
      if family == "index":
        lo, hi = max(RANGES[self.kinds[k]][0] for k in group), min(RANGES[self.kinds[k]][1] for k in group)
        fills = vector or (self.scaled and all(v % VECTOR_MULTIPLE == 0 for v in seen))
        if fills and any(self.kinds[k] == "size" for k in group): scale, hi = VECTOR_MULTIPLE, hi // VECTOR_MULTIPLE
        var, dtype, rng = Var(f"n{len(self.params)}", lo, hi), int32, (lo, hi)
      else:
        dtype = next(d for d in SCALAR_DTYPES if d.name == family)
        var, rng = Var(f"c{len(self.params)}", 0, 0), None  # a scalar's range is never used in index math
      self.groups.append(group); self.params.append((var.name, dtype)); self.ranges.append(rng); self.scales.append(scale)
      slots.update((k, var * scale if scale != 1 else var) for k in group)
    if self.ast is not None: self.outgrown.append(self.ast)
    self.ast = instantiate(ast, slots)
    if DEBUG >= 1:
      what = ", ".join(f"{name}{f'*{scale}' if scale != 1 else ''} ({self.kinds[g[0]]}: "
                       f"{' -> '.join(str(h[g[0]]) for h in self.history)})"
                       for (name, _), g, scale in zip(self.params, self.groups, self.scales))
      print(f"lazygrad: kernel rebuilt as dynamic, with {what} as arguments")
    return self.arguments(values)


# a kernel at least this big is specialized whenever its sizes or strides change: its compile is paid back by its
# runs, and a long reduction loop keeps the vector lanes (separate partial sums) and tiles of a constant trip count.
# A kernel sized by arguments is scalar code, one accumulator per output: summing 2**16 tenths in one float32
# accumulator is 6e-4 off.
DYNAMIC_WORK = 1 << 22  # outputs times reduced elements
DYNAMIC_REDUCE = 1 << 12  # reduced elements per output
# below this, a kernel's launch costs about what its scalar code does: its other numbers in one schedule (small
# per-parameter updates) share a dynamic kernel, kept for good. From here up, sizes that differ within a schedule, or
# come back in a later one, get a kernel of their own (vector code, tiles).
SMALL_WORK = 1 << 16
SHAPES_KEPT = 64  # sizes and strides of one big kernel's structure with a structure of their own (see Structure.sized)
FAMILIES_KEPT = 8  # families of one structure (see Structure.family)
FAMILY_APART = 2  # a family is made for sizes and strides of which at most 1/this differ from ones seen
FAMILY_ASTS_KEPT = 4096  # family kernels a Specializer tells apart (see is_family) before it starts again


def work(ast: KernelOp) -> tuple[int, int]:
  """(outputs times reduced elements, reduced elements per output) of an AST."""
  reduced = max([prod(n.src[0].shape) // max(prod(n.shape), 1) for n in ast.walk() if n.op in ReduceOps] or [1])
  return prod(ast.shape) * reduced, reduced


def work_of(values: tuple, work_slots: tuple) -> tuple[int, int]:
  """work() of the AST of a structure with these numbers (work_slots: see _template)."""
  out, reduces = work_slots
  reduced = 1  # plain loops: a jit's replay asks this for every launch whose numbers move
  for src, dst in reduces:
    inner = outer = 1
    for k in src: inner *= values[k]
    for k in dst: outer *= values[k]
    reduced = max(reduced, inner // max(outer, 1))
  total = reduced
  for k in out: total *= values[k]
  return total, reduced


def promotable(ast: KernelOp) -> bool:
  """Whether an AST that runs on a dynamic kernel gets its own once it comes back in a later schedule."""
  return work(ast)[0] >= SMALL_WORK


def measure(total_work: tuple[int, int], buf_sizes) -> tuple[bool, bool]:
  """(big, wide) for an AST of this work(): whether it is big enough to be specialized if its sizes would be
  arguments (see DYNAMIC_WORK), and whether its index math needs 64 bits (a dynamic kernel's is 32-bit: always
  specialized)."""
  total, reduced = total_work
  return total >= DYNAMIC_WORK or reduced >= DYNAMIC_REDUCE, max([total, *buf_sizes]) >= INT_MAX


def in_ranges(values: tuple, kinds: tuple) -> bool:
  """Whether every index number lies in the range an argument for it may take (a size of 0 does not)."""
  return all(RANGES[k][0] <= v <= RANGES[k][1] for v, k in zip(values, kinds) if k in RANGES)


class Specializer:
  """Per device: which kernel an AST runs as. resolve(ast) -> (the AST to build, its parameters, their values):
  the AST itself with no parameters (specialized), or a structure's dynamic AST and this AST's numbers for it.
  `every_number` (for tests) makes every number of every AST an argument from its first build ("offsets": every
  number but its sizes and strides, so the kernel keeps its tiles and vectors). `families`: whether big ASTs with new
  sizes in a later schedule share a kernel sized by arguments (see Structure.family), for a backend that keeps its
  vector code and tiles."""

  def __init__(self, limit: int = 4096, every_number: bool | str = False, families: bool = False):
    self.structures: OrderedDict[str, Structure] = OrderedDict()
    self.limit, self.every_number, self.families = limit, every_number, families
    self.family_asts: dict[int, KernelOp] = {}  # id -> a family's kernel AST (see is_family), kept alive here
    self.lock = threading.Lock()

  def resolve(self, ast: KernelOp, buf_sizes: list[int], epoch: int = 0, numbers: tuple | None = None,
              promoted: bool = False) -> tuple[KernelOp, list, list]:
    """`epoch` counts schedules (see device.epoch): ASTs of one structure with other numbers in the schedule that
    first showed it (a training step's per-parameter updates) are each specialized, as their numbers stay from step
    to step; it is numbers that change from one schedule to the next that become arguments. `numbers`, a template
    (key, values, kinds) of ast's structure with other values (a jit's replay, see jit.py), stands for the AST with
    those numbers without making it: a specialized resolution then makes it. A fourth item, the (slot, step) pairs
    of the numbers that move from call to call, lets the checks be made once for all their values. `promoted`: an AST
    that ran on its structure's kernel sized by arguments (scalar code, or a family's), back in a later schedule: its
    sizes and strides get a kernel of their own, as a big kernel's do, whose offsets may still be arguments (the time
    steps of a recurrence share it; each was built on its own before)."""
    if numbers is None: key, values, kinds, work_slots = _template(ast)
    else: (key, values, kinds, *steps), work_slots = numbers, None
    specialized = lambda: (ast if numbers is None else self._made(ast, values), [], [])  # ast with its own numbers
    with self.lock:
      s = self.structures.get(key)
      if numbers is not None and steps and s is not None and s.ast is not None:  # a jit's replay: once per launch
        args = s.arguments(values)  # checked for every call: a binding made for one recording's numbers (see
        if args is not None:        # `bound`) holds for another's only if its fixed numbers are covered too
          big, wide = measure(work_of(values, s.work_slots), buf_sizes)
          if not wide and not (big and s.shape_changes(values)):
            if steps[0] not in s.bindings: s.bindings[steps[0]] = s.binding(values, steps[0])
            return s.ast, s.params, args
      if s is None:
        if numbers is not None: return specialized()
        s = self.structures[key] = Structure(values, kinds, epoch, work_slots)
        while len(self.structures) > self.limit: self.structures.popitem(last=False)
        big, wide = measure(work_of(values, work_slots), buf_sizes)
        offsets = self.every_number == "offsets"
        if not (self.every_number and values and not wide and (offsets or not big) and in_ranges(values, kinds)
                and (not offsets or any(kind not in SHAPE_KINDS for kind in kinds))):
          return ast, [], []
        args = s.grow(ast, values, every=self.every_number)
        return s.ast, s.params, args
      self.structures.move_to_end(key)
      total_work = work_of(values, s.work_slots)
      big, wide = measure(total_work, buf_sizes)
      if wide or s.refused or not in_ranges(values, kinds): return specialized()
      vector = s.vector_sized(values)
      if promoted and vector: return specialized()  # a backend that renders it as scalar code
      # a big kernel keeps its vector code: ASTs with other sizes or strides make a structure of their own, where
      # only offsets, bounds and scalars may become arguments (a recurrence's time steps at a new sequence length)
      if (big or promoted) and s.shape_changes(values) and not self.every_number and not vector:
        family = s.family(values, epoch) if self.families and not promoted else None
        if family is not None:  # new sizes or strides in a later schedule: sizes and strides as arguments
          args = family.arguments(values)
          if args is None:
            args = family.grow(ast if numbers is None else self._made(ast, values), values)
            if len(self.family_asts) >= FAMILY_ASTS_KEPT: self.family_asts.clear()
            self.family_asts[id(family.ast)] = family.ast
          return family.ast, family.params, args
        s = s.sized(values, epoch)
        if s is None: return specialized()
        vector = s.vector_sized(values)
      # the first numbers keep their specialized kernel (a constant trip count vectorizes); within one schedule, a
      # big kernel's other sizes (a training step's parameters) are each specialized, its other offsets (the time
      # steps of a recurrence) share one kernel
      shape = s.shape_changes(values)
      if (values == s.history[0] and not self.every_number) or s.refused: return specialized()
      if s.ast is None and s.epoch == epoch and total_work[0] >= SMALL_WORK and shape and not vector:
        if not s.by_shape.get(s.shape_of(values)): s.sized(values, epoch)  # a seed for families (see family)
        return specialized()
      if big and shape and not vector: return specialized()  # every_number's big kernels
      args = s.arguments(values)
      if args is None:
        if numbers is not None: ast = self._made(ast, values)
        args = s.grow(ast, values)
      return s.ast, s.params, args

  def settled(self, ast: KernelOp, built: KernelOp, buf_sizes: list[int]) -> tuple[KernelOp, list, list] | None:
    """Before the kernels a schedule needs are built: the resolution of ast, resolved to `built`, if its structure's
    dynamic kernel now serves it better, else None. Its structure's later ASTs in the schedule may have grown the kernel
    built was (more numbers as arguments): the grown one serves ast too, and built need not be built. And the first AST
    of a structure, specialized as first, runs on the dynamic kernel where that is the same code as its own (its sizes
    and strides are not arguments, or fill whole vectors): one build, not two. (On scalar code it would run slower for
    good: an LSTM step's 2,500 small kernels ran 15% slower.)"""
    key, values, _, work_slots = _template(ast)
    with self.lock:
      s = self.structures.get(key)
      if s is None or s.ast is None or s.ast is built or s.refused or self.every_number: return None
      if built is ast:  # specialized: as first of its structure, and only that?
        big, wide = measure(work_of(values, work_slots), buf_sizes)
        if values != s.history[0] or big or wide or (s.shape_changes(values) and not s.vector_sized(values)): return None
      elif not any(built is old for old in s.outgrown): return None
      args = s.arguments(values)
      return None if args is None else (s.ast, s.params, args)

  def bound(self, numbers: tuple, built: KernelOp) -> tuple | None:
    """After resolve(ast, .., numbers) chose `built`: the slot each of its arguments is read from, when that holds for
    every value the moving numbers take (see Structure.binding), so a jit's replay can skip resolve for them; else
    None. Wide index math is checked by the caller."""
    key, _, _, steps = numbers
    with self.lock:
      s = self.structures.get(key)
      slots = s.bindings.get(steps) if s is not None and s.ast is built else None
    return slots

  def is_family(self, built: KernelOp) -> bool:
    """Whether `built`, a kernel resolve chose, is a family's (see Structure.family)."""
    return id(built) in self.family_asts

  def leave_family(self, ast: KernelOp, built: KernelOp, numbers: tuple | None, epoch: int, scalar: bool) -> bool:
    """ast does not run on `built`, the family's kernel resolve chose for it (with `numbers`, see resolve), as a
    backend would write it worse than ast's own kernel (fewer vector lanes or accumulators; `scalar`: as scalar
    code, and the family is dropped): ast's sizes and strides get a kernel of their own from schedule `epoch` on,
    and seed the next family. True if built was a family's: resolve ast again."""
    key, values = template(ast)[:2] if numbers is None else numbers[:2]
    with self.lock:
      s = self.structures.get(key)
      if s is None or not any(f.ast is built for f in s.families): return False
      if scalar: s.families = [f for f in s.families if f.ast is not built]
      s.sized(values, epoch)
    return True

  @staticmethod
  def _made(ast: KernelOp, values: tuple) -> KernelOp:
    """ast's structure with these numbers."""
    return instantiate(ast, dict(enumerate(values)))

  def refuse(self, ast: KernelOp, built: KernelOp, numbers: tuple | None = None) -> tuple[KernelOp, list, list]:
    """The dynamic kernel `built` that resolve chose for ast cannot be built (its index math is too large, see
    lower.IndexTooLarge): from now on every AST of its structure is specialized (a family's: the family is not used
    again). Returns the resolution of ast (with `numbers`, see resolve): itself."""
    key, values = template(ast)[:2] if numbers is None else numbers[:2]
    with self.lock:
      s = self.structures.get(key)
      family = next((f for f in s.families if f.ast is built), None) if s is not None else None
      if family is not None: s.no_families, s.families, s = True, [], family  # a family's kernel (see Structure.family)
      elif s is not None and s.by_shape:  # the structure of its sizes and strides, if it has one
        s = s.by_shape.get(s.shape_of(values), s)
      if s is not None: s.refused, s.ast = True, None
    return (ast if numbers is None else self._made(ast, numbers[1])), [], []
