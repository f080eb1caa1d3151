"""Helpers shared by the tests."""
from lazygrad.codegen.dynamic import Specializer
from lazygrad.device import KernelCache


def with_families(dev) -> bool:
  """Families on for the device's specializer where its backend writes them (OpenCL, by default; see
  codegen/dynamic.py), whatever LAZYGRAD_FAMILIES says: whether it does."""
  dev.specializer.families = type(dev).__module__.endswith("opencl")
  return dev.specializer.families


def forget_kernels(monkeypatch, dev, every_number: bool | str = False):
  """The device as in a new process: no kernel compiled in memory, no kernel structure seen (`every_number`: each
  kernel built with all its numbers as arguments, or "offsets": all but sizes and strides, see codegen/dynamic.py)."""
  monkeypatch.setattr(dev, "kernels", KernelCache())
  monkeypatch.setattr(dev, "programs", KernelCache())
  if hasattr(dev, "batches"): monkeypatch.setattr(dev, "batches", KernelCache())  # OpenCL's built programs by source
  for name in ("shared_runs", "promoting"):  # OpenCL's promotions (see Device._promote): none counted or under way
    if hasattr(dev, name): monkeypatch.setattr(dev, name, KernelCache())
  monkeypatch.setattr(dev, "specializer", Specializer(every_number=every_number, families=dev.specializer.families))
  return dev
