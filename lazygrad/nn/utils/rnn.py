"""torch.nn.utils.rnn: packed and padded batches of variable-length sequences.

Lengths are always known on the host. Packing and unpacking are each one gather whose index NumPy computes from the
lengths, so a batch of 100-step sequences is one graph node, not one per time step, and a new set of lengths changes
the index's values, never the kernel. The index tensors this module makes remember their host copies, so rebuilding a
PackedSequence from another's fields (as an RNN builds its output) reads nothing back from the device.
"""
from __future__ import annotations
import weakref
from typing import Iterable, NamedTuple
import numpy as np
from lazygrad.tensor import Tensor, stack

__all__ = ["PackedSequence", "invert_permutation", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "unpad_sequence", "pack_sequence", "unpack_sequence"]

# ---------------------------------------------------------------- host copies of the index tensors made here

# id(tensor) -> (a weak reference to it, its values): the entry goes when the tensor does, so an id is never reused
# while its entry stands
_host_copies: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def _remember(t: Tensor, values: np.ndarray) -> Tensor:
  """Keep a tensor's host copy for _on_host, for as long as the tensor lives."""
  key = id(t)
  _host_copies[key] = (weakref.ref(t, lambda _: _host_copies.pop(key, None)), values)
  return t


def _to_device(values: np.ndarray, device: str) -> Tensor:
  """An int64 tensor of host values that remembers them."""
  values = np.ascontiguousarray(values, dtype=np.int64)
  return _remember(Tensor(values, device=device), values)


def _known(values, device: str) -> Tensor:
  """An int64 tensor of these values (a tensor as it is, a list or array uploaded), its host copy remembered."""
  host = _on_host(values).astype(np.int64).reshape(-1)
  return _remember(values, host) if isinstance(values, Tensor) else _to_device(host, device)


def _on_host(values) -> np.ndarray:
  """The values as a NumPy array: a tensor this module has seen answers from its host copy; any other is read back."""
  if isinstance(values, Tensor):
    known = _host_copies.get(id(values))
    if known is not None and known[0]() is values: return known[1]
    return values.numpy()
  return np.asarray(values)


def _take_rows(rows: Tensor, index: np.ndarray, fill=0.0) -> Tensor:
  """out[i] = rows[index[i]], or `fill` where index[i] is -1: one gather over the leading dim, its index built on the
  host. The index is ours and in range, so the gather skips the range check that would read it back from the device."""
  missing = index < 0
  taken = rows._take_along_front(Tensor(np.where(missing, 0, index).astype(np.int64), device=rows.device))
  if not missing.any(): return taken
  # the fill is a select after the gather, which fuses with it (a gather from rows padded with a fill row does not)
  keep = Tensor(~missing, device=rows.device).reshape(index.shape + (1,) * (rows.ndim - 1))
  return keep.where(taken, Tensor.full((), fill, dtype=rows.dtype, device=rows.device))


def _batch_sizes_of(sorted_lengths: np.ndarray) -> np.ndarray:
  """batch_sizes[t] = how many sequences are longer than t."""
  return (sorted_lengths[None, :] > np.arange(int(sorted_lengths[0]))[:, None]).sum(1).astype(np.int64)


# ---------------------------------------------------------------- PackedSequence


class _PackedSequenceFields(NamedTuple):
  data: Tensor
  batch_sizes: Tensor
  sorted_indices: Tensor | None
  unsorted_indices: Tensor | None


class PackedSequence(_PackedSequenceFields):
  """The data and batch_sizes of a packed batch, as torch's namedtuple: `data, batch_sizes, sorted_indices,
  unsorted_indices = packed` unpacks it. `batch_sizes` is an int64 Tensor; `_batch_sizes_np` is its host copy, which
  is what every function here reads. Made by pack_padded_sequence and pack_sequence; an RNN builds its output as
  PackedSequence(output, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)."""
  _batch_sizes_np: np.ndarray

  def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
    if batch_sizes is None:  # PackedSequence((data, batch_sizes), ...), as torch allows
      if not (isinstance(data, (list, tuple)) and len(data) == 2):
        raise AssertionError("Expected data to be a list or tuple of length 2")
      data, batch_sizes = data
    # each index tensor's host copy is remembered, so packings rebuilt from this one's fields read nothing back
    batch_sizes = _known(batch_sizes, data.device)
    if sorted_indices is not None: sorted_indices = _known(sorted_indices, data.device)
    if unsorted_indices is None: unsorted_indices = invert_permutation(sorted_indices)
    else: unsorted_indices = _known(unsorted_indices, data.device)
    self = super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)
    self._batch_sizes_np = _on_host(batch_sizes)
    return self

  @classmethod
  def _make(cls, iterable):  # namedtuple's _replace builds through _make: keep the host copy there too
    return cls(*iterable)

  def _with_data(self, data: Tensor) -> PackedSequence:
    """The same packing over other data (self when the data is unchanged); the indices follow the data's device."""
    if data is self.data: return self
    def moved(t): return t if t is None or t.device == data.device else _to_device(_on_host(t), data.device)
    return type(self)(data, self.batch_sizes, moved(self.sorted_indices), moved(self.unsorted_indices))

  def to(self, *args, **kwargs) -> PackedSequence:
    """Tensor.to on the data; batch_sizes stays as it is (torch keeps it on the CPU)."""
    return self._with_data(self.data.to(*args, **kwargs))

  def float(self) -> PackedSequence: return self._with_data(self.data.float())
  def double(self) -> PackedSequence: return self._with_data(self.data.double())
  def half(self) -> PackedSequence: return self._with_data(self.data.half())
  def long(self) -> PackedSequence: return self._with_data(self.data.long())
  def int(self) -> PackedSequence: return self._with_data(self.data.int())


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
  """The inverse of a 1-D permutation (unsorted_indices from sorted_indices), computed on the host."""
  if permutation is None: return None
  order = _on_host(permutation).astype(np.int64)
  inverse = np.empty_like(order)
  inverse[order] = np.arange(order.size)
  return _to_device(inverse, permutation.device)


# ---------------------------------------------------------------- padding


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
  """Stack (L_i, *) sequences into (T, B, *) (or (B, T, *)), padded with padding_value to the longest length T."""
  if isinstance(sequences, Tensor): sequences = sequences.unbind(0)
  elif not isinstance(sequences, Iterable):
    raise RuntimeError(f"pad_sequence: Expected iterable for input sequences, but got arg of type: {type(sequences)}")
  sequences = tuple(sequences)
  if not sequences: raise RuntimeError("received an empty list of sequences")
  if padding_side not in ("left", "right"):
    raise RuntimeError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
  first = sequences[0]
  for s in sequences:
    if not isinstance(s, Tensor): raise TypeError(f"pad_sequence: expected Tensors, got {type(s).__name__}")
    if s.ndim == 0 or s.shape[1:] != first.shape[1:]:
      raise RuntimeError(f"pad_sequence: every sequence must be (length, *{list(first.shape[1:])}) like the first, "
                         f"got shapes {[tuple(x.shape) for x in sequences]}")
  longest = max(s.shape[0] for s in sequences)
  trailing = (0, 0) * (first.ndim - 1)
  # torch writes every sequence into an output of the first one's dtype
  padded = [s.cast(first.dtype).pad(trailing + ((0, longest - s.shape[0]) if padding_side == "right" else
                                                (longest - s.shape[0], 0)), value=padding_value) for s in sequences]
  return stack(padded, 0 if batch_first else 1)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list[Tensor]:
  """The B sequences of a padded (T, B, *) (or (B, T, *)) batch, each cut to its length."""
  lengths = _on_host(lengths).reshape(-1)
  batch = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
  return [batch[b, :int(n)] for b, n in zip(range(batch.shape[0]), lengths, strict=True)]


# ---------------------------------------------------------------- packing


def _lengths_on_host(lengths) -> np.ndarray:
  """The lengths as a 1-D int64 NumPy array, from a list, tuple, NumPy array or Tensor (torch wants them on the CPU)."""
  values = _on_host(lengths).astype(np.int64)
  if values.ndim != 1:
    raise RuntimeError(f"'lengths' argument should be a 1D CPU int64 tensor, but got {values.ndim}D cpu Long tensor")
  return values


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
  """Pack a padded (T, B, *) (or (B, T, *)) batch: the data is time step 0 of every sequence, then step 1 of those
  longer than 1, and so on, with the sequences in decreasing order of length."""
  lengths = _lengths_on_host(lengths)
  if input.ndim < 2:
    raise RuntimeError(f"pack_padded_sequence: expected an input of at least 2 dims (time and batch), "
                       f"got shape {input.shape}")
  if input.numel() == 0: raise RuntimeError("Cannot pack empty tensors.")
  steps, batch = (input.shape[1], input.shape[0]) if batch_first else input.shape[:2]
  if lengths.shape[0] != batch:
    raise RuntimeError(f"Expected `len(lengths)` to be equal to batch_size, but got {lengths.shape[0]} "
                       f"(batch_size={batch})")
  order = None if enforce_sorted else np.argsort(-lengths, kind="stable")  # ties keep their order
  sorted_lengths = lengths if order is None else lengths[order]
  if sorted_lengths[-1] <= 0:
    raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' that is <= 0")
  if (np.diff(sorted_lengths) > 0).any():
    raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You can pass "
                       "`enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to sidestep this "
                       "requirement if you do not need ONNX exportability.")
  if sorted_lengths[0] > steps:  # torch reads past the input here; we refuse
    raise RuntimeError(f"pack_padded_sequence: a length of {int(sorted_lengths[0])} is longer than the input's {steps} "
                       f"time steps (input shape {input.shape}, batch_first={batch_first})")
  # packed row (t, k) for every step t of the k-th longest sequence, t major: where it sits in the flattened input
  step, rank = np.nonzero(sorted_lengths[None, :] > np.arange(int(sorted_lengths[0]))[:, None])
  column = rank if order is None else order[rank]
  flat = column * steps + step if batch_first else step * batch + column
  data = _take_rows(input.reshape((steps * batch,) + input.shape[2:]), flat)
  sorted_indices = None if order is None else _to_device(order, input.device)
  return PackedSequence(data, _batch_sizes_of(sorted_lengths), sorted_indices, None)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
  """The padded (T, B, *) (or (B, T, *)) batch of a PackedSequence, in the order the batch had before packing, and
  its lengths (an int64 Tensor)."""
  batch_sizes = sequence._batch_sizes_np
  steps = batch_sizes.shape[0]
  if total_length is not None:
    if total_length < steps:
      raise ValueError("Expected total_length to be at least the length of the longest sequence in input, but got "
                       f"total_length={total_length} and max sequence length being {steps}")
    steps = total_length
  batch = int(batch_sizes[0])
  sorted_lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(1)
  rank = np.arange(batch) if sequence.unsorted_indices is None else _on_host(sequence.unsorted_indices).astype(np.int64)
  # padded[t, b] is packed row offsets[t] + rank[b] while t is within that sequence's length, else padding
  offsets = np.zeros(steps, np.int64)
  offsets[1:batch_sizes.shape[0]] = np.cumsum(batch_sizes)[:-1]
  t = np.arange(steps)[:, None]
  index = np.where(t < sorted_lengths[rank][None, :], offsets[:, None] + rank[None, :], -1)
  if batch_first: index = index.T
  rows = _take_rows(sequence.data, index.reshape(-1), padding_value)
  padded = rows.reshape(index.shape + sequence.data.shape[1:])
  return padded, _to_device(sorted_lengths[rank], sequence.data.device)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
  """Pack a list of (L_i, *) sequences: pad_sequence, then pack_padded_sequence."""
  sequences = list(sequences)
  lengths = [s.shape[0] for s in sequences]
  return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences: PackedSequence) -> list[Tensor]:
  """The list of sequences a PackedSequence holds, in their original order."""
  padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
  return unpad_sequence(padded, lengths, batch_first=True)
