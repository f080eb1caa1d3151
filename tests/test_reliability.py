"""Reliability: edge shapes against PyTorch, very large reductions, memory that stays flat, threads, kernel failures,
and bad input (one test per class of mistake, each checking the exception's type and message).
"""

import gc
import json
import importlib
import re
import threading

import numpy as np
import pytest
import torch

import lazygrad as lg
from tests.helpers import forget_kernels
from lazygrad.device import Buffer, KernelCache, canonical
from lazygrad import nn
import lazygrad.nn.functional as F


# ---- (a) empty tensors, size-1 dims and 0-d tensors give PyTorch's results

def check_like_torch(fn, *shapes, seed=0):
    """Run fn(lib, *tensors) with lib = torch and lib = lazygrad on the same data: same values, or the same exception."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    try:
        want = fn(torch, *[torch.from_numpy(a.copy()) for a in arrays])
    except Exception as e:  # noqa: BLE001  (torch's exception is the expectation)
        with pytest.raises(type(e)):
            fn(lg, *[lg.Tensor(a) for a in arrays]).numpy()
        return
    got = fn(lg, *[lg.Tensor(a) for a in arrays])
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6, strict=True)


def case(name, fn, *shapes, bug=None):
    """One edge case; `bug` names a known library bug, which marks the case xfail until it is fixed."""
    marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
    return pytest.param(fn, shapes, id=name, marks=marks)


EDGE_CASES = [
    case("sum (0,)", lambda lib, x: x.sum(), (0,)),
    case("sum (0,3)", lambda lib, x: x.sum(), (0, 3)),
    case("sum (0,3) dim 0", lambda lib, x: x.sum(0), (0, 3)),
    case("sum (0,3) dim 1", lambda lib, x: x.sum(1), (0, 3)),
    case("sum (3,0)", lambda lib, x: x.sum(), (3, 0)),
    case("sum (3,0) dim 1 keepdim", lambda lib, x: x.sum(1, keepdim=True), (3, 0)),
    case("sum (1,1)", lambda lib, x: x.sum(), (1, 1)),
    case("sum (2,1,3) dim 1 keepdim", lambda lib, x: x.sum(1, keepdim=True), (2, 1, 3)),
    case("sum 0-d", lambda lib, x: x.sum(), ()),
    case("sum 0-d dim 0 keepdim", lambda lib, x: x.sum(0, keepdim=True), ()),
    case("sum 0-d dim 1 raises", lambda lib, x: x.sum(1), ()),
    case("sum dim ()", lambda lib, x: x.sum(()), (2, 3)),
    case("mean (0,)", lambda lib, x: x.mean(), (0,)),
    case("mean (0,3) dim 0", lambda lib, x: x.mean(0), (0, 3)),
    case("mean (0,3) dim 1", lambda lib, x: x.mean(1), (0, 3)),
    case("mean (3,0)", lambda lib, x: x.mean(), (3, 0)),
    case("mean (1,3) dim 0", lambda lib, x: x.mean(0), (1, 3)),
    case("mean 0-d", lambda lib, x: x.mean(), ()),
    case("amax (0,) dim 0 raises", lambda lib, x: x.amax(0), (0,)),
    case("amax (0,3) dim 0 raises", lambda lib, x: x.amax(0), (0, 3)),
    case("amax (0,3) dims (0, 1) raises", lambda lib, x: x.amax((0, 1)), (0, 3)),
    case("amax (0,) raises", lambda lib, x: x.amax(), (0,)),
    case("amax (0,3) dim 1", lambda lib, x: x.amax(1), (0, 3)),
    case("amax (1,1) dim 1", lambda lib, x: x.amax(1), (1, 1)),
    case("amax 0-d", lambda lib, x: x.amax(), ()),
    case("amax 0-d dim 0", lambda lib, x: x.amax(0), ()),
    case("softmax (0,3) dim -1", lambda lib, x: x.softmax(-1), (0, 3)),
    case("softmax (3,0) dim 0", lambda lib, x: x.softmax(0), (3, 0)),
    case("softmax (3,0) dim -1", lambda lib, x: x.softmax(-1), (3, 0)),
    case("softmax (0,) dim 0", lambda lib, x: x.softmax(0), (0,)),
    case("log_softmax (3,0) dim -1", lambda lib, x: x.log_softmax(-1), (3, 0)),
    case("softmax (1,) dim 0", lambda lib, x: x.softmax(0), (1,)),
    case("softmax (2,1) dim 1", lambda lib, x: x.softmax(1), (2, 1)),
    case("softmax 0-d", lambda lib, x: x.softmax(0), ()),
    case("matmul (3,0)@(0,4)", lambda lib, a, b: a @ b, (3, 0), (0, 4)),
    case("matmul (0,)@(0,)", lambda lib, a, b: a @ b, (0,), (0,)),
    case("matmul (2,0)@(0,)", lambda lib, a, b: a @ b, (2, 0), (0,)),
    case("matmul (2,3,0)@(0,4)", lambda lib, a, b: a @ b, (2, 3, 0), (0, 4)),
    case("matmul (0,3)@(3,2)", lambda lib, a, b: a @ b, (0, 3), (3, 2)),
    case("matmul (1,1)@(1,1)", lambda lib, a, b: a @ b, (1, 1), (1, 1)),
    case("cat (2,3) with (0,)", lambda lib, a, b: lib.cat([a, b]), (2, 3), (0,)),
    case("cat (0,) with (2,3)", lambda lib, a, b: lib.cat([a, b]), (0,), (2, 3)),
    case("cat (0,3) with (2,3)", lambda lib, a, b: lib.cat([a, b]), (0, 3), (2, 3)),
    case("cat (2,0) with (2,3) dim 1", lambda lib, a, b: lib.cat([a, b], 1), (2, 0), (2, 3)),
    case("cat (0,) with (0,)", lambda lib, a, b: lib.cat([a, b]), (0,), (0,)),
    case("cat 0-d raises", lambda lib, a, b: lib.cat([a, b]), (), (1,)),
    case("reshape (0,3) to (3,0)", lambda lib, x: x.reshape(3, 0), (0, 3)),
    case("reshape (0,3) to (2,0,5)", lambda lib, x: x.reshape(2, 0, 5), (0, 3)),
    case("reshape (0,3) to -1", lambda lib, x: x.reshape(-1), (0, 3)),
    case("reshape (0,3) to (0,-1) raises", lambda lib, x: x.reshape(0, -1), (0, 3)),
    case("reshape 0-d to (1,1)", lambda lib, x: x.reshape(1, 1), ()),
    case("reshape 0-d to -1", lambda lib, x: x.reshape(-1), ()),
    case("reshape (1,1) to 0-d", lambda lib, x: x.reshape(()), (1, 1)),
    case("reshape (1,) to (2,) raises", lambda lib, x: x.reshape(2), (1,)),
]


@pytest.mark.parametrize("fn, shapes", EDGE_CASES)
def test_edge_shapes_like_torch(fn, shapes):
    check_like_torch(fn, *shapes)


# ---- (b) very large reductions against NumPy in float64

BIG = 2**26  # 256 MiB of float32


# A float32 reduction that accumulates sequentially loses the low digits of each addend once the running sum is large:
# 2**26 copies of 0.1 summed 15% high that way, and 2**27 ones stop counting at 2**24 in one accumulator.
@pytest.mark.parametrize("data", ["ones", "normal", "tenths"])
def test_big_reduction_matches_float64(data):
    x = {"ones": lambda: np.ones(BIG, np.float32),
         "normal": lambda: np.random.default_rng(0).standard_normal(BIG, dtype=np.float32),
         "tenths": lambda: np.full(BIG, 0.1, np.float32)}[data]()
    t = lg.Tensor(x)
    np.testing.assert_allclose(t.sum().item(), np.sum(x, dtype=np.float64), rtol=1e-4, err_msg="sum")
    np.testing.assert_allclose(t.mean().item(), np.mean(x, dtype=np.float64), rtol=1e-4, err_msg="mean")


def test_sum_of_2_27_ones():
    assert lg.ones(2**27).sum().item() == 2**27  # exact in float32 if no partial sum passes 2**24


# ---- (c) memory: a training loop stays flat, deleting tensors gives memory back, the counters match the buffers

def live_buffer_bytes(device=None) -> int:
    """The bytes of every device buffer still alive on `device` (the default device if None)."""
    dev = canonical(device)
    return sum(o.nbytes for o in gc.get_objects() if type(o) is Buffer and o.device == dev and o.handle is not None)


def in_use() -> int:
    return lg.memory_stats()["in_use"]


class TinyMLP:
    """Two layers by hand, trained by plain SGD: the pattern an optimizer step follows."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.x = lg.Tensor(rng.standard_normal((16, 8), dtype=np.float32))
        self.y = lg.Tensor(rng.standard_normal((16, 1), dtype=np.float32))
        self.params = [lg.Tensor(rng.standard_normal(shape, dtype=np.float32) * 0.3, requires_grad=True)
                       for shape in ((8, 12), (12,), (12, 1), (1,))]

    def step(self, lr=0.01) -> lg.Tensor:
        w1, b1, w2, b2 = self.params
        loss = (((self.x @ w1 + b1).relu() @ w2 + b2 - self.y) ** 2).mean()
        loss.backward()
        for p in self.params:
            p.assign(p - lr * p.grad)
            p.grad = None
        lg.realize(*self.params)
        return loss.detach()


def test_training_loop_memory_is_flat_and_given_back():
    gc.collect()
    before = in_use()
    model = TinyMLP()
    first_loss = model.step().item()
    for step in range(2, 2001):
        model.step()
        if step in (100, 2000):
            gc.collect()
            used = in_use()
            assert used == live_buffer_bytes()
            if step == 100: at_100 = used
    assert used == at_100, f"in_use grew from {at_100} bytes at step 100 to {used} at step 2000"
    assert model.step().item() < first_loss / 10  # it trained
    del model
    gc.collect()
    assert in_use() == before
    assert in_use() == live_buffer_bytes()


def test_a_training_step_frees_its_intermediates_without_the_cyclic_gc():
    model = TinyMLP()
    for _ in range(3): model.step()
    gc.collect()
    gc.disable()
    try:
        before = in_use()
        model.step()
        after = in_use()
    finally:
        gc.enable()
    assert after == before


def test_memory_stats_in_use_matches_live_buffers():
    gc.collect()
    before = in_use()
    a = lg.Tensor(np.ones((64, 32), np.float32))
    b = (a * 2 + 1).sum(1)  # one fused kernel: only the output is stored
    b.realize()
    assert in_use() == before + a.numel() * 4 + b.numel() * 4
    assert in_use() == live_buffer_bytes()
    del a, b
    gc.collect()
    assert in_use() == before == live_buffer_bytes()


def test_out_of_memory_names_the_size_asked_for():
    x = lg.Tensor([1.0])
    with pytest.raises(MemoryError, match="out of (host|device) memory allocating 281474976710656 bytes"):
        (x.expand(2**46) * 2).realize()
    np.testing.assert_allclose((x.expand(4) * 2).numpy(), [2, 2, 2, 2])  # the device goes on working


def test_empty_cache_gives_freed_memory_back():
    x = lg.Tensor(np.ones(1 << 16, np.float32)) * 2
    x.realize()
    del x
    gc.collect()
    assert lg.memory_stats()["cached"] >= 4 << 16
    lg.empty_cache()
    assert lg.memory_stats()["cached"] == 0


def test_compiled_kernels_in_memory_are_bounded():
    """A run that makes many different kernels keeps the most recently used ones; an evicted one compiles (or loads
    from the disk cache) again and gives the same numbers."""
    from lazygrad.device import KernelCache, get
    cache = KernelCache(limit=2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # a is now the most recently used
    cache["c"] = 3
    assert list(cache) == ["a", "c"]
    dev = get(lg.Tensor([0.0]).device)
    limit, dev.kernels.limit = dev.kernels.limit, 3
    try:
        x = lg.Tensor(np.arange(8, dtype=np.float32))
        for k in range(6): (x * (k + 2)).exp().sum().realize()  # six different kernels
        assert len(dev.kernels) == 3
        np.testing.assert_allclose((x * 2).exp().sum().item(), np.exp(np.arange(8) * 2).sum(), rtol=1e-5)
    finally:
        dev.kernels.limit = limit


def test_an_upload_is_a_snapshot_of_the_array_and_a_small_one_reads_back_without_the_device(monkeypatch):
    """Uploads are copies (a later change to the array does not reach the tensor), small ones queued without waiting
    for earlier kernels; reading a small upload back needs no copy from the device, reading a big one does."""
    from lazygrad.device import MIRROR_BYTES
    small, big = np.arange(10, dtype=np.float32), np.arange(MIRROR_BYTES // 4 + 1, dtype=np.float32)
    ts, tb = lg.Tensor(small), lg.Tensor(big)
    small[:], big[:] = -1, -1
    doubled = (ts * 2).numpy()  # a kernel reads what was uploaded, not the changed array
    allocator = lg.device.get(ts.device).allocator
    copies = []
    monkeypatch.setattr(allocator, "copyout", lambda host, handle: copies.append(host.size))
    np.testing.assert_array_equal(ts.numpy(), np.arange(10))
    assert copies == []
    tb.numpy()
    assert copies == [big.size]
    np.testing.assert_array_equal(doubled, np.arange(10) * 2)


def test_a_training_step_with_cross_entropy_reads_nothing_back(monkeypatch):
    """cross_entropy checks its targets on the host (as torch does) from the upload's host copy: a step does not wait
    for the kernels before it."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = lg.optim.Adam(model.parameters(), lr=0.01)
    x, y = lg.Tensor(np.ones((5, 4), np.float32)), lg.Tensor(np.array([0, 1, 2, 1, 0]))
    step = lambda: (F.cross_entropy(model(x), y).backward(), opt.step(), opt.zero_grad())
    step()
    copies = []
    monkeypatch.setattr(lg.device.get(x.device).allocator, "copyout", lambda host, handle: copies.append(host.size))
    for _ in range(2): step()
    assert copies == []
    with pytest.raises(IndexError, match="target 3 is out of bounds for 3 classes"):
        F.cross_entropy(model(x), lg.Tensor(np.array([0, 1, 2, 3, 0])))


# ---- (d) threads: each realizes its own tensors

def test_two_threads_realize_their_own_tensors():
    errors = []

    def work(shape, seed, iters):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(iters):
                a = rng.standard_normal(shape, dtype=np.float32)
                b = rng.standard_normal(shape[-1:], dtype=np.float32)
                ta, tb = lg.Tensor(a), lg.Tensor(b)
                got = ((ta * 2 + tb).relu().sum(0) + 1).numpy()
                np.testing.assert_allclose(got, np.maximum(a * 2 + b, 0).sum(0) + 1, rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose((ta @ ta.T).numpy(), a @ a.T, rtol=1e-4, atol=1e-4)
        except Exception as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)

    threads = [threading.Thread(target=work, args=((3, 5), 1, 150)), threading.Thread(target=work, args=((6, 2), 2, 150))]
    for t in threads: t.start()
    for t in threads: t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors[0]



def test_a_thread_realizing_a_constant_leaves_another_threads_graph_alone():
    """Realizing a node changes it in place. Equal constants built in two threads are two nodes, so one thread storing
    0.25 in a buffer never changes the graph another thread is scheduling (which read the node as a constant, then
    found it without an op)."""
    from lazygrad.ops import LoadOps
    x = lg.Tensor(np.arange(3, dtype=np.float32))
    pending = x * 0.25
    const = next(s.base for s in pending.lazydata.srcs if s.base.realized is None)
    thread = threading.Thread(target=lambda: lg.full((3,), 0.25).realize())
    thread.start()
    thread.join(timeout=60)
    assert (const.op, const.realized) == (LoadOps.CONST, None)
    np.testing.assert_array_equal(pending.numpy(), [0, 0.25, 0.5])

class ThreadModel:
    """An MLP with its own optimizer and data, its weights from NumPy: built twice from one seed, two are equal."""

    def __init__(self, seed: int, sizes: tuple, make_optimizer, jitted: bool):
        rng = np.random.default_rng(seed)
        self.model = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2]))
        for p in self.model.parameters():
            p.assign(lg.Tensor(rng.standard_normal(p.shape, dtype=np.float32) * 0.2)).realize()
        self.opt = make_optimizer(self.model.parameters())
        self.x = lg.Tensor(rng.standard_normal((16, sizes[0]), dtype=np.float32))
        self.y = lg.Tensor(rng.integers(0, sizes[2], 16))
        self.average = lg.zeros(()).realize()  # the loss's running average, written in place and read only at the end
        self.step = lg.jit(self._step) if jitted else self._step

    def _step(self, x, y):
        with lg.no_grad(): self.average.mul_(0.9)  # pending while the step's graph is built, stored by its first realize
        self.opt.zero_grad()
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.opt.step()
        with lg.no_grad(): self.average.add_(loss.detach() * 0.1)
        return loss

    def train(self, steps: int, together: threading.Barrier | None = None) -> tuple[list, list]:
        losses = []
        for _ in range(steps):
            if together is not None: together.wait()  # threads take each step at the same time: their steps overlap
            losses.append(self.step(self.x, self.y).item())
        if isinstance(self.step, lg.jit): assert self.step.replayable, "the jitted step never replayed"
        return losses, [self.average.numpy()] + [p.numpy() for p in self.model.parameters()]


THREAD_MODELS = [(1, (64, 32, 10), lambda ps: lg.optim.Adam(ps, lr=1e-2)),
                 (2, (48, 24, 6), lambda ps: lg.optim.SGD(ps, lr=0.1, momentum=0.9))]


@pytest.mark.parametrize("jitted", [False, True], ids=["eager", "jit"])
def test_two_threads_training_their_own_models_match_one_after_the_other(jitted):
    """Each thread's launches, in-place writes and jit recordings stay its own: two models trained at once end where
    they end trained one after the other, to the bit."""
    steps = 30
    alone = [ThreadModel(seed, sizes, opt, jitted).train(steps) for seed, sizes, opt in THREAD_MODELS]
    models = [ThreadModel(seed, sizes, opt, jitted) for seed, sizes, opt in THREAD_MODELS]
    results, errors = [None] * len(models), []
    together = threading.Barrier(len(models), timeout=60)

    def work(k):
        try: results[k] = models[k].train(steps, together)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)
            together.abort()  # the other thread stops waiting for this one

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(models))]
    for t in threads: t.start()
    for t in threads: t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors: raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    for (want_losses, want_params), (got_losses, got_params) in zip(alone, results):
        np.testing.assert_array_equal(got_losses, want_losses)
        for got, want in zip(got_params, want_params): np.testing.assert_array_equal(got, want)
    if jitted: assert all(m.step.replayable for m in models)

# ---- (e) kernel failures name the generated source and the backend's message

@pytest.fixture
def broken_render(monkeypatch):
    """Make the OpenCL renderer emit invalid source for the next kernel it renders (one kernel only)."""
    backend = importlib.import_module("lazygrad.backends.opencl")
    render, broken = backend.render, []

    def bad_render(plan, *args):
        src, name = render(plan, *args)
        if broken: return src, name
        broken.append(name)
        return src.replace("{\n", "{\n  this_is_not_c;\n", 1), name

    monkeypatch.setattr(backend, "render", bad_render)
    forget_kernels(monkeypatch, lg.device.get("OPENCL"))  # as a new process: the kernel has its numbers in its source
    # sources cached by an earlier run would skip rendering altogether
    cache_get = backend.disk_cache_get
    monkeypatch.setattr(backend, "disk_cache_get", lambda table, key: None if table == "opencl-source" else cache_get(table, key))
    return backend


def test_compile_failure_shows_source_and_backend_message(broken_render):
    y = lg.Tensor(np.arange(35, dtype=np.float32).reshape(5, 7)) * 1234.5  # a kernel no other test compiles
    with pytest.raises(broken_render.KernelError) as info:
        y.numpy()
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "__kernel void" in message and "1234.5" in message  # the generated source
    assert re.search(r"error.*this_is_not_c", message, re.S | re.I)  # the compiler's words about the bad line
    assert message.count("this_is_not_c") >= 2  # once in the compiler's log, once in the source


def test_retry_after_a_failed_kernel_recomputes(broken_render, monkeypatch):
    x = np.arange(35, dtype=np.float32).reshape(7, 5)
    y = lg.Tensor(x) * 4321.5  # a kernel no other test compiles
    with pytest.raises(broken_render.KernelError):
        y.numpy()
    monkeypatch.undo()  # the renderer works again
    np.testing.assert_allclose(y.numpy(), x * np.float32(4321.5))


def test_a_kernels_source_comes_from_the_disk_cache_after_the_first_time(monkeypatch):
    """Lowering and rendering run once per kernel and code version: a new process (here: an emptied in-memory cache)
    takes the source from the disk cache and only loads the binary."""
    backend = importlib.import_module("lazygrad.backends.opencl")
    x = np.arange(6, dtype=np.float32)
    dev = forget_kernels(monkeypatch, lg.device.get("OPENCL"))  # x * 1234.25 may be a dynamic kernel's in this process
    (lg.Tensor(x, device="OPENCL") * 1234.25).numpy()
    forget_kernels(monkeypatch, dev)
    monkeypatch.setattr(backend, "render", lambda plan: pytest.fail("rendered a kernel whose source is cached"))
    np.testing.assert_allclose((lg.Tensor(x, device="OPENCL") * 1234.25).numpy(), x * np.float32(1234.25))


def test_a_cpu_kernels_work_groups_are_many_enough_to_balance_the_cores():
    """PoCL would run a convolution's 25088 work-items as 7 groups on 2 cores; ours are powers of two, at least 32
    per core where the work allows, and the global size rounds up past the work (whose kernels return early)."""
    dev = lg.device.get("OPENCL")
    if not dev.cpu: pytest.skip("work-groups are chosen for CPU devices only")
    for work in (1, 7, 25088, 100003, 2**21):
        (size,), (local,) = dev.launch_sizes(work)
        assert local & (local - 1) == 0 and local <= dev.max_local
        assert size % local == 0 and work <= size < work + local
        assert size // local >= min(work, 32 * dev.cores)
        assert dev.launch_sizes(work, 48)[1][0] <= 32  # within a kernel's own, smaller limit
    x = np.arange(100003, dtype=np.float32)
    np.testing.assert_array_equal((lg.Tensor(x, device="OPENCL") * 2 + 1).numpy(), x * 2 + 1)


# ---- (f) bad input: one test per class of mistake; each case checks the exception's type and message, raised eagerly
# (at the offending call, not when a result is realized later)

def bad(name, fn, exc, message, bug=None):
    marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
    return pytest.param(fn, exc, message, id=name, marks=marks)


def check_raises(fn, exc, message):
    with pytest.raises(exc, match=message) as info:
        fn()
    return info.value


M34, M56 = (lambda: lg.ones(3, 4)), (lambda: lg.ones(5, 6))


@pytest.mark.parametrize("fn, exc, message", [
    bad("add", lambda: M34() + M56(), ValueError, r"^add: shapes \(3, 4\) and \(5, 6\) cannot be broadcast"),
    bad("mul rank", lambda: lg.ones(2, 3, 4) * lg.ones(3), RuntimeError, r"^mul: shapes \(2, 3, 4\) and \(3,\) cannot be broadcast"),
    bad("maximum", lambda: M34().maximum(lg.ones(2, 1)), ValueError, r"\(3, 4\) and \(2, 1\)"),
    bad("where", lambda: lg.ones(3).where(lg.ones(4), 0.0), ValueError, r"^where: shapes \(3,\) and \(4,\)"),
    bad("expand_as", lambda: lg.ones(2).expand_as(lg.ones(3)), ValueError, r"\(2,\).*\(3,\)"),
])
def test_bad_input_shapes_that_do_not_broadcast(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("2-D", lambda: M34() @ M56(), ValueError, "^" + re.escape("matmul: shapes (3, 4) and (5, 6) cannot be multiplied (4 != 5)") + "$"),
    bad("torch type", lambda: M34() @ M56(), RuntimeError, r"cannot be multiplied"),
    bad("1-D", lambda: lg.ones(3) @ lg.ones(4, 2), ValueError, re.escape("matmul: shapes (3,) and (4, 2) cannot be multiplied (3 != 4)")),
    bad("batched", lambda: lg.ones(2, 3, 4) @ lg.ones(2, 5, 6), ValueError, re.escape("shapes (2, 3, 4) and (2, 5, 6) cannot be multiplied (4 != 5)")),
    bad("batch dims", lambda: lg.ones(2, 3, 4) @ lg.ones(3, 4, 5), ValueError, r"batch dimensions .*\(2, 3, 4\) and \(3, 4, 5\)"),
    bad("0-d", lambda: lg.ones(()) @ lg.ones(3), ValueError, r"at least 1 dimension.*\(\) and \(3,\)"),
])
def test_bad_input_matmul_shapes(fn, exc, message):
    check_raises(fn, exc, message)


DIM_RANGE = r"dim 2 is out of range for a tensor of 2 dimensions \(expected to be in range of \[-2, 1\]\)"


@pytest.mark.parametrize("fn, exc, message", [
    bad("sum", lambda: M34().sum(2), IndexError, "^sum: " + DIM_RANGE),
    bad("sum tuple", lambda: M34().sum((0, 2)), IndexError, "^sum: " + DIM_RANGE),
    bad("amax negative", lambda: M34().amax(-3), IndexError, r"^amax: dim -3 is out of range"),
    bad("transpose", lambda: M34().transpose(0, 2), IndexError, "^transpose: " + DIM_RANGE),
    bad("flip", lambda: M34().flip(2), IndexError, "^flip: " + DIM_RANGE),
    bad("cat", lambda: lg.cat([M34(), M34()], 2), IndexError, "^cat: " + DIM_RANGE),
    bad("unsqueeze", lambda: M34().unsqueeze(4), IndexError, r"^unsqueeze: dim 4 is out of range .*\[-3, 2\]"),
    bad("softmax", lambda: M34().softmax(2), IndexError, "^softmax: " + DIM_RANGE),
    bad("0-d", lambda: lg.ones(()).sum(1), IndexError, r"dim 1 is out of range .*\[-1, 0\]"),
])
def test_bad_input_dim_out_of_range(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("reshape", lambda: M34().reshape(5, 2), ValueError, "^" + re.escape("reshape: shape (5, 2) is invalid for input of size 12 (shape (3, 4))")),
    bad("view", lambda: M34().view(5, 2), RuntimeError, re.escape("shape (5, 2) is invalid for input of size 12")),
    bad("inferred", lambda: M34().reshape(5, -1), ValueError, re.escape("shape (5, -1) is invalid for input of size 12")),
    bad("two inferred", lambda: M34().reshape(-1, -1), ValueError, r"only one dimension can be inferred"),
    bad("empty ambiguous", lambda: lg.ones(0, 3).reshape(0, -1), ValueError, re.escape("shape (0, -1) is invalid for input of size 0")),
])
def test_bad_input_reshape_size_mismatch(fn, exc, message):
    check_raises(fn, exc, message)


def OOB(i, d, s): return "^" + re.escape(f"index {i} is out of bounds for dimension {d} with size {s}") + "$"


@pytest.mark.parametrize("fn, exc, message", [
    bad("int", lambda: M34()[3], IndexError, OOB(3, 0, 3)),
    bad("negative int", lambda: M34()[-4], IndexError, OOB(-4, 0, 3)),
    bad("int in dim 1", lambda: M34()[:, 4], IndexError, OOB(4, 1, 4)),
    bad("tensor", lambda: M34()[lg.tensor([0, 3])], IndexError, OOB(3, 0, 3)),
    bad("negative tensor", lambda: M34()[lg.tensor([-4])], IndexError, OOB(-4, 0, 3)),
    bad("list in dim 1", lambda: M34()[:, [5]], IndexError, OOB(5, 1, 4)),
    bad("gather", lambda: M34().gather(1, lg.tensor([[4]])), IndexError, OOB(4, 1, 4)),
    bad("gather negative", lambda: M34().gather(1, lg.tensor([[-1]])), IndexError, OOB(-1, 1, 4)),
    bad("index_select", lambda: M34().index_select(0, lg.tensor([3])), IndexError, OOB(3, 0, 3)),
    bad("setitem", lambda: M34().__setitem__(3, 1.0), IndexError, OOB(3, 0, 3)),
])
def test_bad_input_index_out_of_range(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("and", lambda: lg.ones(3) & lg.ones(3), TypeError, r"^bitwise_and: not supported for floating point tensors \(got float32\)$"),
    bad("or scalar", lambda: lg.ones(3) | 1, TypeError, r"^bitwise_or: not supported for floating point tensors"),
    bad("xor int with float", lambda: lg.tensor([1, 2]) ^ lg.ones(2), TypeError, r"^bitwise_xor: .*floating point"),
    bad("invert", lambda: ~lg.ones(3), TypeError, r"^bitwise_not: not supported for floating point tensors"),
    bad("mean of int", lambda: lg.tensor([1, 2]).mean(), RuntimeError, r"mean\(\): could not infer output dtype.*int64"),
    bad("neg of bool", lambda: -lg.tensor([True]), TypeError, r"^neg: negation of a bool tensor"),
    bad("float index", lambda: M34()[lg.tensor([1.0])], IndexError, r"must be long, int or bool, got float32"),
])
def test_bad_input_dtype_not_supported_by_op(fn, exc, message):
    check_raises(fn, exc, message)


def two_devices():
    """A tensor on each of two devices: the default one and the other backend's (a constant allocates nothing, so the
    check must come from comparing device names)."""
    other = "OPENCL" if lg.zeros(1).device.startswith("TRITON") else "TRITON"
    try:
        return lg.zeros(3, device=other), lg.zeros(3)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"no second device name: {e}")


DIFFERENT = r"tensors are on different devices: (TRITON:0 and OPENCL:0|OPENCL:0 and TRITON:0)"


@pytest.mark.parametrize("fn, exc, message", [
    bad("add", lambda a, b: a + b, ValueError, "^add: " + DIFFERENT),
    bad("matmul", lambda a, b: a @ b, ValueError, "^matmul: " + DIFFERENT),
    bad("cat", lambda a, b: lg.cat([a, b]), ValueError, "^cat: " + DIFFERENT),
    bad("maximum", lambda a, b: a.maximum(b), ValueError, "^maximum: " + DIFFERENT),
    bad("where", lambda a, b: (b > 0).where(a, b), ValueError, DIFFERENT),
    bad("assign", lambda a, b: b.assign(a), ValueError, DIFFERENT),
    bad("gather", lambda a, b: b.gather(0, a.long()), ValueError, DIFFERENT),
])
def test_bad_input_tensors_on_different_devices(fn, exc, message):
    a, b = two_devices()
    check_raises(lambda: fn(a, b), exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("name", lambda: lg.Tensor([1.0], device="FOO"), ValueError, r"^unknown device 'FOO'; expected one of OPENCL, TRITON"),
    bad("index", lambda: lg.zeros(2, device="OPENCL:x"), ValueError, r"^unknown device 'OPENCL:x'"),
    bad("type", lambda: lg.zeros(2, device=3), TypeError, r"device must be a string.*got 3"),
    bad("missing device, data", lambda: lg.Tensor([1.0], device="OPENCL:99"), ValueError, r"^OPENCL:99 does not exist"),
    bad("missing device, constant", lambda: lg.zeros(2, device="OPENCL:99"), ValueError, r"^OPENCL:99 does not exist"),
])
def test_bad_input_unknown_device(fn, exc, message):
    check_raises(fn, exc, message)


def test_bad_input_a_backend_whose_package_is_missing():
    import subprocess, sys
    script = ("import sys; sys.modules['triton'] = None\n"  # as on a machine without the triton package
              "import lazygrad as lg\n"
              "try: lg.Tensor([1.0], device='TRITON')\n"
              "except ModuleNotFoundError as e: print(e)")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == ("device TRITON:0: the TRITON backend needs the Python package 'triton', which is not "
                                  "installed here (pip install 'lazygrad[triton]')"), run.stdout + run.stderr


def test_bad_input_backward_of_non_scalar_without_gradient():
    y = lg.tensor([1.0, 2.0, 3.0], requires_grad=True) * 2
    check_raises(y.backward, RuntimeError,
                 r"^grad can be implicitly created only for scalar outputs; this output has shape \(3,\)")


@pytest.mark.parametrize("fn, exc, message", [
    bad("tensor", lambda: lg.tensor([1, 2], requires_grad=True), RuntimeError,
        r"^only floating point tensors can require gradients, got dtype int64$"),
    bad("creation", lambda: lg.ones(2, dtype=lg.int32, requires_grad=True), RuntimeError, r"got dtype int32$"),
    bad("requires_grad_", lambda: lg.tensor([True]).requires_grad_(), RuntimeError, r"got dtype bool$"),
])
def test_bad_input_requires_grad_on_int_tensor(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("negative", lambda: lg.zeros(2, -1), ValueError, re.escape("negative dimension in shape (2, -1)")),
    bad("random", lambda: lg.randn(-3), ValueError, re.escape("negative dimension in shape (-3,)")),
    bad("float", lambda: lg.zeros(2.5), TypeError, re.escape("a shape takes ints, got (2.5,)")),
    bad("reshape negative", lambda: M34().reshape(-2, -6), ValueError, re.escape("reshape: invalid shape (-2, -6)")),
])
def test_bad_input_invalid_shape(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("permute repeats", lambda: M34().permute(0, 0), RuntimeError, r"^permute: order \(0, 0\) repeats a dim"),
    bad("permute length", lambda: M34().permute(0), RuntimeError, r"^permute: order \(0,\) does not match the 2 dims"),
    bad("expand", lambda: M34().expand(6, 4), RuntimeError, r"^expand: shape \(3, 4\) cannot be expanded to \(6, 4\)"),
    bad("expand fewer dims", lambda: M34().expand(4), RuntimeError, r"^expand: the number of sizes \(1\)"),
    bad("pad length", lambda: lg.ones(3).pad([1, 1, 1, 1]), ValueError, r"^pad: padding length 4"),
    bad("pad pairs", lambda: M34().pad(((0, 1), (0, 0))), TypeError, r"^pad: expected a flat sequence of ints.*got \(\(0, 1\), \(0, 0\)\)"),
])
def test_bad_input_invalid_movement(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("cat", lambda: lg.cat([lg.ones(2, 3), lg.ones(3, 2)]), RuntimeError, re.escape("cat: shapes (2, 3), (3, 2) do not match outside dim 0")),
    bad("cat nothing", lambda: lg.cat([]), ValueError, r"^cat: expected a non-empty list"),
    bad("stack", lambda: lg.stack([lg.ones(2), lg.ones(3)]), RuntimeError, re.escape("stack: expects each tensor to be equal size, got (2,), (3,)")),
    bad("split", lambda: lg.ones(4).split([1, 2]), RuntimeError, re.escape("split: sections [1, 2] do not add up to 4")),
])
def test_bad_input_shapes_that_do_not_concatenate(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("item", lambda: lg.ones(2).item(), RuntimeError, re.escape("item: a Tensor with 2 elements (shape (2,)) cannot be converted to a Python number")),
    bad("bool", lambda: bool(lg.ones(2)), ValueError, r"2 elements"),
    bad("len of 0-d", lambda: len(lg.ones(())), TypeError, r"len\(\) of a 0-d tensor"),
])
def test_bad_input_many_elements_as_one_number(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("too many", lambda: M34()[0, 0, 0], IndexError, re.escape("too many indices for tensor of dimension 2 (got 3, shape (3, 4))")),
    bad("float scalar", lambda: M34()[1.0], IndexError, r"unsupported index 1.0 of type float"),
    bad("two ellipses", lambda: M34()[..., ...], IndexError, r"single ellipsis"),
    bad("mask shape", lambda: M34()[lg.tensor([True, False])], IndexError, r"shape of the mask \(2,\) at index 0 does not match .*\(3, 4\)"),
])
def test_bad_input_index_of_the_wrong_kind(fn, exc, message):
    check_raises(fn, exc, message)


def test_bad_input_backward_twice():
    x = lg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    check_raises(y.backward, RuntimeError, r"backward through the graph a second time; pass retain_graph=True")


@pytest.mark.parametrize("fn, exc, message", [
    bad("string", lambda: lg.Tensor("abc"), TypeError, r"cannot make a tensor from a NumPy array of dtype <U3"),
    bad("None", lambda: lg.Tensor(None), TypeError, r"cannot make a tensor of NoneType None"),
    bad("complex128", lambda: lg.Tensor(np.zeros(2, np.complex128)), TypeError, r"dtype complex128; lazygrad has complex64 only"),
    bad("dtype name", lambda: lg.zeros(2, dtype="float128"), TypeError, r"^unknown dtype 'float128'; expected one of"),
])
def test_bad_input_data_or_dtype_that_is_not_a_tensor(fn, exc, message):
    check_raises(fn, exc, message)


@pytest.mark.parametrize("fn, exc, message", [
    bad("assign shape", lambda: lg.zeros(3).assign(lg.zeros(4)), RuntimeError, re.escape("assign: shape (4,) does not match (3,)")),
    bad("setitem on a leaf that requires grad", lambda: lg.ones(3, requires_grad=True).__setitem__(0, 2.0), RuntimeError,
        r"a leaf tensor that requires grad is being used in an in-place operation"),
    bad("setitem value shape", lambda: M34().__setitem__(0, lg.ones(5)), ValueError, re.escape("setitem: shapes (4,) and (5,) cannot be broadcast")),
])
def test_bad_input_in_place_update(fn, exc, message):
    check_raises(fn, exc, message)


def test_tuned_picks_the_fastest_and_measures_once(monkeypatch, tmp_path):
    from lazygrad import helpers
    monkeypatch.setattr(helpers, "cache_dir", lambda: tmp_path)
    times, measured = {"a": 3.0, "b": 1.0, "c": 2.0}, []
    measure = lambda c: measured.append(c["name"]) or times[c["name"]]
    candidates = [{"name": n} for n in times]
    assert helpers.tuned("t", "key", candidates, measure) == {"name": "b"} and measured == ["a", "b", "c"] * 3  # rounds
    assert helpers.tuned("t", "key", candidates, measure) == {"name": "b"} and len(measured) == 9  # from disk
    assert helpers.tuned("t", "key", candidates[:1], measure) == {"name": "a"}  # a kept choice no longer offered


def test_tuned_counts_each_candidates_best_round(monkeypatch, tmp_path):
    """A busy moment slows whichever candidate runs in it: here a's first round and b's second."""
    from lazygrad import helpers
    monkeypatch.setattr(helpers, "cache_dir", lambda: tmp_path)
    times = {"a": [9.0, 2.0, 2.0], "b": [3.0, 9.0, 3.0]}
    assert helpers.tuned("t", "key", [{"name": "a"}, {"name": "b"}], lambda c: times[c["name"]].pop(0)) == {"name": "a"}


def test_tuned_skips_failures_and_raises_the_defaults_error_when_all_fail(monkeypatch, tmp_path):
    from lazygrad import helpers
    monkeypatch.setattr(helpers, "cache_dir", lambda: tmp_path)

    def measure(c):
        if c["name"] != "ok": raise ValueError(f"{c['name']} does not fit")
        return 1.0
    assert helpers.tuned("t", "k1", [{"name": "big"}, {"name": "ok"}], measure) == {"name": "ok"}
    with pytest.raises(ValueError, match="^default does not fit$"):
        helpers.tuned("t", "k2", [{"name": "default"}, {"name": "other"}], measure)


def test_a_big_kernels_register_tile_is_measured_on_opencl(monkeypatch, tmp_path):
    """A convolution has several tiles with the model's fewest loads; each is compiled and timed once, the result is
    right whichever wins, and the choice is kept on disk."""
    from lazygrad import helpers
    from lazygrad.backends import opencl
    monkeypatch.setattr(helpers, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(opencl, "TUNE_WORK", 0)
    dev = lg.device.get("OPENCL")
    monkeypatch.setattr(dev, "tune", True)
    forget_kernels(monkeypatch, dev)  # as a new process: nothing compiled in memory
    compiled, compile = [], dev.compile
    # each kernel a build holds, by its own name (a batch renames its kernels apart: see opencl.batch_source)
    monkeypatch.setattr(dev, "compile", lambda src, *args: compiled.extend(re.findall(r"__kernel void (\w+?)(?:__b\d+)?\(", src))
                        or compile(src, *args))
    x, w = torch.randn(2, 8, 16, 16), torch.randn(16, 8, 3, 3)
    y = F.conv2d(lg.Tensor(x.numpy()), lg.Tensor(w.numpy()), padding=1)
    np.testing.assert_allclose(y.numpy(), torch.nn.functional.conv2d(x, w, padding=1).numpy(), rtol=1e-4, atol=1e-4)
    # rows of the tile at the stride of a pixel row, an image's channel or an image, with the model's fewest loads
    tiles = [[4, 2, 16], [4, 2, 256], [2, 4, 256], [2, 4, 4096], [1, 8, 8192]]
    [choice] = [json.loads(f.read_bytes()) for f in (tmp_path / "opencl-tune").iterdir()]
    assert choice in tiles
    assert max(compiled.count(name) for name in compiled) == len(tiles) + 1  # each measured, then the choice built


def test_a_long_compile_shows_progress_on_stderr(monkeypatch, tmp_path, capsys):
    """A new model's first step can compile for a minute: once a realize has spent REPORT_AFTER seconds building
    kernels, progress goes to stderr (here from the first build, with an empty kernel cache)."""
    from lazygrad import device as devices, helpers
    monkeypatch.setattr(helpers, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(devices.CompileProgress, "REPORT_AFTER", 0.0)
    forget_kernels(monkeypatch, lg.device.get("OPENCL"))
    x = lg.Tensor(np.arange(6, dtype=np.float32))
    np.testing.assert_allclose(((x + 1).exp().sum()).numpy(), np.exp(np.arange(6) + 1).sum(), rtol=1e-6)
    err = capsys.readouterr().err
    assert re.fullmatch(r"lazygrad: compiling kernels \(1 new of 1 in this computation, \d+ s; kept on disk for the "
                        r"next run\)\n", err), err
    np.testing.assert_allclose(((x + 1).exp().sum()).numpy(), np.exp(np.arange(6) + 1).sum(), rtol=1e-6)
    assert capsys.readouterr().err == ""  # compiled already: nothing to report
