"""ER/ERK/uniform allocation: hand-derived values, an independent solve, exact totals.

The independent truth is the fixed-point characterisation of the ER rule with overflow:
densities are d_l = min(1, eps * p_l) where eps solves sum_l min(1, eps p_l) n_l = K
(monotone in eps, solved here by bisection). The integer counts must be within one weight of
d_l * n_l, sum exactly to K = round((1 - s) N), and never exceed n_l.
"""

import math
from fractions import Fraction

import pytest
import torch
from sparse_toys import ToyMLP
from torch import nn

from torchrl_mst.sparse import erdos_renyi_densities
from torchrl_mst.sparse.distributions import allocate_kept_counts, layer_score


def bisection_densities(shapes, sparsity, distribution):
    n = {k: math.prod(s) for k, s in shapes.items()}
    p = {k: layer_score(s, distribution) for k, s in shapes.items()}
    budget = round((1 - Fraction(sparsity)) * sum(n.values()))

    def kept(eps):
        return sum(min(1.0, eps * p[k]) * n[k] for k in shapes)

    lo, hi = 0.0, 1.0
    while kept(hi) < budget:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kept(mid) < budget else (lo, mid)
    return {k: min(1.0, hi * p[k]) for k in shapes}, budget


def test_hand_derived_hidden_and_head():
    # N = 65536 + 256, K = round(0.4 N) = 26317. Scores: hidden 2/256, head 257/256.
    # eps = 26317 / (512 + 257) = 34.2 -> head 34.4 > 1 is dense; eps = (26317-256)/512,
    # hidden density = 26061 / 65536.
    counts = allocate_kept_counts({"hidden": (256, 256), "head": (1, 256)}, 0.6)
    assert counts == {"hidden": 26061, "head": 256}


def test_uniform_is_equal_density_and_exact():
    counts = allocate_kept_counts({"a": (10, 10), "b": (3, 7), "c": (5, 5)}, 0.5, "uniform")
    # N = 146, K = 73; ideal 50, 10.5, 12.5 -> floors 50, 10, 12 (72), one more to the
    # largest remainder: tie 0.5/0.5 goes to the larger layer c (25 > 21).
    assert counts == {"a": 50, "b": 10, "c": 13}


def test_er_and_erk_differ_only_for_kernels():
    lin = {"a": (64, 32), "b": (16, 64)}
    assert allocate_kept_counts(lin, 0.7, "er") == allocate_kept_counts(lin, 0.7, "erk")
    conv = {"c1": (16, 3, 5, 5), "c2": (32, 16, 3, 3), "fc": (10, 288)}
    assert allocate_kept_counts(conv, 0.7, "er") != allocate_kept_counts(conv, 0.7, "erk")
    assert layer_score((16, 3, 5, 5), "er") == pytest.approx((16 + 3) / (16 * 3))
    assert layer_score((16, 3, 5, 5), "erk") == pytest.approx((16 + 3 + 5 + 5) / (16 * 3 * 25))


SHAPE_SETS = [
    {"in": (64, 11), "h1": (64, 64), "h2": (64, 64), "out": (1, 64)},
    {"in": (512, 223), "h": (512, 512), "out": (38, 512)},
    {"c1": (8, 3, 3, 3), "c2": (16, 8, 3, 3), "fc": (10, 144)},
    {"m[0]": (33, 17), "m[1]": (33, 17), "x": (2, 33)},
]


@pytest.mark.parametrize("shapes", SHAPE_SETS)
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.6, 0.9, 0.99])
@pytest.mark.parametrize("distribution", ["er", "erk", "uniform"])
def test_counts_match_independent_solve(shapes, sparsity, distribution):
    counts = allocate_kept_counts(shapes, sparsity, distribution)
    dens, budget = bisection_densities(shapes, sparsity, distribution)
    assert list(counts) == list(shapes)
    assert sum(counts.values()) == budget
    for k, shape in shapes.items():
        n = math.prod(shape)
        assert 1 <= counts[k] <= n
        # Within one weight of the continuous ER solution (the min-one rule can add one more).
        assert abs(counts[k] - dens[k] * n) < 1.0 + 1e-6 or counts[k] == 1, k
        if dens[k] >= 1.0 - 1e-12:
            assert counts[k] == n, k


def test_sparsity_zero_keeps_everything():
    shapes = {"a": (5, 7), "b": (7, 3)}
    assert allocate_kept_counts(shapes, 0.0) == {"a": 35, "b": 21}


def test_module_densities_skip_biases_and_norms_and_include_subclasses():
    class MyLinear(nn.Linear):
        pass

    net = nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.Flatten(),
        MyLinear(8, 4),
        nn.LayerNorm(4),
        nn.Linear(4, 2),
    )
    dens = erdos_renyi_densities(net, 0.5)
    assert sorted(dens) == ["0.weight", "3.weight", "5.weight"]
    total = sum(p.numel() for n, p in net.named_parameters() if n in dens)
    kept = sum(dens[n] * net.get_parameter(n).numel() for n in dens)
    assert round(kept) == round(0.5 * total)


def test_module_densities_for_toy_mlp_are_exact_fractions():
    net = ToyMLP(6, 32, 1)
    dens = erdos_renyi_densities(net, 0.6)
    for name, d in dens.items():
        n = net.get_parameter(name).numel()
        assert d * n == pytest.approx(round(d * n), abs=1e-9)
    assert dens["head.weight"] == 1.0  # ER overflow: 1x32 head is dense


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity_is_value_error(bad):
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        allocate_kept_counts({"a": (4, 4)}, bad)


def test_bad_inputs():
    with pytest.raises(ValueError, match="Unknown distribution"):
        allocate_kept_counts({"a": (4, 4)}, 0.5, "erdos")
    with pytest.raises(TypeError):
        allocate_kept_counts({"a": (4, 4)}, "0.5")
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        erdos_renyi_densities(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)), 0.5)
    with pytest.raises(ValueError, match="lazy"):
        erdos_renyi_densities(nn.Sequential(nn.LazyLinear(3)), 0.5)
    with pytest.raises(ValueError, match="2 non-empty dims"):
        allocate_kept_counts({"a": (4,)}, 0.5)


def test_random_mask_has_exact_count():
    from torchrl_mst.sparse.masks import random_mask

    g = torch.Generator().manual_seed(0)
    for count in (0, 1, 17, 60):
        m = random_mask((6, 10), count, generator=g)
        assert m.dtype == torch.bool and m.shape == (6, 10) and int(m.sum()) == count
