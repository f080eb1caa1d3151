"""ONNX sequences (a Python list of Tensors flowing as one value) and optionals (a value or None)."""
from __future__ import annotations
import numpy as np
from lazygrad.tensor import Tensor, cat, stack
from lazygrad.onnx.registry import op, Sequence
from lazygrad.onnx.ops.shape import ints, axis_of, host_tensor


def _position(n, seq, pos, default: int) -> int:
  """A position counted from the back where negative; SequenceInsert may also name the end (len(seq))."""
  p = default if pos is None else int(n.host(pos).reshape(-1)[0])
  top = len(seq) + (1 if n.op_type == "SequenceInsert" else 0)
  if not -len(seq) <= p < top: raise IndexError(f"{n.op_type}: position {p} is out of range for a sequence of {len(seq)}")
  return p + len(seq) if p < 0 else p


@op("SequenceConstruct")
def sequence_construct(n, *xs): return Sequence(xs)


@op("SequenceEmpty")
def sequence_empty(n): return Sequence()


@op("SequenceAt")
def sequence_at(n, seq, pos): return seq[_position(n, seq, pos, 0)]


@op("SequenceInsert")
def sequence_insert(n, seq, x, pos=None):
  out = Sequence(seq)
  out.insert(_position(n, seq, pos, len(seq)), x)
  return out


@op("SequenceErase")
def sequence_erase(n, seq, pos=None):
  out = Sequence(seq)
  del out[_position(n, seq, pos, -1)]
  return out


@op("SequenceLength")
def sequence_length(n, seq): return host_tensor(n, np.array(len(seq), np.int64))


@op("ConcatFromSequence")
def concat_from_sequence(n, seq):
  axis = n.attr("axis")
  if n.attr("new_axis", 0): return stack(list(seq), axis_of(n, axis, seq[0].ndim + 1))
  return cat(list(seq), axis_of(n, axis, seq[0].ndim))


@op("SplitToSequence")
def split_to_sequence(n, x, split=None):
  axis = axis_of(n, n.attr("axis", 0), x.ndim)
  if split is None:
    parts = x.split(1, axis)
    return Sequence(p.squeeze(axis) for p in parts) if not n.attr("keepdims", 1) else Sequence(parts)
  sizes = ints(n, split)
  return Sequence(x.split(sizes[0] if split.ndim == 0 else sizes, axis))


@op("SequenceMap")
def sequence_map(n, seq, *extra):
  body = n.attr("body")
  names = [vi.name for vi in body.inputs]
  outs = [Sequence() for _ in n.outputs]
  for i in range(len(seq)):
    args = [seq[i]] + [e[i] if isinstance(e, Sequence) else e for e in extra]
    for k, y in enumerate(body.run(dict(zip(names, args)), n.scope)): outs[k].append(y)
  return tuple(outs) if len(outs) != 1 else outs[0]


@op("Optional")
def optional(n, x=None): return x


@op("OptionalHasElement")
def optional_has_element(n, x=None):
  return host_tensor(n, np.array(x is not None))


@op("OptionalGetElement")
def optional_get_element(n, x):
  if x is None: raise ValueError("OptionalGetElement: the optional is empty")
  return x
