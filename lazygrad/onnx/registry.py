"""The ONNX op registry: one small function per op, keyed by (domain, op name), each with the opset range it implements.

An op function is called as fn(node, *inputs): `node` gives the attributes (node.attr), the opset and host values of
small constant inputs (node.host); the inputs are lazygrad Tensors (None for an omitted optional input). It returns a
Tensor or a tuple of them, one per output.
"""
from __future__ import annotations

class Sequence(list):
  """An ONNX sequence value: a list of Tensors that flows through the graph as one value."""


OPS: dict[tuple[str, str], list[tuple[int, int | None, object]]] = {}
DOMAINS = {"": "", "ai.onnx": ""}  # the default domain has two spellings


def op(*names: str, since: int = 1, until: int | None = None, domain: str = ""):
  """Register fn for opsets since..until (inclusive; None: every later one) of each named op."""
  def register(fn):
    for name in names: OPS.setdefault((domain, name), []).append((since, until, fn))
    return fn
  return register


def lookup(domain: str, name: str, opset: int):
  """The function for `name` at `opset`, or None where no registered range covers it."""
  for since, until, fn in OPS.get((DOMAINS.get(domain, domain), name), ()):
    if since <= opset and (until is None or opset <= until): return fn
  return None


def supported(domain: str = "") -> list[str]:
  return sorted(name for d, name in OPS if d == domain)
