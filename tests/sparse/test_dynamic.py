"""RigL and SET: one update checked against an independent recomputation.

At an update step t, for each layer with n_on active weights out of n:
k = min(floor(f(t) n_on), n - n_on), f(t) = alpha/2 (1 + cos(pi t / T_end));
dropped = the k active weights of smallest |w| (after the optimizer step of t);
grown (RigL) = the k positions inactive before the update with the largest |dense grad| of
the batch of step t (recomputed here by hand, before any masking); SET grows at random
among the same candidates; grown weights are 0 and their Adam moments are seeded
(grown_moments="gradient") or zeroed ("zero"); no update at or after stop_step.
"""

import math

import pytest
import torch
from sparse_toys import ToyMLP, assert_masked_zero, train_steps

from torchrl_mst.sparse import SET, RigL, sparsify
from torchrl_mst.sparse.dynamic import drop_indices, grow_indices


def test_hand_derived_eight_weight_case():
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([0.5, -0.1, 0.0, 0.3, -0.05, 0.0, 0.0, 0.9])
    mask = torch.tensor([1, 1, 0, 1, 1, 0, 0, 1], dtype=torch.bool)
    grad = torch.tensor([9.0, 9.0, 0.4, 9.0, 9.0, -0.7, 0.1, 9.0])
    candidates = ~mask  # {2, 5, 6}
    assert sorted(drop_indices(w, mask, 2, generator=g).tolist()) == [1, 4]
    assert sorted(drop_indices(w, mask, 3, generator=g).tolist()) == [1, 3, 4]
    assert sorted(grow_indices(candidates, 2, generator=g, scores=grad).tolist()) == [2, 5]
    assert sorted(grow_indices(candidates, 3, generator=g).tolist()) == [2, 5, 6]


def test_ties_are_broken_at_random_but_reproducibly():
    w = torch.zeros(50)
    mask = torch.ones(50, dtype=torch.bool)
    picks = [
        sorted(drop_indices(w, mask, 5, generator=torch.Generator().manual_seed(s)).tolist())
        for s in (0, 0, 1)
    ]
    assert picks[0] == picks[1] and picks[0] != picks[2]


def test_set_growth_is_uniform_over_candidates():
    candidates = torch.zeros(20, dtype=torch.bool)
    candidates[::2] = True
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(20)
    draws = 2000
    for _ in range(draws):
        counts[grow_indices(candidates, 3, generator=g)] += 1
    assert counts[~candidates].sum() == 0
    expected = draws * 3 / 10
    chi2 = ((counts[candidates] - expected) ** 2 / expected).sum()
    assert chi2 < 27.9  # chi-square, 9 dof, p = 0.001


def one_update(regime, *, warm=4, seed=0, opt_cls=torch.optim.AdamW):
    """Run `warm` steps, then the update step by hand, recording independent truth."""
    torch.manual_seed(seed)
    net = ToyMLP(6, 40, 1, depth=3)
    opt = opt_cls(net.parameters(), lr=1e-2, weight_decay=1e-2)
    ctl = sparsify(net, regime, opt, seed=seed)
    train_steps(net, opt, ctl, warm, seed=seed)
    x, y = torch.randn(16, 6), torch.randn(16, 1)
    opt.zero_grad()
    (net(x) - y).pow(2).mean().backward()
    dense = {n: net.get_parameter(n).grad.clone() for n in ctl.masks}
    before = {n: m.clone() for n, m in ctl.masks.items()}
    ctl.mask_gradients()
    opt.step()
    w_pre = {n: net.get_parameter(n).detach().clone() for n in ctl.masks}
    stats = ctl.step()
    return net, opt, ctl, stats, dense, before, w_pre


@pytest.mark.parametrize("grown_moments", ["gradient", "zero"])
def test_rigl_update_matches_independent_recomputation(grown_moments):
    regime = RigL(update_interval=5, stop_step=100, drop_fraction=0.3, grown_moments=grown_moments)
    net, opt, ctl, stats, dense, before, w_pre = one_update(regime)
    t = 5
    frac = 0.15 * (1 + math.cos(math.pi * t / 100))
    assert stats is not None and stats.step == t
    assert stats.drop_fractions[""] == pytest.approx(frac)
    changed = 0
    for name, after in ctl.masks.items():
        b = before[name]
        n_on, n = int(b.sum()), b.numel()
        k = min(math.floor(frac * n_on), n - n_on)
        dropped, grown = b & ~after, ~b & after
        assert int(after.sum()) == n_on  # per-layer count unchanged
        assert int(dropped.sum()) == k and int(grown.sum()) == k
        assert stats.layers[name].dropped == k and stats.layers[name].grown == k
        changed += 2 * k
        if k == 0:
            continue
        kept_old = b & after
        assert w_pre[name][dropped].abs().max() <= w_pre[name][kept_old].abs().min()
        g = dense[name]
        assert g[grown].abs().min() >= g[~b & ~after].abs().max()
        assert not (grown & b).any()  # never a just-dropped (or any active) position
        w = net.get_parameter(name)
        assert torch.count_nonzero(w[grown]) == 0
        state = opt.state[w]
        assert torch.count_nonzero(state["exp_avg"][dropped]) == 0
        if grown_moments == "zero":
            assert torch.count_nonzero(state["exp_avg"][grown]) == 0
            assert torch.count_nonzero(state["exp_avg_sq"][grown]) == 0
        else:  # seeded so that the bias-corrected moments equal (g, g^2), Adam step t = 5
            torch.testing.assert_close(state["exp_avg"][grown], (1 - 0.9**t) * g[grown])
            torch.testing.assert_close(state["exp_avg_sq"][grown], (1 - 0.999**t) * g[grown] ** 2)
    total = sum(m.numel() for m in ctl.masks.values())
    assert stats.mask_change_fraction == pytest.approx(changed / total)
    assert_masked_zero(ctl, opt, net)


def test_set_grows_only_previous_inactive_positions_and_depends_on_seed():
    grown_sets = []
    for seed in (0, 0, 1):
        regime = SET(update_interval=5, stop_step=100, drop_fraction=0.3)
        net, opt, ctl, stats, dense, before, w_pre = one_update(regime, seed=seed)
        name = "blocks.1.linear.weight"
        after, b = ctl.masks[name], before[name]
        k = math.floor(0.15 * (1 + math.cos(math.pi * 5 / 100)) * int(b.sum()))
        assert k > 0 and int(after.sum()) == int(b.sum())
        # A just-dropped position regrown would leave fewer than k flips in each direction.
        assert int((b & ~after).sum()) == k and int((~b & after).sum()) == k
        grown = (~b & after).nonzero().flatten().tolist()
        grown_sets.append(grown)
        assert_masked_zero(ctl, opt, net)
    assert grown_sets[0] == grown_sets[1]
    assert grown_sets[0] != grown_sets[2]


def test_rigl_growth_is_not_by_magnitude_of_masked_gradient():
    # If growth read the already-masked gradient, every candidate score would be 0 and the
    # choice random; with the dense gradient it must be the top-|g| positions.
    regime = RigL(update_interval=5, stop_step=100)
    net, opt, ctl, stats, dense, before, _ = one_update(regime)
    name = "blocks.1.linear.weight"
    g, b, after = dense[name], before[name], ctl.masks[name]
    k = int((~b & after).sum())
    top = torch.topk(g.abs().masked_fill(b, -1).flatten(), k).indices
    assert set(top.tolist()) == set((~b & after).flatten().nonzero().flatten().tolist())


def test_rigl_without_mask_gradients_uses_raw_gradient_and_keeps_invariant():
    net = ToyMLP(6, 40, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1)
    ctl = sparsify(net, RigL(update_interval=3, stop_step=50), opt, seed=0)
    stats = train_steps(net, opt, ctl, 12, mask_grads=False)
    assert [s.step for s in stats] == [3, 6, 9, 12]
    assert_masked_zero(ctl, opt, net)


def test_schedule_and_stop_step():
    net = ToyMLP(6, 40, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ctl = sparsify(net, RigL(update_interval=4, stop_step=14, drop_fraction=0.5), opt, seed=0)
    counts = {n: int(m.sum()) for n, m in ctl.masks.items()}
    masks_at = {}
    stats = train_steps(net, opt, ctl, 13)
    assert [s.step for s in stats] == [4, 8, 12]
    for s in stats:
        f = 0.25 * (1 + math.cos(math.pi * s.step / 14))
        assert s.drop_fractions[""] == pytest.approx(f)
        for name, upd in s.layers.items():
            n = ctl.masks[name].numel()
            assert upd.dropped == min(math.floor(f * counts[name]), n - counts[name])
    masks_at = {n: m.clone() for n, m in ctl.masks.items()}
    assert train_steps(net, opt, ctl, 30) == []  # steps 14..43: after stop_step
    assert all(torch.equal(masks_at[n], m) for n, m in ctl.masks.items())
    assert ctl.num_updates == 3 and ctl.step_count == 43


def test_rigl_needs_a_gradient_at_update_steps():
    net = ToyMLP()
    opt = torch.optim.Adam(net.parameters())
    ctl = sparsify(net, RigL(update_interval=1, stop_step=10), opt, seed=0)
    with pytest.raises(RuntimeError, match="dense gradient"):
        ctl.step()


def test_dense_layers_are_never_updated():
    # ER makes the 40 -> 1 head dense: no candidates to grow, so k = 0 there.
    net = ToyMLP(6, 40, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ctl = sparsify(net, RigL(update_interval=2, stop_step=100, drop_fraction=0.9), opt, seed=0)
    assert bool(ctl.masks["head.weight"].all())
    stats = train_steps(net, opt, ctl, 4)
    assert all(s.layers["head.weight"].dropped == 0 for s in stats)
    assert bool(ctl.masks["head.weight"].all())


def test_stats_as_dict_for_logging():
    net = ToyMLP(6, 40, 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ctl = sparsify(net, {"": RigL(update_interval=2, stop_step=100)}, opt, seed=0)
    stats = train_steps(net, opt, ctl, 2)
    d = stats[0].as_dict()
    assert set(d) == {
        "sparse/dropped",
        "sparse/grown",
        "sparse/mask_change_fraction",
        "sparse/drop_fraction/all",
    }
    assert d["sparse/dropped"] == d["sparse/grown"] > 0
    assert ctl.last_update is stats[0]


def test_rigl_paper_variant_regrows_just_dropped_positions_keeping_value_and_state():
    """RigL's paper: grow among all positions not kept; a dropped-and-regrown weight keeps
    its value and optimizer state; newly grown weights start at 0 with zero moments."""
    regime = RigL.paper(update_interval=5, stop_step=100, drop_fraction=1.0)
    assert (regime.grown_moments, regime.regrow_dropped) == ("zero", True)
    torch.manual_seed(0)
    net = ToyMLP(6, 40, 1, depth=3)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    ctl = sparsify(net, regime, opt, seed=0)
    train_steps(net, opt, ctl, 4, seed=0)
    x, y = torch.randn(16, 6), torch.randn(16, 1)
    opt.zero_grad()
    (net(x) - y).pow(2).mean().backward()
    dense = {n: net.get_parameter(n).grad.clone() for n in ctl.masks}
    before = {n: m.clone() for n, m in ctl.masks.items()}
    ctl.mask_gradients()
    opt.step()
    w_pre = {n: net.get_parameter(n).detach().clone() for n in ctl.masks}
    m_pre = {n: opt.state[net.get_parameter(n)]["exp_avg"].clone() for n in ctl.masks}
    stats = ctl.step()
    frac = 0.5 * (1 + math.cos(math.pi * 5 / 100))
    regrown_total = 0
    for name, after in ctl.masks.items():
        b = before[name].flatten()
        n_on, n = int(b.sum()), b.numel()
        k = min(math.floor(frac * n_on), n - n_on)
        # independent recomputation: drop the k smallest |w| among active, then grow the
        # k largest |g| among every position not kept (just-dropped ones included)
        w, g = w_pre[name].flatten(), dense[name].flatten()
        active = b.nonzero().flatten()
        drop = set(active[w[active].abs().argsort()[:k]].tolist())
        kept = b.clone()
        kept[list(drop)] = False
        cand = (~kept).nonzero().flatten()
        grow = set(cand[g[cand].abs().argsort(descending=True)[:k]].tolist())
        expected = kept.clone()
        expected[list(grow)] = True
        assert torch.equal(after.flatten(), expected), name
        regrown = drop & grow
        regrown_total += len(regrown)
        assert stats.layers[name].dropped == len(drop - grow)
        assert stats.layers[name].grown == len(grow - drop)
        w_now = net.get_parameter(name).detach().flatten()
        m_now = opt.state[net.get_parameter(name)]["exp_avg"].flatten()
        r, new = sorted(regrown), sorted(grow - drop)
        assert torch.equal(w_now[r], w[r]) and torch.equal(m_now[r], m_pre[name].flatten()[r])
        assert torch.count_nonzero(w_now[new]) == 0 and torch.count_nonzero(m_now[new]) == 0
    assert regrown_total > 0
    assert_masked_zero(ctl, opt, net)


def test_our_default_never_regrows_a_just_dropped_position():
    regime = RigL(update_interval=5, stop_step=100, drop_fraction=1.0)
    net, opt, ctl, stats, dense, before, w_pre = one_update(regime)
    for name, after in ctl.masks.items():
        b = before[name]
        assert stats.layers[name].dropped == int((b & ~after).sum())
        assert int((~b & after).sum()) == stats.layers[name].grown == stats.layers[name].dropped
