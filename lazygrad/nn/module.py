"""Module and Parameter: torch.nn.Module's bookkeeping (parameters, buffers, submodules, state dicts, train/eval).

Parameters and buffers are Tensors whose data is replaced in place with `Tensor.assign`, so an optimizer or a
loaded state dict updates the very objects a model holds, and nothing here launches a kernel by itself.
"""
from __future__ import annotations
from collections import OrderedDict
from typing import Any, Callable, Iterator
import numpy as np
from lazygrad.tensor import Tensor
from lazygrad.dtype import DType, to_dtype


class Parameter(Tensor):
  """A Tensor that a Module registers as a parameter; requires_grad defaults to True."""

  def __init__(self, data=None, requires_grad: bool = True):
    if data is None: data = Tensor.empty(0)
    elif not isinstance(data, Tensor): data = Tensor(data)
    if requires_grad and not data.dtype.is_float:
      raise RuntimeError(f"only floating point tensors can require gradients, got dtype {data.dtype.name}")
    self.lazydata, self.requires_grad, self.grad, self._ctx = data.lazydata, bool(requires_grad), None, None

  def __repr__(self): return "Parameter containing:\n" + super().__repr__()


def _as_tensor(value, like: Tensor | None = None) -> Tensor:
  """A state-dict value (lazygrad Tensor, NumPy array, PyTorch tensor, number) as a lazygrad Tensor."""
  if isinstance(value, Tensor): return value
  if hasattr(value, "detach") and hasattr(value, "cpu"): value = value.detach().cpu().numpy()  # a torch.Tensor
  arr = np.asarray(value)
  if like is not None and arr.dtype.kind in "biuf": return Tensor(arr, dtype=like.dtype, device=like.device)
  return Tensor(arr)


def _addindent(s: str, n: int) -> str:
  lines = s.split("\n")
  return lines[0] if len(lines) == 1 else lines[0] + "\n" + "\n".join(" " * n + line for line in lines[1:])


class Module:
  """Base class of every layer: assign Parameters, Tensors via register_buffer, and Modules as attributes."""

  training: bool
  _parameters: dict
  _buffers: dict
  _modules: dict

  def __init__(self, *args, **kwargs):
    if args or kwargs:
      raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments; Module.__init__ takes none")
    object.__setattr__(self, "training", True)
    object.__setattr__(self, "_parameters", OrderedDict())
    object.__setattr__(self, "_buffers", OrderedDict())
    object.__setattr__(self, "_non_persistent_buffers_set", set())
    object.__setattr__(self, "_modules", OrderedDict())

  def forward(self, *args, **kwargs):
    raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

  def __call__(self, *args, **kwargs): return self.forward(*args, **kwargs)

  # ---- registration

  def _check_ready(self, name: str):
    if "_parameters" not in self.__dict__:
      raise AttributeError(f"cannot assign {name!r} before Module.__init__() call")

  def register_parameter(self, name: str, param: Parameter | None) -> None:
    self._check_ready(name)
    if not isinstance(name, str): raise TypeError(f"parameter name should be a string, got {type(name).__name__}")
    if "." in name: raise KeyError(f'parameter name can\'t contain ".", got {name!r}')
    if name == "": raise KeyError('parameter name can\'t be empty string ""')
    if hasattr(self, name) and name not in self._parameters: raise KeyError(f"attribute {name!r} already exists")
    if param is not None and not isinstance(param, Parameter):
      raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' (lazygrad.nn.Parameter or None required)")
    self._parameters[name] = param

  def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
    self._check_ready(name)
    if not isinstance(name, str): raise TypeError(f"buffer name should be a string, got {type(name).__name__}")
    if "." in name: raise KeyError(f'buffer name can\'t contain ".", got {name!r}')
    if name == "": raise KeyError('buffer name can\'t be empty string ""')
    if hasattr(self, name) and name not in self._buffers: raise KeyError(f"attribute {name!r} already exists")
    if tensor is not None and not isinstance(tensor, Tensor):
      raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' (Tensor or None required)")
    self._buffers[name] = tensor
    if persistent: self._non_persistent_buffers_set.discard(name)
    else: self._non_persistent_buffers_set.add(name)

  def add_module(self, name: str, module: Module | None) -> None:
    self._check_ready(name)
    if module is not None and not isinstance(module, Module):
      raise TypeError(f"{type(module).__name__} is not a Module subclass")
    if not isinstance(name, str): raise TypeError(f"module name should be a string, got {type(name).__name__}")
    if "." in name: raise KeyError(f'module name can\'t contain ".", got {name!r}')
    if name == "": raise KeyError('module name can\'t be empty string ""')
    if hasattr(self, name) and name not in self._modules: raise KeyError(f"attribute {name!r} already exists")
    self._modules[name] = module
  register_module = add_module

  def __setattr__(self, name: str, value: Any) -> None:
    def remove_from(*dicts):
      for d in dicts: d.pop(name, None)
    params = self.__dict__.get("_parameters")
    if isinstance(value, Parameter):
      if params is None: raise AttributeError("cannot assign parameters before Module.__init__() call")
      remove_from(self.__dict__, self._buffers, self._modules)
      self._non_persistent_buffers_set.discard(name)
      self.register_parameter(name, value)
    elif params is not None and name in params:
      if value is not None:
        raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' (lazygrad.nn.Parameter or None expected)")
      self.register_parameter(name, value)
    else:
      modules = self.__dict__.get("_modules")
      if isinstance(value, Module):
        if modules is None: raise AttributeError("cannot assign module before Module.__init__() call")
        remove_from(self.__dict__, self._parameters, self._buffers)
        self._non_persistent_buffers_set.discard(name)
        modules[name] = value
      elif modules is not None and name in modules:
        if value is not None:
          raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' (lazygrad.nn.Module or None expected)")
        modules[name] = value
      else:
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
          if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' (Tensor or None expected)")
          buffers[name] = value
        else:
          object.__setattr__(self, name, value)

  def __getattr__(self, name: str):
    # only reached when normal lookup fails
    d = self.__dict__
    for store in ("_parameters", "_buffers", "_modules"):
      if store in d and name in d[store]: return d[store][name]
    raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

  def __delattr__(self, name: str):
    for store in (self._parameters, self._buffers, self._modules):
      if name in store:
        del store[name]
        self._non_persistent_buffers_set.discard(name)
        return
    object.__delattr__(self, name)

  def __dir__(self):
    return sorted(set(object.__dir__(self)) | set(self._parameters) | set(self._buffers) | set(self._modules))

  # ---- traversal

  def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
    memo = set()
    modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
    for module_prefix, module in modules:
      for k, v in get_members(module):
        if v is None or (remove_duplicate and id(v) in memo): continue
        if remove_duplicate: memo.add(id(v))
        yield (module_prefix + ("." if module_prefix else "") + k, v)

  def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
    yield from self._named_members(lambda m: m._parameters.items(), prefix, recurse, remove_duplicate)

  def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
    for _, p in self.named_parameters(recurse=recurse): yield p

  def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
    yield from self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

  def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
    for _, b in self.named_buffers(recurse=recurse): yield b

  def named_children(self) -> Iterator[tuple[str, Module]]:
    memo = set()
    for name, m in self._modules.items():
      if m is not None and id(m) not in memo:
        memo.add(id(m))
        yield name, m

  def children(self) -> Iterator[Module]:
    for _, m in self.named_children(): yield m

  def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
    if memo is None: memo = set()
    if id(self) in memo: return
    if remove_duplicate: memo.add(id(self))
    yield prefix, self
    for name, m in self._modules.items():
      if m is None: continue
      yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

  def modules(self) -> Iterator[Module]:
    for _, m in self.named_modules(): yield m

  def get_submodule(self, target: str) -> Module:
    mod = self
    for item in target.split(".") if target else []:
      if item not in mod._modules or mod._modules[item] is None:
        raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
      mod = mod._modules[item]
    return mod

  def get_parameter(self, target: str) -> Parameter:
    mod_path, _, name = target.rpartition(".")
    mod = self.get_submodule(mod_path)
    if name not in mod._parameters: raise AttributeError(f"{type(mod).__name__} has no parameter `{name}`")
    return mod._parameters[name]

  def get_buffer(self, target: str) -> Tensor:
    mod_path, _, name = target.rpartition(".")
    mod = self.get_submodule(mod_path)
    if name not in mod._buffers: raise AttributeError(f"{type(mod).__name__} has no buffer `{name}`")
    return mod._buffers[name]

  # ---- state dicts

  def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool):
    for name, p in self._parameters.items():
      if p is not None: destination[prefix + name] = p if keep_vars else p.detach()
    for name, b in self._buffers.items():
      if b is not None and name not in self._non_persistent_buffers_set:
        destination[prefix + name] = b if keep_vars else b.detach()

  def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False) -> OrderedDict:
    """Parameters and persistent buffers by dotted name, in registration order, module by module (torch's keys)."""
    if args:  # torch's deprecated positional form: state_dict(destination, prefix, keep_vars)
      destination = args[0]
      if len(args) > 1: prefix = args[1]
      if len(args) > 2: keep_vars = args[2]
    if destination is None: destination = OrderedDict()
    self._save_to_state_dict(destination, prefix, keep_vars)
    for name, m in self._modules.items():
      if m is not None: m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
    return destination

  def _load_from_state_dict(self, state_dict: dict, prefix: str, strict: bool, missing_keys: list,
                            unexpected_keys: list, error_msgs: list):
    """Load this module's own parameters and buffers (not its children's); unexpected keys are found by the caller."""
    local = [(k, v) for k, v in self._parameters.items() if v is not None]
    local += [(k, v) for k, v in self._buffers.items() if v is not None and k not in self._non_persistent_buffers_set]
    for name, param in local:
      key = prefix + name
      if key not in state_dict:
        if strict: missing_keys.append(key)
        continue
      value = state_dict[key]
      try: value = _as_tensor(value, param)
      except Exception as e:
        error_msgs.append(f'While copying the parameter named "{key}", expected a Tensor or an array, got {type(value).__name__}: {e}')
        continue
      if value.shape != param.shape:
        error_msgs.append(f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                          f"the shape in current model is {param.shape}.")
        continue
      if value.device != param.device: value = value.to(param.device)
      param.assign(value.detach())

  def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
    """Copy parameters and buffers in place; returns (missing_keys, unexpected_keys). With strict=True (the
    default) any missing or unexpected key, and with any strictness a shape mismatch, raises a RuntimeError."""
    if not isinstance(state_dict, dict):
      raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
    missing, unexpected, errors = [], [], []
    state_dict = OrderedDict(state_dict)

    def load(module: Module, prefix: str):
      module._load_from_state_dict(state_dict, prefix, True, missing, unexpected, errors)
      for name, child in module._modules.items():
        if child is not None: load(child, prefix + name + ".")
    load(self, "")
    # unexpected: the keys that no module's parameter or persistent buffer claims
    claimed = set(self.state_dict(keep_vars=True).keys())
    unexpected = [k for k in state_dict if k not in claimed]
    if strict:
      if unexpected: errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
      if missing: errors.insert(0, "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
    if errors:
      raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(type(self).__name__, "\n\t".join(errors)))
    return _IncompatibleKeys(missing, unexpected)

  # ---- modes and conversion

  def train(self, mode: bool = True) -> Module:
    if not isinstance(mode, bool): raise ValueError("training mode is expected to be boolean")
    self.training = mode
    for m in self.children(): m.train(mode)
    return self

  def eval(self) -> Module: return self.train(False)

  def requires_grad_(self, requires_grad: bool = True) -> Module:
    for p in self.parameters(): p.requires_grad_(requires_grad)
    return self

  def zero_grad(self, set_to_none: bool = True) -> None:
    for p in self.parameters():
      if p.grad is None: continue
      p.grad = None if set_to_none else p.grad.zeros_like()

  def apply(self, fn: Callable[[Module], None]) -> Module:
    for m in self.children(): m.apply(fn)
    fn(self)
    return self

  def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
    """Convert every parameter and buffer in place (the same objects keep the converted data)."""
    for m in self.modules():
      for store in (m._parameters, m._buffers):
        for t in store.values():
          if t is None: continue
          new = fn(t)
          if new is not t:
            t.lazydata = new.lazydata  # a conversion keeps object identity, as torch's param.data = ... does
          if t.grad is not None: t.grad = fn(t.grad)
    return self

  def to(self, *args, device=None, dtype=None) -> Module:
    """to(device), to(dtype) or both; dtype conversion applies to floating-point tensors only, as in torch."""
    for a in args:
      if isinstance(a, DType): dtype = a
      elif isinstance(a, str):
        try: dtype = to_dtype(a)
        except TypeError: device = a
      elif isinstance(a, Tensor): device, dtype = a.device, a.dtype
      else: dtype = to_dtype(a)
    if dtype is not None:
      dtype = to_dtype(dtype)
      if not dtype.is_float: raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype.name}")

    def convert(t: Tensor) -> Tensor:
      out = t
      if device is not None: out = out.to(device)
      if dtype is not None and out.dtype.is_float: out = out.cast(dtype)
      return out
    return self._apply(convert)

  def float(self) -> Module: return self.to(dtype="float32")
  def double(self) -> Module: return self.to(dtype="float64")
  def half(self) -> Module: return self.to(dtype="float16")

  # ---- printing

  def extra_repr(self) -> str: return ""

  def _get_name(self) -> str: return type(self).__name__

  def __repr__(self):
    extra = self.extra_repr()
    lines = extra.split("\n") if extra else []
    for key, m in self._modules.items():
      lines.append(f"({key}): " + _addindent(repr(m), 2))
    main = self._get_name() + "("
    if lines:
      if len(lines) == 1 and not self._modules: main += lines[0]
      else: main += "\n  " + "\n  ".join(lines) + "\n"
    return main + ")"


class _IncompatibleKeys(tuple):
  """(missing_keys, unexpected_keys), with those names, as torch's load_state_dict returns."""
  def __new__(cls, missing_keys, unexpected_keys): return super().__new__(cls, (missing_keys, unexpected_keys))
  @property
  def missing_keys(self): return self[0]
  @property
  def unexpected_keys(self): return self[1]
  def __repr__(self):
    if not self[0] and not self[1]: return "<All keys matched successfully>"
    return f"_IncompatibleKeys(missing_keys={self[0]}, unexpected_keys={self[1]})"
