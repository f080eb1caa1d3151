"""lazygrad.state: safetensors checked against the `safetensors` library both ways, malformed files refused with
clear errors, and PyTorch .pth checkpoints loaded without torch's unpickler (and without running pickled code)."""

import collections
import json
import os
import pickle
import stat
import struct
import zipfile

import numpy as np
import pytest
import safetensors
import safetensors.numpy
import safetensors.torch
import torch

import lazygrad as lg
from lazygrad import state

NP_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "int64": np.int64, "int32": np.int32,
             "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}
ALL_NAMES = list(NP_DTYPES) + ["bfloat16"]


def sample(name, shape=(3, 5), seed=0):
    """Values that fill each dtype's range a bit (negatives, fractions, extremes)."""
    rng = np.random.default_rng(seed)
    if name == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    dt = np.dtype(NP_DTYPES.get(name, np.float32))
    if dt.kind == "f":
        return np.asarray(rng.standard_normal(shape) * 100, dtype=dt)
    info = np.iinfo(dt)
    arr = np.asarray(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt))
    if arr.size >= 2:
        arr.reshape(-1)[:2] = (info.min, info.max)
    return arr


_BF16 = {}


def bf16_device_or_none():
    """A device that runs bfloat16 (the OpenCL backend does not): TRITON on a GPU. None, with the reason kept, if none."""
    if "device" not in _BF16:
        try:
            t = lg.Tensor(np.ones(2, np.float32), device="TRITON").cast(lg.bfloat16)
            assert t.numpy().tolist() == [1.0, 1.0]
            _BF16["device"] = "TRITON"
        except Exception as e:  # noqa: BLE001  (any failure means: no such device here)
            _BF16["device"], _BF16["why"] = None, f"{type(e).__name__}: {e}"
    return _BF16["device"]


@pytest.fixture
def bf16_device():
    if bf16_device_or_none() is None:
        pytest.skip(f"no bfloat16-capable device: {_BF16['why']}")
    return _BF16["device"]


def bf16_values():
    """float32 values whose bfloat16 rounding is exercised: ties both ways, overflow to inf, subnormals, NaN, inf."""
    x = np.array([0.0, -0.0, 1.0, 1.00390625, 1.01171875, 3.3, -3.3, 65504.0, 3.3895314e38, 3.4e38, 1e-40, -1e-45,
                  np.inf, -np.inf, np.nan, 1.0 + 2**-9, 1.0 + 2**-8 + 2**-20], dtype=np.float32)
    return np.concatenate([x, np.random.default_rng(1).standard_normal(200).astype(np.float32) * 1e3])


# ---- bfloat16 bits


def test_bf16_rounding_matches_torch():
    x = bf16_values()
    ours = state.to_bf16_bits(x)
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(x)
    np.testing.assert_array_equal(ours[~nan], want[~nan])
    assert np.isnan(state.from_bf16_bits(ours[nan])).all()
    back = torch.from_numpy(want.view(np.int16)).view(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(state.from_bf16_bits(want), back)


# ---- safetensors, both directions


@pytest.mark.parametrize("name", list(NP_DTYPES))
def test_our_file_read_by_safetensors(tmp_path, name):
    arrays = {"a": sample(name), "b.scalar": sample(name, shape=()), "c.empty": sample(name, shape=(0, 4)),
              "d": sample(name, shape=(7,), seed=1)}
    path = tmp_path / "x.safetensors"
    lg.save({k: lg.Tensor(v) for k, v in arrays.items()}, path)
    got = safetensors.numpy.load_file(str(path))
    assert got.keys() == arrays.keys()
    for k, v in arrays.items():
        np.testing.assert_array_equal(got[k], v, strict=True, err_msg=k)


def test_our_bf16_file_read_by_safetensors(tmp_path, bf16_device):
    x = bf16_values()
    path = tmp_path / "x.safetensors"
    lg.save({"w": lg.Tensor(x, device=bf16_device).cast(lg.bfloat16)}, path)
    got = safetensors.torch.load_file(str(path))["w"]
    assert got.dtype == torch.bfloat16
    want = torch.from_numpy(x).to(torch.bfloat16)
    np.testing.assert_array_equal(got.view(torch.int16).numpy()[~np.isnan(x)], want.view(torch.int16).numpy()[~np.isnan(x)])
    assert torch.isnan(got[torch.from_numpy(np.isnan(x))]).all()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_safetensors_file_read_by_us(tmp_path, name):
    arr = sample(name)
    tt = torch.from_numpy(arr).to(torch.bfloat16) if name == "bfloat16" else torch.from_numpy(arr)
    tensors = {"w": tt, "w_t": tt.t().contiguous(), "s": tt[0, 0].clone(), "e": tt[:0].clone()}
    path = tmp_path / "x.safetensors"
    safetensors.torch.save_file(tensors, str(path), metadata={"format": "pt"})
    device = bf16_device_or_none() if name == "bfloat16" else None
    got = lg.load(path, device=device)
    assert got.keys() == tensors.keys()
    assert state.load_metadata(path) == {"format": "pt"}
    for k, t in tensors.items():
        assert got[k].dtype is getattr(lg, name), k
        assert got[k].shape == tuple(t.shape), k
        if name == "bfloat16" and device is None:
            continue  # values need a device that runs bfloat16 (test_pth_bf16_values covers the same path there)
        np.testing.assert_array_equal(got[k].numpy(), t.float().numpy() if name == "bfloat16" else t.numpy(), err_msg=k)


def test_round_trip_with_metadata_and_layout(tmp_path):
    sd = {"layer.weight": lg.Tensor(sample("float32", (4, 3))), "layer.bias": lg.Tensor(sample("float16", (3,))),
          "steps": lg.Tensor(np.int64(12345)), "mask": lg.Tensor(sample("bool", (2, 2))),
          "ids": lg.Tensor(sample("int8", (5,))), "big": lg.Tensor(sample("float64", (2, 2)))}
    meta = {"format": "pt", "note": "ünïcode ok", "empty": ""}
    path = tmp_path / "sd.safetensors"
    state.save(sd, path, metadata=meta)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0 and (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"] == meta
    # decreasing item size, so every tensor is aligned to its own item size in the file
    order = sorted((v["data_offsets"][0], k) for k, v in header.items() if k != "__metadata__")
    sizes = [sd[k].dtype.itemsize for _, k in order]
    assert sizes == sorted(sizes, reverse=True)
    for off, k in order:
        assert (8 + n + off) % sd[k].dtype.itemsize == 0
    assert state.load_metadata(path) == meta
    with safetensors.safe_open(str(path), "np") as f:
        assert f.metadata() == meta
    got = state.load(path)
    assert set(got) == set(sd)
    for k, t in sd.items():
        assert got[k].dtype is t.dtype and got[k].shape == t.shape
        np.testing.assert_array_equal(got[k].numpy(), t.numpy(), strict=True, err_msg=k)


def test_save_takes_numpy_and_realizes_lazy_tensors(tmp_path):
    x = lg.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    path = tmp_path / "x.safetensors"
    lg.save({"lazy": (x * 2).permute(1, 0), "np": np.arange(4, dtype=np.int32)}, path)
    got = safetensors.numpy.load_file(str(path))
    np.testing.assert_array_equal(got["lazy"], (np.arange(6, dtype=np.float32).reshape(2, 3) * 2).T, strict=True)
    np.testing.assert_array_equal(got["np"], np.arange(4, dtype=np.int32), strict=True)


def test_empty_state_dict(tmp_path):
    path = tmp_path / "e.safetensors"
    state.save({}, path)
    assert state.load(path) == {} and safetensors.numpy.load_file(str(path)) == {}


@pytest.mark.parametrize("bad, match", [
    ({"__metadata__": lg.ones(2)}, "reserved"),
    ({"a": {"b": lg.ones(2)}}, "nested dict"),
    ({"a": [1, 2]}, "expected a lazygrad Tensor"),
    ({1: lg.ones(2)}, "names must be str"),
])
def test_save_rejects_what_safetensors_cannot_hold(tmp_path, bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        state.save(bad, tmp_path / "x.safetensors")
    assert not os.listdir(tmp_path)  # nothing half-written left behind


def test_save_rejects_non_str_metadata(tmp_path):
    with pytest.raises(TypeError, match="metadata"):
        state.save({"a": lg.ones(2)}, tmp_path / "x.safetensors", metadata={"epoch": 3})


# ---- a save is written whole or not at all: a temporary file beside the checkpoint, renamed onto it when complete

def save_good_checkpoint(path) -> dict:
    sd = {"w": lg.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3)), "b": lg.Tensor(np.array([1, 2], np.int64))}
    state.save(sd, path)
    return {k: v.numpy() for k, v in sd.items()}


@pytest.mark.parametrize("fail", ["interrupted copying a tensor", "disk full at the flush"])
def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch, fail):
    path = tmp_path / "ckpt.safetensors"
    before = save_good_checkpoint(path)
    new = {"w": lg.ones(2, 3), "b": lg.Tensor(np.array([5, 6], np.int64)), "big": lg.zeros(1000)}
    temporary = []
    if fail == "interrupted copying a tensor":  # Ctrl-C after the header and the first tensor are written
        copies, real_numpy = [], lg.Tensor.numpy

        def numpy(self):
            copies.append(self)
            if len(copies) == 2:
                temporary.extend(n for n in os.listdir(tmp_path) if n != path.name)
                raise KeyboardInterrupt
            return real_numpy(self)
        monkeypatch.setattr(lg.Tensor, "numpy", numpy)
        expected = KeyboardInterrupt
    else:
        def fsync(fd):
            temporary.extend(n for n in os.listdir(tmp_path) if n != path.name)
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(os, "fsync", fsync)
        expected = OSError
    with pytest.raises(expected):
        state.save(new, path)
    monkeypatch.undo()
    assert len(temporary) == 1 and temporary[0].startswith(".ckpt.safetensors.") and temporary[0].endswith(".tmp")
    assert os.listdir(tmp_path) == [path.name]  # the temporary file is gone
    got = state.load(path)
    assert set(got) == set(before)
    for k, v in before.items(): np.testing.assert_array_equal(got[k].numpy(), v, strict=True)


def test_a_saved_file_has_the_mode_open_would_give(tmp_path):
    """0o666 less the umask for a new file; an existing file's own mode (open() keeps it when it truncates)."""
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    umask = os.umask(0o027)
    try:
        with open(tmp_path / "plain", "wb"): pass
        state.save({"a": lg.ones(2)}, tmp_path / "new.safetensors")
        existing = tmp_path / "old.safetensors"
        state.save({"a": lg.ones(2)}, existing)
        os.chmod(existing, 0o604)
        state.save({"a": lg.zeros(2)}, existing)
    finally:
        os.umask(umask)
    assert mode(tmp_path / "new.safetensors") == mode(tmp_path / "plain") == 0o640
    assert mode(existing) == 0o604
    assert state.load(existing)["a"].numpy().tolist() == [0, 0]


def test_a_save_into_a_missing_folder_names_the_path_as_open_does(tmp_path):
    path = tmp_path / "missing" / "x.safetensors"
    with pytest.raises(FileNotFoundError) as plain: open(path, "wb")
    with pytest.raises(FileNotFoundError) as saved: state.save({"a": lg.ones(2)}, path)
    assert str(saved.value) == str(plain.value) == f"[Errno 2] No such file or directory: '{path}'"


def test_a_save_through_a_symlink_replaces_its_target(tmp_path):
    target, link = tmp_path / "run1.safetensors", tmp_path / "latest.safetensors"
    state.save({"a": lg.ones(2)}, target)
    link.symlink_to(target.name)
    state.save({"a": lg.zeros(2)}, link)
    assert link.is_symlink() and os.readlink(link) == target.name
    assert state.load(target)["a"].numpy().tolist() == [0, 0]

# ---- malformed safetensors files, crafted by hand


def st_bytes(header, data=b"", n=None, pad=True):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if n is None else n) + text + data


F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
MALFORMED = {
    "short": (b"\x10\x00\x00", "fewer than the 8-byte header length"),
    "header_past_end": (st_bytes({"a": F32x2}, b"\0" * 8, n=10_000), "header length 10000 goes beyond the end"),
    "huge_header_len": (struct.pack("<Q", 2**63) + b"{}      ", "goes beyond the end of the file"),
    "bad_json": (st_bytes(b'{"a": {"dtype": "F32",'), "not valid JSON"),
    "not_utf8": (st_bytes(b'{"\xff": 1}'), "not UTF-8"),
    "json_list": (st_bytes([1, 2]), "expected an object"),
    "entry_not_object": (st_bytes({"a": 3}), "must be an object with dtype, shape and data_offsets"),
    "missing_field": (st_bytes({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "data_offsets"),
    "unknown_dtype": (st_bytes({"a": {**F32x2, "dtype": "F33"}}, b"\0" * 8), "unknown dtype 'F33'"),
    "unsupported_dtype": (st_bytes({"a": {**F32x2, "dtype": "U16", "data_offsets": [0, 4]}}, b"\0" * 4), "dtype U16, which lazygrad does not support"),
    "negative_dim": (st_bytes({"a": {**F32x2, "shape": [-2]}}, b"\0" * 8), "non-negative ints"),
    "float_dim": (st_bytes({"a": {**F32x2, "shape": [2.0]}}, b"\0" * 8), "non-negative ints"),
    "offsets_reversed": (st_bytes({"a": {**F32x2, "data_offsets": [8, 0]}}, b"\0" * 8), "0 <= begin <= end"),
    "offsets_three": (st_bytes({"a": {**F32x2, "data_offsets": [0, 4, 8]}}, b"\0" * 8), r"expected \[begin, end\]"),
    "shape_vs_bytes": (st_bytes({"a": {**F32x2, "shape": [3]}}, b"\0" * 8), r"shape \(3,\) needs 12 bytes, but its data_offsets \[0, 8\] span 8"),
    "out_of_range": (st_bytes({"a": {**F32x2, "data_offsets": [8, 16]}, "b": F32x2}, b"\0" * 8), "beyond the data section's 8 bytes"),
    "overlap": (st_bytes({"a": F32x2, "b": {**F32x2, "data_offsets": [4, 12]}}, b"\0" * 12), "overlaps tensor 'a'"),
    "gap": (st_bytes({"a": {**F32x2, "data_offsets": [4, 12]}}, b"\0" * 12), "bytes 0..4 of the data section belong to no tensor"),
    "trailing": (st_bytes({"a": F32x2}, b"\0" * 12), "last 4 bytes of the data section belong to no tensor"),
    "truncated_data": (st_bytes({"a": F32x2, "b": {**F32x2, "data_offsets": [8, 16]}}, b"\0" * 12), "truncated file"),
    "bad_metadata": (st_bytes({"__metadata__": {"epoch": 3}, "a": F32x2}, b"\0" * 8), "__metadata__ must be an object mapping str to str"),
    "duplicate_name": (st_bytes(b'{"a":' + json.dumps(F32x2).encode() + b',"a":' + json.dumps(F32x2).encode() + b"}", b"\0" * 8), "'a' more than once"),
    "zip": (b"PK\x03\x04" + b"\x14" * 60, "load_torch"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_raises_clear_valueerror(tmp_path, case):
    raw, match = MALFORMED[case]
    path = tmp_path / f"{case}.safetensors"
    path.write_bytes(raw)
    for fn in (state.load, state.load_metadata):
        with pytest.raises(ValueError, match=match) as e:
            fn(path)
        assert str(path) in str(e.value)


def test_well_formed_crafted_file_loads(tmp_path):
    """The same helper, used correctly, gives a file both we and the reference library read (so the cases above
    fail for the reason they name)."""
    path = tmp_path / "ok.safetensors"
    path.write_bytes(st_bytes({"a": F32x2, "z": {"dtype": "I8", "shape": [0], "data_offsets": [8, 8]}},
                              np.array([1.5, -2], "<f4").tobytes()))
    np.testing.assert_array_equal(lg.load(path)["a"].numpy(), [1.5, -2])
    np.testing.assert_array_equal(safetensors.numpy.load_file(str(path))["a"], [1.5, -2])


def test_truncated_real_file(tmp_path):
    path = tmp_path / "t.safetensors"
    lg.save({"a": lg.Tensor(sample("float32"))}, path)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        lg.load(path)


# ---- PyTorch checkpoints


def torch_state_dict():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = collections.OrderedDict()
    for name in NP_DTYPES:
        sd[name] = torch.from_numpy(sample(name, (2, 3)))
    sd["bfloat16"] = torch.from_numpy(bf16_values()[:12].reshape(3, 4)).to(torch.bfloat16)
    sd["base"] = base
    sd["transposed"] = base.t()  # non-contiguous: strides (1, 6)
    sd["offset_view"] = base.view(-1)[5:11]  # shares base's storage, from element 5
    sd["strided"] = base[1:, ::2]  # offset 6, strides (6, 2)
    sd["expanded"] = torch.tensor([1, 2, 3], dtype=torch.int32)[:, None].expand(3, 4)  # stride 0
    sd["scalar"] = torch.tensor(7, dtype=torch.int64)
    sd["empty"] = torch.zeros(0, 5)
    return sd


def assert_tensor_equal(got, want, name):
    assert isinstance(got, lg.Tensor), name
    assert got.shape == tuple(want.shape), name
    assert got.dtype.name == str(want.dtype).removeprefix("torch."), name
    np.testing.assert_array_equal(got.numpy(), want.float().numpy() if want.dtype == torch.bfloat16 else want.numpy(),
                                  strict=True, err_msg=name)


def test_load_reads_a_pytorch_checkpoint_as_torch_load_would(tmp_path):
    sd = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "step": torch.tensor(3)}
    torch.save(sd, tmp_path / "model.pth")
    got = lg.load(tmp_path / "model.pth")
    assert list(got) == ["w", "step"]
    for k in sd: assert_tensor_equal(got[k], sd[k], k)


def test_pth_state_dict_loads(tmp_path):
    sd = torch_state_dict()
    path = tmp_path / "sd.pth"
    torch.save(sd, path)
    got = state.load_torch(path)
    assert list(got) == list(sd)
    for k, v in sd.items():
        if k != "bfloat16":
            assert_tensor_equal(got[k], v, k)
    assert got["bfloat16"].dtype is lg.bfloat16 and got["bfloat16"].shape == (3, 4)


def test_pth_bf16_values(tmp_path, bf16_device):
    sd = torch_state_dict()
    path = tmp_path / "sd.pth"
    torch.save({"b": sd["bfloat16"], "bt": sd["bfloat16"].t()}, path)
    got = state.load_torch(path, device=bf16_device)
    assert_tensor_equal(got["b"], sd["bfloat16"], "b")
    assert_tensor_equal(got["bt"], sd["bfloat16"].t(), "bt")


def test_pth_nested_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt_like = {"lr": 0.01, "betas": (0.9, 0.999), "names": ["a", "b"], "none": None, "flag": True}
    ckpt = {"model": model.state_dict(), "epoch": 3, "loss": 0.25, "tag": "run-1", "opt": opt_like,
            "param": torch.nn.Parameter(torch.ones(2)), "dtype": torch.float16}
    path = tmp_path / "ckpt.pt"
    torch.save(ckpt, path)
    got = state.load_torch(path)
    assert got["epoch"] == 3 and got["loss"] == 0.25 and got["tag"] == "run-1"
    assert got["opt"] == opt_like
    assert got["dtype"] is lg.float16
    assert list(got["model"]) == list(model.state_dict())
    for k, v in model.state_dict().items():
        assert_tensor_equal(got["model"][k], v, k)  # incl. BatchNorm's 0-d int64 num_batches_tracked
    assert got["param"].requires_grad and got["param"].numpy().tolist() == [1.0, 1.0]


def test_pth_deflated_members_load(tmp_path):
    """A zip whose members are deflated (torch never writes one, but a re-zipped file may be) still loads."""
    path, repacked = tmp_path / "a.pth", tmp_path / "b.pth"
    sd = {"w": torch.arange(6.0).reshape(2, 3).t()}
    torch.save(sd, path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(repacked, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert_tensor_equal(state.load_torch(repacked)["w"], sd["w"], "w")


class _RunsCode:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Evals:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


def test_pth_with_os_system_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "payload": _RunsCode(f"touch {marker}")}, path)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global '(posix|os|nt)\.system'"):
        state.load_torch(path)
    assert not marker.exists()


@pytest.mark.parametrize("obj, forbidden", [
    (_Evals(), r"'builtins\.eval'"),
    (torch.nn.Linear(2, 2), "torch.nn.modules.linear.Linear"),  # a whole model, not a state dict
    (np.float64(1.5), "numpy"),
])
def test_pth_other_globals_are_refused(tmp_path, obj, forbidden):
    path = tmp_path / "x.pth"
    torch.save({"x": obj}, path)
    with pytest.raises(pickle.UnpicklingError, match=forbidden):
        state.load_torch(path)


def test_pth_legacy_format_is_a_clear_error(tmp_path):
    path = tmp_path / "old.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match="not a PyTorch zip checkpoint"):
        state.load_torch(path)


def rezip(src, dst, replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            for suffix, fn in replace.items():
                if info.filename.endswith(suffix):
                    data = fn(data)
            zout.writestr(info.filename, data)


def test_pth_storage_of_wrong_size_is_refused(tmp_path):
    path, bad = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"w": torch.ones(4)}, path)
    rezip(path, bad, {"/data/0": lambda b: b[:-4]})
    with pytest.raises(ValueError, match="has 12 bytes, but 4 elements"):
        state.load_torch(bad)


def test_pth_view_past_its_storage_is_refused(tmp_path):
    """A pickle claiming a view bigger than its storage must not read past it (as_strided would)."""
    path, bad = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"w": torch.ones(4)[1:3]}, path)  # offset 1, size (2,), storage of 4
    # rewrite the pickled size (2,) -> (9,): BININT1 1 (offset), BININT1 2, TUPLE1
    rezip(path, bad, {"data.pkl": lambda b: b.replace(b"K\x01K\x02\x85", b"K\x01K\x09\x85", 1)})
    with pytest.raises(ValueError, match="reaches element 9 of a storage of 4 elements"):
        state.load_torch(bad)


def test_top_level_save_load(tmp_path):
    path = tmp_path / "m.safetensors"
    lg.save({"w": lg.ones(2, 2)}, path)
    assert lg.load(path)["w"].numpy().tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert lg.save is state.save and lg.load is state.load


def test_state_room_imports_only_tensor_and_dtype():
    """(and helpers, the leaf of shared utilities, for files written whole: it knows nothing of computation)"""
    import ast
    tree = ast.parse(open(state.__file__).read())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {m for m in mods if m.startswith("lazygrad")} <= {"lazygrad.tensor", "lazygrad.dtype", "lazygrad.helpers"}
    assert "torch" not in mods and "pickle" in mods
