"""Tiny modules and helpers shared by the sparse tests."""

import itertools

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out, elementwise_affine=False)
        self.act = nn.ELU()

    def forward(self, x):
        return self.act(self.norm(self.linear(x)))


class ToyMLP(nn.Module):
    """blocks.i.linear + head, like the project's MLP (names matter, not values)."""

    def __init__(self, d_in: int = 6, width: int = 32, d_out: int = 1, depth: int = 2):
        super().__init__()
        dims = [d_in] + [width] * depth
        self.blocks = nn.ModuleList(Block(a, b) for a, b in itertools.pairwise(dims))
        self.head = nn.Linear(width, d_out)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


class ToyAgent(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = ToyMLP(6, 24, 8)
        self.critic = ToyMLP(8 + 2, 32, 1)
        self.actor = ToyMLP(8, 32, 2)


def train_steps(model, opt, ctl, steps, *, d_in=6, batch=16, seed=0, clip=None, mask_grads=True):
    """Regression on a fixed random task; returns the list of UpdateStats."""
    g = torch.Generator().manual_seed(seed)
    stats = []
    for _ in range(steps):
        x = torch.randn(batch, d_in, generator=g)
        y = torch.randn(batch, 1, generator=g)
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        if mask_grads:
            ctl.mask_gradients()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        s = ctl.step()
        if s is not None:
            stats.append(s)
    return stats


def assert_masked_zero(ctl, opt, module=None, params=None):
    """w, and every param-shaped optimizer state, exactly 0 wherever the mask is False."""
    for name, mask in ctl.masks.items():
        w = params[name] if params is not None else module.get_parameter(name)
        assert mask.dtype == torch.bool and mask.shape == w.shape
        assert torch.count_nonzero(w.detach()[~mask]) == 0, name
        for key, value in opt.state.get(w, {}).items():
            if isinstance(value, torch.Tensor) and value.shape == w.shape:
                assert torch.count_nonzero(value[~mask]) == 0, (name, key)
