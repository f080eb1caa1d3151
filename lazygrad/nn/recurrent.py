"""Recurrent layers with torch.nn's names, arguments and parameter names: RNN, LSTM, GRU and their cells, so a torch
state dict loads as it is.

A layer projects the input of all its time steps at once (one matrix product, `_input_projection`); each step then
adds only the hidden state's product. Every step is the same ops on a slice at offset t of the same tensors, so the
engine builds a step's kernels once (offsets become kernel arguments) and reuses them for any t and any length.
The math of one step is defined once per kind (`rnn_tanh_step`, `lstm_step`, ...), used by the cells and the layers.
"""
from __future__ import annotations
import math
import numbers
import warnings
from typing import NamedTuple
import numpy as np
from lazygrad.tensor import Tensor, stack, cat, grad_enabled
from lazygrad.nn import functional as F
from lazygrad.nn import init
from lazygrad.nn.module import Module, Parameter
from lazygrad.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class StepWeights(NamedTuple):
  """One direction of one layer (or one cell): torch's weight_ih, weight_hh, bias_ih, bias_hh, weight_hr."""
  w_ih: Tensor
  w_hh: Tensor
  b_ih: Tensor | None
  b_hh: Tensor | None
  w_hr: Tensor | None = None


# ---- one time step of each kind. `xw` is the step's input projection from `_input_projection`; `state` is (h,) or
# (h, c); each returns the new state tuple.

def _hidden_product(h: Tensor, w: StepWeights, with_bias: bool, tap: Tensor | None) -> Tensor:
  """h @ W_hh.T (+ b_hh), plus a step's slice of a tap that carries W_hh's gradient (see _hidden_weight_grads)."""
  out = F.linear(h, w.w_hh, w.b_hh if with_bias else None)
  return out if tap is None else out + tap


def rnn_tanh_step(xw: Tensor, state: tuple, w: StepWeights, tap: Tensor | None = None) -> tuple:
  return ((xw + _hidden_product(state[0], w, False, tap)).tanh(),)


def rnn_relu_step(xw: Tensor, state: tuple, w: StepWeights, tap: Tensor | None = None) -> tuple:
  return ((xw + _hidden_product(state[0], w, False, tap)).relu(),)


def _gates(z: Tensor, n: int) -> tuple:
  """The n gates of a (..., n * H) pre-activation, as (..., H) views of its (..., n, H) reshape: their gradients are
  then padded along the gate axis, where a vector of columns is one gate's (chunking the last axis, a kernel's lanes
  straddled gates and every lane loaded on its own: the LSTM's backward step ran 5x slower)."""
  return z.reshape(*z.shape[:-1], n, z.shape[-1] // n).unbind(-2)


def lstm_step(xw: Tensor, state: tuple, w: StepWeights, tap: Tensor | None = None) -> tuple:
  h, c = state
  # the four gates (torch's order: input, forget, cell, output) from one (B, 4H) product
  i, f, g, o = _gates(xw + _hidden_product(h, w, False, tap), 4)
  c = (f.sigmoid() * c + i.sigmoid() * g.tanh()).clone()
  h = o.sigmoid() * c.tanh()
  if w.w_hr is not None: h = h.matmul(w.w_hr.T)
  return h, c


def gru_step(xw: Tensor, state: tuple, w: StepWeights, tap: Tensor | None = None) -> tuple:
  h = state[0]
  # b_hh stays in the step: the new gate scales its hidden half (W_hn h + b_hn) by r
  x_r, x_z, x_n = _gates(xw, 3)
  h_r, h_z, h_n = _gates(_hidden_product(h, w, True, tap), 3)
  r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
  n = (x_n + r * h_n).tanh()
  return ((1 - z) * n + z * h,)


# mode (torch's names) -> (step, gates per hidden unit, whether b_hh joins the input projection)
MODES = {
  "RNN_TANH": (rnn_tanh_step, 1, True),
  "RNN_RELU": (rnn_relu_step, 1, True),
  "LSTM": (lstm_step, 4, True),
  "GRU": (gru_step, 3, False),
}


def _input_projection(x: Tensor, w: StepWeights, with_hh_bias: bool) -> Tensor:
  """x @ W_ih.T + b_ih (+ b_hh where the step only adds it): for all time steps at once, one matrix product."""
  bias = w.b_ih
  if bias is not None and with_hh_bias: bias = bias + w.b_hh
  return F.linear(x, w.w_ih, bias)


def _stack_steps(outputs: list[Tensor]) -> Tensor:
  """The per-step outputs of one direction as one (T, B, H) tensor (one place, so a faster stacking can replace it)."""
  return stack(outputs, 0)


def _hidden_weight_grads(xw: Tensor, start: Tensor, w: StepWeights, reverse: bool, folded_bias: bool):
  """W_hh's gradient over a whole sequence as one product over all T*B rows, dZ.T @ H_in, as cuDNN computes it: left
  to autograd, it was a sum of T products, a kernel whose structure changed with T. Returns (xw, the weights the
  steps use, a tap, `finish`). The steps use W_hh (and b_hh) detached; where b_hh is folded into xw (RNN, LSTM), a
  step's hidden product adds to xw[t], so xw's gradient is the products' too, and xw passes through a node that also
  gives W_hh its gradient. GRU's r scales part of the product, so a tap, zeros (T, B, 3H) that each step adds to its
  product, collects the products' gradients and gives W_hh and b_hh theirs. `finish(out)` hands over the stacked
  outputs: shifted by one step, they are each step's incoming h."""
  if not (w.w_hh.requires_grad and grad_enabled()): return xw, w, None, None
  outputs = []

  def weight_grad(g: Tensor) -> Tensor:
    out, first = outputs[0].detach(), start.detach().unsqueeze(0)
    h_in = first if out.shape[0] == 1 else cat([out[1:], first] if reverse else [first, out[:-1]], 0)
    return g.reshape(-1, g.shape[-1]).T.matmul(h_in.reshape(-1, h_in.shape[-1]))

  detached = w._replace(w_hh=w.w_hh.detach(), b_hh=None if w.b_hh is None else w.b_hh.detach())
  if folded_bias:
    xw = F.CustomGrad.apply(xw, w.w_hh, value=lambda x, _: x, grad=lambda x, _, g: (g, weight_grad(g)))
    return xw, detached, None, outputs.append
  zeros = lambda *_: Tensor.zeros(*xw.shape, dtype=xw.dtype, device=xw.device)
  if w.b_hh is None: tap = F.CustomGrad.apply(w.w_hh, value=zeros, grad=lambda _, g: weight_grad(g))
  else: tap = F.CustomGrad.apply(w.w_hh, w.b_hh, value=zeros, grad=lambda _, __, g: (weight_grad(g), g.sum((0, 1))))
  return xw, detached, tap, outputs.append


def _run_direction(xw: Tensor, state: tuple, step, w: StepWeights, reverse: bool, mask: Tensor | None,
                   with_hh_bias: bool):
  """The recurrence over xw (T, B, gates*H): the outputs (T, B, H) in time order and the final state. With a mask
  (T, B, 1), a step past a sequence's end keeps its state, so each sequence ends at (or, reversed, starts from) its
  own last element."""
  steps = xw.shape[0]
  xw, w, tap, finish = _hidden_weight_grads(xw, state[0], w, reverse, with_hh_bias)
  outputs = [None] * steps
  for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
    new = step(xw[t], state, w, None if tap is None else tap[t])
    state = new if mask is None else tuple(mask[t].where(n, s) for n, s in zip(new, state))
    outputs[t] = state[0]
  out = _stack_steps(outputs)
  if finish is not None: finish(out)
  return out, state


def _pack_like(padded: Tensor, lengths: Tensor, like: PackedSequence) -> PackedSequence:
  """A padded (T, B, *) batch in its original order, packed as `like` is: its batch_sizes and sorted_indices."""
  if like.sorted_indices is None: packed = pack_padded_sequence(padded, lengths)
  else:
    packed = pack_padded_sequence(padded, lengths, enforce_sorted=False)
    order = like.sorted_indices.numpy()  # small index tensors keep a host copy: nothing is read from the device
    if not np.array_equal(packed.sorted_indices.numpy(), order):
      # ties in length ordered otherwise than pack_padded_sequence orders them: the batch is put in like's order first
      packed = pack_padded_sequence(padded[:, order], lengths.numpy()[order])
  return PackedSequence(packed.data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)


def _reset_uniform(module: Module, hidden_size: int):
  """torch's init for every recurrent weight and bias: uniform(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
  bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0
  for p in module.parameters(): init.uniform_(p, -bound, bound)


class RNNBase(Module):
  """The multi-layer recurrence shared by RNN, LSTM and GRU (torch.nn.RNNBase); `mode` is torch's: 'RNN_TANH',
  'RNN_RELU', 'LSTM' or 'GRU'."""

  def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
               batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
               device=None, dtype=None):
    super().__init__()
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
      raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element being "
                       "zeroed")
    if dropout > 0 and num_layers == 1:
      warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                    f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}", stacklevel=2)
    if not isinstance(bias, bool): raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
    if not isinstance(batch_first, bool):
      raise TypeError(f"batch_first should be of type bool, got: {type(batch_first).__name__}")
    if not isinstance(input_size, int):
      raise TypeError(f"input_size should be of type int, got: {type(input_size).__name__}")
    if input_size <= 0: raise ValueError("input_size must be greater than zero")
    if not isinstance(hidden_size, int):
      raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
    if hidden_size <= 0: raise ValueError("hidden_size must be greater than zero")
    if num_layers <= 0: raise ValueError("num_layers must be greater than zero")
    if proj_size < 0: raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size: raise ValueError("proj_size has to be smaller than hidden_size")
    if mode not in MODES: raise ValueError("Unrecognized RNN mode: " + mode)
    self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
    self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
    self.bidirectional, self.proj_size = bidirectional, proj_size
    gate_size = MODES[mode][1] * hidden_size
    real_hidden_size = proj_size if proj_size > 0 else hidden_size
    self._flat_weights_names, self._all_weights = [], []
    for layer in range(num_layers):
      for direction in range(self.num_directions):
        layer_input_size = input_size if layer == 0 else real_hidden_size * self.num_directions
        shapes = [("weight_ih_l{}{}", (gate_size, layer_input_size)),
                  ("weight_hh_l{}{}", (gate_size, real_hidden_size))]
        if bias: shapes += [("bias_ih_l{}{}", (gate_size,)), ("bias_hh_l{}{}", (gate_size,))]
        if proj_size > 0: shapes += [("weight_hr_l{}{}", (proj_size, hidden_size))]
        names = []
        for pattern, shape in shapes:
          name = pattern.format(layer, "_reverse" if direction == 1 else "")
          setattr(self, name, Parameter(Tensor.empty(*shape, dtype=dtype, device=device)))
          names.append(name)
        self._flat_weights_names.extend(names)
        self._all_weights.append(names)
    self.reset_parameters()

  @property
  def num_directions(self) -> int: return 2 if self.bidirectional else 1

  @property
  def all_weights(self) -> list[list[Parameter]]:
    return [[getattr(self, n) for n in names] for names in self._all_weights]

  def reset_parameters(self): _reset_uniform(self, self.hidden_size)

  def flatten_parameters(self):
    """A no-op, as torch's is off cuDNN: the weights are used where they are."""

  def _weights(self, layer: int, direction: int) -> StepWeights:
    suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
    get = lambda name: getattr(self, f"{name}_{suffix}", None)
    return StepWeights(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr"))

  # ---- checks, with torch's messages

  def check_input(self, input: Tensor, packed: bool):
    weight = getattr(self, self._flat_weights_names[0])
    if input.dtype != weight.dtype:
      raise ValueError(f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}). Convert input: "
                       f"input.to({weight.dtype}), or convert model: model.to({input.dtype})")
    expected_dim = 2 if packed else 3
    if input.ndim != expected_dim: raise RuntimeError(f"input must have {expected_dim} dimensions, got {input.ndim}")
    if self.input_size != input.shape[-1]:
      raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                         f"got {input.shape[-1]}")

  def get_expected_hidden_size(self, batch: int) -> tuple[int, int, int]:
    return (self.num_layers * self.num_directions, batch, self.proj_size if self.proj_size > 0 else self.hidden_size)

  def check_hidden_size(self, hx: Tensor, expected: tuple, msg: str = "Expected hidden size {}, got {}"):
    if tuple(hx.shape) != tuple(expected): raise RuntimeError(msg.format(expected, list(hx.shape)))

  def check_forward_args(self, input: Tensor, hidden: tuple, batch: int, packed: bool = False):
    self.check_input(input, packed)
    self.check_hidden_size(hidden[0], self.get_expected_hidden_size(batch))

  def _zero_state(self, batch: int, like: Tensor) -> tuple:
    sizes = [self.get_expected_hidden_size(batch)]
    if self.mode == "LSTM": sizes.append(self.get_expected_cell_size(batch))
    return tuple(Tensor.zeros(*size, dtype=like.dtype, device=like.device) for size in sizes)

  # ---- forward

  def _prepare(self, input: Tensor, hx):
    """The input as (T, B, features), the initial state tuple, and whether the input was batched: torch's checks,
    in torch's order."""
    name = "RNN" if self.mode.startswith("RNN") else self.mode
    if input.ndim not in (2, 3):
      tail = " tensor instead" if name == "RNN" else " instead"  # torch's wording differs by one word
      raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D{tail}")
    batched = input.ndim == 3
    if not batched: input = input.unsqueeze(0 if self.batch_first else 1)
    if self.batch_first: input = input.transpose(0, 1)
    batch = input.shape[1]
    if hx is None:
      state = self._zero_state(batch, input)
      self.check_forward_args(input, state, batch)
      return input, state, batched
    state = tuple(hx) if self.mode == "LSTM" else (hx,)
    want = 3 if batched else 2
    if any(s.ndim != want for s in state):
      kind = "batched 3-D" if batched else "unbatched 2-D"
      if self.mode == "LSTM":
        dims = ", ".join(f"{s.ndim}-D" for s in state)
        raise RuntimeError(f"For {kind} input, hx and cx should also be {want}-D but got ({dims}) tensors")
      raise RuntimeError(f"For {kind} input, hx should also be {want}-D but got {state[0].ndim}-D tensor")
    if not batched: state = tuple(s.unsqueeze(1) for s in state)
    self.check_forward_args(input, state, batch)
    return input, state, batched

  def _recur(self, x: Tensor, state: tuple, mask: Tensor | None = None):
    """All layers and directions over x (T, B, features) from `state` (each (layers * directions, B, size)): the last
    layer's outputs (T, B, directions * H) and the final states, stacked as torch's h_n (and c_n)."""
    step, _, with_hh_bias = MODES[self.mode]
    finals = []
    for layer in range(self.num_layers):
      if layer > 0: x = F.dropout(x, self.dropout, self.training)
      outputs = []
      for direction in range(self.num_directions):
        w = self._weights(layer, direction)
        start = tuple(s[layer * self.num_directions + direction] for s in state)
        out, final = _run_direction(_input_projection(x, w, with_hh_bias), start, step, w, direction == 1, mask,
                                   with_hh_bias)
        outputs.append(out)
        finals.append(final)
      x = outputs[0] if len(outputs) == 1 else cat(outputs, -1)
    return x, tuple(stack([f[k] for f in finals], 0) for k in range(len(state)))

  def forward(self, input, hx=None):
    if isinstance(input, PackedSequence): out, finals = self._forward_packed(input, hx)
    else:
      x, state, batched = self._prepare(input, hx)
      out, finals = self._recur(x, state)
      if self.batch_first: out = out.transpose(0, 1)
      if not batched:
        out = out.squeeze(0 if self.batch_first else 1)
        finals = tuple(f.squeeze(1) for f in finals)
    return out, (finals if self.mode == "LSTM" else finals[0])

  def _forward_packed(self, packed: PackedSequence, hx):
    """A packed batch runs padded, in its original order (as hx is given), each sequence masked past its length;
    the output is packed as the input was."""
    batch = int(packed._batch_sizes_np[0])
    state = self._zero_state(batch, packed.data) if hx is None else (tuple(hx) if self.mode == "LSTM" else (hx,))
    self.check_forward_args(packed.data, state, batch, packed=True)
    padded, lengths = pad_packed_sequence(packed)
    steps = padded.shape[0]
    mask = Tensor.arange(steps, device=padded.device).reshape(steps, 1, 1) < lengths.reshape(1, batch, 1)
    out, finals = self._recur(padded, state, mask)
    return _pack_like(mask.where(out, 0), lengths, packed), finals

  def extra_repr(self) -> str:
    s = f"{self.input_size}, {self.hidden_size}"
    if self.proj_size != 0: s += f", proj_size={self.proj_size}"
    if self.num_layers != 1: s += f", num_layers={self.num_layers}"
    if self.bias is not True: s += f", bias={self.bias}"
    if self.batch_first is not False: s += f", batch_first={self.batch_first}"
    if self.dropout != 0: s += f", dropout={self.dropout}"
    if self.bidirectional is not False: s += f", bidirectional={self.bidirectional}"
    return s


class RNN(RNNBase):
  """torch.nn.RNN: h_t = nonlinearity(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), nonlinearity 'tanh' or 'relu'."""

  def __init__(self, *args, **kwargs):
    if "proj_size" in kwargs: raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    # nonlinearity is the fourth positional argument, as torch's signature has it
    if len(args) > 3: nonlinearity, args = args[3], args[:3] + args[4:]
    else: nonlinearity = kwargs.pop("nonlinearity", "tanh")
    if nonlinearity not in ("tanh", "relu"):
      raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)
    self.nonlinearity = nonlinearity


class LSTM(RNNBase):
  """torch.nn.LSTM, with proj_size (h projected by weight_hr after each step)."""

  def __init__(self, *args, **kwargs): super().__init__("LSTM", *args, **kwargs)

  def get_expected_cell_size(self, batch: int) -> tuple[int, int, int]:
    return (self.num_layers * self.num_directions, batch, self.hidden_size)

  def check_forward_args(self, input: Tensor, hidden: tuple, batch: int, packed: bool = False):
    self.check_input(input, packed)
    self.check_hidden_size(hidden[0], self.get_expected_hidden_size(batch), "Expected hidden[0] size {}, got {}")
    self.check_hidden_size(hidden[1], self.get_expected_cell_size(batch), "Expected hidden[1] size {}, got {}")


class GRU(RNNBase):
  """torch.nn.GRU: gates r, z, n in torch's order, n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

  def __init__(self, *args, **kwargs):
    if "proj_size" in kwargs: raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    super().__init__("GRU", *args, **kwargs)


# ---- cells: one step of the same math

class RNNCellBase(Module):
  def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
    super().__init__()
    self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
    self.weight_ih = Parameter(Tensor.empty(num_chunks * hidden_size, input_size, dtype=dtype, device=device))
    self.weight_hh = Parameter(Tensor.empty(num_chunks * hidden_size, hidden_size, dtype=dtype, device=device))
    if bias:
      self.bias_ih = Parameter(Tensor.empty(num_chunks * hidden_size, dtype=dtype, device=device))
      self.bias_hh = Parameter(Tensor.empty(num_chunks * hidden_size, dtype=dtype, device=device))
    else:
      self.register_parameter("bias_ih", None)
      self.register_parameter("bias_hh", None)
    self.reset_parameters()

  def reset_parameters(self): _reset_uniform(self, self.hidden_size)

  def extra_repr(self) -> str:
    s = f"{self.input_size}, {self.hidden_size}"
    if self.bias is not True: s += f", bias={self.bias}"
    if getattr(self, "nonlinearity", "tanh") != "tanh": s += f", nonlinearity={self.nonlinearity}"
    return s

  def _step(self, mode: str, input: Tensor, state, count: int):
    """One step from `state` (None for zeros, or `count` tensors), with torch's checks; the new state tuple."""
    name = type(self).__name__
    if input.ndim not in (1, 2): raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
    if state is not None:
      for k, s in enumerate(state):
        if s.ndim not in (1, 2):
          what = f"hx[{k}]" if count == 2 else "hidden"
          raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {s.ndim}D instead")
    batched = input.ndim == 2
    if not batched: input = input.unsqueeze(0)
    if state is None:
      zeros = Tensor.zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device)
      state = (zeros,) * count
    elif not batched: state = tuple(s.unsqueeze(0) for s in state)
    if input.shape[1] != self.input_size:
      raise RuntimeError(f"input has inconsistent input_size: got {input.shape[1]} expected {self.input_size}")
    for k, s in enumerate(state):
      if s.shape[0] != input.shape[0]:
        raise RuntimeError(f"Input batch size {input.shape[0]} doesn't match hidden{k} batch size {s.shape[0]}")
      if s.shape[1] != self.hidden_size:
        raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got {s.shape[1]}, expected {self.hidden_size}")
    step, _, with_hh_bias = MODES[mode]
    w = StepWeights(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
    new = step(_input_projection(input, w, with_hh_bias), state, w)
    return new if batched else tuple(s.squeeze(0) for s in new)


class RNNCell(RNNCellBase):
  def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device=None,
               dtype=None):
    super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
    self.nonlinearity = nonlinearity

  def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
    if self.nonlinearity not in ("tanh", "relu"): raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
    mode = "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"
    return self._step(mode, input, None if hx is None else (hx,), 1)[0]


class LSTMCell(RNNCellBase):
  def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
    super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

  def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    return self._step("LSTM", input, None if hx is None else tuple(hx), 2)


class GRUCell(RNNCellBase):
  def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
    super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

  def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
    return self._step("GRU", input, None if hx is None else (hx,), 1)[0]
