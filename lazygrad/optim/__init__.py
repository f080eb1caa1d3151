"""Optimizers with torch.optim's names, arguments, update formulas and state-dict layout.

A step is lazy and fused: the update of every parameter (and its moment buffers) is built as Tensor math, `assign`ed,
and realized together once at the end of step(), so one step is one kernel per updated buffer, scheduled at once.

Nothing a kernel reads changes on the host from step to step, so the kernels are compiled once and a step inside
`lazygrad.jit` replays correctly:
- the step count is a device tensor (as torch's `capturable=True` keeps it), shared by the parameters of a group
  that step together, and bias corrections are computed from it inside the update kernels;
- hyperparameters (lr, betas, eps, ...) reach the kernels through a small vector per group on the device, never
  baked into the kernel source as literals; setting one (a scheduler does) overwrites the vector in place at once, so
  the new value reaches even a step that lazygrad.jit replays without running step().
So step() replays its own update through lazygrad.jit once it repeats (see Optimizer._replay_key): an eager training
loop does not build the same 26 ops per parameter every step.
"""
from __future__ import annotations
import copy
from collections import OrderedDict, defaultdict
import math
from typing import Callable
import weakref
import numpy as np
from lazygrad.jit import jit
from lazygrad.tensor import Tensor, no_grad, enable_grad, realize
from lazygrad.dtype import float32, float64

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]


class _Required:
  def __repr__(self): return "<required parameter>"


required = _Required()


UPDATE_REPLAYS = 2  # update recordings an optimizer keeps (see Optimizer._replay_key): the first step's, the others'


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


def _ln(x: float) -> float: return math.log(x) if x > 0 else -math.inf


def _one_minus_pow(log_base: Tensor, step: Tensor) -> Tensor:
  """1 - base**step = -expm1(step * ln(base)), to float32 precision even when it is tiny (beta2 = 0.999, step 1):
  a short series below |x| = 0.1, where 1 - exp(x) would lose the low digits."""
  x = step * log_base
  series = -x * (1 + x * (1 / 2 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120 + x / 720)))))
  return (x.abs() < 0.1).where(series, 1 - x.exp())


class _ParamGroup(dict):
  """A parameter group: a dict, as in torch. Setting a hyperparameter (as a scheduler or the user does) writes the new
  value into the vector the update kernels read at once, so it reaches a step replayed by `lazygrad.jit` too."""

  def __init__(self, optimizer: Optimizer, items: dict):
    super().__init__(items)
    self._owner = weakref.ref(optimizer)

  def __setitem__(self, key, value):
    super().__setitem__(key, value)
    owner = self._owner()
    if owner is not None: owner._sync_hyperparameters(self)

  def __reduce__(self): return (dict, (dict(self),))  # copies and pickles are plain dicts


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
    self.param_groups.append(_ParamGroup(self, param_group))

  def zero_grad(self, set_to_none: bool = True) -> None:
    for group in self.param_groups:
      for p in group["params"]:
        if p.grad is not None: p.grad = None if set_to_none else p.grad.zeros_like()

  # ---- the step

  def step(self, closure: Callable | None = None):
    """One update of every parameter that has a gradient; realized as one schedule. A step that fails (out of memory,
    a kernel that does not build, Ctrl-C) leaves the parameters and the state as they were before it, so the next
    step runs as if it had not been tried."""
    before = self._checkpoint()
    try: return self._step(closure)
    except BaseException:
      self._roll_back(before)
      raise

  def _checkpoint(self) -> tuple[dict, list]:
    """What a step changes: each parameter's state entries, and the data of the parameters and of the tensors in their
    state (a realized or lazy node is never changed in place, so keeping it keeps the value)."""
    params = [p for group in self.param_groups for p in group["params"]]
    entries = {p: dict(self.state[p]) for p in params if p in self.state}
    tensors = [(t, t.lazydata) for t in params]
    tensors += [(t, t.lazydata) for state in entries.values() for t in state.values() if isinstance(t, Tensor)]
    return entries, tensors

  def _roll_back(self, checkpoint: tuple[dict, list]) -> None:
    entries, tensors = checkpoint
    for t, data in tensors: t.lazydata = data
    for p in [p for group in self.param_groups for p in group["params"]]:
      if p not in entries: self.state.pop(p, None)
      else:
        self.state[p].clear()
        self.state[p].update(entries[p])

  def _step(self, closure: Callable | None):
    loss = None
    if closure is not None:
      with enable_grad(): loss = closure()
    active = [[p for p in group["params"] if p.grad is not None] for group in self.param_groups]
    grads = [p.grad.detach() for ps in active for p in ps]
    with no_grad():
      key = self._replay_key(active)
      if key is None: realize(*self._build_update(active, grads))
      else:
        replays = self.__dict__.setdefault("_replays", OrderedDict())
        if key not in replays: replays[key] = jit(lambda *grads: self._build_update(active, grads) and None, warn=False)
        replays.move_to_end(key)
        while len(replays) > UPDATE_REPLAYS: replays.popitem(last=False)
        replays[key](*grads)
    return loss

  def _build_update(self, active: list[list[Tensor]], grads) -> list[Tensor]:
    """The step's update of every parameter in `active` (per group) from its gradient in `grads` (in that order), as
    lazy Tensor math assigned to the parameters and their state; returns the tensors it assigns."""
    updated: list[Tensor] = []
    self._shared = {}  # values the parameters of one step share (Adam's bias corrections from one step counter)
    grads = iter(grads)
    for index, (group, params) in enumerate(zip(self.param_groups, active)):
      for p in params:
        state = self.state[p]
        if not state:
          if self._counts_steps: state["step"] = None  # first, as in torch's layout; set by _advance_steps
          self._init_state(group, p, state)
      if self._counts_steps: updated += self._advance_steps(group, params)
      for p in params:
        hyper = self._hyper(index, group, p)
        updated += self._update(group, p, next(grads), self.state[p], hyper)
    self._shared = {}
    return updated

  # hyperparameters that reach the update only through the vector on the device (see _hyper), never a Python branch
  _device_only = frozenset({"lr", "eps", "dampening"})

  def _replay_key(self, active: list[list[Tensor]]) -> tuple | None:
    """What the update's kernels depend on beyond its gradients (see jit), when it may be replayed: an eager training
    loop builds the same update every step, 26 Tensor ops a parameter for Adam, most of an eager MLP step's Python.
    The parameters and their state tensors by identity, and every hyperparameter that steers the update's Python (a
    changed one builds it anew; `lr`, set by schedulers, is read from the device). None, never replayed: an optimizer
    whose update is not lazygrad's own (a subclass's _update may bake Python numbers in), or a step inside a jit's
    recording (which records the update itself)."""
    cls = type(self)
    if any(getattr(cls, name).__module__ != __name__ for name in ("_update", "_init_state", "_hyperparameters", "_start")):
      return None
    if jit.recording(): return None
    groups = tuple(tuple(sorted((k, repr(v)) for k, v in group.items() if k not in self._device_only and k != "params"))
                   for group in self.param_groups)
    params = tuple(tuple((id(p), p.shape, p.dtype.name, p.device,
                          tuple((k, id(v) if isinstance(v, Tensor) else repr(v)) for k, v in self.state.get(p, {}).items()))
                         for p in ps) for ps in active)
    uploads = tuple((k, id(entry[0])) for k, entry in self.__dict__.get("_uploads", {}).items())
    return groups, params, uploads

  _counts_steps = True  # keeps state["step"], a float32 device tensor as in torch

  def _advance_steps(self, group: dict, active: list[Tensor]) -> list[Tensor]:
    """Add one to the step count of every parameter that steps; parameters that step together share one counter."""
    fresh: dict[str, Tensor] = {}
    counters: dict[int, Tensor] = {}
    for p in active:
      state = self.state[p]
      if state.get("step") is None:
        if p.device not in fresh: fresh[p.device] = Tensor(np.zeros((), dtype=np.float32), device=p.device)
        state["step"] = fresh[p.device]
      counters[id(state["step"])] = state["step"]
    # a parameter without a gradient keeps its count: it leaves a counter it shared with one that steps
    active_ids = {id(p) for p in active}
    for p in group["params"]:
      state = self.state.get(p)
      if id(p) not in active_ids and state and id(state.get("step")) in counters: state["step"] = state["step"].detach()
    for c in counters.values(): c.assign(c + 1)
    return list(counters.values())

  def _hyper(self, index: int, group: dict, p: Tensor) -> dict[str, Tensor]:
    """The group's hyperparameters as 0-d views of one vector on the device, uploaded once per group, dtype and device
    and overwritten in place when a value changes (the kernels that read it stay the same)."""
    dt = _compute_dtype(p)
    # (group index, dtype, device) -> [vector, its 0-d views, the values it holds (kept here: no read back)]
    uploads = self.__dict__.setdefault("_uploads", {})
    if (index, dt.name, p.device) not in uploads:
      hyper = self._hyperparameters(group)
      values = np.array(list(hyper.values()), dtype=dt.np)
      vec = Tensor(values, dtype=dt, device=p.device)
      uploads[(index, dt.name, p.device)] = [vec, {name: vec[i] for i, name in enumerate(hyper)}, values]
    return uploads[(index, dt.name, p.device)][1]

  def _sync_hyperparameters(self, group: dict) -> None:
    """Write the group's hyperparameters into its uploaded vectors, where a value differs."""
    index = next((i for i, g in enumerate(self.param_groups) if g is group), None)
    entries = [entry for (i, _, _), entry in self.__dict__.get("_uploads", {}).items() if i == index]
    if not entries: return  # nothing uploaded yet: the first step uploads the values as they are then
    hyper = list(self._hyperparameters(group).values())
    for entry in entries:
      values = np.array(hyper, dtype=entry[2].dtype)
      if not np.array_equal(values, entry[2]):
        entry[0]._overwrite(values)
        entry[2] = values

  def _start(self, group: dict, p: Tensor, grad: Tensor, s: dict[str, Tensor]):
    """What every update begins with: (compute dtype, parameter, gradient) in that dtype, the gradient negated for
    `maximize`, and weight decay: added to the gradient (L2), or shrinking the parameter when decoupled (AdamW)."""
    dt = _compute_dtype(p)
    x, g = p.cast(dt), grad.cast(dt)
    if group["maximize"]: g = -g
    if group["weight_decay"] != 0:
      if group.get("decoupled_weight_decay"): x = x * s["decay"]
      else: g = g + x * s["weight_decay"]
    return dt, x, g

  def _init_state(self, group: dict, p: Tensor, state: dict) -> None: pass
  def _hyperparameters(self, group: dict) -> dict[str, float]: raise NotImplementedError
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
    group_of = {id(p): n for n, g in enumerate(groups) for p in g["params"]}
    counters: dict[tuple, Tensor] = {}  # parameters of a group with the same count share one counter again
    new_state: defaultdict = defaultdict(dict)
    for k, v in state_dict["state"].items():
      if k not in id_map: continue
      p = id_map[k]
      entry = {}
      for name, value in v.items():
        if name == "step":
          count = float(value.item() if hasattr(value, "item") else value)
          key = (group_of[id(p)], count, p.device)
          if key not in counters: counters[key] = Tensor(np.array(count, dtype=np.float32), device=p.device)
          entry[name] = counters[key]
        elif value is None or isinstance(value, (int, float, bool)): entry[name] = value
        else: entry[name] = _as_state_tensor(value, p)
      new_state[p] = entry
    self.state = new_state
    new_groups = []
    for g, s in zip(groups, saved):
      s["params"] = g["params"]
      if "param_names" in g and "param_names" not in s: s["param_names"] = g["param_names"]
      new_groups.append(_ParamGroup(self, s))
    self.param_groups = new_groups
    for g in new_groups: self._sync_hyperparameters(g)

  def __getstate__(self): return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}
  def __setstate__(self, state):
    self.__dict__.update(state)
    self.param_groups = [_ParamGroup(self, g) for g in self.param_groups]  # pickled as plain dicts

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

  def _hyperparameters(self, group):
    return {"lr": group["lr"], "momentum": group["momentum"], "one_minus_dampening": 1 - group["dampening"],
            "weight_decay": group["weight_decay"]}

  def _update(self, group, p, grad, state, s):
    dt, x, g = self._start(group, p, grad, s)
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
    state["exp_avg"] = _zeros_like(p)
    state["exp_avg_sq"] = _zeros_like(p)
    if group["amsgrad"]: state["max_exp_avg_sq"] = _zeros_like(p)

  def _hyperparameters(self, group):
    lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
    return {"lr": lr, "w1": 1 - beta1, "one_minus_w1": 1 - (1 - beta1), "beta2": beta2, "one_minus_beta2": 1 - beta2,
            "ln_beta1": _ln(beta1), "ln_beta2": _ln(beta2), "decay": 1 - lr * wd, "weight_decay": wd, "eps": group["eps"]}

  def _update(self, group, p, grad, state, s):
    dt, x, g = self._start(group, p, grad, s)
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.assign(_lerp(m.cast(dt), g, 1 - group["betas"][0], s["w1"], s["one_minus_w1"]))
    v.assign(v.cast(dt) * s["beta2"] + s["one_minus_beta2"] * g * g)
    out = [m, v]
    # bias corrections from the step count on the device: step_size = lr / (1 - beta1**t), sqrt(1 - beta2**t), built
    # once per counter and hyperparameter vector (s) in a step: 17 ops each, most of a step's Python time otherwise
    key = ("bias corrections", id(state["step"]), id(s))
    if key not in self._shared:
      t = state["step"].cast(dt)
      self._shared[key] = (s["lr"] / _one_minus_pow(s["ln_beta1"], t), _one_minus_pow(s["ln_beta2"], t).sqrt())
    step_size, bias_correction2_sqrt = self._shared[key]
    if group["amsgrad"]:
      vmax = state["max_exp_avg_sq"]
      vmax.assign(vmax.cast(dt).maximum(v.cast(dt)))
      out.append(vmax)
      denom = vmax.cast(dt).sqrt() / bias_correction2_sqrt + s["eps"]
    else:
      denom = v.cast(dt).sqrt() / bias_correction2_sqrt + s["eps"]
    p.assign(x - step_size * m.cast(dt) / denom)
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
    state["square_avg"] = _zeros_like(p)
    if group["momentum"] > 0: state["momentum_buffer"] = _zeros_like(p)
    if group["centered"]: state["grad_avg"] = _zeros_like(p)

  def _hyperparameters(self, group):
    alpha = group["alpha"]
    return {"lr": group["lr"], "alpha": alpha, "w": 1 - alpha, "one_minus_w": 1 - (1 - alpha), "eps": group["eps"],
            "momentum": group["momentum"], "weight_decay": group["weight_decay"]}

  def _update(self, group, p, grad, state, s):
    dt, x, g = self._start(group, p, grad, s)
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
