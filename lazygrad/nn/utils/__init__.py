"""torch.nn.utils: gradient clipping and flat parameter vectors (packed and padded sequences are in `rnn`). Clipping
is lazy: the norm and the rescaled gradients are one graph that the optimizer's step realizes with everything else, so
nothing waits on the host.
"""
from __future__ import annotations
import math
from typing import Iterable
from lazygrad.tensor import Tensor, cat, no_grad, stack
from lazygrad.nn.utils import rnn

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_", "parameters_to_vector",
           "vector_to_parameters"]


def _tensors(parameters) -> list[Tensor]:
  return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def get_total_norm(tensors, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> Tensor:
  """The norm of all the tensors together, as if concatenated into one vector."""
  tensors = _tensors(tensors)
  norm_type = float(norm_type)
  if not tensors: return Tensor(0.0)
  with no_grad():
    # the norm of the tensors' norms, as torch computes it: a reduction, so one stored value that each gradient's
    # update reads, where a sum of the norms' squares would be recomputed from all of them by every update's kernel
    total = stack([t.norm(norm_type) for t in tensors]).norm(norm_type)
  if error_if_nonfinite and not math.isfinite(total.item()):  # only this option waits for the value
    raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot "
                       "be clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
                       "`error_if_nonfinite=False`")
  return total


def clip_grads_with_norm_(parameters, max_norm: float, total_norm: Tensor, foreach=None) -> None:
  """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)), in place."""
  grads = [p.grad for p in _tensors(parameters) if p.grad is not None]
  if not grads: return
  with no_grad():
    coef = (float(max_norm) / (total_norm + 1e-6)).clamp(max=1.0)
    for g in grads: g.assign(g * coef.cast(g.dtype))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                    foreach=None) -> Tensor:
  """Rescale the gradients so their total norm is at most max_norm; returns the total norm before clipping (lazy)."""
  params = _tensors(parameters)
  grads = [p.grad for p in params if p.grad is not None]
  total = get_total_norm(grads, norm_type, error_if_nonfinite)
  clip_grads_with_norm_(params, max_norm, total)
  return total


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
  """Clamp every gradient into [-clip_value, clip_value], in place."""
  clip_value = float(clip_value)
  with no_grad():
    for p in _tensors(parameters):
      if p.grad is not None: p.grad.assign(p.grad.clamp(-clip_value, clip_value))


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
  """All parameters flattened and concatenated into one vector."""
  return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
  """Copy consecutive slices of a vector into the parameters (the inverse of parameters_to_vector)."""
  if not isinstance(vec, Tensor): raise TypeError(f"expected a Tensor, but got: {type(vec).__name__}")
  if vec.ndim != 1: raise ValueError(f"expected a 1-D vector, got shape {vec.shape}")
  params = list(parameters)
  total = sum(p.numel() for p in params)
  if total != vec.shape[0]: raise ValueError(f"the vector has {vec.shape[0]} elements but the parameters hold {total}")
  offset = 0
  with no_grad():
    for p in params:
      n = p.numel()
      p.assign(vec[offset:offset + n].reshape(p.shape).detach())
      offset += n
