"""capture_activations / capture_inputs: hook activation modules, remove hooks in finally."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchrl_mst.diagnostics import (
    capture_activations,
    capture_inputs,
    dormant_ratio,
    stable_rank,
)


class ToyBlock(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.norm = nn.LayerNorm(n_out, elementwise_affine=False)
        self.act = nn.ELU()

    def forward(self, x):
        return self.act(self.norm(self.linear(x)))


class ToyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([ToyBlock(3, 8), ToyBlock(8, 8)])
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def all_hooks(module):
    return [
        h
        for m in module.modules()
        for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())
    ]


def test_captures_post_activation_outputs_of_ln_elu_blocks():
    net = ToyMLP()
    x = torch.randn(10, 3)
    with capture_activations(net) as acts:
        net(x)
    assert list(acts) == ["blocks.0.act", "blocks.1.act"]
    # independent recomputation: ELU(LN(W x)), not ReLU(W x)
    h0 = F.elu(F.layer_norm(net.blocks[0].linear(x), (8,)))
    h1 = F.elu(F.layer_norm(net.blocks[1].linear(h0), (8,)))
    torch.testing.assert_close(acts["blocks.0.act"], h0.detach())
    torch.testing.assert_close(acts["blocks.1.act"], h1.detach())
    assert (acts["blocks.0.act"] < 0).any()  # ELU outputs, which a ReLU-by-hand would lose


def test_capture_inputs_records_the_last_hidden_features_entering_the_head():
    net = ToyMLP()
    x = torch.randn(10, 3)
    with capture_inputs(net, "head") as feats:
        out = net(x)
    torch.testing.assert_close(net.head(feats["head"]), out.detach())
    torch.testing.assert_close(feats["head"], net.blocks[1](net.blocks[0](x)).detach())
    assert 1 <= stable_rank(feats["head"]) <= 8


def test_hooks_are_removed_after_the_block_and_later_calls_are_not_recorded():
    net = ToyMLP()
    with capture_activations(net) as acts, capture_inputs(net, ["head", "blocks.1"]) as ins:
        net(torch.randn(4, 3))
        assert len(all_hooks(net)) == 4
    assert all_hooks(net) == []
    before = {k: v.clone() for k, v in acts.items()}
    net(torch.randn(4, 3))
    assert all(torch.equal(acts[k], before[k]) for k in before)
    assert set(ins) == {"head", "blocks.1"}


def test_hooks_are_removed_when_the_body_raises():
    net = ToyMLP()
    with pytest.raises(RuntimeError, match="boom"), capture_activations(net):
        net(torch.randn(2, 3))
        raise RuntimeError("boom")
    assert all_hooks(net) == []
    with pytest.raises(RuntimeError, match="boom"), capture_inputs(net, "head"):
        raise RuntimeError("boom")
    assert all_hooks(net) == []


def test_hooks_are_removed_when_a_hook_raises_and_user_hooks_survive():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    user = net[1].register_forward_hook(lambda m, i, o: None)

    class TupleOut(nn.Module):
        def forward(self, x):
            return x, x

    tup = nn.Sequential(TupleOut())
    with pytest.raises(TypeError, match="not a tensor"), capture_activations(tup, names="0"):
        tup(torch.randn(2, 2))
    assert all_hooks(tup) == []
    with capture_activations(net):
        net(torch.randn(2, 2))
    assert list(net[1]._forward_hooks) == [user.id]


def test_names_selects_submodules_and_module_types_filters_classes():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh())
    with capture_activations(net, module_types=nn.Tanh) as acts:
        net(torch.randn(5, 3))
    assert list(acts) == ["3"]
    with capture_activations(net, names=["0", "1"]) as acts:
        net(torch.randn(5, 3))
    assert list(acts) == ["0", "1"]
    torch.testing.assert_close(acts["1"], acts["0"].clamp_min(0))


def test_a_module_called_twice_keeps_its_last_call():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.act(x) - 1.0)

    net = Shared()
    x = torch.tensor([[3.0, 0.5]])
    with capture_activations(net) as acts:
        net(x)
    torch.testing.assert_close(acts["act"], torch.tensor([[2.0, 0.0]]))


def test_records_are_copies_safe_from_later_in_place_ops():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(x).mul_(0.0)

    with capture_activations(m := InPlace()) as acts:
        m(torch.ones(2, 2))
    assert torch.equal(acts["act"], torch.ones(2, 2))


def test_detach_false_keeps_the_graph():
    net = ToyMLP()
    with capture_activations(net, detach=False) as acts:
        net(torch.randn(4, 3))
    assert acts["blocks.0.act"].requires_grad
    acts["blocks.0.act"].sum().backward()
    assert net.blocks[0].linear.weight.grad is not None
    with capture_activations(net) as acts:
        net(torch.randn(4, 3))
    assert not acts["blocks.0.act"].requires_grad


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"no submodule named 'hed'.*'head'"):
        with capture_inputs(ToyMLP(), "hed"):
            pass


def test_functional_activations_are_reported_not_silently_missed():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return F.relu(self.linear(x))

    with pytest.raises(ValueError, match="functionally"):
        with capture_activations(Functional()):
            pass


def test_bad_arguments_raise():
    net = ToyMLP()
    with pytest.raises(ValueError, match="not both"):
        with capture_activations(net, module_types=nn.ELU, names=["head"]):
            pass
    with pytest.raises(TypeError, match=r"nn\.Module subclasses"):
        with capture_activations(net, module_types=(int,)):
            pass
    with pytest.raises(ValueError, match="names is empty"):
        with capture_inputs(net, []):
            pass


def test_captured_dict_feeds_dormant_ratio_directly():
    net = ToyMLP()
    with capture_activations(net) as acts:
        net(torch.randn(64, 3))
    r = dormant_ratio(acts)
    assert 0.0 <= r <= 1.0
