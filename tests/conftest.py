"""Test-wide settings: lowering checks that every unmasked load stays inside its buffer (see codegen/lower.py), and
the scheduler that every schedule it reuses is the one it would make afresh (see schedule.py)."""
import os

os.environ.setdefault("LAZYGRAD_CHECK_BOUNDS", "1")
os.environ.setdefault("LAZYGRAD_CHECK_SCHEDULES", "1")  # every reused schedule is compared with a fresh one
# the suite runs in parallel processes already: build workers (see backends/opencl.py) would only compete with them
os.environ.setdefault("LAZYGRAD_BUILD_WORKERS", "0")
