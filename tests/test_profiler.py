"""lazygrad.profiler: launches recorded one per kernel, flops counted from ASTs, the table, the Chrome trace, the
schedule graph's DOT text and its error without Graphviz, and the roofline's cache."""
import io
import json
import numpy as np
import pytest
import lazygrad as lg
from lazygrad import device as devices
from lazygrad import profiler
from lazygrad.schedule import schedule

PEAKS = {"name": "test device", "gbps": 10.0, "gflops": 100.0, "launch_us": 1.0, "measured": "2026-12-07T00:00:00+00:00"}


def tensor(*shape, seed=0):
  return lg.Tensor(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)).realize()


def only_kernel(t):
  items = schedule([t.lazydata.base])
  assert len(items) == 1
  return items[0].ast


@pytest.fixture
def fixed_roofline(monkeypatch):
  monkeypatch.setattr(profiler, "roofline", lambda device=None, remeasure=False: PEAKS)


def test_matmul_flops_exact():
  a, b = tensor(7, 5), tensor(5, 3, seed=1)
  ast = only_kernel(a @ b)
  assert profiler.kernel_flops(ast) == 2 * 7 * 3 * 5
  assert profiler.kernel_label(ast) == "matmul"


def test_elementwise_chain_flops_and_label():
  x = tensor(4, 6)
  ast = only_kernel(((x * 2 + 1).sqrt() - x).cast(lg.float16))
  assert profiler.kernel_flops(ast) == 4 * 24  # mul, add, sqrt, sub; the cast is not arithmetic
  assert profiler.kernel_label(ast) == "mul+add+sqrt+sub+cast"


def test_a_row_kernel_counts_its_per_row_values_once():
  """A softmax's row kernel (OpenCL) computes each row's max and sum once, not once per element that reads them:
  max, sub, exp, sum and div, 5 flops an element."""
  x = tensor(8, 64)
  if not devices.get(x.device).row_kernels: pytest.skip("a backend that writes row kernels")
  ast = only_kernel(x.softmax(-1))
  assert profiler.kernel_flops(ast) == 5 * 8 * 64
  assert profiler.kernel_label(ast) == "max+sub+exp+sum+div"


def test_broadcast_work_counted_where_recomputed():
  # an inlined (4, 1) product read through an expand to (4, 6) is computed for each of the 24 elements
  x, y = tensor(4, 1), tensor(4, 6, seed=1)
  assert profiler.kernel_flops(only_kernel(x * 3 + y)) == 24 + 24
  assert profiler.kernel_label(only_kernel((tensor(4, 2) @ tensor(2, 6, seed=2) + y).relu())) == "matmul+add+relu"
  assert profiler.kernel_label(only_kernel((x * y).sum(axis=1))) == "mul+sum"  # a product with one broadcast operand


def test_launches_counted_and_tabled(fixed_roofline):
  a, b, c = tensor(32, 16), tensor(16, 8, seed=1), tensor(8, seed=2)
  (a @ b + c).relu().sum().realize()  # built before the profile
  before = lg.kernel_count()
  with profiler.profile() as prof:
    out = (a @ b + c).relu().sum().realize()
  kernels = lg.kernel_count() - before
  assert devices.profiling is None and kernels >= 2
  assert len(prof.launches) == kernels
  assert all(launch.end_ns >= launch.start_ns > 0 for launch in prof.launches)
  assert sum(launch.flops for launch in prof.launches if "matmul" in launch.label) == 2 * 32 * 8 * 16 + 2 * 32 * 8
  assert prof.launches[0].bytes == (32 * 16 + 16 * 8 + 8 + 32 * 8) * 4 or "matmul" not in prof.launches[0].label
  rows = prof.rows()
  assert sum(row["calls"] for row in rows) == kernels
  assert [row["seconds"] for row in rows] == sorted((row["seconds"] for row in rows), reverse=True)
  text = io.StringIO()
  prof.table(file=text)
  lines = text.getvalue().splitlines()
  assert lines[0].startswith(f"lazygrad profile: {kernels} kernel launches")
  table = lines[lines.index(next(line for line in lines if line.startswith("---"))) + 1:]
  assert len(table) == len(rows) and table[0].startswith(rows[0]["op"])
  assert np.isclose(out.numpy(), np.maximum(a.numpy() @ b.numpy() + c.numpy(), 0).sum(), rtol=1e-4)


def test_roofline_and_bound_in_rows():
  prof = profiler.Profile()
  # 1 ms for 10 MB and 1 MFLOP: 10 GB/s is the whole of a 10 GB/s peak; 1 GFLOP/s is 1% of 100
  prof.launches = [profiler.Launch("OPENCL:0", "k", "add", 10_000_000, 1_000_000, 0, 1_000_000, "event"),
                   profiler.Launch("OPENCL:0", "m", "matmul", 1000, 50_000_000, 0, 1_000_000, "event"),
                   profiler.Launch("OPENCL:0", "t", "sum", 8, 1, 0, 500, "event")]
  rows = {row["kernel"]: row for row in prof.rows({"OPENCL:0": PEAKS})}
  assert rows["k"]["gbps"] == pytest.approx(10.0) and rows["k"]["roofline_pct"] == pytest.approx(100.0)
  assert rows["k"]["bound"] == "bandwidth"
  assert rows["m"]["gflops"] == pytest.approx(50.0) and rows["m"]["roofline_pct"] == pytest.approx(50.0)
  assert rows["m"]["bound"] == "flops"
  assert rows["t"]["bound"] == "launch"  # 0.5 us on the device; sending one takes the host 1 us


def test_chrome_trace_one_event_per_launch(tmp_path):
  x = tensor(64, 64)
  with profiler.profile() as prof:
    (x.exp() @ x).sum(axis=0).realize()
    (x + 1).realize()
  path = tmp_path / "trace.json"
  prof.export_chrome_trace(path)
  events = json.loads(path.read_text())["traceEvents"]
  complete = [e for e in events if e["ph"] == "X"]
  assert len(complete) == len(prof.launches) >= 2
  assert [e["name"] for e in complete] == [launch.label for launch in prof.launches]
  assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in complete) and complete[0]["ts"] == 0


def test_jit_replays_are_recorded():
  w = tensor(8, 4)

  @lg.jit
  def step(x): return (x @ w).relu().sum(axis=1)
  x = tensor(16, 8, seed=1)
  for _ in range(4): step(x)  # runs, records twice, then replays
  before = lg.kernel_count()
  with profiler.profile() as prof:
    out = step(x)
  assert len(prof.launches) == lg.kernel_count() - before >= 1
  assert "matmul" in prof.launches[0].label
  np.testing.assert_allclose(out.numpy(), np.maximum(x.numpy() @ w.numpy(), 0).sum(axis=1), rtol=1e-5)


def test_profiles_do_not_nest_and_restore_the_queue():
  dev = devices.get(lg.Tensor([0]).device)
  queue = getattr(dev, "queue", None)
  with profiler.profile():
    (tensor(3) + 1).realize()
    with pytest.raises(RuntimeError, match="profiles do not nest"):
      with profiler.profile(): pass
  assert devices.profiling is None and getattr(dev, "queue", None) is queue


def test_schedule_graph_groups_nodes_by_kernel(tmp_path):
  x, w = tensor(16, 8), tensor(8, 4, seed=1)
  y = (x @ w).relu().sum()
  items = schedule([y.lazydata.base])
  text = profiler.schedule_graph(y, tmp_path / "g.dot")
  assert (tmp_path / "g.dot").read_text() == text
  assert text.count("subgraph cluster_") == len(items) >= 2
  first, second = text.split("subgraph cluster_")[1:3]
  # the matmul's product, its sum and the relu after it are one kernel's nodes; the final sum is the next kernel's
  assert 'label="kernel 0: matmul+relu"' in first
  assert all(f'label="{n}"' in first.split("}")[0] for n in ("mul (16, 4, 8)", "sum (16, 4, 1)", "relu (16, 4)"))
  assert 'label="kernel 1: sum"' in second and 'k1_root [label="sum (1, 1)"' in second
  assert "k0_root -> k1_root" in text
  assert text.count("shape=ellipse") == 2  # the two realized inputs, drawn once each
  assert y.lazydata.base.realized is None  # nothing computed


def test_schedule_graph_of_a_step_draws_every_kernel_it_runs(tmp_path):
  w = tensor(8, 4, seed=1).requires_grad_()
  x = tensor(16, 8)
  opt = lg.optim.SGD([w], lr=0.1)

  def step():
    loss = (x @ w).relu().sum()
    opt.zero_grad(); loss.backward(); opt.step()
  step()  # built before
  before = lg.kernel_count()
  text = profiler.schedule_graph(step, tmp_path / "step.dot")
  kernels = lg.kernel_count() - before
  assert text.count("subgraph cluster_") == kernels >= 2
  assert w.lazydata.base.realized is not None  # the step ran


def test_schedule_graph_without_dot_says_how_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setattr(profiler.shutil, "which", lambda name: None)
  path = tmp_path / "g.svg"
  with pytest.raises(RuntimeError) as e:
    profiler.schedule_graph(tensor(3) + 1, path)
  assert str(e.value) == (f"lazygrad.profiler.schedule_graph: rendering {path} needs Graphviz's `dot` program, which is "
                          "not on this machine's PATH. Install Graphviz (`apt-get install graphviz`, `brew install "
                          "graphviz`, or https://graphviz.org/download/), or give a path ending in .dot: the graph is "
                          "then written as text, with no program needed")
  with pytest.raises(ValueError, match="should end in .dot, .svg, .png or .pdf"):
    profiler.schedule_graph(tensor(3) + 1, tmp_path / "g.txt")


def test_roofline_measured_once_and_kept(tmp_path, monkeypatch):
  monkeypatch.setattr(profiler, "cache_dir", lambda: tmp_path)
  calls = []
  monkeypatch.setattr(profiler, "_measure", lambda dev: calls.append(dev.name) or dict(PEAKS, name=dev.ident))
  first, again = profiler.roofline(), profiler.roofline()
  assert first == again and len(calls) == 1
  ident = devices.get(None).ident
  assert json.loads((tmp_path / "roofline.json").read_text()) == {ident: dict(PEAKS, name=ident)}
  profiler.roofline(remeasure=True)
  assert len(calls) == 2
