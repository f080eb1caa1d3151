"""ONNX neural-network ops: convolutions (auto_pad, asymmetric pads), pooling, normalizations, Resize/Upsample,
the recurrent ops (RNN, GRU, LSTM, unrolled over time with ONNX's gate orders and activations) and the losses."""
from __future__ import annotations
import math
import numpy as np
from lazygrad.tensor import Tensor, cat, stack
from lazygrad import dtype as dt
import lazygrad.nn.functional as F
from lazygrad.onnx.registry import op
from lazygrad.onnx.ops.shape import ints


# ---------------------------------------------------------------- convolution and pooling geometry

def _pads(n, ins, kernel, strides, dilations, ceil_mode=False):
  """(begin pads, end pads, output sizes) by ONNX's auto_pad, pads and ceil_mode rules."""
  nd = len(kernel)
  auto = n.attr("auto_pad", "NOTSET")
  eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
  if auto in ("SAME_UPPER", "SAME_LOWER"):
    outs = [-(-i // s) for i, s in zip(ins, strides)]
    total = [max(0, (o - 1) * s + e - i) for o, s, e, i in zip(outs, strides, eff, ins)]
    begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    return begin, [t - b for t, b in zip(total, begin)], outs
  if auto == "VALID": begin = end = [0] * nd
  elif auto == "NOTSET":
    pads = list(n.attr("pads") or [0] * (2 * nd))
    begin, end = pads[:nd], pads[nd:]
  else: raise ValueError(f"{n.op_type}: auto_pad {auto!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
  outs = []
  for i, b, e, k, s in zip(ins, begin, end, eff, strides):
    span = i + b + e - k
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= i + b: o -= 1  # the last window must start inside the input or its left padding
    outs.append(o)
  return begin, end, outs


def _geometry(n, x: Tensor, kernel):
  nd = len(kernel)
  strides = list(n.attr("strides") or [1] * nd)
  dilations = list(n.attr("dilations") or [1] * nd)
  return strides, dilations


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _pad_spatial(x: Tensor, begin, end, value=0.0) -> Tensor:
  return x.pad([p for b, e in zip(reversed(begin), reversed(end)) for p in (b, e)], value)


@op("Conv")
def conv(n, x, w, b=None):
  nd = x.ndim - 2
  if nd not in _CONV: raise NotImplementedError(f"Conv: {nd}-D convolutions are not supported (input shape {x.shape})")
  kernel = w.shape[2:]
  strides, dilations = _geometry(n, x, kernel)
  begin, end, _ = _pads(n, x.shape[2:], kernel, strides, dilations)
  if begin == end: padding = begin
  else: x, padding = _pad_spatial(x, begin, end), 0
  return _CONV[nd](x, w, b, strides, padding, dilations, n.attr("group", 1))


@op("DeformConv", since=19)
def deform_conv(n, x, w, offset, b=None, mask=None):
  """2-D deformable convolution: each kernel tap reads the input at its place plus a learned offset, bilinearly (zero
  outside the input), times the mask; the sampled columns (N, C, taps, outputs) then meet the weight as a grouped matmul."""
  if x.ndim != 4: raise NotImplementedError(f"DeformConv: only 2-D inputs are supported, got shape {x.shape}")
  N, C, H, W_ = x.shape
  kh, kw = list(n.attr("kernel_shape") or w.shape[2:])
  (sh, sw), (dh, dw) = list(n.attr("strides") or [1, 1]), list(n.attr("dilations") or [1, 1])
  pads = list(n.attr("pads") or [0] * 4)
  group, G, K = n.attr("group", 1), n.attr("offset_group", 1), kh * kw
  oh, ow = (H + pads[0] + pads[2] - (kh - 1) * dh - 1) // sh + 1, (W_ + pads[1] + pads[3] - (kw - 1) * dw - 1) // sw + 1
  if offset.shape != (N, G * K * 2, oh, ow) or C % G or C % group or w.shape[1] * group != C:
    raise ValueError(f"DeformConv: input {x.shape}, weight {w.shape} and offset {offset.shape} do not fit offset_group {G}, "
                     f"group {group}, kernel {[kh, kw]} and an output of {[oh, ow]}")
  off = offset.float().reshape(N, G, K, 2, oh * ow)
  # where each tap of each output reads before its offset: (K, outputs) tables from the geometry
  tap_h, tap_w = np.meshgrid(np.arange(kh) * dh, np.arange(kw) * dw, indexing="ij")
  out_h, out_w = np.meshgrid(np.arange(oh) * sh - pads[0], np.arange(ow) * sw - pads[1], indexing="ij")
  base_h = Tensor((tap_h.reshape(K, 1) + out_h.reshape(1, -1)).astype(np.float32), device=x.device)
  base_w = Tensor((tap_w.reshape(K, 1) + out_w.reshape(1, -1)).astype(np.float32), device=x.device)
  py, px = base_h + off[:, :, :, 0], base_w + off[:, :, :, 1]  # (N, G, K, outputs)
  y0, x0 = py.floor(), px.floor()
  fy, fx = py - y0, px - x0
  src = x.reshape(N, G, C // G, H * W_)
  cols = None
  for dy, wy in ((0, 1 - fy), (1, fy)):
    for dx, wx in ((0, 1 - fx), (1, fx)):
      yy, xx = y0 + dy, x0 + dx
      inside = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W_)
      at = (yy.clamp(0, H - 1) * W_ + xx.clamp(0, W_ - 1)).long().reshape(N, G, 1, K * oh * ow)
      weight = inside.where(wy * wx, 0.0).reshape(N, G, 1, -1).cast(x.dtype)
      corner = src.gather(3, at.expand(N, G, C // G, K * oh * ow)) * weight
      cols = corner if cols is None else cols + corner
  if mask is not None: cols = cols * mask.reshape(N, G, 1, K * oh * ow).cast(x.dtype)
  cols = cols.reshape(N, group, C // group * K, oh * ow)
  y = w.reshape(group, w.shape[0] // group, C // group * K) @ cols  # (N, group, out channels per group, outputs)
  y = y.reshape(N, w.shape[0], oh, ow)
  return y if b is None else y + b.reshape(-1, 1, 1)


@op("RoiAlign", since=10)
def roi_align(n, x, rois, batch_indices):
  """Each ROI's bins averaged (or maxed) over a grid of bilinear samples, as onnxruntime and onnx's reference do it:
  a sample more than a pixel outside the input is 0, one past the last row or column reads that row or column, and
  mode 'max' takes the largest of the four weighted corner values. A sample's weights split into a row and a column
  factor, so the samples are one-hot-weighted row and column matrices around the ROI's image: (rows) @ X @ (columns)."""
  half = n.attr("coordinate_transformation_mode", "half_pixel" if n.opset >= 16 else "output_half_pixel") == "half_pixel"
  mode, scale, ratio = n.attr("mode", "avg"), n.attr("spatial_scale", 1.0), n.attr("sampling_ratio", 0)
  oh, ow = n.attr("output_height", 1), n.attr("output_width", 1)
  if mode not in ("avg", "max"): raise ValueError(f"RoiAlign: mode {mode!r} is not one of avg, max")
  if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 4 or batch_indices.shape != (rois.shape[0],):
    raise ValueError(f"RoiAlign: expected X (N, C, H, W), rois (R, 4) and batch_indices (R,), got {x.shape}, {rois.shape} "
                     f"and {batch_indices.shape}")
  R, (H, W) = rois.shape[0], x.shape[2:]
  r = rois.float() * scale - (0.5 if half else 0.0)
  start_w, start_h, size_w, size_h = r[:, 0], r[:, 1], r[:, 2] - r[:, 0], r[:, 3] - r[:, 1]
  if not half: size_w, size_h = size_w.maximum(1.0), size_h.maximum(1.0)

  def axis_weights(start, size, bins, length):
    """(R, bins * grid, length) sample weights along one axis, the low and high neighbours' one-hot rows, the grid size."""
    grid = Tensor.full((R,), float(ratio), device=x.device) if ratio > 0 else (size / bins).ceil()
    G = ratio if ratio > 0 else max(int(n.host(grid).max()) if R else 1, 1)  # the largest ROI's grid sets the shape
    step = size / bins
    i = Tensor.arange(bins, device=x.device).float().reshape(1, bins, 1)
    k = Tensor.arange(G, device=x.device).float().reshape(1, 1, G)
    p = start.reshape(R, 1, 1) + i * step.reshape(R, 1, 1) + (k + 0.5) * (step / grid.maximum(1.0)).reshape(R, 1, 1)
    used = (k < grid.reshape(R, 1, 1)) & (p >= -1.0) & (p <= length)
    p = p.maximum(0.0)
    low = p.floor().minimum(length - 1)
    p = (low >= length - 1).where(low, p)
    high = (low + 1).minimum(length - 1)
    frac = p - low
    cells = Tensor.arange(length, device=x.device).float()
    lo_hot, hi_hot = (low.unsqueeze(-1) == cells), (high.unsqueeze(-1) == cells)
    w_lo, w_hi = used.where(1 - frac, 0.0).unsqueeze(-1), used.where(frac, 0.0).unsqueeze(-1)
    flat = lambda t: t.reshape(R, bins * G, length).float()
    return flat(w_lo * lo_hot), flat(w_hi * hi_hot), flat(lo_hot), flat(hi_hot), grid, G, used

  ylo, yhi, ylo_hot, yhi_hot, gh, GH, used_y = axis_weights(start_h, size_h, oh, H)
  xlo, xhi, xlo_hot, xhi_hot, gw, GW, used_x = axis_weights(start_w, size_w, ow, W)
  img = x[batch_indices.long()].float()  # (R, C, H, W)
  pick = lambda rows, cols: rows.unsqueeze(1) @ img @ cols.unsqueeze(1).transpose(-1, -2)  # (R, C, oh*GH, ow*GW)
  C = x.shape[1]
  if mode == "avg":
    s = pick(ylo + yhi, xlo + xhi).reshape(R, C, oh, GH, ow, GW).sum((3, 5))
    y = s / (gh * gw).maximum(1.0).reshape(R, 1, 1, 1)
  else:
    # each corner's weighted value: the row weight (R, 1, oh*GH, 1) times the column weight times the picked value
    terms = [ry.sum(-1).reshape(R, 1, -1, 1) * cx.sum(-1).reshape(R, 1, 1, -1) * pick(ry_hot, cx_hot)
             for ry, ry_hot in ((ylo, ylo_hot), (yhi, yhi_hot)) for cx, cx_hot in ((xlo, xlo_hot), (xhi, xhi_hot))]
    v = terms[0].maximum(terms[1]).maximum(terms[2]).maximum(terms[3])
    grid_used = (Tensor.arange(GH, device=x.device).reshape(1, 1, GH, 1, 1) < gh.reshape(R, 1, 1, 1, 1)) & \
                (Tensor.arange(GW, device=x.device).reshape(1, 1, 1, 1, GW) < gw.reshape(R, 1, 1, 1, 1))
    y = grid_used.unsqueeze(1).where(v.reshape(R, C, oh, GH, ow, GW), -math.inf).amax((3, 5))
  return y.cast(x.dtype)


@op("ConvTranspose")
def conv_transpose(n, x, w, b=None):
  nd = x.ndim - 2
  if nd not in _CONV_T: raise NotImplementedError(f"ConvTranspose: {nd}-D is not supported (input shape {x.shape})")
  kernel = w.shape[2:]
  strides, dilations = _geometry(n, x, kernel)
  out_pad = list(n.attr("output_padding") or [0] * nd)
  full = [s * (i - 1) + (k - 1) * d + 1 for s, i, k, d in zip(strides, x.shape[2:], kernel, dilations)]
  auto, output_shape = n.attr("auto_pad", "NOTSET"), n.attr("output_shape")
  if output_shape is not None or auto in ("SAME_UPPER", "SAME_LOWER"):
    outs = list(output_shape)[-nd:] if output_shape is not None else [i * s for i, s in zip(x.shape[2:], strides)]
    total = [f + p - o for f, p, o in zip(full, out_pad, outs)]
    begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    end = [t - b_ for t, b_ in zip(total, begin)]
  elif auto == "VALID": begin = end = [0] * nd
  else:
    pads = list(n.attr("pads") or [0] * (2 * nd))
    begin, end = pads[:nd], pads[nd:]
  y = _CONV_T[nd](x, w, None, strides, 0, 0, n.attr("group", 1), dilations)
  # output_padding adds places at the end; pads crop (negative total padding adds places too)
  y = _pad_spatial(y, [-v for v in begin], [p - e for p, e in zip(out_pad, end)])
  return y if b is None else y + b.reshape(-1, *(1,) * nd)


@op("Col2Im", since=18)
def col2im(n, x, image_shape, block_shape):
  """torch's fold in N-D: each column is added back at its block's place, as a transposed convolution grouped by
  image channel whose weight is one-hot (input channel c * K + j puts its value at block position j)."""
  image, block = [int(v) for v in n.host(image_shape)], [int(v) for v in n.host(block_shape)]
  nd, K = len(image), math.prod(block)
  if nd not in _CONV_T: raise NotImplementedError(f"Col2Im: {nd}-D images are not supported (image_shape {image})")
  if len(block) != nd: raise ValueError(f"Col2Im: image_shape {image} and block_shape {block} differ in length")
  strides, dilations = list(n.attr("strides") or [1] * nd), list(n.attr("dilations") or [1] * nd)
  pads = list(n.attr("pads") or [0] * (2 * nd))
  begin, end = pads[:nd], pads[nd:]
  grid = [(i + b + e - d * (k - 1) - 1) // s + 1 for i, b, e, d, k, s in zip(image, begin, end, dilations, block, strides)]
  N, CK, L = x.shape
  if CK % K or math.prod(grid) != L:
    raise ValueError(f"Col2Im: input shape {x.shape} does not fit image_shape {image}, block_shape {block}, pads {pads}, "
                     f"strides {strides} and dilations {dilations}: expected (N, C * {K}, {math.prod(grid)})")
  C = CK // K
  onehot = np.tile(np.eye(K, dtype=np.float32).reshape(K, 1, *block), (C, 1, *[1] * nd))
  y = _CONV_T[nd](x.reshape(N, CK, *grid), Tensor(onehot, device=x.device).cast(x.dtype), None, strides, 0, 0, C, dilations)
  # y covers the padded image up to the last block's end: widen it to the padded image, then cut the pads off
  return _pad_spatial(y, [-b for b in begin], [i + b - f for i, b, f in zip(image, begin, y.shape[2:])])


def _pool_windows(n, x: Tensor, fill: float):
  """(windows (N, C, *out, *kernel) of x padded with `fill`, kernel, the explicit pads, output sizes)."""
  kernel = list(n.attr("kernel_shape"))
  nd = len(kernel)
  strides, dilations = _geometry(n, x, kernel)
  begin, end, outs = _pads(n, x.shape[2:], kernel, strides, dilations, bool(n.attr("ceil_mode", 0)))
  eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
  need = [(o - 1) * s + e for o, s, e in zip(outs, strides, eff)]  # padded extent the windows read
  ends = [nd_ - i - b for nd_, i, b in zip(need, x.shape[2:], begin)]
  padded = _pad_spatial(x, begin, ends, fill)
  return F._windows(padded, kernel, strides, dilations), kernel, (begin, end, ends), outs


@op("MaxPool")
def max_pool(n, x):
  lowest = -math.inf if x.dtype.is_float else -(2 ** (8 * x.dtype.itemsize - 1)) if x.dtype.kind == "i" else 0
  win, kernel, _, outs = _pool_windows(n, x, lowest)
  nd = len(kernel)
  red = tuple(range(-nd, 0))
  y = win.amax(red)
  if not n.output_used(1): return y
  ins = x.shape[2:]
  pos = Tensor.arange(math.prod(ins), device=x.device)
  if n.attr("storage_order", 0):  # column-major positions
    pos = pos.reshape(*reversed(ins)).permute(*reversed(range(nd)))
  pos = pos.reshape(1, 1, *ins)
  pwin, *_ = _pool_windows(n, pos, -1)
  big = math.prod(ins)
  idx = (win == y.reshape(*y.shape, *(1,) * nd)).where(pwin, big).amin(red)
  base = Tensor.arange(x.shape[0] * x.shape[1], device=x.device).reshape(x.shape[0], x.shape[1], *(1,) * nd) * big
  return y, idx + base


@op("AveragePool")
def average_pool(n, x):
  win, kernel, (begin, end, ends), outs = _pool_windows(n, x, 0.0)
  nd = len(kernel)
  total = win.sum(tuple(range(-nd, 0)))
  # the divisor: the window's places inside the input, or inside the input and its explicit pads
  ones = Tensor.ones(1, 1, *x.shape[2:], dtype=x.dtype, device=x.device)
  if n.attr("count_include_pad", 0):
    ones = _pad_spatial(ones, begin, end, 1.0)
    ones = _pad_spatial(ones, [0] * nd, [a - b for a, b in zip(ends, end)], 0.0)
  else: ones = _pad_spatial(ones, begin, ends, 0.0)
  strides, dilations = _geometry(n, x, kernel)
  count = F._windows(ones, kernel, strides, dilations).sum(tuple(range(-nd, 0)))
  return total / count


@op("LpPool")
def lp_pool(n, x):
  p = n.attr("p", 2)
  win, kernel, _, _ = _pool_windows(n, x, 0.0)
  return (win.abs() ** p).sum(tuple(range(-len(kernel), 0))) ** (1.0 / p)


@op("GlobalAveragePool")
def global_average_pool(n, x): return x.mean(tuple(range(2, x.ndim)), keepdim=True)


@op("GlobalMaxPool")
def global_max_pool(n, x): return x.amax(tuple(range(2, x.ndim)), keepdim=True)


@op("GlobalLpPool")
def global_lp_pool(n, x):
  p = n.attr("p", 2)
  return (x.abs() ** p).sum(tuple(range(2, x.ndim)), keepdim=True) ** (1.0 / p)


@op("MaxUnpool")
def max_unpool(n, x, idx, output_shape=None):
  kernel = list(n.attr("kernel_shape"))
  nd = len(kernel)
  strides = list(n.attr("strides") or [1] * nd)
  pads = list(n.attr("pads") or [0] * (2 * nd))
  shape = list(x.shape[:2]) + [(i - 1) * s + k - pads[j] - pads[j + nd]
                               for j, (i, s, k) in enumerate(zip(x.shape[2:], strides, kernel))]
  if output_shape is not None and ints(n, output_shape) != shape:
    raise NotImplementedError(f"MaxUnpool: an output_shape {ints(n, output_shape)} other than the inferred {shape} is "
                              f"not supported")
  out = Tensor.zeros(math.prod(shape), dtype=x.dtype, device=x.device)
  return out.scatter(0, idx.reshape(-1), x.reshape(-1)).reshape(shape)


# ---------------------------------------------------------------- normalization

def _channel(t: Tensor, ndim: int) -> Tensor: return t.reshape(-1, *(1,) * (ndim - 2))


@op("BatchNormalization")
def batch_norm(n, x, scale, bias, mean, var):
  eps = n.attr("epsilon", 1e-5)
  if n.opset >= 14 and n.attr("training_mode", 0):
    axes = (0,) + tuple(range(2, x.ndim))
    m = x.mean(axes)
    v = ((x - _channel(m, x.ndim)) ** 2).mean(axes)
    momentum = n.attr("momentum", 0.9)
    y = (x - _channel(m, x.ndim)) / (_channel(v, x.ndim) + eps).sqrt() * _channel(scale, x.ndim) + _channel(bias, x.ndim)
    return y, mean * momentum + m * (1 - momentum), var * momentum + v * (1 - momentum)
  inv = (var + eps).rsqrt() * scale
  return x * _channel(inv, x.ndim) + _channel(bias - mean * inv, x.ndim)


@op("InstanceNormalization")
def instance_norm(n, x, scale, bias):
  return F.instance_norm(x, weight=scale, bias=bias, eps=n.attr("epsilon", 1e-5))


@op("LayerNormalization")
def layer_norm(n, x, scale, bias=None):
  axis = n.attr("axis", -1) % x.ndim
  eps = n.attr("epsilon", 1e-5)
  axes = tuple(range(axis, x.ndim))
  xf = x if x.dtype is dt.float32 or n.attr("stash_type", 1) != 1 else x.float()
  mean = xf.mean(axes, keepdim=True)
  d = xf - mean
  inv_std = ((d * d).mean(axes, keepdim=True) + eps).rsqrt()
  y = (d * inv_std).cast(x.dtype) * scale
  if bias is not None: y = y + bias
  return y, mean, inv_std


@op("GroupNormalization")
def group_norm(n, x, scale, bias):
  g, eps = n.attr("num_groups"), n.attr("epsilon", 1e-5)
  N, C = x.shape[:2]
  xg = x.reshape(N, g, -1)
  mean = xg.mean(-1, keepdim=True)
  d = xg - mean
  y = (d * ((d * d).mean(-1, keepdim=True) + eps).rsqrt()).reshape(x.shape)
  if scale.shape[0] != C:  # opset 18: a scale and bias per group
    scale = scale.reshape(g, 1).expand(g, C // g).reshape(C)
    bias = bias.reshape(g, 1).expand(g, C // g).reshape(C)
  return y * _channel(scale, x.ndim) + _channel(bias, x.ndim)


@op("LRN")
def lrn(n, x):
  size, alpha, beta, bias = n.attr("size"), n.attr("alpha", 1e-4), n.attr("beta", 0.75), n.attr("bias", 1.0)
  before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
  sq = (x * x).transpose(1, -1)
  sq = sq.pad((before, after))
  C = x.shape[1]
  total = None
  for j in range(size):  # the channel window as `size` shifted views, summed in one kernel
    part = sq[..., j:j + C]
    total = part if total is None else total + part
  return x / (total.transpose(1, -1) * (alpha / size) + bias) ** beta


@op("Dropout")
def dropout(n, x, ratio=None, training=None):
  train = n.attr("is_test", 1) == 0 if n.opset < 7 else bool(training is not None and n.host(training).item())
  r = float(n.host(ratio).item()) if ratio is not None else n.attr("ratio", 0.5)
  if train and r > 0:
    raise NotImplementedError("Dropout: training_mode with a ratio above 0 is random; lazygrad.onnx runs inference only")
  return x, Tensor.ones(*x.shape, dtype=dt.bool_, device=x.device)


# ---------------------------------------------------------------- Resize

def _cubic(t: np.ndarray, a: float) -> np.ndarray:
  t = np.abs(t)
  return np.where(t <= 1, ((a + 2) * t - (a + 3)) * t * t + 1,
                  np.where(t < 2, ((a * t - 5 * a) * t + 8 * a) * t - 4 * a, 0.0))


def _source_coords(ctm: str, out: int, inp: int, scale: float, roi: tuple[float, float]) -> np.ndarray:
  o = np.arange(out, dtype=np.float64)
  if ctm == "half_pixel": return (o + 0.5) / scale - 0.5
  if ctm == "half_pixel_symmetric":
    adj = out / (scale * inp)
    return inp / 2 * (1 - adj) + (o + 0.5) / scale - 0.5
  if ctm == "pytorch_half_pixel": return (o + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
  if ctm == "align_corners":  # ONNX divides by the resized length in * scale, not the rounded output size
    length = inp * scale
    return o * (inp - 1) / (length - 1) if length > 1 else np.zeros(out)
  if ctm == "asymmetric": return o / scale
  if ctm == "tf_crop_and_resize":
    s, e = roi
    return s * (inp - 1) + o * (e - s) * (inp - 1) / (out - 1) if out > 1 else np.full(out, 0.5 * (s + e) * (inp - 1))
  raise NotImplementedError(f"Resize: coordinate_transformation_mode {ctm!r} is not supported")


def _nearest(x: np.ndarray, mode: str) -> np.ndarray:
  if mode == "round_prefer_floor": return np.where(x - np.floor(x) == 0.5, np.floor(x), np.round(x))
  if mode == "round_prefer_ceil": return np.floor(x + 0.5)
  if mode == "floor": return np.floor(x)
  if mode == "ceil": return np.ceil(x)
  raise NotImplementedError(f"Resize: nearest_mode {mode!r} is not supported")


def resize_matrix(n, mode: str, inp: int, out: int, scale: float, roi) -> tuple[np.ndarray, np.ndarray]:
  """(the (out, in) matrix that resamples one axis, a mask of the outputs that take the extrapolation value)."""
  ctm = n.attr("coordinate_transformation_mode", "half_pixel")
  x = _source_coords(ctm, out, inp, scale, roi)
  outside = ((x < 0) | (x > inp - 1)) if ctm == "tf_crop_and_resize" else np.zeros(out, bool)
  m = np.zeros((out, inp))
  rows = np.arange(out)
  if mode == "nearest":
    src = np.clip(_nearest(x, n.attr("nearest_mode", "round_prefer_floor")), 0, inp - 1).astype(np.int64)
    m[rows, src] = 1
  else:
    antialias = n.attr("antialias", 0) and scale < 1  # the kernel stretched by 1 / scale
    width = 1 if mode == "linear" else 2
    support = width / scale if antialias else width
    first = np.floor(x - support).astype(np.int64) + 1
    taps = np.arange(int(2 * math.ceil(support)) + 1)
    pos = first[:, None] + taps[None, :]  # (out, taps) neighbour positions
    t = (pos - x[:, None]) * (scale if antialias else 1)
    w = np.maximum(0.0, 1 - np.abs(t)) if mode == "linear" else _cubic(t, n.attr("cubic_coeff_a", -0.75))
    if n.attr("exclude_outside", 0): w = np.where((pos >= 0) & (pos < inp), w, 0)
    if n.attr("exclude_outside", 0) or antialias:  # taps outside the input still count here: they read the edge
      w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
    np.add.at(m, (np.repeat(rows, pos.shape[1]), np.clip(pos, 0, inp - 1).reshape(-1)), w.reshape(-1))
  m[outside] = 0
  return m, outside


def _resize(n, x: Tensor, scales, sizes, roi, axes) -> Tensor:
  mode = n.attr("mode", "nearest")
  if mode not in ("nearest", "linear", "cubic"): raise NotImplementedError(f"Resize: mode {mode!r} is not supported")
  axes = list(range(x.ndim)) if axes is None else [a % x.ndim for a in axes]
  ins = [x.shape[a] for a in axes]
  if sizes is not None:
    policy = n.attr("keep_aspect_ratio_policy", "stretch")
    scales = [o / i for o, i in zip(sizes, ins)]
    if policy != "stretch":
      s = min(scales) if policy == "not_larger" else max(scales)
      scales = [s] * len(ins)
      sizes = [int(math.floor(i * s + 0.5)) for i in ins]
    outs = list(sizes)
  else: outs = [int(math.floor(i * s)) for i, s in zip(ins, scales)]
  roi = roi if roi is not None and len(roi) else [0.0] * len(axes) + [1.0] * len(axes)
  if len(roi) == 2 * x.ndim and len(axes) != x.ndim: roi = [roi[a] for a in axes] + [roi[a + x.ndim] for a in axes]
  extrapolation = n.attr("extrapolation_value", 0.0)
  for j, (a, i, o, s) in enumerate(zip(axes, ins, outs, scales)):
    if i == o and s == 1.0 and n.attr("coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize": continue
    m, outside = resize_matrix(n, mode, i, o, s, (roi[j], roi[j + len(axes)]))
    if mode == "nearest" and not outside.any():  # a gather: exact for every dtype
      x = x.index_select(a, Tensor(m.argmax(1).astype(np.int64), device=x.device))
      continue
    xf = x if x.dtype.is_float else x.float()
    y = (xf.transpose(a, -1) @ Tensor(m.T.astype(np.float32), dtype=xf.dtype, device=x.device)).transpose(a, -1)
    if outside.any():
      mask = Tensor(outside.reshape(-1, *(1,) * (x.ndim - 1 - a)), device=x.device)
      y = mask.where(extrapolation, y)
    x = y if x.dtype.is_float else y.round().cast(x.dtype)
  return x


@op("Resize", since=10, until=10)
def resize_10(n, x, scales):
  return _resize(n, x, [float(v) for v in n.host(scales).reshape(-1)], None, None, None)


@op("Resize", since=11)
def resize(n, x, roi=None, scales=None, sizes=None):
  axes = n.attr("axes")
  roi = None if roi is None or roi.numel() == 0 else [float(v) for v in n.host(roi).reshape(-1)]
  if sizes is not None and sizes.numel():
    return _resize(n, x, None, ints(n, sizes), roi, axes)
  return _resize(n, x, [float(v) for v in n.host(scales).reshape(-1)], None, roi, axes)


class _Upsample:
  """Upsample's attributes in Resize's words: asymmetric coordinates, nearest rounds down."""
  def __init__(self, n): self.n, self.op_type = n, n.op_type
  def attr(self, name, default=None):
    return {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor",
            "mode": "linear" if self.n.attr("mode", "nearest") in ("linear", "bilinear") else "nearest"}.get(
              name, self.n.attr(name, default) if name not in ("axes",) else default)


@op("Upsample", until=8)
def upsample_attr(n, x):
  return _resize(_Upsample(n), x, list(n.attr("scales")), None, None, None)


@op("Upsample", since=9)
def upsample(n, x, scales):
  return _resize(_Upsample(n), x, [float(v) for v in n.host(scales).reshape(-1)], None, None, None)


# ---------------------------------------------------------------- recurrent ops

_ACTIVATIONS = {
  "Sigmoid": lambda x, a, b: x.sigmoid(), "Tanh": lambda x, a, b: x.tanh(), "Relu": lambda x, a, b: x.relu(),
  "Affine": lambda x, a, b: x * a + b, "LeakyRelu": lambda x, a, b: F.leaky_relu(x, a),
  "ThresholdedRelu": lambda x, a, b: (x > a).where(x, 0.0), "ScaledTanh": lambda x, a, b: (x * b).tanh() * a,
  "HardSigmoid": lambda x, a, b: (x * a + b).clamp(0.0, 1.0), "Elu": lambda x, a, b: F.elu(x, a),
  "Softsign": lambda x, a, b: F.softsign(x), "Softplus": lambda x, a, b: F.softplus(x)}
_DEFAULT_ALPHA = {"LeakyRelu": 0.01, "ThresholdedRelu": 1.0, "HardSigmoid": 0.2, "Elu": 1.0}
_DEFAULT_BETA = {"HardSigmoid": 0.5}


def _activations(n, defaults: list[str], num_dir: int):
  names = n.attr("activations") or defaults * num_dir
  alphas, betas = n.attr("activation_alpha") or [], n.attr("activation_beta") or []
  out = []
  for i, name in enumerate(names):
    key = next((k for k in _ACTIVATIONS if k.lower() == name.lower()), None)
    if key is None: raise NotImplementedError(f"{n.op_type}: activation {name!r} is not supported")
    a = alphas[i] if i < len(alphas) else _DEFAULT_ALPHA.get(key, 1.0)
    b = betas[i] if i < len(betas) else _DEFAULT_BETA.get(key, 0.0)
    out.append(lambda x, f=_ACTIVATIONS[key], a=a, b=b: f(x, a, b))
  k = len(defaults)
  return [out[d * k:(d + 1) * k] for d in range(num_dir)]


def _recurrent(n, x, w, r, b, seq_lens, h0, c0, p, gates: int, step):
  """Runs `step` over time for each direction; returns (Y, Y_h[, Y_c]) in ONNX's layouts."""
  layout = n.attr("layout", 0)
  if layout: x = x.transpose(0, 1)
  T, B, _ = x.shape
  hidden = n.attr("hidden_size") or r.shape[-1]
  direction = n.attr("direction", "forward")
  num_dir = 2 if direction == "bidirectional" else 1
  lens = None
  if seq_lens is not None:
    lens_host = n.host(seq_lens).reshape(-1)
    if not (lens_host == T).all(): lens = seq_lens.cast(dt.int64).reshape(B, 1)
  ys, hs, cs = [], [], []
  for d in range(num_dir):
    reverse = direction == "reverse" or d == 1
    wd, rd = w[d], r[d]
    bd = b[d] if b is not None else None
    h = h0[d] if h0 is not None else Tensor.zeros(B, hidden, dtype=x.dtype, device=x.device)
    c = (c0[d] if c0 is not None else Tensor.zeros(B, hidden, dtype=x.dtype, device=x.device)) if gates == 4 else None
    pd = p[d] if p is not None else None
    xw = x @ wd.transpose(0, 1)  # (T, B, gates*hidden): the input projection for all steps at once
    if bd is not None: xw = xw + bd[:gates * hidden]
    outs = [None] * T
    for t in (reversed(range(T)) if reverse else range(T)):
      h_new, c_new = step(xw[t], h, c, rd, bd, pd, d)
      if lens is not None:
        live = Tensor(t, device=x.device) < lens
        h_new = live.where(h_new, h)
        if c is not None: c_new = live.where(c_new, c)
        outs[t] = live.where(h_new, 0.0)
      else: outs[t] = h_new
      h, c = h_new, c_new
    ys.append(stack(outs, 0))
    hs.append(h)
    cs.append(c)
  y = stack(ys, 1)  # (T, num_dir, B, hidden)
  yh = stack(hs, 0)
  if layout: y, yh = y.permute(2, 0, 1, 3), yh.transpose(0, 1)
  if gates == 4:
    yc = stack(cs, 0)
    return y, yh, (yc.transpose(0, 1) if layout else yc)
  return y, yh


def _clip(n, v: Tensor) -> Tensor:
  c = n.attr("clip")
  return v if c is None else v.clamp(-c, c)


@op("RNN")
def rnn(n, x, w, r, b=None, seq_lens=None, h0=None):
  hidden = r.shape[-1]
  acts = _activations(n, ["Tanh"], 2 if n.attr("direction") == "bidirectional" else 1)
  def step(xw, h, c, rd, bd, pd, d):
    g = xw + h @ rd.transpose(0, 1)
    if bd is not None: g = g + bd[hidden:]
    return acts[d][0](_clip(n, g)), None
  return _recurrent(n, x, w, r, b, seq_lens, h0, None, None, 1, step)


@op("GRU")
def gru(n, x, w, r, b=None, seq_lens=None, h0=None):
  hidden = r.shape[-1]
  acts = _activations(n, ["Sigmoid", "Tanh"], 2 if n.attr("direction") == "bidirectional" else 1)
  before_reset = n.attr("linear_before_reset", 0)
  def step(xw, h, c, rd, bd, pd, d):
    f, g = acts[d]
    rz = h @ rd[:2 * hidden].transpose(0, 1)  # ONNX's gate order: z, r, h
    if bd is not None: rz = rz + bd[3 * hidden:5 * hidden]
    zr = xw[:, :2 * hidden] + rz
    z, rr = f(_clip(n, zr[:, :hidden])), f(_clip(n, zr[:, hidden:]))
    rh = rd[2 * hidden:].transpose(0, 1)
    rb = bd[5 * hidden:] if bd is not None else 0.0
    hh = xw[:, 2 * hidden:] + (rr * (h @ rh + rb) if before_reset else (rr * h) @ rh + rb)
    hh = g(_clip(n, hh))
    return (1 - z) * hh + z * h, None
  return _recurrent(n, x, w, r, b, seq_lens, h0, None, None, 3, step)


@op("LSTM")
def lstm(n, x, w, r, b=None, seq_lens=None, h0=None, c0=None, p=None):
  hidden = r.shape[-1]
  acts = _activations(n, ["Sigmoid", "Tanh", "Tanh"], 2 if n.attr("direction") == "bidirectional" else 1)
  couple = n.attr("input_forget", 0)
  def step(xw, h, c, rd, bd, pd, d):
    f, g, hact = acts[d]
    gates = xw + h @ rd.transpose(0, 1)
    if bd is not None: gates = gates + bd[4 * hidden:]
    i_, o_, f_, c_ = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))  # ONNX's order: i, o, f, c
    if pd is not None: i_, f_ = i_ + pd[:hidden] * c, f_ + pd[2 * hidden:] * c
    it, ft = f(_clip(n, i_)), f(_clip(n, f_))
    if couple: ft = 1 - it
    c_new = ft * c + it * g(_clip(n, c_))
    if pd is not None: o_ = o_ + pd[hidden:2 * hidden] * c_new
    return f(_clip(n, o_)) * hact(c_new), c_new
  return _recurrent(n, x, w, r, b, seq_lens, h0, c0, p, 4, step)


# ---------------------------------------------------------------- losses

def _nll(n, logp: Tensor, target: Tensor, weight) -> Tensor:
  ignore = n.attr("ignore_index")
  reduction = n.attr("reduction", "mean")
  target = target.cast(dt.int64)
  ii = ignore if ignore is not None else -(2 ** 62)
  return F.nll_loss(logp, target, weight, ignore_index=ii, reduction=reduction)


@op("NegativeLogLikelihoodLoss")
def nll_loss(n, x, target, weight=None):
  return _nll(n, x, target, weight).cast(x.dtype)


@op("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy(n, scores, labels, weights=None):
  logp = scores.log_softmax(1)
  loss = _nll(n, logp, labels, weights).cast(scores.dtype)
  return loss, logp
