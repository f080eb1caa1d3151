"""lazygrad.profiler: what each kernel launch cost, against what the device can do, and what fused into which kernel.

  with lazygrad.profiler.profile() as prof:
    step(x, y)
  prof.table()                          # kernels by time: GB/s, GFLOP/s, % of the device's roofline, what bounds it
  prof.export_chrome_trace("step.json")  # for Perfetto (ui.perfetto.dev) or chrome://tracing
  lazygrad.profiler.schedule_graph(loss, "step.svg")  # the lazy graph, each kernel's nodes boxed together

A launch's time comes from the device's own clock where the backend has one (OpenCL profiling events), else from the
host's clock around a launch that runs alone (Triton: the device is synchronized before and after). Its bytes are the
sizes of the buffers it reads and writes (an estimate: a kernel may read a buffer partly, or more than once), its
flops are counted from its AST (see kernel_flops), and its label names the ops that fused into it (see kernel_label).
The roofline (peak bandwidth of a big copy, peak flops of a big matmul, the time of an empty launch) is measured
once per device through lazygrad itself and kept in the kernel cache directory.
"""
from __future__ import annotations
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from math import prod
from lazygrad import device as devices
from lazygrad.helpers import atomic_write, cache_dir
from lazygrad.ops import UnaryOps, BinaryOps, TernaryOps, ReduceOps, BufferOps, IndexOps, KernelOp, ELEMENTWISE, is_row_kernel
from lazygrad.schedule import schedule

__all__ = ["profile", "Profile", "Launch", "kernel_flops", "kernel_label", "roofline", "schedule_graph"]


# ---- what a kernel does, from its AST

def _evaluations(ast: KernelOp) -> dict[KernelOp, float]:
  """How many times each node's whole shape is computed in one launch: once, except below a VIEW that broadcasts an
  inlined value, which the kernel recomputes for every element that reads it (a shrink computes less); a row kernel
  computes its per-row values once (see ops.is_row_kernel)."""
  order = ast.walk()
  rows = is_row_kernel(ast, [n for n in order if isinstance(n.op, ReduceOps)])
  times = {ast: 1.0}
  for node in reversed(order):  # users before their sources
    t = times.get(node, 0.0)
    for s in node.src:
      each = t * prod(node.shape) / max(prod(s.shape), 1) if node.op is BufferOps.VIEW and not rows else t
      times[s] = max(times.get(s, 0.0), each)  # a value two users read at the same index is computed once
  return times


def kernel_flops(ast: KernelOp) -> int:
  """Arithmetic operations one launch of a kernel AST performs: 1 per element for each elementwise op (casts are
  conversions, not counted), 1 per element reduced for a reduction (so a multiply-add in a matmul counts 2, and an
  (M, K) @ (K, N) matmul is 2*M*N*K)."""
  total = 0.0
  for node, t in _evaluations(ast).items():
    if isinstance(node.op, ELEMENTWISE) and node.op is not UnaryOps.CAST: total += t * prod(node.shape)
    elif isinstance(node.op, ReduceOps): total += t * prod(node.src[0].shape)
  return int(round(total))


OP_NAMES = {UnaryOps.NEG: "neg", UnaryOps.EXP2: "exp2", UnaryOps.LOG2: "log2", UnaryOps.SIN: "sin", UnaryOps.COS: "cos",
            UnaryOps.EXP: "exp", UnaryOps.SQRT: "sqrt", UnaryOps.RECIP: "recip", UnaryOps.CAST: "cast",
            UnaryOps.NOT: "not", BinaryOps.ADD: "add", BinaryOps.SUB: "sub", BinaryOps.MUL: "mul", BinaryOps.DIV: "div",
            BinaryOps.MAX: "maximum", BinaryOps.CMPLT: "lt", BinaryOps.CMPEQ: "eq", BinaryOps.IDIV: "floordiv",
            BinaryOps.MOD: "mod", BinaryOps.AND: "and", BinaryOps.OR: "or", BinaryOps.XOR: "xor",
            TernaryOps.WHERE: "where", ReduceOps.SUM: "sum", ReduceOps.MAX: "max", IndexOps.GATHER: "gather",
            BufferOps.STORE: "cat"}
LABEL_PARTS = 5  # names shown in a label before "+N more"


def _broadcast(node: KernelOp) -> bool:
  """Whether a load or view reads some element more than once along a dimension (a stride of 0): a matmul's operands."""
  st = node.arg[1] if node.op is BufferOps.LOAD else node.arg if node.op is BufferOps.VIEW else None
  return st is not None and any(s == 0 and n > 1 for s, n in zip(st.views[-1].strides, st.views[-1].shape))


def _through_views(node: KernelOp) -> KernelOp:
  while node.op is BufferOps.VIEW: node = node.src[0]
  return node


def kernel_label(ast: KernelOp) -> str:
  """A readable name for what fused into a kernel, from its AST's ops in the order they run: a sum of products of two
  broadcast operands is `matmul`, a maximum with 0 is `relu`, a kernel of loads only is `copy`; e.g.
  `matmul+add+relu`. Each name appears once."""
  nodes = ast.walk()
  matmul_products = {id(_through_views(n.src[0])) for n in nodes if n.op is ReduceOps.SUM
                     and _through_views(n.src[0]).op is BinaryOps.MUL
                     and all(_broadcast(s) for s in _through_views(n.src[0]).src)}
  names: list[str] = []
  for n in nodes:
    if id(n) in matmul_products: continue
    if n.op is ReduceOps.SUM and id(_through_views(n.src[0])) in matmul_products: name = "matmul"
    elif n.op is BinaryOps.MAX and any(_through_views(s).op is BufferOps.CONST and _through_views(s).arg == 0
                                       for s in n.src): name = "relu"
    else: name = OP_NAMES.get(n.op)
    if name is not None and name not in names: names.append(name)
  if not names: return "copy"
  if len(names) > LABEL_PARTS: names = names[:LABEL_PARTS] + [f"{len(names) - LABEL_PARTS} more"]
  return "+".join(names)


# ---- recording launches

@dataclass
class Launch:
  """One kernel launch: its device, kernel name, label (see kernel_label), bytes its buffers hold, flops (see
  kernel_flops), and its start and end in nanoseconds of the clock named by `clock`."""
  device: str
  name: str
  label: str
  bytes: int
  flops: int
  start_ns: int
  end_ns: int
  clock: str

  @property
  def seconds(self) -> float: return (self.end_ns - self.start_ns) * 1e-9


CLOCKS = {"event": "device time from OpenCL profiling events", "host": "host wall clock around each launch, run alone",
          "none": "some launches untimed (the driver gave no profiling times)"}


class Profile:
  """Records every kernel launch while active (see `profile`). Read it once the `with` block has ended."""

  def __init__(self):
    self.launches: list[Launch] = []
    self._pending: list = []  # [(Launch without times, OpenCL event)] until the block ends
    self._devices: dict[str, object] = {}
    self._facts: dict[int, tuple[str, int]] = {}  # id(AST) -> (label, flops), each AST's counted once
    self._asts: list = []  # keeps those ASTs alive, so an id is not reused for another one meanwhile

  def __enter__(self) -> Profile:
    if devices.profiling is not None: raise RuntimeError("lazygrad.profiler: a profile is already active; profiles do not nest")
    for dev in list(devices._devices.values()): dev.synchronize()  # work queued before the block is not timed into it
    devices.profiling = self
    return self

  def __exit__(self, *exc):
    devices.profiling = None
    for dev in self._devices.values():
      dev.synchronize()
      if hasattr(dev, "profile_queue"): dev.profile_queue(False)
    for launch, event in self._pending:
      try: launch.start_ns, launch.end_ns = event.profile.start, event.profile.end
      except Exception: launch.clock = "none"  # a driver that gave no times for it: counted, at 0 s
    self._pending.clear()
    self.launches.sort(key=lambda launch: launch.start_ns)  # the clocks of several devices do not compare, but rarely mix
    return False

  def launched(self, dev, ast, name: str, buffers, event=None, start_ns: int = 0, end_ns: int = 0):
    """A backend's report of one launch: an OpenCL `event` from a profiling queue (read when the block ends), or the
    host-clock times around it. `ast` may be None (a launch whose AST the backend did not keep): no label or flops."""
    self._devices.setdefault(dev.name, dev)
    facts = self._facts.get(id(ast))
    if facts is None:
      facts = self._facts[id(ast)] = (kernel_label(ast), kernel_flops(ast)) if ast is not None else ("?", 0)
      self._asts.append(ast)
    launch = Launch(dev.name, name, facts[0], sum(b.nbytes for b in buffers), facts[1], start_ns, end_ns,
                    "event" if event is not None else "host")
    self.launches.append(launch)
    if event is not None: self._pending.append((launch, event))

  # ---- reading it

  def rows(self, roofline_of: dict | None = None) -> list[dict]:
    """One row per (device, kernel name, label), the most time first: calls, seconds, bytes and flops (totals), GB/s,
    GFLOP/s, the % of the roofline (the time the device's peaks allow, over the time taken) and what bounds it:
    `bandwidth` or `flops`, whichever takes the longer at the peaks, or `launch` where a launch takes less time on
    the device than the host takes to send one. `roofline_of`: device name -> roofline(), read or measured if not
    given."""
    groups: dict[tuple, dict] = {}
    for launch in self.launches:
      row = groups.setdefault((launch.device, launch.name, launch.label), {
        "device": launch.device, "kernel": launch.name, "op": launch.label, "calls": 0, "seconds": 0.0, "bytes": 0, "flops": 0})
      row["calls"] += 1
      row["seconds"] += launch.seconds
      row["bytes"] += launch.bytes
      row["flops"] += launch.flops
    if roofline_of is None: roofline_of = {d: roofline(d) for d in {row["device"] for row in groups.values()}}
    rows = sorted(groups.values(), key=lambda row: -row["seconds"])
    for row in rows:
      peaks, seconds = roofline_of.get(row["device"]), max(row["seconds"], 1e-12)
      row["gbps"], row["gflops"] = row["bytes"] / seconds / 1e9, row["flops"] / seconds / 1e9
      row["roofline_pct"], row["bound"] = None, None
      if peaks:
        memory_s, compute_s = row["bytes"] / (peaks["gbps"] * 1e9), row["flops"] / (peaks["gflops"] * 1e9)
        row["roofline_pct"] = 100 * max(memory_s, compute_s) / seconds
        launch_floor = peaks["launch_us"] * 1e-6 * row["calls"]
        row["bound"] = "launch" if seconds <= launch_floor else "bandwidth" if memory_s >= compute_s else "flops"
    return rows

  def table(self, top: int | None = None, file=None):
    """Print the kernels as a table, the most time first (the `top` first rows, if given), with a header naming the
    clock and the roofline used; to `file` (default stdout)."""
    rows = self.rows()
    out = file if file is not None else sys.stdout
    total = sum(row["seconds"] for row in rows) or 1e-12
    clocks = sorted({launch.clock for launch in self.launches})
    print(f"lazygrad profile: {len(self.launches)} kernel launches, {total * 1e3:.3f} ms of kernel time; clock: "
          f"{'; '.join(CLOCKS[c] for c in clocks) or 'none'}", file=out)
    for device in sorted({row["device"] for row in rows}):
      peaks = roofline(device)
      print(f"{device} roofline ({peaks['name']}): {peaks['gbps']:.1f} GB/s, {peaks['gflops']:.1f} GFLOP/s, a launch "
            f"{peaks['launch_us']:.0f} us on the host (measured {peaks['measured'][:10]}, kept in {ROOFLINE_FILE})", file=out)
    print("bytes: sizes of the buffers a kernel reads and writes (an estimate); flops: counted from its AST; %roof: the "
          "time the peaks allow over the time taken (over 100: its data sat in cache); bound launch: shorter on the "
          "device than a launch on the host", file=out)
    head = f"{'op':<32} {'kernel':<22} {'calls':>5} {'total ms':>9} {'%time':>6} {'avg us':>9} {'GB/s':>7} {'GFLOP/s':>8} {'%roof':>6}  bound"
    print(head, file=out)
    print("-" * len(head), file=out)
    for row in rows[:top] if top else rows:
      roof = f"{row['roofline_pct']:6.1f}" if row["roofline_pct"] is not None else f"{'':>6}"
      print(f"{_clip(row['op'], 32):<32} {_clip(row['kernel'], 22):<22} {row['calls']:>5} {row['seconds'] * 1e3:>9.3f} "
            f"{100 * row['seconds'] / total:>6.1f} {row['seconds'] / row['calls'] * 1e6:>9.1f} {row['gbps']:>7.2f} "
            f"{row['gflops']:>8.2f} {roof}  {row['bound'] or ''}", file=out)
    if top and len(rows) > top: print(f"... {len(rows) - top} more kernels", file=out)

  def bound(self, wall_seconds: float | None = None) -> tuple[str, str]:
    """What bounds the profiled work, and why, in words: `launch overhead` where the kernels kept the device busy
    less than half of `wall_seconds` (the host's time for the same work: building graphs, scheduling, launching),
    else the bound (see rows) of the kernels that took most of the kernel time."""
    rows = self.rows()
    busy = sum(row["seconds"] for row in rows)
    if not rows: return "launch overhead", "no kernels ran"
    share = f"kernels busy {100 * busy / wall_seconds:.0f}% of the {wall_seconds * 1e3:.3g} ms wall" if wall_seconds else ""
    if wall_seconds and busy < 0.5 * wall_seconds: return "launch overhead", share
    by_bound: dict[str, float] = {}
    for row in rows: by_bound[row["bound"]] = by_bound.get(row["bound"], 0.0) + row["seconds"]
    top = max(by_bound, key=by_bound.get)
    name = {"launch": "launch overhead", "bandwidth": "bandwidth", "flops": "flops"}.get(top, str(top))
    return name, "; ".join(filter(None, [share, f"{100 * by_bound[top] / busy:.0f}% of kernel time in {top}-bound kernels"]))

  def export_chrome_trace(self, path) -> None:
    """Write the launches as a Chrome trace (JSON, one complete event per launch, microseconds from the first launch
    on each device) that Perfetto (ui.perfetto.dev) and chrome://tracing open."""
    names = sorted({launch.device for launch in self.launches})
    first = {d: min(launch.start_ns for launch in self.launches if launch.device == d) for d in names}
    events = [{"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": d}} for tid, d in enumerate(names)]
    for launch in self.launches:
      events.append({"name": launch.label, "cat": "kernel", "ph": "X", "pid": 1, "tid": names.index(launch.device),
                     "ts": (launch.start_ns - first[launch.device]) / 1e3, "dur": (launch.end_ns - launch.start_ns) / 1e3,
                     "args": {"kernel": launch.name, "bytes": launch.bytes, "flops": launch.flops, "clock": launch.clock}})
    with open(path, "w") as f: json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)


def _clip(text: str, width: int) -> str: return text if len(text) <= width else text[:width - 1] + "…"


def profile() -> Profile:
  """`with lazygrad.profiler.profile() as prof:` records each kernel launch in the block (see Profile)."""
  return Profile()


# ---- the roofline: what the device can do, measured once

ROOFLINE_FILE = "roofline.json"


def roofline(device=None, remeasure: bool = False) -> dict:
  """{"name", "gbps", "gflops", "launch_us", "measured"} for a device (default: the default device): the bandwidth of a
  big elementwise kernel (bytes read and written over its time), the flops of a big matmul, and the time of a
  one-element kernel's launch on the host's clock (as a jit replay sends it), each the best of a few runs through
  lazygrad (the first two timed as profiles time kernels). A busy machine measures low peaks: remeasure with
  `roofline(remeasure=True)` on a quiet one. Kept in
  LAZYGRAD_CACHE_DIR/roofline.json under the device's identity (platform, device, driver), measured when absent."""
  dev = devices.get(devices.canonical(device))
  path = cache_dir() / ROOFLINE_FILE
  try: known = json.loads(path.read_text())
  except (OSError, ValueError): known = {}
  if not remeasure and dev.ident in known: return known[dev.ident]
  peaks = _measure(dev)
  try: known = json.loads(path.read_text())  # another process may have written its device's meanwhile
  except (OSError, ValueError): known = {}
  known[dev.ident] = peaks
  with atomic_write(path, durable=False) as f: f.write(json.dumps(known, indent=1).encode())
  return peaks


def _measure(dev) -> dict:
  import numpy as np
  from lazygrad.tensor import Tensor  # the measuring kernels are lazygrad's own
  small = getattr(dev, "interpret", False)  # Triton's interpreter: sizes it runs in about a second
  n, m = (1 << 20, 128) if small else (1 << 24, 1024)
  rng = np.random.default_rng(0)
  x = Tensor(rng.standard_normal(n, dtype=np.float32), device=dev.name).realize()
  a = Tensor(rng.standard_normal((m, m), dtype=np.float32), device=dev.name).realize()
  b = Tensor(rng.standard_normal((m, m), dtype=np.float32), device=dev.name).realize()
  one = Tensor(np.ones(1, np.float32), device=dev.name).realize()
  outer, devices.profiling = devices.profiling, None  # measuring inside a user's profile leaves it out of theirs
  try:
    best = []
    for work, label in ((lambda: x + 1, "add"), (lambda: a @ b, "matmul")):
      work().realize()  # builds the kernel, untimed
      with Profile() as p:
        for _ in range(RUNS): work().realize()
      best.append(min(launch.seconds for launch in p.launches if launch.label == label) or 1e-9)
    # a launch's cost on the host, as a jit replay pays it (no graph to build or schedule): a kernel that takes the
    # device less time than this leaves it waiting for the next one
    item = schedule([(one + 1).lazydata.base])[0]
    buffers = [devices.Buffer(dev.name, 1, one.lazydata.dtype), one.lazydata.base.realized]
    dev.exec(item.ast, buffers)
    launch = []
    for _ in range(RUNS):
      dev.synchronize()
      start = time.perf_counter()
      for _ in range(20): dev.exec(item.ast, buffers)
      dev.synchronize()
      launch.append((time.perf_counter() - start) / 20)
  finally: devices.profiling = outer
  return {"name": dev.ident, "gbps": 2 * 4 * n / best[0] / 1e9, "gflops": 2 * m ** 3 / best[1] / 1e9,
          "launch_us": min(launch) * 1e6, "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


RUNS = 8  # the best of these is kept: a shared machine's other work only ever slows a run down


# ---- the schedule as a picture

DOT_MISSING = ("lazygrad.profiler.schedule_graph: rendering {path} needs Graphviz's `dot` program, which is not on this "
               "machine's PATH. Install Graphviz (`apt-get install graphviz`, `brew install graphviz`, or "
               "https://graphviz.org/download/), or give a path ending in .dot: the graph is then written as text, "
               "with no program needed")


def schedule_graph(what, path) -> str:
  """Draw what fused into which kernel: each kernel is a box holding the lazy graph's ops computed in it (an op
  recomputed in several kernels appears in each), arrows are values read (dashed: through a view), and grey ellipses
  are buffers computed before. `what` is
  - a Tensor or a list of them: the kernels their next realize runs, with the in-place updates waiting to be written
    with them; nothing is computed;
  - a function of no arguments (a training step): it is called once, and every kernel the realizes in it run is
    drawn, in order (an optimizer's step realizes the forward, backward and update as one schedule). A jitted
    function's replays schedule nothing: give the plain one.
  `path` ending in .dot gets Graphviz's DOT text, needing nothing else; .svg, .png or .pdf are rendered by Graphviz's
  `dot` program. Returns the DOT text."""
  path = str(path)
  fmt = os.path.splitext(path)[1].lower().lstrip(".")
  if fmt not in ("dot", "gv", "svg", "png", "pdf"):
    raise ValueError(f"schedule_graph: {path!r} should end in .dot, .svg, .png or .pdf")
  dot = shutil.which("dot")
  if fmt not in ("dot", "gv") and dot is None: raise RuntimeError(DOT_MISSING.format(path=path))
  graph = _Dot()
  if callable(what): _drawing_schedules(what, graph)
  else: graph.add(schedule(_pending(what)))
  text = graph.text()
  if fmt in ("dot", "gv"):
    with open(path, "w") as f: f.write(text)
  else: subprocess.run([dot, f"-T{fmt}", "-o", path], input=text.encode(), check=True)
  return text


def _pending(tensors) -> list:
  """The bases a realize of `tensors` computes (see lazy.pending), leaving this thread's realize_next as it is."""
  from lazygrad import lazy
  tensors = [tensors] if not isinstance(tensors, (list, tuple)) else list(tensors)
  return lazy.pending([t.lazydata for t in tensors])[0]


def _drawing_schedules(fn, graph: _Dot):
  """Call fn, adding each schedule a realize in it makes to `graph` before it runs (running it empties the graph
  below its outputs). Wraps lazy.realize's `schedule` for the call's duration, so nothing costs anything otherwise
  (another thread's realizes meanwhile are drawn too)."""
  from lazygrad import lazy
  plain = lazy.schedule

  def drawn(outs):
    items = plain(outs)
    graph.add(items)
    return items
  lazy.schedule = drawn
  try: fn()
  finally: lazy.schedule = plain


def _node_text(lb) -> str:
  op = lb.op
  name = OP_NAMES.get(op) or (op.name.lower() if op is not None else "buffer")
  if op is not None and op.name == "CONST": name = f"const {lb.arg:.4g}" if isinstance(lb.arg, float) else f"const {lb.arg!r}"
  if op is BinaryOps.MAX and any(s.base.op is not None and s.base.op.name == "CONST" and s.base.arg == 0 for s in lb.srcs):
    name = "relu"  # as kernel_label names it
  return f"{name} {tuple(lb.shape)}"


class _Dot:
  """DOT text for schedule items, added a schedule at a time: a cluster per kernel, whose nodes are the lazy graph's
  nodes it computes; a buffer an earlier kernel here computed is drawn as that kernel's output node."""

  def __init__(self):
    self.kernels = 0
    self.made: dict[int, tuple] = {}  # id(base) -> (the base, kept alive so the id stays its, its kernel's root node)
    self.inputs: dict[int, tuple] = {}  # id(realized base) -> (the base, its DOT node)
    self.lines: list[str] = []
    self.edges: list[str] = []

  def add(self, items):
    kernels = [si for si in items if si.ast is not None]
    for k, si in enumerate(kernels, start=self.kernels):  # a CAT's pieces share an output: the first piece's makes it
      if id(si.out) not in self.made or self.made[id(si.out)][0] is not si.out: self.made[id(si.out)] = (si.out, f"k{k}_root")
    for k, si in enumerate(kernels, start=self.kernels): self._kernel(k, si)
    self.kernels += len(kernels)

  def _source(self, base) -> str | None:
    """The DOT node of a buffer computed outside the kernel being drawn, or None for a node inlined into it."""
    made = self.made.get(id(base))
    if made is not None and made[0] is base: return made[1]
    if base.realized is None: return None
    if id(base) not in self.inputs or self.inputs[id(base)][0] is not base:
      self.inputs[id(base)] = (base, f"in{len(self.inputs)}")
      self.lines.append(f'  {self.inputs[id(base)][1]} [label="{base.dtype.name} {tuple(base.shape)}", shape=ellipse, '
                        'style=filled, fillcolor="#e8e8e8"];')
    return self.inputs[id(base)][1]

  def _kernel(self, k: int, si):
    own: dict[int, str] = {}  # id(lazy node) -> its DOT node in this kernel
    body: list[str] = []
    root = self.made[id(si.out)][1]
    stack = [(si.out, None)]  # (node, the DOT node reading it), depth first: graphs can be deep
    while stack:
      lb, reader = stack.pop()
      base = lb.base
      if base is si.out: me = root
      else: me = own.get(id(base)) or self._source(base)
      if reader is not None:
        self.edges.append(f'  {me or f"k{k}_n{len(own)}"} -> {reader}{" [style=dashed]" if lb is not base else ""};')
      if me is not None and (base is not si.out or id(base) in own): continue
      if me is None: me = f"k{k}_n{len(own)}"
      own[id(base)] = me
      fill = ', fillcolor="#ffe9b0"' if base is si.out else ""  # the kernel's output
      body.append(f'    {me} [label="{_node_text(base)}"{fill}];')
      stack.extend((s, me) for s in reversed(base.srcs))
    self.lines += [f"  subgraph cluster_{k} {{", f'    label="kernel {k}: {kernel_label(si.ast)}"; style="rounded,filled"; '
                   'fillcolor="#f3f6fc"; color="#7a90c0"; fontname="Helvetica"; fontsize=11;', *body, "  }"]

  def text(self) -> str:
    return "\n".join(["digraph schedule {", "  rankdir=TB;",
                      '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", fontsize=10];',
                      '  edge [color="#555555"];', *self.lines, *self.edges, "}"]) + "\n"
