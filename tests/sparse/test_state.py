"""Determinism and checkpoints: same seed -> same run; save/load mid-run -> bit-identical.

A run is saved mid-training (module, optimizer and controller state dicts, through
torch.save), continued; a second controller built with a DIFFERENT seed loads the
checkpoint and continues on the same data: every weight, mask, optimizer state and the
update statistics must be bitwise equal. load_state_dict refuses mismatched checkpoints.
"""

import copy
import io

import pytest
import torch
from sparse_toys import ToyAgent, ToyMLP, train_steps

from torchrl_mst.sparse import SET, GradualGrowth, RigL, StaticSparse, sparsify

REGIMES = {
    "rigl": RigL(update_interval=3, stop_step=40, drop_fraction=0.5),
    "set": SET(update_interval=3, stop_step=40, drop_fraction=0.5),
    "growth": GradualGrowth(0.7, start_step=4, stop_step=30, interval=3),
}


def make(regime, seed):
    torch.manual_seed(0)
    net = ToyMLP(6, 32, 1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    return net, opt, sparsify(net, regime, opt, seed=seed)


def roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def snapshot(net, opt, ctl):
    return (
        copy.deepcopy(net.state_dict()),
        copy.deepcopy(opt.state_dict()),
        ctl.state_dict(),
    )


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        bits = (lambda t: t.reshape(-1).view(torch.uint8)) if a.dtype.is_floating_point else None
        assert torch.equal(bits(a), bits(b)) if bits else torch.equal(a, b)  # -0.0 != 0.0
    else:
        assert a == b


@pytest.mark.parametrize("kind", sorted(REGIMES))
def test_save_load_mid_training_continues_bit_identically(kind):
    net, opt, ctl = make(REGIMES[kind], seed=7)
    train_steps(net, opt, ctl, 10, seed=1)
    ckpt = roundtrip({"net": net.state_dict(), "opt": opt.state_dict(), "ctl": ctl.state_dict()})
    stats_a = train_steps(net, opt, ctl, 15, seed=2)
    assert len(stats_a) >= 3

    net2, opt2, ctl2 = make(REGIMES[kind], seed=12345)  # different masks before loading
    assert any(not torch.equal(ctl.masks[n], m) for n, m in ctl2.masks.items())
    net2.load_state_dict(ckpt["net"])
    opt2.load_state_dict(ckpt["opt"])
    ctl2.load_state_dict(ckpt["ctl"])
    stats_b = train_steps(net2, opt2, ctl2, 15, seed=2)

    assert_same(snapshot(net, opt, ctl), snapshot(net2, opt2, ctl2))
    assert [s.layers for s in stats_a] == [s.layers for s in stats_b]
    assert ctl2.step_count == 25 and ctl2.num_updates == ctl.num_updates


def test_same_seed_same_run_different_seed_different_run():
    runs = []
    for seed in (5, 5, 6):
        net, opt, ctl = make(REGIMES["set"], seed=seed)
        train_steps(net, opt, ctl, 9)
        runs.append(snapshot(net, opt, ctl))
    assert_same(runs[0], runs[1])
    with pytest.raises(AssertionError):
        assert_same(runs[0][0], runs[2][0])


def test_load_refuses_a_different_regime():
    _, _, ctl = make(REGIMES["rigl"], seed=0)
    _, _, other = make(RigL(update_interval=4, stop_step=40, drop_fraction=0.5), seed=0)
    with pytest.raises(ValueError, match="Regime configuration differs"):
        other.load_state_dict(ctl.state_dict())


def test_load_refuses_other_shapes_or_tensors():
    ctl = sparsify(ToyMLP(6, 32, 1), StaticSparse(), seed=0)
    wider = sparsify(ToyMLP(6, 48, 1), StaticSparse(), seed=0)
    with pytest.raises(ValueError, match="Shape mismatch"):
        wider.load_state_dict(ctl.state_dict())
    deeper = sparsify(ToyMLP(6, 32, 1, depth=3), StaticSparse(), seed=0)
    with pytest.raises(ValueError, match=r"missing \['blocks.2.linear.weight'\]"):
        deeper.load_state_dict(ctl.state_dict())


def test_load_refuses_corrupted_masks_and_versions():
    _, _, ctl = make(REGIMES["rigl"], seed=0)
    state = ctl.state_dict()
    state["masks"]["blocks.1.linear.weight"][0, 0] ^= True
    with pytest.raises(ValueError, match="corrupted"):
        ctl.load_state_dict(state)
    state = ctl.state_dict()
    state["version"] = 99
    with pytest.raises(ValueError, match="version"):
        ctl.load_state_dict(state)
    state = ctl.state_dict()
    state["masks"]["head.weight"] = state["masks"]["head.weight"].float()
    with pytest.raises(ValueError, match="bool"):
        ctl.load_state_dict(state)


def test_load_writes_masks_in_place_into_the_module_buffers():
    agent = ToyAgent()
    regimes = {"critic": RigL(stop_step=9, update_interval=3), "actor": StaticSparse()}
    ctl = sparsify(agent, regimes, seed=0)
    buffer = agent.critic.head.weight_mask
    other = ToyAgent()
    ctl_other = sparsify(other, regimes, seed=1)
    ctl.load_state_dict(ctl_other.state_dict())
    assert agent.critic.head.weight_mask is buffer  # same object (compiled graphs keep it)
    for name, mask in ctl.masks.items():
        assert torch.equal(mask, ctl_other.masks[name])
        assert torch.count_nonzero(agent.get_parameter(name)[~mask]) == 0
