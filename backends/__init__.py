"""Backends, installed as lazygrad.backends: each module renders kernels for one runtime and runs them."""
