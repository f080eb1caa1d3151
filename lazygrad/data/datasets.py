"""Ready-made datasets read from their original files. FashionMNIST reads Zalando's IDX files (gzip or not) from
`root`, $LAZYGRAD_DATA, lazygrad's download cache, or where Debian's `dataset-fashion-mnist` package installs them.
"""
from __future__ import annotations
import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
import zlib
import numpy as np
from lazygrad.data import Dataset, _to_tensor
from lazygrad.helpers import atomic_write

IDX_UBYTE = 0x08
DEBIAN_DIRS = ["/usr/share/datasets/fashion-mnist"]  # `apt-get install dataset-fashion-mnist` (the .gz files)
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "lazygrad", "fashion-mnist")  # where download=True puts them
# The S3 website endpoint serves only http; the MD5 sums (Zalando's README) check what arrives.
MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
           "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"]
MD5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
       "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
       "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
       "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}


def read_idx(path: str, magic: int, what: str) -> np.ndarray:
  """An IDX file of unsigned bytes (gzip-compressed or not) as a uint8 array of the shape its header gives.
  `magic` is the expected big-endian magic number: 0x803 for images (3 dims), 0x801 for labels (1 dim)."""
  with open(path, "rb") as f: raw = f.read()
  if raw[:2] == b"\x1f\x8b":
    try: raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e: raise ValueError(f"{path}: corrupt gzip file ({e})") from None
  if len(raw) < 4: raise ValueError(f"{path}: truncated: {len(raw)} bytes, too short for the 4-byte IDX magic number")
  (got,) = struct.unpack(">I", raw[:4])
  if got != magic:
    raise ValueError(f"{path}: bad magic number 0x{got:08x}; expected 0x{magic:08x} for an IDX file of {what} (unsigned bytes, "
                     f"{magic & 0xFF} dimensions)")
  ndim = magic & 0xFF
  head = 4 + 4 * ndim
  if len(raw) < head: raise ValueError(f"{path}: truncated inside the IDX header ({len(raw)} bytes, need {head})")
  dims = struct.unpack(f">{ndim}I", raw[4:head])
  need = head + int(np.prod(dims, dtype=np.int64))
  if len(raw) != need:
    raise ValueError(f"{path}: {len(raw)} bytes, but its header's dimensions {dims} mean {need} bytes"
                     f"{' (truncated?)' if len(raw) < need else ''}")
  return np.frombuffer(bytearray(raw[head:]), dtype=np.uint8).reshape(dims)  # bytearray: a writable array


class FashionMNIST(Dataset):
  """Zalando's Fashion-MNIST: 60000 training and 10000 test images, 28x28 grayscale, 10 classes.

  `.data` is uint8 (N, 28, 28), `.targets` int64 (N,). `dataset[i]` is (image, label): the image float32 (1, 28, 28)
  scaled to [0, 1] (then passed through `transform`, if given), the label an int (through `target_transform`).
  The files are looked for in `root` (or $LAZYGRAD_DATA), ~/.cache/lazygrad/fashion-mnist, and
  /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist); `download=True` fetches what is missing.
  """

  classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

  def __init__(self, root=None, train: bool = True, transform=None, target_transform=None, download: bool = False):
    self.train, self.transform, self.target_transform = bool(train), transform, target_transform
    split = "train" if self.train else "t10k"
    self.files = (f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte")
    self.root = os.fspath(root) if root is not None else os.environ.get("LAZYGRAD_DATA") or None
    found = self._find()
    if found is None and download:
      found = self._download(self.root if self.root is not None else CACHE_DIR)
    if found is None: raise FileNotFoundError(self._how_to_get())
    images_path, labels_path = found
    self.data = read_idx(images_path, 0x00000803, "images")
    labels = read_idx(labels_path, 0x00000801, "labels")
    if self.data.shape[1:] != (28, 28):
      raise ValueError(f"{images_path}: images are {self.data.shape[1]}x{self.data.shape[2]}, Fashion-MNIST's are 28x28")
    if len(labels) != len(self.data):
      raise ValueError(f"{images_path} has {len(self.data)} images but {labels_path} has {len(labels)} labels")
    if labels.size and labels.max() >= len(self.classes):
      raise ValueError(f"{labels_path}: label {int(labels.max())} is out of range (10 classes, labels 0..9)")
    self.targets = labels.astype(np.int64)
    self.paths = found

  # ---- finding the files

  def _search_dirs(self) -> list[str]:
    bases = [self.root] if self.root is not None else []
    dirs = []
    for b in bases: dirs += [b, os.path.join(b, "FashionMNIST", "raw"), os.path.join(b, "fashion-mnist"), os.path.join(b, "FashionMNIST")]
    return dirs + [CACHE_DIR] + list(DEBIAN_DIRS)

  def _find(self) -> tuple[str, str] | None:
    for d in self._search_dirs():
      paths = []
      for name in self.files:
        hit = next((p for p in (os.path.join(d, name), os.path.join(d, name + ".gz")) if os.path.isfile(p)), None)
        if hit is None: break
        paths.append(hit)
      else: return paths[0], paths[1]
    return None

  def _download(self, dest: str) -> tuple[str, str] | None:
    self._download_errors: list[str] = []
    try: os.makedirs(dest, exist_ok=True)
    except OSError as e:
      self._download_errors.append(f"cannot create {dest}: {e}")
      return None
    paths = []
    for name in self.files:
      fname = name + ".gz"
      target = os.path.join(dest, fname)
      if not os.path.isfile(target):
        for mirror in MIRRORS:
          url = mirror + fname
          try:
            with urllib.request.urlopen(url, timeout=30) as r: body = r.read()
          except (OSError, urllib.error.URLError, ValueError) as e:
            self._download_errors.append(f"{url}: {e}")
            continue
          if hashlib.md5(body).hexdigest() != MD5[fname]:
            self._download_errors.append(f"{url}: MD5 {hashlib.md5(body).hexdigest()} is not the published {MD5[fname]}")
            continue
          with atomic_write(target) as f: f.write(body)  # whole or absent: a file found here is used unchecked
          break
        else: return None
      paths.append(target)
    return paths[0], paths[1]

  def _how_to_get(self) -> str:
    names = " and ".join(n + ".gz" for n in self.files)
    lines = [f"Fashion-MNIST ({'train' if self.train else 'test'} split) not found: no {self.files[0]}[.gz] with "
             f"{self.files[1]}[.gz] in any of: {', '.join(self._search_dirs())}."]
    errors = getattr(self, "_download_errors", None)
    if errors is not None: lines.append("download=True failed:\n    " + "\n    ".join(errors))
    lines += ["Get the data one of these ways:",
              "  - Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist  (installs /usr/share/datasets/fashion-mnist/*.gz, "
              "found automatically)",
              f"  - download {names} from",
              *(f"      {m}<file>" for m in MIRRORS),
              "    into a directory DIR, then pass FashionMNIST(root=DIR) or set the environment variable LAZYGRAD_DATA=DIR",
              "  - on a machine with internet access: FashionMNIST(root=DIR, download=True)"]
    return "\n".join(lines)

  # ---- samples

  def __len__(self) -> int: return len(self.data)

  def __getitem__(self, index):
    image = self.data[index][None].astype(np.float32) / np.float32(255)
    label = int(self.targets[index])
    if self.transform is not None: image = self.transform(image)
    if self.target_transform is not None: label = self.target_transform(label)
    return image, label

  def get_batch(self, indices):
    """A whole batch at once (what DataLoader's default collate would make), when there are no transforms."""
    if self.transform is not None or self.target_transform is not None: return None
    images = self.data[indices][:, None].astype(np.float32) / np.float32(255)
    return [_to_tensor(images), _to_tensor(self.targets[indices])]

  def __repr__(self):
    return f"FashionMNIST({'train' if self.train else 'test'}, {len(self)} images from {os.path.dirname(self.paths[0])})"
