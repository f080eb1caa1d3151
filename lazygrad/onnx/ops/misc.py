"""ONNX casts, quantization, control flow (If, Loop, Scan) and the remaining odds and ends, as lazygrad Tensor ops."""
from __future__ import annotations
import math
import numpy as np
from lazygrad.tensor import Tensor, stack, cat
from lazygrad import dtype as dt
from onnx import TensorProto
from lazygrad.onnx.registry import op


def _dtype(n, to):
  from lazygrad.onnx.model import dtype_of
  return dtype_of(to, n.where)


def round_narrow_float(x: Tensor, to: int, saturate: bool) -> Tensor:
  """x rounded (to nearest, ties to even) to an 8- or 4-bit float's values, held in float32. Out of range: the largest
  value with saturate, else infinity (E5M2) or NaN."""
  from lazygrad.onnx.model import NARROW_FLOATS
  mbits, emin, top, has_inf, no_neg_zero = NARROW_FLOATS[to]
  x = x.float()
  a = x.abs()
  if saturate: a = a.minimum(top) if to != TensorProto.FLOAT8E5M2 or True else a
  _, e = a.frexp()  # a = m * 2**e with m in [0.5, 1): the binade's exponent is e - 1
  step = ((e - 1).maximum(emin) - mbits).float().exp2()  # the spacing of representable values there
  r = (a / step).round() * step
  over = r > top
  big = math.inf if has_inf else math.nan
  if to == TensorProto.FLOAT4E2M1: big = top  # no infinity or NaN to overflow to
  r = over.where(top if saturate else big, r)
  if has_inf and saturate: r = (a == math.inf).where(math.inf, r)
  r = (a == math.inf).where(top if saturate else big, r) if not has_inf else r
  out = (x < 0).where(-r, r)
  if no_neg_zero: out = (out == 0).where(0.0, out)
  return (x != x).where(0.0 if to == TensorProto.FLOAT4E2M1 else math.nan, out)


def _cast(n, x: Tensor, to: int) -> Tensor:
  from lazygrad.onnx.model import NARROW_INTS, NARROW_FLOATS
  if to in NARROW_FLOATS: return round_narrow_float(x, to, bool(n.attr("saturate", 1)))
  if to in NARROW_INTS:  # as the reference converts: integers wrap; floats truncate, and out of range give 0
    held, lo, hi = NARROW_INTS[to]
    if x.dtype.is_float:
      t = x.trunc()
      return ((t >= lo) & (t <= hi)).where(t, 0).cast(held)
    span = hi - lo + 1
    return ((x.cast(dt.int64) - lo).remainder(span) + lo).cast(held)
  target = _dtype(n, to)
  return (x != 0) if target is dt.bool_ else x.cast(target)


@op("Cast")
def cast(n, x):
  return _cast(n, x, n.attr("to"))


@op("CastLike")
def cast_like(n, x, like):
  from lazygrad.onnx.model import TO_ONNX
  return _cast(n, x, n.graph.declared.get(n.inputs[1], TO_ONNX.get(like.dtype)))


_QRANGE = {dt.uint8: (0, 255), dt.int8: (-128, 127), dt.int16: (-32768, 32767), dt.int32: (-2 ** 31, 2 ** 31 - 1)}


def _per_axis(n, param: Tensor, x: Tensor) -> Tensor:
  """A scale or zero point shaped to broadcast against x: a scalar, per `axis`, or per block of `block_size`."""
  if param.ndim == 0 or param.numel() == 1 and x.ndim == 0: return param.reshape(())
  axis = n.attr("axis", 1) % x.ndim
  block = n.attr("block_size", 0)
  if block:
    param = param.repeat_interleave(block, axis)
    bounds = tuple(slice(0, s) for s in x.shape)
    return param[bounds]
  return param.reshape(*(-1 if d == axis else 1 for d in range(x.ndim)))


@op("QuantizeLinear")
def quantize_linear(n, x, scale, zero_point=None):
  from lazygrad.onnx.model import NARROW_INTS
  target = n.graph.declared.get(n.inputs[2]) if zero_point is not None and len(n.inputs) > 2 else None
  target = target or n.attr("output_dtype") or TensorProto.UINT8
  from lazygrad.onnx.model import NARROW_FLOATS
  if target in NARROW_FLOATS:  # no integer rounding: the value rounds to the float type's nearest
    y = x.float() / _per_axis(n, scale, x).float()
    if zero_point is not None: y = y + _per_axis(n, zero_point, x).float()
    return round_narrow_float(y, target, bool(n.attr("saturate", 1)))
  if target in NARROW_INTS: out_dtype, lo, hi = NARROW_INTS[target]
  else:
    out_dtype = _dtype(n, target)
    if out_dtype not in _QRANGE:
      raise TypeError(f"{n.where}: quantizing to {out_dtype.name} is not supported (uint8, int8, int16, int32, int4, "
                      f"uint4, int2, uint2 are)")
    lo, hi = _QRANGE[out_dtype]
  y = (x.float() / _per_axis(n, scale, x).float()).round()
  if zero_point is not None: y = y + _per_axis(n, zero_point, x).float()
  return y.clamp(lo, hi).cast(out_dtype)


@op("DequantizeLinear")
def dequantize_linear(n, x, scale, zero_point=None):
  s = _per_axis(n, scale, x)
  v = x if x.dtype.is_float else x.cast(dt.int32) if x.dtype is not dt.int64 else x  # float: an 8-bit float's value
  if zero_point is not None: v = v - _per_axis(n, zero_point, x).cast(v.dtype)
  out_dtype = _dtype(n, n.attr("output_dtype")) if n.attr("output_dtype") else s.dtype
  return (v.cast(s.dtype) * s).cast(out_dtype)


@op("DynamicQuantizeLinear")
def dynamic_quantize_linear(n, x):
  lo, hi = x.amin().minimum(Tensor(0.0, device=x.device)), x.amax().maximum(Tensor(0.0, device=x.device))
  scale = (hi - lo) / 255
  zp = (-lo / scale).round().clamp(0, 255)
  y = ((x / scale).round() + zp).clamp(0, 255).cast(dt.uint8)
  return y, scale, zp.cast(dt.uint8)


@op("MatMulInteger")
def matmul_integer(n, a, b, a_zero=None, b_zero=None):
  av, bv = a.cast(dt.int32), b.cast(dt.int32)
  if a_zero is not None: av = av - (a_zero.cast(dt.int32).reshape(-1, 1) if a_zero.numel() > 1 else a_zero.cast(dt.int32))
  if b_zero is not None: bv = bv - b_zero.cast(dt.int32)
  return (av @ bv).cast(dt.int32)


@op("ConvInteger")
def conv_integer(n, x, w, x_zero=None, w_zero=None):
  from lazygrad.onnx.ops.nn import conv
  xv, wv = x.cast(dt.int32), w.cast(dt.int32)
  if x_zero is not None: xv = xv - x_zero.cast(dt.int32)
  if w_zero is not None: wv = wv - w_zero.cast(dt.int32).reshape(-1, *(1,) * (w.ndim - 1)) if w_zero.numel() > 1 else wv - w_zero.cast(dt.int32)
  return conv(n, xv.float(), wv.float()).round().cast(dt.int32)


def _requantize(acc: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
  lo, hi = _QRANGE[zero.dtype]
  return ((acc / scale).round() + zero.float()).clamp(lo, hi).cast(zero.dtype)


@op("QLinearMatMul")
def qlinear_matmul(n, a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero):
  av = a.float() - a_zero.float()
  bv = b.float() - (b_zero.float().reshape(1, -1) if b_zero.numel() > 1 else b_zero.float())
  a_s = a_scale.float().reshape(-1, 1) if a_scale.numel() > 1 else a_scale.float()
  b_s = b_scale.float().reshape(1, -1) if b_scale.numel() > 1 else b_scale.float()
  return _requantize((av @ bv) * a_s * b_s, y_scale.float(), y_zero)


@op("QLinearConv")
def qlinear_conv(n, x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero, bias=None):
  from lazygrad.onnx.ops.nn import conv
  xv = x.float() - x_zero.float()
  per = (-1,) + (1,) * (w.ndim - 1)
  wv = w.float() - (w_zero.float().reshape(per) if w_zero.numel() > 1 else w_zero.float())
  acc = conv(n, xv, wv)
  if bias is not None: acc = acc + bias.float().reshape(-1, *(1,) * (x.ndim - 2))
  ws = w_scale.float().reshape(-1, *(1,) * (x.ndim - 2)) if w_scale.numel() > 1 else w_scale.float()
  return _requantize(acc * x_scale.float() * ws, y_scale.float(), y_zero)


# ---------------------------------------------------------------- control flow

@op("If")
def if_(n, cond):
  branch = n.attr("then_branch") if bool(n.host(cond).reshape(-1)[0]) else n.attr("else_branch")
  outs = branch.run({}, n.scope)
  return tuple(outs) if len(outs) != 1 else outs[0]


@op("Loop")
def loop(n, max_trip=None, cond=None, *carried):
  body = n.attr("body")
  trips = int(n.host(max_trip).reshape(-1)[0]) if max_trip is not None else None
  keep_going = bool(n.host(cond).reshape(-1)[0]) if cond is not None else True
  names = [vi.name for vi in body.inputs]
  n_carried = len(carried)
  scans: list[list[Tensor]] = []
  values = list(carried)
  i = 0
  while keep_going and (trips is None or i < trips):
    feeds = dict(zip(names, [Tensor(np.array(i, np.int64), device=n.device), Tensor(np.array(keep_going), device=n.device),
                             *values]))
    outs = body.run(feeds, n.scope)
    keep_going = bool(body.host_value(outs[0]).reshape(-1)[0]) if cond is not None or True else True
    values = outs[1:1 + n_carried]
    for k, s in enumerate(outs[1 + n_carried:]):
      if len(scans) <= k: scans.append([])
      scans[k].append(s)
    i += 1
  n_scans = len(n.outputs) - n_carried
  stacked = [stack(s, 0) if s else Tensor.zeros(0, device=n.device) for s in scans] + \
    [Tensor.zeros(0, device=n.device)] * (n_scans - len(scans))
  out = values + stacked
  return tuple(out) if len(out) != 1 else out[0]


def _scan_steps(n, states: list, xs: list, in_dirs: list) -> tuple[list, list[list[Tensor]]]:
  """The body run over the scan inputs' first axis (backward where in_dirs says 1): final states, each step's outputs."""
  body = n.attr("body")
  names = [vi.name for vi in body.inputs]
  T = xs[0].shape[0]
  ys: list[list[Tensor]] = [[] for _ in range(len(body.outputs) - len(states))]
  for t in range(T):
    step = [x[T - 1 - t] if d else x[t] for x, d in zip(xs, in_dirs)]
    outs = body.run(dict(zip(names, list(states) + step)), n.scope)
    states = outs[:len(states)]
    for k, y in enumerate(outs[len(states):]): ys[k].append(y)
  return list(states), ys


@op("Scan", since=9)
def scan(n, *args):
  n_scan = n.attr("num_scan_inputs")
  n_state = len(args) - n_scan
  in_axes = n.attr("scan_input_axes") or [0] * n_scan
  n_out = len(n.outputs) - n_state
  out_axes = n.attr("scan_output_axes") or [0] * n_out
  out_dirs = n.attr("scan_output_directions") or [0] * n_out
  xs = [x.movedim(a % x.ndim, 0) for x, a in zip(args[n_state:], in_axes)]
  states, ys = _scan_steps(n, list(args[:n_state]), xs, n.attr("scan_input_directions") or [0] * n_scan)
  scanned = []
  for k, seq in enumerate(ys):
    y = stack(seq[::-1] if out_dirs[k] else seq, 0)
    scanned.append(y.movedim(0, out_axes[k] % y.ndim))
  out = states + scanned
  return tuple(out) if len(out) != 1 else out[0]


@op("Scan", since=8, until=8)
def scan_8(n, seq_lens, *args):
  """Scan-8: states and scan inputs lead with a batch axis (scan inputs scan their axis 1); each batch entry is
  scanned on its own and the results stacked."""
  n_scan = n.attr("num_scan_inputs")
  n_state = len(args) - n_scan
  T = args[n_state].shape[1]
  if seq_lens is not None and (n.host(seq_lens) != T).any():
    raise NotImplementedError(f"Scan-8: sequence_lens {n.host(seq_lens).tolist()} shorter than the inputs' {T} steps "
                              f"are not supported")
  finals, scanned = [], []
  for b in range(args[n_state].shape[0]):
    states, ys = _scan_steps(n, [s[b] for s in args[:n_state]], [x[b] for x in args[n_state:]],
                             n.attr("directions") or [0] * n_scan)
    finals.append(states)
    scanned.append([stack(seq, 0) for seq in ys])
  out = [stack([f[k] for f in finals], 0) for k in range(n_state)] + \
        [stack([s[k] for s in scanned], 0) for k in range(len(scanned[0]))]
  return tuple(out) if len(out) != 1 else out[0]


# ---------------------------------------------------------------- windows and odds and ends

def _window(n, size, fn):
  N = int(n.host(size).reshape(-1)[0])
  periodic = n.attr("periodic", 1)
  denom = N if periodic else N - 1
  k = Tensor.arange(N, device=n.device, dtype=dt.float32) * (2 * math.pi / max(denom, 1))
  out = fn(k)
  return out.cast(_dtype(n, n.attr("output_datatype", 1)))


@op("HannWindow")
def hann(n, size): return _window(n, size, lambda k: 0.5 - 0.5 * k.cos())


@op("HammingWindow")
def hamming(n, size): return _window(n, size, lambda k: 25 / 46 - (21 / 46) * k.cos())


@op("BlackmanWindow")
def blackman(n, size): return _window(n, size, lambda k: 0.42 - 0.5 * k.cos() + 0.08 * (2 * k).cos())


@op("GridSample", since=16)
def grid_sample(n, x, grid):
  import lazygrad.nn.functional as F
  mode = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic",
          "bicubic": "bicubic"}.get(n.attr("mode", "linear" if n.opset >= 20 else "bilinear"))
  if mode is None: raise NotImplementedError(f"GridSample: mode {n.attr('mode')!r} is not supported")
  return F.grid_sample(x, grid, mode, n.attr("padding_mode", "zeros"), bool(n.attr("align_corners", 0)))


@op("AffineGrid", since=20)
def affine_grid(n, theta, size):
  dims = [int(v) for v in n.host(size).reshape(-1)]
  N, spatial = dims[0], dims[2:]
  align = n.attr("align_corners", 0)
  axes = []
  for s in spatial:  # normalized coordinates of each place along one axis
    a = Tensor.arange(s, device=n.device, dtype=theta.dtype)
    axes.append((a * 2 / max(s - 1, 1) - 1) if align else ((a * 2 + 1) / s - 1))
  nd = len(spatial)
  mesh = []
  for j, a in enumerate(reversed(axes)):  # x (the last dim) first
    axis = nd - 1 - j
    mesh.append(a.reshape(*(spatial[axis] if d == axis else 1 for d in range(nd))).expand(*spatial))
  base = stack(mesh + [Tensor.ones(*spatial, dtype=theta.dtype, device=n.device)], -1)  # (*spatial, nd + 1)
  grid = base.reshape(1, -1, nd + 1) @ theta.transpose(1, 2)  # (N, prod, nd)
  return grid.reshape(N, *spatial, nd)


@op("CenterCropPad", since=18)
def center_crop_pad(n, x, shape):
  target = [int(v) for v in n.host(shape).reshape(-1)]
  axes = [a % x.ndim for a in (n.attr("axes") or range(x.ndim))]
  for a, t in zip(axes, target):
    s = x.shape[a]
    if t < s:  # crop: the extra place goes at the end
      start = (s - t) // 2
      x = x[(slice(None),) * a + (slice(start, start + t),)]
    elif t > s:
      before = (t - s) // 2
      pads = [0, 0] * (x.ndim - 1 - a) + [before, t - s - before]
      x = x.pad(pads)
  return x


@op("CumProd", since=26)
def cumprod(n, x, axis):
  a = int(n.host(axis).reshape(-1)[0]) % max(x.ndim, 1)
  if n.attr("reverse", 0): x = x.flip(a)
  if n.attr("exclusive", 0):  # shift by one place along the axis, a 1 first
    k = x.shape[a]
    x = x[(slice(None),) * a + (slice(0, k - 1),)].pad([0, 0] * (x.ndim - 1 - a) + [1, 0], 1)
  out = x.cumprod(a).cast(x.dtype)
  return out.flip(a) if n.attr("reverse", 0) else out


def _unique_slices(n, x: Tensor, axis: int):
  """Unique along an axis: its slices compared pairwise on the device, lexicographically by their first differing
  element; a slice is kept where no earlier one equals it. Only the number kept is read back (it sets the shape)."""
  m = x.movedim(axis, 0)
  k = m.shape[0]
  rows = m.reshape(k, -1)
  a, b = rows.unsqueeze(1).expand(k, k, rows.shape[1]), rows.unsqueeze(0).expand(k, k, rows.shape[1])  # row i, row j
  diff = a != b
  same = ~diff.any(-1)  # (k, k)
  first = diff.int().argmax(-1, keepdim=True)  # where rows i and j first differ
  below = (b.gather(-1, first) < a.gather(-1, first)).squeeze(-1) & ~same  # row j sorts before row i
  pos = Tensor.arange(k, device=x.device)
  is_first = ~(same & (pos.reshape(1, k) < pos.reshape(k, 1))).any(1)
  earliest = same.where(pos.reshape(1, k), k).amin(1)  # each row's first equal row
  if n.attr("sorted", 1): inverse = (below & is_first.reshape(1, k)).sum(1)  # distinct rows before it
  else: inverse = (is_first.int().cumsum(0) - 1)[earliest]  # in order of first occurrence
  count = int(is_first.int().sum().item())
  hit = inverse.reshape(1, k) == Tensor.arange(count, device=x.device).reshape(count, 1)  # (unique, k)
  indices = hit.where(pos.reshape(1, k), k).amin(1)
  return m[indices].movedim(0, axis), indices, inverse.long(), hit.long().sum(1)


@op("Unique", since=11)
def unique(n, x):
  if n.attr("axis") is not None: return _unique_slices(n, x, n.attr("axis") % x.ndim)
  flat = x.reshape(-1)
  values, inverse, counts = flat.unique(sorted=True, return_inverse=True, return_counts=True)
  pos = Tensor.arange(flat.shape[0], device=n.device)
  first = (flat.unsqueeze(0) == values.unsqueeze(1)).where(pos, flat.shape[0]).amin(1)  # first occurrence of each
  if not n.attr("sorted", 1):  # in order of first occurrence: a small index table from the first positions
    order = Tensor(np.argsort(first.numpy(), kind="stable"), device=n.device)
    rank = Tensor(np.argsort(np.argsort(first.numpy(), kind="stable")), device=n.device)
    values, first, counts, inverse = values[order], first[order], counts[order], rank[inverse]
  return values, first, inverse, counts


@op("SwiGLU", since=28)
def swiglu(n, a, b):
  return a * (a * n.attr("alpha", 1.0)).sigmoid() * b


@op("TensorScatter", since=24)
def tensor_scatter(n, past, update, write_indices=None):
  axis = n.attr("axis", -2) % past.ndim
  circular = n.attr("mode", "linear") == "circular"
  L, S = past.shape[axis], update.shape[axis]
  B = past.shape[0]
  start = write_indices.cast("int64").reshape(B, *(1,) * (past.ndim - 1)) if write_indices is not None else 0
  pos = Tensor.arange(L, device=n.device).reshape(*(L if d == axis else 1 for d in range(past.ndim)))
  rel = pos - start
  if circular: rel = rel.remainder(L)
  hit = (rel >= 0) & (rel < S)
  src = update.gather(axis, rel.clamp(0, S - 1).expand(*[L if d == axis else s for d, s in enumerate(update.shape)]))
  return hit.where(src, past)


def _dft(x: Tensor, length: int | None, axis: int, inverse: bool, onesided: bool) -> Tensor:
  """A DFT along `axis` of a real (..., 1) or complex (..., 2) signal, as real matrix products with the cos and sin
  tables of the transform's size, in float64 (its sums cancel to near zero, where float32 leaves visible noise). A
  one-sided inverse rebuilds the other half of the spectrum by conjugate symmetry and returns the real signal."""
  re = x[..., 0].double().movedim(axis, -1)
  im = x[..., 1].double().movedim(axis, -1) if x.shape[-1] == 2 else None
  fit = lambda t, n: t[..., :n] if n <= t.shape[-1] else t.pad((0, n - t.shape[-1]))  # cut or zero-pad to n
  if inverse and onesided:  # the half spectrum of a length-L real signal is its first L // 2 + 1 values
    L = length or 2 * (re.shape[-1] - 1)
    half = L // 2 + 1
    re, im = fit(re, half), fit(im if im is not None else re.zeros_like(), half)
    mirror = lambda t: t[..., 1:L - half + 1].flip(-1)
    re, im = cat([re, mirror(re)], -1), cat([im, -mirror(im)], -1)
  L = length or re.shape[-1]
  re, im = fit(re, L), (fit(im, L) if im is not None else None)
  K = L // 2 + 1 if onesided and not inverse else L
  theta = 2 * np.pi * np.outer(np.arange(K), np.arange(L)) / L
  cos = Tensor(np.cos(theta).T.copy(), device=x.device)  # (L, K)
  sin = Tensor(np.sin(theta).T.copy() * (1 if inverse else -1), device=x.device)
  out_re, out_im = re @ cos, re @ sin
  if im is not None: out_re, out_im = out_re - im @ sin, out_im + im @ cos
  if inverse: out_re, out_im = out_re / L, out_im / L
  if inverse and onesided: return out_re.movedim(-1, axis).unsqueeze(-1).cast(x.dtype)
  return stack([out_re.movedim(-1, axis), out_im.movedim(-1, axis)], -1).cast(x.dtype)


@op("DFT", since=17, until=19)
def dft_17(n, x, length=None):
  axis = n.attr("axis", 1) % (x.ndim - 1)
  return _dft(x, None if length is None else int(n.host(length).reshape(-1)[0]), axis,
              bool(n.attr("inverse", 0)), bool(n.attr("onesided", 0)))


@op("DFT", since=20)
def dft(n, x, length=None, axis=None):
  a = -2 if axis is None else int(n.host(axis).reshape(-1)[0])
  a = a % x.ndim
  return _dft(x, None if length is None else int(n.host(length).reshape(-1)[0]), a,
              bool(n.attr("inverse", 0)), bool(n.attr("onesided", 0)))


@op("STFT", since=17)
def stft(n, signal, frame_step, window=None, frame_length=None):
  """Frames of `frame_length` every `frame_step` samples (a view), times the window, each through DFT along its length."""
  step = int(n.host(frame_step).reshape(-1)[0])
  length = int(n.host(frame_length).reshape(-1)[0]) if frame_length is not None else \
    window.shape[0] if window is not None else signal.shape[1]
  if window is not None and window.shape != (length,):
    raise ValueError(f"STFT: window shape {window.shape} does not match frame_length {length}")
  if not 0 < length <= signal.shape[1] or step < 1:
    raise ValueError(f"STFT: frame_length {length} and frame_step {step} do not fit signal shape {signal.shape}")
  frames = signal.unfold(1, length, step).movedim(-1, 2)  # (batch, frames, frame_length, 1 or 2)
  if window is not None: frames = frames * window.cast(signal.dtype).reshape(length, 1)
  return _dft(frames, None, 2, False, bool(n.attr("onesided", 1)))


@op("NonMaxSuppression", since=10)
def non_max_suppression(n, boxes, scores, max_per_class=None, iou_threshold=None, score_threshold=None):
  """Greedy NMS per batch and class, on the device: boxes in score order (ties: lower index first), each kept unless a
  kept box before it overlaps it by IoU > iou_threshold. Box i's fate depends only on boxes before it, so iterating
  keep = candidates & ~(kept earlier box overlapping) from keep = candidates is exact after at most N rounds; it stops
  when a round changes nothing (read back as one bool), which is after the longest chain of suppressions."""
  limit = int(n.host(max_per_class).reshape(-1)[0]) if max_per_class is not None and max_per_class.numel() else 0
  if limit <= 0: return Tensor(np.zeros((0, 3), np.int64), device=boxes.device)
  thr = float(n.host(iou_threshold).reshape(-1)[0]) if iou_threshold is not None and iou_threshold.numel() else 0.0
  if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[::2] != boxes.shape[:2]:
    raise ValueError(f"NonMaxSuppression: expected boxes (batches, N, 4) and scores (batches, classes, N), "
                     f"got {boxes.shape} and {scores.shape}")
  b = boxes.float()
  if n.attr("center_point_box", 0):  # [x_center, y_center, width, height]
    lo_x, hi_x = b[..., 0] - b[..., 2] / 2, b[..., 0] + b[..., 2] / 2
    lo_y, hi_y = b[..., 1] - b[..., 3] / 2, b[..., 1] + b[..., 3] / 2
  else:  # [y1, x1, y2, x2], any diagonal pair of corners
    lo_y, hi_y = b[..., 0].minimum(b[..., 2]), b[..., 0].maximum(b[..., 2])
    lo_x, hi_x = b[..., 1].minimum(b[..., 3]), b[..., 1].maximum(b[..., 3])
  pair = lambda t: (t.unsqueeze(2), t.unsqueeze(1))  # (B, N, 1) box i and (B, 1, N) box j
  (ly_i, ly_j), (hy_i, hy_j), (lx_i, lx_j), (hx_i, hx_j) = map(pair, (lo_y, hi_y, lo_x, hi_x))
  inter = (hy_i.minimum(hy_j) - ly_i.maximum(ly_j)).relu() * (hx_i.minimum(hx_j) - lx_i.maximum(lx_j)).relu()
  area_i, area_j = pair((hi_y - lo_y) * (hi_x - lo_x))
  union = area_i + area_j - inter
  ok = (inter > 0) & (area_i > 0) & (area_j > 0) & (union > 0)
  overlaps = ok & (inter / ok.where(union, 1.0) > thr)  # (B, N, N)
  B, C, N = scores.shape
  order = scores.argsort(-1, descending=True, stable=True)  # (B, C, N)
  rows = order.unsqueeze(-1).expand(B, C, N, N)
  over = overlaps.unsqueeze(1).expand(B, C, N, N).gather(2, rows).gather(3, rows.transpose(2, 3))
  over = over & (Tensor.arange(N, device=boxes.device).reshape(1, N) < Tensor.arange(N, device=boxes.device).reshape(N, 1))
  candidates = scores.gather(-1, order) > float(n.host(score_threshold).reshape(-1)[0]) \
    if score_threshold is not None and score_threshold.numel() else order >= 0
  keep = candidates.realize()
  for _ in range(N):
    new = (candidates & ~(over & keep.unsqueeze(2)).any(-1)).realize()
    if (new == keep).all().item(): break
    keep = new
  keep = keep & (keep.int().cumsum(-1) <= limit)  # the first `limit` kept boxes of each class, in score order
  picked = keep.nonzero()  # (K, 3): batch, class, position in score order; the count is read back, as NonZero's
  if picked.shape[0] == 0: return Tensor(np.zeros((0, 3), np.int64), device=boxes.device)
  box = order[picked[:, 0], picked[:, 1], picked[:, 2]]
  return stack([picked[:, 0], picked[:, 1], box.long()], 1)


@op("TfIdfVectorizer", since=9)
def tfidf_vectorizer(n, x):
  """Counts of the pool's integer n-grams in each row: for every length n and skip s, the row's n-grams (n views of it,
  s + 1 apart) compared with each pool n-gram; the counts then land at their ngram_indexes, weighted by mode."""
  if n.attr("pool_strings") is not None:
    raise NotImplementedError("TfIdfVectorizer: string pools are not supported (lazygrad has no string tensors)")
  pool, starts = np.asarray(n.attr("pool_int64s"), np.int64), list(n.attr("ngram_counts"))
  where, mode = np.asarray(n.attr("ngram_indexes"), np.int64), n.attr("mode")
  lo, hi, skips = n.attr("min_gram_length"), n.attr("max_gram_length"), n.attr("max_skip_count")
  if mode not in ("TF", "IDF", "TFIDF"): raise ValueError(f"TfIdfVectorizer: mode {mode!r} is not one of TF, IDF, TFIDF")
  if x.ndim not in (1, 2): raise ValueError(f"TfIdfVectorizer: expected a 1-D or 2-D input, got shape {x.shape}")
  rows = x.reshape(1, -1) if x.ndim == 1 else x
  bounds = [*starts, len(pool)]
  counts = []  # per n-gram length: (rows, number of pool n-grams of that length)
  for length in range(1, len(starts) + 1):
    grams = pool[bounds[length - 1]:bounds[length]].reshape(-1, length)
    if not lo <= length <= hi or not len(grams):
      counts.append(Tensor.zeros(rows.shape[0], len(grams), device=x.device))
      continue
    g = Tensor(grams, device=x.device).cast(rows.dtype)  # (M, length)
    total = None
    for s in range(skips + 1 if length > 1 else 1):
      span = rows.shape[1] - (length - 1) * (s + 1)
      if span <= 0: break
      windows = stack([rows[:, k * (s + 1):k * (s + 1) + span] for k in range(length)], -1)  # (rows, span, length)
      found = (windows.unsqueeze(2) == g).all(-1).float().sum(1)  # (rows, M)
      total = found if total is None else total + found
    counts.append(total if total is not None else Tensor.zeros(rows.shape[0], len(grams), device=x.device))
  tf = cat(counts, 1)  # (rows, pool n-grams)
  if mode == "IDF": tf = (tf > 0).float()
  if mode != "TF" and n.attr("weights") is not None:  # weights[i] scales pool n-gram i, as the spec and onnxruntime read it
    tf = tf * Tensor(np.asarray(n.attr("weights"), np.float32), device=x.device)
  place = np.zeros((len(where), int(where.max()) + 1), np.float32)
  place[np.arange(len(where)), where] = 1  # pool n-gram i counts at output ngram_indexes[i]
  y = tf @ Tensor(place, device=x.device)
  return y.reshape(-1) if x.ndim == 1 else y
