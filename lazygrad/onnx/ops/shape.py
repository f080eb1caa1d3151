"""ONNX shape, movement and indexing ops: Reshape, Slice, Gather*, Scatter*, Pad, Expand, Split, Concat and friends,
as lazygrad views and gathers. Shapes, axes and pads are read on the host (constants have theirs from load)."""
from __future__ import annotations
import math
import numpy as np
from lazygrad.tensor import Tensor, cat, broadcast_shapes
from lazygrad import dtype as dt
import lazygrad.nn.functional as F
from lazygrad.onnx.registry import op


def ints(n, t) -> list[int]:
  return [int(v) for v in n.host(t).reshape(-1)]


def axis_of(n, axis: int, ndim: int, what="axis") -> int:
  if not -ndim <= axis < max(ndim, 1):
    raise IndexError(f"{n.op_type}: {what} {axis} is out of range for a tensor of {ndim} dims")
  return axis % max(ndim, 1)


def host_tensor(n, arr: np.ndarray) -> Tensor:
  """A small host array (a shape) as a Tensor whose values later ops can read without a device round trip."""
  return n.graph.set_host(Tensor(arr, device=n.device), arr)


@op("Constant")
def constant(n):
  a = n.attrs
  if "value" in a: arr = a["value"]
  elif "value_float" in a: arr = np.array(a["value_float"], np.float32)
  elif "value_floats" in a: arr = np.array(a["value_floats"], np.float32)
  elif "value_int" in a: arr = np.array(a["value_int"], np.int64)
  elif "value_ints" in a: arr = np.array(a["value_ints"], np.int64)
  else: raise NotImplementedError(f"Constant: attribute {sorted(a)} is not supported (strings and sparse tensors are not)")
  from lazygrad.onnx.model import to_tensor
  return n.graph.set_host(to_tensor(arr, f"Constant {n.name!r}", n.device), arr)


@op("Shape")
def shape(n, x):
  dims = np.array(x.shape, np.int64)
  start, end = n.attr("start", 0), n.attr("end")
  return host_tensor(n, dims[start:end])


@op("Size")
def size(n, x): return host_tensor(n, np.array(x.numel(), np.int64))


@op("Reshape", until=4)
def reshape_attr(n, x): return _reshape(x, list(n.attr("shape")), False)


@op("Reshape", since=5)
def reshape(n, x, shape): return _reshape(x, ints(n, shape), bool(n.attr("allowzero", 0)))


def _reshape(x: Tensor, shape: list[int], allowzero: bool) -> Tensor:
  if not allowzero: shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
  return x.reshape(shape)


@op("Flatten")
def flatten(n, x):
  axis = n.attr("axis", 1)
  axis = axis + x.ndim if axis < 0 else axis
  return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@op("Squeeze")
def squeeze(n, x, axes=None):
  axes = ints(n, axes) if axes is not None else n.attr("axes")
  if axes is None: return x.reshape([s for s in x.shape if s != 1])
  axes = {axis_of(n, a, x.ndim) for a in axes}
  for a in axes:
    if x.shape[a] != 1: raise ValueError(f"Squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
  return x.reshape([s for i, s in enumerate(x.shape) if i not in axes])


@op("Unsqueeze")
def unsqueeze(n, x, axes=None):
  axes = ints(n, axes) if axes is not None else n.attr("axes")
  rank = x.ndim + len(axes)
  axes = sorted(axis_of(n, a, rank) for a in axes)
  shape, it = [], iter(x.shape)
  for i in range(rank): shape.append(1 if i in axes else next(it))
  return x.reshape(shape)


@op("Transpose")
def transpose(n, x):
  perm = n.attr("perm") or list(reversed(range(x.ndim)))
  return x.permute(*perm) if x.ndim else x


@op("Concat")
def concat(n, *xs):
  axis = axis_of(n, n.attr("axis", 1), xs[0].ndim)  # axis had a default (1) only before opset 4
  xs = [x for x in xs if x is not None]
  return cat(xs, axis) if len(xs) > 1 else xs[0]


@op("Split")
def split(n, x, sizes=None):
  axis = axis_of(n, n.attr("axis", 0), x.ndim)
  dim = x.shape[axis]
  if sizes is not None: parts = ints(n, sizes)
  elif n.attr("split"): parts = list(n.attr("split"))
  else:
    k = n.attr("num_outputs", len(n.outputs))
    chunk = -(-dim // k)
    parts = [min(chunk, dim - i * chunk) for i in range(k)]
  if sum(parts) != dim: raise ValueError(f"Split: sizes {parts} do not add up to {dim}, dim {axis} of shape {x.shape}")
  return x.split(parts, axis)


def _slice(n, x: Tensor, starts, ends, axes, steps) -> Tensor:
  axes = list(range(len(starts))) if axes is None else [axis_of(n, a, x.ndim) for a in axes]
  steps = [1] * len(starts) if steps is None else steps
  index = [slice(None)] * x.ndim
  for a, s, e, st in zip(axes, starts, ends, steps):
    d = x.shape[a]
    if st == 0: raise ValueError(f"Slice: step 0 on axis {a}")
    s, e = s + d if s < 0 else s, e + d if e < 0 else e
    if st > 0: s, e = min(max(s, 0), d), min(max(e, 0), d)
    else: s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
    index[a] = slice(s, e if e >= 0 else None, st)
  return x[tuple(index)]


@op("Slice", until=9)
def slice_attr(n, x):
  return _slice(n, x, n.attr("starts"), n.attr("ends"), n.attr("axes"), None)


@op("Slice", since=10)
def slice_(n, x, starts, ends, axes=None, steps=None):
  return _slice(n, x, ints(n, starts), ints(n, ends), None if axes is None else ints(n, axes),
                None if steps is None else ints(n, steps))


def _positive(idx: Tensor, size: int) -> Tensor:
  """ONNX's negative indices count from the end."""
  if idx.dtype is not dt.int64: idx = idx.cast(dt.int64)
  return (idx < 0).where(idx + size, idx)


@op("Gather")
def gather(n, x, idx):
  axis = axis_of(n, n.attr("axis", 0), x.ndim)
  return x[(slice(None),) * axis + (_positive(idx, x.shape[axis]),)]


@op("GatherElements")
def gather_elements(n, x, idx):
  axis = axis_of(n, n.attr("axis", 0), x.ndim)
  return x.gather(axis, _positive(idx, x.shape[axis]))


def _flat_nd_index(x_shape, idx: Tensor, b: int) -> Tensor:
  """GatherND/ScatterND: (.., k) index tuples into dims b..b+k of x_shape as one flat index over those dims."""
  k = idx.shape[-1]
  dims = x_shape[b:b + k]
  flat = None
  for j, d in enumerate(dims):
    ij = _positive(idx[..., j], d) * math.prod(dims[j + 1:])
    flat = ij if flat is None else flat + ij
  return flat if flat is not None else Tensor.zeros(idx.shape[:-1], dtype=dt.int64, device=idx.device)


@op("GatherND")
def gather_nd(n, x, idx):
  b, k = n.attr("batch_dims", 0), idx.shape[-1]
  batch, rest = x.shape[:b], x.shape[b + k:]
  flat = _flat_nd_index(x.shape, idx, b)  # (B.., M..)
  nb, m = math.prod(batch), math.prod(flat.shape[b:])
  xb = x.reshape(nb, math.prod(x.shape[b:b + k]), *rest)
  rows = Tensor.arange(nb, device=x.device).reshape(nb, 1)
  out = xb[rows, flat.reshape(nb, m)]
  return out.reshape(*batch, *flat.shape[b:], *rest)


_REDUCTIONS = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def _scatter(n, data: Tensor, axis: int, index: Tensor, updates: Tensor) -> Tensor:
  red = n.attr("reduction", "none")
  if red == "none": return data.scatter(axis, index, updates)
  if red not in _REDUCTIONS: raise NotImplementedError(f"{n.op_type}: reduction {red!r} is not supported")
  return data.scatter_reduce(axis, index, updates, _REDUCTIONS[red], include_self=True)


@op("ScatterND")
def scatter_nd(n, data, idx, updates):
  k = idx.shape[-1]
  rest = data.shape[k:]
  flat = _flat_nd_index(data.shape, idx, 0).reshape(-1)  # (M,)
  m = flat.shape[0]
  upd = updates.reshape(m, *rest)
  index = flat.reshape(m, *(1,) * len(rest)).expand(m, *rest)
  out = _scatter(n, data.reshape(math.prod(data.shape[:k]), *rest), 0, index, upd)
  return out.reshape(data.shape)


@op("ScatterElements", "Scatter")
def scatter_elements(n, data, idx, updates):
  axis = axis_of(n, n.attr("axis", 0), data.ndim)
  return _scatter(n, data, axis, _positive(idx, data.shape[axis]), updates)


@op("Expand")
def expand(n, x, shape):
  target = broadcast_shapes(x.shape, tuple(ints(n, shape)))
  return x.reshape((1,) * (len(target) - x.ndim) + x.shape).expand(target)


@op("Tile")
def tile(n, x, repeats): return x.repeat(*ints(n, repeats)) if x.ndim else x


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def _pad(n, x: Tensor, pads: list[int], value, axes) -> Tensor:
  mode = n.attr("mode", "constant")
  if mode not in _PAD_MODES: raise NotImplementedError(f"Pad: mode {mode!r} is not supported; use one of {list(_PAD_MODES)}")
  axes = list(range(x.ndim)) if axes is None else [axis_of(n, a, x.ndim) for a in axes]
  if len(pads) != 2 * len(axes): raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes of shape {x.shape}")
  pairs = {a: (pads[i], pads[i + len(axes)]) for i, a in enumerate(axes)}
  torch_pads = [p for a in reversed(range(x.ndim)) for p in pairs.get(a, (0, 0))]
  if mode == "constant": return x.pad(torch_pads, value if value is not None else 0)
  return F.pad(x, torch_pads, _PAD_MODES[mode])


@op("Pad", until=10)
def pad_attr(n, x):
  return _pad(n, x, list(n.attr("pads", n.attr("paddings"))), n.attr("value", 0.0), None)


@op("Pad", since=11)
def pad(n, x, pads, value=None, axes=None):
  v = None if value is None else n.host(value).reshape(-1)[0].item()
  return _pad(n, x, ints(n, pads), v, None if axes is None else ints(n, axes))


@op("ConstantOfShape")
def constant_of_shape(n, shape):
  value = n.attr("value")
  value = np.zeros(1, np.float32) if value is None else value.reshape(-1)
  from lazygrad.onnx.model import to_tensor
  dtype = to_tensor(value[:0], f"ConstantOfShape {n.name!r}").dtype
  return Tensor.full(tuple(ints(n, shape)), value[0].item(), dtype=dtype, device=n.device)


@op("Range")
def range_(n, start, limit, delta):
  s, l, d = (n.host(t).reshape(-1)[0] for t in (start, limit, delta))
  count = max(int(math.ceil((l - s) / d)), 0)
  return (Tensor.arange(count, device=n.device, dtype=dt.int64 if start.dtype.is_int else start.dtype) * d.item()
          + s.item()).cast(start.dtype)


@op("OneHot")
def one_hot(n, idx, depth, values):
  d = int(n.host(depth).reshape(-1)[0])
  out_rank = idx.ndim + 1
  axis = axis_of(n, n.attr("axis", -1), out_rank)
  pos = Tensor.arange(d, device=n.device).reshape(*(d if i == axis else 1 for i in range(out_rank)))
  idx = idx.cast(dt.int64) if not idx.dtype.is_float else idx.floor().cast(dt.int64)
  hot = _positive(idx, d).unsqueeze(axis) == pos
  return hot.where(values[1], values[0])


@op("NonZero")
def nonzero(n, x):
  return x.nonzero().transpose(0, 1) if x.ndim else x.reshape(1).nonzero().transpose(0, 1)[:0]


@op("DepthToSpace")
def depth_to_space(n, x):
  b = n.attr("blocksize")
  N, C, H, W = x.shape
  if n.attr("mode", "DCR") == "DCR":
    y = x.reshape(N, b, b, C // (b * b), H, W).permute(0, 3, 4, 1, 5, 2)
  else:
    y = x.reshape(N, C // (b * b), b, b, H, W).permute(0, 1, 4, 2, 5, 3)
  return y.reshape(N, C // (b * b), H * b, W * b)


@op("SpaceToDepth")
def space_to_depth(n, x):
  b = n.attr("blocksize")
  N, C, H, W = x.shape
  if n.attr("mode", "DCR") == "CRD": y = x.reshape(N, C, H // b, b, W // b, b).permute(0, 1, 3, 5, 2, 4)
  else: y = x.reshape(N, C, H // b, b, W // b, b).permute(0, 3, 5, 1, 2, 4)
  return y.reshape(N, C * b * b, H // b, W // b)


@op("EyeLike")
def eye_like(n, x):
  from lazygrad.onnx.model import dtype_of
  dtype = dtype_of(n.attr("dtype"), n.where) if n.attr("dtype") is not None else x.dtype
  r, c = x.shape
  k = n.attr("k", 0)
  rows = Tensor.arange(r, device=n.device).reshape(r, 1)
  cols = Tensor.arange(c, device=n.device).reshape(1, c)
  return (cols - rows == k).cast(dtype)


@op("Compress")
def compress(n, x, condition):
  keep = np.nonzero(n.host(condition).reshape(-1))[0]
  axis = n.attr("axis")
  if axis is None: x, axis = x.reshape(-1), 0
  axis = axis_of(n, axis, x.ndim)
  keep = keep[keep < x.shape[axis]]
  return x.index_select(axis, Tensor(keep.astype(np.int64), device=n.device))


@op("ReverseSequence")
def reverse_sequence(n, x, lens):
  b_ax, t_ax = n.attr("batch_axis", 1), n.attr("time_axis", 0)
  T, B = x.shape[t_ax], x.shape[b_ax]
  t = Tensor.arange(T, device=n.device).reshape(T, 1)
  lens = lens.cast(dt.int64).reshape(1, B)
  src = (t < lens).where(lens - 1 - t, t)  # (T, B): which time step each output step reads
  shape = [1] * x.ndim
  shape[t_ax], shape[b_ax] = T, B
  src = src if t_ax < b_ax else src.transpose(0, 1)
  index = src.reshape(shape).expand(x.shape)
  return x.gather(t_ax, index)


