"""Views: movement ops (reshape, permute, expand, pad, shrink, flip) as index algebra, never as copies.

A View maps an index into its shape to a flat position in the buffer below it (offset + sum(index*stride)) and says
whether that index is valid (inside the mask; padding reads as zero). A ShapeTracker is a stack of views for the
movements one view cannot express (a reshape of a permuted view, say): each view's flat position is unravelled into
the shape of the view beneath it.
"""
from __future__ import annotations
from dataclasses import dataclass
from functools import cached_property, lru_cache
from math import prod
from lazygrad.symbolic import Node, Num, to_node, make_sum, make_and


def contiguous_strides(shape) -> tuple[int, ...]:
  strides, acc = [], 1
  for s in reversed(shape):
    strides.append(acc if s != 1 else 0)
    acc *= s
  return tuple(reversed(strides))


def unravel(shape, flat: Node) -> list[Node]:
  """Per-dimension indexes of a flat row-major position. A size may be a Node (a kernel argument, at least 1)."""
  if any(isinstance(s, int) and s == 0 for s in shape): return [Num(0)] * len(shape)  # no position to unravel
  idxs, acc = [], 1
  for i in reversed(range(len(shape))):
    s = shape[i]
    if isinstance(s, int) and s <= 1: idxs.append(Num(0))  # size 1: always 0; size 0: nothing is read
    elif i == 0: idxs.append(flat // acc)  # no modulo on the outermost dim: valid positions are in range
    else: idxs.append((flat // acc) % s)
    acc *= s
  return list(reversed(idxs))


@dataclass(frozen=True)
class View:
  shape: tuple[int, ...]
  strides: tuple[int, ...]
  offset: int = 0
  mask: tuple[tuple[int, int], ...] | None = None  # valid [lo, hi) per dim

  @staticmethod
  def create(shape, strides=None, offset=0, mask=None) -> View:
    shape = tuple(int(s) for s in shape)
    strides = contiguous_strides(shape) if strides is None else tuple(0 if s == 1 else st for s, st in zip(shape, strides))
    if mask is not None:
      mask = tuple((max(0, lo), min(s, hi)) for (lo, hi), s in zip(mask, shape))
      if any(lo >= hi for lo, hi in mask): mask = tuple((0, 0) for _ in shape)  # nothing is valid
      elif all(m == (0, s) for m, s in zip(mask, shape)): mask = None
    return View(shape, strides, int(offset), mask)

  def __hash__(self):  # views key the scheduler's kernel nodes, hashed for every load of every kernel: hash once
    if "_hash" not in self.__dict__: object.__setattr__(self, "_hash", hash((self.shape, self.strides, self.offset, self.mask)))
    return self.__dict__["_hash"]

  @cached_property
  def contiguous(self) -> bool:
    return self.offset == 0 and self.mask is None and self.strides == contiguous_strides(self.shape)

  def expr(self, idxs: list[Node]) -> tuple[Node, Node]:
    """(flat position, validity) at these indexes. Any number of the view may be a Node (a kernel argument): then
    the general form is kept, right for every value (a bound of 0 checked, a stride of 0 multiplied)."""
    flat = make_sum([to_node(self.offset)] + [i * st for i, st, s in zip(idxs, self.strides, self.shape)
                                              if not (isinstance(s, int) and s == 1)])
    valid = [Num(1)]
    if self.mask is not None:
      for i, (lo, hi), s in zip(idxs, self.mask, self.shape):
        if isinstance(lo, int) and isinstance(hi, int) and lo == hi: return flat, Num(0)
        if not (isinstance(lo, int) and lo <= 0): valid.append(i.ge(lo))
        if not (isinstance(hi, int) and isinstance(s, int) and hi >= s): valid.append(i.lt(hi))
    return flat, make_and(valid)

  # each movement returns a View, or None where one view cannot express it

  def permute(self, order) -> View:
    return View.create([self.shape[i] for i in order], [self.strides[i] for i in order], self.offset,
                       None if self.mask is None else [self.mask[i] for i in order])

  def expand(self, shape) -> View:
    mask = None if self.mask is None else [m if s == ns else ((0, ns) if m != (0, 0) else (0, 0))
                                           for m, s, ns in zip(self.mask, self.shape, shape)]
    return View.create(shape, [st if s == ns else 0 for st, s, ns in zip(self.strides, self.shape, shape)], self.offset, mask)

  def pad(self, padding) -> View:
    shape = [s + b + a for s, (b, a) in zip(self.shape, padding)]
    offset = self.offset - sum(b * st for (b, _), st in zip(padding, self.strides))
    old = self.mask or [(0, s) for s in self.shape]
    mask = [(lo + b, hi + b) for (lo, hi), (b, _) in zip(old, padding)]
    return View.create(shape, self.strides, offset, mask)

  def shrink(self, bounds) -> View:
    shape = [e - b for b, e in bounds]
    offset = self.offset + sum(b * st for (b, _), st in zip(bounds, self.strides))
    mask = None if self.mask is None else [(max(lo, b) - b, min(hi, e) - b) for (lo, hi), (b, e) in zip(self.mask, bounds)]
    return View.create(shape, self.strides, offset, mask)

  def flip(self, axes) -> View:
    strides, offset, mask = list(self.strides), self.offset, None if self.mask is None else list(self.mask)
    for a in axes:
      offset += (self.shape[a] - 1) * strides[a]
      strides[a] = -strides[a]
      if mask is not None: lo, hi = mask[a]; mask[a] = (self.shape[a] - hi, self.shape[a] - lo)
    return View.create(self.shape, strides, offset, mask)

  def reshape(self, shape) -> View | None:
    shape = tuple(shape)
    if self.shape == shape: return self
    if self.contiguous: return View.create(shape)
    # a view that reads one value everywhere (stride 0, no mask) reshapes to anything of the same size
    if all(st == 0 for st in self.strides) and self.mask is None: return View.create(shape, [0] * len(shape), self.offset)
    # drop size-1 dims, then match runs of old dims to runs of new dims with equal products
    old = [(s, st, m) for s, st, m in zip(self.shape, self.strides, self.mask or [None] * len(self.shape)) if s != 1]
    if self.mask is not None and any(m != (0, 1) for s, m in zip(self.shape, self.mask) if s == 1): return None
    new_strides, new_mask, oi = [], [], 0
    new_dims = [i for i, s in enumerate(shape) if s != 1]
    ni = 0
    while ni < len(new_dims) or oi < len(old):
      if ni >= len(new_dims) or oi >= len(old): return None
      # grow a group of old dims and a group of new dims until their sizes agree
      og, ng = [old[oi]], [shape[new_dims[ni]]]
      oi, ni = oi + 1, ni + 1
      while prod(o[0] for o in og) != prod(ng):
        if prod(o[0] for o in og) < prod(ng):
          if oi >= len(old): return None
          og.append(old[oi]); oi += 1
        else:
          if ni >= len(new_dims): return None
          ng.append(shape[new_dims[ni]]); ni += 1
      # the old dims of a group must be mergeable: each stride is the next one's stride times its size
      for (s0, st0, _), (s1, st1, _) in zip(og, og[1:]):
        if st0 != st1 * s1: return None
      masks = [m for _, _, m in og]
      if self.mask is not None:
        if len(og) != 1 or len(ng) != 1:
          if any(m != (0, s) for (s, _, _), m in zip(og, masks)): return None
          new_mask.extend((0, n) for n in ng)
        else: new_mask.append(masks[0])
      acc = og[-1][1]
      group = []
      for n in reversed(ng): group.append(acc); acc *= n
      new_strides.extend(reversed(group))
    strides, mask, it = [], [], 0
    for s in shape:
      if s == 1: strides.append(0); mask.append((0, 1))
      else: strides.append(new_strides[it]); mask.append(new_mask[it] if self.mask is not None else (0, s)); it += 1
    return View.create(shape, strides, self.offset, mask if self.mask is not None else None)


@dataclass(frozen=True)
class ShapeTracker:
  views: tuple[View, ...]

  @staticmethod
  def from_shape(shape) -> ShapeTracker: return _contiguous_tracker(tuple(shape))

  @property
  def shape(self) -> tuple[int, ...]: return self.views[-1].shape
  @property
  def size(self) -> int: return prod(self.shape)
  @property
  def key(self): return self.views
  @property
  def contiguous(self) -> bool: return len(self.views) == 1 and self.views[0].contiguous

  def expr(self, idxs: list[Node]) -> tuple[Node, Node]:
    """(flat position in the innermost buffer, validity) for per-dimension indexes of this shape."""
    flat, valid = self.views[-1].expr(idxs)
    for v in reversed(self.views[:-1]):
      flat, inner_valid = v.expr(unravel(v.shape, flat))
      valid = make_and([valid, inner_valid])
    return flat, valid

  def _replace(self, view: View) -> ShapeTracker: return ShapeTracker(self.views[:-1] + (view,))
  def permute(self, order) -> ShapeTracker: return self._replace(self.views[-1].permute(order))
  def expand(self, shape) -> ShapeTracker: return self._replace(self.views[-1].expand(shape))
  def pad(self, padding) -> ShapeTracker: return self._replace(self.views[-1].pad(padding))
  def shrink(self, bounds) -> ShapeTracker: return self._replace(self.views[-1].shrink(bounds))
  def flip(self, axes) -> ShapeTracker: return self._replace(self.views[-1].flip(axes))

  def reshape(self, shape) -> ShapeTracker:
    view = self.views[-1].reshape(shape)
    if view is not None: return self._replace(view)
    return ShapeTracker(self.views + (View.create(shape),))

  def compose(self, outer: ShapeTracker) -> ShapeTracker:
    """This view followed by `outer` (whose innermost shape is this one's shape)."""
    st = self
    for v in outer.views:
      if v.contiguous and st.size == prod(v.shape): st = st.reshape(v.shape)
      else: st = ShapeTracker(st.views + (v,))
    return st

  def index_arrays(self):
    """NumPy arrays of (flat position, validity) for every index of this shape: the view's meaning, for tests."""
    import numpy as np
    from lazygrad.symbolic import Var
    idxs = [Var(f"i{d}", 0, s - 1) for d, s in enumerate(self.shape)]
    flat, valid = self.expr(idxs)
    grids = np.meshgrid(*[np.arange(s) for s in self.shape], indexing="ij")
    env = {f"i{d}": g for d, g in enumerate(grids)}
    return np.broadcast_to(flat.evaluate(env), self.shape), np.broadcast_to(np.asarray(valid.evaluate(env)).astype(bool), self.shape)


@lru_cache(maxsize=4096)
def _contiguous_tracker(shape: tuple) -> ShapeTracker:
  """The tracker of a fresh buffer, one per shape: trackers and views are immutable, and every new node needs one."""
  return ShapeTracker((View.create(shape),))
