"""ONNX's training-preview optimizers (domain ai.onnx.preview.training): Adagrad, Momentum and Adam steps, each
input tensor updated by the formulas of the ONNX spec."""
from __future__ import annotations
from lazygrad.onnx.registry import op

DOMAIN = "ai.onnx.preview.training"


def _groups(args, k: int):
  """(R, T, then k groups of n tensors each) -> R, T, [group]."""
  r, t, rest = args[0], args[1], args[2:]
  n = len(rest) // k
  return r, t, [rest[i * n:(i + 1) * n] for i in range(k)]


@op("Adagrad", domain=DOMAIN)
def adagrad(n, *args):
  r, t, (xs, gs, hs) = _groups(args, 3)
  decay, eps, norm = n.attr("decay_factor", 0.0), n.attr("epsilon", 1e-6), n.attr("norm_coefficient", 0.0)
  rate = r / (t.cast(r.dtype) * decay + 1)
  new_x, new_h = [], []
  for x, g, h in zip(xs, gs, hs):
    g = g + x * norm
    h = h + g * g
    new_x.append(x - rate * g / (h.sqrt() + eps))
    new_h.append(h)
  return tuple(new_x + new_h)


@op("Momentum", domain=DOMAIN)
def momentum(n, *args):
  r, t, (xs, gs, vs) = _groups(args, 3)
  alpha, beta, norm = n.attr("alpha"), n.attr("beta"), n.attr("norm_coefficient")
  nesterov = n.attr("mode", "standard") == "nesterov"
  first = float(n.host(t).reshape(-1)[0]) == 0  # the first step takes the whole gradient
  new_x, new_v = [], []
  for x, g, v in zip(xs, gs, vs):
    g = g + x * norm
    v = v * alpha + g * (1.0 if first else beta)
    new_x.append(x - r * (g + v * alpha) if nesterov else x - r * v)
    new_v.append(v)
  return tuple(new_x + new_v)


@op("Adam", domain=DOMAIN)
def adam(n, *args):
  r, t, (xs, gs, vs, hs) = _groups(args, 4)
  alpha, beta, eps = n.attr("alpha", 0.9), n.attr("beta", 0.999), n.attr("epsilon", 1e-6)
  norm, post = n.attr("norm_coefficient", 0.0), n.attr("norm_coefficient_post", 0.0)
  step = float(n.host(t).reshape(-1)[0])
  rate = r * ((1 - beta ** step) ** 0.5 / (1 - alpha ** step)) if step > 0 else r
  new_x, new_v, new_h = [], [], []
  for x, g, v, h in zip(xs, gs, vs, hs):
    g = g + x * norm
    v = v * alpha + g * (1 - alpha)
    h = h * beta + g * g * (1 - beta)
    new_x.append((x - rate * (v / (h.sqrt() + eps))) * (1 - post))
    new_v.append(v)
    new_h.append(h)
  return tuple(new_x + new_v + new_h)
