"""Optimizers and learning-rate schedulers against torch.optim: the same model, data and initial weights, stepped
together; kernel counts of a step; state dicts in torch's layout, in both directions."""

import numpy as np
import pytest
import torch

import lazygrad as lg
from lazygrad import nn, optim
from lazygrad.optim import lr_scheduler

RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 4)).astype(np.float32)
Y = RNG.standard_normal((8, 4)).astype(np.float32)


def models(seed=0):
    """A 4-parameter model in torch and in lazygrad with the same weights (two shapes only: fewer kernels)."""
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4))
    ours = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4))
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def lg_loss(model):
    return ((model(lg.tensor(X)) - lg.tensor(Y)) ** 2).mean()


def torch_loss(model):
    return ((model(torch.tensor(X)) - torch.tensor(Y)) ** 2).mean()


def train(ours, theirs, opt, topt, steps, scheds=()):
    for _ in range(steps):
        opt.zero_grad()
        lg_loss(ours).backward()
        opt.step()
        topt.zero_grad()
        torch_loss(theirs).backward()
        topt.step()
        for s, ts in scheds:
            s.step()
            ts.step()


def assert_params_close(ours, theirs, rtol=1e-4, atol=1e-5):
    for (name, tp), (_, lp) in zip(theirs.named_parameters(), ours.named_parameters()):
        np.testing.assert_allclose(lp.numpy(), tp.detach().numpy(), rtol=rtol, atol=atol, err_msg=name)


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, centered=True, momentum=0.5, weight_decay=0.01)),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{'-'.join(k)}" for n, k in CONFIGS])
def test_matches_torch_after_20_steps(name, kwargs):
    ours, theirs = models()
    opt = getattr(optim, name)(ours.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(theirs.parameters(), **kwargs)
    train(ours, theirs, opt, topt, 20)
    assert_params_close(ours, theirs)
    for lp, tp in zip(ours.parameters(), theirs.parameters()):  # the moment buffers too
        for key, tv in topt.state[tp].items():
            if key == "step": assert opt.state[lp]["step"].item() == tv.item() == 20
            else:  # absolute error on the buffer's scale: a momentum buffer of O(1) terms can pass near zero
                tv = tv.numpy()
                np.testing.assert_allclose(opt.state[lp][key].numpy(), tv, rtol=1e-4, atol=1e-5 * np.abs(tv).max(), err_msg=key)


def test_param_groups_and_a_scheduler_that_cycles_betas():
    ours, theirs = models()
    groups = lambda m: [{"params": m[0].parameters(), "lr": 0.02}, {"params": m[2].parameters(), "weight_decay": 0.05}]
    opt, topt = optim.AdamW(groups(ours), lr=0.01), torch.optim.AdamW(groups(theirs), lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.01] and opt.param_groups[1]["weight_decay"] == 0.05
    # OneCycleLR changes lr and beta1 every step: they reach the kernels as data, so nothing recompiles
    sched = lr_scheduler.OneCycleLR(opt, max_lr=[0.05, 0.02], total_steps=20)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=[0.05, 0.02], total_steps=20)
    train(ours, theirs, opt, topt, 19, [(sched, tsched)])
    assert_params_close(ours, theirs)
    assert opt.param_groups[0]["betas"] == topt.param_groups[0]["betas"]


def test_adam_step_kernel_count():
    """One Adam step over a 4-parameter model: one kernel per updated buffer (exp_avg, exp_avg_sq and the parameter
    for each parameter, and the step counter the four share), all scheduled by one realize. State it so it cannot
    grow."""
    ours, _ = models()
    opt = optim.Adam(ours.parameters(), lr=0.01)
    for _ in range(2):
        opt.zero_grad()
        lg_loss(ours).backward()
        lg.realize(*[p.grad for p in ours.parameters()])
        before = lg.kernel_count()
        opt.step()
        assert lg.kernel_count() - before == 13
    # the whole training step (forward, backward, update) in one schedule: 13 for the update, 7 for the gradients
    counts = []
    for _ in range(3):
        before = lg.kernel_count()
        opt.zero_grad()
        lg_loss(ours).backward()
        opt.step()
        counts.append(lg.kernel_count() - before)
    assert counts[0] == counts[1] == counts[2] <= 20



def test_the_loss_is_computed_by_the_steps_schedule():
    """A loss that backward ran from is computed with the step's update, from values the step computes anyway: reading
    it after opt.step() launches no kernel (it used to be a realize of its own, whose kernels a model's first step
    built in a second batch)."""
    ours, theirs = models()
    opt, topt = optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad(); topt.zero_grad()
        loss, tloss = lg_loss(ours), torch_loss(theirs)
        loss.backward(); tloss.backward()
        opt.step(); topt.step()
        before = lg.kernel_count()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-6)
        assert lg.kernel_count() == before

def jitted_step(model, opt):
    """One training step on (x, y) under lazygrad.jit: forward, backward, optimizer update."""
    @lg.jit
    def step(x, y):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def test_jitted_steps_replay_the_same_updates():
    """Under lazygrad.jit the recorded kernels are replayed without running Python: the step count and bias
    corrections live on the device, so replayed Adam steps still match torch's."""
    ours, theirs = models()
    opt, topt = optim.AdamW(ours.parameters(), lr=0.01), torch.optim.AdamW(theirs.parameters(), lr=0.01)

    step = jitted_step(ours, opt)

    for _ in range(8):
        step(lg.tensor(X), lg.tensor(Y))
        topt.zero_grad()
        torch_loss(theirs).backward()
        topt.step()
    assert step.replayable
    assert_params_close(ours, theirs)
    assert opt.state[ours[0].weight]["step"].item() == 8


def test_a_scheduler_reaches_jitted_steps():
    """A learning rate set between replayed steps (by a scheduler, or by hand) is the one the replayed kernels use."""
    ours, theirs = models()
    opt, topt = optim.AdamW(ours.parameters(), lr=0.01), torch.optim.AdamW(theirs.parameters(), lr=0.01)
    sched, tsched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.3), torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.3)

    step = jitted_step(ours, opt)

    for n in range(10):
        if n == 7:
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = 0.05
        step(lg.tensor(X), lg.tensor(Y))
        topt.zero_grad()
        torch_loss(theirs).backward()
        topt.step()
        sched.step()
        tsched.step()
    assert step.replayable
    assert_params_close(ours, theirs)


def test_a_parameter_without_gradient_keeps_its_step_count():
    ours, theirs = models()
    opt, topt = optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    for k in range(3):
        for o, model, loss in ((opt, ours, lg_loss), (topt, theirs, torch_loss)):
            o.zero_grad()
            loss(model).backward()
            if k == 1: model[2].bias.grad = None  # the last bias sits out one step
            o.step()
    assert [opt.state[p]["step"].item() for p in ours.parameters()] == [3, 3, 3, 2]
    assert_params_close(ours, theirs)


def test_sgd_kernel_counts():
    ours, _ = models()
    plain = optim.SGD(ours.parameters(), lr=0.1)
    momentum = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    # one kernel per parameter; with momentum, one more per buffer, except at the first step, where the buffer is
    # the (already computed) gradient itself
    for opt, expected in ((plain, 4), (momentum, 4), (momentum, 8), (momentum, 8)):
        opt.zero_grad()
        lg_loss(ours).backward()
        lg.realize(*[p.grad for p in ours.parameters()])
        before = lg.kernel_count()
        opt.step()
        assert lg.kernel_count() - before == expected


def test_step_with_closure():
    ours, _ = models()
    opt = optim.Adam(ours.parameters())
    lg_loss(ours).backward()
    # a closure runs with grad enabled, and step returns its loss
    loss = opt.step(lambda: lg_loss(ours))
    assert isinstance(loss, lg.Tensor) and loss.requires_grad


def test_state_dict_layout_matches_torch():
    ours, theirs = models()
    opt = optim.Adam([{"params": ours[0].parameters()}, {"params": ours[2].parameters(), "lr": 0.1}], amsgrad=True)
    topt = torch.optim.Adam([{"params": theirs[0].parameters()}, {"params": theirs[2].parameters(), "lr": 0.1}], amsgrad=True)
    train(ours, theirs, opt, topt, 2)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert list(sd) == list(tsd) == ["state", "param_groups"]
    assert list(sd["state"]) == list(tsd["state"]) == [0, 1, 2, 3]
    for i in range(4):
        assert list(sd["state"][i]) == list(tsd["state"][i])
        assert sd["state"][i]["step"].item() == 2.0 and sd["state"][i]["step"].dtype is lg.float32
    assert [set(g) for g in sd["param_groups"]] == [set(g) for g in tsd["param_groups"]]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.001, 0.1]


def test_resume_from_state_dict_and_from_torch():
    # ours: 3 steps, save, a fresh optimizer loads it, 3 more; torch: 6 steps straight
    ours, theirs = models()
    opt, topt = optim.RMSprop(ours.parameters(), lr=0.01, momentum=0.5), torch.optim.RMSprop(theirs.parameters(), lr=0.01, momentum=0.5)
    train(ours, theirs, opt, topt, 3)
    opt2 = optim.RMSprop(ours.parameters(), lr=0.5)
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == 0.01
    train(ours, theirs, opt2, topt, 3)
    assert_params_close(ours, theirs)
    # torch's optimizer state dict (torch tensors, tensor steps) loads into ours and the runs stay together
    ours.load_state_dict(theirs.state_dict())
    opt3 = optim.RMSprop(ours.parameters())
    opt3.load_state_dict(topt.state_dict())
    assert opt3.state[next(ours.parameters())]["step"].item() == 6.0
    train(ours, theirs, opt3, topt, 3)
    assert_params_close(ours, theirs)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt3.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt3.load_state_dict({"state": {}, "param_groups": [{"params": [0]}]})


def test_zero_grad_and_argument_checks():
    p = nn.Parameter(lg.ones(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = lg.ones(3)
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.numpy().any()
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: nothing to do
    np.testing.assert_array_equal(p.numpy(), [1, 1, 1])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    assert repr(optim.SGD([p], lr=0.1)).startswith("SGD (\nParameter Group 0\n    dampening: 0\n")


# ---------------------------------------------------------------- schedulers

def sched_pair(opt_name, make, **opt_kwargs):
    """The same scheduler over the same two-group optimizer in both libraries."""
    groups = lambda lib_param: [{"params": [lib_param()], "lr": 0.1}, {"params": [lib_param()], "lr": 0.03}]
    opt = getattr(optim, opt_name)(groups(lambda: nn.Parameter(lg.zeros(1))), **opt_kwargs)
    topt = getattr(torch.optim, opt_name)(groups(lambda: torch.nn.Parameter(torch.zeros(1))), **opt_kwargs)
    return opt, topt, make(lr_scheduler, opt), make(torch.optim.lr_scheduler, topt)


SCHEDULERS = [
    ("StepLR", "SGD", lambda m, o: m.StepLR(o, step_size=7, gamma=0.5)),
    ("MultiStepLR", "SGD", lambda m, o: m.MultiStepLR(o, milestones=[5, 12, 12, 20], gamma=0.3)),
    ("ExponentialLR", "SGD", lambda m, o: m.ExponentialLR(o, gamma=0.9)),
    ("CosineAnnealingLR", "SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    ("LinearLR", "SGD", lambda m, o: m.LinearLR(o, start_factor=0.2, end_factor=0.9, total_iters=8)),
    ("LambdaLR", "SGD", lambda m, o: m.LambdaLR(o, [lambda e: 0.95 ** e, lambda e: 1 / (e + 1)])),
    ("MultiplicativeLR", "SGD", lambda m, o: m.MultiplicativeLR(o, lambda e: 0.97)),
    ("ConstantLR", "SGD", lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4)),
    ("PolynomialLR", "SGD", lambda m, o: m.PolynomialLR(o, total_iters=20, power=2.0)),
    ("OneCycleLR", "SGD", lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=31)),
    ("OneCycleLR-3phase-linear-Adam", "Adam",
     lambda m, o: m.OneCycleLR(o, max_lr=0.3, epochs=4, steps_per_epoch=8, three_phase=True, anneal_strategy="linear")),
    ("SequentialLR", "SGD", lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=5),
                                                            m.CosineAnnealingLR(o, T_max=12)], milestones=[6])),
    ("ChainedScheduler", "SGD", lambda m, o: m.ChainedScheduler([m.ExponentialLR(o, gamma=0.95), m.StepLR(o, 4, 0.5)])),
]


@pytest.mark.parametrize("name,opt_name,make", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_scheduler_lrs_match_torch_for_30_steps(name, opt_name, make):
    extra = {"momentum": 0.9} if opt_name == "SGD" else {}
    opt, topt, sched, tsched = sched_pair(opt_name, make, **extra)
    assert sched.get_last_lr() == tsched.get_last_lr()
    saved = None
    for step in range(30):
        topt.step()  # no gradients: only keeps torch from warning about the call order
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=1e-15), f"step {step}"
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups], rel=1e-12)
        if "momentum" in extra:
            assert [g["momentum"] for g in opt.param_groups] == pytest.approx([g["momentum"] for g in topt.param_groups])
        else:
            assert [g["betas"] for g in opt.param_groups] == [g["betas"] for g in topt.param_groups]
        if step == 9: saved = (sched.state_dict(), opt.state_dict(), list(sched.get_last_lr()))
    # resume from step 10 with fresh objects: the same 20 learning rates follow
    if name in ("SequentialLR", "ChainedScheduler", "LambdaLR"):
        return  # made of other schedulers or lambdas: covered by their own state-dict tests
    opt2, _, sched2, _ = sched_pair(opt_name, make, **extra)
    sched2.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    assert sched2.get_last_lr() == saved[2]
    lrs = []
    for _ in range(20):
        sched2.step()
        lrs.append(sched2.get_last_lr())
    assert lrs[-1] == pytest.approx(sched.get_last_lr(), rel=1e-12)


def test_sequential_lr_state_dict_and_closed_form():
    opt, topt, sched, tsched = sched_pair("SGD", dict((s[0], s[2]) for s in SCHEDULERS)["SequentialLR"])
    for _ in range(8): sched.step()
    sd = sched.state_dict()
    assert [type(s) for s in sd["_schedulers"]] == [dict, dict] and sd["last_epoch"] == 8
    # step(epoch) takes the closed form, as torch does (with its deprecation warning)
    _, topt, s, ts = sched_pair("SGD", lambda m, o: m.CosineAnnealingLR(o, T_max=10))
    with pytest.warns(UserWarning):
        ts.step(7)
    s.step(7)
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)


def test_reduce_lr_on_plateau_matches_torch():
    opt, topt, sched, tsched = sched_pair("SGD", lambda m, o: m.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1,
                                                                                  min_lr=0.004))
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85]
    for m in metrics:
        sched.step(lg.tensor(m))  # a Tensor metric is read on the host
        tsched.step(m)
        assert sched.get_last_lr() == tsched.get_last_lr()
    assert sched.get_last_lr()[1] == 0.004


def test_a_pickled_optimizer_keeps_stepping_and_follows_new_learning_rates():
    import pickle
    w = lg.Tensor(np.ones(3, np.float32), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad = lg.ones(3)
    opt.step()
    back = pickle.loads(pickle.dumps(opt))
    p = back.param_groups[0]["params"][0]
    for lr in (0.1, 1.0):
        back.param_groups[0]["lr"] = lr
        p.grad = lg.ones(3)
        back.step()
    np.testing.assert_allclose(p.numpy(), [-0.2] * 3, rtol=1e-6)
    np.testing.assert_allclose(w.numpy(), [0.9] * 3, rtol=1e-6)  # the original is its own


def test_adam_builds_its_bias_corrections_once_per_step_counter(monkeypatch):
    """Parameters that step together share one counter, and so one pair of bias corrections per step (each is 17 ops
    of Python graph building)."""
    built = []
    real = optim._one_minus_pow
    monkeypatch.setattr(optim, "_one_minus_pow", lambda *a: built.append(1) or real(*a))
    ours, theirs = models()
    opt, topt = optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    train(ours, theirs, opt, topt, 3)
    assert len(built) == 2 * 3
    assert_params_close(ours, theirs)


def test_an_eager_step_replays_its_update_once_it_repeats(monkeypatch):
    """Eager steps build the same update every step: from the fifth it is replayed (see lazygrad.jit), without its
    Python. A learning rate a scheduler sets still reaches it; a hyperparameter that changes the update's math
    (weight decay turned on) and state loaded mid-run (new state tensors) build it again; every step matches torch."""
    built = []
    real = optim.Optimizer._build_update
    monkeypatch.setattr(optim.Optimizer, "_build_update", lambda self, *a: built.append(1) or real(self, *a))
    ours, theirs = models()
    opt, topt = optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    sched, tsched = lr_scheduler.StepLR(opt, 2, 0.5), torch.optim.lr_scheduler.StepLR(topt, 2, 0.5)
    train(ours, theirs, opt, topt, 8, [(sched, tsched)])
    assert len(built) == 4  # in the first 4 steps only
    assert_params_close(ours, theirs)
    for g in (*opt.param_groups, *topt.param_groups): g["weight_decay"] = 0.1
    train(ours, theirs, opt, topt, 6)
    assert len(built) == 4 + 3  # a warm-up and two recordings
    assert_params_close(ours, theirs)
    opt.load_state_dict(opt.state_dict())  # the same values in new state tensors
    train(ours, theirs, opt, topt, 6)
    assert_params_close(ours, theirs)
    for lp, tp in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(opt.state[lp]["exp_avg_sq"].numpy(), topt.state[tp]["exp_avg_sq"].numpy(), rtol=1e-4, atol=1e-9)


def test_an_optimizer_of_ones_own_update_is_not_replayed(monkeypatch):
    """A subclass's _update may read Python numbers that change (its kernels would be replayed with stale ones)."""
    class Halving(optim.SGD):
        steps = 0

        def step(self, closure=None):
            self.steps += 1
            return super().step(closure)

        def _update(self, group, p, grad, state, s):
            p.assign(p - grad * (0.5 ** self.steps))  # a new constant each step
            return [p]
    ours, _ = models()
    opt = Halving(ours.parameters(), lr=0.1)
    w = [p.numpy() for p in ours.parameters()]
    for step in range(1, 7):
        opt.zero_grad()
        lg_loss(ours).backward()
        grads = [p.grad.numpy() for p in ours.parameters()]
        opt.step()
        w = [x - g * 0.5 ** step for x, g in zip(w, grads)]
    for p, x in zip(ours.parameters(), w): np.testing.assert_allclose(p.numpy(), x, rtol=1e-5, atol=1e-6)
