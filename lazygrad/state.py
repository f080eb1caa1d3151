"""State dicts on disk: safetensors (`save`, `load`, `load_metadata`) written from the format's specification, and
`load_torch` for PyTorch's zip checkpoints (torch.save since 1.6), read without importing torch or running pickled code.

Only lazygrad.tensor and lazygrad.dtype are imported (and helpers, for files written whole): this room knows tensors,
not how they are computed.
"""
from __future__ import annotations
import io
import json
import math
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from typing import Mapping
import numpy as np
from lazygrad.tensor import Tensor
from lazygrad.helpers import atomic_write
from lazygrad.dtype import DType, to_dtype, bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64

__all__ = ["save", "load", "load_metadata", "load_torch"]

# ---- bfloat16: lazygrad holds it on the host as float32; on disk it is the top half of the float32 bits


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
  """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even; NaN stays a (quiet) NaN."""
  x = np.asarray(x, dtype=np.float32)
  u = x.view(np.uint32)
  bits = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
  return np.where(np.isnan(x), np.uint16(0x7FC0) | ((u >> np.uint32(16)).astype(np.uint16) & np.uint16(0x8000)), bits)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
  """bfloat16 bit patterns (uint16) -> float32, exactly."""
  return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def _dtype_of(t, what: str) -> DType:
  """The lazygrad dtype of a tensor or NumPy array; anything else raises TypeError."""
  if isinstance(t, Tensor): return t.dtype
  if isinstance(t, np.ndarray):
    try: return to_dtype(t.dtype)
    except TypeError: raise TypeError(f"{what}: NumPy dtype {t.dtype} has no lazygrad dtype") from None
  raise TypeError(f"{what}: expected a lazygrad Tensor or a NumPy array, got {type(t).__name__}")


def _host_array(t, what: str) -> tuple[np.ndarray, DType]:
  """A tensor (or NumPy array) as (host array in its storage dtype, lazygrad dtype); bfloat16 comes back as uint16 bits."""
  dtype = _dtype_of(t, what)
  arr = t.realize().numpy() if isinstance(t, Tensor) else t
  if dtype is bfloat16: arr = to_bf16_bits(arr)
  return np.ascontiguousarray(arr).reshape(arr.shape), dtype  # (ascontiguousarray makes 0-d arrays 1-d)


def _make_tensor(arr: np.ndarray, dtype: DType, device) -> Tensor:
  """A Tensor from a host array in storage form (bfloat16 as uint16 bits, any byte order): one copy to the device."""
  if dtype is bfloat16: return Tensor(from_bf16_bits(arr), device=device).cast(bfloat16)
  if dtype is bool_ and arr.dtype != np.bool_: arr = arr != 0  # a byte other than 0/1 is still a well-defined bool
  if not arr.dtype.isnative: arr = arr.astype(arr.dtype.newbyteorder("="))
  return Tensor(arr, device=device)


# ---- safetensors
# File: u64 little-endian N | N bytes of JSON (padded with spaces) | data. The JSON maps each name to
# {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data section), and optionally
# "__metadata__" to a str -> str map. Tensors are packed back to back, covering the data section exactly.

ST_DTYPES: dict[str, DType] = {"F64": float64, "F32": float32, "F16": float16, "BF16": bfloat16, "I64": int64, "I32": int32,
                               "I16": int16, "I8": int8, "U8": uint8, "BOOL": bool_}
ST_CODES = {d.name: code for code, d in ST_DTYPES.items()}
# In the specification but with no lazygrad dtype: named as such in errors, rather than "unknown"
ST_UNSUPPORTED = ("U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64", "C128")
_STORE_NP = {float64: "<f8", float32: "<f4", float16: "<f2", bfloat16: "<u2", int64: "<i8", int32: "<i4", int16: "<i2",
             int8: "i1", uint8: "u1", bool_: "u1"}
MAX_HEADER = 100_000_000  # the reference implementation's limit


def save(state_dict: Mapping, path, metadata: Mapping[str, str] | None = None) -> None:
  """Write a flat {name: Tensor} dict as a safetensors file. Tensors are realized and copied to the host one at a
  time, as they are written (a checkpoint never needs a host copy of the whole model).

  NumPy arrays are accepted as values too. `metadata` (str -> str) is stored under "__metadata__".
  Tensors are laid out by decreasing item size, then name (as the reference writer does), so each is aligned.
  The file is written whole or not at all (see helpers.atomic_write): a save that fails or is interrupted leaves the
  file that was at `path` as it was.
  """
  if not isinstance(state_dict, Mapping): raise TypeError(f"save: expected a dict of tensors, got {type(state_dict).__name__}")
  entries = []
  for name, t in state_dict.items():
    if not isinstance(name, str): raise TypeError(f"save: tensor names must be str, got {name!r}")
    if name == "__metadata__": raise ValueError("save: '__metadata__' is reserved by the safetensors format")
    if isinstance(t, Mapping):
      raise TypeError(f"save: '{name}' is a nested dict; safetensors holds a flat name -> tensor map (flatten it, e.g. 'model.{name}...')")
    entries.append((name, t, _dtype_of(t, f"save: '{name}'")))
  entries.sort(key=lambda e: (-e[2].itemsize, e[0]))

  header: dict = {}
  if metadata is not None:
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
      raise TypeError(f"save: metadata must map str to str, got {metadata!r}")
    header["__metadata__"] = dict(metadata)
  offset = 0
  for name, t, dtype in entries:
    nbytes = math.prod(t.shape) * dtype.itemsize
    header[name] = {"dtype": ST_CODES[dtype.name], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
    offset += nbytes
  text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
  text += b" " * (-(8 + len(text)) % 8)  # so the data section starts 8-byte aligned

  with atomic_write(path) as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for name, t, dtype in entries:
      arr, _ = _host_array(t, f"save: '{name}'")
      if arr.size: f.write(arr.astype(_STORE_NP[dtype], copy=False).reshape(-1).view(np.uint8))


def _bad(path, problem: str) -> ValueError: return ValueError(f"{path}: not a valid safetensors file: {problem}")


def _read_header(path) -> tuple[dict, list[tuple[str, DType, tuple, int, int]], int, int]:
  """Parse and check the header: (metadata, [(name, dtype, shape, begin, end)] in file order, data start, data size)."""
  path = os.fspath(path)
  size = os.path.getsize(path)
  with open(path, "rb") as f:
    head = f.read(8)
    if len(head) < 8: raise _bad(path, f"truncated: the file has {size} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", head)
    if n > size - 8:
      hint = " (it looks like a zip archive: for a PyTorch .pth/.pt checkpoint use lazygrad.state.load_torch)" if head[:4] == b"PK\x03\x04" else ""
      raise _bad(path, f"header length {n} goes beyond the end of the file ({size} bytes, so at most {size - 8}){hint}")
    if n > MAX_HEADER: raise _bad(path, f"header length {n} is over the {MAX_HEADER}-byte limit")
    raw = f.read(n)
  if len(raw) != n: raise _bad(path, f"truncated while reading the {n}-byte header")

  def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup: raise _bad(path, f"header names {sorted(dup)[0]!r} more than once")
    return dict(pairs)
  try: header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
  except UnicodeDecodeError as e: raise _bad(path, f"header is not UTF-8 ({e})") from None
  except json.JSONDecodeError as e: raise _bad(path, f"header is not valid JSON ({e})") from None
  if not isinstance(header, dict): raise _bad(path, f"header is JSON {type(header).__name__}, expected an object")

  metadata = header.pop("__metadata__", None)
  if metadata is None: metadata = {}
  if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
    raise _bad(path, "__metadata__ must be an object mapping str to str")

  data_start, data_size = 8 + n, size - 8 - n
  tensors = []
  for name, info in header.items():
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
      raise _bad(path, f"entry {name!r} must be an object with dtype, shape and data_offsets, got {info!r}")
    code, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
    if code not in ST_DTYPES:
      if code in ST_UNSUPPORTED: raise _bad(path, f"tensor {name!r} has dtype {code}, which lazygrad does not support")
      raise _bad(path, f"tensor {name!r} has unknown dtype {code!r}; known: {', '.join(ST_DTYPES)}")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
      raise _bad(path, f"tensor {name!r} has shape {shape!r}; expected a list of non-negative ints")
    if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int and o >= 0 for o in offs) and offs[0] <= offs[1]):
      raise _bad(path, f"tensor {name!r} has data_offsets {offs!r}; expected [begin, end] with 0 <= begin <= end")
    dtype = ST_DTYPES[code]
    need = math.prod(shape) * dtype.itemsize
    if need != offs[1] - offs[0]:
      raise _bad(path, f"tensor {name!r} of dtype {code} and shape {tuple(shape)} needs {need} bytes, "
                       f"but its data_offsets {offs} span {offs[1] - offs[0]}")
    tensors.append((name, dtype, tuple(shape), offs[0], offs[1]))

  tensors.sort(key=lambda t: (t[3], t[4]))
  pos, prev = 0, None
  for name, _, _, begin, end in tensors:
    if begin < pos: raise _bad(path, f"tensor {name!r} (bytes {begin}..{end}) overlaps tensor {prev!r} (which ends at {pos})")
    if begin > pos: raise _bad(path, f"bytes {pos}..{begin} of the data section belong to no tensor (a gap before {name!r})")
    pos, prev = end, name
  if pos > data_size:
    raise _bad(path, f"tensor {prev!r} ends at data offset {pos}, beyond the data section's {data_size} bytes (truncated file?)")
  if pos < data_size: raise _bad(path, f"the last {data_size - pos} bytes of the data section belong to no tensor")
  return metadata, tensors, data_start, data_size


def load_metadata(path) -> dict[str, str]:
  """The "__metadata__" map of a safetensors file ({} if none); reads only the header."""
  return _read_header(path)[0]


def load(path, device=None) -> dict[str, Tensor]:
  """Read a safetensors file into {name: Tensor} (in file order), each copied once from a memory map to `device`. A
  PyTorch checkpoint (a zip archive, what torch.save writes) is read by load_torch instead, as torch.load would."""
  if zipfile.is_zipfile(os.fspath(path)): return load_torch(path, device)
  _, tensors, data_start, data_size = _read_header(path)
  out: dict[str, Tensor] = {}
  if not tensors: return out
  mm = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start, shape=(data_size,)) if data_size else np.empty(0, np.uint8)
  for name, dtype, shape, begin, end in tensors:
    arr = mm[begin:end].view(_STORE_NP[dtype]).reshape(shape)
    out[name] = _make_tensor(arr, dtype, device)
  return out


# ---- PyTorch zip checkpoints
# archive/data.pkl is a protocol-2 pickle; each tensor is _rebuild_tensor_v2(storage, offset, size, stride, ...), where
# storage is a persistent id ('storage', torch.FloatStorage, key, location, numel) naming archive/data/<key>.

_TORCH_STORAGES = {"FloatStorage": float32, "DoubleStorage": float64, "HalfStorage": float16, "BFloat16Storage": bfloat16,
                   "LongStorage": int64, "IntStorage": int32, "ShortStorage": int16, "CharStorage": int8,
                   "ByteStorage": uint8, "BoolStorage": bool_}
_TORCH_DTYPES = {"float32": float32, "float": float32, "float64": float64, "double": float64, "float16": float16, "half": float16,
                 "bfloat16": bfloat16, "int64": int64, "long": int64, "int32": int32, "int": int32, "int16": int16,
                 "short": int16, "int8": int8, "uint8": uint8, "bool": bool_}


class _StorageType:
  def __init__(self, name: str, dtype: DType): self.name, self.dtype = name, dtype
  def __repr__(self): return f"torch.{self.name}"


class _Storage:
  """One storage's elements, as a 1-d host array in storage form (bfloat16 as uint16 bits)."""
  def __init__(self, array: np.ndarray, dtype: DType): self.array, self.dtype = array, dtype


class _TorchUnpickler(pickle.Unpickler):
  """Resolves only the globals a state dict needs, each to a function of ours; anything else is refused."""

  def __init__(self, file, archive: "_TorchArchive", device):
    super().__init__(file)
    self.archive, self.device = archive, device
    self.storages: dict[str, _Storage] = {}

  def find_class(self, module: str, name: str):
    if (module, name) == ("collections", "OrderedDict"): return OrderedDict
    if module == "torch._utils":
      if name == "_rebuild_tensor_v2": return self._rebuild_tensor
      if name == "_rebuild_parameter": return _rebuild_parameter
      if name == "_rebuild_parameter_with_state": return _rebuild_parameter_with_state
    if module == "torch":
      if name in _TORCH_STORAGES: return _StorageType(name, _TORCH_STORAGES[name])
      if name in _TORCH_DTYPES: return _TORCH_DTYPES[name]
    module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # protocol 2 spells them the Python 2 way
    raise pickle.UnpicklingError(f"{self.archive.path}: refusing to load global '{module}.{name}': only tensors, "
                                 "collections.OrderedDict and plain Python values are allowed in a checkpoint")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
            and isinstance(pid[2], str) and isinstance(pid[4], int)):
      raise pickle.UnpicklingError(f"{self.archive.path}: unsupported persistent id {pid!r} (expected a torch storage)")
    _, stype, key, _location, numel = pid
    if key not in self.storages: self.storages[key] = _Storage(self.archive.storage(key, stype, numel), stype.dtype)
    st = self.storages[key]
    if st.dtype is not stype.dtype:
      raise pickle.UnpicklingError(f"{self.archive.path}: storage {key} is used as both {st.dtype.name} and {stype.dtype.name}")
    return st

  def _rebuild_tensor(self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    where = f"{self.archive.path}: tensor"
    if not isinstance(storage, _Storage): raise pickle.UnpicklingError(f"{where} rebuilt from {type(storage).__name__}, not a storage")
    ints = lambda xs: isinstance(xs, tuple) and all(type(x) is int and x >= 0 for x in xs)
    if not (type(storage_offset) is int and storage_offset >= 0 and ints(size) and ints(stride) and len(size) == len(stride)):
      raise ValueError(f"{where} has a bad layout: offset {storage_offset!r}, size {size!r}, stride {stride!r}")
    arr = storage.array
    if 0 in size: view = np.empty(size, arr.dtype)
    else:
      last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
      if last >= arr.size:
        raise ValueError(f"{where} of size {size}, stride {stride} and offset {storage_offset} reaches element {last} "
                         f"of a storage of {arr.size} elements")
      view = np.lib.stride_tricks.as_strided(arr[storage_offset:], shape=size, strides=tuple(s * arr.itemsize for s in stride),
                                             writeable=False)
    t = _make_tensor(view, storage.dtype, self.device)  # Tensor makes it contiguous: the one host copy
    if requires_grad and t.dtype.is_float: t.requires_grad_(True)
    return t


def _rebuild_parameter(data, requires_grad, backward_hooks):
  if not isinstance(data, Tensor): raise pickle.UnpicklingError(f"parameter rebuilt from {type(data).__name__}, not a tensor")
  if data.dtype.is_float: data.requires_grad_(bool(requires_grad))
  return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
  return _rebuild_parameter(data, requires_grad, backward_hooks)


class _TorchArchive:
  """The zip archive torch.save writes: <prefix>/data.pkl, <prefix>/data/<key>, <prefix>/byteorder."""

  def __init__(self, path):
    self.path = os.fspath(path)
    if not zipfile.is_zipfile(self.path):
      raise ValueError(f"{self.path}: not a PyTorch zip checkpoint (the format torch.save writes since 1.6); "
                       "re-save it with torch.save(obj, path) from a recent torch, or use safetensors")
    self.zip = zipfile.ZipFile(self.path)
    pkls = [n for n in self.zip.namelist() if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(pkls) != 1: raise ValueError(f"{self.path}: expected one <archive>/data.pkl in the zip, found {pkls or 'none'}")
    self.prefix = pkls[0][: -len("data.pkl")]
    order = self.prefix + "byteorder"
    self.byteorder = self.zip.read(order).decode().strip() if order in self.zip.namelist() else "little"
    if self.byteorder not in ("little", "big"): raise ValueError(f"{self.path}: unknown byteorder {self.byteorder!r}")
    self._mm = None

  def pickle_bytes(self) -> bytes: return self.zip.read(self.prefix + "data.pkl")

  def storage(self, key: str, stype: _StorageType, numel: int) -> np.ndarray:
    name = f"{self.prefix}data/{key}"
    try: info = self.zip.getinfo(name)
    except KeyError: raise ValueError(f"{self.path}: storage {name} is missing from the archive") from None
    np_dtype = np.dtype(_STORE_NP[stype.dtype]).newbyteorder("<" if self.byteorder == "little" else ">")
    if stype.dtype is bool_: np_dtype = np.dtype(np.uint8)
    if info.file_size != numel * np_dtype.itemsize:
      raise ValueError(f"{self.path}: storage {name} has {info.file_size} bytes, but {numel} elements of {stype} need "
                       f"{numel * np_dtype.itemsize}")
    start = self._stored_offset(info)
    if start is None: return np.frombuffer(self.zip.read(name), dtype=np_dtype)  # compressed: one decompressed copy
    if numel == 0: return np.empty(0, np_dtype)
    if self._mm is None: self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
    return self._mm[start:start + info.file_size].view(np_dtype)

  def _stored_offset(self, info: zipfile.ZipInfo) -> int | None:
    """Where an uncompressed member's bytes start in the file (None if compressed); reads its local header."""
    if info.compress_type != zipfile.ZIP_STORED: return None
    with open(self.path, "rb") as f:
      f.seek(info.header_offset)
      local = f.read(30)
      size = os.fstat(f.fileno()).st_size
    if len(local) != 30 or local[:4] != b"PK\x03\x04": raise ValueError(f"{self.path}: bad zip local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.file_size > size: raise ValueError(f"{self.path}: {info.filename} runs past the end of the file (truncated?)")
    return start


def load_torch(path, device=None):
  """Load a PyTorch checkpoint (.pth/.pt zip) without torch: tensors become lazygrad Tensors, other values stay Python.

  Only what state dicts are made of is unpickled (tensors, parameters, dicts, OrderedDicts, lists, tuples, numbers,
  strings); any other global raises pickle.UnpicklingError naming it, before anything runs.
  """
  archive = _TorchArchive(path)
  try: return _TorchUnpickler(io.BytesIO(archive.pickle_bytes()), archive, device).load()
  finally: archive.zip.close()

