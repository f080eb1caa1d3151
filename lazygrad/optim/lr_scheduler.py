"""torch.optim.lr_scheduler: the same schedules, computed the same way (torch's chainable recurrences in step(),
its closed forms when step(epoch) is given), so a lazygrad run sees the very learning rates a torch run sees.
Learning rates are plain Python floats in the optimizer's param_groups; the optimizer uploads them each step.
"""
from __future__ import annotations
import math
import types
from bisect import bisect_right
from collections import Counter
from typing import Sequence
from lazygrad.optim import Optimizer

__all__ = ["LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
           "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler", "OneCycleLR",
           "ReduceLROnPlateau"]


def _format_param(name: str, optimizer: Optimizer, param) -> list:
  if isinstance(param, (list, tuple)):
    if len(param) != len(optimizer.param_groups):
      raise ValueError(f"{name} must have the same length as optimizer.param_groups. {name} has {len(param)} values, "
                       f"param_groups has {len(optimizer.param_groups)}.")
    return list(param)
  return [param] * len(optimizer.param_groups)


def _lrs(optimizer: Optimizer, key: str = "lr") -> list: return [g[key] for g in optimizer.param_groups]


class LRScheduler:
  _is_initial: bool = False

  def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
    if not isinstance(optimizer, Optimizer): raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
    self.optimizer = optimizer
    if last_epoch == -1:
      for group in optimizer.param_groups: group.setdefault("initial_lr", group["lr"])
    else:
      for i, group in enumerate(optimizer.param_groups):
        if "initial_lr" not in group:
          raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming scheduler with last_epoch >= 0")
    self.base_lrs: list = _lrs(optimizer, "initial_lr")
    self.last_epoch = last_epoch
    self._initial_step()

  def _initial_step(self) -> None:
    self._step_count = 0
    self._is_initial = True
    try: self.step()
    finally: self._is_initial = False

  def state_dict(self) -> dict: return {k: v for k, v in self.__dict__.items() if k != "optimizer"}
  def load_state_dict(self, state_dict: dict) -> None: self.__dict__.update(state_dict)
  def get_last_lr(self) -> list: return self._last_lr
  def get_lr(self) -> list: raise NotImplementedError

  def step(self, epoch: int | None = None) -> None:
    self._step_count += 1
    self._update_lr(epoch)

  def _update_lr(self, epoch: int | None = None) -> None:
    if epoch is None:
      self.last_epoch += 1
      values = self.get_lr()
    else:
      self.last_epoch = epoch
      values = self._get_closed_form_lr() if hasattr(self, "_get_closed_form_lr") else self.get_lr()
    for group, lr in zip(self.optimizer.param_groups, values): group["lr"] = lr
    self._last_lr = _lrs(self.optimizer)


class LambdaLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, lr_lambda, last_epoch: int = -1):
    self.optimizer = optimizer
    if not isinstance(lr_lambda, (list, tuple)): self.lr_lambdas = [lr_lambda] * len(optimizer.param_groups)
    else:
      if len(lr_lambda) != len(optimizer.param_groups):
        raise ValueError(f"Expected {len(optimizer.param_groups)} lr_lambdas, but got {len(lr_lambda)}")
      self.lr_lambdas = list(lr_lambda)
    super().__init__(optimizer, last_epoch)

  def state_dict(self) -> dict:
    # plain functions cannot be saved; callable objects save their __dict__ (as torch)
    sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}
    sd["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else fn.__dict__.copy() for fn in self.lr_lambdas]
    return sd

  def load_state_dict(self, state_dict: dict) -> None:
    state_dict = dict(state_dict)
    lambdas = state_dict.pop("lr_lambdas")
    self.__dict__.update(state_dict)
    for fn, saved in zip(self.lr_lambdas, lambdas):
      if saved is not None: fn.__dict__.update(saved)

  def get_lr(self) -> list: return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(LambdaLR):
  def get_lr(self) -> list:
    if self._is_initial: return _lrs(self.optimizer)
    return [g["lr"] * fn(self.last_epoch) for fn, g in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
    self.step_size, self.gamma = step_size, gamma
    super().__init__(optimizer, last_epoch)

  def get_lr(self) -> list:
    if self.last_epoch == 0 or self.last_epoch % self.step_size != 0: return _lrs(self.optimizer)
    return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

  def _get_closed_form_lr(self) -> list:
    return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
    self.milestones, self.gamma = Counter(milestones), gamma
    super().__init__(optimizer, last_epoch)

  def get_lr(self) -> list:
    if self.last_epoch not in self.milestones: return _lrs(self.optimizer)
    return [g["lr"] * self.gamma ** self.milestones[self.last_epoch] for g in self.optimizer.param_groups]

  def _get_closed_form_lr(self) -> list:
    milestones = sorted(self.milestones.elements())
    return [base * self.gamma ** bisect_right(milestones, self.last_epoch) for base in self.base_lrs]


class ConstantLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1):
    if factor > 1.0 or factor < 0: raise ValueError("Constant multiplicative factor expected to be between 0 and 1.")
    self.factor, self.total_iters = factor, total_iters
    super().__init__(optimizer, last_epoch)

  def get_lr(self) -> list:
    if self.last_epoch == 0: return [g["lr"] * self.factor for g in self.optimizer.param_groups]
    if self.last_epoch != self.total_iters: return _lrs(self.optimizer)
    return [g["lr"] * (1.0 / self.factor) for g in self.optimizer.param_groups]

  def _get_closed_form_lr(self) -> list:
    return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor)) for base in self.base_lrs]


class LinearLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
               last_epoch: int = -1):
    if start_factor > 1.0 or start_factor <= 0:
      raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
    if end_factor > 1.0 or end_factor < 0: raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
    self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
    super().__init__(optimizer, last_epoch)

  def get_lr(self) -> list:
    if self.last_epoch == 0: return [g["lr"] * self.start_factor for g in self.optimizer.param_groups]
    if self._is_initial or self.last_epoch > self.total_iters: return _lrs(self.optimizer)
    diff = self.end_factor - self.start_factor
    return [g["lr"] * (1.0 + diff / (self.total_iters * self.start_factor + (self.last_epoch - 1) * diff))
            for g in self.optimizer.param_groups]

  def _get_closed_form_lr(self) -> list:
    return [base * (self.start_factor + (self.end_factor - self.start_factor) * min(self.total_iters, self.last_epoch)
                    / self.total_iters) for base in self.base_lrs]


class ExponentialLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
    self.gamma = gamma
    super().__init__(optimizer, last_epoch)

  def get_lr(self) -> list:
    if self._is_initial: return _lrs(self.optimizer)
    return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

  def _get_closed_form_lr(self) -> list: return [base * self.gamma ** self.last_epoch for base in self.base_lrs]


class PolynomialLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1):
    self.total_iters, self.power = total_iters, power
    super().__init__(optimizer, last_epoch)

  def get_lr(self) -> list:
    if self._is_initial or self.last_epoch > self.total_iters: return _lrs(self.optimizer)
    factor = ((1.0 - self.last_epoch / self.total_iters) / (1.0 - (self.last_epoch - 1) / self.total_iters)) ** self.power
    return [g["lr"] * factor for g in self.optimizer.param_groups]

  def _get_closed_form_lr(self) -> list:
    return [base * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
  def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
    self.T_max, self.eta_min = T_max, eta_min
    super().__init__(optimizer, last_epoch)

  def get_lr(self) -> list:
    if self._is_initial: return _lrs(self.optimizer)
    if self._step_count == 1 and self.last_epoch > 0:
      return [self.eta_min + (base - self.eta_min) * (1 + math.cos(self.last_epoch * math.pi / self.T_max)) / 2
              for base in self.base_lrs]
    if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
      return [g["lr"] + (base - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
              for base, g in zip(self.base_lrs, self.optimizer.param_groups)]
    return [(1 + math.cos(math.pi * self.last_epoch / self.T_max)) / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
            * (g["lr"] - self.eta_min) + self.eta_min for g in self.optimizer.param_groups]

  def _get_closed_form_lr(self) -> list:
    return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
            for base in self.base_lrs]


class SequentialLR(LRScheduler):
  """Runs schedulers one after another, switching at the milestones."""

  def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int], last_epoch: int = -1):
    if len(schedulers) < 1:
      raise ValueError(f"{type(self).__name__} expects at least one scheduler, but got no scheduler.")
    for i, s in enumerate(schedulers):
      if not hasattr(s, "optimizer"): raise TypeError(f"{type(self).__name__} at index {i} should have `optimizer` as its attribute.")
      if isinstance(s, ReduceLROnPlateau):
        raise ValueError(f"{type(self).__name__} does not support `ReduceLROnPlateau` scheduler as it requires additional "
                         f"kwargs to be specified when calling `step`, but got one at index {i} in the given schedulers sequence.")
      if s.optimizer is not optimizer:
        raise ValueError(f"{type(self).__name__} expects all schedulers to belong to the same optimizer, but got scheduler "
                         f"{type(s).__name__} at index {i} has {s.optimizer}, which is different from {type(optimizer).__name__}.")
    if len(milestones) != len(schedulers) - 1:
      raise ValueError("Sequential Schedulers expects number of schedulers provided to be one more than the number of "
                       f"milestone points, but got number of schedulers {len(schedulers)} and the number of milestones "
                       f"to be equal to {len(milestones)}")
    self._schedulers, self._milestones = list(schedulers), list(milestones)
    self.last_epoch = last_epoch + 1
    self.optimizer = optimizer
    # the sub-schedulers stepped once when they were made: undo that, then start the first one afresh
    for group in optimizer.param_groups: group["lr"] = group["initial_lr"]
    self._recursive_undo()
    idx = bisect_right(self._milestones, 0)
    self._schedulers[idx]._initial_step()
    self._last_lr = self._schedulers[idx].get_last_lr()

  def _recursive_undo(self, sched=None) -> None:
    scheds = self if sched is None else sched
    if hasattr(scheds, "_schedulers"):
      for s in scheds._schedulers: self._recursive_undo(s)
    elif hasattr(scheds, "last_epoch"): scheds.last_epoch -= 1

  def step(self) -> None:
    self.last_epoch += 1
    idx = bisect_right(self._milestones, self.last_epoch)
    scheduler = self._schedulers[idx]
    if idx > 0 and self._milestones[idx - 1] == self.last_epoch: scheduler._update_lr(0)
    else: scheduler.step()
    self._last_lr = scheduler.get_last_lr()

  def state_dict(self) -> dict:
    sd = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedulers")}
    sd["_schedulers"] = [s.state_dict() for s in self._schedulers]
    return sd

  def load_state_dict(self, state_dict: dict) -> None:
    state_dict = dict(state_dict)
    subs = state_dict.pop("_schedulers")
    self.__dict__.update(state_dict)
    for s, saved in zip(self._schedulers, subs): s.load_state_dict(saved)


class ChainedScheduler(LRScheduler):
  """Steps every scheduler in the list each step (their effects multiply)."""

  def __init__(self, schedulers: Sequence[LRScheduler], optimizer: Optimizer | None = None):
    if len(schedulers) < 1:
      raise ValueError(f"{type(self).__name__} expects at least one scheduler to be chained, but got no scheduler.")
    optimizer = optimizer or schedulers[0].optimizer
    for i, s in enumerate(schedulers):
      if isinstance(s, ReduceLROnPlateau): raise ValueError(f"{type(self).__name__} does not support `ReduceLROnPlateau` (index {i})")
      if s.optimizer is not optimizer:
        raise ValueError(f"{type(self).__name__} expects all schedulers to belong to the same optimizer (index {i} does not)")
    self._schedulers, self.optimizer = list(schedulers), optimizer
    self._last_lr = _lrs(self._schedulers[-1].optimizer)

  def step(self) -> None:
    for s in self._schedulers: s.step()
    self._last_lr = _lrs(self._schedulers[-1].optimizer)

  state_dict = SequentialLR.state_dict
  load_state_dict = SequentialLR.load_state_dict


class OneCycleLR(LRScheduler):
  """The 1cycle policy: warm up to max_lr, then anneal to max_lr / (div_factor * final_div_factor); cycles momentum
  (or Adam's beta1) the opposite way."""

  def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None, epochs: int | None = None,
               steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
               cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
               final_div_factor: float = 1e4, three_phase: bool = False, last_epoch: int = -1):
    if not isinstance(optimizer, Optimizer): raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
    self.optimizer = optimizer
    if total_steps is not None:
      if not isinstance(total_steps, int) or total_steps <= 0: raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
      self.total_steps = total_steps
    elif epochs is not None and steps_per_epoch is not None:
      if not isinstance(epochs, int) or epochs <= 0: raise ValueError(f"Expected positive integer epochs, but got {epochs}")
      if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
        raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
      self.total_steps = epochs * steps_per_epoch
    else: raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
    if three_phase:
      self._schedule_phases = [
        {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
         "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
        {"end_step": float(2 * pct_start * self.total_steps) - 2, "start_lr": "max_lr", "end_lr": "initial_lr",
         "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
        {"end_step": self.total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
         "start_momentum": "max_momentum", "end_momentum": "max_momentum"}]
    else:
      self._schedule_phases = [
        {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
         "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
        {"end_step": self.total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr",
         "start_momentum": "base_momentum", "end_momentum": "max_momentum"}]
    if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
      raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
    if anneal_strategy not in ("cos", "linear"):
      raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
    self._anneal_func_type = anneal_strategy
    max_lrs = _format_param("max_lr", optimizer, max_lr)
    if last_epoch == -1:
      for m, group in zip(max_lrs, optimizer.param_groups):
        group["initial_lr"] = m / div_factor
        group["max_lr"] = m
        group["min_lr"] = group["initial_lr"] / final_div_factor
    self.cycle_momentum = cycle_momentum
    if cycle_momentum:
      if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise ValueError("optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
      self.use_beta1 = "betas" in optimizer.defaults
      max_ms = _format_param("max_momentum", optimizer, max_momentum)
      base_ms = _format_param("base_momentum", optimizer, base_momentum)
      if last_epoch == -1:
        for m_mom, b_mom, group in zip(max_ms, base_ms, optimizer.param_groups):
          if self.use_beta1: group["betas"] = (m_mom, *group["betas"][1:])
          else: group["momentum"] = m_mom
          group["max_momentum"], group["base_momentum"] = m_mom, b_mom
    super().__init__(optimizer, last_epoch)

  def _anneal(self, start, end, pct):
    if self._anneal_func_type == "cos": return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start

  def get_lr(self) -> list:
    lrs = []
    step_num = self.last_epoch
    if step_num > self.total_steps:
      raise ValueError(f"Tried to step {step_num} times. The specified number of total steps is {self.total_steps}")
    for group in self.optimizer.param_groups:
      start_step = 0.0
      for i, phase in enumerate(self._schedule_phases):
        end_step = phase["end_step"]
        if step_num <= end_step or i == len(self._schedule_phases) - 1:
          pct = (step_num - start_step) / (end_step - start_step)
          lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
          if self.cycle_momentum:
            momentum = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
          break
        start_step = phase["end_step"]
      lrs.append(lr)
      if self.cycle_momentum:
        if self.use_beta1: group["betas"] = (momentum, *group["betas"][1:])
        else: group["momentum"] = momentum
    return lrs


class ReduceLROnPlateau(LRScheduler):
  """Cut the learning rate by `factor` when a metric stops improving for `patience` steps. step(metric) reads the
  metric's value, so a Tensor metric is computed at that point."""

  def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
               threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr=0, eps: float = 1e-8):
    if factor >= 1.0: raise ValueError("Factor should be < 1.0.")
    if not isinstance(optimizer, Optimizer): raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
    self.factor, self.optimizer = factor, optimizer
    if isinstance(min_lr, (list, tuple)):
      if len(min_lr) != len(optimizer.param_groups): raise ValueError(f"expected {len(optimizer.param_groups)} min_lrs, got {len(min_lr)}")
      self.default_min_lr, self.min_lrs = None, list(min_lr)
    else: self.default_min_lr, self.min_lrs = min_lr, [min_lr] * len(optimizer.param_groups)
    self.patience, self.cooldown, self.eps = patience, cooldown, eps
    self.last_epoch = 0
    self._last_lr = _lrs(optimizer)
    self._init_is_better(mode, threshold, threshold_mode)
    self._reset()

  def _reset(self):
    self.best, self.cooldown_counter, self.num_bad_epochs = self.mode_worse, 0, 0

  def step(self, metrics, epoch=None) -> None:
    current = float(metrics)
    self.last_epoch = epoch if epoch is not None else self.last_epoch + 1
    if self._is_better(current, self.best): self.best, self.num_bad_epochs = current, 0
    else: self.num_bad_epochs += 1
    if self.in_cooldown:
      self.cooldown_counter -= 1
      self.num_bad_epochs = 0
    if self.num_bad_epochs > self.patience:
      self._reduce_lr()
      self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
    self._last_lr = _lrs(self.optimizer)

  def _reduce_lr(self):
    if len(self.optimizer.param_groups) != len(self.min_lrs):
      if self.default_min_lr is None:
        raise RuntimeError(f"The number of param groups in the `optimizer` ({len(self.optimizer.param_groups)}) differs "
                           f"from when `ReduceLROnPlateau` was initialized ({len(self.min_lrs)})")
      self.min_lrs = [self.default_min_lr] * len(self.optimizer.param_groups)
    for i, group in enumerate(self.optimizer.param_groups):
      old = float(group["lr"])
      new = max(old * self.factor, self.min_lrs[i])
      if old - new > self.eps: group["lr"] = new

  @property
  def in_cooldown(self): return self.cooldown_counter > 0

  def _is_better(self, a, best):
    if self.mode == "min" and self.threshold_mode == "rel": return a < best * (1.0 - self.threshold)
    if self.mode == "min": return a < best - self.threshold
    if self.threshold_mode == "rel": return a > best * (self.threshold + 1.0)
    return a > best + self.threshold

  def _init_is_better(self, mode, threshold, threshold_mode):
    if mode not in ("min", "max"): raise ValueError("mode " + mode + " is unknown!")
    if threshold_mode not in ("rel", "abs"): raise ValueError("threshold mode " + threshold_mode + " is unknown!")
    self.mode_worse = math.inf if mode == "min" else -math.inf
    self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode

  def load_state_dict(self, state_dict: dict) -> None:
    self.__dict__.update(state_dict)
    self._init_is_better(self.mode, self.threshold, self.threshold_mode)
