"""lazygrad.data: batching, shuffling and collation in DataLoader, and FashionMNIST read from IDX files (small ones
written here; the real ones when Debian's dataset-fashion-mnist is installed)."""

import collections
import gzip
import os
import struct

import numpy as np
import pytest

import lazygrad as lg
from lazygrad.data import DataLoader, Dataset, TensorDataset, default_collate, FashionMNIST
from lazygrad.data import datasets


class Squares(Dataset):
    """Sample i is a dict of an array, a number and a string: the default collate's main cases at once."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full((2,), i, np.float32), "y": i * i, "name": f"s{i}"}


def kernels_during(fn):
    before = lg.kernel_count()
    out = fn()
    return out, lg.kernel_count() - before


# ---- DataLoader


def test_batches_in_order_with_partial_last():
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int64)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    assert len(loader) == 3
    batches, k = kernels_during(lambda: list(loader))
    assert k == 0  # batching is host stacking plus one copy per field: no kernels
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    assert all(isinstance(b, list) and len(b) == 2 for b in batches)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x, strict=True)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y, strict=True)
    assert batches[0][1].dtype is lg.int64 and batches[0][0].dtype is lg.float32


def test_drop_last():
    ds = TensorDataset(np.arange(10))
    loader = DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b[0].numpy().tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert len(DataLoader(ds, batch_size=11, drop_last=True)) == 0 and list(DataLoader(ds, batch_size=11, drop_last=True)) == []


def test_tensor_dataset_takes_lazygrad_tensors():
    xs = lg.arange(12).reshape(6, 2).float() * 0.5
    ds = TensorDataset(xs, lg.arange(6))
    assert len(ds) == 6
    row, label = ds[2]
    np.testing.assert_array_equal(row, [2.0, 2.5])
    assert label == 2
    (bx, by), = list(DataLoader(ds, batch_size=6))
    np.testing.assert_array_equal(bx.numpy(), xs.numpy(), strict=True)
    assert by.dtype is lg.int64


def test_tensor_dataset_checks_sizes():
    with pytest.raises(ValueError, match=r"first dimension.*\(3, 2\).*\(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(TypeError, match="list"):
        TensorDataset([1, 2, 3])


def order_of(loader):
    return np.concatenate([b[0].numpy() for b in loader]).tolist()


def test_shuffle_with_seed_is_deterministic_and_reshuffles():
    ds = TensorDataset(np.arange(50))
    a, b = DataLoader(ds, batch_size=8, shuffle=True, seed=123), DataLoader(ds, batch_size=8, shuffle=True, seed=123)
    epochs_a = [order_of(a) for _ in range(3)]
    epochs_b = [order_of(b) for _ in range(3)]
    assert epochs_a == epochs_b  # same seed, same sequence of orders
    assert all(sorted(e) == list(range(50)) for e in epochs_a)  # each epoch is a permutation
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]  # iterating again reshuffles
    assert epochs_a[0] != list(range(50))
    assert order_of(DataLoader(ds, batch_size=8, shuffle=True, seed=7)) != epochs_a[0]


def test_shuffle_without_seed_follows_manual_seed():
    ds = TensorDataset(np.arange(40))
    loader = DataLoader(ds, batch_size=16, shuffle=True)
    lg.manual_seed(5)
    first = [order_of(loader), order_of(loader)]
    lg.manual_seed(5)
    again = [order_of(loader), order_of(loader)]
    assert first == again and first[0] != first[1]


def test_order_is_drawn_when_iteration_starts():
    loader = DataLoader(TensorDataset(np.arange(20)), batch_size=20, shuffle=True, seed=0)
    it1, it2 = iter(loader), iter(loader)
    assert next(it1)[0].numpy().tolist() != next(it2)[0].numpy().tolist()


def test_default_collate_dict_numbers_strings():
    loader = DataLoader(Squares(5), batch_size=3)
    first, second = list(loader)
    assert set(first) == {"x", "y", "name"}
    assert first["x"].shape == (3, 2) and first["x"].dtype is lg.float32
    assert first["y"].dtype is lg.int64 and first["y"].numpy().tolist() == [0, 1, 4]
    assert first["name"] == ["s0", "s1", "s2"]
    assert second["y"].numpy().tolist() == [9, 16]


def test_default_collate_cases():
    Point = collections.namedtuple("Point", "x y")
    out = default_collate([Point(1.5, True), Point(2.5, False)])
    assert isinstance(out, Point)
    assert out.x.dtype is lg.float64 and out.x.numpy().tolist() == [1.5, 2.5]  # Python floats: float64, as torch
    assert out.y.dtype is lg.bool and out.y.numpy().tolist() == [True, False]
    pairs = default_collate([(np.int32(1), [np.zeros(2, np.float16)]), (np.int32(2), [np.ones(2, np.float16)])])
    assert isinstance(pairs, list)  # tuples become lists, as in torch
    assert pairs[0].dtype is lg.int32 and pairs[1][0].dtype is lg.float16 and pairs[1][0].shape == (2, 2)
    stacked = default_collate([lg.ones(2, 3), lg.zeros(2, 3)])
    assert stacked.shape == (2, 2, 3) and stacked.numpy()[0].sum() == 6
    assert default_collate([3, 4]).dtype is lg.int64


def test_default_collate_errors():
    with pytest.raises(ValueError, match=r"sample 0 has shape \(2,\) but sample 1 has shape \(3,\)"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="different lengths"):
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(TypeError, match="object"):
        default_collate([object(), object()])


def test_custom_collate_and_unbatched():
    ds = TensorDataset(np.arange(6))
    sums = [b for b in DataLoader(ds, batch_size=4, collate_fn=lambda samples: sum(int(s[0]) for s in samples))]
    assert sums == [6, 9]
    single = list(DataLoader(ds, batch_size=None))
    assert len(single) == 6 and single[3][0].shape == () and single[3][0].item() == 3


def test_get_batch_fast_path_matches_per_sample_path():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((13, 4)).astype(np.float32)
    y = rng.integers(0, 5, 13)
    fast = list(DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, seed=3))

    class Plain(Dataset):  # same samples, no get_batch
        def __len__(self):
            return 13

        def __getitem__(self, i):
            return x[i], y[i]

    slow = list(DataLoader(Plain(), batch_size=5, shuffle=True, seed=3))
    for (fx, fy), (sx, sy) in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(fx.numpy(), sx.numpy(), strict=True)
        np.testing.assert_array_equal(fy.numpy(), sy.numpy(), strict=True)


def test_dataloader_argument_errors():
    ds = TensorDataset(np.arange(3))
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(ds, batch_size=0)
    with pytest.raises(NotImplementedError, match="num_workers"):
        DataLoader(ds, num_workers=2)
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(iter([1, 2]))


# ---- FashionMNIST from IDX files written here


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def write_split(d, split="train", n=7, gz=True, seed=0, images_magic=0x803, labels_magic=0x801, labels_n=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, labels_n if labels_n is not None else n, dtype=np.uint8)
    os.makedirs(d, exist_ok=True)
    for name, data in ((f"{split}-images-idx3-ubyte", idx_bytes(images, images_magic)),
                       (f"{split}-labels-idx1-ubyte", idx_bytes(labels, labels_magic))):
        if gz:
            with gzip.open(os.path.join(d, name + ".gz"), "wb") as f:
                f.write(data)
        else:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    return images, labels


@pytest.fixture
def no_system_data(monkeypatch, tmp_path):
    """Hide the real data (Debian's, the download cache, $LAZYGRAD_DATA) so only what a test writes is found."""
    monkeypatch.setattr(datasets, "DEBIAN_DIRS", [])
    monkeypatch.setattr(datasets, "CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LAZYGRAD_DATA", raising=False)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_fashion_mnist_reads_idx(tmp_path, no_system_data, gz):
    images, labels = write_split(tmp_path / "fm", "train", n=7, gz=gz)
    test_images, _ = write_split(tmp_path / "fm", "t10k", n=3, gz=gz, seed=1)
    ds = FashionMNIST(root=tmp_path / "fm")
    assert len(ds) == 7 and ds.data.dtype == np.uint8 and ds.data.shape == (7, 28, 28)
    np.testing.assert_array_equal(ds.data, images)
    assert ds.targets.dtype == np.int64
    np.testing.assert_array_equal(ds.targets, labels)
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    assert image.min() == 0.0 and image.max() == 1.0 and image[0, 0, 0] == 0.0 and image[0, 0, 1] == 1.0
    np.testing.assert_allclose(image[0], images[0] / 255.0, rtol=1e-6)
    assert type(label) is int and label == labels[0]
    assert len(ds.classes) == 10 and ds.classes[9] == "Ankle boot"
    test = FashionMNIST(root=tmp_path / "fm", train=False)
    assert len(test) == 3
    np.testing.assert_array_equal(test.data, test_images)


def test_fashion_mnist_env_var_and_torchvision_layout(tmp_path, no_system_data, monkeypatch):
    images, _ = write_split(tmp_path / "data" / "FashionMNIST" / "raw", n=4)
    monkeypatch.setenv("LAZYGRAD_DATA", str(tmp_path / "data"))
    np.testing.assert_array_equal(FashionMNIST().data, images)


def test_fashion_mnist_transforms_and_loader(tmp_path, no_system_data):
    images, labels = write_split(tmp_path, n=10)
    ds = FashionMNIST(root=tmp_path, transform=lambda x: x * 2 - 1, target_transform=lambda y: y + 100)
    image, label = ds[1]
    assert image.min() >= -1 and image.max() <= 1 and label == labels[1] + 100
    plain = FashionMNIST(root=tmp_path)
    (x, y), (x2, y2) = list(DataLoader(plain, batch_size=5))
    assert x.shape == (5, 1, 28, 28) and x.dtype is lg.float32 and y.dtype is lg.int64
    np.testing.assert_array_equal(x.numpy(), np.stack([plain[i][0] for i in range(5)]), strict=True)
    np.testing.assert_array_equal(y2.numpy(), labels[5:].astype(np.int64), strict=True)
    xt, yt = next(iter(DataLoader(ds, batch_size=4)))  # transforms: the per-sample path
    np.testing.assert_allclose(xt.numpy(), np.stack([ds[i][0] for i in range(4)]))
    assert yt.numpy().tolist() == [int(v) + 100 for v in labels[:4]]


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_fashion_mnist_bad_magic(tmp_path, no_system_data, gz):
    write_split(tmp_path, n=3, gz=gz, images_magic=0x801)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*bad magic number 0x00000801; expected 0x00000803"):
        FashionMNIST(root=tmp_path)


def test_fashion_mnist_size_errors(tmp_path, no_system_data):
    write_split(tmp_path / "a", n=3, labels_n=4)
    with pytest.raises(ValueError, match="has 3 images but .* has 4 labels"):
        FashionMNIST(root=tmp_path / "a")
    write_split(tmp_path / "b", n=3, gz=False)
    path = tmp_path / "b" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: 2358 bytes, but .* mean 2368 bytes \(truncated\?\)"):
        FashionMNIST(root=tmp_path / "b")
    write_split(tmp_path / "c", n=3)
    (tmp_path / "c" / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="corrupt gzip"):
        FashionMNIST(root=tmp_path / "c")


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, no_system_data):
    with pytest.raises(FileNotFoundError) as e:
        FashionMNIST(root=tmp_path / "nothing-here")
    msg = str(e.value)
    for needed in ("apt-get install dataset-fashion-mnist", "LAZYGRAD_DATA", "root=", "download=True",
                   "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                   "train-images-idx3-ubyte.gz", str(tmp_path / "nothing-here")):
        assert needed in msg, needed


def test_fashion_mnist_download_failure_is_reported(tmp_path, no_system_data, monkeypatch):
    monkeypatch.setattr(datasets, "MIRRORS", ["http://127.0.0.1:9/"])  # nothing listens on the discard port
    with pytest.raises(FileNotFoundError) as e:
        FashionMNIST(root=tmp_path / "dl", download=True, train=False)
    msg = str(e.value)
    assert "download=True failed" in msg and "http://127.0.0.1:9/t10k-images-idx3-ubyte.gz" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert not [p for p in os.listdir(tmp_path / "dl") if p.endswith(".gz")]


def test_data_room_imports_only_tensor_and_dtype():
    """(and helpers, the leaf of shared utilities, for downloads written whole: it knows nothing of computation; and
    distributed, where DistributedSampler asks the process group for its rank and world size)"""
    import ast
    import lazygrad.data
    for path in (lazygrad.data.__file__, datasets.__file__):
        tree = ast.parse(open(path).read())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert {m for m in mods if m.startswith("lazygrad")} <= {"lazygrad.tensor", "lazygrad.dtype", "lazygrad.helpers",
                                                                 "lazygrad.data", "lazygrad.data.datasets",
                                                                 "lazygrad.distributed"}, path


# ---- the real data, where Debian's package put it

DEBIAN = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isfile(os.path.join(DEBIAN, "train-images-idx3-ubyte.gz")),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_from_debian(monkeypatch):
    monkeypatch.delenv("LAZYGRAD_DATA", raising=False)
    train, test = FashionMNIST(root=DEBIAN), FashionMNIST(root=DEBIAN, train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert train.targets.shape == (60000,) and test.targets.shape == (10000,)
    assert np.bincount(train.targets).tolist() == [6000] * 10  # Fashion-MNIST is balanced
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert train.targets[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    x, y = next(iter(DataLoader(test, batch_size=1000)))
    assert x.shape == (1000, 1, 28, 28) and y.shape == (1000,)
