"""Dense-to-sparse (Zhu & Gupta cubic) and sparse-to-dense schedules.

GradualPruning: starts dense; at each update step the layer has
n - round(z (1 - (1 - p)^3)) active weights, z = its final zeros from the ER allocation,
p = (t - t0) / (t1 - t0); the smallest-|w| active weights go; nothing is regrown; at t1 the
global sparsity is exact. GradualGrowth mirrors it: n - round(z0 (1 - p)^3) active, grown by
|dense grad| at zero, dense at t1.
"""

import pytest
import torch
from sparse_toys import ToyMLP, assert_masked_zero, train_steps

from torchrl_mst.sparse import GradualGrowth, GradualPruning, sparsify
from torchrl_mst.sparse.distributions import allocate_kept_counts


def cubic(t, t0, t1):
    p = min(1.0, max(0.0, (t - t0) / (t1 - t0)))
    return 1 - (1 - p) ** 3


def shapes_of(net, ctl):
    return {n: tuple(net.get_parameter(n).shape) for n in ctl.masks}


def test_pruning_follows_cubic_schedule_to_exact_target():
    torch.manual_seed(0)
    net = ToyMLP(6, 40, 1, depth=3)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    ctl = sparsify(net, GradualPruning(0.6, start_step=4, stop_step=16, interval=4), opt, seed=0)
    assert ctl.sparsity() == 0.0 and all(bool(m.all()) for m in ctl.masks.values())
    final = allocate_kept_counts(shapes_of(net, ctl), 0.6)
    prev = {n: m.clone() for n, m in ctl.masks.items()}
    updates = []  # (which weights go is checked in the next test)
    for _ in range(20):
        stats = train_steps(net, opt, ctl, 1, seed=ctl.step_count)
        if not stats:
            assert all(torch.equal(prev[n], m) for n, m in ctl.masks.items())
            continue
        t = stats[0].step
        updates.append(t)
        for name, mask in ctl.masks.items():
            n = mask.numel()
            z = n - final[name]
            assert int(mask.sum()) == n - round(z * cubic(t, 4, 16)), (name, t)
            assert not (mask & ~prev[name]).any()  # nothing regrown
        prev = {n: m.clone() for n, m in ctl.masks.items()}
    assert updates == [8, 12, 16]
    assert {n: int(m.sum()) for n, m in ctl.masks.items()} == final
    total = sum(m.numel() for m in ctl.masks.values())
    assert sum(final.values()) == round(0.4 * total)
    # long after pruning, momentum and weight decay have not resurrected anything
    train_steps(net, opt, ctl, 10, seed=99)
    assert_masked_zero(ctl, opt, net)


def test_pruned_weights_are_the_smallest_active_ones():
    torch.manual_seed(0)
    net = ToyMLP(6, 40, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    ctl = sparsify(net, GradualPruning(0.6, start_step=0, stop_step=3, interval=3), opt, seed=0)
    train_steps(net, opt, ctl, 2)
    x, y = torch.randn(16, 6), torch.randn(16, 1)
    opt.zero_grad()
    (net(x) - y).pow(2).mean().backward()
    ctl.mask_gradients()
    opt.step()
    w = {n: net.get_parameter(n).detach().clone() for n in ctl.masks}
    before = {n: m.clone() for n, m in ctl.masks.items()}
    stats = ctl.step()
    assert stats.step == 3
    for name, mask in ctl.masks.items():
        pruned = before[name] & ~mask
        if pruned.any():
            assert w[name][pruned].abs().max() <= w[name][mask].abs().min()
            assert torch.count_nonzero(net.get_parameter(name)[pruned]) == 0
            state = opt.state[net.get_parameter(name)]
            assert torch.count_nonzero(state["exp_avg"][pruned]) == 0
            assert torch.count_nonzero(state["exp_avg_sq"][pruned]) == 0


def test_growth_reaches_dense_at_stop_step_by_gradient():
    torch.manual_seed(0)
    net = ToyMLP(6, 40, 1, depth=3)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    regime = GradualGrowth(0.6, start_step=0, stop_step=12, interval=4)
    ctl = sparsify(net, regime, opt, seed=0)
    initial = allocate_kept_counts(shapes_of(net, ctl), 0.6)
    assert {n: int(m.sum()) for n, m in ctl.masks.items()} == initial
    assert ctl.sparsity() == pytest.approx(0.6, abs=1e-3)
    for t in range(1, 13):
        x, y = torch.randn(16, 6), torch.randn(16, 1)
        opt.zero_grad()
        (net(x) - y).pow(2).mean().backward()
        dense = {n: net.get_parameter(n).grad.clone() for n in ctl.masks}
        before = {n: m.clone() for n, m in ctl.masks.items()}
        ctl.mask_gradients()
        opt.step()
        stats = ctl.step()
        assert (stats is not None) == (t in (4, 8, 12))
        for name, mask in ctl.masks.items():
            n = mask.numel()
            z0 = n - initial[name]
            if stats is None:
                assert torch.equal(mask, before[name])
                continue
            assert int(mask.sum()) == n - round(z0 * (1 - cubic(t, 0, 12))), (name, t)
            grown = ~before[name] & mask
            assert not (before[name] & ~mask).any()  # nothing dropped
            still_off = ~mask
            if grown.any() and still_off.any():
                g = dense[name].abs()
                assert g[grown].min() >= g[still_off].max()
            assert torch.count_nonzero(net.get_parameter(name).detach()[grown]) == 0
    assert all(bool(m.all()) for m in ctl.masks.values())
    assert ctl.sparsity() == 0.0
    assert train_steps(net, opt, ctl, 5) == []
