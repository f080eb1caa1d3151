"""torch.nn.functional's names, composed from Tensor methods only: activations, convolution and pooling as views,
normalization, dropout, embedding, attention and losses. Each op here is the one definition the nn modules reuse.

Convolution and pooling never copy windows: `_windows` turns the (padded) input into a (..., *out, *kernel) view with
pads, reshapes, shrinks and expands, and the op is a reduction over that view.
"""
from __future__ import annotations
import math
import warnings
from typing import Sequence
import numpy as np
from lazygrad.tensor import Tensor, ShapeError, cat, matmul_panel, _index_matches
from lazygrad.function import CustomGrad, Stored
from lazygrad.dtype import bool_, int64

# ---------------------------------------------------------------- helpers


def _ntuple(value, n: int, name: str, op: str) -> tuple:
  if isinstance(value, (int, float, np.integer)) and not isinstance(value, bool): return (value,) * n
  value = tuple(value)
  if len(value) == 1: return value * n
  if len(value) != n:
    raise ShapeError(f"{op}: expected {name} to be a single integer or {n} values to match the {n} spatial "
                     f"dimension{'s' if n > 1 else ''}, got {name}={value}")
  return value


def _check_tensor(x, name: str, op: str):
  if not isinstance(x, Tensor): raise TypeError(f"{op}: {name} must be a Tensor, got {type(x).__name__}")


def _inplace(x: Tensor, out: Tensor, inplace: bool) -> Tensor:
  """inplace=True overwrites x when nothing differentiates through it; with autograd the result is returned only."""
  if inplace and not x.requires_grad: return x.assign(out)
  return out


# ---------------------------------------------------------------- numerically careful pieces

def _softplus(x: Tensor) -> Tensor:
  """log(1 + exp(x)) without overflow; maximum/minimum (not abs) give the right gradient (1/2) at 0."""
  hi, lo = x.maximum(0), x.minimum(0)
  return hi + (lo - hi).exp().log1p()


def _clamp_min_no_grad(x: Tensor, low: float) -> Tensor:
  """max(x, low) whose gradient passes through unchanged, as torch's clamp_ under no_grad on a clone."""
  return x + (x.maximum(low) - x).detach()


def _norm2(x: Tensor, dim, keepdim: bool = True) -> Tensor:
  """The 2-norm along dim whose gradient at a zero vector is 0 (as torch's), not the nan of sqrt'(0) * 0."""
  sq = (x * x).sum(dim, keepdim=keepdim)
  nonzero = sq > 0
  return nonzero.where(nonzero.where(sq, 1).sqrt(), 0.0)


def _log_safe(x: Tensor) -> Tensor:
  """log(x), with x <= 0 read as 1 so masked-out branches never produce inf/nan gradients."""
  return (x > 0).where(x, 1).log()


# ---------------------------------------------------------------- activations

def relu(input: Tensor, inplace: bool = False) -> Tensor: return _inplace(input, input.relu(), inplace)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
  if min_val > max_val: raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
  # the gradient is 1 strictly inside (min_val, max_val) and 0 at and beyond the edges, as in torch
  out = (input <= min_val).where(min_val, (input >= max_val).where(max_val, input))
  return _inplace(input, out, inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor: return hardtanh(input, 0.0, 6.0, inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
  x = input._float()
  if approximate == "none":  # x * Phi(x), Phi the standard normal CDF
    def phi(x):
      # from erfc alone: 1 - erfc/2 needs erfc's absolute accuracy only, and on the negative side erfc/2 itself keeps
      # its relative accuracy (1 + erf(x) lost digits there), so erf's small-argument series, half its work, goes
      half_tail = Tensor._erfc_positive((x * math.sqrt(0.5)).abs()) * 0.5
      return (x >= 0).where(1 - half_tail, half_tail)
    return CustomGrad.apply(x, value=lambda x: x * phi(x), key="gelu",
                            grad=lambda x, g: g * (phi(x) + x * (-0.5 * x * x).exp() * (1 / math.sqrt(2 * math.pi))))
  if approximate == "tanh":  # 1 + tanh(y) = 2 sigmoid(2y)
    return x * (2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).sigmoid()
  raise RuntimeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor, inplace: bool = False) -> Tensor: return _inplace(input, input * input.sigmoid(), inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor: return _inplace(input, input * _softplus(input).tanh(), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
  return _inplace(input, (input > 0).where(input, input * negative_slope), inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
  # the negative part only: no inf in the unused branch (where, not minimum: 0 keeps its gradient of 1, as in torch)
  neg = alpha * (input > 0).where(0.0, input).expm1()
  return _inplace(input, (input > 0).where(input, neg), inplace)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
  if alpha == 0: raise RuntimeError("celu: alpha cannot be 0 (it divides the input)")
  neg = alpha * ((input > 0).where(0.0, input) / alpha).expm1()
  return _inplace(input, (input > 0).where(input, neg), inplace)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
  return _inplace(input, _SELU_SCALE * elu(input, _SELU_ALPHA), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
  z = input * beta
  return (z > threshold).where(input, _softplus(z) / beta)


def logsigmoid(input: Tensor) -> Tensor: return -_softplus(-input)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
  return _inplace(input, hardtanh(input + 3, 0.0, 6.0) / 6, inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
  # torch's gradient: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above (the product rule gives the same inside)
  out = (input < -3).where(input * 0, (input <= 3).where(input * (input + 3) / 6, input))  # -inf * 0: NaN, as torch
  return _inplace(input, out, inplace)


def sigmoid(input: Tensor) -> Tensor: return input.sigmoid()
def tanh(input: Tensor) -> Tensor: return input.tanh()
def softsign(input: Tensor) -> Tensor: return input / (1 + input.abs())
def tanhshrink(input: Tensor) -> Tensor: return input - input.tanh()


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
  if lambd < 0: raise RuntimeError(f"softshrink: lambda must be non-negative, got {lambd}")
  return (input > lambd).where(input - lambd, (input < -lambd).where(input + lambd, 0.0))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
  return ((input > lambd) | (input < -lambd)).where(input, 0.0)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
  return _inplace(input, (input > threshold).where(input, value), inplace)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, inplace: bool = False) -> Tensor:
  if training:  # a random slope per element, drawn from lazygrad's seeded generator
    slope = Tensor.rand(*input.shape, device=input.device) * (upper - lower) + lower
    return _inplace(input, (input >= 0).where(input, input * slope), inplace)
  return leaky_relu(input, (lower + upper) / 2, inplace)


def glu(input: Tensor, dim: int = -1) -> Tensor:
  if input.ndim == 0: raise ShapeError("glu: does not support 0-d (scalar) tensors")
  n = input.size(dim)
  if n % 2: raise ShapeError(f"glu: halving dimension must be even, but dimension {dim} is size {n} (shape {input.shape})")
  a, b = input.chunk(2, dim)
  return a * b.sigmoid()


def prelu(input: Tensor, weight: Tensor) -> Tensor:
  if weight.numel() != 1:
    c = input.shape[1] if input.ndim >= 2 else input.shape[0] if input.ndim == 1 else 1
    if weight.numel() != c:
      raise ShapeError(f"prelu: weight has {weight.numel()} elements but the input (shape {input.shape}) has {c} channels")
    weight = weight.reshape((c,) + (1,) * (input.ndim - 2)) if input.ndim >= 2 else weight.reshape(c)
  return (input > 0).where(input, input * weight)


def _softmax_dim(ndim: int, name: str) -> int:
  warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as an argument.",
                stacklevel=3)
  return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
  return input.softmax(_softmax_dim(input.ndim, "softmax") if dim is None else dim, dtype)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
  return input.log_softmax(_softmax_dim(input.ndim, "log_softmax") if dim is None else dim, dtype)


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
  x = input.cast(dtype) if dtype is not None else input
  return (-x).softmax(_softmax_dim(input.ndim, "softmin") if dim is None else dim)


# ---------------------------------------------------------------- linear layers

def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
  if weight.ndim not in (1, 2): raise ShapeError(f"linear: weight must be 1-D or 2-D, got shape {weight.shape}")
  k = weight.shape[-1]
  if input.ndim == 0 or input.shape[-1] != k:
    raise ShapeError(f"linear: input shape {input.shape} does not end in in_features={k} (weight shape {weight.shape})")
  if bias is not None and weight.ndim == 2 and bias.ndim and bias.shape[-1] not in (1, weight.shape[0]):
    raise ShapeError(f"linear: bias shape {bias.shape} does not match out_features={weight.shape[0]} (weight shape {weight.shape})")
  return input.linear(weight, bias)


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
  """out[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o]."""
  if weight.ndim != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
    raise ShapeError(f"bilinear: input shapes {input1.shape} and {input2.shape} do not match weight shape {weight.shape} "
                     "(expected (out_features, in1_features, in2_features))")
  t = (input1.unsqueeze(-2).unsqueeze(-2) @ weight).squeeze(-2)  # (..., o, j)
  out = (t * input2.unsqueeze(-2)).sum(-1)
  return out + bias if bias is not None else out


# ---------------------------------------------------------------- windows: the view behind conv and pooling

def _windows(x: Tensor, kernel, stride, dilation) -> Tensor:
  """(..., *in) -> (..., *out, *kernel): every window over the last len(kernel) dims, as a view (no copy).

  out[o] reads in[o * stride + k * dilation]. Where a window step never overlaps (dilation 1, kernel <= stride) a
  pad + reshape + shrink is enough; otherwise the input is repeated along a new dim so that one reshape lays the
  taps at a fixed distance (in + dilation) apart (tinygrad's trick), and shrinks pick the windows out.
  """
  nd = len(kernel)
  lead = x.shape[:-nd]
  ins = x.shape[-nd:]
  outs = [(i - d * (k - 1) - 1) // s + 1 for i, k, s, d in zip(ins, kernel, stride, dilation)]
  keep = [(0, n) for n in lead]
  L = len(lead)
  if all(d == 1 and k <= s for k, s, d in zip(kernel, stride, dilation)):
    x = x._pad(tuple([(0, 0)] * L + [(0, max(0, o * s - i)) for o, s, i in zip(outs, stride, ins)]))
    x = x._shrink(tuple(keep + [(0, o * s) for o, s in zip(outs, stride)]))
    x = x.reshape(*lead, *[v for o, s in zip(outs, stride) for v in (o, s)])
    x = x._shrink(tuple(keep + [b for o, k in zip(outs, kernel) for b in ((0, o), (0, k))]))
    return x.permute(*range(L), *[L + 2 * j for j in range(nd)], *[L + 2 * j + 1 for j in range(nd)])
  reps = [-(-k * (i + d) // i) for i, k, d in zip(ins, kernel, dilation)]
  x = x.reshape(*lead, *[v for i in ins for v in (1, i)])
  x = x.expand(*lead, *[v for e, i in zip(reps, ins) for v in (e, i)])
  x = x.reshape(*lead, *[e * i for e, i in zip(reps, ins)])
  x = x._shrink(tuple(keep + [(0, k * (i + d)) for k, i, d in zip(kernel, ins, dilation)]))
  x = x.reshape(*lead, *[v for k, i, d in zip(kernel, ins, dilation) for v in (k, i + d)])
  # each row k now starts at in[k * dilation]; window o sits at o * stride along it
  x = x._shrink(tuple(keep + [b for k, i, d, o, s in zip(kernel, ins, dilation, outs, stride) for b in ((0, k), (0, min(o * s, i + d)))]))
  x = x._pad(tuple([(0, 0)] * L + [p for i, d, o, s in zip(ins, dilation, outs, stride) for p in ((0, 0), (0, max(0, o * s - i - d)))]))
  x = x.reshape(*lead, *[v for k, o, s in zip(kernel, outs, stride) for v in (k, o, s)])
  x = x._shrink(tuple(keep + [b for k, o in zip(kernel, outs) for b in ((0, k), (0, o), (0, 1))]))
  x = x.reshape(*lead, *[v for k, o in zip(kernel, outs) for v in (k, o)])
  return x.permute(*range(L), *[L + 2 * j + 1 for j in range(nd)], *[L + 2 * j for j in range(nd)])


def _pad_spatial(x: Tensor, pads, value=0.0) -> Tensor:
  """Pad the last len(pads) dims with (before, after) pairs."""
  return x._pad(tuple([(0, 0)] * (x.ndim - len(pads)) + list(pads)), value)


# ---------------------------------------------------------------- convolution

def _conv_input(op: str, nd: int, input: Tensor, weight: Tensor, weight_dims: str, stride, dilation, groups):
  """The checks every convolution makes first, in torch's words: (the batched input, whether it was unbatched,
  stride and dilation as nd-tuples)."""
  _check_tensor(input, "input", op)
  _check_tensor(weight, "weight", op)
  if weight.ndim != nd + 2:
    raise ShapeError(f"{op}: weight must be {nd + 2}-D ({weight_dims}, *kernel), got shape {weight.shape}")
  if input.ndim not in (nd + 1, nd + 2):
    raise ShapeError(f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, got shape {input.shape}")
  unbatched = input.ndim == nd + 1
  stride, dilation = _ntuple(stride, nd, "stride", op), _ntuple(dilation, nd, "dilation", op)
  if any(s <= 0 for s in stride): raise RuntimeError(f"{op}: non-positive stride is not supported, got stride={stride}")
  if any(d <= 0 for d in dilation): raise RuntimeError(f"{op}: non-positive dilation is not supported, got dilation={dilation}")
  if not isinstance(groups, int) or groups <= 0: raise RuntimeError(f"{op}: non-positive groups is not supported, got groups={groups}")
  return (input.unsqueeze(0) if unbatched else input), unbatched, stride, dilation


def _conv(op: str, nd: int, input: Tensor, weight: Tensor, bias, stride, padding, dilation, groups) -> Tensor:
  x, unbatched, stride, dilation = _conv_input(op, nd, input, weight, "out_channels, in_channels/groups", stride,
                                               dilation, groups)
  cout, cin_g, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
  cin = x.shape[1]
  if cout % groups:
    raise ShapeError(f"{op}: out_channels {cout} (weight shape {weight.shape}) is not divisible by groups {groups}")
  if cin != cin_g * groups:
    raise ShapeError(f"{op}: input has {cin} channels but weight expects {cin_g * groups} (weight shape {weight.shape}, groups {groups})")
  if isinstance(padding, str):
    if padding == "valid": pads = [(0, 0)] * nd
    elif padding == "same":
      if any(s != 1 for s in stride):
        raise RuntimeError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
      pads = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    else: raise RuntimeError(f"{op}: invalid padding string {padding!r}; use 'same', 'valid' or integers")
  else:
    padding = _ntuple(padding, nd, "padding", op)
    if any(p < 0 for p in padding): raise RuntimeError(f"{op}: negative padding is not supported, got padding={padding}")
    pads = [(p, p) for p in padding]
  padded = [i + a + b for i, (a, b) in zip(x.shape[2:], pads)]
  if any(p < d * (k - 1) + 1 for p, k, d in zip(padded, kernel, dilation)):
    raise ShapeError(f"{op}: kernel size {tuple(kernel)} (dilation {dilation}) is larger than the padded input size "
                     f"{tuple(padded)} (input shape {input.shape})")
  if bias is not None and (bias.ndim != 1 or bias.shape[0] != cout):
    raise ShapeError(f"{op}: bias must be 1-D with {cout} elements (weight shape {weight.shape}), got shape {bias.shape}")
  n = x.shape[0]
  win = _windows(_pad_spatial(x, pads), kernel, stride, dilation)  # (N, Cin, *out, *k)
  outs = win.shape[2:2 + nd]
  panel = matmul_panel(weight.device, n * math.prod(outs), cout, cin * math.prod(kernel)) if groups == 1 else 0
  if panel:
    # as a matmul with the weight in panels (see Tensor.matmul): (N, *out, 1, *k, Cin, 1) against (Cout/p, *k, Cin, p),
    # each output pixel a row of the kernel's register tile and p output channels its vector; the result comes out
    # channels-last and is returned as a channels-first view. 3x faster on PoCL than the channels-first reduction,
    # whose vectors gather a window's pixels. Channels loop innermost: a tap's padding test is the same for all.
    win = win.permute(0, *range(2, 2 + 2 * nd), 1).reshape(n, *outs, 1, *kernel, cin, 1)
    wp = weight.reshape(cout // panel, panel, cin, *kernel).permute(0, *range(3, 3 + nd), 2, 1).contiguous()
    out = (win * wp.reshape(cout // panel, *kernel, cin, panel)).sum(tuple(range(2 + nd, 3 + 2 * nd)))
    out = out.reshape(n, *outs, cout).permute(0, 1 + nd, *range(1, 1 + nd))
  else:
    # (N, G, 1, *out, Cin/G, *k) against weight (1, G, Cout/G, *1, Cin/G, *k), reduced over (Cin/G, *k)
    win = win.reshape(n, groups, 1, cin_g, *outs, *kernel)
    win = win.permute(0, 1, 2, *range(4, 4 + nd), 3, *range(4 + nd, 4 + 2 * nd))
    w = weight.reshape(1, groups, cout // groups, *(1,) * nd, cin_g, *kernel)
    out = (win * w).sum(tuple(range(-1 - nd, 0))).reshape(n, cout, *outs)
  if bias is not None: out = out + bias.reshape(cout, *(1,) * nd)
  return out.squeeze(0) if unbatched else out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
  return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
  return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
  return _conv("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op: str, nd: int, input: Tensor, weight: Tensor, bias, stride, padding, output_padding, groups, dilation) -> Tensor:
  """A stride-1 convolution of the zero-stuffed input (stride - 1 zeros between values, a pad + reshape view) with
  the flipped, in/out-swapped weight."""
  x, unbatched, stride, dilation = _conv_input(op, nd, input, weight, "in_channels, out_channels/groups", stride,
                                               dilation, groups)
  padding, output_padding = _ntuple(padding, nd, "padding", op), _ntuple(output_padding, nd, "output_padding", op)
  if any(p < 0 for p in padding): raise RuntimeError(f"{op}: negative padding is not supported, got padding={padding}")
  if any(p < 0 or (p >= s and p >= d) for p, s, d in zip(output_padding, stride, dilation)):
    raise RuntimeError(f"{op}: output padding must be smaller than either stride or dilation, got output_padding={output_padding}, "
                       f"stride={stride}, dilation={dilation}")
  cin, cout_g, kernel = weight.shape[0], weight.shape[1], weight.shape[2:]
  if x.shape[1] != cin:
    raise ShapeError(f"{op}: input has {x.shape[1]} channels but weight expects {cin} (weight shape {weight.shape}, groups {groups})")
  if cin % groups: raise ShapeError(f"{op}: in_channels {cin} (weight shape {weight.shape}) is not divisible by groups {groups}")
  n, spatial = x.shape[0], x.shape[2:]
  outs = [(i - 1) * s - 2 * p + d * (k - 1) + op_ + 1
          for i, s, p, d, k, op_ in zip(spatial, stride, padding, dilation, kernel, output_padding)]
  if any(o <= 0 for o in outs):
    raise ShapeError(f"{op}: the output size {tuple(outs)} is too small (input shape {input.shape}, weight shape {weight.shape})")
  if any(s > 1 for s in stride):  # zero-stuff: (.., i) -> (.., i, s) padded with zeros -> (.., i*s), cut to (i-1)*s+1
    x = x.reshape(n, cin, *[v for i in spatial for v in (i, 1)])
    x = _pad_spatial(x, [p for s in stride for p in ((0, 0), (0, s - 1))])
    x = x.reshape(n, cin, *[i * s for i, s in zip(spatial, stride)])
    x = x._shrink(((0, n), (0, cin), *[(0, (i - 1) * s + 1) for i, s in zip(spatial, stride)]))
  # full padding d*(k-1) on each side, less `padding`, plus output_padding at the end; negative amounts crop
  lo = [d * (k - 1) - p for d, k, p in zip(dilation, kernel, padding)]
  hi = [l + op_ for l, op_ in zip(lo, output_padding)]
  x = x._shrink(((0, n), (0, cin), *[(max(0, -a), s - max(0, -b)) for a, b, s in zip(lo, hi, x.shape[2:])]))
  x = _pad_spatial(x, [(max(0, a), max(0, b)) for a, b in zip(lo, hi)])
  w = weight.reshape(groups, cin // groups, cout_g, *kernel).transpose(1, 2).reshape(groups * cout_g, cin // groups, *kernel)
  w = w.flip(tuple(range(2, 2 + nd)))
  out = _conv(op, nd, x, w, bias, 1, 0, dilation, groups)
  return out.squeeze(0) if unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> Tensor:
  return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> Tensor:
  return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> Tensor:
  return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups, dilation)


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
  """im2col: (N, C, H, W) -> (N, C*kh*kw, L), a view of the padded input's windows (copied only if realized)."""
  op = "unfold"
  if input.ndim not in (3, 4): raise ShapeError(f"{op}: expected a 3-D or 4-D input, got shape {input.shape}")
  unbatched = input.ndim == 3
  x = input.unsqueeze(0) if unbatched else input
  k, d = _ntuple(kernel_size, 2, "kernel_size", op), _ntuple(dilation, 2, "dilation", op)
  p, s = _ntuple(padding, 2, "padding", op), _ntuple(stride, 2, "stride", op)
  if any(v <= 0 for v in k + d + s) or any(v < 0 for v in p):
    raise RuntimeError(f"{op}: kernel_size, dilation and stride must be positive and padding non-negative, got "
                       f"kernel_size={k}, dilation={d}, padding={p}, stride={s}")
  padded = [i + 2 * pp for i, pp in zip(x.shape[2:], p)]
  if any(i < dd * (kk - 1) + 1 for i, kk, dd in zip(padded, k, d)):
    raise ShapeError(f"{op}: kernel size {k} (dilation {d}) is larger than the padded input size {tuple(padded)} "
                     f"(input shape {input.shape})")
  win = _windows(_pad_spatial(x, [(pp, pp) for pp in p]), k, s, d)  # (N, C, oh, ow, kh, kw)
  n, c, oh, ow = win.shape[:4]
  out = win.permute(0, 1, 4, 5, 2, 3).reshape(n, c * k[0] * k[1], oh * ow)
  return out.squeeze(0) if unbatched else out


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
  r = upscale_factor
  if input.ndim < 3 or input.shape[-3] % (r * r):
    raise ShapeError(f"pixel_shuffle: expected at least 3 dims with channels divisible by upscale_factor**2={r * r}, "
                     f"got shape {input.shape}")
  *lead, c, h, w = input.shape
  x = input.reshape(*lead, c // (r * r), r, r, h, w)
  L = len(lead)
  x = x.permute(*range(L), L, L + 3, L + 1, L + 4, L + 2)
  return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
  r = downscale_factor
  if input.ndim < 3 or input.shape[-1] % r or input.shape[-2] % r:
    raise ShapeError(f"pixel_unshuffle: expected at least 3 dims with height and width divisible by downscale_factor={r}, "
                     f"got shape {input.shape}")
  *lead, c, h, w = input.shape
  x = input.reshape(*lead, c, h // r, r, w // r, r)
  L = len(lead)
  x = x.permute(*range(L), L, L + 2, L + 4, L + 1, L + 3)
  return x.reshape(*lead, c * r * r, h // r, w // r)


# ---------------------------------------------------------------- pooling

def _pool_args(op: str, nd: int, input: Tensor, kernel_size, stride, padding, dilation, ceil_mode):
  _check_tensor(input, "input", op)
  if input.ndim not in (nd + 1, nd + 2) or input.numel() == 0:
    raise ShapeError(f"{op}: expected a non-empty {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, got shape {input.shape}")
  k = _ntuple(kernel_size, nd, "kernel_size", op)
  s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _ntuple(stride, nd, "stride", op)
  p, d = _ntuple(padding, nd, "padding", op), _ntuple(dilation, nd, "dilation", op)
  if any(v <= 0 for v in k): raise RuntimeError(f"{op}: kernel_size must be greater than zero, got kernel_size={k}")
  if any(v <= 0 for v in s): raise RuntimeError(f"{op}: stride must be greater than zero, got stride={s}")
  if any(v <= 0 for v in d): raise RuntimeError(f"{op}: dilation must be greater than zero, got dilation={d}")
  if any(pp < 0 or pp > (dd * (kk - 1) + 1) // 2 for pp, kk, dd in zip(p, k, d)):
    raise RuntimeError(f"{op}: pad should be at most half of effective kernel size, but got padding={p}, kernel_size={k} and dilation={d}")
  ins = input.shape[-nd:]
  outs = []
  for i, kk, ss, pp, dd in zip(ins, k, s, p, d):
    span = i + 2 * pp - dd * (kk - 1) - 1
    o = (-(-span // ss) if ceil_mode else span // ss) + 1
    if ceil_mode and (o - 1) * ss >= i + pp: o -= 1  # the last window must start inside the input or left padding
    outs.append(o)
  if any(o <= 0 for o in outs):
    raise ShapeError(f"{op}: input shape {input.shape} is too small for kernel_size={k}, stride={s}, padding={p}, "
                     f"dilation={d}: output size would be {tuple(outs)}")
  # the extra end padding ceil_mode needs so the last window fits
  extra = [max(0, (o - 1) * ss + dd * (kk - 1) + 1 - (i + 2 * pp)) for o, ss, dd, kk, i, pp in zip(outs, s, d, k, ins, p)]
  return k, s, p, d, outs, extra


def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
  k, s, p, d, outs, extra = _pool_args(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode)
  lowest = -math.inf if input.dtype.is_float else (0 if input.dtype is bool_ else -(2 ** (8 * input.dtype.itemsize - 1)))
  x = _pad_spatial(input, [(pp, pp + e) for pp, e in zip(p, extra)], lowest)
  win = _windows(x, k, s, d)
  red = tuple(range(-nd, 0))
  out = win.amax(red)
  if not return_indices: return out
  # the flat input index of each window's first maximum: positions count up in window scan order, so the smallest
  # index among the maxima is the first one (torch's choice)
  ins = input.shape[-nd:]
  pos = Tensor.arange(math.prod(ins), device=input.device).reshape(ins)
  pos_win = _windows(_pad_spatial(pos, [(pp, pp + e) for pp, e in zip(p, extra)], -1), k, s, d)
  is_max = (win == out.reshape(*out.shape, *(1,) * nd)) | (win != win)
  big = math.prod(ins)
  idx = is_max.where(pos_win, big).amin(red)
  return out, idx


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
  return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
  return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
  return _max_pool("max_pool3d", 3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
  if not input.dtype.is_float: raise RuntimeError(f"{op}: not implemented for dtype {input.dtype.name}; use a float tensor")
  k, s, p, d, outs, extra = _pool_args(op, nd, input, kernel_size, stride, padding, 1, ceil_mode)
  x = _pad_spatial(input, [(pp, pp + e) for pp, e in zip(p, extra)])
  total = _windows(x, k, s, d).sum(tuple(range(-nd, 0)))
  if divisor_override is not None:
    if divisor_override == 0: raise RuntimeError(f"{op}: divisor_override must not be zero")
    return total / divisor_override
  # the divisor is separable: per dim, the window's length inside [-pad, in + pad) (count_include_pad) or [0, in)
  divisor = None
  for j, (o, kk, ss, pp, i) in enumerate(zip(outs, k, s, p, input.shape[-nd:])):
    start = Tensor.arange(o, device=input.device) * ss - pp
    end = (start + kk).minimum(i + pp)
    cnt = (end - start) if count_include_pad else (end.minimum(i) - start.maximum(0))
    cnt = cnt.reshape(o, *(1,) * (nd - 1 - j))
    divisor = cnt if divisor is None else divisor * cnt
  return total / divisor.cast(total.dtype)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
  return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
  return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
  return _avg_pool("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


def lp_pool2d(input: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
  k = _ntuple(kernel_size, 2, "kernel_size", "lp_pool2d")
  out = avg_pool2d(input.pow(norm_type), k, stride, 0, ceil_mode)
  return (out.sign() * out.abs().relu()).mul(k[0] * k[1]).pow(1.0 / norm_type)


def _adaptive_sizes(op: str, nd: int, input: Tensor, output_size) -> list[int]:
  if input.ndim not in (nd + 1, nd + 2):
    raise ShapeError(f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, got shape {input.shape}")
  sizes = _ntuple(output_size, nd, "output_size", op) if output_size is not None else (None,) * nd
  sizes = [i if o is None else o for o, i in zip(sizes, input.shape[-nd:])]
  if any(o < 0 for o in sizes): raise ValueError(f"{op}: output_size must be non-negative, got {tuple(sizes)}")
  return sizes


def _adaptive_bounds(i: int, o: int):
  """torch's adaptive windows along one dim: [floor(j*i/o), ceil((j+1)*i/o)) for j < o."""
  return [(j * i) // o for j in range(o)], [-(-((j + 1) * i) // o) for j in range(o)]


def _adaptive(x: Tensor, sizes, reduce: str) -> Tensor:
  nd = len(sizes)
  for j, o in enumerate(sizes):
    axis = x.ndim - nd + j
    i = x.shape[axis]
    if o == i: continue
    if o == 0:
      x = x._shrink(tuple((0, 0) if d == axis else (0, s) for d, s in enumerate(x.shape)))
      continue
    if i % o == 0:  # equal windows: a reshape
      y = x.reshape(*x.shape[:axis], o, i // o, *x.shape[axis + 1:])
      x = y.mean(axis + 1) if reduce == "mean" else y.amax(axis + 1)
      continue
    # uneven windows: a (o, i) membership mask against the dim moved last
    lo, hi = _adaptive_bounds(i, o)
    pos = Tensor.arange(i, device=x.device)
    inside = (pos >= Tensor(lo, device=x.device).reshape(o, 1)) & (pos < Tensor(hi, device=x.device).reshape(o, 1))
    xt = x.transpose(axis, -1).unsqueeze(-2)  # (..., 1, i)
    if reduce == "mean":
      y = (inside.where(xt, 0.0)).sum(-1) / Tensor([b - a for a, b in zip(lo, hi)], dtype=x.dtype, device=x.device)
    else: y = inside.where(xt, -math.inf).amax(-1)
    x = y.transpose(axis, -1)
  return x


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
  return _adaptive(input, _adaptive_sizes("adaptive_avg_pool1d", 1, input, output_size), "mean")


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
  return _adaptive(input, _adaptive_sizes("adaptive_avg_pool2d", 2, input, output_size), "mean")


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
  return _adaptive(input, _adaptive_sizes("adaptive_avg_pool3d", 3, input, output_size), "mean")


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
  if return_indices: return _adaptive_max_indices("adaptive_max_pool2d", 2, input, output_size)
  return _adaptive(input, _adaptive_sizes("adaptive_max_pool2d", 2, input, output_size), "max")


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
  if return_indices: return _adaptive_max_indices("adaptive_max_pool1d", 1, input, output_size)
  return _adaptive(input, _adaptive_sizes("adaptive_max_pool1d", 1, input, output_size), "max")


# ---------------------------------------------------------------- interpolation

_INTERP_MODES = {"nearest": None, "nearest-exact": None, "area": None, "linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}


def _source_scale(i: int, o: int, scale, align_corners: bool) -> np.float32:
  """torch's area_pixel_compute_scale, in float32 as its CPU kernels compute it."""
  if align_corners: return np.float32(i - 1) / np.float32(o - 1) if o > 1 else np.float32(0)
  return np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(i) / np.float32(o)


def _interp_matrix(mode: str, i: int, o: int, scale, align_corners: bool) -> np.ndarray | None:
  """The (o, i) matrix that resamples one dim, or None where the output is the input."""
  dst = np.arange(o, dtype=np.float32)
  m = np.zeros((o, i), dtype=np.float32)
  rows = np.arange(o)
  if mode in ("nearest", "nearest-exact"):
    if o == i and mode == "nearest": return None
    r = _source_scale(i, o, scale, False)
    if mode == "nearest": src = rows // 2 if o == 2 * i else np.floor(dst * r)
    else: src = np.floor(np.float32(r) * (rows + 0.5))  # (dst + 0.5) is a double in torch
    m[rows, np.minimum(src.astype(np.int64), i - 1)] = 1
    return m
  r = _source_scale(i, o, scale, align_corners)
  if mode == "bicubic":
    real = r * dst if align_corners else r * (dst + np.float32(0.5)) - np.float32(0.5)
    i0 = np.minimum(np.floor(real).astype(np.int64), i - 1)
    t = np.clip(real - i0.astype(np.float32), 0, 1).astype(np.float32)
    a = np.float32(-0.75)
    def c1(x): return ((a + 2) * x - (a + 3)) * x * x + 1
    def c2(x): return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    coeffs = [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]
    for j, c in enumerate(coeffs): np.add.at(m, (rows, np.clip(i0 - 1 + j, 0, i - 1)), c.astype(np.float32))
    return m
  if o == i: return None  # linear modes copy when the size is unchanged
  real = r * dst if align_corners else np.maximum(r * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
  i0 = np.minimum(np.floor(real).astype(np.int64), i - 1)
  lam1 = np.clip(real - i0.astype(np.float32), 0, 1).astype(np.float32)
  i1 = i0 + (i0 < i - 1)
  np.add.at(m, (rows, i0), np.float32(1) - lam1)
  np.add.at(m, (rows, i1), lam1)
  return m


def _resample(x: Tensor, axis: int, m: np.ndarray) -> Tensor:
  """Apply an (o, i) matrix along `axis`: integer nearest upsampling stays a view; the rest is a small matmul."""
  o, i = m.shape
  src, one_hot = m.argmax(1), bool(((m == 0) | (m == 1)).all() and (m.sum(1) == 1).all())
  if one_hot and o % i == 0 and np.array_equal(src, np.arange(o) // (o // i)):
    r = o // i
    y = x.unsqueeze(axis + 1)
    return y.expand(*y.shape[:axis + 1], r, *y.shape[axis + 2:]).reshape(*x.shape[:axis], o, *x.shape[axis + 1:])
  if one_hot and i % o == 0 and np.array_equal(src, np.arange(o) * (i // o)):  # every r-th: a view
    y = x.reshape(*x.shape[:axis], o, i // o, *x.shape[axis + 1:])
    return y._shrink(tuple((0, 1) if d == axis + 1 else (0, s) for d, s in enumerate(y.shape))).squeeze(axis + 1)
  mt = Tensor(m.T.copy(), dtype=x.dtype, device=x.device)  # (i, o)
  return (x.transpose(axis, -1) @ mt).transpose(axis, -1)


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
  op = "interpolate"
  if mode in ("nearest", "area", "nearest-exact"):
    if align_corners is not None:
      raise ValueError(f"{op}: align_corners can only be set with the interpolating modes linear, bilinear, bicubic "
                       f"and trilinear, not mode={mode!r}")
  elif align_corners is None: align_corners = False
  if mode == "lanczos": raise NotImplementedError(f"{op}: mode 'lanczos' is not supported")
  if mode not in _INTERP_MODES:
    raise NotImplementedError(f"{op}: mode {mode!r} is not supported; use one of {', '.join(_INTERP_MODES)}")
  if input.ndim not in (3, 4, 5):
    raise NotImplementedError(f"{op}: only 3-D, 4-D and 5-D inputs are supported, got shape {input.shape} for mode {mode!r}")
  nd = input.ndim - 2
  if _INTERP_MODES[mode] is not None and _INTERP_MODES[mode] != nd:
    raise NotImplementedError(f"{op}: mode {mode!r} needs a {_INTERP_MODES[mode] + 2}-D input, got shape {input.shape}")
  if antialias: raise NotImplementedError(f"{op}: antialias=True is not supported (mode {mode!r})")
  ins = input.shape[2:]
  if size is not None and scale_factor is not None: raise ValueError(f"{op}: only one of size or scale_factor should be defined")
  if size is not None:
    if recompute_scale_factor: raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size")
    outs = list(size) if isinstance(size, (tuple, list)) else [size] * nd
    if len(outs) != nd:
      raise ValueError(f"{op}: input with spatial dims {tuple(ins)} (shape {input.shape}) needs {nd} output sizes, got size={size}")
    scales = [None] * nd
  elif scale_factor is not None:
    scales = list(scale_factor) if isinstance(scale_factor, (tuple, list)) else [scale_factor] * nd
    if len(scales) != nd:
      raise ValueError(f"{op}: input with spatial dims {tuple(ins)} (shape {input.shape}) needs {nd} scale factors, "
                       f"got scale_factor={scale_factor}")
    outs = [int(math.floor(i * s)) for i, s in zip(ins, scales)]
    if recompute_scale_factor or mode == "area": scales = [None] * nd
  else: raise ValueError(f"{op}: either size or scale_factor should be defined")
  if any(o <= 0 for o in outs): raise RuntimeError(f"{op}: output size {tuple(outs)} must be positive (input shape {input.shape})")
  if mode == "area": return _adaptive(input, outs, "mean")
  x = input if input.dtype.is_float else input.float() if mode not in ("nearest", "nearest-exact") else input
  for j in reversed(range(nd)):  # the last dim first, as torch's kernels nest them
    m = _interp_matrix(mode, ins[j], outs[j], scales[j], bool(align_corners))
    if m is None: continue
    if not x.dtype.is_float:  # nearest on integers: a one-hot matmul in float would round; select with a mask instead
      src = Tensor(m.argmax(1), device=x.device)
      pick = src.reshape(-1, 1) == Tensor.arange(ins[j], device=x.device)
      xt = x.transpose(2 + j, -1).unsqueeze(-2)
      x = pick.where(xt, 0).sum(-1).cast(input.dtype).transpose(2 + j, -1)
      continue
    x = _resample(x, 2 + j, m)
  return x


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
  return interpolate(input, size, scale_factor, mode, align_corners)


# ---------------------------------------------------------------- padding

def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
  """torch.nn.functional.pad: pairs (before, after) from the last dim backwards. reflect, replicate and circular
  are concatenations of flipped, expanded or shifted views."""
  if len(pad) % 2: raise ShapeError(f"pad: padding length must be divisible by 2, got {len(pad)} ({tuple(pad)})")
  if len(pad) // 2 > input.ndim:
    raise ShapeError(f"pad: padding length {len(pad)} is too large for an input of {input.ndim} dims (shape {input.shape})")
  if mode == "constant": return input.pad(pad, 0.0 if value is None else value)
  if mode not in ("reflect", "replicate", "circular"):
    raise NotImplementedError(f"pad: mode {mode!r} is not supported; use 'constant', 'reflect', 'replicate' or 'circular'")
  if value is not None and value != 0: raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
  x = input
  for j in range(len(pad) // 2):
    axis = input.ndim - 1 - j
    lo, hi = pad[2 * j], pad[2 * j + 1]
    n = x.shape[axis]
    if mode == "replicate":  # out[j] = in[clamp(j - lo, 0, n - 1)], which also says what negative amounts keep
      total = n + lo + hi
      if n == 0 or total <= 0:
        raise ShapeError(f"pad: cannot replicate-pad dim {axis} of size {n} by ({lo}, {hi}) (input shape {input.shape})")
      left, start = min(max(lo, 0), total), max(0, -lo)
      mid = max(0, min(n, total - lo) - start)
      def edge(a, count):
        e = x._shrink(tuple((a, a + 1) if d == axis else (0, s) for d, s in enumerate(x.shape)))
        return e.expand(*[count if d == axis else s for d, s in enumerate(e.shape)])
      middle = x._shrink(tuple((start, start + mid) if d == axis else (0, s) for d, s in enumerate(x.shape)))
      x = cat([p for p in (edge(0, left), middle, edge(n - 1, total - left - mid)) if p.shape[axis]], axis)
      continue
    # negative amounts crop first
    x = x._shrink(tuple((max(0, -lo), s - max(0, -hi)) if a == axis else (0, s) for a, s in enumerate(x.shape)))
    lo, hi, n = max(0, lo), max(0, hi), x.shape[axis]
    if lo == hi == 0: continue

    def part(a, b):
      return x._shrink(tuple((a, b) if d == axis else (0, s) for d, s in enumerate(x.shape)))

    if mode == "reflect":
      if lo >= n or hi >= n:
        raise ShapeError(f"pad: reflect padding ({pad[2 * j]}, {pad[2 * j + 1]}) must be less than the size {n} of dim {axis} "
                         f"(input shape {input.shape})")
      pieces = [part(1, lo + 1).flip(axis), x, part(n - 1 - hi, n - 1).flip(axis)]
    else:
      if lo > n or hi > n:
        raise ShapeError(f"pad: circular padding ({pad[2 * j]}, {pad[2 * j + 1]}) must be at most the size {n} of dim {axis} "
                         f"(input shape {input.shape})")
      pieces = [part(n - lo, n), x, part(0, hi)]
    x = cat([p for p in pieces if p.shape[axis]], axis)
  return x


# ---------------------------------------------------------------- normalization

def _affine(x: Tensor, weight, bias, shape) -> Tensor:
  if weight is not None: x = x * weight.reshape(shape)
  if bias is not None: x = x + bias.reshape(shape)
  return x


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
  ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
  if len(ns) == 0 or input.shape[input.ndim - len(ns):] != ns or len(ns) > input.ndim:
    raise ShapeError(f"layer_norm: normalized_shape={ns} does not match the last dims of the input shape {input.shape}")
  for name, t in (("weight", weight), ("bias", bias)):
    if t is not None and t.shape != ns: raise ShapeError(f"layer_norm: {name} shape {t.shape} does not match normalized_shape={ns}")
  axes = tuple(range(-len(ns), 0))
  x = input._float()
  mean = x.mean(axes, keepdim=True)
  var = x.var(axes, keepdim=True, correction=0)
  return _affine((x - mean) * (var + eps).rsqrt(), weight, bias, ns)


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
  ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
  if len(ns) == 0 or input.shape[input.ndim - len(ns):] != ns:
    raise ShapeError(f"rms_norm: normalized_shape={ns} does not match the last dims of the input shape {input.shape}")
  x = input._float()
  eps = float(np.finfo(x.dtype.np).eps) if eps is None else eps
  out = x * ((x * x).mean(tuple(range(-len(ns), 0)), keepdim=True) + eps).rsqrt()
  return out * weight if weight is not None else out


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
  if input.ndim < 2: raise ShapeError(f"group_norm: expected at least 2 dims (N, C, *), got shape {input.shape}")
  n, c = input.shape[:2]
  if num_groups <= 0 or c % num_groups:
    raise ShapeError(f"group_norm: the {c} channels of input shape {input.shape} are not divisible by num_groups={num_groups}")
  for name, t in (("weight", weight), ("bias", bias)):
    if t is not None and t.shape != (c,): raise ShapeError(f"group_norm: {name} shape {t.shape} does not match the {c} channels")
  x = input._float().reshape(n, num_groups, -1)
  mean = x.mean(-1, keepdim=True)
  var = x.var(-1, keepdim=True, correction=0)
  out = ((x - mean) * (var + eps).rsqrt()).reshape(input.shape)
  return _affine(out, weight, bias, (c,) + (1,) * (input.ndim - 2))


def _update_running(running: Tensor | None, batch_value: Tensor, momentum: float):
  if running is not None:
    running.assign(running * (1 - momentum) + batch_value.detach().cast(running.dtype) * momentum)


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
  if input.ndim < 2: raise ShapeError(f"batch_norm: expected at least 2 dims (N, C, *), got shape {input.shape}")
  c = input.shape[1]
  for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
    if t is not None and t.numel() != c:
      raise ShapeError(f"batch_norm: {name} should contain {c} elements (the channels of input shape {input.shape}), not {t.numel()}")
  shape = (c,) + (1,) * (input.ndim - 2)
  axes = (0,) + tuple(range(2, input.ndim))
  x = input._float()
  if training:
    count = input.numel() // c if c else 0
    if count <= 1: raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input shape {input.shape}")
    mean = x.mean(axes, keepdim=True)
    var = x.var(axes, keepdim=True, correction=0)
    if momentum is None: raise NotImplementedError("batch_norm: momentum=None (a cumulative average) needs the batch count; pass a float")
    _update_running(running_mean, mean.reshape(c), momentum)
    _update_running(running_var, var.reshape(c) * (count / (count - 1)), momentum)  # the running estimate is unbiased
  else:
    if running_mean is None or running_var is None:
      raise RuntimeError("batch_norm: running_mean and running_var must be defined in evaluation mode (training=False)")
    mean, var = running_mean.reshape(shape), running_var.reshape(shape)
  return _affine((x - mean) * (var + eps).rsqrt(), weight, bias, shape)


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
  if input.ndim < 3: raise ShapeError(f"instance_norm: expected at least 3 dims (N, C, *), got shape {input.shape}")
  c = input.shape[1]
  shape = (c,) + (1,) * (input.ndim - 2)
  if not use_input_stats:
    return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
  axes = tuple(range(2, input.ndim))
  count = math.prod(input.shape[2:])
  if count <= 1: raise ValueError(f"instance_norm: expected more than 1 spatial element when training, got input shape {input.shape}")
  x = input._float()
  mean = x.mean(axes, keepdim=True)
  var = x.var(axes, keepdim=True, correction=0)
  _update_running(running_mean, mean.reshape(input.shape[:2]).mean(0), momentum)
  _update_running(running_var, (var.reshape(input.shape[:2]) * (count / (count - 1))).mean(0), momentum)
  return _affine((x - mean) * (var + eps).rsqrt(), weight, bias, shape)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
  """x / (k + alpha/size * sum of x^2 over `size` neighbouring channels)^beta, the sum a window over channels."""
  if input.ndim < 3: raise ShapeError(f"local_response_norm: expected at least 3 dims (N, C, *), got shape {input.shape}")
  sq = (input * input).unsqueeze(1)  # (N, 1, C, *)
  rest = input.shape[2:]
  sq = sq.reshape(input.shape[0], 1, input.shape[1], -1).transpose(2, 3)  # (N, 1, S, C)
  sq = _pad_spatial(sq, [(size // 2, (size - 1) // 2)])
  div = _windows(sq, (size,), (1,), (1,)).mean(-1)  # (N, 1, S, C)
  div = div.transpose(2, 3).reshape(input.shape[0], input.shape[1], *rest)
  return input / (div * alpha + k).pow(beta)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out=None) -> Tensor:
  if out is not None: raise NotImplementedError("normalize: out= is not supported; use the returned tensor")
  norm = _norm2(input, dim) if p == 2 else input.norm(p, dim, keepdim=True)
  return input / norm.maximum(eps)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
  # torch normalizes each input by its norm (clamped at eps) first, then takes the dot product
  n1, n2 = _clamp_min_no_grad(_norm2(x1, dim), eps), _clamp_min_no_grad(_norm2(x2, dim), eps)
  return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
  return (x1 - x2 + eps).norm(p, -1, keepdim=keepdim)


# ---------------------------------------------------------------- dropout, embedding, one_hot

def _check_p(p: float, op: str):
  if not 0 <= p <= 1: raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
  _check_p(p, "dropout")
  if not training or p == 0: return input
  if p == 1: return _inplace(input, input * 0, inplace)
  keep = Tensor.rand(*input.shape, device=input.device) >= p
  return _inplace(input, keep.where(input * (1 / (1 - p)), 0), inplace)


def _feature_dropout(op: str, nd: int, input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
  _check_p(p, op)
  if input.ndim not in (nd + 1, nd + 2):
    if nd == 1 or input.ndim < 2:
      raise ShapeError(f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, got shape {input.shape}")
    warnings.warn(f"{op}: received a {input.ndim}-D input (shape {input.shape}); like torch, whole entries of the first "
                  f"two dims are dropped, which is deprecated: use dropout{'' if input.ndim == 2 else f'{input.ndim - 2}d'}",
                  stacklevel=3)
  if not training or p == 0: return input
  if p == 1: return _inplace(input, input * 0, inplace)
  lead = input.shape[:input.ndim - nd] if input.ndim in (nd + 1, nd + 2) else input.shape[:2]  # whole channels drop
  keep = Tensor.rand(*lead, device=input.device).reshape(*lead, *(1,) * (input.ndim - len(lead))) >= p
  return _inplace(input, keep.where(input * (1 / (1 - p)), 0), inplace)


def dropout1d(input, p=0.5, training=True, inplace=False): return _feature_dropout("dropout1d", 1, input, p, training, inplace)
def dropout2d(input, p=0.5, training=True, inplace=False): return _feature_dropout("dropout2d", 2, input, p, training, inplace)
def dropout3d(input, p=0.5, training=True, inplace=False): return _feature_dropout("dropout3d", 3, input, p, training, inplace)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
  _check_p(p, "alpha_dropout")
  if not training or p == 0: return input
  if p == 1: return input * 0
  alpha = -_SELU_ALPHA * _SELU_SCALE
  a = ((1 - p) * (1 + p * alpha * alpha)) ** -0.5
  b = -a * alpha * p
  keep = Tensor.rand(*input.shape, device=input.device) >= p
  return keep.where(input, alpha) * a + b


ONE_HOT_ELEMENTS = 1 << 22  # an embedding's gradient goes through a one-hot matrix of up to this many elements


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
  if input.dtype.is_float or input.dtype is bool_:
    raise RuntimeError(f"embedding: indices must be an integer tensor, got dtype {input.dtype.name}")
  if weight.ndim != 2: raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
  if max_norm is not None: raise NotImplementedError("embedding: max_norm (renormalizing rows in place) is not supported")
  if scale_grad_by_freq: raise NotImplementedError("embedding: scale_grad_by_freq=True is not supported")
  if padding_idx is not None:
    n = weight.shape[0]
    if not -n <= padding_idx < n: raise AssertionError(f"embedding: padding_idx {padding_idx} must be within num_embeddings {n}")
    padding_idx %= n
  num, dim = weight.shape
  if input.numel() * num <= ONE_HOT_ELEMENTS:
    def grad(w, g):
      # the weight's gradient as one matmul, one_hot(input)^T @ grad, rather than the dense scatter a gather's gradient
      # is (a compare, a select and an add per index, row and column): 5x faster for a GPT's tokens
      rows = input.reshape(-1)
      rows = (rows < 0).where(rows + num, rows)  # negative indices count from the end, as in weight[input]
      return _index_matches(num, 1, rows, w.device).cast(g.dtype).T @ g.reshape(-1, dim)
    out = CustomGrad.apply(weight, value=lambda w: w[input], grad=grad)
  else: out = weight[input]
  if padding_idx is not None:  # the padding row gets no gradient
    out = (input == padding_idx).unsqueeze(-1).where(out.detach(), out)
  return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
  if tensor.dtype is not int64:
    raise RuntimeError(f"one_hot: only applicable to index tensors of dtype int64, got {tensor.dtype.name}")
  if num_classes != -1 and num_classes < 0: raise RuntimeError(f"one_hot: num_classes must be -1 or non-negative, got {num_classes}")
  if tensor.numel():  # checked on the host, as torch does
    values = tensor.numpy()
    lo, hi = int(values.min()), int(values.max())
    if lo < 0: raise RuntimeError(f"one_hot: class values must be non-negative, got {lo}")
    if num_classes != -1 and hi >= num_classes:
      raise RuntimeError(f"one_hot: class values must be smaller than num_classes={num_classes}, got {hi}")
    if num_classes == -1: num_classes = hi + 1
  elif num_classes == -1: raise RuntimeError("one_hot: cannot infer num_classes of an empty tensor; pass num_classes")
  return _index_matches(num_classes, tensor.ndim, tensor, tensor.device).long()


# ---------------------------------------------------------------- attention

def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
  op = "scaled_dot_product_attention"
  if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
    raise ShapeError(f"{op}: query, key and value need at least 2 dims, got shapes {query.shape}, {key.shape}, {value.shape}")
  if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
    raise ShapeError(f"{op}: query {query.shape}, key {key.shape} and value {value.shape} do not fit "
                     "(query and key need the same last dim, key and value the same sequence length)")
  if attn_mask is not None and is_causal: raise RuntimeError(f"{op}: explicit attn_mask should not be set when is_causal=True")
  if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
    hq, hk = query.shape[-3], key.shape[-3]
    if hq % hk or value.shape[-3] != hk:
      raise ShapeError(f"{op}: with enable_gqa the query heads ({hq}) must be a multiple of the key/value heads ({hk}, {value.shape[-3]})")
    def repeat(t):  # repeat_interleave of the heads, as a view
      u = t.unsqueeze(-3)
      return u.expand(*u.shape[:-3], hq // hk, *u.shape[-2:]).reshape(*t.shape[:-3], hq, *t.shape[-2:])
    key, value = repeat(key), repeat(value)
  L, S = query.shape[-2], key.shape[-2]
  scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
  scores = (query @ key.transpose(-2, -1)) * scale
  if is_causal: scores = Tensor.ones(L, S, dtype=bool_, device=query.device).tril().where(scores, -math.inf)
  dead = None
  if attn_mask is not None:
    scores = attn_mask.where(scores, -math.inf) if attn_mask.dtype is bool_ else scores + attn_mask
    # rows with every key masked give zeros (as torch does), not the NaN of a softmax over -inf; scores are replaced
    # before the softmax so no NaN reaches the gradient either
    dead = scores.detach().amax(-1, keepdim=True) == -math.inf
    scores = dead.where(0.0, scores)
  attn = scores.softmax(-1)
  if dead is not None: attn = dead.where(0.0, attn)
  if dropout_p > 0: attn = dropout(attn, dropout_p, True)
  return attn @ value


# ---------------------------------------------------------------- losses

def _reduction(size_average, reduce, reduction: str) -> str:
  """The legacy size_average/reduce arguments, translated as torch does."""
  if size_average is None and reduce is None: return reduction
  size_average = True if size_average is None else size_average
  reduce = True if reduce is None else reduce
  return "none" if not reduce else "mean" if size_average else "sum"


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
  if reduction == "none": return loss
  if reduction == "mean": return loss.mean()
  if reduction == "sum": return loss.sum()
  raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; use 'none', 'mean' or 'sum'")


def _check_reduction(reduction: str, op: str, extra=()):
  if reduction not in ("none", "mean", "sum") + tuple(extra):
    valid = ", ".join(repr(r) for r in ("none", "mean", "sum") + tuple(extra))
    raise ValueError(f"{op}: {reduction!r} is not a valid value for reduction; use {valid}")


def _class_targets(op: str, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int):
  """Checks for class-index targets (their values on the host, as torch does); returns input and target with a batch dim."""
  if input.ndim == 0: raise ShapeError(f"{op}: input must have at least 1 dim (classes), got a 0-d tensor")
  if target.dtype.is_float or target.dtype is bool_:
    raise RuntimeError(f"{op}: class-index targets must be integers, got dtype {target.dtype.name} (shape {target.shape}); "
                    "probability targets must have the input's shape")
  unbatched = input.ndim == 1
  if unbatched:
    if target.ndim != 0: raise ShapeError(f"{op}: a 1-D input (shape {input.shape}) needs a 0-d target, got shape {target.shape}")
    input, target = input.unsqueeze(0), target.unsqueeze(0)
  expected = input.shape[:1] + input.shape[2:]
  if target.shape != expected:
    if target.ndim >= 1 and target.shape[0] != input.shape[0] and input.ndim == 2:
      raise ShapeError(f"{op}: expected input batch_size ({input.shape[0]}) to match target batch_size ({target.shape[0]}) "
                       f"(input shape {input.shape}, target shape {target.shape})")
    raise ShapeError(f"{op}: expected target shape {expected} for input shape {input.shape}, got {target.shape}")
  c = input.shape[1]
  if weight is not None and weight.shape != (c,):
    raise ShapeError(f"{op}: weight should be defined for all {c} classes or none, got weight of shape {weight.shape}")
  if target.numel():
    values = target.numpy()
    bad = values[((values < 0) | (values >= c)) & (values != ignore_index)]
    if bad.size: raise IndexError(f"{op}: target {int(bad[0])} is out of bounds for {c} classes (input shape {input.shape})")
  return input, target


def _pick_class(logp: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int):
  """The weighted negative log-likelihood of each target class, and the per-element weights (0 where ignored)."""
  c = logp.shape[1]
  classes = Tensor.arange(c, device=logp.device).reshape(c, *(1,) * (logp.ndim - 2))
  hit = target.unsqueeze(1) == classes  # (N, C, *): a one-hot mask (where(), not a product: -inf * 0 is nan)
  picked = hit.where(logp, 0.0).sum(1)
  valid = target != ignore_index
  w = hit.where(weight.reshape(c, *(1,) * (logp.ndim - 2)), 0.0).sum(1) if weight is not None else None
  w = valid.where(w, 0.0) if w is not None else valid.cast(logp.dtype)
  return -picked * w, w, valid


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean") -> Tensor:
  op = "nll_loss"
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, op)
  unbatched = input.ndim == 1
  input, target = _class_targets(op, input, target, weight, ignore_index)
  loss, w, _ = _pick_class(input, target, weight, ignore_index)
  if reduction == "none": return loss.squeeze(0) if unbatched else loss
  if reduction == "sum": return loss.sum()
  return loss.sum() / w.sum()  # torch's weighted mean: divided by the weights of the counted targets


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
  op = "cross_entropy"
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, op)
  if not 0.0 <= label_smoothing <= 1.0: raise RuntimeError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
  if input.ndim == 0: raise ShapeError(f"{op}: input must have at least 1 dim (classes), got a 0-d tensor")
  class_dim = 0 if input.ndim == 1 else 1
  c = input.shape[class_dim]
  if target.dtype.is_float:  # class probabilities
    if target.shape != input.shape:
      raise ShapeError(f"{op}: probability targets must have the input's shape {input.shape}, got {target.shape}")
    if ignore_index != -100: raise RuntimeError(f"{op}: ignore_index is not supported for probability (floating point) targets")
    if weight is not None and weight.shape != (c,):
      raise ShapeError(f"{op}: weight should be defined for all {c} classes or none, got weight of shape {weight.shape}")
    logp = input.log_softmax(class_dim)
    if label_smoothing > 0: target = target * (1 - label_smoothing) + label_smoothing / c
    prod = logp * target
    if weight is not None: prod = prod * weight.reshape(c, *(1,) * (input.ndim - class_dim - 1))
    if reduction == "none": return -prod.sum(class_dim)
    if reduction == "sum": return -prod.sum()
    return -prod.sum() / (input.numel() // c if c else 0)
  unbatched = input.ndim == 1
  x, t = _class_targets(op, input, target, weight, ignore_index)
  logp = x.log_softmax(1)
  nll, w, valid = _pick_class(logp, t, weight, ignore_index)
  if reduction == "none": out = nll
  elif reduction == "sum": out = nll.sum()
  else: out = nll.sum() / w.sum()
  if label_smoothing > 0:
    # torch: (1 - eps) * nll + eps / C * (-sum over classes of w_c * logp_c), with the same weighted mean
    wl = logp * weight.reshape(c, *(1,) * (logp.ndim - 2)) if weight is not None else logp
    smooth = valid.where(-wl.sum(1), 0.0)
    if reduction == "none": s = smooth
    elif reduction == "sum": s = smooth.sum()
    else: s = smooth.sum() / w.sum()
    out = out * (1 - label_smoothing) + s * (label_smoothing / c)
  return out.squeeze(0) if unbatched and reduction == "none" else out


def _check_same_shape(op: str, input: Tensor, target: Tensor):
  if input.shape != target.shape:
    raise ShapeError(f"{op}: target shape {target.shape} must be the same as input shape {input.shape}")


def _weighted(op, loss: Tensor, input: Tensor, weight, reduction: str, mean_by_weight: bool) -> Tensor:
  _check_reduction(reduction, op)
  if weight is None: return _reduce(loss, reduction, op)
  if weight.shape != input.shape: raise ShapeError(f"{op}: weight shape {weight.shape} must be the same as input shape {input.shape}")
  loss = loss * weight
  if reduction == "mean" and mean_by_weight: return loss.sum() / weight.sum()
  return _reduce(loss, reduction, op)


def mse_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean", weight=None) -> Tensor:
  d = input - target
  return _weighted("mse_loss", d * d, input, weight, _reduction(size_average, reduce, reduction), True)


def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean", weight=None) -> Tensor:
  return _weighted("l1_loss", (input - target).abs(), input, weight, _reduction(size_average, reduce, reduction), True)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0) -> Tensor:
  if beta < 0: raise RuntimeError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
  reduction = _reduction(size_average, reduce, reduction)
  d = (input - target).abs()
  loss = d if beta == 0 else (d < beta).where(0.5 * d * d / beta, d - 0.5 * beta)
  _check_reduction(reduction, "smooth_l1_loss")
  return _reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0, weight=None) -> Tensor:
  if delta <= 0: raise RuntimeError(f"huber_loss: delta must be positive, got {delta}")
  d = (input - target).abs()
  loss = (d < delta).where(0.5 * d * d, delta * (d - 0.5 * delta))
  return _weighted("huber_loss", loss, input, weight, reduction, False)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
  op = "binary_cross_entropy"
  reduction = _reduction(size_average, reduce, reduction)
  _check_same_shape(op, input, target)
  # torch clamps each log at -100, so a probability of exactly 0 or 1 gives a finite loss
  log_p = (input > 0).where(_log_safe(input), -100.0).maximum(-100)
  log_q = (input < 1).where(_log_safe(1 - input), -100.0).maximum(-100)
  loss = -(target * log_p + (1 - target) * log_q)
  if weight is not None: loss = loss * weight
  _check_reduction(reduction, op)
  return _reduce(loss, reduction, op)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                                     reduce=None, reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
  op = "binary_cross_entropy_with_logits"
  reduction = _reduction(size_average, reduce, reduction)
  _check_same_shape(op, input, target)
  sp = _softplus(-input)  # -log(sigmoid(x))
  if pos_weight is not None: loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * sp
  else: loss = (1 - target) * input + sp
  if weight is not None: loss = loss * weight
  _check_reduction(reduction, op)
  return _reduce(loss, reduction, op)


def _lengths(values, n: int, what: str) -> list[int]:
  """ctc_loss's lengths as host ints (a tuple, list or tensor of n of them): they decide the loop, as in torch."""
  out = [int(v) for v in (values.numpy().reshape(-1).tolist() if isinstance(values, Tensor) else np.asarray(values).reshape(-1).tolist())]
  if len(out) != n: raise ShapeError(f"ctc_loss: {what} has {len(out)} entries for a batch of {n}")
  return out


def _log_add(*terms: Tensor) -> Tensor:
  """log(sum(exp(terms))) of log-probabilities that may be -inf: finite, and with finite gradients, when all are."""
  m = terms[0]
  for t in terms[1:]: m = m.maximum(t)
  dead = m == -math.inf
  m = dead.where(0.0, m)
  total = sum(((t - m).exp() for t in terms[1:]), (terms[0] - m).exp())
  alive = total > 0
  return alive.where(alive.where(total, 1.0).log() + m, -math.inf)  # log(1): no 0/0 in the gradient of a dead state


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
  """torch's connectionist temporal classification loss: -log p(target | input) summed over every alignment, by the
  forward (alpha) recursion over time in log space. log_probs (T, N, C) (or (T, C)) are log-softmax outputs; targets
  (N, S) padded, or 1-D with the targets one after another. Its gradient with respect to log_probs is torch's: the
  exact one plus exp(log_probs) at each sample's time steps, which log_softmax's own backward cancels."""
  op = "ctc_loss"
  _check_reduction(reduction, op)
  unbatched = log_probs.ndim == 2
  if unbatched: log_probs, targets = log_probs.unsqueeze(1), targets.unsqueeze(0) if targets.ndim == 1 else targets
  if log_probs.ndim != 3:
    raise ShapeError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got shape {log_probs.shape}")
  T, N, C = log_probs.shape
  if not 0 <= blank < C: raise ValueError(f"ctc_loss: blank {blank} is not a class of {C}")
  in_lens, tgt_lens = _lengths(input_lengths, N, "input_lengths"), _lengths(target_lengths, N, "target_lengths")
  if any(not 0 <= t <= T for t in in_lens): raise ValueError(f"ctc_loss: input_lengths {in_lens} must lie in [0, {T}]")
  if targets.ndim == 1 and not unbatched:  # concatenated targets: padded rows, each from its offset
    starts = np.cumsum([0] + tgt_lens[:-1])
    S = max(tgt_lens + [1])
    index = np.array([[min(st + k, max(targets.shape[0] - 1, 0)) for k in range(S)] for st in starts], np.int64)
    targets = targets[Tensor(index, device=targets.device)] if targets.shape[0] else Tensor(np.zeros((N, S), np.int64))
  if targets.ndim != 2 or targets.shape[0] != N:
    raise ShapeError(f"ctc_loss: targets of shape {targets.shape} for a batch of {N}")
  S = targets.shape[1]
  if any(not 0 <= t <= S for t in tgt_lens): raise ValueError(f"ctc_loss: target_lengths {tgt_lens} must lie in [0, {S}]")
  L = 2 * S + 1  # the targets with a blank before, between and after them
  dev = log_probs.device
  s = Tensor(np.arange(L), device=dev)
  blanks = s.unsqueeze(0).expand(N, L).full_like(blank)
  ext = (s % 2 == 1).where(targets.cast(int64).gather(1, ((s - 1) // 2).clamp(0, S - 1).unsqueeze(0).expand(N, L)),
                           blanks) if S else blanks
  emit = log_probs.gather(2, ext.unsqueeze(0).expand(T, N, L))  # (T, N, L): each state's log-probability per step
  shift = lambda a, k, fill: cat([a[:, :k].full_like(fill), a[:, :-k]], 1)  # each state's k-th predecessor
  two_back = shift(ext, 2, blank) if L > 2 else blanks
  skip = (s >= 2) & (ext != blank) & (ext != two_back)  # a state reachable from two back: a label unlike the last one
  alpha = (s < 2).where(emit[0], -math.inf) if T else blanks.full_like(-math.inf, dtype=log_probs.dtype)
  length = Tensor(np.array(in_lens), device=dev).unsqueeze(1)
  for t in range(1, T):
    new = _log_add(alpha, shift(alpha, 1, -math.inf), skip.where(shift(alpha, 2, -math.inf), -math.inf)) + emit[t]
    # a sample past its own length keeps its last step's states; each step's states are stored (a kernel per step):
    # inlined, a step would recompute the one before three times over
    alpha = Stored.apply((length > t).where(new, alpha))
  # the last state and, for a non-empty target, the one before it (an empty one's is -inf)
  ends = Tensor(np.array([[2 * n, max(2 * n - 1, 0)] for n in tgt_lens]), device=dev)
  last = alpha.gather(1, ends)
  last = Tensor(np.array([[0.0, 0.0 if n else -math.inf] for n in tgt_lens], np.float32), device=dev) + last
  loss = -_log_add(last[:, 0], last[:, 1])
  tgt_len = Tensor(np.array(tgt_lens), device=dev)
  loss = (length.squeeze(1) == 0).where((tgt_len > 0).where(math.inf, 0.0), loss)
  p = log_probs.exp()
  steps = Tensor(np.arange(T), device=dev).reshape(T, 1, 1) < length.unsqueeze(0)
  loss = loss + steps.where(p - p.detach(), 0.0).sum((0, 2))  # 0, with torch's gradient term
  if zero_infinity: loss = (loss == math.inf).where(0.0, loss)
  if unbatched: loss = loss.squeeze(0)
  if reduction == "none": return loss
  if reduction == "sum": return loss.sum()
  return (loss / tgt_len.clamp(1, None).cast(loss.dtype)).mean()


def kl_div(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False) -> Tensor:
  op = "kl_div"
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, op, ("batchmean",))
  if log_target: loss = target.exp() * (target - input)
  else: loss = (target > 0).where(target * _log_safe(target), 0.0) - target * input  # xlogy: 0 * log 0 = 0
  if reduction == "batchmean": return loss.sum() / input.shape[0] if input.ndim else loss.sum()
  return _reduce(loss, reduction, op)


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False, size_average=None,
                     eps: float = 1e-8, reduce=None, reduction: str = "mean") -> Tensor:
  op = "poisson_nll_loss"
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, op)
  loss = input.exp() - target * input if log_input else input - target * (input + eps).log()
  if full:  # Stirling's term for targets above 1
    t = target
    stirling = t * _log_safe(t) - t + 0.5 * _log_safe(2 * math.pi * t)
    loss = loss + (t > 1).where(stirling, 0.0)
  return _reduce(loss, reduction, op)


def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> Tensor:
  op = "gaussian_nll_loss"
  _check_reduction(reduction, op)
  if not isinstance(var, Tensor): var = Tensor.full(input.shape, float(var), device=input.device)
  if var.shape != input.shape:
    if input.shape[:-1] == var.shape: var = var.unsqueeze(-1)
    elif not (input.shape[:-1] == var.shape[:-1] and var.shape[-1] == 1):
      raise ShapeError(f"{op}: var shape {var.shape} does not fit input shape {input.shape}")
  var = _clamp_min_no_grad(var, eps)
  loss = 0.5 * (var.log() + (input - target) ** 2 / var)
  if full: loss = loss + 0.5 * math.log(2 * math.pi)
  return _reduce(loss, reduction, op)


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean") -> Tensor:
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, "margin_ranking_loss")
  return _reduce((-target * (input1 - input2) + margin).relu(), reduction, "margin_ranking_loss")


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, "hinge_embedding_loss")
  loss = (target != -1).where(input, 0.0) + (target != 1).where((margin - input).relu(), 0.0)
  return _reduce(loss, reduction, "hinge_embedding_loss")


def soft_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, "soft_margin_loss")
  return _reduce(_softplus(-target * input), reduction, "soft_margin_loss")


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None,
                                reduce=None, reduction: str = "mean") -> Tensor:
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, "multilabel_soft_margin_loss")
  loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
  if weight is not None: loss = loss * weight
  loss = loss.sum(-1) / input.shape[-1]
  return _reduce(loss, reduction, "multilabel_soft_margin_loss")


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None,
                          reduce=None, reduction: str = "mean") -> Tensor:
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, "cosine_embedding_loss")
  eps = 1e-12  # torch's EPSILON for this loss
  dot = (input1 * input2).sum(-1)
  cos = dot / ((input1 * input1).sum(-1) + eps).mul((input2 * input2).sum(-1) + eps).sqrt()
  loss = (target == 1).where(1 - cos, 0.0) + (target == -1).where((cos - margin).relu(), 0.0)
  return _reduce(loss, reduction, "cosine_embedding_loss")


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2, eps: float = 1e-6,
                        swap: bool = False, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, "triplet_margin_loss")
  d_pos = pairwise_distance(anchor, positive, p, eps)
  d_neg = pairwise_distance(anchor, negative, p, eps)
  if swap: d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
  return _reduce((d_pos - d_neg + margin).relu(), reduction, "triplet_margin_loss")


# ---- more functional ops with torch's names (from torch's op database)

def _check_values(op: str, t: Tensor, lo: int, hi: int, what: str):
  """RuntimeError, as torch's kernels raise, for an index value outside [lo, hi): read on the host, never read out of bounds."""
  if t.numel() == 0: return
  values = t.numpy()
  bad = values[(values < lo) | (values >= hi)]
  if bad.size: raise RuntimeError(f"{op}: {what} {int(bad[0])} is out of range [{lo}, {hi})")


def _adaptive_max_indices(op: str, nd: int, input: Tensor, output_size):
  """adaptive max pooling with the flat input index of each window's first maximum, as torch's return_indices gives.

  Dims are reduced one at a time, the last first: at each, the smallest carried flat index among the positions that hold
  the window's maximum is the first maximum in row-major order (a smaller index along this dim always wins)."""
  sizes = _adaptive_sizes(op, nd, input, output_size)
  ins = input.shape[-nd:]
  val = input
  pos = Tensor.arange(math.prod(ins), device=input.device).reshape(ins).expand(*input.shape)
  for j in reversed(range(nd)):
    axis, i, o = input.ndim - nd + j, ins[j], sizes[j]
    if o == i: continue
    lo, hi = _adaptive_bounds(i, o)
    at = Tensor.arange(i, device=input.device)
    inside = (at >= Tensor(lo, device=input.device).reshape(o, 1)) & (at < Tensor(hi, device=input.device).reshape(o, 1))
    vt, pt = val.transpose(axis, -1).unsqueeze(-2), pos.transpose(axis, -1).unsqueeze(-2)  # (..., 1, i)
    top = inside.where(vt, -math.inf).amax(-1)
    hit = inside & ((vt == top.unsqueeze(-1)) | (vt != vt))
    val, pos = top.transpose(axis, -1), hit.where(pt, math.prod(ins)).amin(-1).transpose(axis, -1)
  return _adaptive(input, sizes, "max"), pos


def adaptive_max_pool3d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
  if return_indices: return _adaptive_max_indices("adaptive_max_pool3d", 3, input, output_size)
  return _adaptive(input, _adaptive_sizes("adaptive_max_pool3d", 3, input, output_size), "max")


def _max_unpool(op: str, nd: int, input: Tensor, indices: Tensor, kernel_size, stride, padding, output_size) -> Tensor:
  """The inverse of max pooling: zeros with each value written at its flat index in its (N, C) plane. Its gradient
  reads the output's gradient back at the indices (every input gets its position's gradient, as in torch)."""
  if input.ndim not in (nd + 1, nd + 2):
    raise ShapeError(f"{op}: expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, got shape {input.shape}")
  if indices.shape != input.shape:
    raise ShapeError(f"{op}: expected shape of indices to be the input's {input.shape}, got {indices.shape}")
  if indices.dtype is not int64: raise RuntimeError(f"{op}: indices must be int64, got {indices.dtype.name}")
  k = _ntuple(kernel_size, nd, "kernel_size", op)
  s = k if stride is None else _ntuple(stride, nd, "stride", op)
  p = _ntuple(padding, nd, "padding", op)
  ins = input.shape[-nd:]
  default = [(i - 1) * ss - 2 * pp + kk for i, ss, pp, kk in zip(ins, s, p, k)]
  if output_size is None: outs = default
  else:
    outs = list(output_size)
    if len(outs) == nd + 2: outs = outs[2:]
    if len(outs) != nd: raise ValueError(f"{op}: output_size should have {nd} or {nd + 2} elements, got {tuple(output_size)}")
    for o, d, ss in zip(outs, default, s):
      if not d - ss < o < d + ss:
        raise ValueError(f"{op}: invalid output_size {tuple(output_size)} (dim size must be between {d - ss} and {d + ss}, exclusive)")
  x, idx = (input.unsqueeze(0), indices.unsqueeze(0)) if input.ndim == nd + 1 else (input, indices)
  n, c, size = x.shape[0], x.shape[1], math.prod(outs)
  _check_values(op, idx, 0, size, "max index")
  flat_idx, flat_x = idx.reshape(n, c, -1), x.reshape(n, c, -1)
  out = CustomGrad.apply(flat_x, value=lambda v: Tensor.zeros(n, c, size, dtype=v.dtype, device=v.device).scatter(2, flat_idx, v),
                         grad=lambda v, g: g.gather(2, flat_idx)).reshape(n, c, *outs)
  return out.squeeze(0) if input.ndim == nd + 1 else out


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
  return _max_unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
  return _max_unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
  return _max_unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
  """(N, C, *) with its C channels read as (groups, C / groups) and transposed: a view."""
  if input.ndim < 3: raise ShapeError(f"channel_shuffle: expected at least 3 dims (N, C, *), got shape {input.shape}")
  if groups <= 0: raise RuntimeError(f"channel_shuffle: number of groups to divide channels in must be positive, got {groups}")
  n, c, *rest = input.shape
  if c % groups: raise RuntimeError(f"channel_shuffle: the {c} channels of input shape {input.shape} are not divisible by groups={groups}")
  return input.reshape(n, groups, c // groups, *rest).transpose(1, 2).reshape(input.shape)


def pdist(input: Tensor, p: float = 2) -> Tensor:
  """The p-norm distance between every pair of rows i < j, in row-major order of the pairs."""
  if input.ndim != 2: raise ShapeError(f"pdist: only supports 2-D tensors, got shape {input.shape}")
  if p < 0: raise RuntimeError(f"pdist: only supports non-negative p values, got {p}")
  i, j = np.triu_indices(input.shape[0], 1)  # the pairs' structure, known from the shape alone
  rows = lambda r: input.index_select(0, Tensor(r.astype(np.int64), device=input.device))
  return (rows(i) - rows(j)).norm(p, -1)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:
  warnings.warn("nn.functional.upsample_nearest is deprecated. Use nn.functional.interpolate instead.", stacklevel=2)
  return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:
  warnings.warn("nn.functional.upsample_bilinear is deprecated. Use nn.functional.interpolate instead.", stacklevel=2)
  return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                      size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
  """sum over classes i != y of max(0, margin - x[y] + x[i])^p (times weight[y]), over the number of classes."""
  op = "multi_margin_loss"
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, op)
  if p not in (1, 2): raise ValueError(f"{op}: only p == 1 and p == 2 supported, got p={p}")
  if input.ndim > 2: raise ShapeError(f"{op}: expected a 0-D, 1-D or 2-D input, got shape {input.shape}")
  frames, classes = (input.shape[0], input.shape[1]) if input.ndim == 2 else (1, input.numel() if input.ndim else 1)
  if target.ndim > 1 or target.numel() != frames or (input.ndim == 2 and target.ndim != 1):
    raise ShapeError(f"{op}: inconsistent target size {target.shape} for input of size {input.shape}")
  if weight is not None and weight.numel() != classes:
    raise ShapeError(f"{op}: inconsistent weight size {weight.shape}, expected {classes} elements")
  _check_values(op, target, 0, classes, "target")
  x, t = input.reshape(frames, classes), target.reshape(frames, 1)
  z = (margin - x.gather(1, t) + x).relu()
  if p == 2: z = z * z
  z = (t != Tensor.arange(classes, device=input.device)).where(z, 0.0)
  if weight is not None: z = z * weight.reshape(-1).index_select(0, t.reshape(-1)).reshape(frames, 1)
  loss = (z.sum(1) / classes).reshape(target.shape)
  return _reduce(loss, reduction, op)


def multilabel_margin_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
  """Each target row lists class indices up to its first -1; sum over listed j and unlisted i of max(0, 1 - x[j] + x[i]),
  over the number of classes."""
  op = "multilabel_margin_loss"
  reduction = _reduction(size_average, reduce, reduction)
  _check_reduction(reduction, op)
  if input.ndim > 2: raise ShapeError(f"{op}: expected a 0-D, 1-D or 2-D input, got shape {input.shape}")
  if target.shape != input.shape: raise ShapeError(f"{op}: inconsistent target size {target.shape} for input of size {input.shape}")
  frames, classes = (input.shape[0], input.shape[1]) if input.ndim == 2 else (1, input.numel() if input.ndim else 1)
  _check_values(op, target, -1, classes, "target")
  x, t = input.reshape(frames, classes), target.reshape(frames, classes)
  listed = (t == -1).cast(int64).cumsum(1) == 0  # (frames, J): the targets before the first -1
  hits = listed.unsqueeze(-1) & (t.unsqueeze(-1) == Tensor.arange(classes, device=input.device))  # (frames, J, classes)
  is_target = hits.any(1)  # (frames, classes)
  xj = x.gather(1, t.maximum(0))  # (frames, J)
  z = (1 - xj.unsqueeze(-1) + x.unsqueeze(1)).relu()  # (frames, J, classes)
  z = (listed.unsqueeze(-1) & ~is_target.unsqueeze(1)).where(z, 0.0)
  loss = (z.sum((1, 2)) / classes).reshape(input.shape[:-1] if input.ndim else ())
  return _reduce(loss, reduction, op)


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Tensor:
  op = "triplet_margin_with_distance_loss"
  _check_reduction(reduction, op)
  if margin <= 0: raise ValueError(f"{op}: margin must be greater than 0, got {margin}")
  if not anchor.ndim == positive.ndim == negative.ndim:
    raise RuntimeError(f"{op}: the anchor, positive and negative tensors are expected to have the same number of dimensions, "
                       f"got shapes {anchor.shape}, {positive.shape} and {negative.shape}")
  dist = pairwise_distance if distance_function is None else distance_function
  d_pos, d_neg = dist(anchor, positive), dist(anchor, negative)
  if swap: d_neg = d_neg.minimum(dist(positive, negative))
  return _reduce((margin + d_pos - d_neg).relu(), reduction, op)


def linear_cross_entropy(input: Tensor, linear_weight: Tensor, target: Tensor, *, linear_bias: Tensor | None = None,
                         weight: Tensor | None = None, reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options=None) -> Tensor:
  """cross_entropy(linear(input, linear_weight, linear_bias), target, ...). A linear_weight of shape (C, d1, .., in)
  gives (K-dimensional) logits (.., C, d1, ..). torch's `options` choose how it chunks the batch to save memory; the
  loss is the same, and lazygrad's fusion decides what is stored, so they change nothing here."""
  k = linear_weight.shape[-1]
  if input.ndim == 0 or input.shape[-1] != k:
    raise ShapeError(f"linear_cross_entropy: input shape {input.shape} does not end in in_features={k} (linear_weight shape {linear_weight.shape})")
  logits = (input @ linear_weight.reshape(-1, k).T).reshape(*input.shape[:-1], *linear_weight.shape[:-1])
  if linear_bias is not None: logits = logits + linear_bias
  return cross_entropy(logits, target, weight, ignore_index=-100 if ignore_index is None else ignore_index,
                       reduction=reduction, label_smoothing=label_smoothing)


def embedding_bag(input: Tensor, weight: Tensor, offsets: Tensor | None = None, max_norm: float | None = None,
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Tensor | None = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
  """Sums, means or maxima of bags of embedding rows: the rows of a 2-D input, or the runs of a 1-D input that start at
  `offsets`. Each bag is a (bags, indices) membership mask, so the reduction is a masked sum (a matmul) or max;
  padding_idx entries belong to no bag, and an empty bag gives zeros."""
  op = "embedding_bag"
  if input.dtype.is_float or input.dtype is bool_: raise RuntimeError(f"{op}: indices must be an integer tensor, got dtype {input.dtype.name}")
  if weight.ndim != 2: raise ShapeError(f"{op}: weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
  if mode not in ("sum", "mean", "max"): raise ValueError(f"{op}: mode has to be one of sum, mean or max, got {mode!r}")
  if max_norm is not None: raise NotImplementedError(f"{op}: max_norm (renormalizing rows in place) is not supported")
  if scale_grad_by_freq: raise NotImplementedError(f"{op}: scale_grad_by_freq=True is not supported")
  if per_sample_weights is not None:
    if mode != "sum": raise NotImplementedError(f"{op}: per_sample_weights was not None; per_sample_weights is only supported for mode='sum' (got mode={mode!r})")
    if per_sample_weights.shape != input.shape:
      raise ShapeError(f"{op}: per_sample_weights shape {per_sample_weights.shape} must match input shape {input.shape}")
  num = weight.shape[0]
  if padding_idx is not None:
    if not -num <= padding_idx < num: raise AssertionError(f"{op}: padding_idx {padding_idx} must be within num_embeddings {num}")
    padding_idx %= num
  if input.ndim == 2:
    if offsets is not None: raise ValueError(f"{op}: if input is 2-D, then offsets has to be None, got offsets of shape {offsets.shape}")
    bags, per = input.shape
    starts = Tensor.arange(bags, device=input.device) * per
    ends = starts + per
  elif input.ndim == 1:
    if offsets is None or offsets.ndim != 1: raise ValueError(f"{op}: offsets has to be a 1-D tensor for a 1-D input, got {offsets!r}")
    if offsets.numel() and int(offsets[0].item()) != 0:
      raise RuntimeError(f"{op}: offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from position 0, "
                         f"got {int(offsets[0].item())}")
    bags = offsets.shape[0] - 1 if include_last_offset else offsets.shape[0]
    starts = offsets[:bags]
    ends = offsets[1:] if include_last_offset else cat([offsets[1:], Tensor([input.shape[0]], dtype=offsets.dtype, device=input.device)])
  else: raise ShapeError(f"{op}: input has to be 1-D or 2-D, got shape {input.shape}")
  idx = input.reshape(-1)
  _check_values(op, idx, 0, num, "index")
  at = Tensor.arange(idx.shape[0], device=input.device)
  member = (at >= starts.reshape(-1, 1)) & (at < ends.reshape(-1, 1))  # (bags, indices)
  if padding_idx is not None: member = member & (idx != padding_idx)
  rows = weight[idx]  # (indices, dim)
  if mode == "max":
    out = member.unsqueeze(-1).where(rows, -math.inf).amax(1)
    return member.any(1).unsqueeze(-1).where(out, 0.0)
  coef = member.cast(weight.dtype)
  if per_sample_weights is not None: coef = coef * per_sample_weights.reshape(-1)
  if mode == "mean": coef = coef / member.sum(1, keepdim=True).maximum(1).cast(weight.dtype)
  return coef @ rows


def _grid_reflect(x: Tensor, twice_low: int, twice_high: int) -> Tensor:
  """torch's reflect_coordinates: fold x into [twice_low / 2, twice_high / 2] by reflecting at both ends."""
  if twice_low == twice_high: return x * 0
  low, span = twice_low / 2, (twice_high - twice_low) / 2
  x = (x - low).abs()
  extra, flips = x.fmod(span), (x / span).floor()
  return (flips.fmod(2) == 0).where(extra + low, span - extra + low)


def _grid_coordinate(x: Tensor, size: int, padding_mode: str, align_corners: bool) -> Tensor:
  """Apply padding_mode to a pixel coordinate: border clips, reflection folds back (then clips), zeros leaves it."""
  if padding_mode == "border": return x.clamp(0, size - 1)
  if padding_mode == "reflection":
    x = _grid_reflect(x, 0, 2 * (size - 1)) if align_corners else _grid_reflect(x, -1, 2 * size - 1)
    return x.clamp(0, size - 1)
  return x


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool | None = None) -> Tensor:
  """Sample input (N, C, *in) at the normalized points of grid (N, *out, nd), grid[..., 0] the last dim's coordinate.

  Each interpolation tap is a gather from the flattened input at the tap's (clamped) flat index, weighted by the
  tap's coefficient, zero where the tap falls outside: the gradient reaches the input through the gathers and the grid
  through the coefficients, as torch's formulas give it."""
  op = "grid_sample"
  if mode not in ("bilinear", "nearest", "bicubic"):
    raise ValueError(f"{op}: expected mode to be 'bilinear', 'nearest' or 'bicubic', but got: {mode!r}")
  if padding_mode not in ("zeros", "border", "reflection"):
    raise ValueError(f"{op}: expected padding_mode to be 'zeros', 'border', or 'reflection', but got: {padding_mode!r}")
  if input.ndim not in (4, 5) or grid.ndim != input.ndim or grid.shape[0] != input.shape[0] or grid.shape[-1] != input.ndim - 2:
    raise ShapeError(f"{op}: expected a 4-D or 5-D input and a grid of shape (N, *out, {input.ndim - 2}) with the input's batch "
                     f"size, got input shape {input.shape} and grid shape {grid.shape}")
  if mode == "bicubic" and input.ndim != 4: raise RuntimeError(f"{op}: bicubic interpolation only supports 4D input")
  align_corners = bool(align_corners)
  nd, (n, c), ins, outs = input.ndim - 2, input.shape[:2], input.shape[2:], grid.shape[1:-1]
  flat = input.reshape(n, c, -1)
  g = grid.reshape(n, -1, nd)

  def coord(d: int) -> Tensor:  # the pixel coordinate along input dim d, (N, points)
    size, x = ins[d], g[:, :, nd - 1 - d]
    return ((x + 1) / 2) * (size - 1) if align_corners else ((x + 1) * size - 1) / 2

  def tap(taps, weight: Tensor) -> Tensor:  # taps: one integer-valued float coordinate (N, points) per dim
    inside, index = None, None
    for d, t in enumerate(taps):
      ok = (t >= 0) & (t <= ins[d] - 1)
      inside = ok if inside is None else inside & ok
      i = t.clamp(0, ins[d] - 1).cast(int64)
      index = i if index is None else index * ins[d] + i
    value = flat.gather(2, index.unsqueeze(1).expand(n, c, index.shape[1]))
    return value * inside.where(weight, 0.0).unsqueeze(1)

  if mode == "bicubic":
    x, y = coord(1), coord(0)
    x0, y0 = x.floor().detach(), y.floor().detach()
    a = -0.75
    def cubic(t):  # torch's get_cubic_upsample_coefficients
      c1 = lambda s: ((a + 2) * s - (a + 3)) * s * s + 1
      c2 = lambda s: ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
      return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]
    cx, cy = cubic(x - x0), cubic(y - y0)
    fix = lambda t, d: _grid_coordinate(t, ins[d], padding_mode, align_corners).floor().detach()
    out = None
    for i in range(4):
      for k in range(4):
        term = tap([fix(y0 - 1 + i, 0), fix(x0 - 1 + k, 1)], cy[i] * cx[k])
        out = term if out is None else out + term
    return out.reshape(n, c, *outs)
  pts = [_grid_coordinate(coord(d), ins[d], padding_mode, align_corners) for d in range(nd)]
  if mode == "nearest":  # weight 1 through round (gradient 0), so the grid gets torch's zero gradient, not none
    rounded = [p.round() for p in pts]
    one = math.prod([r - r.detach() + 1 for r in rounded])
    return tap([r.detach() for r in rounded], one).reshape(n, c, *outs)
  lows = [p.floor().detach() for p in pts]
  out = None
  for corner in range(2 ** nd):  # every corner of the cell around the point: weight prod(1 - frac) or frac per dim
    bits = [(corner >> (nd - 1 - d)) & 1 for d in range(nd)]
    weight = None
    for b, p, lo in zip(bits, pts, lows):
      f = (p - lo) if b else (lo + 1 - p)
      weight = f if weight is None else weight * f
    term = tap([lo + b for b, lo in zip(bits, lows)], weight)
    out = term if out is None else out + term
  return out.reshape(n, c, *outs)
