"""nn.Module bookkeeping, layers, init and utils, compared with torch.nn on the same architectures and weights.

Shapes are small and shared between tests: every distinct kernel costs a compile.
"""
import math
import re

import numpy as np
import pytest
import torch

import lazygrad as lg
from lazygrad import nn
from lazygrad.nn import functional as F

RNG = np.random.default_rng(0)
X2 = RNG.standard_normal((4, 6)).astype(np.float32)          # (N, features)
X3 = RNG.standard_normal((4, 6, 5)).astype(np.float32)       # (N, C, L)
IMG = RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)   # (N, C, H, W)
SEQ = RNG.standard_normal((2, 5, 8)).astype(np.float32)      # (N, L, E)
MEM = RNG.standard_normal((2, 3, 8)).astype(np.float32)      # (N, S, E)


def needs(*names):
    """xfail (non-strict) a test whose layer calls a functional op that is not there yet."""
    missing = [n for n in names if not hasattr(F, n)]
    return pytest.mark.xfail(bool(missing), reason=f"lazygrad.nn.functional lacks {', '.join(missing)}", strict=False)


def close(actual, expected, rtol=1e-4, atol=1e-5, what="output"):
    want = expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    got = actual.numpy()
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def from_torch(lg_module, torch_module):
    """Copy torch's weights into the lazygrad module through load_state_dict (torch tensors are accepted)."""
    lg_module.load_state_dict(torch_module.state_dict())
    return lg_module


# ---------------------------------------------------------------- architectures built twice

def build(lib):
    """The same network in torch.nn or lazygrad.nn: every layer kind, nested containers and buffers."""
    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.Conv2d(4, 6, 3, padding=1)
            self.bn = lib.BatchNorm2d(6)
            self.features = lib.Sequential(lib.ReLU(), lib.MaxPool2d(2), lib.Conv1d(6, 6, 3, groups=2),
                                           lib.ConvTranspose2d(6, 3, 2, stride=2))
            self.blocks = lib.ModuleList([lib.Linear(8, 8), lib.LayerNorm(8), lib.GroupNorm(2, 8), lib.RMSNorm(8)])
            self.heads = lib.ModuleDict({"cls": lib.Linear(8, 3, bias=False), "bn1": lib.BatchNorm1d(3, affine=False)})
            self.attn = lib.MultiheadAttention(8, 2, batch_first=True)
            self.cross = lib.MultiheadAttention(8, 2, kdim=4, vdim=6)
            self.emb = lib.Embedding(10, 8, padding_idx=0)
            self.register_buffer("scale", lib_tensor(lib, [2.0]))
            self.register_buffer("cache", lib_tensor(lib, [0.0]), persistent=False)
            self.register_buffer("nothing", None)
            self.register_parameter("absent", None)
            self.drop, self.act, self.flat = lib.Dropout(0.1), lib.GELU(), lib.Flatten()
            self.loss = lib.CrossEntropyLoss(weight=lib_tensor(lib, [1.0, 2.0, 3.0]))
    return Net()


def lib_tensor(lib, data):
    return torch.tensor(data) if lib is torch.nn else lg.tensor(data)


@pytest.fixture(scope="module")
def nets():
    lg.manual_seed(0)
    torch.manual_seed(0)
    return build(nn), build(torch.nn)


def test_state_dict_keys_order_and_shapes_match_torch(nets):
    ours, theirs = nets
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for k, v in theirs_sd.items():
        assert ours_sd[k].shape == tuple(v.shape), k
        assert ours_sd[k].dtype.name == str(v.dtype).removeprefix("torch."), k
    assert "cache" not in ours_sd and "bn.num_batches_tracked" in ours_sd


def test_named_members_match_torch(nets):
    ours, theirs = nets
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert len(list(ours.buffers())) == len(list(theirs.buffers()))
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]
    assert [type(m).__name__ for m in ours.children()] == [type(m).__name__ for m in theirs.children()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in ours.parameters())
    assert [n for n, _ in ours.blocks.named_parameters(prefix="b")] == [n for n, _ in theirs.blocks.named_parameters(prefix="b")]
    assert [n for n, _ in ours.named_parameters(recurse=False)] == []


def test_repr_matches_torch(nets):
    ours, theirs = nets
    assert repr(ours) == repr(theirs)
    for ctor in (lambda lib: lib.Sequential(lib.Linear(2, 2), lib.Linear(2, 2), lib.Linear(2, 3), lib.Linear(2, 2)),
                 lambda lib: lib.ModuleList([lib.Linear(2, 2) for _ in range(3)] + [lib.ReLU()]),
                 lambda lib: lib.Sequential(lib.Softmax(dim=-1), lib.LogSoftmax(1), lib.LeakyReLU(0.2), lib.SiLU(),
                                            lib.Tanh(), lib.Sigmoid(), lib.Identity(), lib.Unflatten(1, (2, 3)),
                                            lib.AvgPool2d(2), lib.AdaptiveAvgPool2d((1, 1)), lib.Dropout(),
                                            lib.Conv2d(2, 4, (3, 1), stride=2, padding=1, dilation=2,
                                                       bias=False, padding_mode="reflect"),
                                            lib.ConvTranspose2d(2, 2, 3, output_padding=1, stride=2),
                                            lib.Conv1d(2, 2, 3, padding="same"),
                                            lib.BatchNorm1d(3, momentum=None, track_running_stats=False),
                                            lib.LayerNorm((2, 3), elementwise_affine=False), lib.RMSNorm(4, eps=1e-6),
                                            lib.Embedding(5, 2, max_norm=1.0), lib.GELU("tanh"), lib.ReLU(inplace=True),
                                            lib.MSELoss(), lib.L1Loss(reduction="sum"), lib.NLLLoss(), lib.BCEWithLogitsLoss())):
        assert repr(ctor(nn)) == repr(ctor(torch.nn))


# ---------------------------------------------------------------- registration rules

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer("steps", lg.zeros(1))


def test_attribute_registration():
    m = Tiny()
    m.w = nn.Parameter(lg.ones(2))
    m.plain = lg.ones(2)  # a Tensor that is neither a Parameter nor a registered buffer stays a plain attribute
    m.extra = nn.ReLU()
    assert [n for n, _ in m.named_parameters()] == ["w", "fc.weight", "fc.bias"]
    assert list(m.state_dict()) == ["w", "steps", "fc.weight", "fc.bias"]
    assert "plain" not in m.state_dict() and [n for n, _ in m.named_children()] == ["fc", "extra"]
    m.steps = lg.ones(1)  # assigning to a buffer name replaces the buffer
    assert m.state_dict()["steps"].numpy()[0] == 1
    m.w = None  # a parameter may be set to None: it leaves the state dict but keeps its slot
    assert "w" not in m.state_dict() and "w" in m._parameters
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = lg.ones(2)
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'fc'"):
        m.fc = 3
    with pytest.raises(AttributeError, match="'Tiny' object has no attribute 'nope'"):
        m.nope
    with pytest.raises(KeyError, match="attribute 'fc' already exists"):
        m.register_buffer("fc", lg.ones(1))
    del m.extra
    assert [n for n, _ in m.named_children()] == ["fc"]
    with pytest.raises(AttributeError, match="before Module.__init__"):
        class Broken(nn.Module):
            def __init__(self): self.p = nn.Parameter(lg.ones(1))
        Broken()
    shared = nn.Linear(2, 2)
    twice = nn.Sequential(shared, shared)
    assert len(list(twice.parameters())) == 2 and list(twice.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU) and seq[-1] is seq[2]
    tseq = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    assert list(seq[1:].state_dict()) == list(tseq[1:].state_dict()) == ["2.weight", "2.bias"]  # slices keep their keys
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3"] and isinstance(seq[3], nn.Sigmoid)
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    seq[2] = nn.Tanh()
    assert isinstance(seq[2], nn.Tanh) and [type(m).__name__ for m in seq] == ["Linear", "Linear", "Tanh"]
    with pytest.raises(IndexError):
        seq[5]
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["enc.weight", "enc.bias"] and named.act is named[1]

    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "ReLU", "Tanh"] and len(ml) == 4
    assert list(ml.state_dict()) == ["1.weight", "1.bias"] and isinstance(ml[1:3], nn.ModuleList)
    del ml[0]
    assert list(ml.state_dict()) == ["0.weight", "0.bias"]

    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    md.update([("c", nn.Tanh())])
    assert list(md) == ["a", "b", "c"] and "b" in md and len(md) == 3 and list(md.keys()) == ["a", "b", "c"]
    assert md.pop("b").__class__ is nn.ReLU and list(md.state_dict()) == ["a.weight", "a.bias"]


# ---------------------------------------------------------------- state dicts

def test_load_state_dict_round_trips_with_torch(nets):
    ours, theirs = nets
    from_torch(ours, theirs)
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    # and back: a lazygrad state dict loads into torch
    lg.manual_seed(1)
    fresh = build(nn)
    theirs2 = build(torch.nn)
    theirs2.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in fresh.state_dict().items()})
    for k, v in theirs2.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    # lazygrad to lazygrad; parameters keep their identity (an optimizer holding them sees the loaded values)
    w = ours.blocks[0].weight
    ours.load_state_dict(fresh.state_dict())
    assert ours.blocks[0].weight is w
    np.testing.assert_array_equal(w.numpy(), fresh.blocks[0].weight.numpy())


def error_lines(fn):
    with pytest.raises(RuntimeError) as info:
        fn()
    return str(info.value)


def test_load_state_dict_errors_match_torch_wording():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.out = nn.Linear(2, 2)

    class TNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)
            self.out = torch.nn.Linear(2, 2)

    ours, theirs = Net(), TNet()
    sd = {k: v for k, v in TNet().state_dict().items() if k != "fc.bias"}
    sd["extra.weight"] = torch.zeros(1)
    sd["fc.weight"] = torch.zeros(4, 3)  # a shape mismatch
    ours_msg = error_lines(lambda: ours.load_state_dict(sd))
    theirs_msg = error_lines(lambda: theirs.load_state_dict(sd))
    assert ours_msg.startswith("Error(s) in loading state_dict for Net:\n\t")
    ours_lines, theirs_lines = ours_msg.split("\n\t"), theirs_msg.split("\n\t")
    assert ours_lines[1:3] == theirs_lines[1:3] == ['Missing key(s) in state_dict: "fc.bias". ',
                                                    'Unexpected key(s) in state_dict: "extra.weight". ']
    assert ours_lines[3] == ("size mismatch for fc.weight: copying a param with shape (4, 3) from checkpoint, "
                             "the shape in current model is (2, 3).")
    assert re.sub(r"torch\.Size\(\[(\d+), (\d+)\]\)", r"(\1, \2)", theirs_lines[3]) == ours_lines[3]
    # strict=False: the same key lists, nothing raised for missing/unexpected
    good = {k: v for k, v in sd.items() if k != "fc.weight"}
    result = ours.load_state_dict(good, strict=False)
    expected = theirs.load_state_dict(good, strict=False)
    assert result.missing_keys == expected.missing_keys == ["fc.weight", "fc.bias"]
    assert result.unexpected_keys == expected.unexpected_keys == ["extra.weight"]
    missing, unexpected = result
    assert (missing, unexpected) == (["fc.weight", "fc.bias"], ["extra.weight"])
    assert repr(ours.load_state_dict(Net().state_dict())) == "<All keys matched successfully>"
    # a state dict without num_batches_tracked still loads (torch keeps the current count)
    bn = nn.BatchNorm1d(3)
    bn.load_state_dict({k: v for k, v in torch.nn.BatchNorm1d(3).state_dict().items() if "num_batches" not in k})


# ---------------------------------------------------------------- modes and conversions

def test_train_eval_zero_grad_apply_to():
    m = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    assert m.training and all(c.training for c in m.modules())
    assert m.eval() is m and not any(c.training for c in m.modules())
    m.train()
    assert all(c.training for c in m.modules())
    m[1].train(False)
    assert m.training and not m[1].training

    for p in m.parameters():
        p.grad = lg.ones(*p.shape)
    m.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    assert m.requires_grad_(False) is m and not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()

    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "BatchNorm1d", "Dropout", "Sequential"]  # children first, as torch

    w = m[0].weight
    m.to(lg.float64)
    assert m[0].weight is w and w.dtype is lg.float64 and m[1].running_mean.dtype is lg.float64
    assert m[1].num_batches_tracked.dtype is lg.int64  # only floating tensors change dtype
    m.float()
    assert w.dtype is lg.float32 and m.to("OPENCL") is m
    with pytest.raises(TypeError, match="floating point"):
        m.to(lg.int32)

    import copy
    m[0].weight.grad = lg.ones(4, 6)
    twin = copy.deepcopy(m)  # its own parameters, buffers and grads, the same values
    assert twin[0].weight is not m[0].weight and isinstance(twin[0].weight, nn.Parameter) and twin[0].weight.requires_grad
    np.testing.assert_array_equal(twin[0].weight.numpy(), m[0].weight.numpy())
    np.testing.assert_array_equal(twin[0].weight.grad.numpy(), np.ones((4, 6)))
    assert list(twin.state_dict()) == list(m.state_dict()) and not twin[1].training
    nn.init.zeros_(twin[0].weight)
    assert m[0].weight.numpy().any()


def test_tensors_deepcopy_and_pickle_as_in_torch():
    import copy
    import pickle
    w = nn.Parameter(lg.Tensor(np.arange(6, dtype=np.float64).reshape(2, 3)))
    w.grad = lg.full((2, 3), 0.5, dtype=lg.float64)
    twin = copy.deepcopy(w)
    assert type(twin) is nn.Parameter and twin.requires_grad and twin.dtype is lg.float64
    np.testing.assert_array_equal(twin.grad.numpy(), np.full((2, 3), 0.5))
    back = pickle.loads(pickle.dumps(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))))
    assert type(back[0].weight) is nn.Parameter and back[0].weight.requires_grad and back[1].running_var.numpy().tolist() == [1, 1]
    assert pickle.loads(pickle.dumps(w)).numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(w * 2)


# ---------------------------------------------------------------- init

N_INIT = (256, 200)  # 51200 samples: means and stds to about 1%


def test_calculate_gain_matches_torch():
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")


def stats(t):
    a = t.numpy().astype(np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def test_init_distributions():
    lg.manual_seed(0)
    t = lg.empty(*N_INIT)
    fan_in, fan_out = N_INIT[1], N_INIT[0]
    mean, std, lo, hi = stats(nn.init.kaiming_uniform_(t, a=math.sqrt(5)))
    bound = 1 / math.sqrt(fan_in)
    assert abs(mean) < 0.02 * bound and -bound <= lo and hi <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.02)
    mean, std, _, _ = stats(nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"))
    assert abs(mean) < 0.02 * std and std == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)
    bound = math.sqrt(6 / (fan_in + fan_out))
    mean, std, lo, hi = stats(nn.init.xavier_uniform_(t))
    assert -bound <= lo and hi <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.02)
    mean, std, _, _ = stats(nn.init.xavier_normal_(t, gain=2.0))
    assert std == pytest.approx(2 * math.sqrt(2 / (fan_in + fan_out)), rel=0.02)
    mean, std, lo, hi = stats(nn.init.uniform_(t, -3, 5))
    assert -3 <= lo and hi <= 5 and mean == pytest.approx(1, abs=0.05) and std == pytest.approx(8 / math.sqrt(12), rel=0.02)
    mean, std, _, _ = stats(nn.init.normal_(t, 2.0, 0.5))
    assert mean == pytest.approx(2, abs=0.01) and std == pytest.approx(0.5, rel=0.02)
    mean, std, lo, hi = stats(nn.init.trunc_normal_(t, mean=1.0, std=2.0, a=-1.0, b=3.0))
    # Normal(1, 2) cut to +-1 std: the std of a normal truncated at +-1 sigma is 0.5379 sigma
    assert -1 <= lo and hi <= 3 and mean == pytest.approx(1, abs=0.02) and std == pytest.approx(2 * 0.5379, rel=0.02)
    for fill, value in ((nn.init.zeros_, 0), (nn.init.ones_, 1), (lambda x: nn.init.constant_(x, 0.25), 0.25)):
        assert (fill(t).numpy() == value).all()
    q = nn.init.orthogonal_(lg.empty(6, 10), gain=2.0).numpy()
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(6), atol=1e-5)
    np.testing.assert_array_equal(nn.init.eye_(lg.empty(3, 4)).numpy(), np.eye(3, 4))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(lg.empty(5))


def test_layer_default_init_and_seed():
    lg.manual_seed(0)
    big = nn.Linear(400, 128)
    bound = 1 / math.sqrt(400)
    _, std, lo, hi = stats(big.weight)
    assert -bound <= lo and hi <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.02)
    _, _, lo, hi = stats(big.bias)
    assert -bound <= lo and hi <= bound and hi - lo > 1.5 * bound
    conv = nn.Conv2d(8, 64, 5, groups=2)  # fan_in = 8 / 2 * 5 * 5
    _, _, lo, hi = stats(conv.weight)
    assert -1 / 10 <= lo and hi <= 1 / 10 and hi > 0.09
    convt = nn.ConvTranspose2d(16, 8, 3)  # weight (16, 8, 3, 3): fan_in = 8 * 9
    _, _, lo, hi = stats(convt.weight)
    assert -1 / math.sqrt(72) <= lo and hi <= 1 / math.sqrt(72) and hi > 0.9 / math.sqrt(72)
    mean, std, _, _ = stats(nn.Embedding(1000, 64).weight)
    assert abs(mean) < 0.02 and std == pytest.approx(1, rel=0.02)
    assert not nn.Embedding(10, 4, padding_idx=-1).weight.numpy()[9].any()
    for norm in (nn.BatchNorm2d(4), nn.LayerNorm(4), nn.GroupNorm(2, 4), nn.RMSNorm(4)):
        assert (norm.weight.numpy() == 1).all()
        if getattr(norm, "bias", None) is not None: assert not norm.bias.numpy().any()
    bn = nn.BatchNorm2d(4)
    assert not bn.running_mean.numpy().any() and (bn.running_var.numpy() == 1).all() and bn.num_batches_tracked.item() == 0
    mha = nn.MultiheadAttention(8, 2)
    assert not mha.in_proj_bias.numpy().any() and not mha.out_proj.bias.numpy().any()
    assert np.abs(mha.in_proj_weight.numpy()).max() <= math.sqrt(6 / (8 + 24))
    lg.manual_seed(7)
    a = nn.Linear(3, 3).weight.numpy()
    lg.manual_seed(7)
    np.testing.assert_array_equal(a, nn.Linear(3, 3).weight.numpy())


# ---------------------------------------------------------------- layers against torch

def run_pair(make, x, rtol=1e-4, atol=1e-5, train=False, grad=False, **kw):
    """Build the layer in both libraries, copy torch's weights, run forward (and backward) and compare."""
    torch.manual_seed(0)
    theirs = make(torch.nn)
    ours = from_torch(make(nn), theirs)
    theirs.train(train)
    ours.train(train)
    tx = torch.tensor(x, requires_grad=grad and x.dtype.kind == "f")
    lx = lg.tensor(x, requires_grad=grad and x.dtype.kind == "f")
    t_out, l_out = theirs(tx, **kw), ours(lx, **kw)
    close(l_out, t_out, rtol, atol)
    if grad:
        (t_out * torch.tensor(np.linspace(-1, 1, t_out.numel(), dtype=np.float32).reshape(t_out.shape))).sum().backward()
        (l_out * lg.tensor(np.linspace(-1, 1, t_out.numel(), dtype=np.float32).reshape(t_out.shape))).sum().backward()
        if tx.requires_grad:
            close(lx.grad, tx.grad, rtol, atol, "input grad")
        for (name, tp), (_, lp) in zip(theirs.named_parameters(), ours.named_parameters()):
            close(lp.grad, tp.grad, rtol, atol, f"{name} grad")
    return ours, theirs


def test_linear():
    run_pair(lambda lib: lib.Linear(6, 3), X2, grad=True)
    run_pair(lambda lib: lib.Linear(6, 3, bias=False), X2)


@needs("conv1d")
def test_conv1d():
    run_pair(lambda lib: lib.Conv1d(6, 4, 3, padding=1, groups=2), X3, grad=True)
    run_pair(lambda lib: lib.Conv1d(6, 4, 2, stride=2, dilation=2, bias=False), X3)


@needs("conv2d")
def test_conv2d():
    run_pair(lambda lib: lib.Conv2d(4, 3, 3, padding=1), IMG, grad=True)
    run_pair(lambda lib: lib.Conv2d(4, 4, (3, 2), stride=(2, 1), dilation=(1, 2), groups=4, bias=False), IMG)
    run_pair(lambda lib: lib.Conv2d(4, 2, 3, padding="same"), IMG)


@needs("conv2d", "pad")
def test_conv2d_padding_modes():
    run_pair(lambda lib: lib.Conv2d(4, 2, 3, padding=1, padding_mode="reflect"), IMG)


@needs("conv_transpose2d")
def test_conv_transpose2d():
    run_pair(lambda lib: lib.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), IMG, grad=True)
    run_pair(lambda lib: lib.ConvTranspose2d(4, 2, 2, stride=2, groups=2, bias=False), IMG)
    run_pair(lambda lib: lib.ConvTranspose2d(4, 2, 3, stride=2, padding=1), IMG, output_size=(12, 12))
    with pytest.raises(ValueError, match="valid sizes range"):
        nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1)(lg.tensor(IMG), output_size=(20, 20))


@needs("batch_norm")
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_training_updates_running_stats(momentum):
    torch.manual_seed(0)
    theirs = torch.nn.BatchNorm2d(4, momentum=momentum)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        theirs.bias.uniform_(-0.5, 0.5)
    ours = from_torch(nn.BatchNorm2d(4, momentum=momentum), theirs)
    for scale in (1.0, 2.0, 0.5):  # three training steps
        close(ours(lg.tensor(IMG * scale)), theirs(torch.tensor(IMG * scale)), what="train output")
    for key in ("running_mean", "running_var"):
        close(getattr(ours, key), getattr(theirs, key), what=key)
    assert ours.num_batches_tracked.item() == theirs.num_batches_tracked.item() == 3
    ours.eval(), theirs.eval()
    close(ours(lg.tensor(IMG)), theirs(torch.tensor(IMG)), what="eval output")
    assert ours.num_batches_tracked.item() == 3  # eval leaves the statistics alone


@needs("batch_norm")
def test_batchnorm1d():
    run_pair(lambda lib: lib.BatchNorm1d(6), X2, train=True, grad=True)
    run_pair(lambda lib: lib.BatchNorm1d(6), X3, train=True)
    run_pair(lambda lib: lib.BatchNorm1d(6, affine=False, track_running_stats=False), X3, train=False)
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(6)(lg.tensor(IMG))
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(6)(lg.tensor(X3))


@needs("layer_norm")
def test_layer_norm():
    run_pair(lambda lib: lib.LayerNorm(5), X3, grad=True)
    run_pair(lambda lib: lib.LayerNorm((6, 5), elementwise_affine=False), X3)


@needs("group_norm")
def test_group_norm():
    run_pair(lambda lib: lib.GroupNorm(2, 4), IMG, grad=True)


@needs("rms_norm")
def test_rms_norm():
    run_pair(lambda lib: lib.RMSNorm(5), X3, grad=True)
    run_pair(lambda lib: lib.RMSNorm((6, 5), eps=1e-3), X3)


@needs("embedding")
def test_embedding():
    idx = np.array([[0, 3, 9], [3, 3, 1]], dtype=np.int64)
    ours, theirs = run_pair(lambda lib: lib.Embedding(10, 4, padding_idx=3), idx)
    out = ours(lg.tensor(idx))
    (out * lg.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))).sum().backward()
    tout = theirs(torch.tensor(idx))
    (tout * torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)).sum().backward()
    close(ours.weight.grad, theirs.weight.grad, what="weight grad")
    pre = torch.randn(5, 2)
    emb = nn.Embedding.from_pretrained(lg.tensor(pre.numpy()))
    assert not emb.weight.requires_grad and emb.weight.shape == (5, 2)


@needs("dropout")
def test_dropout():
    x = lg.ones(64, 64)
    drop = nn.Dropout(0.25)
    lg.manual_seed(0)
    out = drop(x).numpy()
    kept = out != 0
    assert 0.7 < kept.mean() < 0.8 and np.allclose(out[kept], 1 / 0.75)
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


ACTIVATIONS = [
    ("ReLU", lambda lib: lib.ReLU(), ()), ("GELU", lambda lib: lib.GELU(), ("gelu",)),
    ("GELU_tanh", lambda lib: lib.GELU(approximate="tanh"), ("gelu",)), ("SiLU", lambda lib: lib.SiLU(), ("silu",)),
    ("Tanh", lambda lib: lib.Tanh(), ()), ("Sigmoid", lambda lib: lib.Sigmoid(), ()),
    ("Softmax", lambda lib: lib.Softmax(dim=1), ()), ("LogSoftmax", lambda lib: lib.LogSoftmax(dim=-1), ()),
    ("LeakyReLU", lambda lib: lib.LeakyReLU(0.1), ("leaky_relu",)), ("Identity", lambda lib: lib.Identity(7, k=1), ()),
    ("Flatten", lambda lib: lib.Flatten(), ()), ("Unflatten", lambda lib: lib.Unflatten(1, (2, 3)), ()),
]


@pytest.mark.parametrize("name,make,fns", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_and_shape_modules(name, make, fns):
    if any(not hasattr(F, f) for f in fns): pytest.xfail(f"lazygrad.nn.functional lacks {fns}")
    run_pair(make, X3 if name in ("Flatten", "Unflatten") else X2, grad=name in ("GELU", "SiLU"))


@needs("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")
def test_pooling():
    run_pair(lambda lib: lib.MaxPool2d(2), IMG, grad=True)
    run_pair(lambda lib: lib.MaxPool2d(3, stride=2, padding=1), IMG)
    run_pair(lambda lib: lib.AvgPool2d(2), IMG)
    run_pair(lambda lib: lib.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), IMG)
    run_pair(lambda lib: lib.AdaptiveAvgPool2d((1, 1)), IMG)
    run_pair(lambda lib: lib.AdaptiveAvgPool2d(3), IMG)


def test_sequential_forward():
    run_pair(lambda lib: lib.Sequential(lib.Linear(6, 3), lib.ReLU(), lib.Linear(3, 3), lib.Tanh()), X2)


# ---------------------------------------------------------------- attention

def mha_pair(batch_first, **kw):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=batch_first, **kw)
    ours = from_torch(nn.MultiheadAttention(8, 2, batch_first=batch_first, **kw), theirs)
    return ours, theirs.eval()


def seq_inputs(batch_first, kdim=8):
    q, kv = SEQ, MEM[..., :kdim]
    if not batch_first: q, kv = q.transpose(1, 0, 2).copy(), kv.transpose(1, 0, 2).copy()
    return q, kv


@needs("scaled_dot_product_attention", "softmax")
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention(batch_first):
    ours, theirs = mha_pair(batch_first)
    q, kv = seq_inputs(batch_first)
    causal = np.triu(np.ones((5, 3), dtype=bool), k=1)
    kpm = np.array([[False, False, True], [False, False, False]])
    float_mask = RNG.standard_normal((5, 3)).astype(np.float32)
    cases = [dict()]
    if batch_first:  # the masks once; the layouts share everything after the first transpose
        cases += [dict(attn_mask=causal, need_weights=False),
                  dict(attn_mask=float_mask, key_padding_mask=kpm, average_attn_weights=False)]
    for case in cases:
        t_out, t_w = theirs(torch.tensor(q), torch.tensor(kv), torch.tensor(kv),
                            **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in case.items()})
        l_out, l_w = ours(lg.tensor(q), lg.tensor(kv), lg.tensor(kv),
                          **{k: lg.tensor(v) if isinstance(v, np.ndarray) else v for k, v in case.items()})
        close(l_out, t_out, what=f"output {list(case)}")
        if t_w is None: assert l_w is None
        else: close(l_w, t_w, what=f"weights {list(case)}")


@needs("scaled_dot_product_attention", "softmax")
def test_multihead_attention_grads_kdim_unbatched():
    ours, theirs = mha_pair(True)
    tq = torch.tensor(SEQ, requires_grad=True)
    lq = lg.tensor(SEQ, requires_grad=True)
    t_out, _ = theirs(tq, tq, tq, need_weights=False)
    l_out, _ = ours(lq, lq, lq, need_weights=False)
    close(l_out, t_out)
    t_out.sum().backward()
    l_out.sum().backward()
    close(lq.grad, tq.grad, what="query grad")
    close(ours.in_proj_weight.grad, theirs.in_proj_weight.grad, what="in_proj_weight grad")
    close(ours.out_proj.weight.grad, theirs.out_proj.weight.grad, what="out_proj.weight grad")
    # separate key/value sizes (q/k/v_proj_weight instead of the packed in_proj_weight), on one unbatched sequence
    ours, theirs = mha_pair(False, kdim=4, vdim=4)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    t_out, t_w = theirs(torch.tensor(SEQ[0]), torch.tensor(MEM[0, :, :4]), torch.tensor(MEM[0, :, :4]))
    l_out, l_w = ours(lg.tensor(SEQ[0]), lg.tensor(MEM[0, :, :4]), lg.tensor(MEM[0, :, :4]))
    close(l_out, t_out)
    close(l_w, t_w)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        ours(lg.tensor(SEQ), lg.tensor(MEM), lg.tensor(MEM), is_causal=True)


# ---------------------------------------------------------------- losses

LOGITS = RNG.standard_normal((4, 3)).astype(np.float32)
LABELS = np.array([0, 2, 1, 2], dtype=np.int64)
CLASS_W = np.array([1.0, 2.0, 0.5], dtype=np.float32)


@needs("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits")
def test_losses():
    probs = (RNG.random((4, 3)) > 0.5).astype(np.float32)
    cases = [
        (lambda lib, w: lib.CrossEntropyLoss(weight=w(CLASS_W), label_smoothing=0.1), LOGITS, LABELS),
        (lambda lib, w: lib.CrossEntropyLoss(ignore_index=2, reduction="sum"), LOGITS, LABELS),
        (lambda lib, w: lib.NLLLoss(weight=w(CLASS_W)), np.log(np.exp(LOGITS) / np.exp(LOGITS).sum(1, keepdims=True)), LABELS),
        (lambda lib, w: lib.MSELoss(), LOGITS, probs),
        (lambda lib, w: lib.L1Loss(reduction="none"), LOGITS, probs),
        (lambda lib, w: lib.BCEWithLogitsLoss(pos_weight=w(CLASS_W)), LOGITS, probs),
        (lambda lib, w: lib.BCEWithLogitsLoss(weight=w(CLASS_W), reduction="sum"), LOGITS, probs),
    ]
    for i, (make, x, y) in enumerate(cases):
        theirs, ours = make(torch.nn, torch.tensor), make(nn, lg.tensor)
        tx, lx = torch.tensor(x, requires_grad=i == 1), lg.tensor(x, requires_grad=i == 1)
        t_loss, l_loss = theirs(tx, torch.tensor(y)), ours(lx, lg.tensor(y))
        close(l_loss, t_loss, what=repr(theirs))
        if i == 1:  # the modules only pass arguments on: one gradient check is enough
            t_loss.backward()
            l_loss.backward()
            close(lx.grad, tx.grad, what=f"{theirs!r} grad")
    assert list(nn.CrossEntropyLoss(weight=lg.tensor(CLASS_W)).state_dict()) == ["weight"]


# ---------------------------------------------------------------- utils

def grads_pair():
    """Two parameter lists (lazygrad, torch) with the same gradients."""
    shapes = [(4, 6), (4, 6), (6,)]
    grads = [RNG.standard_normal(s).astype(np.float32) * 3 for s in shapes]
    ours = [nn.Parameter(lg.zeros(*s)) for s in shapes]
    theirs = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = lg.tensor(g), torch.tensor(g)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_matches_torch_and_is_lazy(norm_type):
    ours, theirs = grads_pair()
    before = lg.kernel_count()
    total = nn.utils.clip_grad_norm_(ours, max_norm=1.5, norm_type=norm_type)
    assert lg.kernel_count() == before  # nothing ran: the clipping waits for the step that reads the gradients
    t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.5, norm_type=norm_type)
    close(total, t_total, what="total norm")
    for p, t in zip(ours, theirs):
        close(p.grad, t.grad, what="clipped grad")
    if norm_type == 2.0:  # a norm below max_norm leaves gradients as they are
        ours, theirs = grads_pair()
        nn.utils.clip_grad_norm_(ours, max_norm=1e6, norm_type=norm_type)
        close(ours[0].grad, theirs[0].grad)


def test_clip_grad_value_and_vectors():
    ours, theirs = grads_pair()
    nn.utils.clip_grad_value_(ours, 0.5)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, t in zip(ours, theirs):
        close(p.grad, t.grad)
    params = [nn.Parameter(lg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))), nn.Parameter(lg.tensor([7.0, 8.0]))]
    vec = nn.utils.parameters_to_vector(params)
    np.testing.assert_array_equal(vec.numpy(), np.array([0, 1, 2, 3, 4, 5, 7, 8], dtype=np.float32))
    nn.utils.vector_to_parameters(vec * 2, params)
    np.testing.assert_array_equal(params[0].numpy(), np.arange(6).reshape(2, 3) * 2)
    np.testing.assert_array_equal(params[1].numpy(), [14, 16])
    with pytest.raises(RuntimeError, match="non-finite"):
        p = nn.Parameter(lg.zeros(2))
        p.grad = lg.tensor([math.inf, 1.0])
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


# ---------------------------------------------------------------- the room's boundary

def test_nn_and_optim_import_only_tensor_dtype_functional_and_optim_jit():
    import ast
    import pathlib
    allowed = {"lazygrad.tensor", "lazygrad.dtype", "lazygrad.nn", "lazygrad.nn.functional", "lazygrad.nn.init",
               "lazygrad.nn.module", "lazygrad.nn.layers", "lazygrad.nn.recurrent", "lazygrad.nn.utils", "lazygrad.nn.utils.rnn",
               "lazygrad.optim", "lazygrad.optim.lr_scheduler"}
    root = pathlib.Path(lg.__file__).parent
    files = [root / "nn" / f for f in ("__init__.py", "module.py", "layers.py", "recurrent.py", "init.py",
                                            "utils/__init__.py", "utils/rnn.py")]
    files += [root / "optim" / "__init__.py", root / "optim" / "lr_scheduler.py"]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] + [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                if name.startswith("lazygrad"):
                    # an optimizer replays its update through lazygrad.jit (see Optimizer._replay_key)
                    ok = allowed | ({"lazygrad.jit"} if path.parent.name == "optim" else set())
                    assert name in ok or name.rpartition(".")[0] in ok, f"{path.name} imports {name}"
