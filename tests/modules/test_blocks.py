"""Architecture types 1-6: each block computes exactly what the spec's table says."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchrl_mst.modules import BLOCK_TYPES, Block, build_mlp
from torchrl_mst.modules.blocks import xavier_bound


def hand_block(x, W, b, block_type):
    """The spec's table, written out with functional ops only."""
    h = x @ W.T + b
    ln = lambda t: F.layer_norm(t, t.shape[-1:])
    table = {
        1: lambda: torch.relu(h),
        2: lambda: F.elu(h),
        3: lambda: torch.relu(ln(h)),
        4: lambda: F.elu(ln(h)),
        5: lambda: x + torch.relu(ln(h)),
        6: lambda: x + F.elu(ln(h)),
        "5post": lambda: torch.relu(ln(x + h)),
        "6post": lambda: F.elu(ln(x + h)),
    }
    return table[block_type]()


@pytest.mark.parametrize("block_type", BLOCK_TYPES)
def test_block_matches_hand_written_forward(block_type):
    block = Block(16, 16, block_type)
    nn.init.normal_(block.linear.bias)
    x = torch.randn(8, 16)
    expected = hand_block(x, block.linear.weight, block.linear.bias, block_type)
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("block_type", [5, 6])
def test_pre_residual_block_is_identity_shortcut(block_type):
    """With W = 0 and b = 0, LN(0) = 0 and act(0) = 0: the block returns x exactly."""
    block = Block(12, 12, block_type)
    nn.init.zeros_(block.linear.weight)
    nn.init.zeros_(block.linear.bias)
    x = torch.randn(5, 12)
    assert torch.equal(block(x), x)
    # And in general the shortcut adds x itself (not a projection of it).
    block2 = Block(12, 12, block_type)
    torch.testing.assert_close(block2(x) - x, block2.act(block2.norm(block2.linear(x))))


@pytest.mark.parametrize("block_type", [5, 6, "5post", "6post"])
def test_residual_block_with_different_widths_is_plain_projection(block_type):
    block = Block(7, 16, block_type)
    assert block.projection and block.residual is None
    x = torch.randn(3, 7)
    torch.testing.assert_close(block(x), block.linear(x))


@pytest.mark.parametrize("block_type", [1, 2, 3, 4])
def test_non_residual_blocks_change_width_normally(block_type):
    block = Block(7, 16, block_type)
    assert not block.projection
    x = torch.randn(3, 7)
    torch.testing.assert_close(
        block(x), hand_block(x, block.linear.weight, block.linear.bias, block_type)
    )


def test_layer_norm_has_no_affine_parameters():
    block = Block(8, 8, 4)
    assert isinstance(block.norm, nn.LayerNorm)
    assert not block.norm.elementwise_affine
    assert [n for n, _ in block.named_parameters()] == ["linear.weight", "linear.bias"]


@pytest.mark.parametrize("block_type", BLOCK_TYPES)
def test_mlp_composes_blocks_then_head(block_type):
    mlp = build_mlp(10, 3, width=16, num_blocks=3, block_type=block_type)
    x = torch.randn(4, 10)
    h = x
    for blk in mlp.blocks:
        h = hand_block(h, blk.linear.weight, blk.linear.bias, block_type) if not blk.projection \
            else blk.linear(h)
    torch.testing.assert_close(mlp(x), mlp.head(h), rtol=0, atol=1e-6)
    assert len(mlp.blocks) == 3 and mlp.head.out_features == 3


def test_mlp_named_submodules_are_legible():
    mlp = build_mlp(4, 2, width=8, num_blocks=2, block_type=6)
    names = [n for n, _ in mlp.named_parameters()]
    assert names == [
        "blocks.0.linear.weight", "blocks.0.linear.bias",
        "blocks.1.linear.weight", "blocks.1.linear.bias",
        "head.weight", "head.bias",
    ]


def test_init_is_xavier_uniform_relu_gain_zero_bias():
    torch.manual_seed(1)
    mlp = build_mlp(300, 200, width=400, num_blocks=2, block_type=4)
    for lin in [b.linear for b in mlp.blocks] + [mlp.head]:
        a = xavier_bound(lin.in_features, lin.out_features)
        w = lin.weight.detach()
        assert w.abs().max() <= a
        # U(-a, a): std a / sqrt(3), within 2% on >= 80k samples
        assert abs(w.std().item() - a / 3**0.5) < 0.02 * a / 3**0.5
        assert torch.count_nonzero(lin.bias) == 0


@pytest.mark.parametrize("bad", [0, 7, "relu", True, 4.0, None])
def test_unknown_block_type_lists_valid_choices(bad):
    with pytest.raises(ValueError, match=r"valid types are \[1, 2, 3, 4, 5, 6, '5post', '6post'\]"):
        Block(4, 4, bad)


@pytest.mark.parametrize("kwargs", [dict(width=0), dict(width=-3), dict(num_blocks=0)])
def test_non_positive_sizes_are_refused(kwargs):
    args = dict(in_features=4, out_features=2, width=8, num_blocks=2, block_type=4) | kwargs
    with pytest.raises(ValueError, match="must be"):
        build_mlp(**args)
