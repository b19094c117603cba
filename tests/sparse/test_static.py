"""sparsify + StaticSparse: exact counts, zeros through AdamW, masks travel, clear errors.

Spec: per-layer kept counts exactly those of the ER allocation; global sparsity exact to one
weight; masked weights, exp_avg and exp_avg_sq exactly zero after any number of AdamW steps
with weight decay (also if the user forgets mask_gradients); biases and norms untouched.
"""

import copy
import io

import pytest
import torch
from sparse_toys import ToyAgent, ToyMLP, assert_masked_zero, train_steps
from torch import nn

from torchrl_mst.sparse import Dense, RigL, StaticSparse, sparsify
from torchrl_mst.sparse.distributions import allocate_kept_counts


def test_counts_are_exactly_the_allocation_and_global_sparsity_is_exact():
    net = ToyMLP(6, 48, 3, depth=3)
    ctl = sparsify(net, StaticSparse(0.6), seed=0)
    shapes = {n: tuple(net.get_parameter(n).shape) for n in ctl.masks}
    expected = allocate_kept_counts(shapes, 0.6)
    for name, mask in ctl.masks.items():
        assert int(mask.sum()) == expected[name]
    total = sum(m.numel() for m in ctl.masks.values())
    kept = sum(int(m.sum()) for m in ctl.masks.values())
    assert kept == round(0.4 * total)
    assert ctl.sparsity() == pytest.approx(1 - kept / total, abs=0)
    assert abs(ctl.sparsity() - 0.6) <= 1 / total


def test_only_linear_and_conv_weights_get_masks():
    class Fancy(nn.Linear):
        pass

    net = nn.Sequential(
        nn.Conv1d(2, 4, 3), nn.Flatten(), Fancy(8, 8), nn.LayerNorm(8), nn.Linear(8, 1)
    )
    ctl = sparsify(net, StaticSparse(0.5), seed=0)
    assert sorted(ctl.masks) == ["0.weight", "2.weight", "4.weight"]
    names = {n for n, _ in net.named_buffers()}
    assert names == {"0.weight_mask", "2.weight_mask", "4.weight_mask"}


def test_masks_live_on_module_and_travel_with_deepcopy_state_dict_and_to():
    net = ToyMLP()
    ctl = sparsify(net, StaticSparse(0.6), seed=0)
    mask = net.blocks[1].linear.weight_mask
    assert ctl.masks["blocks.1.linear.weight"] is mask
    clone = copy.deepcopy(net)
    assert torch.equal(clone.blocks[1].linear.weight_mask, mask)
    assert torch.equal(clone.blocks[1].linear.weight, net.blocks[1].linear.weight)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf)
    assert torch.equal(sd["blocks.1.linear.weight_mask"], mask)
    net.to(torch.float64)
    assert net.blocks[1].linear.weight_mask.dtype == torch.bool
    # the controller looks masks up on the module, so it follows .to()
    assert ctl.masks["blocks.1.linear.weight"] is net.blocks[1].linear.weight_mask


@pytest.mark.parametrize("mask_grads", [True, False])
def test_adamw_with_weight_decay_keeps_masked_entries_exactly_zero(mask_grads):
    net = ToyMLP()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1, amsgrad=True)
    ctl = sparsify(net, StaticSparse(0.6), opt, seed=0)
    before = {n: m.clone() for n, m in ctl.masks.items()}
    train_steps(net, opt, ctl, 40, mask_grads=mask_grads)
    assert_masked_zero(ctl, opt, net)
    for n, m in ctl.masks.items():
        assert torch.equal(m, before[n])  # static: the mask never changes
    # and the forward pass really uses zeros
    w = net.blocks[0].linear.weight
    assert torch.count_nonzero(w) == int(ctl.masks["blocks.0.linear.weight"].sum())


@pytest.mark.parametrize("state_masking", ["auto", "always"])
def test_adamax_state_with_both_state_masking_modes(state_masking):
    # Adamax's exp_inf becomes eps on a zero gradient: "auto" keeps the weights at 0 (the
    # update is 0 / eps), "always" also keeps the state at 0.
    net = ToyMLP()
    opt = torch.optim.Adamax(net.parameters(), lr=1e-2)
    ctl = sparsify(net, StaticSparse(0.6), opt, seed=0, state_masking=state_masking)
    train_steps(net, opt, ctl, 5)
    checked = 0
    for name, mask in ctl.masks.items():
        if bool(mask.all()):  # ER made this layer dense
            continue
        w = net.get_parameter(name)
        assert torch.count_nonzero(w.detach()[~mask]) == 0
        exp_inf = opt.state[w]["exp_inf"][~mask]
        assert (torch.count_nonzero(exp_inf) == 0) == (state_masking == "always")
        checked += 1
    assert checked > 0
    with pytest.raises(ValueError, match="state_masking"):
        sparsify(ToyMLP(), StaticSparse(), state_masking="never")


def test_sgd_momentum_state_is_masked():
    net = ToyMLP()
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9, weight_decay=1e-3)
    ctl = sparsify(net, StaticSparse(0.6), opt, seed=0)
    train_steps(net, opt, ctl, 10, mask_grads=False)
    assert_masked_zero(ctl, opt, net)


def test_gradients_are_masked_before_clipping():
    net = ToyMLP()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    ctl = sparsify(net, StaticSparse(0.6), opt, seed=0)
    x = torch.randn(8, 6)
    net(x).sum().backward()
    dense_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()]))
    ctl.mask_gradients()
    for name, mask in ctl.masks.items():
        assert torch.count_nonzero(net.get_parameter(name).grad[~mask]) == 0
    # what clip_grad_norm_ sees now is the norm of the masked gradient only
    total = torch.nn.utils.clip_grad_norm_(net.parameters(), 1e9)
    assert total < dense_norm


def test_state_already_present_is_masked_at_sparsify_time():
    net = ToyMLP()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    train_steps(
        net, opt, type("NoCtl", (), {"mask_gradients": lambda s: None, "step": lambda s: None})(), 3
    )
    ctl = sparsify(net, StaticSparse(0.6), opt, seed=0)
    assert_masked_zero(ctl, opt, net)


def test_composable_regimes_on_submodules_of_one_model():
    agent = ToyAgent()
    ctl = sparsify(
        agent,
        {
            "encoder": Dense(),
            "critic": RigL(stop_step=100, update_interval=10),
            "actor": StaticSparse(0.5),
        },
        torch.optim.Adam(agent.parameters()),
        seed=0,
    )
    assert set(ctl.regimes) == {"encoder", "critic", "actor"}
    assert not any(n.startswith("encoder") for n in ctl.masks)
    assert {n.split(".")[0] for n in ctl.masks} == {"critic", "actor"}
    assert not hasattr(agent.encoder.blocks[0].linear, "weight_mask")
    actor_names = [n for n in ctl.masks if n.startswith("actor")]
    total = sum(ctl.masks[n].numel() for n in actor_names)
    kept = sum(int(ctl.masks[n].sum()) for n in actor_names)
    assert kept == round(0.5 * total)  # each regime's sparsity is exact on its own module


def test_deterministic_given_seed():
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed * 10)  # different weights must not matter for the mask
        ctl = sparsify(ToyMLP(), StaticSparse(0.6), seed=seed)
        masks.append(ctl.masks["blocks.1.linear.weight"].clone())
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])


def test_seed_none_follows_torch_manual_seed():
    torch.manual_seed(123)
    a = sparsify(ToyMLP(), StaticSparse(0.6)).masks["blocks.1.linear.weight"].clone()
    torch.manual_seed(123)
    b = sparsify(ToyMLP(), StaticSparse(0.6)).masks["blocks.1.linear.weight"].clone()
    assert torch.equal(a, b)


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"no nn\.Linear or nn\.Conv"):
        sparsify(nn.Sequential(nn.ReLU(), nn.LayerNorm(4)), StaticSparse())
    net = ToyMLP()
    sparsify(net, StaticSparse(), seed=0)
    with pytest.raises(ValueError, match="already sparsified"):
        sparsify(net, StaticSparse(), seed=0)
    with pytest.raises(ValueError, match="already sparsified"):
        sparsify(copy.deepcopy(net).blocks[0], StaticSparse(), seed=0)
    other = ToyMLP()
    with pytest.raises(ValueError, match="does not own"):
        sparsify(other, StaticSparse(), torch.optim.Adam(ToyMLP().parameters()))
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        sparsify(ToyMLP(), StaticSparse(sparsity=1.0))
    with pytest.raises(ValueError, match="stop_step is None"):
        sparsify(ToyMLP(), RigL())
    agent = ToyAgent()
    with pytest.raises(ValueError, match="assigned twice"):
        sparsify(agent, {"critic": StaticSparse(), "critic.blocks": StaticSparse()})
    with pytest.raises(ValueError, match="no submodule 'critc'"):
        sparsify(ToyAgent(), {"critc": StaticSparse()})
    with pytest.raises(TypeError, match="Regime"):
        sparsify(ToyMLP(), "rigl")
    with pytest.raises(ValueError, match="lazy"):
        sparsify(nn.Sequential(nn.LazyLinear(4)), StaticSparse())


def test_failed_sparsify_leaves_module_untouched():
    agent = ToyAgent()
    with pytest.raises(ValueError):
        sparsify(agent, {"actor": StaticSparse(), "critic": RigL()})  # critic not ready
    assert not any(n.endswith("_mask") for n, _ in agent.named_buffers())


def test_dense_regime_is_a_no_op():
    net = ToyMLP()
    before = copy.deepcopy(net.state_dict())
    ctl = sparsify(net, Dense(), torch.optim.Adam(net.parameters()))
    assert ctl.masks == {} and ctl.sparsity() == 0.0
    assert ctl.step() is None
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_tied_targets_stay_zero_under_soft_updates():
    net = ToyMLP()
    target = copy.deepcopy(net)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    ctl = sparsify(net, RigL(stop_step=60, update_interval=5, drop_fraction=0.5), opt, seed=0)
    # the deepcopy was taken before sparsify: dense, so it needs tying
    ctl.tie_targets(target)
    for _ in range(4):
        train_steps(net, opt, ctl, 5)
        with torch.no_grad():
            for pt, p in zip(target.parameters(), net.parameters()):
                pt.lerp_(p, 0.05)
    for name, mask in ctl.masks.items():
        assert torch.count_nonzero(target.get_parameter(name)[~mask]) == 0
    assert ctl.num_updates == 4
