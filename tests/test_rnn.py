"""nn.RNN, nn.LSTM, nn.GRU and their cells against torch.nn with the same weights: outputs, final states, and the
gradients of the input, the initial states and every weight; packed batches, state dicts, errors, and how many
kernels a new sequence length builds.

Shapes are small and shared between tests (T=5, B=3, 4 features, hidden 6): every distinct kernel costs a compile.
"""
import re
import warnings

import numpy as np
import pytest
import torch

import lazygrad as lg
from lazygrad import nn
from lazygrad.nn.utils import rnn as rnn_utils
from tests.test_dynamic import fresh  # noqa: F401 (a fixture: nothing built yet)
from tests.helpers import with_families

T, B, FEATURES, HIDDEN = 5, 3, 4, 6
RNG = np.random.default_rng(0)


def data(*shape):
  return RNG.standard_normal(shape).astype(np.float32)


def pair(name: str, *args, **kwargs):
  """The same layer in torch.nn and lazygrad.nn, ours loaded with torch's weights (NumPy copies of its state dict)."""
  torch.manual_seed(0)
  theirs = getattr(torch.nn, name)(*args, **kwargs)
  ours = getattr(nn, name)(*args, **kwargs)
  ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
  return ours, theirs


def close(got, want, what: str):
  want = want.detach().numpy()
  assert got is not None, f"{what}: no gradient"
  assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5, err_msg=what)


def as_tuple(state): return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def compare(ours, theirs, input: np.ndarray, hx=None, pack=None):
  """Run both layers (or cells) on the same input and initial state (a NumPy array or a tuple of them), backward from
  a loss that weighs every output and final state with fixed random numbers; compare the outputs, final states and
  the gradients of the input, the initial states and every parameter. `pack`: (lengths, batch_first) to pack the
  input with pack_padded_sequence(enforce_sorted=False) first."""
  hx_np = None if hx is None else as_tuple(hx)
  x_t, x_l = torch.tensor(input, requires_grad=True), lg.tensor(input, requires_grad=True)
  h_t = None if hx_np is None else tuple(torch.tensor(h, requires_grad=True) for h in hx_np)
  h_l = None if hx_np is None else tuple(lg.tensor(h, requires_grad=True) for h in hx_np)
  def arg(h): return h if h is None or isinstance(hx, tuple) else h[0]
  if pack is not None:
    lengths, batch_first = pack
    in_t = torch.nn.utils.rnn.pack_padded_sequence(x_t, lengths, batch_first=batch_first, enforce_sorted=False)
    in_l = rnn_utils.pack_padded_sequence(x_l, lengths, batch_first=batch_first, enforce_sorted=False)
  else: in_t, in_l = x_t, x_l
  out_t, out_l = theirs(in_t, arg(h_t)), ours(in_l, arg(h_l))
  if isinstance(theirs, torch.nn.RNNBase): (out_t, st_t), (out_l, st_l) = out_t, out_l
  else: (out_t, st_t), (out_l, st_l) = (None, out_t), (None, out_l)  # a cell returns only its state
  if pack is not None:
    assert out_l.sorted_indices.numpy().tolist() == out_t.sorted_indices.tolist()
    assert out_l.batch_sizes.numpy().tolist() == out_t.batch_sizes.tolist()
    out_t, out_l = out_t.data, out_l.data
  results = ([] if out_t is None else [("output", out_l, out_t)]) + \
    [(f"state {k}", l, t) for k, (l, t) in enumerate(zip(as_tuple(st_l), as_tuple(st_t), strict=True))]
  loss_t, loss_l = 0, 0
  for _, l, t in results:
    weights = data(*t.shape)
    loss_t, loss_l = loss_t + (t * torch.tensor(weights)).sum(), loss_l + (l * lg.tensor(weights)).sum()
  loss_t.backward()
  loss_l.backward()
  for what, l, t in results: close(l, t, what)
  close(x_l.grad, x_t.grad, "input's gradient")
  for k, (l, t) in enumerate(zip(h_l or (), h_t or ())): close(l.grad, t.grad, f"initial state {k}'s gradient")
  params = dict(ours.named_parameters())
  assert list(params) == [n for n, _ in theirs.named_parameters()]
  for name, p in theirs.named_parameters(): close(params[name].grad, p.grad, f"{name}'s gradient")


def initial_state(name: str, layers: int = 1, directions: int = 1, batch=B, proj: int = 0):
  h = data(layers * directions, *(() if batch is None else (batch,)), proj or HIDDEN)
  if name != "LSTM": return h
  return h, data(layers * directions, *(() if batch is None else (batch,)), HIDDEN)


# ---------------------------------------------------------------- layers

@pytest.mark.parametrize("name, kwargs, with_hx", [
  ("RNN", dict(num_layers=2, bidirectional=True), True),
  ("RNN", dict(nonlinearity="relu", batch_first=True, bias=False), False),
  ("LSTM", dict(num_layers=2, bidirectional=True), True),
  ("LSTM", dict(num_layers=2, proj_size=3, batch_first=True), True),
  ("LSTM", dict(bias=False), False),
  ("GRU", dict(num_layers=2, bidirectional=True), True),
  ("GRU", dict(batch_first=True, bias=False), False),
], ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(f"{k}={x}" for k, x in v.items()) or "default")
def test_layer_matches_torch(name, kwargs, with_hx):
  ours, theirs = pair(name, FEATURES, HIDDEN, **kwargs)
  input = data(B, T, FEATURES) if kwargs.get("batch_first") else data(T, B, FEATURES)
  directions = 2 if kwargs.get("bidirectional") else 1
  layers, proj = kwargs.get("num_layers", 1), kwargs.get("proj_size", 0)
  compare(ours, theirs, input, initial_state(name, layers, directions, proj=proj) if with_hx else None)


@pytest.mark.parametrize("name, batch_first, with_hx", [
  ("LSTM", True, True), ("GRU", False, False), ("RNN", False, True),
])
def test_unbatched_input_matches_torch(name, batch_first, with_hx):
  ours, theirs = pair(name, FEATURES, HIDDEN, batch_first=batch_first)
  compare(ours, theirs, data(T, FEATURES), initial_state(name, batch=None) if with_hx else None)


@pytest.mark.parametrize("name, kwargs, with_hx", [
  ("LSTM", dict(bidirectional=True), True),
  ("GRU", dict(num_layers=2, batch_first=True), False),
])
def test_packed_input_with_unsorted_lengths_matches_torch(name, kwargs, with_hx):
  """Each sequence's final state is its state at its own last step (the reverse direction starts there); h0 is in
  the batch's original order; the output is packed as the input was."""
  ours, theirs = pair(name, FEATURES, HIDDEN, **kwargs)
  batch_first = kwargs.get("batch_first", False)
  input = data(B, T, FEATURES) if batch_first else data(T, B, FEATURES)
  directions = 2 if kwargs.get("bidirectional") else 1
  hx = initial_state(name, kwargs.get("num_layers", 1), directions) if with_hx else None
  compare(ours, theirs, input, hx, pack=([3, 5, 2], batch_first))


def test_packed_output_is_zero_past_each_length():
  ours, _ = pair("GRU", FEATURES, HIDDEN, bidirectional=True)
  packed = rnn_utils.pack_padded_sequence(lg.tensor(data(T, B, FEATURES)), [2, 5, 4], enforce_sorted=False)
  padded, lengths = rnn_utils.pad_packed_sequence(ours(packed)[0])
  assert lengths.numpy().tolist() == [2, 5, 4] and padded.shape == (T, B, 2 * HIDDEN)
  values = padded.numpy()
  assert not values[2:, 0].any() and not values[4:, 2].any() and values[:2, 0].all()


def test_dropout_between_layers():
  """Dropout acts between layers in training only: in eval the layer matches torch's; in training the outputs keep
  their shapes and differ from eval's. With dropout=0, training and eval agree."""
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # more than one layer: no warning
    ours, theirs = pair("LSTM", FEATURES, HIDDEN, num_layers=2, dropout=0.5)
  input = data(T, B, FEATURES)
  ours.eval(), theirs.eval()
  compare(ours, theirs, input)
  evaluated = ours(lg.tensor(input))[0].numpy()
  ours.train()
  out, (h, c) = ours(lg.tensor(input))
  assert out.shape == (T, B, HIDDEN) and h.shape == c.shape == (2, B, HIDDEN)
  assert not np.allclose(out.numpy(), evaluated)
  plain, _ = pair("LSTM", FEATURES, HIDDEN, num_layers=2)
  np.testing.assert_allclose(plain(lg.tensor(input))[0].numpy(), plain.eval()(lg.tensor(input))[0].numpy())
  with pytest.warns(UserWarning, match=re.escape("but got dropout=0.5 and num_layers=1")):
    nn.GRU(FEATURES, HIDDEN, dropout=0.5)


# ---------------------------------------------------------------- cells

@pytest.mark.parametrize("name, kwargs, batched, with_hx", [
  ("RNNCell", {}, True, True),
  ("RNNCell", dict(nonlinearity="relu", bias=False), False, False),
  ("LSTMCell", {}, True, True),
  ("LSTMCell", {}, False, False),
  ("GRUCell", {}, True, True),
  ("GRUCell", dict(bias=False), False, True),
])
def test_cell_matches_torch(name, kwargs, batched, with_hx):
  ours, theirs = pair(name, FEATURES, HIDDEN, **kwargs)
  input = data(B, FEATURES) if batched else data(FEATURES)
  hx = None
  if with_hx:
    shape = (B, HIDDEN) if batched else (HIDDEN,)
    hx = (data(*shape), data(*shape)) if name == "LSTMCell" else data(*shape)
  compare(ours, theirs, input, hx)


def test_cell_steps_equal_the_layer():
  """One definition of the step: an LSTMCell run over the sequence with an LSTM's weights gives the LSTM's output."""
  layer, _ = pair("LSTM", FEATURES, HIDDEN)
  cell = nn.LSTMCell(FEATURES, HIDDEN)
  cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
  input = lg.tensor(data(T, B, FEATURES))
  h = c = lg.zeros(B, HIDDEN)
  outputs = []
  for t in range(T):
    h, c = cell(input[t], (h, c))
    outputs.append(h)
  np.testing.assert_allclose(lg.stack(outputs).numpy(), layer(input)[0].numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- parameters and state dicts

@pytest.mark.parametrize("name, kwargs", [
  ("RNN", dict(num_layers=2, nonlinearity="relu", bidirectional=True)),
  ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=3)),
  ("LSTM", dict(bias=False, proj_size=2)),
  ("GRU", dict(num_layers=3, bias=False, batch_first=True, dropout=0.25)),
  ("RNNCell", dict(bias=False)),
  ("LSTMCell", {}),
  ("GRUCell", {}),
])
def test_parameters_state_dict_and_repr_match_torch(name, kwargs):
  theirs = getattr(torch.nn, name)(FEATURES, HIDDEN, **kwargs)
  ours = getattr(nn, name)(FEATURES, HIDDEN, **kwargs)
  assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
    [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
  assert repr(ours) == repr(theirs)
  bound = 1 / np.sqrt(HIDDEN)  # torch's init: uniform(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter
  for p in ours.parameters():
    values = p.numpy()
    assert np.abs(values).max() <= bound and values.std() > 0
  ours.load_state_dict(theirs.state_dict())  # torch tensors as they are
  for k, v in theirs.state_dict().items(): np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy())
  if hasattr(theirs, "all_weights"):
    shapes = lambda module: [[tuple(w.shape) for w in ws] for ws in module.all_weights]
    assert shapes(ours) == shapes(theirs)


def test_nonlinearity_is_the_fourth_positional_argument():
  assert nn.RNN(FEATURES, HIDDEN, 2, "relu").nonlinearity == "relu"
  assert nn.RNN(FEATURES, HIDDEN, 2, "relu").mode == "RNN_RELU" and nn.RNN(FEATURES, HIDDEN).mode == "RNN_TANH"
  ours = nn.LSTM(FEATURES, HIDDEN, dtype=lg.float64)
  assert all(p.dtype == lg.float64 for p in ours.parameters())


# ---------------------------------------------------------------- errors: torch's messages, word for word

def raises_like_torch(make, call=None):
  """The same exception type and message from torch's module and ours. `make(lib)` builds (the error may come from
  the constructor); `call(module, lib)` runs it."""
  errors = []
  for lib, tensor in ((torch.nn, torch.tensor), (nn, lg.tensor)):
    with pytest.raises(Exception) as info:
      module = make(lib)
      call(module, tensor)
    errors.append(info.value)
  theirs, ours = errors
  assert isinstance(ours, type(theirs)), f"{type(ours).__name__} where torch raises {type(theirs).__name__}: {ours}"
  assert re.fullmatch(re.escape(str(theirs)), str(ours)), f"{ours!r} != {theirs!r}"


def zeros(*shape): return np.zeros(shape, np.float32)


@pytest.mark.parametrize("make, call", [
  (lambda lib: lib.LSTM(10, 20), lambda m, t: m(t(zeros(5, 3, 7)))),
  (lambda lib: lib.GRU(10, 20, 2), lambda m, t: m(t(zeros(5, 3, 10)), t(zeros(1, 3, 20)))),
  (lambda lib: lib.RNN(10, 20, bidirectional=True), lambda m, t: m(t(zeros(5, 3, 10)), t(zeros(1, 3, 20)))),
  (lambda lib: lib.LSTM(10, 20), lambda m, t: m(t(zeros(5, 3, 10)), (t(zeros(2, 3, 20)), t(zeros(1, 3, 20))))),
  (lambda lib: lib.LSTM(10, 20), lambda m, t: m(t(zeros(5, 3, 10)), (t(zeros(1, 3, 20)), t(zeros(1, 3, 19))))),
  (lambda lib: lib.LSTM(10, 20, proj_size=5),
   lambda m, t: m(t(zeros(5, 3, 10)), (t(zeros(1, 3, 20)), t(zeros(1, 3, 20))))),
  (lambda lib: lib.LSTM(10, 20), lambda m, t: m(t(zeros(5, 10)), (t(zeros(1, 1, 20)), t(zeros(1, 1, 20))))),
  (lambda lib: lib.LSTM(10, 20), lambda m, t: m(t(zeros(5, 3, 10)), (t(zeros(3, 20)), t(zeros(1, 3, 20))))),
  (lambda lib: lib.LSTM(10, 20), lambda m, t: m(t(zeros(2, 5, 3, 10)))),
  (lambda lib: lib.GRU(10, 20), lambda m, t: m(t(zeros(10)))),
  (lambda lib: lib.RNN(10, 20), lambda m, t: m(t(zeros(10)))),
  (lambda lib: lib.RNN(10, 20), lambda m, t: m(t(zeros(5, 10)), t(zeros(1, 1, 20)))),
  (lambda lib: lib.GRU(10, 20), lambda m, t: m(t(zeros(5, 3, 10)), t(zeros(3, 20)))),
  (lambda lib: lib.GRU(10, 20, proj_size=5), None),
  (lambda lib: lib.RNN(10, 20, proj_size=5), None),
  (lambda lib: lib.RNN(10, 20, nonlinearity="gelu"), None),
  (lambda lib: lib.LSTM(10, 20, proj_size=20), None),
  (lambda lib: lib.LSTM(10, 20, proj_size=-1), None),
  (lambda lib: lib.LSTM(10, 20, dropout=1.5), None),
  (lambda lib: lib.LSTM(10, 0), None),
  (lambda lib: lib.LSTM(0, 20), None),
  (lambda lib: lib.LSTM(10, 20, 0), None),
  (lambda lib: lib.LSTM(10.0, 20), None),
  (lambda lib: lib.LSTM(10, 20, bias=1), None),
  (lambda lib: lib.LSTM(10, 20, batch_first=None), None),
  (lambda lib: lib.RNNCell(10, 20), lambda m, t: m(t(zeros(3, 7)))),
  (lambda lib: lib.GRUCell(10, 20), lambda m, t: m(t(zeros(3, 10)), t(zeros(2, 20)))),
  (lambda lib: lib.GRUCell(10, 20), lambda m, t: m(t(zeros(3, 10)), t(zeros(3, 19)))),
  (lambda lib: lib.LSTMCell(10, 20), lambda m, t: m(t(zeros(3, 10)), (t(zeros(3, 20)), t(zeros(2, 20))))),
  (lambda lib: lib.LSTMCell(10, 20), lambda m, t: m(t(zeros(3, 10)), (t(zeros(3, 20)), t(zeros(3, 21))))),
  (lambda lib: lib.LSTMCell(10, 20), lambda m, t: m(t(zeros(1, 3, 10)))),
  (lambda lib: lib.LSTMCell(10, 20), lambda m, t: m(t(zeros(3, 10)), (t(zeros(3, 20)), t(zeros(1, 3, 20))))),
  (lambda lib: lib.RNNCell(10, 20), lambda m, t: m(t(zeros(3, 10)), t(zeros(1, 3, 20)))),
  (lambda lib: lib.GRUCell(10, 20), lambda m, t: m(t(zeros(2, 3, 10)))),
])
def test_errors_match_torch(make, call):
  raises_like_torch(make, call or (lambda m, t: None))


def test_input_dtype_must_match_the_weights():
  with pytest.raises(ValueError, match=re.escape("RNN input dtype (lazygrad.float64) does not match weight dtype "
                                                 "(lazygrad.float32). Convert input: input.to(lazygrad.float32), or "
                                                 "convert model: model.to(lazygrad.float64)")):
    nn.GRU(10, 20)(lg.zeros(5, 3, 10, dtype=lg.float64))


def test_packed_input_must_have_input_size_features():
  packed = rnn_utils.pack_padded_sequence(lg.zeros(5, 3, 7), [5, 4, 2])
  with pytest.raises(RuntimeError, match=re.escape("input.size(-1) must be equal to input_size. Expected 10, got 7")):
    nn.LSTM(10, 20)(packed)
  with pytest.raises(RuntimeError, match=re.escape("Expected hidden size (1, 3, 20), got [1, 2, 20]")):
    nn.GRU(7, 20)(packed, lg.zeros(1, 2, 20))


# ---------------------------------------------------------------- kernels built for a new sequence length

@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_a_new_sequence_length_builds_no_kernel_from_the_third(fresh, name):
  """The second length seen rebuilds a few kernels once with their offsets as arguments; from then on a new length
  builds nothing at these sizes: the output's stack and the gradients of the per-step slices are one kernel per time
  step whatever T is, and W_hh's gradient is one product over all T*B rows (a sum of one product per step was a
  kernel whose structure changed with T). Big products whose rows change with T are built for each length, as any
  big product is for a new shape (see codegen/dynamic.py)."""
  ours, theirs = pair(name, FEATURES, HIDDEN)
  def run(steps):
    compare(ours, theirs, data(steps, B, FEATURES))
    for p in ours.parameters(): p.grad = None
    theirs.zero_grad()
  run(7)
  run(11)
  before = lg.compile_count()
  run(13)
  built = lg.compile_count() - before
  assert built == 0, f"{built} kernels built for a third length"


def test_a_jitted_train_step_at_a_new_length_builds_no_kernel_from_the_third(fresh):
  """A 2-layer batch-first LSTM's jitted train step (a head, MSE, Adam), three steps per length against torch's: the
  second length builds the kernels whose sizes or strides change with T once more, sized by arguments and still
  vector code (families, see codegen/dynamic.py); every later length builds nothing. (The sizes keep every length on
  one side of the scheduler's thresholds: a product's right operand copied to panels from m*n*k = 2**18, a value
  recomputed by its readers below 1024 elements; across one, kernels are of another structure.)"""
  hidden, batch = 16, 16
  families = with_families(fresh)
  lg.manual_seed(0)
  lstm, head = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True), nn.Linear(hidden, 1)
  params = [*lstm.parameters(), *head.parameters()]
  opt = lg.optim.Adam(params, lr=1e-2)
  tlstm, thead = torch.nn.LSTM(hidden, hidden, num_layers=2, batch_first=True), torch.nn.Linear(hidden, 1)
  tparams = [*tlstm.parameters(), *thead.parameters()]
  with torch.no_grad():
    for p, q in zip(tparams, params): p.copy_(torch.from_numpy(q.numpy()))
  topt = torch.optim.Adam(tparams, lr=1e-2)

  @lg.jit
  def step(x, y):
    loss = ((head(lstm(x)[0]) - y) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    return loss

  rng = np.random.default_rng(0)
  built = []
  for steps in (12, 10, 8, 6):
    before = lg.compile_count()
    for _ in range(3):
      x, y = rng.standard_normal((batch, steps, hidden), dtype=np.float32), rng.standard_normal((batch, steps, 1), dtype=np.float32)
      loss = step(lg.Tensor(x), lg.Tensor(y)).item()
      tloss = ((thead(tlstm(torch.from_numpy(x))[0]) - torch.from_numpy(y)) ** 2).mean()
      topt.zero_grad(); tloss.backward(); topt.step()
      assert abs(loss - tloss.item()) <= 1e-4 * abs(tloss.item()) + 1e-5, (steps, loss, tloss.item())
    built.append(lg.compile_count() - before)
  for p, q in zip(tparams, params): np.testing.assert_allclose(q.numpy(), p.detach().numpy(), rtol=1e-3, atol=1e-4)
  if families: assert built[2:] == [0, 0], built  # Triton builds a kernel for each new size
