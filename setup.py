"""Installs lazygrad; the top-level backends/ folder becomes the package lazygrad.backends."""
from setuptools import find_packages, setup

setup(
  packages=find_packages(include=["lazygrad", "lazygrad.*"]) + ["lazygrad.backends"],
  package_dir={"lazygrad.backends": "backends"},
)
