"""Layers with torch.nn's names, arguments, parameter names and initialisation. Each forward is the matching
function of lazygrad.nn.functional (one definition per op); the modules hold parameters and state.
"""
from __future__ import annotations
import math
from collections import OrderedDict
from typing import Iterable, Iterator
from lazygrad.tensor import Tensor, realize
from lazygrad.dtype import int64
from lazygrad.nn import functional as F
from lazygrad.nn import init
from lazygrad.nn.module import Module, Parameter


def _ntuple(n: int, x, name: str = "argument") -> tuple:
  if isinstance(x, (tuple, list)):
    if len(x) != n: raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {x!r}")
    return tuple(x)
  return (x,) * n


def _empty(*shape, dtype=None, device=None) -> Tensor: return Tensor.empty(*shape, dtype=dtype, device=device)


# ---- containers

class Identity(Module):
  """Returns its input; takes and ignores any arguments, as torch's."""
  def __init__(self, *args, **kwargs): super().__init__()
  def forward(self, input): return input


class Sequential(Module):
  def __init__(self, *args):
    super().__init__()
    if len(args) == 1 and isinstance(args[0], OrderedDict):
      for key, m in args[0].items(): self.add_module(key, m)
    else:
      for i, m in enumerate(args): self.add_module(str(i), m)

  def _index(self, idx: int) -> int:
    n = len(self)
    if not -n <= idx < n: raise IndexError(f"index {idx} is out of range")
    return idx % n

  def __getitem__(self, idx):
    if isinstance(idx, slice): return type(self)(OrderedDict(list(self._modules.items())[idx]))
    return list(self._modules.values())[self._index(idx)]

  def __setitem__(self, idx: int, module: Module):
    setattr(self, list(self._modules.keys())[self._index(idx)], module)

  def __delitem__(self, idx):
    keys = list(self._modules.keys())
    for key in (keys[idx] if isinstance(idx, slice) else [keys[self._index(idx)]]): del self._modules[key]
    # renumber so the keys stay 0..n-1, as torch does
    self._modules = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))

  def __len__(self): return len(self._modules)
  def __iter__(self) -> Iterator[Module]: return iter(self._modules.values())

  def append(self, module: Module) -> Sequential:
    self.add_module(str(len(self)), module)
    return self

  def extend(self, modules: Iterable[Module]) -> Sequential:
    for m in modules: self.append(m)
    return self

  def insert(self, index: int, module: Module) -> Sequential:
    if not isinstance(module, Module): raise AssertionError(f"module should be of type: {Module}")
    n = len(self)
    if not -n <= index <= n: raise IndexError(f"Index out of range: {index}")
    if index < 0: index += n
    mods = list(self._modules.values())
    mods.insert(index, module)
    self._modules = OrderedDict((str(i), m) for i, m in enumerate(mods))
    return self

  def forward(self, input):
    for m in self._modules.values(): input = m(input)
    return input


class ModuleList(Module):
  def __init__(self, modules: Iterable[Module] | None = None):
    super().__init__()
    if modules is not None: self.extend(modules)

  def _index(self, idx: int) -> int:
    n = len(self)
    if not -n <= idx < n: raise IndexError(f"index {idx} is out of range")
    return idx % n

  def __getitem__(self, idx):
    if isinstance(idx, slice): return type(self)(list(self._modules.values())[idx])
    return self._modules[str(self._index(idx))]

  def __setitem__(self, idx: int, module: Module): setattr(self, str(self._index(idx)), module)

  def __delitem__(self, idx):
    keys = list(self._modules.keys())
    for key in (keys[idx] if isinstance(idx, slice) else [str(self._index(idx))]): del self._modules[key]
    self._modules = OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))

  def __len__(self): return len(self._modules)
  def __iter__(self) -> Iterator[Module]: return iter(self._modules.values())
  def __iadd__(self, modules): return self.extend(modules)
  def __add__(self, other): return ModuleList(list(self) + list(other))

  def append(self, module: Module) -> ModuleList:
    self.add_module(str(len(self)), module)
    return self

  def extend(self, modules: Iterable[Module]) -> ModuleList:
    for m in modules: self.append(m)
    return self

  def insert(self, index: int, module: Module) -> None:
    mods = list(self._modules.values())
    mods.insert(index, module)
    self._modules = OrderedDict((str(i), m) for i, m in enumerate(mods))

  def __repr__(self):
    # consecutive equal children print once, as torch: (0-2): 3 x Linear(...)
    if not self._modules: return self._get_name() + "()"
    reprs = [repr(m) for m in self]
    lines, start = [], 0
    for i in range(1, len(reprs) + 1):
      if i < len(reprs) and reprs[i] == reprs[start]: continue
      body = _indent(reprs[start], 2)
      lines.append(f"({start}): {body}" if i - start == 1 else f"({start}-{i - 1}): {i - start} x {body}")
      start = i
    return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


def _indent(s: str, n: int) -> str:
  first, *rest = s.split("\n")
  return "\n".join([first] + [" " * n + line for line in rest])


class ModuleDict(Module):
  def __init__(self, modules=None):
    super().__init__()
    if modules is not None: self.update(modules)

  def __getitem__(self, key: str) -> Module: return self._modules[key]
  def __setitem__(self, key: str, module: Module): self.add_module(key, module)
  def __delitem__(self, key: str): del self._modules[key]
  def __len__(self): return len(self._modules)
  def __iter__(self) -> Iterator[str]: return iter(self._modules)
  def __contains__(self, key: str) -> bool: return key in self._modules
  def keys(self): return self._modules.keys()
  def items(self): return self._modules.items()
  def values(self): return self._modules.values()
  def clear(self): self._modules.clear()

  def pop(self, key: str) -> Module:
    m = self[key]
    del self[key]
    return m

  def update(self, modules) -> None:
    items = modules.items() if hasattr(modules, "items") else modules
    for key, m in items: self[key] = m


# ---- linear and convolution

class Linear(Module):
  def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
    super().__init__()
    self.in_features, self.out_features = in_features, out_features
    self.weight = Parameter(_empty(out_features, in_features, dtype=dtype, device=device))
    if bias: self.bias = Parameter(_empty(out_features, dtype=dtype, device=device))
    else: self.register_parameter("bias", None)
    self.reset_parameters()

  def reset_parameters(self):
    init.kaiming_uniform_(self.weight, a=math.sqrt(5))
    if self.bias is not None:
      fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
      bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
      init.uniform_(self.bias, -bound, bound)

  def forward(self, input): return F.linear(input, self.weight, self.bias)

  def extra_repr(self): return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class NonDynamicallyQuantizableLinear(Linear):
  """MultiheadAttention's out_proj class in torch; the same Linear, named the same way in reprs."""


class _ConvNd(Module):
  _dims = 2

  def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, transposed, output_padding,
               groups, bias, padding_mode, device=None, dtype=None):
    super().__init__()
    n = self._dims
    if groups <= 0: raise ValueError("groups must be a positive integer")
    if in_channels % groups != 0: raise ValueError("in_channels must be divisible by groups")
    if out_channels % groups != 0: raise ValueError("out_channels must be divisible by groups")
    if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
      raise ValueError(f"padding_mode must be one of ['zeros', 'reflect', 'replicate', 'circular'], but got padding_mode='{padding_mode}'")
    self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
    self.kernel_size = _ntuple(n, kernel_size, "kernel_size")
    self.stride = _ntuple(n, stride, "stride")
    self.dilation = _ntuple(n, dilation, "dilation")
    if isinstance(padding, str):
      if padding not in ("same", "valid"): raise ValueError(f"Invalid padding string {padding!r}, should be one of ['valid', 'same']")
      if padding == "same" and any(s != 1 for s in self.stride):
        raise ValueError("padding='same' is not supported for strided convolutions")
      self.padding = padding
    else: self.padding = _ntuple(n, padding, "padding")
    self.transposed, self.output_padding = transposed, _ntuple(n, output_padding, "output_padding")
    self.padding_mode = padding_mode
    if isinstance(self.padding, str):
      pads = [0, 0] * n
      if padding == "same":
        for d, k, i in zip(self.dilation, self.kernel_size, range(n - 1, -1, -1)):
          total = d * (k - 1)
          left = total // 2
          pads[2 * i], pads[2 * i + 1] = left, total - left
      self._reversed_padding_repeated_twice = pads
    else:
      self._reversed_padding_repeated_twice = [p for p in reversed(self.padding) for _ in range(2)]
    wshape = ((in_channels, out_channels // groups) if transposed else (out_channels, in_channels // groups)) + self.kernel_size
    self.weight = Parameter(_empty(*wshape, dtype=dtype, device=device))
    if bias: self.bias = Parameter(_empty(out_channels, dtype=dtype, device=device))
    else: self.register_parameter("bias", None)
    self.reset_parameters()

  def reset_parameters(self):
    init.kaiming_uniform_(self.weight, a=math.sqrt(5))
    if self.bias is not None:
      fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
      if fan_in != 0: init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

  def _padded(self, input):
    """Non-zero padding modes pad the input first, then convolve without padding (as torch)."""
    return F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)

  def extra_repr(self):
    n = self._dims
    s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
    if self.padding != (0,) * (len(self.padding) if not isinstance(self.padding, str) else n): s += f", padding={self.padding}"
    if self.dilation != (1,) * n: s += f", dilation={self.dilation}"
    if self.output_padding != (0,) * n: s += f", output_padding={self.output_padding}"
    if self.groups != 1: s += f", groups={self.groups}"
    if self.bias is None: s += ", bias=False"
    if self.padding_mode != "zeros": s += f", padding_mode={self.padding_mode}"
    return s


class _Conv(_ConvNd):
  """Conv1d and Conv2d: torch's signature, and a forward through `_conv` (F.conv1d or F.conv2d); padding modes
  other than zeros pad first."""

  def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
               bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
    super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, False, 0, groups, bias,
                     padding_mode, device, dtype)

  def forward(self, input):
    if self.padding_mode != "zeros":
      return self._conv(self._padded(input), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
    return self._conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv1d(_Conv):
  _dims, _conv = 1, staticmethod(F.conv1d)


class Conv2d(_Conv):
  _dims, _conv = 2, staticmethod(F.conv2d)


class ConvTranspose2d(_ConvNd):
  _dims = 2

  def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
               groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None):
    if padding_mode != "zeros": raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
    if isinstance(padding, str): raise ValueError(f"{type(self).__name__} does not support string padding")
    super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, True, output_padding, groups,
                     bias, padding_mode, device, dtype)

  def _output_padding(self, input, output_size) -> tuple:
    """The output_padding that makes the output `output_size` (torch's ConvTranspose _output_padding)."""
    if output_size is None: return self.output_padding
    n = self._dims
    output_size = list(output_size)
    if len(output_size) == n + 2: output_size = output_size[2:]
    if len(output_size) != n:
      raise ValueError(f"ConvTranspose{n}D: for {input.ndim}D input, output_size must have {n} or {n + 2} elements (got {len(output_size)})")
    out = []
    for d in range(n):
      dim_size = input.shape[input.ndim - n + d]
      min_size = (dim_size - 1) * self.stride[d] - 2 * self.padding[d] + self.dilation[d] * (self.kernel_size[d] - 1) + 1
      max_size = min_size + self.stride[d] - 1
      if not min_size <= output_size[d] <= max_size:
        raise ValueError(f"requested an output size of {output_size}, but valid sizes range from {min_size} to "
                         f"{max_size} (for an input of {tuple(input.shape[2:])})")
      out.append(output_size[d] - min_size)
    return tuple(out)

  def forward(self, input, output_size=None):
    output_padding = self._output_padding(input, output_size)
    return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                              self.dilation)


# ---- normalization

class _NormBase(Module):
  def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
               track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
    super().__init__()
    self.num_features, self.eps, self.momentum = num_features, eps, momentum
    self.affine, self.track_running_stats = affine, track_running_stats
    if affine:
      self.weight = Parameter(_empty(num_features, dtype=dtype, device=device))
      if bias: self.bias = Parameter(_empty(num_features, dtype=dtype, device=device))
      else: self.register_parameter("bias", None)
    else:
      self.register_parameter("weight", None)
      self.register_parameter("bias", None)
    if track_running_stats:
      self.register_buffer("running_mean", init.zeros_(_empty(num_features, dtype=dtype, device=device)))
      self.register_buffer("running_var", init.ones_(_empty(num_features, dtype=dtype, device=device)))
      self.register_buffer("num_batches_tracked", init.zeros_(_empty(dtype=int64, device=device)))
    else:
      self.register_buffer("running_mean", None)
      self.register_buffer("running_var", None)
      self.register_buffer("num_batches_tracked", None)
    self.reset_parameters()

  def reset_running_stats(self):
    if self.track_running_stats:
      init.zeros_(self.running_mean)
      init.ones_(self.running_var)
      init.zeros_(self.num_batches_tracked)

  def reset_parameters(self):
    self.reset_running_stats()
    if self.affine:
      init.ones_(self.weight)
      if self.bias is not None: init.zeros_(self.bias)

  def _check_input_dim(self, input): raise NotImplementedError

  def extra_repr(self):
    return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")

  def _load_from_state_dict(self, state_dict, prefix, strict, missing_keys, unexpected_keys, error_msgs):
    # torch accepts a state dict without num_batches_tracked (saved before it existed) and keeps the current count
    key = prefix + "num_batches_tracked"
    if self.track_running_stats and self.num_batches_tracked is not None and key not in state_dict:
      state_dict[key] = self.num_batches_tracked
    super()._load_from_state_dict(state_dict, prefix, strict, missing_keys, unexpected_keys, error_msgs)


class _BatchNorm(_NormBase):
  def forward(self, input):
    self._check_input_dim(input)
    factor = 0.0 if self.momentum is None else self.momentum
    if self.training and self.track_running_stats and self.num_batches_tracked is not None:
      # the previous step's lazy update of the statistics runs now, so they never chain from step to step
      realize(*(t for t in (self.running_mean, self.running_var, self.num_batches_tracked) if t is not None))
      self.num_batches_tracked.assign(self.num_batches_tracked + 1)
      factor = 1.0 / float(self.num_batches_tracked.item()) if self.momentum is None else self.momentum
    bn_training = True if self.training else (self.running_mean is None and self.running_var is None)
    use_stats = not self.training or self.track_running_stats
    return F.batch_norm(input, self.running_mean if use_stats else None, self.running_var if use_stats else None,
                        self.weight, self.bias, bn_training, factor, self.eps)


class BatchNorm1d(_BatchNorm):
  def _check_input_dim(self, input):
    if input.ndim not in (2, 3): raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")


class BatchNorm2d(_BatchNorm):
  def _check_input_dim(self, input):
    if input.ndim != 4: raise ValueError(f"expected 4D input (got {input.ndim}D input)")


class LayerNorm(Module):
  def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
               device=None, dtype=None):
    super().__init__()
    self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    self.eps, self.elementwise_affine = eps, elementwise_affine
    if elementwise_affine:
      self.weight = Parameter(init.ones_(_empty(*self.normalized_shape, dtype=dtype, device=device)))
      if bias: self.bias = Parameter(init.zeros_(_empty(*self.normalized_shape, dtype=dtype, device=device)))
      else: self.register_parameter("bias", None)
    else:
      self.register_parameter("weight", None)
      self.register_parameter("bias", None)

  def forward(self, input): return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

  def extra_repr(self):
    return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"


class GroupNorm(Module):
  def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None, dtype=None,
               *, bias: bool = True):
    super().__init__()
    if num_channels % num_groups != 0:
      raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
    self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
    if affine:
      self.weight = Parameter(init.ones_(_empty(num_channels, dtype=dtype, device=device)))
      if bias: self.bias = Parameter(init.zeros_(_empty(num_channels, dtype=dtype, device=device)))
      else: self.register_parameter("bias", None)
    else:
      self.register_parameter("weight", None)
      self.register_parameter("bias", None)

  def forward(self, input): return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

  def extra_repr(self):
    return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.bias is not None}"


class RMSNorm(Module):
  def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None, dtype=None):
    super().__init__()
    self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    self.eps, self.elementwise_affine = eps, elementwise_affine
    if elementwise_affine: self.weight = Parameter(init.ones_(_empty(*self.normalized_shape, dtype=dtype, device=device)))
    else: self.register_parameter("weight", None)

  def forward(self, input): return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

  def extra_repr(self): return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


# ---- embedding and dropout

class Embedding(Module):
  def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, max_norm: float | None = None,
               norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False, _weight: Tensor | None = None,
               _freeze: bool = False, device=None, dtype=None):
    super().__init__()
    self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
    if padding_idx is not None:
      if not -num_embeddings <= padding_idx < num_embeddings: raise AssertionError("Padding_idx must be within num_embeddings")
      if padding_idx < 0: padding_idx += num_embeddings
    self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
    self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
    if _weight is None:
      self.weight = Parameter(_empty(num_embeddings, embedding_dim, dtype=dtype, device=device), requires_grad=not _freeze)
      self.reset_parameters()
    else:
      if tuple(_weight.shape) != (num_embeddings, embedding_dim):
        raise AssertionError("Shape of weight does not match num_embeddings and embedding_dim")
      self.weight = Parameter(_weight, requires_grad=not _freeze)

  def reset_parameters(self):
    init.normal_(self.weight)
    if self.padding_idx is not None:
      w = self.weight.numpy().copy()
      w[self.padding_idx] = 0
      self.weight.assign(Tensor(w, dtype=self.weight.dtype, device=self.weight.device))

  @classmethod
  def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx=None, max_norm=None, norm_type=2.0,
                      scale_grad_by_freq=False, sparse=False) -> Embedding:
    if embeddings.ndim != 2: raise AssertionError("Embeddings parameter is expected to be 2-dimensional")
    rows, cols = embeddings.shape
    return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight=embeddings, _freeze=freeze)

  def forward(self, input):
    return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse)

  def extra_repr(self):
    s = f"{self.num_embeddings}, {self.embedding_dim}"
    if self.padding_idx is not None: s += f", padding_idx={self.padding_idx}"
    if self.max_norm is not None: s += f", max_norm={self.max_norm}"
    if self.norm_type != 2: s += f", norm_type={self.norm_type}"
    if self.scale_grad_by_freq: s += ", scale_grad_by_freq=True"
    if self.sparse: s += ", sparse=True"
    return s


class Dropout(Module):
  def __init__(self, p: float = 0.5, inplace: bool = False):
    super().__init__()
    if not 0 <= p <= 1: raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    self.p, self.inplace = p, inplace

  def forward(self, input): return F.dropout(input, self.p, self.training, self.inplace)

  def extra_repr(self): return f"p={self.p}, inplace={self.inplace}"


# ---- activations

class _InplaceActivation(Module):
  """An activation with torch's `inplace` flag, kept for state and repr; the result is a new lazy tensor either way."""
  def __init__(self, inplace: bool = False):
    super().__init__()
    self.inplace = inplace
  def extra_repr(self): return "inplace=True" if self.inplace else ""


class ReLU(_InplaceActivation):
  def forward(self, input): return F.relu(input, inplace=self.inplace)


class LeakyReLU(Module):
  def __init__(self, negative_slope: float = 1e-2, inplace: bool = False):
    super().__init__()
    self.negative_slope, self.inplace = negative_slope, inplace
  def forward(self, input): return F.leaky_relu(input, self.negative_slope, self.inplace)
  def extra_repr(self): return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
  def __init__(self, approximate: str = "none"):
    super().__init__()
    self.approximate = approximate
  def forward(self, input): return F.gelu(input, approximate=self.approximate)
  def extra_repr(self): return f"approximate={self.approximate!r}"


class SiLU(_InplaceActivation):
  def forward(self, input): return F.silu(input, inplace=self.inplace)


class Tanh(Module):
  def forward(self, input): return F.tanh(input)


class Sigmoid(Module):
  def forward(self, input): return F.sigmoid(input)


class _DimActivation(Module):
  """An activation over one dim (None: torch's legacy choice, made in F)."""
  def __init__(self, dim: int | None = None):
    super().__init__()
    self.dim = dim
  def extra_repr(self): return f"dim={self.dim}"


class Softmax(_DimActivation):
  def forward(self, input): return F.softmax(input, self.dim)


class LogSoftmax(_DimActivation):
  def forward(self, input): return F.log_softmax(input, self.dim)


# ---- pooling and reshaping

class MaxPool2d(Module):
  def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False, ceil_mode: bool = False):
    super().__init__()
    self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
    self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

  def forward(self, input):
    return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode,
                        return_indices=self.return_indices)

  def extra_repr(self):
    return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
  def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None):
    super().__init__()
    self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
    self.padding, self.ceil_mode = padding, ceil_mode
    self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

  def forward(self, input):
    return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                        self.divisor_override)

  def extra_repr(self): return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
  def __init__(self, output_size):
    super().__init__()
    self.output_size = output_size
  def forward(self, input): return F.adaptive_avg_pool2d(input, self.output_size)
  def extra_repr(self): return f"output_size={self.output_size}"


class Flatten(Module):
  def __init__(self, start_dim: int = 1, end_dim: int = -1):
    super().__init__()
    self.start_dim, self.end_dim = start_dim, end_dim
  def forward(self, input): return input.flatten(self.start_dim, self.end_dim)
  def extra_repr(self): return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
  def __init__(self, dim: int, unflattened_size):
    super().__init__()
    self.dim, self.unflattened_size = dim, tuple(unflattened_size)
  def forward(self, input): return input.unflatten(self.dim, self.unflattened_size)
  def extra_repr(self): return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# ---- attention

class MultiheadAttention(Module):
  """torch.nn.MultiheadAttention: packed in_proj_weight/in_proj_bias and an out_proj Linear, so state dicts are
  interchangeable. need_weights=True returns the attention weights (averaged over heads by default)."""

  def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True, add_bias_kv: bool = False,
               add_zero_attn: bool = False, kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
               device=None, dtype=None):
    super().__init__()
    if embed_dim <= 0 or num_heads <= 0:
      raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and num_heads={num_heads} instead")
    if add_bias_kv or add_zero_attn:
      raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported yet")
    self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
    self.kdim = kdim if kdim is not None else embed_dim
    self.vdim = vdim if vdim is not None else embed_dim
    self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
    self.head_dim = embed_dim // num_heads
    if self.head_dim * num_heads != embed_dim: raise AssertionError("embed_dim must be divisible by num_heads")
    if not self._qkv_same_embed_dim:
      self.q_proj_weight = Parameter(_empty(embed_dim, embed_dim, dtype=dtype, device=device))
      self.k_proj_weight = Parameter(_empty(embed_dim, self.kdim, dtype=dtype, device=device))
      self.v_proj_weight = Parameter(_empty(embed_dim, self.vdim, dtype=dtype, device=device))
      self.register_parameter("in_proj_weight", None)
    else:
      self.in_proj_weight = Parameter(_empty(3 * embed_dim, embed_dim, dtype=dtype, device=device))
      self.register_parameter("q_proj_weight", None)
      self.register_parameter("k_proj_weight", None)
      self.register_parameter("v_proj_weight", None)
    if bias: self.in_proj_bias = Parameter(_empty(3 * embed_dim, dtype=dtype, device=device))
    else: self.register_parameter("in_proj_bias", None)
    self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
    self.bias_k = self.bias_v = None
    self.add_zero_attn = add_zero_attn
    self._reset_parameters()

  def _reset_parameters(self):
    if self._qkv_same_embed_dim: init.xavier_uniform_(self.in_proj_weight)
    else:
      init.xavier_uniform_(self.q_proj_weight)
      init.xavier_uniform_(self.k_proj_weight)
      init.xavier_uniform_(self.v_proj_weight)
    if self.in_proj_bias is not None:
      init.constant_(self.in_proj_bias, 0.0)
      init.constant_(self.out_proj.bias, 0.0)

  def _project(self, query, key, value):
    E = self.embed_dim
    b = self.in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
    if self._qkv_same_embed_dim:
      w = self.in_proj_weight
      wq, wk, wv = w[:E], w[E:2 * E], w[2 * E:]
    else: wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
    return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

  @staticmethod
  def _additive(mask, dtype, name: str):
    """A bool mask (True: not allowed) as 0 / -inf; a float mask as it is (torch's _canonical_mask)."""
    if mask is None: return None
    if mask.dtype.name == "bool": return mask.where(float("-inf"), 0.0).cast(dtype)
    if not mask.dtype.is_float: raise AssertionError(f"only bool and floating types of {name} are supported")
    return mask.cast(dtype)

  def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
              average_attn_weights: bool = True, is_causal: bool = False):
    batched = query.ndim == 3
    if not batched:  # (L, E): one sequence
      query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
      if key_padding_mask is not None: key_padding_mask = key_padding_mask.unsqueeze(0)
    elif self.batch_first: query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    # from here on (L, N, E), torch's layout
    L, N, E = query.shape
    S = key.shape[0]
    if E != self.embed_dim: raise AssertionError(f"was expecting embedding dimension of {self.embed_dim}, but got {E}")
    if key.shape[:2] != value.shape[:2]: raise AssertionError(f"key shape {key.shape} does not match value shape {value.shape}")
    H, D = self.num_heads, self.head_dim
    if is_causal and attn_mask is None:
      raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module method "
                         "`generate_square_subsequent_mask` to create this mask.")
    q, k, v = self._project(query, key, value)
    # (L, N, E) -> (N, H, L, D)
    q = q.reshape(L, N, H, D).permute(1, 2, 0, 3)
    k = k.reshape(S, N, H, D).permute(1, 2, 0, 3)
    v = v.reshape(S, N, H, D).permute(1, 2, 0, 3)
    use_causal = is_causal and key_padding_mask is None and not need_weights
    mask = None
    if not use_causal:
      am = self._additive(attn_mask, q.dtype, "attn_mask")
      if am is not None:
        if am.ndim == 2:
          if am.shape != (L, S): raise RuntimeError(f"The shape of the 2D attn_mask is {am.shape}, but should be {(L, S)}.")
        elif am.ndim == 3:
          if am.shape != (N * H, L, S): raise RuntimeError(f"The shape of the 3D attn_mask is {am.shape}, but should be {(N * H, L, S)}.")
          am = am.reshape(N, H, L, S)
        else: raise AssertionError(f"attn_mask's dimension {am.ndim} is not supported")
      kpm = self._additive(key_padding_mask, q.dtype, "key_padding_mask")
      if kpm is not None:
        if kpm.shape != (N, S): raise AssertionError(f"expecting key_padding_mask shape of {(N, S)}, but got {kpm.shape}")
        kpm = kpm.reshape(N, 1, 1, S)
      mask = kpm if am is None else am if kpm is None else am + kpm
    dropout_p = self.dropout if self.training else 0.0
    weights = None
    if need_weights:
      scores = (q * math.sqrt(1.0 / D)) @ k.transpose(-2, -1)
      if mask is not None: scores = scores + mask
      weights = F.softmax(scores, dim=-1)
      if dropout_p > 0.0: weights = F.dropout(weights, p=dropout_p)
      out = weights @ v
    else:
      out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=use_causal)
    out = F.linear(out.permute(2, 0, 1, 3).reshape(L, N, E), self.out_proj.weight, self.out_proj.bias)  # (L, N, E)
    if need_weights and average_attn_weights: weights = weights.mean(1)
    if not batched:
      out = out.squeeze(1)
      if weights is not None: weights = weights.squeeze(0)
    elif self.batch_first: out = out.transpose(0, 1)
    return out, weights


# ---- losses

class _Loss(Module):
  def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
    super().__init__()
    if size_average is not None or reduce is not None:
      reduction = ("mean" if size_average is None or size_average else "sum") if reduce is None or reduce else "none"
    if reduction not in ("none", "mean", "sum"): raise ValueError(f"{reduction} is not a valid value for reduction")
    self.reduction = reduction


class _WeightedLoss(_Loss):
  def __init__(self, weight: Tensor | None = None, size_average=None, reduce=None, reduction: str = "mean"):
    super().__init__(size_average, reduce, reduction)
    self.register_buffer("weight", weight)


class L1Loss(_Loss):
  def forward(self, input, target): return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
  def forward(self, input, target): return F.mse_loss(input, target, reduction=self.reduction)


class CTCLoss(_Loss):
  def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
    super().__init__(reduction=reduction)
    self.blank, self.zero_infinity = blank, zero_infinity

  def forward(self, log_probs, targets, input_lengths, target_lengths):
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=self.blank, reduction=self.reduction,
                      zero_infinity=self.zero_infinity)


class NLLLoss(_WeightedLoss):
  def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None, reduction: str = "mean"):
    super().__init__(weight, size_average, reduce, reduction)
    self.ignore_index = ignore_index

  def forward(self, input, target):
    return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
  def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None, reduction: str = "mean",
               label_smoothing: float = 0.0):
    super().__init__(weight, size_average, reduce, reduction)
    self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

  def forward(self, input, target):
    return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                           label_smoothing=self.label_smoothing)


class BCEWithLogitsLoss(_Loss):
  def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
    super().__init__(size_average, reduce, reduction)
    self.register_buffer("weight", weight)
    self.register_buffer("pos_weight", pos_weight)

  def forward(self, input, target):
    return F.binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction)


# ---- more modules with torch's names, over the functional ops from torch's op database

class PairwiseDistance(Module):
  def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    super().__init__()
    self.norm, self.eps, self.keepdim = p, eps, keepdim
  def forward(self, x1, x2): return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class ChannelShuffle(Module):
  def __init__(self, groups: int):
    super().__init__()
    self.groups = groups
  def forward(self, input): return F.channel_shuffle(input, self.groups)
  def extra_repr(self): return f"groups={self.groups}"


class _MaxUnpoolNd(Module):
  _nd = 0
  def __init__(self, kernel_size, stride=None, padding=0):
    super().__init__()
    self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding
  def forward(self, input, indices, output_size=None):
    return getattr(F, f"max_unpool{self._nd}d")(input, indices, self.kernel_size, self.stride, self.padding, output_size)
  def extra_repr(self): return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd): _nd = 1
class MaxUnpool2d(_MaxUnpoolNd): _nd = 2
class MaxUnpool3d(_MaxUnpoolNd): _nd = 3
