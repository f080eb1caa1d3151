"""nn.utils.rnn (packed and padded sequences) against torch.nn.utils.rnn: values, index tensors, gradients, error
messages, and that packing a long batch stays one gather.

Shapes are small and shared between tests: every distinct kernel costs a compile.
"""
import re

import numpy as np
import pytest
import torch
import torch.nn.utils.rnn as trnn

import lazygrad as lg
import lazygrad.nn as nn
from lazygrad.nn.utils import rnn

RNG = np.random.default_rng(0)
STEPS, BATCH, FEATURES = 4, 3, 2
PADDED = RNG.standard_normal((STEPS, BATCH, FEATURES)).astype(np.float32)  # (T, B, F); its transpose is (B, T, F)
SEQS = [RNG.standard_normal((n, FEATURES)).astype(np.float32) for n in (2, 4, 1)]
LENGTHS = {"sorted": [4, 3, 1], "unsorted": [2, 4, 1], "ties": [3, 1, 3]}


def kernels(fn) -> int:
  before = lg.kernel_count()
  fn()
  return lg.kernel_count() - before


def same(actual, expected, what=""):
  """Equal dtype, shape and values (packing only moves values); None matches None."""
  if expected is None:
    assert actual is None, what
    return
  got, want = actual.numpy(), expected.detach().numpy()
  assert (got.dtype, got.shape) == (want.dtype, want.shape), what
  np.testing.assert_array_equal(got, want, err_msg=what)


def close(actual, expected, what=""):
  np.testing.assert_allclose(actual.numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-6, err_msg=what)


def padded_input(batch_first):
  values = PADDED.transpose(1, 0, 2).copy() if batch_first else PADDED
  return lg.Tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)


def same_packed(ours, theirs):
  same(ours.data, theirs.data, "data")
  same(ours.batch_sizes, theirs.batch_sizes, "batch_sizes")
  np.testing.assert_array_equal(ours._batch_sizes_np, theirs.batch_sizes.numpy())
  same(ours.sorted_indices, theirs.sorted_indices, "sorted_indices")
  same(ours.unsorted_indices, theirs.unsorted_indices, "unsorted_indices")


# ---------------------------------------------------------------- packing and unpacking

@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("case", ["sorted", "unsorted", "ties"])
def test_pack_padded_sequence_matches_torch(case, batch_first):
  x, tx = padded_input(batch_first)
  lengths = LENGTHS[case]
  packed = rnn.pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=case == "sorted")
  theirs = trnn.pack_padded_sequence(tx, lengths, batch_first=batch_first, enforce_sorted=case == "sorted")
  same_packed(packed, theirs)
  g = RNG.standard_normal(theirs.data.shape).astype(np.float32)
  packed.data.backward(lg.Tensor(g))
  theirs.data.backward(torch.tensor(g))
  close(x.grad, tx.grad, "input grad")  # zero where the input is padding


@pytest.mark.parametrize("kind", [list, tuple, np.array, lg.Tensor, torch.tensor])
def test_lengths_of_every_kind(kind):
  x, tx = padded_input(False)
  lengths = LENGTHS["unsorted"]
  same_packed(rnn.pack_padded_sequence(x, kind(lengths), enforce_sorted=False),
              trnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=False))


@pytest.mark.parametrize("batch_first, total_length, padding_value", [(False, None, 0.0), (True, 6, -1.5)])
@pytest.mark.parametrize("case", ["sorted", "unsorted"])
def test_pack_then_pad_round_trip_matches_torch(case, batch_first, total_length, padding_value):
  x, tx = padded_input(batch_first)
  lengths, enforce = LENGTHS[case], case == "sorted"
  out, out_lengths = rnn.pad_packed_sequence(rnn.pack_padded_sequence(x, lengths, batch_first, enforce), batch_first,
                                             padding_value, total_length)
  want, want_lengths = trnn.pad_packed_sequence(trnn.pack_padded_sequence(tx, lengths, batch_first, enforce),
                                                batch_first, padding_value, total_length)
  same(out, want, "padded")
  same(out_lengths, want_lengths, "lengths")
  assert out_lengths.dtype == lg.int64
  g = RNG.standard_normal(want.shape).astype(np.float32)
  out.backward(lg.Tensor(g))
  want.backward(torch.tensor(g))
  close(x.grad, tx.grad, "input grad")


def test_pad_packed_sequence_grad_reaches_packed_data():
  data = RNG.standard_normal((6, FEATURES)).astype(np.float32)  # batch_sizes [3, 2, 1]: lengths 3, 2, 1
  ours, theirs = lg.Tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
  out, _ = rnn.pad_packed_sequence(rnn.PackedSequence(ours, [3, 2, 1], [1, 0, 2]), padding_value=2.0)
  want, _ = trnn.pad_packed_sequence(trnn.PackedSequence(theirs, torch.tensor([3, 2, 1]), torch.tensor([1, 0, 2])),
                                     padding_value=2.0)
  same(out, want, "padded")
  g = RNG.standard_normal(want.shape).astype(np.float32)
  out.backward(lg.Tensor(g))
  want.backward(torch.tensor(g))
  close(ours.grad, theirs.grad, "data grad")


def test_pad_packed_sequence_keeps_integer_data():
  data, batch_sizes = np.arange(6), [3, 2, 1]
  out, _ = rnn.pad_packed_sequence(rnn.PackedSequence((lg.Tensor(data), batch_sizes)), padding_value=1.7)
  want, _ = trnn.pad_packed_sequence(trnn.PackedSequence((torch.tensor(data), torch.tensor(batch_sizes))),
                                     padding_value=1.7)
  same(out, want)


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_sequence_and_unpack_sequence_match_torch(enforce_sorted):
  seqs = sorted(SEQS, key=len, reverse=True) if enforce_sorted else SEQS
  ours = [lg.Tensor(s, requires_grad=True) for s in seqs]
  theirs = [torch.tensor(s, requires_grad=True) for s in seqs]
  packed = rnn.pack_sequence(ours, enforce_sorted)
  want = trnn.pack_sequence(theirs, enforce_sorted)
  same_packed(packed, want)
  unpacked, t_unpacked = rnn.unpack_sequence(packed), trnn.unpack_sequence(want)
  assert len(unpacked) == len(t_unpacked)
  for k, (a, b) in enumerate(zip(unpacked, t_unpacked)): same(a, b, f"sequence {k}")
  loss = sum(((u * (k + 1)) ** 2).sum() for k, u in enumerate(unpacked))
  t_loss = sum(((u * (k + 1)) ** 2).sum() for k, u in enumerate(t_unpacked))
  loss.backward()
  t_loss.backward()
  for k, (a, b) in enumerate(zip(ours, theirs)): close(a.grad, b.grad, f"grad of sequence {k}")


# ---------------------------------------------------------------- padding

@pytest.mark.parametrize("batch_first, padding_side, padding_value", [
  (False, "right", 0.0), (True, "right", -1.0), (False, "left", 0.5), (True, "left", 0.0)])
def test_pad_sequence_matches_torch(batch_first, padding_side, padding_value):
  ours = [lg.Tensor(s, requires_grad=True) for s in SEQS]
  theirs = [torch.tensor(s, requires_grad=True) for s in SEQS]
  out = rnn.pad_sequence(ours, batch_first, padding_value, padding_side)
  want = trnn.pad_sequence(theirs, batch_first, padding_value, padding_side)
  same(out, want, "padded")
  g = RNG.standard_normal(want.shape).astype(np.float32)
  out.backward(lg.Tensor(g))
  want.backward(torch.tensor(g))
  for k, (a, b) in enumerate(zip(ours, theirs)): close(a.grad, b.grad, f"grad of sequence {k}")


def test_pad_sequence_of_1d_sequences_takes_the_first_dtype():
  seqs = [np.array([1, 2, 3]), np.array([4])]
  same(rnn.pad_sequence([lg.Tensor(s) for s in seqs], padding_value=7.9),
       trnn.pad_sequence([torch.tensor(s) for s in seqs], padding_value=7.9))
  same(rnn.pad_sequence(lg.Tensor(PADDED), batch_first=True), trnn.pad_sequence(torch.tensor(PADDED), batch_first=True))


@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_sequence_matches_torch(batch_first):
  x, tx = padded_input(batch_first)
  lengths = LENGTHS["unsorted"]
  ours = rnn.unpad_sequence(x, lg.Tensor(lengths), batch_first)
  theirs = trnn.unpad_sequence(tx.clone(), torch.tensor(lengths), batch_first)  # torch transposes its input in place
  for k, (a, b) in enumerate(zip(ours, theirs)): same(a, b, f"sequence {k}")
  sum((u * (k + 1)).sum() for k, u in enumerate(ours)).backward()
  sum((u * (k + 1)).sum() for k, u in enumerate(theirs)).backward()
  close(x.grad, tx.grad, "padded grad")


def test_invert_permutation_matches_torch():
  perm = [2, 0, 3, 1]
  same(rnn.invert_permutation(lg.Tensor(perm)), trnn.invert_permutation(torch.tensor(perm)))
  assert rnn.invert_permutation(None) is None


# ---------------------------------------------------------------- PackedSequence

def test_packed_sequence_unpacks_like_a_namedtuple_and_keeps_its_lengths_on_the_host(monkeypatch):
  packed = rnn.pack_padded_sequence(lg.Tensor(PADDED), LENGTHS["unsorted"], enforce_sorted=False)
  data, batch_sizes, sorted_indices, unsorted_indices = packed
  assert data is packed.data and batch_sizes is packed.batch_sizes and sorted_indices is packed.sorted_indices
  assert unsorted_indices is packed.unsorted_indices and len(packed) == 4
  assert packed._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
  assert repr(packed).startswith("PackedSequence(data=")
  want, _ = trnn.pad_packed_sequence(trnn.pack_padded_sequence(torch.tensor(PADDED), LENGTHS["unsorted"],
                                                               enforce_sorted=False))
  # an RNN's output rebuilt from the input's fields, and unpacked: nothing is read back from the device
  def no_reads(self): raise AssertionError("read a tensor back from the device")
  with monkeypatch.context() as m:
    m.setattr(lg.Tensor, "numpy", no_reads)
    rebuilt = [rnn.PackedSequence(data * 2, batch_sizes, sorted_indices, unsorted_indices),
               rnn.PackedSequence(data * 2, batch_sizes, sorted_indices), packed._replace(data=data * 2)]
    outs = [rnn.pad_packed_sequence(p) for p in rebuilt] + [(rnn.unpack_sequence(rebuilt[0]), None)]
  for out, lengths in outs[:3]:
    same(out, want * 2)
    np.testing.assert_array_equal(lengths.numpy(), LENGTHS["unsorted"])
  for k, seq in enumerate(outs[3][0]): same(seq, want[:LENGTHS["unsorted"][k], k] * 2)


def test_packed_sequence_to_changes_the_data_only():
  packed = rnn.pack_sequence([lg.Tensor(s) for s in SEQS], enforce_sorted=False)
  assert packed.to(lg.float32) is packed and packed.float() is packed
  doubled = packed.double()
  assert doubled.data.dtype == lg.float64 and doubled.batch_sizes is packed.batch_sizes
  assert doubled.sorted_indices is packed.sorted_indices and doubled.unsorted_indices is packed.unsorted_indices
  np.testing.assert_array_equal(doubled.data.numpy(), packed.data.numpy().astype(np.float64))


def test_nn_utils_rnn_is_reachable_from_nn():
  assert nn.utils.rnn.pad_sequence is rnn.pad_sequence
  assert set(rnn.__all__) == set(trnn.__all__)


# ---------------------------------------------------------------- errors, as torch words them

UNSORTED = ("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
            "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this requirement if you "
            "do not need ONNX exportability.")
NOT_POSITIVE = "Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0"


@pytest.mark.parametrize("call, error, message", [
  (lambda m, x: m.pack_padded_sequence(x, [2, 4, 1]), RuntimeError, UNSORTED),
  (lambda m, x: m.pack_padded_sequence(x, [3, 0, 1]), RuntimeError, UNSORTED),
  (lambda m, x: m.pack_padded_sequence(x, [1, 2, 0]), RuntimeError, NOT_POSITIVE),
  (lambda m, x: m.pack_padded_sequence(x, [3, 0, 2], enforce_sorted=False), RuntimeError, NOT_POSITIVE),
  (lambda m, x: m.pack_padded_sequence(x, [3, 2]), RuntimeError,
   "Expected `len(lengths)` to be equal to batch_size, but got 2 (batch_size=3)"),
  (lambda m, x: m.pack_padded_sequence(x, [[3, 2, 1]]), RuntimeError,
   "'lengths' argument should be a 1D CPU int64 tensor, but got 2D cpu Long tensor"),
  (lambda m, x: m.pack_padded_sequence(x[:, :0], []), RuntimeError, "Cannot pack empty tensors."),
  (lambda m, x: m.pad_packed_sequence(m.pack_padded_sequence(x, [4, 2, 1]), total_length=3), ValueError,
   "Expected total_length to be at least the length of the longest sequence in input, but got total_length=3 and "
   "max sequence length being 4"),
  (lambda m, x: m.pack_sequence([x[:2, 0], x[:, 0]]), RuntimeError, UNSORTED),
  (lambda m, x: m.pad_sequence([]), RuntimeError, "received an empty list of sequences"),
  (lambda m, x: m.pack_sequence([]), RuntimeError, "received an empty list of sequences"),
  (lambda m, x: m.pad_sequence([x[:, 0]], padding_side="middle"), RuntimeError,
   "Expected padding_side to be one of left or right, but got middle."),
  (lambda m, x: m.pad_sequence(5), RuntimeError,
   "pad_sequence: Expected iterable for input sequences, but got arg of type: <class 'int'>"),
], ids=["unsorted", "unsorted-with-zero", "zero-last", "zero-unsorted", "count", "2d-lengths", "empty",
        "total-length", "pack-sequence-unsorted", "pad-empty", "pack-empty", "padding-side", "not-iterable"])
def test_errors_match_torch(call, error, message):
  for module, x in ((rnn, lg.Tensor(PADDED)), (trnn, torch.tensor(PADDED))):  # torch says it in the same words
    with pytest.raises(error, match=re.escape(message)):
      call(module, x)


def test_unpad_sequence_wants_a_length_per_sequence():
  for module, tensor in ((rnn, lg.Tensor), (trnn, torch.tensor)):
    with pytest.raises(ValueError, match=re.escape("zip() argument 2 is shorter than argument 1")):
      module.unpad_sequence(tensor(PADDED), tensor([4, 2]))


def test_lengths_past_the_input_are_refused():
  with pytest.raises(RuntimeError, match=re.escape("a length of 5 is longer than the input's 4 time steps")):
    rnn.pack_padded_sequence(lg.Tensor(PADDED), [5, 2, 1])


def test_mismatched_sequences_name_their_shapes():
  with pytest.raises(RuntimeError, match=re.escape("got shapes [(2, 2), (3, 1)]")):
    rnn.pad_sequence([lg.Tensor(SEQS[0]), lg.ones(3, 1)])


# ---------------------------------------------------------------- long sequences stay one gather

def test_packing_100_steps_is_one_gather_each_way():
  steps, lengths = 100, [100, 57, 3]
  values = RNG.standard_normal((steps, BATCH, FEATURES)).astype(np.float32)
  x, tx = lg.Tensor(values, requires_grad=True).realize(), torch.tensor(values, requires_grad=True)
  packed = rnn.pack_padded_sequence(x, lengths)
  assert kernels(packed.data.realize) == 1
  out, _ = rnn.pad_packed_sequence(packed, batch_first=True, padding_value=-1.0)
  assert kernels(out.realize) == 1
  want, _ = trnn.pad_packed_sequence(trnn.pack_padded_sequence(tx, lengths), True, -1.0)
  same(out, want)
  g = RNG.standard_normal(want.shape).astype(np.float32)
  out.backward(lg.Tensor(g))
  want.backward(torch.tensor(g))
  assert kernels(x.grad.realize) <= 3  # each gather's gradient, and no kernel per time step
  close(x.grad, tx.grad)
