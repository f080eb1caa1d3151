"""Datasets and loaders, as torch.utils.data: a Dataset gives samples on the host (NumPy arrays, numbers); DataLoader
batches them, stacking each field on the host so a batch costs one host-to-device copy per field.

Only lazygrad.tensor and lazygrad.dtype are imported (and lazygrad.distributed, for DistributedSampler's default rank
and world size): this room makes Tensors, it does not compute with them.
"""
from __future__ import annotations
import importlib
import math
from collections.abc import Mapping, Sequence
import numpy as np
from lazygrad.tensor import Tensor, ShapeError
from lazygrad.dtype import DType, bfloat16

# the module itself (its global generator), not the name `lazygrad.tensor`, which the package rebinds to Tensor
_tensor_module = importlib.import_module("lazygrad.tensor")

__all__ = ["Dataset", "TensorDataset", "DataLoader", "default_collate", "Sampler", "DistributedSampler", "FashionMNIST"]


def _to_tensor(arr: np.ndarray, dtype: DType | None = None) -> Tensor:
  """One host array -> one Tensor (one copy to the device). `dtype` keeps bfloat16, which is float32 on the host."""
  if dtype is bfloat16: return Tensor(np.asarray(arr, np.float32)).cast(bfloat16)
  return Tensor(arr)


class Dataset:
  """A map-style dataset: `dataset[i]` is the i-th sample, `len(dataset)` their number.

  A subclass may also define `get_batch(indices)` returning a whole batch exactly as `default_collate` would make it
  (or None to decline); DataLoader uses it, when no collate_fn is given, to skip the per-sample loop.
  """

  def __getitem__(self, index): raise NotImplementedError(f"{type(self).__name__} must define __getitem__")
  def __len__(self): raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
  """Samples are rows of the given tensors or arrays (which share their first dimension); `dataset[i]` is a tuple of
  the i-th rows. Tensors are copied to the host once, here, so batching never runs a kernel per sample."""

  def __init__(self, *tensors):
    if not tensors: raise ValueError("TensorDataset: give at least one tensor")
    self.tensors = tensors
    self._dtypes: list[DType] = []
    self._host: list[np.ndarray] = []
    for i, t in enumerate(tensors):
      if isinstance(t, Tensor): arr, dtype = t.numpy(), t.dtype
      elif isinstance(t, np.ndarray): arr, dtype = t, None
      else: raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}; expected a Tensor or a NumPy array")
      if arr.ndim == 0: raise ShapeError(f"TensorDataset: argument {i} is 0-d; each needs a first dimension to index")
      self._host.append(arr)
      self._dtypes.append(dtype)
    sizes = [a.shape[0] for a in self._host]
    if len(set(sizes)) > 1:
      raise ShapeError(f"TensorDataset: tensors differ in their first dimension: {', '.join(str(a.shape) for a in self._host)}")

  def __len__(self): return self._host[0].shape[0]

  def __getitem__(self, index): return tuple(a[index] for a in self._host)

  def get_batch(self, indices):
    return [_to_tensor(a[indices], d) for a, d in zip(self._host, self._dtypes)]


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
  shape = arrays[0].shape
  for i, a in enumerate(arrays):
    if a.shape != shape:
      raise ShapeError(f"default_collate: sample 0 has shape {shape} but sample {i} has shape {a.shape}; "
                       "give DataLoader a collate_fn that pads or keeps them apart")
  return np.stack(arrays)


def default_collate(batch):
  """Turn a list of samples into a batch, as torch's default_collate: arrays, Tensors and numbers become one stacked
  Tensor per field (stacked on the host); dicts, tuples and lists are collated field by field; strings stay a list."""
  if not isinstance(batch, Sequence) or len(batch) == 0: raise ValueError("default_collate: expected a non-empty list of samples")
  elem = batch[0]
  if isinstance(elem, Tensor):
    if not all(isinstance(b, Tensor) and b.dtype is elem.dtype for b in batch):
      raise TypeError(f"default_collate: sample 0 is a {elem.dtype.name} Tensor, but not every sample is")
    return _to_tensor(_stack([b.numpy() for b in batch]), elem.dtype)
  if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_, np.bytes_)):
    if elem.dtype.kind not in "biuf":
      raise TypeError(f"default_collate: NumPy dtype {elem.dtype} cannot become a Tensor")
    return Tensor(_stack([np.asarray(b) for b in batch]))
  if isinstance(elem, bool): return Tensor(np.array(batch, dtype=np.bool_))
  if isinstance(elem, int):
    arr = np.array(batch)
    return Tensor(arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float64))
  if isinstance(elem, float): return Tensor(np.array(batch, dtype=np.float64))  # torch makes Python floats float64
  if isinstance(elem, (str, bytes)): return list(batch)
  if isinstance(elem, Mapping):
    return {k: default_collate([d[k] for d in batch]) for k in elem}
  if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
    return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
  if isinstance(elem, Sequence):
    if any(len(b) != len(elem) for b in batch):
      raise ShapeError(f"default_collate: samples have different lengths ({', '.join(str(len(b)) for b in batch)})")
    fields = [default_collate(list(s)) for s in zip(*batch)]
    if isinstance(elem, tuple) or type(elem) is list: return fields  # tuples become lists, as in torch
    try: return type(elem)(fields)
    except TypeError: return fields
  raise TypeError(f"default_collate: samples must be Tensors, NumPy arrays, numbers, strings, dicts or lists; got {type(elem).__name__}")


class Sampler:
  """An iterable of dataset indices with a length, as torch.utils.data.Sampler; DataLoader(sampler=...) uses it."""

  def __iter__(self): raise NotImplementedError(f"{type(self).__name__} must define __iter__")
  def __len__(self): raise NotImplementedError(f"{type(self).__name__} must define __len__")


class DistributedSampler(Sampler):
  """Each rank's share of a dataset, as torch's: rank r takes indices r, r + num_replicas, ... of one order that every
  rank draws alike (from seed + epoch: call set_epoch(epoch) each epoch for a new order). Without drop_last the order
  is padded with its own first indices to a multiple of num_replicas (every rank gets as many); with it, the tail is
  dropped instead. The shuffled order comes from NumPy's generator, so it is not torch's permutation for that seed."""

  def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
               seed: int = 0, drop_last: bool = False):
    if num_replicas is None or rank is None:
      import lazygrad.distributed as distributed  # here, not above: the process group's rank and size, nothing more
      group = distributed._world("DistributedSampler (without num_replicas and rank)")
      num_replicas = group.size if num_replicas is None else num_replicas
      rank = group.rank if rank is None else rank
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
      raise ValueError(f"DistributedSampler: num_replicas must be a positive int, got {num_replicas!r}")
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
      raise ValueError(f"DistributedSampler: invalid rank {rank!r}, rank should be in the interval [0, {num_replicas - 1}]")
    self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
    self.shuffle, self.seed, self.drop_last, self.epoch = bool(shuffle), int(seed), bool(drop_last), 0
    n = len(dataset)
    if drop_last and n % self.num_replicas: self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
    else: self.num_samples = math.ceil(n / self.num_replicas)
    self.total_size = self.num_samples * self.num_replicas

  def __iter__(self):
    n = len(self.dataset)
    order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
    if self.drop_last: order = order[:self.total_size]
    elif self.total_size > n: order = np.resize(order, self.total_size)  # repeats the order from its start
    return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

  def __len__(self) -> int: return self.num_samples

  def set_epoch(self, epoch: int) -> None: self.epoch = int(epoch)


def _default_convert(sample):
  """batch_size=None: one sample as it would be inside a batch, without stacking."""
  if isinstance(sample, (np.ndarray, np.generic)) and not isinstance(sample, (np.str_, np.bytes_)) and sample.dtype.kind in "biuf":
    return Tensor(np.asarray(sample))
  if isinstance(sample, Mapping): return {k: _default_convert(v) for k, v in sample.items()}
  if isinstance(sample, tuple) and hasattr(sample, "_fields"): return type(sample)(*(_default_convert(s) for s in sample))
  if isinstance(sample, (list, tuple)): return [_default_convert(s) for s in sample]
  return sample


class DataLoader:
  """Iterate a dataset in batches, as torch.utils.data.DataLoader (in the main process).

  shuffle draws a new order each time the loader is iterated: from `seed` (an int: the sequence of orders is then
  the same on every run) or, when seed is None, from lazygrad's global generator (`lazygrad.manual_seed`).
  batch_size=None yields single samples, converted but not stacked.
  """

  def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool = False, drop_last: bool = False,
               collate_fn=None, seed: int | None = None, num_workers: int = 0, sampler=None):
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0):
      raise ValueError(f"DataLoader: batch_size must be a positive int or None, got {batch_size!r}")
    if num_workers != 0:
      raise NotImplementedError(f"DataLoader: num_workers={num_workers}: lazygrad loads in the main process (num_workers=0); "
                                "give the dataset a get_batch method to make batching fast instead")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
      raise TypeError(f"DataLoader: seed must be an int or None, got {seed!r}")
    try: len(dataset)
    except TypeError: raise TypeError(f"DataLoader: the dataset ({type(dataset).__name__}) must define __len__") from None
    self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, bool(shuffle), bool(drop_last)
    if sampler is not None and shuffle:
      raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle (the sampler decides the order)")
    self.collate_fn, self.seed, self.sampler = collate_fn, seed, sampler
    self._rng = np.random.default_rng(seed) if seed is not None else None

  def __len__(self) -> int:
    n = len(self.dataset) if self.sampler is None else len(self.sampler)
    if self.batch_size is None: return n
    return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

  def _order(self) -> np.ndarray:
    if self.sampler is not None: return np.fromiter(iter(self.sampler), np.int64)
    n = len(self.dataset)
    if not self.shuffle: return np.arange(n)
    rng = self._rng if self._rng is not None else _tensor_module._generator()  # read now: manual_seed replaces it
    return rng.permutation(n)

  def __iter__(self):
    order = self._order()  # drawn when iteration starts, as torch does
    return self._batches(order)

  def _batches(self, order: np.ndarray):
    if self.batch_size is None:
      for i in order:
        sample = self.dataset[int(i)]
        yield self.collate_fn(sample) if self.collate_fn is not None else _default_convert(sample)
      return
    bs = self.batch_size
    for start in range(0, len(order), bs):
      idx = order[start:start + bs]
      if len(idx) < bs and self.drop_last: return
      yield self._fetch(idx)

  def _fetch(self, idx: np.ndarray):
    if self.collate_fn is None:
      get_batch = getattr(self.dataset, "get_batch", None)
      if get_batch is not None:
        batch = get_batch(idx)
        if batch is not None: return batch
      return default_collate([self.dataset[int(i)] for i in idx])
    return self.collate_fn([self.dataset[int(i)] for i in idx])

  def __repr__(self):
    return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})")


from lazygrad.data.datasets import FashionMNIST  # noqa: E402  (it subclasses Dataset, defined above)
