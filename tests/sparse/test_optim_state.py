"""Adam state of regrown weights: the bias-correction pitfall, measured, and the treatment.

torch.optim.Adam/AdamW keep one step count t per tensor. Zeroing a regrown weight's moments
at a large t makes its tau-th update, for a constant gradient,
    |dw| / lr = [(1 - b1^tau) / (1 - b1^(t+tau))] / sqrt[(1 - b2^tau) / (1 - b2^(t+tau))]
(~3.16 at tau = 1, ~6.5 near tau = 10 for t = 5000), while a fresh Adam moves exactly lr.
Seeding m = (1 - b1^t) g, v = (1 - b2^t) g^2 (grown_moments="gradient") gives exactly lr on
every step under a constant gradient. Both are measured here with the real optimizer.
"""

import math

import pytest
import torch
from torch import nn

from torchrl_mst.sparse import RigL, sparsify
from torchrl_mst.sparse.optim_state import param_shaped_state, reset_state_at

B1, B2, LR = 0.9, 0.999, 1e-3
TAUS = [1, 2, 5, 10, 30, 100, 300, 1000]


def zero_reset_ratio(tau, t):
    return ((1 - B1**tau) / (1 - B1 ** (t + tau))) / math.sqrt(
        (1 - B2**tau) / (1 - B2 ** (t + tau))
    )


def measure(mode, t=5000, n=8):
    """Constant unit gradient; reset half the entries after t steps; |dw|/lr afterwards."""
    w = nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = torch.optim.AdamW([w], lr=LR, betas=(B1, B2), weight_decay=0.0, eps=1e-12)
    grad = torch.ones(n, dtype=torch.float64)
    for _ in range(t):
        w.grad = grad.clone()
        opt.step()
    reset = torch.arange(n // 2)
    reset_state_at(opt, w, reset, grad=grad, mode=mode)
    ratios = {}
    for tau in range(1, max(TAUS) + 1):
        before = w.detach().clone()
        w.grad = grad.clone()
        opt.step()
        step = (w.detach() - before).abs() / LR
        torch.testing.assert_close(step[n // 2 :], torch.ones(n // 2, dtype=torch.float64))
        if tau in TAUS:
            ratios[tau] = step[: n // 2].mean().item()
    return ratios


def test_zeroed_moments_overshoot_as_derived():
    ratios = measure("zero")
    for tau in TAUS:
        assert ratios[tau] == pytest.approx(zero_reset_ratio(tau, 5000), rel=1e-6)
    assert ratios[1] == pytest.approx((1 - B1) / math.sqrt(1 - B2), rel=1e-2)  # 3.16
    assert max(ratios.values()) > 6.0
    assert ratios[1000] > 1.2  # still off after a thousand steps


def test_gradient_seeded_moments_give_fresh_adam_steps():
    ratios = measure("gradient")
    for tau in TAUS:
        assert ratios[tau] == pytest.approx(1.0, rel=1e-9)


def test_seeding_is_exact_for_a_small_step_count_too():
    # t = 10: the shared bias correction is far from 1; the seed still gives exactly lr.
    ratios = measure("gradient", t=10)
    assert all(r == pytest.approx(1.0, rel=1e-9) for r in ratios.values())


def test_maximize_and_amsgrad_are_seeded():
    w = nn.Parameter(torch.zeros(4))
    opt = torch.optim.Adam([w], lr=LR, amsgrad=True, maximize=True)
    for _ in range(3):
        w.grad = torch.ones(4)
        opt.step()
    g = torch.tensor([2.0, -1.0, 0.5, 3.0])
    reset_state_at(opt, w, torch.tensor([0, 2]), grad=g, mode="gradient")
    state = opt.state[w]
    torch.testing.assert_close(state["exp_avg"][[0, 2]], -(1 - B1**3) * g[[0, 2]])
    torch.testing.assert_close(state["exp_avg_sq"][[0, 2]], (1 - B2**3) * g[[0, 2]] ** 2)
    torch.testing.assert_close(state["max_exp_avg_sq"][[0, 2]], (1 - B2**3) * g[[0, 2]] ** 2)
    assert len(param_shaped_state(opt, w)) == 3


def test_sgd_momentum_is_zeroed_for_grown_weights():
    w = nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    w.grad = torch.ones(4)
    opt.step()
    reset_state_at(opt, w, torch.tensor([1]), grad=torch.ones(4), mode="gradient")
    assert opt.state[w]["momentum_buffer"].tolist() == [1.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(("mode", "expected"), [("gradient", 1.0), ("zero", None)])
def test_first_step_of_weights_grown_by_rigl(mode, expected):
    # loss = sum(w): constant unit gradient everywhere, masked positions included.
    t = 1500
    layer = nn.Linear(16, 16, bias=False)
    opt = torch.optim.AdamW(layer.parameters(), lr=LR, weight_decay=0.0, eps=1e-12)
    regime = RigL(update_interval=t, stop_step=10**6, drop_fraction=0.3, grown_moments=mode)
    ctl = sparsify(layer, regime, opt, seed=0)
    for _ in range(t):
        opt.zero_grad()
        layer.weight.sum().backward()
        ctl.mask_gradients()
        opt.step()
        stats = ctl.step()
    assert stats is not None and stats.grown > 0
    grown = layer.weight_mask & (layer.weight == 0)
    assert int(grown.sum()) == stats.grown
    before = layer.weight.detach().clone()
    opt.zero_grad()
    layer.weight.sum().backward()
    ctl.mask_gradients()
    opt.step()
    ctl.step()
    step = ((layer.weight.detach() - before).abs() / LR)[grown]
    if expected is None:
        expected = zero_reset_ratio(1, t)
        assert expected > 2.5  # (1 - b1) / sqrt((1 - b2) / (1 - b2^1500))
    torch.testing.assert_close(step, torch.full_like(step, expected), rtol=1e-4, atol=0)
