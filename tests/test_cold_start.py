"""A new model's first step: the kernels a realize needs are built together, a build that fails names its kernel and
leaves nothing half computed, and a new process builds the same batches again (which the driver's cache holds). A
warm start: `import lazygrad` loads no backend, and a batch built a second time loads from a binary the third."""
import importlib
import re

import numpy as np
import pytest

import lazygrad as lg
from lazygrad import device as devices, helpers
from lazygrad.tensor import realize
from tests.helpers import forget_kernels

pytestmark = pytest.mark.skipif(devices.default_device() != "OPENCL:0", reason="OpenCL's batched builds")
opencl = importlib.import_module("lazygrad.backends.opencl")


@pytest.fixture
def builds(monkeypatch, tmp_path):
  """As in a new process with an empty disk cache; yields the list of every program built, as (source, kernels)."""
  monkeypatch.setattr(helpers, "cache_dir", lambda: tmp_path)
  dev = forget_kernels(monkeypatch, devices.get("OPENCL"))
  built, compile = [], dev.compile
  monkeypatch.setattr(dev, "compile", lambda src, name, kernels=1, *again: built.append((src, kernels)) or compile(src, name, kernels, *again))
  return built


def kernel_names(src: str) -> list[str]:
  return re.findall(r"__kernel void (\w+)\(", src)


def two_reductions(scale: float):
  """Tensors that take two kernels with `scale` in their source: a reduction, and one that adds it to another."""
  x = lg.Tensor(np.arange(48, dtype=np.float32).reshape(6, 8))
  a, b = (x * scale).exp().sum(1), (x - scale).amax(0)
  return a, b, a[:4] + b[:4] * 2, x.numpy().astype(np.float64)


def test_a_realizes_new_kernels_are_built_as_one_program(builds):
  before = lg.compile_count()
  a, b, c, xn = two_reductions(0.0123)
  np.testing.assert_allclose(c.numpy(), (np.exp(xn * 0.0123).sum(1)[:4] + (xn - 0.0123).max(0)[:4] * 2), rtol=1e-5)
  [(src, kernels)] = builds
  assert kernels == 2 and len(kernel_names(src)) == 2
  assert lg.compile_count() - before == 2  # counted as kernels, not programs


def test_a_new_process_builds_a_kernel_in_the_batch_it_was_first_built_in(builds, monkeypatch):
  """The batch's text is the same, so the driver's own cache (PoCL's, on a CPU) has it and the machine code made
  for it; another batch would be built and compiled afresh."""
  a, b, _, xn = two_reductions(0.0456)
  realize(a, b)
  [(first, _)] = builds
  forget_kernels(monkeypatch, devices.get("OPENCL"))  # a new process, with the disk cache of the first
  a, _, _, xn = two_reductions(0.0456)
  np.testing.assert_allclose(a.numpy(), np.exp(xn * 0.0456).sum(1), rtol=1e-5)  # one of the batch's two kernels
  assert [src for src, _ in builds] == [first, first]


def test_a_batch_a_second_process_builds_loads_from_a_binary_in_the_next(builds, monkeypatch, tmp_path):
  """A batch's text built again from source (PoCL preprocesses it for 60 ms even when its cache holds the program)
  is sent to the helper process that makes its binary (0.1 s a kernel to make); a later process loads that binary."""
  dev = devices.get("OPENCL")
  monkeypatch.setattr(dev, "make_binaries", True)
  monkeypatch.setattr(dev, "binary_maker", None)
  monkeypatch.setenv("LAZYGRAD_CACHE_DIR", str(tmp_path))  # the helper's disk cache is this test's
  realize(*two_reductions(0.0654)[:2])  # a first process: built and filed as a batch
  assert dev.binary_maker is None
  forget_kernels(monkeypatch, dev)
  realize(*two_reductions(0.0654)[:2])  # a second: the same batch built from source again, and its binary asked for
  maker = dev.binary_maker
  maker.proc.stdin.close()  # as when this process ends: the helper files what it was sent, then stops
  assert maker.proc.wait(timeout=120) == 0
  forget_kernels(monkeypatch, devices.get("OPENCL"))
  Program, made = dev.cl.Program, []
  monkeypatch.setattr(dev.cl, "Program", lambda *args: made.append("binary" if len(args) == 3 else "source") or Program(*args))
  a, b, _, xn = two_reductions(0.0654)
  realize(a, b)
  assert made == ["binary"] and len({src for src, _ in builds}) == 1  # the third: the batch's binary, no source build
  np.testing.assert_allclose(a.numpy(), np.exp(xn * 0.0654).sum(1), rtol=1e-5)
  np.testing.assert_allclose(b.numpy(), (xn - 0.0654).max(0), rtol=1e-5)
  assert dev.binary_maker is maker  # nothing more asked of a helper


def test_a_helper_whose_cache_folder_was_removed_files_nothing(monkeypatch, tmp_path):
  """A bench's or a test's temporary cache can go while its helper still has batches to make binaries for."""
  import json
  dev = devices.get("OPENCL")  # opened first: PoCL makes its own cache folder as it starts
  gone = tmp_path / "removed"
  monkeypatch.setattr(helpers, "cache_dir", lambda: gone)
  monkeypatch.setattr(opencl, "cache_dir", lambda: gone)
  source = "__kernel void k(__global float* a) { a[get_global_id(0)] = 1.0f; }"  # as read before the folder went
  monkeypatch.setattr(opencl, "disk_cache_get", lambda table, key: json.dumps([[source, "k"]]).encode())
  opencl.make_binaries(dev.ctx, dev.device, ["ab12\n"])
  assert not gone.exists()


def test_work_for_every_process_is_claimed_by_one_until_its_claim_lapses(builds):
  """Processes that build a batch from source before its binary is filed leave it to the first one's helper; a claim
  left by a helper that died lapses."""
  claim = lambda key, seconds=60: helpers.disk_cache_claim("claims", key, seconds)
  assert claim("ab12") and not claim("ab12") and claim("cd34")
  assert not claim("ab12", seconds=1e6) and claim("ab12", seconds=0) and not claim("ab12")  # lapsed, claimed again
  helpers.disk_cache_drop("claims", "ab12")
  assert claim("ab12")


IMPORT_ONLY = """
import sys
import lazygrad as lg
print(*sorted(m for m in OPTIONAL if m in sys.modules))
lg.Tensor([1.0, 2.0]).exp().numpy()
print(*sorted(m for m in OPTIONAL if m in sys.modules))
"""


def test_import_lazygrad_loads_no_backend_or_optional_package_until_a_tensor_needs_it():
  """`import lazygrad` costs what a CPU tensor needs, no more: pyopencl (0.1 s to import) and the device wait for
  the first tensor, and the other backends, the optional extras and lazygrad's own optional rooms for their use."""
  import subprocess
  import sys
  optional = ["pyopencl", "triton", "torch", "onnx", "mpi4py", "lazygrad.backends.opencl", "lazygrad.backends.triton",
              "lazygrad.nn", "lazygrad.onnx", "lazygrad.distributed", "lazygrad.profiler", "lazygrad.linalg", "lazygrad.state"]
  script = f"OPTIONAL = {optional!r}" + IMPORT_ONLY
  run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr
  assert run.stdout.splitlines() == ["", "lazygrad.backends.opencl pyopencl"]


@pytest.fixture
def broken_second(monkeypatch):
  """The renderer emits invalid source for the second kernel it renders."""
  render, rendered = opencl.render, []

  def bad_render(plan, *args):
    src, name = render(plan, *args)
    rendered.append(name)
    return (src.replace("{\n", "{\n  this_is_not_c;\n", 1) if len(rendered) == 2 else src), name
  monkeypatch.setattr(opencl, "render", bad_render)
  return rendered


def test_a_batch_with_a_kernel_that_fails_to_build_names_that_kernel(builds, broken_second, monkeypatch):
  a, b, c, xn = two_reductions(0.0789)
  with pytest.raises(opencl.KernelError) as info:
    c.numpy()
  message = str(info.value)
  assert f"failed to compile kernel {broken_second[1]}:" in message and "this_is_not_c" in message
  assert kernel_names(message.split("--- source ---")[1]) == [broken_second[1]]  # its source alone
  # nothing of the failed schedule is kept: a kernel that ran before the build failed left no half-computed state
  assert a.lazydata.base.realized is None and c.lazydata.base.realized is None
  monkeypatch.undo()  # the renderer works again
  np.testing.assert_allclose(c.numpy(), (np.exp(xn * 0.0789).sum(1)[:4] + (xn - 0.0789).max(0)[:4] * 2), rtol=1e-5)


def five_kernels(scale: float):
  """Tensors that take five kernels with `scale` in their source, and NumPy's result for their sum."""
  x = lg.Tensor(np.arange(48, dtype=np.float32).reshape(6, 8))
  parts = [(x * scale).exp().sum(1), (x - scale).amax(0)[:6], (x * scale).sin().sum(1), (x + scale).amin(1),
           (x * (scale + 1)).sum(1)]
  xn = x.numpy().astype(np.float64)
  expected = (np.exp(xn * scale).sum(1) + (xn - scale).max(0)[:6] + np.sin(xn * scale).sum(1) + (xn + scale).min(1) +
              (xn * (scale + 1)).sum(1))
  return parts, expected


@pytest.fixture
def workers(builds, monkeypatch):
  """One build worker, worth starting for any number of new kernels; yields the texts sent to it."""
  dev = devices.get("OPENCL")
  monkeypatch.setattr(dev, "build_workers", 1)
  monkeypatch.setattr(opencl, "WORKER_START", 0.0)
  monkeypatch.setattr(opencl, "FIRST_BUILD", 0.0)
  monkeypatch.setattr(opencl, "MIN_SHARE", 1)
  sent, send = [], opencl.BuildWorker.send
  monkeypatch.setattr(opencl.BuildWorker, "send", lambda self, text, launches: sent.append(text) or send(self, text, launches))
  return sent


def test_a_build_worker_compiles_a_share_of_a_realizes_new_kernels(builds, workers):
  parts, expected = five_kernels(0.0135)
  total = parts[0]
  for p in parts[1:]: total = total + p
  np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5)
  [text] = workers
  assert len(kernel_names(text)) == 2  # of the five, the worker compiled two, and this process three
  assert sorted(len(kernel_names(src)) for src, _ in builds) == [2, 3] and text in [src for src, _ in builds]
  assert devices.get("OPENCL").workers[0].alive()  # it waits for the next realize's


def test_build_workers_start_while_the_schedule_is_lowered(builds, workers, monkeypatch):
  """Once EARLY_START new kernels that no cache holds wait to be built, the worker starts, while this process lowers
  the schedule's other kernels: it is running when the kernels are handed out."""
  dev = devices.get("OPENCL")
  for w in dev.workers: w.proc.kill()
  monkeypatch.setattr(dev, "workers", [])
  monkeypatch.setattr(dev, "fresh_waiting", 0)
  monkeypatch.setattr(opencl, "EARLY_START", 2)
  running, shares = [], opencl.Device._compile_shares
  monkeypatch.setattr(opencl.Device, "_compile_shares",
                      lambda self, *a: running.append([w.alive() for w in self.workers]) or shares(self, *a))
  parts, expected = five_kernels(0.0357)
  total = parts[0]
  for p in parts[1:]: total = total + p
  np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5)
  assert running == [[True]] and len(workers) == 1

def test_a_build_worker_that_dies_costs_only_time(builds, workers, monkeypatch):
  monkeypatch.setattr(opencl.BuildWorker, "done", lambda self, timeout: self.proc.kill() or False)
  parts, expected = five_kernels(0.0246)
  total = parts[0]
  for p in parts[1:]: total = total + p
  np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5)
  assert len(workers) == 1 and sorted(len(kernel_names(src)) for src, _ in builds) == [2, 3]


CONCURRENT = """
import numpy as np, lazygrad as lg
x = lg.Tensor(np.arange(48, dtype=np.float32).reshape(6, 8))
y = ((x * 0.0357).exp().sum(1) + (x - 0.0357).amax(0)[:6] + (x * 0.0357).cos().sum(1)).numpy()
xn = np.arange(48, dtype=np.float64).reshape(6, 8)
expected = np.exp(xn * 0.0357).sum(1) + (xn - 0.0357).max(0)[:6] + np.cos(xn * 0.0357).sum(1)
assert np.allclose(y, expected, rtol=1e-5), (y, expected)
print(lg.compile_count())
"""


def test_processes_that_share_a_cache_build_the_same_kernels_at_once(tmp_path):
  """Parallel test workers and ranks fill one disk cache: entries are written whole (to a private file, then renamed),
  so a process reading one at the same time never sees half of it; a process after them builds only what is cached."""
  import os
  import subprocess
  import sys
  env = {**os.environ, "LAZYGRAD_CACHE_DIR": str(tmp_path), "LAZYGRAD_BUILD_WORKERS": "0"}
  env.pop("POCL_CACHE_DIR", None)  # PoCL's own cache goes with ours, in the same fresh folder
  run = lambda: subprocess.Popen([sys.executable, "-c", CONCURRENT], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
  procs = [run() for _ in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
  assert not list(tmp_path.rglob("*.tmp"))  # nothing half written is left behind
  later = run()
  out, err = later.communicate(timeout=300)
  assert later.returncode == 0, err
  assert (tmp_path / "pocl").is_dir() and out.split() == ["0"]  # every kernel loaded, none built


def test_two_kernels_with_one_source_build_once(builds):
  """A (128, 512) and a (512, 128) parameter's updates are different ASTs with the same elementwise source."""
  # big enough that each shape is built for its own numbers (small ones share a kernel with sizes as arguments)
  an, bn = np.arange(65536, dtype=np.float32).reshape(128, 512), np.arange(65536, dtype=np.float32).reshape(512, 128)
  a, b = lg.Tensor(an) * 3.75 + 1.25, lg.Tensor(bn) * 3.75 + 1.25
  realize(a, b)
  np.testing.assert_allclose(a.numpy(), an * 3.75 + 1.25)
  np.testing.assert_allclose(b.numpy(), bn * 3.75 + 1.25)
  assert [kernels for _, kernels in builds] == [1]
