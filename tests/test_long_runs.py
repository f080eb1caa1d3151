"""Long runs: the host runs a bounded amount of work ahead of the device, memory held for queued work is freed as the
work completes, and a training loop that never reads its loss runs under glibc's malloc checks with flat memory."""
import os
import subprocess
import sys

import numpy as np
import pytest

import lazygrad as lg
from lazygrad import device as devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
opencl_only = pytest.mark.skipif(not devices.default_device().startswith("OPENCL"), reason="the OpenCL queue's bound")


@pytest.fixture
def cl_device():
  from lazygrad.backends import opencl
  dev = devices.get(devices.default_device())
  dev.synchronize()
  return opencl, dev


@opencl_only
def test_the_host_runs_at_most_a_bounded_number_of_launches_ahead(cl_device, monkeypatch):
  opencl, dev = cl_device
  monkeypatch.setattr(opencl, "RUNAHEAD_LAUNCHES", 64)
  x = lg.Tensor(np.zeros(1 << 12, np.float32))
  ahead = []
  for _ in range(600):
    x = (x + 1).realize()
    ahead.append(dev.inflight_launches + dev.unmarked)
  assert max(ahead) <= 64 + opencl.MARK_EVERY
  assert max(ahead) >= 32  # the host did run ahead: the bound is what stopped it
  np.testing.assert_array_equal(x.numpy(), np.full(1 << 12, 600, np.float32))


@opencl_only
def test_uploads_private_copies_in_flight_are_bounded(cl_device, monkeypatch):
  opencl, dev = cl_device
  monkeypatch.setattr(opencl, "RUNAHEAD_BYTES", 1 << 20)
  chunk = np.arange(1 << 16, dtype=np.float32)  # 256 KiB
  total = lg.Tensor(np.zeros(1 << 16, np.float32))
  held = []
  for k in range(100):
    total = (total + lg.Tensor(chunk + k)).realize()
    held.append(dev.inflight_bytes)
  assert max(held) <= (1 << 20) + chunk.nbytes
  np.testing.assert_array_equal(total.numpy(), 100 * chunk + sum(range(100)))


@opencl_only
def test_what_queued_work_holds_is_freed_as_it_completes_not_at_the_next_sync(cl_device):
  _, dev = cl_device
  a = lg.Tensor(np.ones((768, 768), np.float32))
  (a @ a).realize()  # tens of milliseconds of work: the uploads queue behind it
  for k in range(40): lg.Tensor(np.full(1 << 14, k, np.float32)).realize()
  assert dev.inflight_bytes > 0
  dev.queue.finish()  # the device is done; lazygrad has not been told
  last = lg.Tensor(np.ones(1 << 14, np.float32))
  assert dev.inflight_bytes <= last.numel() * 4  # every upload before it let go of its host copy
  assert len(dev.inflight) <= 1


@opencl_only
def test_empty_cache_waits_for_queued_work_before_releasing_memory(cl_device):
  _, dev = cl_device
  x = lg.Tensor(np.ones(1 << 16, np.float32))
  for _ in range(50): x = (x * 1.0001).realize()
  del x
  lg.empty_cache()
  assert lg.memory_stats()["cached"] == 0
  assert dev.inflight_launches == dev.unmarked == 0 and not dev.inflight  # the queue had finished


def test_a_loop_that_never_reads_its_loss_runs_under_glibc_malloc_checks():
  """The soak's short version (see bench/soak.py; `make soak` runs the long one): about 20,000 launches queued without
  a sync, in a process whose every malloc and free glibc checks; it exits 0 only if resident memory stayed flat."""
  env = dict(os.environ, PYTHONMALLOC="malloc", MALLOC_CHECK_="3", MALLOC_PERTURB_="165")
  run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "soak.py"), "mlp", "--steps", "600"], env=env,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout + run.stderr
  assert "(flat)" in run.stdout


def test_the_garbage_collector_is_paused_while_a_graph_is_scheduled_and_left_as_it_was(monkeypatch):
  # a big graph's scheduling made hundreds of thousands of objects, and the collections they set off walked every
  # object alive: a new sequence length of the bench LSTM's jitted step took up to 2x as long
  import gc
  from lazygrad import lazy
  seen = []
  real = lazy.schedule
  monkeypatch.setattr(lazy, "schedule", lambda outs: seen.append(gc.isenabled()) or real(outs))
  was = gc.isenabled()
  try:
    for enabled in (True, False):
      (gc.enable if enabled else gc.disable)()
      x = lg.Tensor(np.arange(4, dtype=np.float32), requires_grad=True)
      (x * x).sum().backward()
      np.testing.assert_array_equal(x.grad.numpy(), [0, 2, 4, 6])
      assert gc.isenabled() == enabled
  finally: (gc.enable if was else gc.disable)()
  assert seen and not any(seen)
