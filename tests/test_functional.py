"""Compare lazygrad.nn.functional against torch.nn.functional: outputs and every input's gradient, plus errors.

Every distinct kernel costs a compile (~0.3 s), so shapes are small and shared between tests (equal shapes give equal
kernels), and ops of one signature are checked together by `check_batch`: one forward and one backward pass for all.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import lazygrad as lg
from lazygrad.tensor import matmul_panel
import lazygrad.nn.functional as F
from tests.test_ops import assert_same


class Fixed:
    """An input used as given in both libraries, without a gradient (targets, masks, class weights)."""
    def __init__(self, value, dtype=None):
        self.value = np.asarray(value, dtype=dtype)

    def __repr__(self):
        return f"Fixed({self.value.tolist()})"


def lib_tensor(F, value):
    """A Fixed value as a tensor of the library F belongs to."""
    value = value.value if isinstance(value, Fixed) else value
    return torch.tensor(value) if F is TF else lg.tensor(value)


def _draw(rng, spec, low, high):
    return spec.value if isinstance(spec, Fixed) else rng.uniform(low, high, size=spec).astype(np.float32)


def _backward_both(torch_out, lg_out, rng):
    if torch_out.ndim == 0:
        torch_out.backward()
        lg_out.backward()
    else:
        upstream = rng.standard_normal(torch_out.shape).astype(np.float32)
        torch_out.backward(torch.tensor(upstream))
        lg_out.backward(lg.Tensor(upstream))


def check(fn, *inputs, atol=1e-5, rtol=1e-4, low=-2.0, high=2.0, seed=0, grad=True):
    """Run fn(functional_module, *tensors) with torch.nn.functional and lazygrad.nn.functional; compare the outputs
    and the gradient of every input.

    Each input is a shape (random floats in [low, high) that get gradients) or a Fixed array (no gradient).
    """
    rng = np.random.default_rng(seed)
    arrays = [_draw(rng, i, low, high) for i in inputs]
    wants = [grad and not isinstance(i, Fixed) for i in inputs]
    torch_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    lg_in = [lg.Tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
    torch_out, lg_out = fn(TF, *torch_in), fn(F, *lg_in)
    lg_out = lg_out.contiguous()
    assert_same(lg_out, torch_out, atol, rtol)
    if not any(wants):
        return lg_out
    _backward_both(torch_out, lg_out, rng)
    # contiguous() first: a gradient that is a view is then computed in place, not stored and copied (a kernel less)
    grads = [t.grad.contiguous() if t.grad is not None else None for t in lg_in]
    lg.realize(*[g for g in grads if g is not None])  # one schedule for all of them
    for i, (g, torch_x, w) in enumerate(zip(grads, torch_in, wants)):
        if not w:
            continue
        if torch_x.grad is None:
            assert g is None or not g.numpy().any(), f"input {i} grad should be zero"
        else:
            assert g is not None, f"input {i} got no gradient"
            assert_same(g, torch_x.grad, atol, rtol, what=f"grad of input {i}")
    return lg_out


def check_batch(fns: dict, *inputs, atol=1e-5, rtol=1e-4, seed=0):
    """`check` for several ops of one signature and output shape at once: fns maps a name to (fn, options) with
    optional low/high per op. On the lazygrad side input i of op k is slice k of one batched leaf and the outputs
    are stacked, so all ops share one forward and one backward pass (a few kernels instead of a few per op)."""
    rng = np.random.default_rng(seed)
    names = list(fns)
    per_op = [[_draw(rng, spec, fns[n][1].get("low", -2.0), fns[n][1].get("high", 2.0)) for spec in inputs] for n in names]
    batched = [not isinstance(spec, Fixed) for spec in inputs]
    leaves = [lg.Tensor(np.stack([arrs[i] for arrs in per_op]), requires_grad=True) if b else lg.Tensor(inputs[i].value)
              for i, b in enumerate(batched)]
    outs = [fns[n][0](F, *[leaf[k] if b else leaf for leaf, b in zip(leaves, batched)]) for k, n in enumerate(names)]
    lg_out = lg.stack(outs)
    torch_outs, torch_ins = [], []
    for n, arrs in zip(names, per_op):
        ins = [torch.tensor(a, requires_grad=b) for a, b in zip(arrs, batched)]
        torch_outs.append(fns[n][0](TF, *ins))
        torch_ins.append(ins)
    upstream = rng.standard_normal(lg_out.shape).astype(np.float32)
    for out, u in zip(torch_outs, upstream):
        out.backward(torch.tensor(u))
    lg_out.backward(lg.Tensor(upstream))
    grads = [leaf.grad.contiguous() if b else None for leaf, b in zip(leaves, batched)]
    lg.realize(lg_out, *[g for g in grads if g is not None])
    got = lg_out.numpy()
    assert lg_out.dtype == lg.float32
    for k, n in enumerate(names):
        np.testing.assert_allclose(got[k], torch_outs[k].detach().numpy(), atol=atol, rtol=rtol, err_msg=f"{n}: output")
        for i, g in enumerate(grads):
            if g is not None:
                want = torch_ins[k][i].grad
                want = np.zeros_like(per_op[k][i]) if want is None else want.numpy()
                np.testing.assert_allclose(g.numpy()[k], want, atol=atol, rtol=rtol, err_msg=f"{n}: grad of input {i}")


# ---------------------------------------------------------------- activations

ACTIVATIONS = {
    "relu": (lambda F, x: F.relu(x), {}),
    "relu6": (lambda F, x: F.relu6(x), dict(low=-3, high=8)),
    "hardtanh": (lambda F, x: F.hardtanh(x, -0.5, 1.5), {}),
    "gelu": (lambda F, x: F.gelu(x), dict(low=-6, high=6)),
    "gelu tanh": (lambda F, x: F.gelu(x, approximate="tanh"), dict(low=-6, high=6)),
    "silu": (lambda F, x: F.silu(x), dict(low=-6, high=6)),
    "leaky_relu": (lambda F, x: F.leaky_relu(x, 0.2), {}),
    "elu": (lambda F, x: F.elu(x, alpha=1.5), dict(low=-30, high=30)),
    "celu": (lambda F, x: F.celu(x, alpha=0.7), {}),
    "selu": (lambda F, x: F.selu(x), {}),
    "softplus": (lambda F, x: F.softplus(x), dict(low=-30, high=30)),
    "softplus beta threshold": (lambda F, x: F.softplus(x, beta=2, threshold=3), {}),
    "mish": (lambda F, x: F.mish(x), dict(low=-6, high=6)),
    "hardswish": (lambda F, x: F.hardswish(x), dict(low=-5, high=5)),
    "hardsigmoid": (lambda F, x: F.hardsigmoid(x), dict(low=-5, high=5)),
    "logsigmoid": (lambda F, x: F.logsigmoid(x), dict(low=-30, high=30)),
    "sigmoid": (lambda F, x: F.sigmoid(x), dict(low=-6, high=6)),
    "tanh": (lambda F, x: F.tanh(x), dict(low=-3, high=3)),
    "softsign": (lambda F, x: F.softsign(x), {}),
    "tanhshrink": (lambda F, x: F.tanhshrink(x), {}),
    "softshrink": (lambda F, x: F.softshrink(x, 0.7), {}),
    "hardshrink": (lambda F, x: F.hardshrink(x, 0.7), {}),
    "threshold": (lambda F, x: F.threshold(x, 0.3, -2.0), {}),
    "rrelu eval": (lambda F, x: F.rrelu(x), {}),
    "softmax dim 0": (lambda F, x: F.softmax(x, dim=0), {}),
    "log_softmax dim -1": (lambda F, x: F.log_softmax(x, dim=-1), dict(low=-20, high=20)),
    "softmin": (lambda F, x: F.softmin(x, dim=1), {}),
    "normalize": (lambda F, x: F.normalize(x, dim=-1), {}),
    "normalize p=1": (lambda F, x: F.normalize(x, p=1, dim=0), {}),
}


def test_activations():
    check_batch(ACTIVATIONS, (4, 6))


def test_glu_and_prelu():
    check(lambda F, x: F.glu(x, dim=-2), (4, 6))
    check(lambda F, x, w: F.prelu(x, w), (2, 3, 4), (3,))


def test_gelu_gradient_at_zero_and_in_the_far_tail():
    x = lg.Tensor([0.0, -9.0, 9.0], requires_grad=True)
    out = F.gelu(x)
    out.sum().backward()
    np.testing.assert_allclose(out.numpy(), [0.0, 0.0, 9.0], atol=1e-7)
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.0, 1.0], atol=1e-7)


def test_gelu_keeps_its_relative_accuracy_in_the_negative_tail():
    """x * Phi(x) with Phi from erfc: where 1 + erf(x / sqrt 2) would cancel (x < -1, torch's own float32 result is off
    by 5% at x = -5), the value keeps float32's relative accuracy; against float64 math.erfc."""
    x = np.linspace(-9, 6, 3001).astype(np.float32)
    xt = lg.Tensor(x, requires_grad=True)
    out = F.gelu(xt)
    out.sum().backward()
    want = np.array([0.5 * float(v) * math.erfc(-float(v) / math.sqrt(2)) for v in x])
    # 2e-5: in the far tail exp(-x^2/2) magnifies its argument's rounding (x^2 / 2 is about 40 at x = -9)
    np.testing.assert_allclose(out.numpy(), want, rtol=2e-5, atol=1e-30)
    slope = np.array([0.5 * math.erfc(-float(v) / math.sqrt(2)) + float(v) * math.exp(-0.5 * float(v) ** 2) / math.sqrt(2 * math.pi)
                      for v in x])
    np.testing.assert_allclose(xt.grad.numpy(), slope, atol=3e-7)


def test_log_softmax_and_cross_entropy_stay_finite_for_huge_logits():
    logits = np.array([[1e4, -1e4, 0.5e4], [-1e4, -1e4 + 3, 1e4]], dtype=np.float32)
    out = F.log_softmax(lg.Tensor(logits), dim=-1).numpy()
    np.testing.assert_allclose(out, TF.log_softmax(torch.tensor(logits), dim=-1).numpy(), rtol=1e-6)
    x = np.array([[1e4, 1e4 - 1, -1e4], [-2e4, -2e4 + 1, -2e4 - 5]], dtype=np.float32)
    np.testing.assert_allclose(lg.Tensor(x).logsumexp(-1).numpy(), torch.tensor(x).logsumexp(-1).numpy(), rtol=1e-6)


def test_cross_entropy_and_its_gradient_for_huge_logits():
    out = check(lambda F, x, t: F.cross_entropy(x, t, label_smoothing=0.1), (2, 3), Fixed([0, 2], np.int64), low=-1e4, high=1e4, atol=1e-4)
    assert np.isfinite(out.item())


def test_softmax_of_all_minus_inf_row_is_nan_like_torch():
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, 1.0, -np.inf]], dtype=np.float32)
    got = F.softmax(lg.Tensor(x), dim=-1).numpy()
    np.testing.assert_allclose(got, TF.softmax(torch.tensor(x), dim=-1).numpy(), atol=1e-6)
    assert np.isnan(got[0]).all()


def test_softmax_implicit_dim_warns_and_follows_torch():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        got = F.softmax(lg.Tensor(x))
    with pytest.warns(UserWarning):
        want = TF.softmax(torch.tensor(x))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5)


def test_inplace_activation_overwrites_a_tensor_without_grad():
    x = lg.Tensor([-1.0, 2.0, 7.0])
    out = F.relu6(x, inplace=True)
    assert out is x
    np.testing.assert_array_equal(x.numpy(), [0.0, 2.0, 6.0])


# ---------------------------------------------------------------- linear

def test_linear_and_bilinear():
    check(lambda F, x, w, b: F.linear(x, w, b), (2, 3, 4), (5, 4), (5,))
    check(lambda F, a, b, w, bias: F.bilinear(a, b, w, bias), (3, 4), (3, 2), (5, 4, 2), (5,), grad=False)


# ---------------------------------------------------------------- convolution

X4 = (2, 4, 6, 5)  # N, C, H, W

CONV2D = {
    "bias stride 2 padding 1": ((8, 4, 3, 3), dict(stride=2, padding=1)),
    "dilation 2 groups 2 same": ((6, 2, 3, 2), dict(dilation=2, groups=2, padding="same")),
    "kernel (2, 3) stride (2, 3) dilation 3": ((2, 4, 2, 3), dict(stride=(2, 3), dilation=(3, 1), padding=(2, 0))),
    "depthwise valid": ((4, 1, 3, 3), dict(groups=4, padding="valid")),
}


@pytest.mark.parametrize("wshape, kwargs", CONV2D.values(), ids=CONV2D.keys())
def test_conv2d(wshape, kwargs):
    check(lambda F, x, w, b: F.conv2d(x, w, b, **kwargs), X4, wshape, (wshape[0],))


def test_conv2d_unbatched_input_and_1x1():
    check(lambda F, x, w: F.conv2d(x, w, padding=1), X4[1:], (8, 4, 3, 3), grad=False)
    check(lambda F, x, w: F.conv2d(x, w, stride=2), X4, (3, 4, 1, 1), grad=False)


def test_conv1d_and_conv3d():
    check(lambda F, x, w, b: F.conv1d(x, w, b, stride=2, padding=2, dilation=2), (2, 4, 9), (3, 4, 3), (3,))
    check(lambda F, x, w: F.conv3d(x, w, stride=(1, 2, 1), padding=1), (1, 2, 3, 4, 3), (3, 2, 2, 2, 2), grad=False)


def test_conv_big_enough_for_weight_panels():
    """Convolutions big enough that OpenCL on a CPU runs them channels-last against the weight copied to panels."""
    check(lambda F, x, w, b: F.conv2d(x, w, b, padding=1), (2, 8, 16, 16), (16, 8, 3, 3), (16,), atol=1e-4)
    check(lambda F, x, w: F.conv2d(x, w, stride=2, dilation=2), (2, 8, 24, 24), (24, 8, 3, 3), atol=1e-4)
    check(lambda F, x, w: F.conv1d(x, w, padding=2), (4, 16, 60), (32, 16, 5), atol=1e-4)


def test_conv_with_weight_panels_is_two_kernels():
    x, w = lg.randn(2, 8, 16, 16).realize(), lg.randn(16, 8, 3, 3).realize()
    panel = matmul_panel(x.device, 2 * 16 * 16, 16, 8 * 9)
    before = lg.kernel_count()
    F.conv2d(x, w, padding=1).realize()
    assert lg.kernel_count() - before == (2 if panel else 1)  # the weight's copy to panels, then the convolution


def test_conv_forward_is_one_kernel():
    x, w = lg.randn(*X4).realize(), lg.randn(8, 4, 3, 3).realize()
    before = lg.kernel_count()
    F.conv2d(x, w, stride=2, padding=1).realize()
    assert lg.kernel_count() - before == 1


CONV_T = {
    "stride 2 output_padding 1": ((4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    "groups 2 dilation 2 padding beyond kernel": ((4, 2, 3, 2), dict(stride=(1, 3), padding=(2, 3), groups=2, dilation=2,
                                                                      output_padding=(0, 1))),
}


@pytest.mark.parametrize("wshape, kwargs", CONV_T.values(), ids=CONV_T.keys())
def test_conv_transpose2d(wshape, kwargs):
    check(lambda F, x, w, b: F.conv_transpose2d(x, w, b, **kwargs), (2, 4, 3, 4), wshape, (wshape[1] * kwargs.get("groups", 1),))


def test_conv_transpose1d():
    check(lambda F, x, w: F.conv_transpose1d(x, w, stride=2, padding=1), (2, 4, 5), (4, 3, 3), grad=False)


def test_unfold_and_pixel_shuffle():
    check(lambda F, x: F.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=(2, 1)), X4)
    check(lambda F, x: F.pixel_shuffle(x, 2), (1, 8, 2, 3), grad=False)
    check(lambda F, x: F.pixel_unshuffle(x, 2), (1, 2, 4, 6), grad=False)


# ---------------------------------------------------------------- pooling

MAX_POOL = {
    "3 stride 2 padding 1": dict(kernel_size=3, stride=2, padding=1),
    "dilation ceil_mode": dict(kernel_size=(2, 3), stride=(2, 1), padding=1, dilation=2, ceil_mode=True),
}


@pytest.mark.parametrize("kwargs", MAX_POOL.values(), ids=MAX_POOL.keys())
def test_max_pool2d(kwargs):
    check(lambda F, x: F.max_pool2d(x, **kwargs), X4)


def test_max_pool2d_return_indices():
    x = np.random.default_rng(1).standard_normal(X4).astype(np.float32)
    x[0, 0, 0, :2] = 5.0  # a tie inside one window: torch returns the first
    out, idx = F.max_pool2d(lg.Tensor(x), 3, stride=2, padding=1, return_indices=True)
    t_out, t_idx = TF.max_pool2d(torch.tensor(x), 3, stride=2, padding=1, return_indices=True)
    assert_same(out, t_out)
    assert_same(idx, t_idx)


def test_pool1d():
    check(lambda F, x: F.max_pool1d(x, 3, stride=2, padding=1), (2, 4, 9))
    check(lambda F, x: F.avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False), (2, 4, 9), grad=False)


AVG_POOL = {
    "2x2": dict(kernel_size=2),
    "exclude pad ceil_mode": dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    "include pad ceil_mode": dict(kernel_size=(3, 2), stride=2, padding=1, ceil_mode=True),
}


@pytest.mark.parametrize("kwargs", AVG_POOL.values(), ids=AVG_POOL.keys())
def test_avg_pool2d(kwargs):
    check(lambda F, x: F.avg_pool2d(x, **kwargs), X4)


def test_avg_pool2d_divisor_override_and_lp_pool():
    check(lambda F, x: F.avg_pool2d(x, 2, stride=1, divisor_override=3), X4, grad=False)
    check(lambda F, x: F.lp_pool2d(x, 2, 2), X4, low=0.5, grad=False)


def test_3d_pooling_and_local_response_norm_forward():
    x5 = (1, 2, 4, 3, 4)
    check(lambda F, x: F.max_pool3d(x, 2, stride=(1, 2, 2), padding=1), x5, grad=False)
    check(lambda F, x: F.avg_pool3d(x, (2, 1, 2), padding=(1, 0, 1), count_include_pad=False), x5, grad=False)
    check(lambda F, x: F.adaptive_avg_pool3d(x, (3, 2, 3)), x5, grad=False)
    check(lambda F, x: F.local_response_norm(x, 3), X4, grad=False)


@pytest.mark.parametrize("size", [(3, 5), (4, None)], ids=str)
def test_adaptive_avg_pool2d(size):
    check(lambda F, x: F.adaptive_avg_pool2d(x, size), X4)


def test_adaptive_max_pool2d():
    check(lambda F, x: F.adaptive_max_pool2d(x, (4, 3)), X4)


# ---------------------------------------------------------------- interpolate

X_SMALL = (1, 2, 4, 3)

INTERPOLATE = {  # most land on size (5, 7), so they share kernels (the resampling matrices are inputs)
    "nearest x2 (a view)": dict(scale_factor=2),
    "nearest size": dict(size=(5, 7)),
    "nearest downsample": dict(size=(2, 1)),
    "nearest-exact": dict(scale_factor=(1.3, 2.4), mode="nearest-exact"),
    "bilinear size": dict(size=(5, 7), mode="bilinear"),
    "bilinear scale_factor": dict(scale_factor=(1.3, 2.4), mode="bilinear"),
    "bilinear align_corners": dict(size=(5, 7), mode="bilinear", align_corners=True),
    "bilinear recompute_scale_factor": dict(scale_factor=(1.3, 2.4), mode="bilinear", recompute_scale_factor=True),
    "bicubic": dict(size=(5, 7), mode="bicubic"),
    "bicubic align_corners": dict(scale_factor=(1.3, 2.4), mode="bicubic", align_corners=True),
    "area": dict(size=(3, 2), mode="area"),
}


@pytest.mark.parametrize("kwargs", INTERPOLATE.values(), ids=INTERPOLATE.keys())
def test_interpolate(kwargs):
    check(lambda F, x: F.interpolate(x, **kwargs), X_SMALL)


def test_interpolate_1d_and_3d():
    check(lambda F, x: F.interpolate(x, size=7, mode="linear"), (2, 3, 4))
    check(lambda F, x: F.interpolate(x, scale_factor=1.9, mode="linear", align_corners=True), (2, 3, 4))
    check(lambda F, x: F.interpolate(x, size=(3, 2, 3), mode="trilinear"), (1, 1, 2, 3, 2), grad=False)


def test_interpolate_nearest_upsample_is_a_view():
    x = lg.randn(*X_SMALL).realize()
    before = lg.kernel_count()
    out = F.interpolate(x, scale_factor=2)
    assert lg.kernel_count() == before and out.shape == (1, 2, 8, 6)


# ---------------------------------------------------------------- pad

PAD = {
    "reflect": ((1, 2, 2, 1), "reflect"),
    "replicate": ((1, 2, 2, 1), "replicate"),
    "circular": ((1, 2, 2, 1), "circular"),
    "constant value, negative crops": ((1, 2, -1, 1), "constant"),
}


@pytest.mark.parametrize("pad, mode", PAD.values(), ids=PAD.keys())
def test_pad(pad, mode):
    kwargs = dict(value=1.5) if mode == "constant" else {}
    check(lambda F, x: F.pad(x, pad, mode=mode, **kwargs), X_SMALL)


def test_pad_last_dim_of_3d_input():
    check(lambda F, x: F.pad(x, (3, 2), mode="reflect"), (2, 3, 4), grad=False)
    check(lambda F, x: F.pad(x, (2, -1), mode="replicate"), (2, 3, 4), grad=False)


# ---------------------------------------------------------------- normalization

def test_layer_norm():
    check(lambda F, x, w, b: F.layer_norm(x, (3, 4), w, b, eps=1e-3), (2, 3, 4), (3, 4), (3, 4))


def test_group_norm():
    check(lambda F, x: F.group_norm(x, 2), X4)


def test_instance_norm_updates_running_stats():
    mean0, var0 = np.zeros(4, np.float32), np.ones(4, np.float32)
    t_stats, l_stats = [torch.tensor(mean0), torch.tensor(var0)], [lg.Tensor(mean0), lg.Tensor(var0)]
    check(lambda F, x: F.instance_norm(x, *(t_stats if F is TF else l_stats), momentum=0.2), X4)
    np.testing.assert_allclose(l_stats[0].numpy(), t_stats[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l_stats[1].numpy(), t_stats[1].numpy(), rtol=1e-5, atol=1e-6)


def test_rms_norm():
    check(lambda F, x, w: F.rms_norm(x, (4,), w, eps=1e-6), (2, 3, 4), (4,))


def test_batch_norm_training_updates_running_stats():
    rng = np.random.default_rng(3)
    mean0, var0 = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    t_stats, l_stats = [torch.tensor(mean0), torch.tensor(var0)], [lg.Tensor(mean0), lg.Tensor(var0)]
    check(lambda F, x, w, b: F.batch_norm(x, *(t_stats if F is TF else l_stats), w, b, training=True, momentum=0.3), X4, (4,), (4,))
    np.testing.assert_allclose(l_stats[0].numpy(), t_stats[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l_stats[1].numpy(), t_stats[1].numpy(), rtol=1e-5, atol=1e-6)  # unbiased running var


def test_batch_norm_eval_uses_running_stats():
    mean, var = Fixed([0.5, -1.0, 0.0, 2.0], np.float32), Fixed([1.0, 0.5, 2.0, 0.1], np.float32)
    check(lambda F, x, m, v, w: F.batch_norm(x, m, v, w, None, training=False), (3, 4), mean, var, (4,))


def test_cosine_similarity_and_pairwise_distance():
    check(lambda F, a, b: F.cosine_similarity(a, b, dim=-1), (3, 4), (4,))
    check(lambda F, a, b: F.pairwise_distance(a, b), (3, 4), (3, 4), grad=False)


# ---------------------------------------------------------------- dropout, embedding, one_hot

def test_dropout_masks_and_scales():
    lg.manual_seed(0)
    x = lg.ones(200, 50, requires_grad=True)
    out = F.dropout(x, p=0.25)
    values = out.numpy()
    assert set(np.unique(values)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((values == 0).mean() - 0.25) < 0.02
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # the gradient goes through the same mask


def test_dropout_is_reproducible_with_manual_seed_and_off_in_eval():
    lg.manual_seed(7)
    a = F.dropout(lg.ones(200, 50), 0.5).numpy()
    lg.manual_seed(7)
    b = F.dropout(lg.ones(200, 50), 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    x = lg.ones(3, 3)
    assert F.dropout(x, 0.5, training=False) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((3, 3)))


def test_dropout2d_drops_whole_channels():
    lg.manual_seed(1)
    values = F.dropout2d(lg.ones(4, 16, 3, 3), 0.5).numpy()
    per_channel = values.reshape(4, 16, 9)
    assert (per_channel.min(-1) == per_channel.max(-1)).all()
    assert set(np.unique(values)) == {0.0, 2.0}


def test_embedding():
    idx = Fixed([[0, 2, 1], [2, 2, 3]], np.int64)
    check(lambda F, i, w: F.embedding(i, w, padding_idx=2), idx, (4, 3))


def test_embedding_gradient_of_many_repeated_indices():
    """A GPT's token embedding: 2048 indices into 64 rows, the weight's gradient one one-hot matmul (panels on a CPU);
    beyond ONE_HOT_ELEMENTS the dense scatter gives the same numbers. Negative indices count from the end in both."""
    idx = Fixed(np.random.default_rng(0).integers(-64, 64, (16, 128)), np.int64)
    theirs = lambda F, i, w: F.embedding(i % 64, w) if F is TF else F.embedding(i, w)
    check(lambda F, i, w: theirs(F, i, w) * 1.5, idx, (64, 8))
    w = lg.randn(64, 8, requires_grad=True)
    i, g = lg.tensor(idx.value), lg.randn(16, 128, 8)
    (F.embedding(i, w) * g).sum().backward()
    via_matmul, w.grad = w.grad.numpy(), None
    limit, F.ONE_HOT_ELEMENTS = F.ONE_HOT_ELEMENTS, 0
    try: (F.embedding(i, w) * g).sum().backward()
    finally: F.ONE_HOT_ELEMENTS = limit
    np.testing.assert_allclose(via_matmul, w.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_one_hot():
    idx = np.array([[0, 3], [2, 1]])
    assert_same(F.one_hot(lg.tensor(idx), 5), TF.one_hot(torch.tensor(idx), 5))
    assert_same(F.one_hot(lg.tensor(idx)), TF.one_hot(torch.tensor(idx)))


# ---------------------------------------------------------------- attention

Q, KV = (2, 2, 3, 4), (2, 2, 5, 4)  # (batch, heads, length, embed)


def test_sdpa_causal_with_scale():
    check(lambda F, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3), Q, KV, KV)


def test_sdpa_bool_mask_with_a_fully_masked_row_and_grouped_query_attention():
    mask = np.random.default_rng(2).random((3, 5)) > 0.4
    mask[1] = False  # every key masked: torch gives zeros (and finite gradients)
    check(lambda F, q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=lib_tensor(F, mask), enable_gqa=True),
          (1, 4, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4))


def test_sdpa_float_mask():
    check(lambda F, q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), Q, KV, KV, (3, 5), grad=False)


# ---------------------------------------------------------------- losses

N, C = 4, 5
TARGET = Fixed([1, 0, 4, 1], np.int64)
TARGET_IGNORED = Fixed([1, -100, 4, 3], np.int64)
TARGET_IGNORE_2 = Fixed([2, 0, 2, 3], np.int64)
CLASS_WEIGHT = Fixed([0.5, 2.0, 1.0, 0.2, 3.0], np.float32)

CROSS_ENTROPY = {
    "ignore_index mean": (TARGET_IGNORED, {}),
    "weight ignore_index mean": (TARGET_IGNORED, dict(weight=CLASS_WEIGHT)),
    "ignore_index 2 none": (TARGET_IGNORE_2, dict(ignore_index=2, reduction="none")),
    "label_smoothing weight ignore_index mean": (TARGET_IGNORED, dict(label_smoothing=0.3, weight=CLASS_WEIGHT)),
    "label_smoothing weight sum": (TARGET, dict(label_smoothing=0.3, weight=CLASS_WEIGHT, reduction="sum")),
    "label_smoothing ignore_index none": (TARGET_IGNORED, dict(label_smoothing=0.1, reduction="none")),
}


def _kwargs(F, kwargs):
    """Fixed arrays in kwargs as tensors of the library F belongs to."""
    return {k: lib_tensor(F, v) if isinstance(v, Fixed) else v for k, v in kwargs.items()}


@pytest.mark.parametrize("target, kwargs", CROSS_ENTROPY.values(), ids=CROSS_ENTROPY.keys())
def test_cross_entropy(target, kwargs):
    check(lambda F, x, t: F.cross_entropy(x, t, **_kwargs(F, kwargs)), (N, C), target)


def test_cross_entropy_spatial_and_unbatched():
    target = Fixed([[0, 2, 1], [1, -100, 0]], np.int64)
    check(lambda F, x, t, w: F.cross_entropy(x, t, weight=w), (2, 3, 3), target, Fixed([1.0, 2.0, 0.5], np.float32))
    check(lambda F, x, t: F.cross_entropy(x, t), (C,), Fixed(3, np.int64), grad=False)


@pytest.mark.parametrize("kwargs", [dict(reduction="none", label_smoothing=0.2), dict(weight=CLASS_WEIGHT, label_smoothing=0.1)],
                         ids=["none label_smoothing", "weight label_smoothing mean"])
def test_cross_entropy_probability_targets(kwargs):
    probs = np.random.default_rng(5).dirichlet(np.ones(C), size=N).astype(np.float32)
    check(lambda F, x, t: F.cross_entropy(x, t, **_kwargs(F, kwargs)), (N, C), Fixed(probs))


def test_cross_entropy_all_ignored_mean_is_nan():
    out = F.cross_entropy(lg.randn(2, 3), lg.tensor([-100, -100]))
    want = TF.cross_entropy(torch.randn(2, 3), torch.tensor([-100, -100]))
    assert math.isnan(out.item()) and math.isnan(want.item())


def test_nll_loss():
    check(lambda F, x, t, w: F.nll_loss(x, t, weight=w), (N, C), TARGET_IGNORED, CLASS_WEIGHT)
    check(lambda F, x, t: F.nll_loss(x, t, ignore_index=1, reduction="none"), (N, C), TARGET, grad=False)


POSITIVE = Fixed(np.random.default_rng(4).uniform(0.1, 2, (3, 4)), np.float32)
SIGNS = Fixed(np.sign(np.random.default_rng(4).uniform(-1, 1, (3, 4))), np.float32)
PROBS = Fixed(np.random.default_rng(6).random((3, 4)), np.float32)

LOSSES_NONE = {  # elementwise losses (reduction="none") of (input, target), checked in one batch
    "mse_loss": (lambda F, x, y: F.mse_loss(x, y, reduction="none"), {}),
    "l1_loss": (lambda F, x, y: F.l1_loss(x, y, reduction="none"), {}),
    "smooth_l1_loss": (lambda F, x, y: F.smooth_l1_loss(x, y, beta=0.5, reduction="none"), {}),
    "smooth_l1_loss beta 0": (lambda F, x, y: F.smooth_l1_loss(x, y, beta=0.0, reduction="none"), {}),
    "huber_loss": (lambda F, x, y: F.huber_loss(x, y, delta=0.7, reduction="none"), {}),
    "poisson_nll_loss": (lambda F, x, y: F.poisson_nll_loss(x, y, reduction="none"), {}),
    "poisson_nll_loss full, not log_input": (lambda F, x, y: F.poisson_nll_loss(x, y * 3, log_input=False, full=True, reduction="none"),
                                             dict(low=0.1, high=3)),
    "gaussian_nll_loss": (lambda F, x, y: F.gaussian_nll_loss(x, y, y.abs() + 0.1, full=True, reduction="none"), {}),
    "margin_ranking_loss": (lambda F, x, y: F.margin_ranking_loss(x, y, lib_tensor(F, SIGNS), margin=0.3, reduction="none"), {}),
}


def test_elementwise_losses():
    check_batch(LOSSES_NONE, (3, 4), (3, 4))


LOSSES_OF_FIXED_TARGET = {  # losses whose target is not differentiable in torch: (input, fixed target)
    "soft_margin_loss": (lambda F, x, t: F.soft_margin_loss(x, t, reduction="none"), {}),
    "hinge_embedding_loss": (lambda F, x, t: F.hinge_embedding_loss(x, t, margin=0.5, reduction="none"), {}),
    "binary_cross_entropy": (lambda F, x, t: F.binary_cross_entropy(x.sigmoid(), t.abs(), reduction="none"), {}),
    "binary_cross_entropy_with_logits": (lambda F, x, t: F.binary_cross_entropy_with_logits(x, t.abs(), reduction="none"), dict(low=-30, high=30)),
    "binary_cross_entropy_with_logits pos_weight": (
        lambda F, x, t: F.binary_cross_entropy_with_logits(x, t.abs(), pos_weight=lib_tensor(F, np.float32([1, 2, 0.5, 3])), reduction="none"), {}),
    "kl_div": (lambda F, x, t: F.kl_div(x, (t.abs() - 0.5).relu(), reduction="none"), {}),
    "kl_div log_target": (lambda F, x, t: F.kl_div(x, t, reduction="none", log_target=True), {}),
}


def test_losses_of_a_fixed_target():
    check_batch(LOSSES_OF_FIXED_TARGET, (3, 4), SIGNS)


REDUCTIONS = {  # reduction modes, weighted means and broadcasting
    "mse_loss broadcast sum": (lambda F, x, y: F.mse_loss(x, y[0], reduction="sum"), {}),
    "mse_loss weight mean": (lambda F, x, y: F.mse_loss(x, y, weight=lib_tensor(F, POSITIVE)), {}),
    "huber_loss weight mean": (lambda F, x, y: F.huber_loss(x, y, weight=lib_tensor(F, POSITIVE)), {}),
    "l1_loss legacy size_average=False": (lambda F, x, y: F.l1_loss(x, y, size_average=False), {}),
    "kl_div batchmean": (lambda F, x, y: F.kl_div(x, y.abs(), reduction="batchmean"), {}),
    "bce_with_logits weight pos_weight sum": (lambda F, x, y: F.binary_cross_entropy_with_logits(
        x, y.sigmoid(), weight=lib_tensor(F, POSITIVE), pos_weight=lib_tensor(F, np.float32([1, 2, 0.5, 3])), reduction="sum"), {}),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_loss_reductions():
    check_batch(REDUCTIONS, (3, 4), (3, 4))


def test_binary_cross_entropy_clamps_logs_at_minus_100():
    out = F.binary_cross_entropy(lg.tensor([0.0, 1.0, 0.5]), lg.tensor([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(out.numpy(), [100.0, 100.0, math.log(2)], rtol=1e-6)


def test_embedding_and_triplet_losses():
    sign = Fixed([1.0, -1.0, -1.0], np.float32)
    check(lambda F, a, b: F.cosine_embedding_loss(a, b, lib_tensor(F, sign), margin=0.1), (3, 4), (3, 4))
    check(lambda F, a, p, n: F.triplet_margin_loss(a, p, n, swap=True), (3, 4), (3, 4), (3, 4), grad=False)
    check(lambda F, x: F.multilabel_soft_margin_loss(x, lib_tensor(F, np.eye(3, 4, dtype=np.float32))), (3, 4))


# ---------------------------------------------------------------- errors (raised eagerly, with what was passed)

def test_conv2d_channel_mismatch_message():
    with pytest.raises(RuntimeError, match=r"conv2d: input has 3 channels but weight expects 4 \(weight shape \(8, 4, 3, 3\), groups 1\)"):
        F.conv2d(lg.ones(1, 3, 5, 5), lg.ones(8, 4, 3, 3))


ERRORS = {
    "linear shapes": (lambda: F.linear(lg.ones(3, 4), lg.ones(5, 3)), RuntimeError, r"\(3, 4\).*in_features=3.*\(5, 3\)"),
    "conv groups": (lambda: F.conv2d(lg.ones(1, 4, 5, 5), lg.ones(3, 2, 3, 3), groups=2), RuntimeError, r"out_channels 3.*groups 2"),
    "conv kernel too big": (lambda: F.conv2d(lg.ones(1, 3, 5, 5), lg.ones(8, 3, 7, 7)), RuntimeError, r"\(7, 7\).*\(5, 5\)"),
    "conv stride 0": (lambda: F.conv2d(lg.ones(1, 3, 5, 5), lg.ones(8, 3, 3, 3), stride=0), RuntimeError, r"stride=\(0, 0\)"),
    "conv same strided": (lambda: F.conv2d(lg.ones(1, 3, 5, 5), lg.ones(8, 3, 3, 3), padding="same", stride=2), RuntimeError, r"'same'.*stride"),
    "conv bad padding string": (lambda: F.conv2d(lg.ones(1, 3, 5, 5), lg.ones(8, 3, 3, 3), padding="full"), RuntimeError, r"'full'"),
    "conv input dims": (lambda: F.conv2d(lg.ones(5, 5), lg.ones(8, 3, 3, 3)), RuntimeError, r"conv2d.*\(5, 5\)"),
    "conv bias": (lambda: F.conv2d(lg.ones(1, 3, 5, 5), lg.ones(8, 3, 3, 3), lg.ones(7)), RuntimeError, r"8 elements.*\(7,\)"),
    "conv stride length": (lambda: F.conv2d(lg.ones(1, 3, 5, 5), lg.ones(8, 3, 3, 3), stride=(1, 1, 1)), RuntimeError, r"stride=\(1, 1, 1\)"),
    "conv_transpose output_padding": (lambda: F.conv_transpose2d(lg.ones(1, 3, 5, 5), lg.ones(3, 4, 3, 3), stride=2, output_padding=2),
                                      RuntimeError, r"output_padding=\(2, 2\)"),
    "conv_transpose channels": (lambda: F.conv_transpose2d(lg.ones(1, 3, 5, 5), lg.ones(4, 4, 3, 3)), RuntimeError, r"3 channels.*expects 4"),
    "max_pool padding": (lambda: F.max_pool2d(lg.ones(1, 3, 5, 5), 3, padding=2), RuntimeError, r"half of effective kernel.*padding=\(2, 2\)"),
    "max_pool too small": (lambda: F.max_pool2d(lg.ones(1, 3, 5, 5), 7), RuntimeError, r"\(1, 3, 5, 5\).*too small"),
    "max_pool input dims": (lambda: F.max_pool2d(lg.ones(5, 5), 2), RuntimeError, r"\(5, 5\)"),
    "interpolate mode": (lambda: F.interpolate(lg.ones(1, 1, 2, 2), scale_factor=2, mode="cubic"), NotImplementedError, r"interpolate.*'cubic'"),
    "interpolate antialias": (lambda: F.interpolate(lg.ones(1, 1, 2, 2), scale_factor=2, mode="bilinear", antialias=True),
                              NotImplementedError, r"antialias.*'bilinear'"),
    "interpolate bilinear on 3d": (lambda: F.interpolate(lg.ones(1, 2, 3), scale_factor=2, mode="bilinear"), NotImplementedError, r"'bilinear'.*4-D"),
    "interpolate size and scale": (lambda: F.interpolate(lg.ones(1, 1, 2, 2), size=3, scale_factor=2), ValueError, r"only one of size"),
    "interpolate nearest align_corners": (lambda: F.interpolate(lg.ones(1, 1, 2, 2), scale_factor=2, align_corners=True), ValueError, r"align_corners"),
    "interpolate size length": (lambda: F.interpolate(lg.ones(1, 1, 2, 2), size=(3, 3, 3)), ValueError, r"\(3, 3, 3\)"),
    "pad mode": (lambda: F.pad(lg.ones(1, 2, 3), (1, 1), mode="symmetric"), NotImplementedError, r"pad.*'symmetric'"),
    "pad odd length": (lambda: F.pad(lg.ones(1, 2, 3), (1, 1, 1)), RuntimeError, r"divisible by 2.*\(1, 1, 1\)"),
    "pad reflect too wide": (lambda: F.pad(lg.ones(1, 2, 3), (3, 3), mode="reflect"), RuntimeError, r"\(3, 3\).*size 3"),
    "layer_norm shape": (lambda: F.layer_norm(lg.ones(3, 4), (5,)), RuntimeError, r"normalized_shape=\(5,\).*\(3, 4\)"),
    "group_norm groups": (lambda: F.group_norm(lg.ones(2, 6, 4), 4), RuntimeError, r"6 channels.*num_groups=4"),
    "batch_norm one value per channel": (lambda: F.batch_norm(lg.ones(1, 3), lg.zeros(3), lg.ones(3), training=True), ValueError, r"\(1, 3\)"),
    "batch_norm eval without stats": (lambda: F.batch_norm(lg.ones(2, 3), None, None), RuntimeError, r"running_mean"),
    "batch_norm stats size": (lambda: F.batch_norm(lg.ones(2, 3), lg.zeros(4), lg.ones(4)), RuntimeError, r"3 elements.*not 4"),
    "dropout p": (lambda: F.dropout(lg.ones(3), 1.5), ValueError, r"1\.5"),
    "gelu approximate": (lambda: F.gelu(lg.ones(3), approximate="fast"), RuntimeError, r"'fast'"),
    "glu odd": (lambda: F.glu(lg.ones(3, 5)), RuntimeError, r"size 5"),
    "one_hot float": (lambda: F.one_hot(lg.ones(3), 3), RuntimeError, r"float32"),
    "embedding float indices": (lambda: F.embedding(lg.ones(3), lg.ones(4, 2)), RuntimeError, r"float32"),
    "cross_entropy reduction": (lambda: F.cross_entropy(lg.ones(3, 4), lg.tensor([0, 1, 2]), reduction="avg"), ValueError, r"'avg'"),
    "cross_entropy batch": (lambda: F.cross_entropy(lg.ones(3, 4), lg.tensor([0, 1])), ValueError, r"batch_size \(3\).*\(2\)"),
    "cross_entropy spatial target": (lambda: F.cross_entropy(lg.ones(2, 4, 3), lg.zeros(2, 2, dtype=lg.int64)), RuntimeError, r"\(2, 3\).*\(2, 2\)"),
    "cross_entropy weight": (lambda: F.cross_entropy(lg.ones(3, 4), lg.tensor([0, 1, 2]), weight=lg.ones(3)), RuntimeError, r"4 classes.*\(3,\)"),
    "cross_entropy label_smoothing": (lambda: F.cross_entropy(lg.ones(3, 4), lg.tensor([0, 1, 2]), label_smoothing=1.5), RuntimeError, r"1\.5"),
    "cross_entropy prob target shape": (lambda: F.cross_entropy(lg.ones(3, 4), lg.ones(3, 5)), RuntimeError, r"\(3, 4\).*\(3, 5\)"),
    "cross_entropy prob ignore_index": (lambda: F.cross_entropy(lg.ones(3, 4), lg.ones(3, 4), ignore_index=1), RuntimeError, r"ignore_index"),
    "cross_entropy target out of range": (lambda: F.cross_entropy(lg.ones(3, 4), lg.tensor([0, 1, 5])), IndexError, r"target 5.*4 classes"),
    "one_hot negative": (lambda: F.one_hot(lg.tensor([1, -1]), 3), RuntimeError, r"non-negative, got -1"),
    "one_hot too big": (lambda: F.one_hot(lg.tensor([1, 3]), 3), RuntimeError, r"num_classes=3, got 3"),
    "softshrink lambda": (lambda: F.softshrink(lg.ones(3), -1.0), RuntimeError, r"-1"),
    "embedding padding_idx": (lambda: F.embedding(lg.tensor([1]), lg.ones(3, 2), padding_idx=5), AssertionError, r"padding_idx 5"),
    "interpolate size 0": (lambda: F.interpolate(lg.ones(1, 1, 2, 2), size=0), RuntimeError, r"\(0, 0\)"),
    "nll_loss target shape": (lambda: F.nll_loss(lg.ones(2, 4, 3), lg.zeros(2, 2, dtype=lg.int64)), RuntimeError, r"\(2, 3\).*\(2, 2\)"),
    "bce target shape": (lambda: F.binary_cross_entropy(lg.ones(3, 4) * 0.5, lg.ones(4)), ValueError, r"\(4,\).*\(3, 4\)"),
    "bce_with_logits target shape": (lambda: F.binary_cross_entropy_with_logits(lg.ones(3, 4), lg.ones(4)), ValueError, r"\(4,\).*\(3, 4\)"),
    "smooth_l1 beta": (lambda: F.smooth_l1_loss(lg.ones(3), lg.ones(3), beta=-1), RuntimeError, r"-1"),
    "mse weight shape": (lambda: F.mse_loss(lg.ones(3), lg.ones(3), weight=lg.ones(2)), ValueError, r"\(2,\).*\(3,\)"),
    "sdpa mask and causal": (lambda: F.scaled_dot_product_attention(lg.ones(2, 3, 4), lg.ones(2, 5, 4), lg.ones(2, 5, 4),
                                                                    attn_mask=lg.ones(3, 5, dtype=lg.bool), is_causal=True),
                             RuntimeError, r"is_causal"),
    "sdpa shapes": (lambda: F.scaled_dot_product_attention(lg.ones(2, 3, 4), lg.ones(2, 5, 3), lg.ones(2, 5, 4)), RuntimeError, r"\(2, 5, 3\)"),
}


@pytest.mark.parametrize("fn, exc, message", ERRORS.values(), ids=ERRORS.keys())
def test_errors(fn, exc, message):
    with pytest.raises(exc, match=message):
        fn()


def test_reductions_over_padded_inputs_both_sides_of_the_border():
    """OpenCL on a CPU writes a reduction's loop twice when its loads' masks do not change along it (without them
    where they all hold): both versions run here, inside and on the padding."""
    check(lambda F, x, w: F.pad(x, (0, 0, 3, 5)) @ w, (24, 40), (40, 32), atol=1e-4)
    check(lambda F, x, w: F.conv2d(F.pad(x, (2, 1, 1, 2)), w, padding=1), (2, 8, 9, 11), (16, 8, 3, 3), atol=1e-4)


@pytest.mark.parametrize("case", ["padded", "none", "sum with an empty target", "concatenated", "unbatched",
                                  "blank last", "impossible", "zero_infinity"])
def test_ctc_loss_matches_torch_forward_and_backward(case):
  """Gradients through log_softmax to the logits, and with respect to the log-probabilities themselves (torch's
  convention: the exact gradient plus exp(log_probs) at each sample's time steps)."""
  T, N, C, S, in_lens, tgt_lens, kw = 7, 3, 5, 3, [7, 6, 4], [3, 2, 2], {}
  if case == "none": kw = dict(reduction="none")
  if case == "sum with an empty target": tgt_lens, kw = [3, 0, 2], dict(reduction="sum")
  if case == "blank last": kw = dict(blank=4)
  if case in ("impossible", "zero_infinity"):
    T, in_lens, tgt_lens = 4, [4, 2, 2], [3, 3, 1]
    kw = dict(reduction="none") if case == "impossible" else dict(zero_infinity=True)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((T, N, C)).astype(np.float32)
  targets = rng.integers(0, C - 1, (N, S)) + (1 if kw.get("blank", 0) == 0 else 0)  # never the blank
  if case == "concatenated": targets = np.concatenate([targets[n, :tgt_lens[n]] for n in range(N)])
  if case == "unbatched": x, targets, in_lens, tgt_lens = x[:, 0], targets[0], in_lens[0], tgt_lens[0]
  for as_logits in (True, False):
    tx, lx = torch.tensor(x, requires_grad=True), lg.tensor(x, requires_grad=True)
    tin, lin = (tx.log_softmax(-1), lx.log_softmax(-1)) if as_logits else (tx, lx)
    want = TF.ctc_loss(tin, torch.tensor(targets), torch.tensor(in_lens), torch.tensor(tgt_lens), **kw)
    got = F.ctc_loss(lin, lg.tensor(targets), in_lens, tgt_lens, **kw)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-4)
    if case == "impossible":
      assert np.isinf(got.numpy()).tolist() == [False, True, False]  # 3 labels cannot fit in 2 steps
      continue
    want.sum().backward()
    got.sum().backward()
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_ctc_loss_errors_name_what_was_passed():
  lp = lg.tensor(np.zeros((5, 2, 4), np.float32))
  with pytest.raises(ValueError, match=r"ctc_loss: input_lengths \[5, 6\] must lie in \[0, 5\]"):
    F.ctc_loss(lp, lg.tensor(np.ones((2, 3), np.int64)), [5, 6], [3, 3])
  with pytest.raises(lg.ShapeError, match=r"ctc_loss: target_lengths has 1 entries for a batch of 2"):
    F.ctc_loss(lp, lg.tensor(np.ones((2, 3), np.int64)), [5, 5], [3])
  with pytest.raises(ValueError, match=r"ctc_loss: blank 4 is not a class of 4"):
    F.ctc_loss(lp, lg.tensor(np.ones((2, 3), np.int64)), [5, 5], [3, 3], blank=4)
