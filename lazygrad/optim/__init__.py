"""Optimizers with torch.optim's names, arguments, update formulas and state-dict layout.

A step is lazy and fused: the update of every parameter (and its moment buffers) is built as Tensor math, `assign`ed,
and realized together once at the end of step(), so one step is a few kernels per parameter, scheduled at once.
The step count is a Python number, so bias corrections are computed on the host. Values that change from step
to step (learning rate, bias corrections) and the hyperparameters a scheduler may change (momentum, betas) reach
the kernels through one small uploaded vector, not as literals, so the generated kernels stay the same every step
and are compiled once.
"""
from __future__ import annotations
import copy
from collections import defaultdict
from typing import Callable
import numpy as np
from lazygrad.tensor import Tensor, no_grad, enable_grad, realize
from lazygrad.dtype import float32, float64

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]


class _Required:
  def __repr__(self): return "<required parameter>"


required = _Required()


def _as_state_tensor(value, like: Tensor) -> Tensor:
  """A loaded state value (lazygrad, NumPy or torch tensor) on the parameter's device, floats in its dtype."""
  if isinstance(value, Tensor): t = value
  else:
    if hasattr(value, "detach") and hasattr(value, "cpu"): value = value.detach().cpu().numpy()
    t = Tensor(np.asarray(value), device=like.device)
  if t.device != like.device: t = t.to(like.device)
  if t.dtype.is_float and like.dtype.is_float and t.dtype is not like.dtype: t = t.cast(like.dtype)
  return t.detach()


def _zeros_like(p: Tensor) -> Tensor:
  # a real (host-made) buffer: the first step then reads state the same way every later step does
  return Tensor(np.zeros(p.shape, dtype=p.dtype.np), dtype=p.dtype, device=p.device)


def _lerp(start: Tensor, end: Tensor, w: float, w_t: Tensor, one_minus_w_t: Tensor) -> Tensor:
  """torch.lerp's formula, which picks its form by the weight so both ends are exact."""
  return start + w_t * (end - start) if abs(w) < 0.5 else end - (end - start) * one_minus_w_t


class Optimizer:
  """Base class: param_groups (dicts with per-group hyperparameters), per-parameter state, state dicts, zero_grad."""

  def __init__(self, params, defaults: dict):
    self.defaults = defaults
    self.state: defaultdict = defaultdict(dict)  # parameter -> its state (keyed by the parameter objects, as in torch)
    self.param_groups: list[dict] = []
    if isinstance(params, Tensor):
      raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, but got a Tensor")
    groups = list(params)
    if len(groups) == 0: raise ValueError("optimizer got an empty parameter list")
    if not isinstance(groups[0], dict): groups = [{"params": groups}]
    for g in groups: self.add_param_group(g)

  def add_param_group(self, param_group: dict) -> None:
    if not isinstance(param_group, dict): raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
    params = param_group["params"]
    if isinstance(params, Tensor): params = [params]
    elif isinstance(params, set):
      raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of tensors in "
                      "sets will change between runs. Please use a list instead.")
    else: params = list(params)
    names = [p[0] for p in params if isinstance(p, tuple)]
    params = [p[1] if isinstance(p, tuple) else p for p in params]
    if names:
      if len(names) != len(params): raise ValueError("all optimizer params should be with/without names. Some param names are missing")
      param_group["param_names"] = names
    param_group["params"] = params
    for p in params:
      if not isinstance(p, Tensor): raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
      if not p.is_leaf: raise ValueError("can't optimize a non-leaf Tensor")
    for name, default in self.defaults.items():
      if default is required and name not in param_group:
        raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
      param_group.setdefault(name, default)
    seen = {id(p) for g in self.param_groups for p in g["params"]}
    if any(id(p) in seen for p in params): raise ValueError("some parameters appear in more than one parameter group")
    self.param_groups.append(param_group)

  def zero_grad(self, set_to_none: bool = True) -> None:
    for group in self.param_groups:
      for p in group["params"]:
        if p.grad is not None: p.grad = None if set_to_none else p.grad.zeros_like()

  # ---- the step

  def step(self, closure: Callable | None = None):
    """One update of every parameter that has a gradient; realized as one schedule."""
    loss = None
    if closure is not None:
      with enable_grad(): loss = closure()
    updated: list[Tensor] = []
    with no_grad():
      for group in self.param_groups:
        uploads: dict = {}
        for p in group["params"]:
          if p.grad is None: continue
          state = self.state[p]
          if not state: self._init_state(group, p, state)
          if self._counts_steps: state["step"] = float(state.get("step", 0.0)) + 1.0
          values = self._scalars(group, state.get("step", 0.0))
          key = (tuple(values.values()), p.device, _compute_dtype(p).name)
          if key not in uploads:  # one small upload per group (and step count), shared by its parameters
            dt = _compute_dtype(p)
            vec = Tensor(np.array(list(values.values()), dtype=dt.np), dtype=dt, device=p.device)
            uploads[key] = {name: vec[i] for i, name in enumerate(values)}
          updated += self._update(group, p, p.grad.detach(), state, uploads[key])
    self._opt_called = True
    if updated: realize(*updated)
    return loss

  _counts_steps = True  # keep state["step"] (a Python float; torch keeps a tensor)

  def _init_state(self, group: dict, p: Tensor, state: dict) -> None: pass
  def _scalars(self, group: dict, step: float) -> dict[str, float]: raise NotImplementedError
  def _update(self, group: dict, p: Tensor, grad: Tensor, state: dict, s: dict[str, Tensor]) -> list[Tensor]:
    raise NotImplementedError

  # ---- state dicts (torch's layout: parameters are numbered across groups in order)

  def state_dict(self) -> dict:
    mapping: dict[int, int] = {}
    start = 0
    groups = []
    for g in self.param_groups:
      packed = {k: v for k, v in g.items() if k != "params"}
      for i, p in enumerate(g["params"], start):
        mapping.setdefault(id(p), i)
      packed["params"] = [mapping[id(p)] for p in g["params"]]
      start += len(packed["params"])
      groups.append(packed)
    by_id = {id(p): p for g in self.param_groups for p in g["params"]}
    state = {}
    for p, s in self.state.items():
      if id(p) not in by_id: continue
      state[mapping[id(p)]] = {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in s.items()}
    return {"state": state, "param_groups": groups}

  def load_state_dict(self, state_dict: dict) -> None:
    groups = self.param_groups
    saved = copy.deepcopy(state_dict["param_groups"])
    if len(groups) != len(saved): raise ValueError("loaded state dict has a different number of parameter groups")
    if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved)):
      raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's group")
    id_map = {i: p for s, g in zip(saved, groups) for i, p in zip(s["params"], g["params"])}
    new_state: defaultdict = defaultdict(dict)
    for k, v in state_dict["state"].items():
      if k not in id_map: continue
      p = id_map[k]
      entry = {}
      for name, value in v.items():
        if name == "step": entry[name] = float(value.item() if hasattr(value, "item") else value)
        elif value is None or isinstance(value, (int, float, bool)): entry[name] = value
        else: entry[name] = _as_state_tensor(value, p)
      new_state[p] = entry
    self.state = new_state
    new_groups = []
    for g, s in zip(groups, saved):
      s["params"] = g["params"]
      if "param_names" in g and "param_names" not in s: s["param_names"] = g["param_names"]
      new_groups.append(s)
    self.param_groups = new_groups

  def __getstate__(self): return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}
  def __setstate__(self, state): self.__dict__.update(state)

  def __repr__(self):
    s = type(self).__name__ + " ("
    for i, group in enumerate(self.param_groups):
      s += f"\nParameter Group {i}"
      for key in sorted(group.keys()):
        if key != "params": s += f"\n    {key}: {group[key]}"
    return s + "\n)"


def _compute_dtype(p: Tensor):
  """Updates run in float32 (float64 for float64 parameters), as torch's CPU kernels do for half types."""
  return float64 if p.dtype is float64 else float32


def _check(cond: bool, msg: str):
  if not cond: raise ValueError(msg)


class SGD(Optimizer):
  _counts_steps = False  # as torch's SGD, whose state is only the momentum buffer
  def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
               nesterov: bool = False, *, maximize: bool = False, foreach=None, differentiable: bool = False, fused=None):
    _check(lr >= 0.0, f"Invalid learning rate: {lr}")
    _check(momentum >= 0.0, f"Invalid momentum value: {momentum}")
    _check(weight_decay >= 0.0, f"Invalid weight_decay value: {weight_decay}")
    if nesterov and (momentum <= 0 or dampening != 0): raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                  nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                                  fused=fused))

  def _scalars(self, group, step):
    return {"lr": group["lr"], "momentum": group["momentum"], "one_minus_dampening": 1 - group["dampening"],
            "weight_decay": group["weight_decay"]}

  def _update(self, group, p, grad, state, s):
    dt = _compute_dtype(p)
    x = p.cast(dt)
    g = grad.cast(dt)
    if group["maximize"]: g = -g
    if group["weight_decay"] != 0: g = g + x * s["weight_decay"]
    out = []
    if group["momentum"] != 0:
      buf = state.get("momentum_buffer")
      if buf is None:
        buf = state["momentum_buffer"] = g.cast(p.dtype).detach()  # torch: the first buffer is the gradient itself
      else: buf.assign(buf.cast(dt) * s["momentum"] + g * s["one_minus_dampening"])
      out.append(buf)
      g = g + buf.cast(dt) * s["momentum"] if group["nesterov"] else buf.cast(dt)
    p.assign(x - s["lr"] * g)
    return out + [p]


class Adam(Optimizer):
  def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 0, amsgrad: bool = False, *, foreach=None, maximize: bool = False,
               capturable: bool = False, differentiable: bool = False, fused=None, decoupled_weight_decay: bool = False):
    _check(0.0 <= lr, f"Invalid learning rate: {lr}")
    _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
    _check(0.0 <= betas[0] < 1.0, f"Invalid beta parameter at index 0: {betas[0]}")
    _check(0.0 <= betas[1] < 1.0, f"Invalid beta parameter at index 1: {betas[1]}")
    _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
    super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                  maximize=maximize, foreach=foreach, capturable=capturable,
                                  differentiable=differentiable, fused=fused,
                                  decoupled_weight_decay=decoupled_weight_decay))

  def _init_state(self, group, p, state):
    state["step"] = 0.0
    state["exp_avg"] = _zeros_like(p)
    state["exp_avg_sq"] = _zeros_like(p)
    if group["amsgrad"]: state["max_exp_avg_sq"] = _zeros_like(p)

  def _scalars(self, group, step):
    lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    return {"w1": 1 - beta1, "one_minus_w1": 1 - (1 - beta1), "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "decay": 1 - lr * wd, "weight_decay": wd, "step_size": lr / bias_correction1,
            "bias_correction2_sqrt": bias_correction2 ** 0.5, "eps": group["eps"]}

  def _update(self, group, p, grad, state, s):
    dt = _compute_dtype(p)
    x = p.cast(dt)
    g = grad.cast(dt)
    if group["maximize"]: g = -g
    if group["weight_decay"] != 0:
      if group["decoupled_weight_decay"]: x = x * s["decay"]
      else: g = g + x * s["weight_decay"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.assign(_lerp(m.cast(dt), g, 1 - group["betas"][0], s["w1"], s["one_minus_w1"]))
    v.assign(v.cast(dt) * s["beta2"] + s["one_minus_beta2"] * g * g)
    out = [m, v]
    if group["amsgrad"]:
      vmax = state["max_exp_avg_sq"]
      vmax.assign(vmax.cast(dt).maximum(v.cast(dt)))
      out.append(vmax)
      denom = vmax.cast(dt).sqrt() / s["bias_correction2_sqrt"] + s["eps"]
    else:
      denom = v.cast(dt).sqrt() / s["bias_correction2_sqrt"] + s["eps"]
    p.assign(x - s["step_size"] * m.cast(dt) / denom)
    return out + [p]


class AdamW(Adam):
  """Adam with decoupled weight decay (the parameter shrinks by lr * weight_decay each step)."""

  def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
               weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False, foreach=None,
               capturable: bool = False, differentiable: bool = False, fused=None):
    super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                     capturable=capturable, differentiable=differentiable, fused=fused, decoupled_weight_decay=True)

  def load_state_dict(self, state_dict: dict) -> None:
    super().load_state_dict(state_dict)
    for group in self.param_groups: group["decoupled_weight_decay"] = True


class RMSprop(Optimizer):
  def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
               momentum: float = 0, centered: bool = False, capturable: bool = False, foreach=None,
               maximize: bool = False, differentiable: bool = False):
    _check(0.0 <= lr, f"Invalid learning rate: {lr}")
    _check(0.0 <= eps, f"Invalid epsilon value: {eps}")
    _check(0.0 <= momentum, f"Invalid momentum value: {momentum}")
    _check(0.0 <= weight_decay, f"Invalid weight_decay value: {weight_decay}")
    _check(0.0 <= alpha, f"Invalid alpha value: {alpha}")
    super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                                  weight_decay=weight_decay, capturable=capturable, foreach=foreach, maximize=maximize,
                                  differentiable=differentiable))

  def _init_state(self, group, p, state):
    state["step"] = 0.0
    state["square_avg"] = _zeros_like(p)
    if group["momentum"] > 0: state["momentum_buffer"] = _zeros_like(p)
    if group["centered"]: state["grad_avg"] = _zeros_like(p)

  def _scalars(self, group, step):
    alpha = group["alpha"]
    return {"lr": group["lr"], "alpha": alpha, "w": 1 - alpha, "one_minus_w": 1 - (1 - alpha), "eps": group["eps"],
            "momentum": group["momentum"], "weight_decay": group["weight_decay"]}

  def _update(self, group, p, grad, state, s):
    dt = _compute_dtype(p)
    x = p.cast(dt)
    g = grad.cast(dt)
    if group["maximize"]: g = -g
    if group["weight_decay"] != 0: g = g + x * s["weight_decay"]
    sq = state["square_avg"]
    sq.assign(sq.cast(dt) * s["alpha"] + s["w"] * g * g)
    out = [sq]
    if group["centered"]:
      ga = state["grad_avg"]
      ga.assign(_lerp(ga.cast(dt), g, 1 - group["alpha"], s["w"], s["one_minus_w"]))
      out.append(ga)
      avg = (sq.cast(dt) - ga.cast(dt) * ga.cast(dt)).sqrt()
    else:
      avg = sq.cast(dt).sqrt()
    avg = avg + s["eps"]
    if group["momentum"] > 0:
      buf = state["momentum_buffer"]
      buf.assign(buf.cast(dt) * s["momentum"] + g / avg)
      out.append(buf)
      p.assign(x - s["lr"] * buf.cast(dt))
    else:
      p.assign(x - s["lr"] * g / avg)
    return out + [p]


from lazygrad.optim import lr_scheduler  # noqa: E402  (reachable as lazygrad.optim.lr_scheduler)
