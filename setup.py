"""Installs lazygrad; the top-level backends/ folder becomes the package lazygrad.backends."""
from setuptools import setup

setup(
  packages=["lazygrad", "lazygrad.codegen", "lazygrad.nn", "lazygrad.backends"],
  package_dir={"lazygrad.backends": "backends"},
)
