"""Sparse regimes on convolutional layers, checked like the Linear ones.

A small pixel encoder (four 3x3 convolutions as in MR.Q's, then a Linear): static ER/ERK
masks keep the exact per-layer counts of ``allocate_kept_counts`` (kernel dims counted by
ERK), masked weights and their AdamW moments stay exactly zero through training, and one
RigL update on the 4-D kernels matches an independent recomputation (drop the smallest
|w|, grow the largest |dense gradient| among inactive positions, counts unchanged).
"""

import math

import pytest
import torch
from sparse_toys import assert_masked_zero
from torch import nn

from torchrl_mst.sparse import RigL, StaticSparse, sparsify
from torchrl_mst.sparse.distributions import allocate_kept_counts


class ConvEncoder(nn.Module):
    """``[B, 9, 20, 20]`` frames (3 stacked RGB) -> ``[B, 16]``."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(9, 16, 3, stride=2), nn.ReLU(),  # 20 -> 9
            nn.Conv2d(16, 16, 3, stride=2), nn.ReLU(),  # 9 -> 4
            nn.Conv2d(16, 16, 3, stride=1), nn.ReLU(),  # 4 -> 2
            nn.Conv2d(16, 16, 1), nn.ReLU(),
        )
        self.head = nn.Linear(16 * 2 * 2, 16)

    def forward(self, x):
        return self.head(self.convs(x).flatten(1))


def conv_steps(net, opt, ctl, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = torch.randn(8, 9, 20, 20, generator=g), torch.randn(8, 16, generator=g)
        opt.zero_grad()
        (net(x) - y).pow(2).mean().backward()
        ctl.mask_gradients()
        opt.step()
        ctl.step()


@pytest.mark.parametrize("distribution", ["er", "erk"])
def test_static_masks_on_conv_kernels_have_exact_counts_and_stay_zero(distribution):
    torch.manual_seed(0)
    net = ConvEncoder()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    ctl = sparsify(net, StaticSparse(0.6, distribution=distribution), opt, seed=0)
    shapes = {n: tuple(net.get_parameter(n).shape) for n in ctl.masks}
    assert len(shapes) == 5 and shapes["convs.0.weight"] == (16, 9, 3, 3)
    expected = allocate_kept_counts(shapes, 0.6, distribution)
    assert {n: int(m.sum()) for n, m in ctl.masks.items()} == expected
    total = sum(math.prod(s) for s in shapes.values())
    assert sum(expected.values()) == round(0.4 * total)
    conv_steps(net, opt, ctl, 5)
    assert_masked_zero(ctl, opt, net)
    assert {n: int(m.sum()) for n, m in ctl.masks.items()} == expected


def test_erk_counts_the_kernel_dims_of_conv_layers():
    shapes = {"conv3x3": (16, 16, 3, 3), "conv1x1": (16, 16, 1, 1)}
    er = allocate_kept_counts(shapes, 0.6, "er")
    erk = allocate_kept_counts(shapes, 0.6, "erk")
    # ER sees the same 16x16 channel graph in both; ERK's score (sum dims / prod dims) is
    # (16+16+3+3)/(256*9) vs (16+16+1+1)/256: the 1x1 layer gets a higher density
    assert er["conv3x3"] / (256 * 9) == pytest.approx(er["conv1x1"] / 256, rel=0.05)
    assert erk["conv1x1"] / 256 > 2 * erk["conv3x3"] / (256 * 9)


def test_rigl_on_conv_kernels_matches_an_independent_recomputation():
    torch.manual_seed(0)
    net = ConvEncoder()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)
    ctl = sparsify(net, RigL(0.6, update_interval=5, stop_step=100, drop_fraction=0.3), opt,
                   seed=0)
    conv_steps(net, opt, ctl, 4)
    x, y = torch.randn(8, 9, 20, 20), torch.randn(8, 16)
    opt.zero_grad()
    (net(x) - y).pow(2).mean().backward()
    dense = {n: net.get_parameter(n).grad.clone() for n in ctl.masks}
    before = {n: m.clone() for n, m in ctl.masks.items()}
    ctl.mask_gradients()
    opt.step()
    w_pre = {n: net.get_parameter(n).detach().clone() for n in ctl.masks}
    stats = ctl.step()
    assert stats is not None and stats.step == 5
    frac = 0.15 * (1 + math.cos(math.pi * 5 / 100))
    moved = 0
    for name, after in ctl.masks.items():
        b = before[name]
        n_on, n = int(b.sum()), b.numel()
        k = min(math.floor(frac * n_on), n - n_on)
        dropped, grown = b & ~after, ~b & after
        assert after.shape == b.shape and int(after.sum()) == n_on
        assert int(dropped.sum()) == k and int(grown.sum()) == k
        moved += k
        if k == 0:
            continue
        assert w_pre[name][dropped].abs().max() <= w_pre[name][b & after].abs().min()
        assert dense[name][grown].abs().min() >= dense[name][~b & ~after].abs().max()
        assert torch.count_nonzero(net.get_parameter(name)[grown]) == 0
    assert moved > 0
    assert_masked_zero(ctl, opt, net)
