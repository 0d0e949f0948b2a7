"""Mechanisms beyond the paper (gate normalisation, gate temperature, unit utility, L2-Init):
each against a float64 reference written from its formula (docs/optimizers.md), the off values
against the paper's rule, state round trips with w0, and validation."""
from __future__ import annotations

import io

import pytest
import torch

from lifelong import UPGD, UPGDW, AdaptiveUPGD

CLASSES = [UPGD, AdaptiveUPGD, UPGDW]
ADAPTIVE = (AdaptiveUPGD, UPGDW)


def formula_step(params, grads, state, hp, adaptive):
    """One step of
        x   = -g * w                         (utility="weight")
            = -sum over the unit's row of g * w   (utility="unit")
        u   = b u + (1 - b) x;   û = u / (1 - b^t)
        eta = max(max û over all tensors, tiny)   (gate="global")
            = max(max û over this tensor, tiny)   (gate="layer")
        s   = sigmoid(û / (eta T))          (a unit's s on every weight of its row)
            = 1/2                           (gate="none")
        w  <- w (1 - lr wd) - lr l2 (w - w0) - 2 lr d (1 - s)
    in float64 on ``params`` (in place); ``state`` per index. sigma = 0."""
    b, lr, wd, l2, T = (hp["beta_utility"], hp["lr"], hp["weight_decay"], hp["l2_init"],
                        hp["gate_temperature"])
    u_hat = []
    for i, (w, g) in enumerate(zip(params, grads)):
        rows = w.shape[0] if w.dim() else 1
        st = state.setdefault(i, {"t": 0, "m": torch.zeros_like(w), "v": torch.zeros_like(w),
                                  "w0": w.clone(),
                                  "u": torch.zeros(w.shape if hp["utility"] == "weight" else rows,
                                                   dtype=w.dtype)})
        st["t"] += 1
        x = -g * w if hp["utility"] == "weight" else -(g * w).reshape(rows, -1).sum(1)
        st["u"] = b * st["u"] + (1 - b) * x
        u_hat.append(st["u"] / (1 - b ** st["t"]))
        if adaptive:
            b1, b2 = hp["betas"]
            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * g * g
    tiny = torch.finfo(torch.float64).tiny
    global_eta = max(max(u.max().item() for u in u_hat), tiny)
    for i, (w, g) in enumerate(zip(params, grads)):
        st = state[i]
        eta = global_eta if hp["gate"] == "global" else max(u_hat[i].max().item(), tiny)
        s = torch.sigmoid(u_hat[i] / (eta * T)) if hp["gate"] != "none" else torch.full_like(u_hat[i], 0.5)
        if hp["utility"] == "unit":
            rows = w.shape[0] if w.dim() else 1
            s = s.reshape(rows, 1).expand(rows, w.numel() // rows).reshape(w.shape)
        d = g
        if adaptive:
            b1, b2 = hp["betas"]
            d = (st["m"] / (1 - b1 ** st["t"])) / ((st["v"] / (1 - b2 ** st["t"])).sqrt() + hp["eps"])
        w.copy_(w * (1 - lr * wd) - lr * l2 * (w - st["w0"]) - 2 * lr * d * (1 - s))
        K = hp["reset_after"]
        if K:  # z <- (z + 1) [g == 0]; where z >= K: w <- w0, m <- 0, v <- 0, z <- 0
            st["z"] = (st.get("z", 0) + 1) * (g == 0)
            reset = st["z"] >= K
            w.copy_(torch.where(reset, st["w0"], w))
            st["m"], st["v"] = torch.where(reset, 0.0, st["m"]), torch.where(reset, 0.0, st["v"])
            st["z"] = torch.where(reset, 0, st["z"])


def model(seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (6,), (3, 6), (3,), (2, 3, 2, 2)]
    return [torch.randn(s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]


def grads_for(params, step):
    """Random gradients with exact zeros where a dead unit would have them: row 0 of the first
    matrix (incoming weights) and column 0 of the second (outgoing) always, bias 0 until step 3
    (a run that ends), one slice of the 4-d tensor on even steps (runs of one)."""
    gen = torch.Generator().manual_seed(50 + step)
    grads = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    grads[0][0] = 0.0
    grads[2][:, 0] = 0.0
    if step < 3:
        grads[1][0] = 0.0
    if step % 2 == 0:
        grads[4][0] = 0.0
    return grads


CONFIGS = [
    {"gate": "layer"},
    {"gate_temperature": 0.2},
    {"gate": "layer", "gate_temperature": 3.0},
    {"utility": "unit"},
    {"utility": "unit", "gate": "layer"},
    {"l2_init": 0.7},
    {"l2_init": 0.3, "utility": "unit", "gate_temperature": 0.5},
    {"gate": "none"},
    {"gate": "none", "l2_init": 0.4, "utility": "unit"},
    {"reset_after": 3},
    {"reset_after": 2, "gate": "none", "l2_init": 0.3},
    {"reset_after": 4, "utility": "unit", "gate": "layer"},
]


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("cls", CLASSES)
def test_mechanism_matches_its_formula(cls, config, foreach):
    params = model()
    ref = [p.detach().clone() for p in params]
    opt = cls(params, lr=0.05, weight_decay=0.1, sigma=0.0, beta_utility=0.8, foreach=foreach,
              **config)
    hp = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
    state: dict = {}
    for step in range(6):
        grads = grads_for(params, step)
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        formula_step(ref, grads, state, hp, cls in ADAPTIVE)
        for p, r in zip(params, ref):
            assert torch.allclose(p.detach(), r, rtol=1e-11, atol=1e-13), (step, (p - r).abs().max())


@pytest.mark.parametrize("cls", CLASSES)
def test_off_values_are_the_paper_and_the_defaults(cls):
    """Explicit off values == defaults == the paper's rule (the formula with gate="global",
    T=1, utility="weight", l2_init=0)."""
    off = {"gate": "global", "gate_temperature": 1.0, "utility": "weight", "l2_init": 0.0, "reset_after": 0,
           "reset_every": 0}
    defaults = cls(model()).defaults
    assert {k: defaults[k] for k in off} == off
    a, b, ref = model(), model(), [p.detach().clone() for p in model()]
    oa = cls(a, lr=0.05, sigma=0.0, beta_utility=0.8)
    ob = cls(b, lr=0.05, sigma=0.0, beta_utility=0.8, **off)
    hp = {k: v for k, v in oa.param_groups[0].items() if k != "params"}
    state: dict = {}
    for step in range(4):
        grads = grads_for(a, step)
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
        formula_step(ref, grads, state, hp, cls in ADAPTIVE)
    for p, q, r in zip(a, b, ref):
        assert torch.equal(p, q)
        assert torch.allclose(p.detach(), r, rtol=1e-11, atol=1e-13)
    assert "initial" not in oa.state[a[0]]  # no memory for w0 unless l2_init or reset_after is on
    assert "zero_steps" not in oa.state[a[0]]


def test_lower_temperature_spreads_the_gate():
    spreads = []
    for temperature in (1.0, 0.1):
        params = model()
        opt = UPGD(params, lr=0.01, sigma=0.0, gate_temperature=temperature)
        for step in range(3):
            for p, g in zip(params, grads_for(params, step)):
                p.grad = g
            opt.step()
        gates = []
        for p in params:
            u = opt.state[p]["utility"] / (1 - 0.999 ** 3)
            gates.append(u.flatten())
        u = torch.cat(gates)
        spreads.append(torch.sigmoid(-u / (u.max() * temperature)).std().item())
    assert spreads[1] > 3 * spreads[0]


@pytest.mark.parametrize("cls", CLASSES)
def test_l2_init_pulls_toward_the_first_weights_and_w0_travels_in_state_dict(cls):
    params = model()
    w0 = [p.detach().clone() for p in params]
    opt = cls(params, lr=0.1, sigma=0.0, l2_init=0.5)
    for step in range(3):
        for p, g in zip(params, grads_for(params, step)):
            p.grad = g
        opt.step()
    for p, w in zip(params, w0):
        assert torch.equal(opt.state[p]["initial"], w)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    assert torch.equal(saved["state"][0]["initial"], w0[0])
    # a fresh optimizer over other weights (a PBT exploit copies the donor's state): w0 moves
    others = [torch.zeros_like(p).requires_grad_() for p in params]
    receiver = cls(others, lr=0.1, sigma=0.0, l2_init=0.5)
    receiver.load_state_dict(saved)
    for p in others:
        p.grad = torch.zeros_like(p)
    receiver.step()
    for p, w in zip(others, w0):
        assert torch.equal(receiver.state[p]["initial"], w)
        if cls is UPGD:  # zero gradient: only the pulls act, w = 0 (1 - lr wd) - lr l2 (0 - w0)
            assert torch.allclose(p.detach(), 0.1 * 0.5 * w, rtol=1e-12, atol=1e-15)


def test_old_state_dict_without_mechanism_keys_loads_with_off_values():
    params = model()
    opt = AdaptiveUPGD(params)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    for group in sd["param_groups"]:
        for key in ("gate", "gate_temperature", "utility", "l2_init", "reset_after"):
            del group[key]
    fresh = AdaptiveUPGD(model())
    fresh.load_state_dict(sd)
    group = fresh.param_groups[0]
    assert (group["gate"], group["gate_temperature"], group["utility"], group["l2_init"], group["reset_after"]) == (
        "global", 1.0, "weight", 0.0, 0)


@pytest.mark.parametrize("foreach", [None, False])
def test_utility_mode_cannot_change_after_the_first_step(foreach):
    params = model()
    opt = UPGD(params, foreach=foreach)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    opt.param_groups[0]["utility"] = "unit"
    with pytest.raises(ValueError, match="utility"):
        opt.step()


BAD = [("gate", "max"), ("gate", None), ("utility", "neuron"), ("utility", 1),
       ("gate_temperature", 0.0), ("gate_temperature", -1.0), ("gate_temperature", float("nan")),
       ("gate_temperature", float("inf")), ("l2_init", -0.1), ("l2_init", float("nan")),
       ("l2_init", "0.1"), ("reset_after", -1), ("reset_after", 2.5), ("reset_after", True),
       ("reset_after", "10"), ("reset_every", -1), ("reset_every", 1.5), ("reset_every", False),
       ("reset_every", "100")]


@pytest.mark.parametrize("name,value", BAD)
@pytest.mark.parametrize("cls", CLASSES)
def test_invalid_mechanism_values(cls, name, value):
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=name) as info:
        cls(p, **{name: value})
    assert repr(value) in str(info.value) or str(value) in str(info.value)
    opt = cls(p)
    with pytest.raises(ValueError, match=name):
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)], name: value})


@pytest.mark.parametrize("cls", CLASSES)
def test_class_and_defaults_rebuild_the_same_optimizer(cls):
    """The agent's contract: type(optimizer)(params, **optimizer.defaults) is the same optimizer
    for another network, mechanisms included."""
    config = {"gate": "layer", "gate_temperature": 0.5, "utility": "unit", "l2_init": 0.2, "reset_after": 2,
              "reset_every": 2}
    a, b = model(), model()
    original = cls(a, lr=0.05, sigma=0.0, **config)
    rebuilt = type(original)(b, **original.defaults)
    assert rebuilt.defaults == original.defaults
    for step in range(3):
        for p, q, g in zip(a, b, grads_for(a, step)):
            p.grad, q.grad = g.clone(), g.clone()
        original.step()
        rebuilt.step()
    assert all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("cls,base", [(UPGD, torch.optim.SGD), (AdaptiveUPGD, torch.optim.Adam)])
def test_gate_none_without_noise_or_decay_is_the_base_optimizer(cls, base, foreach):
    """gate="none" with sigma = weight_decay = 0 takes exactly the base optimizer's step at the
    same lr (SGD for UPGD, Adam for AdaptiveUPGD), on both paths, with a changing lr."""
    torch.manual_seed(0)
    net_a = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    net_b = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    net_b.load_state_dict(net_a.state_dict())
    kw = {"eps": 1e-5} if base is torch.optim.Adam else {}
    ours = cls(net_a.parameters(), lr=1e-2, gate="none", sigma=0.0, weight_decay=0.0, foreach=foreach, **kw)
    theirs = base(net_b.parameters(), lr=1e-2, **kw)
    for t in range(30):
        x, y = torch.randn(8, 4), torch.randn(8, 2)
        for opt in (ours, theirs):
            opt.param_groups[0]["lr"] = 1e-2 * (1 - t / 30)
        for net, opt in ((net_a, ours), (net_b, theirs)):
            opt.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            opt.step()
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert ours.gating_stats()["gate_mean"] == 0.5


@pytest.mark.parametrize("foreach", [None, False])
def test_gate_none_noise_is_lr_sigma_xi(foreach):
    """gate="none": the perturbation is -lr sigma xi with xi the generator's standard normal
    draw for all stepping weights at once, in parameter order (2 (1 - s) = 1)."""
    params = model()
    start = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(7)
    expected_xi = torch.randn(sum(p.numel() for p in params), generator=gen.clone_state(),
                              dtype=torch.float64)
    opt = UPGD(params, lr=0.1, sigma=0.3, weight_decay=0.0, gate="none", generator=gen, foreach=foreach)
    grads = grads_for(params, 0)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    offset = 0
    for p, w, g in zip(params, start, grads):
        xi = expected_xi[offset:offset + p.numel()].view(p.shape)
        offset += p.numel()
        torch.testing.assert_close(p.detach(), w - 0.1 * g - 0.1 * 0.3 * xi, rtol=1e-12, atol=1e-12)



@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_reset_after_revives_a_dead_relu_unit_and_its_state_travels(cls, foreach):
    """A ReLU unit that dies during training (every pre-activation negative) gets exactly zero
    gradient on its incoming weights, bias and outgoing weights: after reset_after such steps
    all of them are back at w0 (the weights at the first step, when the unit was alive) with
    zero moments, and the unit lives again; the other weights took exactly the steps of the
    same optimizer without reset_after. The run counts and w0 are optimizer state: a
    state_dict round trip in the middle continues bit for bit."""
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    nets = []
    for _ in range(3):
        torch.manual_seed(0)
        nets.append(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    a, b, c = nets
    initial = [p.detach().clone() for p in a.parameters()]
    make = lambda n, **kw: cls(n.parameters(), lr=0.01, sigma=0.0, foreach=foreach, **kw)  # noqa: E731
    opts = {"a": make(a, reset_after=4), "b": make(b), "c": make(c, reset_after=4)}

    def step(name, n):
        opts[name].zero_grad()
        (n(x) - 3.0).square().sum().backward()  # a target the live units keep working for
        opts[name].step()

    for name, n in zip("abc", nets):
        step(name, n)  # the first step: w0 is the weights before it, unit 1 alive
    assert (a[0](x)[:, 1] > 0).any()
    with torch.no_grad():
        for n in nets:  # unit 1 dies: its pre-activation is -1 on every input
            n[0].weight[1] = 0.0
            n[0].bias[1] = -1.0
    for t in range(1, 6):
        if t == 2:  # a round trip through state_dict: "a" continues with a fresh optimizer
            fresh = make(a, reset_after=4)
            fresh.load_state_dict(opts["a"].state_dict())
            opts["a"] = fresh
        for name, n in zip("abc", nets):
            step(name, n)
        st = opts["a"].state[a[0].weight]
        assert st["zero_steps"].dtype == torch.int32
        if t < 4:  # fewer than four zero gradients in a row: still dead, counting
            assert (a[0](x)[:, 1] <= 0).all() and (st["zero_steps"][1] == t).all()
        if t == 4:
            assert torch.equal(a[0].weight[1], initial[0][1]) and a[0].bias[1] == initial[1][1]
            assert torch.equal(a[2].weight[:, 1], initial[2][:, 1])
            assert (st["zero_steps"] == 0).all()  # the live units never had a zero gradient
            if cls is not UPGD:
                assert (st["exp_avg"][1] == 0).all() and (st["exp_avg_sq"][1] == 0).all()
            assert (a[0](x)[:, 1] > 0).any()  # alive again
            # every weight that never had a zero gradient took the steps of the optimizer without it
            live = [0, 2]
            assert torch.equal(a[0].weight[live], b[0].weight[live])
            assert not torch.equal(a[0].weight[1], b[0].weight[1])  # b's unit stays dead
    for p, q in zip(a.parameters(), c.parameters()):
        assert torch.equal(p, q)  # the round trip changed nothing


@pytest.mark.parametrize("foreach", [None, False])
@pytest.mark.parametrize("cls", CLASSES)
def test_reset_every_restarts_its_group_from_w0_as_a_fresh_optimizer(cls, foreach):
    """reset_every=N on the head's group: after N steps the head is back at w0 with a fresh
    optimizer's state, and its next steps are a fresh optimizer's from w0 (on the same
    gradients); the other group never resets (gate="none": no global eta couples the groups);
    a state_dict saved right after the reset resumes bit for bit, through the next reset."""
    kw = {"lr": 0.05, "sigma": 0.0, "gate": "none", "foreach": foreach}
    grads = [[torch.randn(4, 3, generator=torch.Generator().manual_seed(10 * t + i)) if i == 0 else
              torch.randn((2, 4) if i == 1 else (2,), generator=torch.Generator().manual_seed(10 * t + i))
              for i in range(3)] for t in range(7)]

    def build():
        torch.manual_seed(0)
        params = [torch.randn(4, 3, requires_grad=True), torch.randn(2, 4, requires_grad=True),
                  torch.randn(2, requires_grad=True)]
        return params, cls([{"params": params[:1]}, {"params": params[1:], "reset_every": 3}], **kw)

    def step(o, params, g):
        for p, x in zip(params, g):
            p.grad = x.clone()
        o.step()

    params, opt = build()
    trunk, head = params[:1], params[1:]
    w0 = [p.detach().clone() for p in head]
    trunk_alone = [trunk[0].detach().clone().requires_grad_()]
    reference = cls(trunk_alone, **kw)
    for t in range(3):
        step(opt, params, grads[t])
        step(reference, trunk_alone, grads[t][:1])
    assert all(torch.equal(p, q) for p, q in zip(head, w0))
    assert all(opt.state[p]["step"] == 0 for p in head) and opt.state[trunk[0]]["step"] == 3
    assert all(not v.any() for p in head for k, v in opt.state[p].items() if k not in ("step", "initial"))
    saved = {"params": [p.detach().clone() for p in params], "optimizer": opt.state_dict()}
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    fresh_head = [p.clone().detach().requires_grad_() for p in w0]
    fresh = cls(fresh_head, **kw)
    for t in range(3, 7):
        step(opt, params, grads[t])
        step(reference, trunk_alone, grads[t][:1])
        if t < 5:
            step(fresh, fresh_head, grads[t][1:])
        if t == 4:
            for p, q in zip(head, fresh_head):
                torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
    assert torch.equal(trunk[0], trunk_alone[0])  # the trunk's group never resets
    assert all(opt.state[p]["step"] == 1 for p in head)  # reset again after step 6

    buffer.seek(0)
    loaded = torch.load(buffer)
    restored, opt2 = build()
    with torch.no_grad():
        for p, q in zip(restored, loaded["params"]):
            p.copy_(q)
    opt2.load_state_dict(loaded["optimizer"])
    for t in range(3, 7):
        step(opt2, restored, grads[t])
    assert all(torch.equal(p, q) for p, q in zip(restored, params))


def _two_group_adam_like(params, foreach):
    """Adam's step (gate off, no noise) in two groups: L2-Init on the first tensors only."""
    return AdaptiveUPGD([{"params": params[:2], "l2_init": 0.3}, {"params": params[2:]}], lr=0.05,
                        gate="none", sigma=0.0, weight_decay=0.01, beta_utility=0.8, eps=1e-5, foreach=foreach)


def test_gate_off_groups_take_one_fused_adam_kernel_call_equal_to_the_per_tensor_path(monkeypatch):
    """With the gate off and no noise the adaptive step is Adam's plus decay: the fast path
    takes it with torch's fused Adam kernel, once for all such groups that share Adam's
    hyperparameters and step count, and keeps the utility trace. Weights and every state
    tensor equal the per-tensor reference path's (``foreach=False``) to float64 rounding."""
    calls = []
    kernel = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda params, *a, **k: calls.append(len(params)) or kernel(params, *a, **k))
    fast, slow = model(), model()
    opt_fast, opt_slow = _two_group_adam_like(fast, None), _two_group_adam_like(slow, False)
    for step in range(6):
        grads = grads_for(fast, step)
        for p, q, g in zip(fast, slow, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt_fast.step()
        opt_slow.step()
    assert calls == [len(fast)] * 6  # one call per step for both groups
    for p, q in zip(fast, slow):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        assert opt_fast.state[p].keys() == opt_slow.state[q].keys()  # "initial" only with L2-Init
        for name in opt_slow.state[q].keys() - {"step"}:
            torch.testing.assert_close(opt_fast.state[p][name], opt_slow.state[q][name], rtol=1e-12, atol=1e-14)
        assert opt_fast.state[p]["step"] == opt_slow.state[q]["step"] == 6
    assert opt_fast.gating_stats()["utility_mean"] == pytest.approx(opt_slow.gating_stats()["utility_mean"], rel=1e-10)


def test_gate_off_fused_step_resumes_bit_identically():
    """save -> load -> continue on the fused path is bitwise an uninterrupted run."""
    straight, resumed = model(), model()
    opt = _two_group_adam_like(straight, None)
    for step in range(3):
        for p, g in zip(straight, grads_for(straight, step)):
            p.grad = g
        opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    with torch.no_grad():
        for p, q in zip(resumed, straight):
            p.copy_(q)
    again = _two_group_adam_like(resumed, None)
    buffer.seek(0)
    again.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(3, 6):
        for opt_, params in ((opt, straight), (again, resumed)):
            for p, g in zip(params, grads_for(params, step)):
                p.grad = g
            opt_.step()
    assert all(torch.equal(p, q) for p, q in zip(straight, resumed))


def test_gate_off_with_a_transposed_gradient_steps_as_the_per_tensor_path():
    """A transposed gradient does not take torch's fused Adam kernel (in torch 2.13 it would
    update the wrong weights): the group takes the ``_foreach`` path, equal to the reference."""
    fast = torch.nn.Parameter(torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    slow = torch.nn.Parameter(fast.detach().clone())
    opt_fast = AdaptiveUPGD([fast], lr=1e-2, gate="none", sigma=0.0, l2_init=0.1)
    opt_slow = AdaptiveUPGD([slow], lr=1e-2, gate="none", sigma=0.0, l2_init=0.1, foreach=False)
    for step in range(4):
        grad = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(step)).t()
        fast.grad, slow.grad = grad, grad.clone()
        opt_fast.step()
        opt_slow.step()
    torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-14)
