"""Faults in the middle of a training step (out of device memory, a kernel that does not build, Ctrl-C) raise a clear
error and leave the parameters and the optimizer's state as they were before the step, so the next step gives what an
uninterrupted run gives, eagerly and under lg.jit."""
import numpy as np
import pytest

import lazygrad as lg
from lazygrad import device as devices
from lazygrad import nn
import lazygrad.nn.functional as F
from tests.helpers import forget_kernels

rng = np.random.default_rng(0)
BATCHES = [(rng.standard_normal((16, 12), dtype=np.float32), rng.integers(0, 5, 16)) for _ in range(4)]


def weights(width: int) -> list[np.ndarray]:
  return [np.random.default_rng(width).standard_normal(s, dtype=np.float32) * 0.3
          for s in ((width, 12), (width,), (5, width), (5,))]


def trainer(jit: bool, optimizer=lg.optim.Adam, width: int = 24):
  model = nn.Sequential(nn.Linear(12, width), nn.Tanh(), nn.Linear(width, 5))
  for p, w in zip(model.parameters(), weights(width)): p.assign(lg.Tensor(w))
  opt = optimizer(model.parameters(), lr=1e-2)

  def step(x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    return loss
  run = lg.jit(step) if jit else step
  return model, opt, lambda k: run(*[lg.Tensor(a) for a in BATCHES[k % len(BATCHES)]])


def values(model, opt) -> list[np.ndarray]:
  """The parameters and every tensor in the optimizer's state, as numbers."""
  out = [p.numpy() for p in model.parameters()]
  for p in model.parameters():
    out += [v.numpy() for _, v in sorted(opt.state.get(p, {}).items()) if isinstance(v, lg.Tensor)]
  return out


def assert_same(got: list, want: list, rtol: float = 0):
  assert len(got) == len(want)
  for g, w in zip(got, want): np.testing.assert_allclose(g, w, rtol=rtol, atol=0)


def check_fault(jit: bool, inject, error, match: str | None, steps_before: int = 4, optimizer=lg.optim.Adam, rtol=0):
  """Train `steps_before` steps, fail the next one with `inject` (given the device; returns an undo), check the error
  and that nothing changed, then train two more steps and compare with a run that never failed (to `rtol`)."""
  reference, ref_opt, ref_step = trainer(jit, optimizer)
  for k in range(steps_before + 2): ref_step(k)
  model, opt, step = trainer(jit, optimizer)
  for k in range(steps_before): step(k)
  before = values(model, opt)
  undo = inject(devices.get(devices.default_device()))
  with pytest.raises(error, match=match):
    step(steps_before).item()
  undo()
  assert_same(values(model, opt), before)
  for k in range(steps_before, steps_before + 2): step(k)
  assert_same(values(model, opt), values(reference, ref_opt), rtol)


def failing_after(obj, name: str, calls: int, exc: BaseException):
  """Make obj.name raise `exc` from its `calls`-th call on; returns the undo."""
  real, count = getattr(obj, name), [0]

  def fake(*args, **kwargs):
    count[0] += 1
    if count[0] >= calls: raise exc
    return real(*args, **kwargs)
  setattr(obj, name, fake)
  return lambda: delattr(obj, name)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_out_of_memory_in_the_middle_of_a_step(jit):
  # the allocator's own retry (free its cache, try again) fails too: a real out-of-memory
  oom = MemoryError("OpenCL: out of device memory allocating 1536 bytes")
  check_fault(jit, lambda dev: failing_after(dev.allocator, "_take", 6, oom), MemoryError, "out of device memory")


class _Proxy:
  """An object's stand-in whose attributes are the object's, except those set on the stand-in."""
  def __init__(self, real): self._real = real
  def __getattr__(self, name): return getattr(self._real, name)


def interrupting_launches(dev, calls: int):
  """Ctrl-C at the `calls`-th launch, whichever way launches go: through exec (eager code, a jit's recording) or, on
  OpenCL, straight to the queue (a jit's Replayer, see backends/opencl.py)."""
  undo = failing_after(dev, "exec", calls, KeyboardInterrupt())
  if not hasattr(dev, "cl"): return undo
  real, dev.cl = dev.cl, _Proxy(dev.cl)
  failing_after(dev.cl, "enqueue_nd_range_kernel", calls, KeyboardInterrupt())
  def undo_both():
    undo()
    dev.cl = real
  return undo_both


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_ctrl_c_in_the_middle_of_a_step(jit):
  check_fault(jit, lambda dev: interrupting_launches(dev, 5), KeyboardInterrupt, None)


@pytest.mark.skipif(not devices.default_device().startswith("OPENCL"), reason="OpenCL's held-back launches")
def test_ctrl_c_while_a_realizes_launches_are_being_sent():
  check_fault(False, lambda dev: failing_after(dev, "_launch", 7, KeyboardInterrupt()), KeyboardInterrupt, None)


def test_a_kernel_that_fails_to_build_in_the_middle_of_a_step(monkeypatch):
  """The step's kernels are new to the device (as for a new shape), and building them fails."""
  def inject(dev):
    forget_kernels(monkeypatch, dev)
    return failing_after(dev, "compile", 1, RuntimeError("OpenCL failed to compile kernel E_24_16: error: boom"))
  # the kernels built again may be the dynamic variants of the reference's (see codegen/dynamic.py), whose sums run in
  # another order: the last bit may differ
  check_fault(False, inject, RuntimeError, "failed to compile kernel E_24_16", optimizer=lg.optim.SGD, rtol=1e-6)


def test_a_first_step_that_fails_leaves_no_optimizer_state():
  model, opt, step = trainer(False)
  before = values(model, opt)
  undo = failing_after(devices.get(devices.default_device()), "exec", 3, KeyboardInterrupt())
  with pytest.raises(KeyboardInterrupt): step(0)
  undo()
  assert not opt.state and not any(opt.state.get(p) for p in model.parameters())
  assert_same(values(model, opt), before)
  reference, ref_opt, ref_step = trainer(False)
  ref_step(0); step(0)
  assert_same(values(model, opt), values(reference, ref_opt))


def interrupt_trials(trials: int = 8) -> None:
  """Run in a process of its own (see the test below): each trial trains a model of a new width, whose first step
  compiles new kernels, and a real SIGINT arrives at a different moment of it. Prints one line per trial."""
  import os, signal, threading
  for trial in range(trials):
    model, opt, step = trainer(False, width=40 + trial)
    before = values(model, opt)
    timer = threading.Timer(0.01 * (trial + 1), os.kill, (os.getpid(), signal.SIGINT))
    stepped = False
    try:
      timer.start()
      step(0)
      stepped = True
      timer.join()
      for _ in range(10**5): pass  # the signal is handled here at the latest
    except KeyboardInterrupt:
      if not stepped:
        assert_same(values(model, opt), before)
        step(0)  # again, uninterrupted
    reference, ref_opt, ref_step = trainer(False, width=40 + trial)
    ref_step(0)
    assert_same(values(model, opt), values(reference, ref_opt))
    print("finished" if stepped else "interrupted", flush=True)


def test_a_real_ctrl_c_at_any_moment_of_a_first_step():
  import os, subprocess, sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  run = subprocess.run([sys.executable, "-c", "from tests.test_faults import interrupt_trials; interrupt_trials()"],
                       cwd=root, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout + run.stderr
  assert run.stdout.split().count("interrupted") >= 2, run.stdout
