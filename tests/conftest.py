"""Test-wide settings: lowering checks that every unmasked load stays inside its buffer (see codegen/lower.py)."""
import os

os.environ.setdefault("LAZYGRAD_CHECK_BOUNDS", "1")
