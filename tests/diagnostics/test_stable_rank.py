"""stable_rank: smallest k with sum of the top-k singular values >= (1 - delta) * total."""

import numpy as np
import pytest
import torch

from torchrl_mst.diagnostics import stable_rank


def matrix_with_singular_values(s, rows, cols, dtype=torch.float64, seed=0):
    """U diag(s) V^T with random orthonormal U [rows, n], V [cols, n]."""
    g = torch.Generator().manual_seed(seed)
    n = len(s)
    u, _ = torch.linalg.qr(torch.randn(rows, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, n, generator=g, dtype=torch.float64))
    return (u @ torch.diag(torch.tensor(s, dtype=torch.float64)) @ v.T).to(dtype)


def brute_force_stable_rank(features, delta):
    s = np.linalg.svd(features.double().numpy(), compute_uv=False)
    total = s.sum()
    for k in range(len(s) + 1):
        if s[:k].sum() >= (1 - delta) * total:
            return k
    raise AssertionError("unreachable")


# singular values 8, 4, 2, 1, 1: cumulative 8, 12, 14, 15, 16 (total 16)
HAND = [8.0, 4.0, 2.0, 1.0, 1.0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (0.01, 5),  # needs 15.84
        (0.1, 4),  # needs 14.4
        (0.2, 3),  # needs 12.8
        (0.3, 2),  # needs 11.2
        (0.5, 1),  # needs exactly 8: the tie counts (>=)
        (0.25, 2),  # needs exactly 12: the tie counts
    ],
)
def test_matrix_with_known_singular_values_gives_hand_computed_rank(dtype, delta, expected):
    phi = matrix_with_singular_values(HAND, rows=32, cols=12, dtype=dtype)
    assert stable_rank(phi, delta=delta) == expected


def test_default_delta_is_the_papers_one_percent():
    phi = matrix_with_singular_values(HAND, rows=32, cols=12)
    assert stable_rank(phi) == stable_rank(phi, delta=0.01) == 5
    # total 100, 99 needed: 98.5 is short, 98.5 + 1 is enough; 99.5 alone is enough
    assert stable_rank(matrix_with_singular_values([98.5, 1.0, 0.5], 10, 10)) == 2
    assert stable_rank(matrix_with_singular_values([99.5, 0.25, 0.25], 10, 10)) == 1


def test_low_rank_matrix_with_delta_zero_gives_its_rank():
    # rank 3 embedded in a 40 x 16 matrix: the 13 numerically-zero singular values do not count
    phi = matrix_with_singular_values([1.0, 1.0, 1.0], rows=40, cols=16, dtype=torch.float32)
    assert stable_rank(phi, delta=0.0) == 3
    assert stable_rank(phi) == 3


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (7, 7)])
def test_agrees_with_brute_force_definition_on_random_matrices(shape):
    g = torch.Generator().manual_seed(1)
    # decaying spectrum so different deltas give different ranks
    phi = torch.randn(*shape, generator=g) @ torch.diag(0.7 ** torch.arange(shape[1]).float())
    for delta in [0.0, 0.01, 0.05, 0.1, 0.3, 0.6, 0.9]:
        assert stable_rank(phi, delta) == brute_force_stable_rank(phi, delta), delta


def test_all_zero_features_have_rank_zero():
    assert stable_rank(torch.zeros(8, 4)) == 0
    assert stable_rank(torch.zeros(8, 4, dtype=torch.float64), delta=0.0) == 0


def test_invariant_to_row_order_transpose_and_positive_scale():
    g = torch.Generator().manual_seed(2)
    phi = torch.randn(50, 20, generator=g) @ torch.diag(0.8 ** torch.arange(20).float())
    r = stable_rank(phi)
    assert 1 <= r <= 20
    assert stable_rank(phi[torch.randperm(50, generator=g)]) == r
    assert stable_rank(phi.T.contiguous()) == r
    assert stable_rank(1e3 * phi) == r


def test_rank_is_bounded_by_the_smaller_dimension():
    assert stable_rank(torch.randn(3, 100)) <= 3
    assert stable_rank(torch.randn(100, 3)) <= 3


def test_half_precision_and_grad_requiring_inputs_are_accepted():
    phi = matrix_with_singular_values(HAND, 32, 12, dtype=torch.float32)
    assert stable_rank(phi.to(torch.bfloat16), delta=0.1) == 4
    assert stable_rank(phi.requires_grad_(), delta=0.1) == 4


@pytest.mark.parametrize(
    ("features", "error", "match"),
    [
        (torch.ones(5), ValueError, "at least 2 dimensions"),
        (torch.ones(2, 3, 4), ValueError, r"flatten\(0, -2\)"),
        (torch.ones(3, 3, dtype=torch.int64), TypeError, r"\.float\(\)"),
        (torch.tensor([[1.0, float("nan")]]), ValueError, "NaN"),
        ([[1.0, 2.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_features_raise_with_a_fix(features, error, match):
    with pytest.raises(error, match=match):
        stable_rank(features)


@pytest.mark.parametrize("delta", [1.0, -0.01, 1.5, float("nan")])
def test_delta_outside_zero_one_is_refused(delta):
    with pytest.raises(ValueError, match=r"delta must lie in \[0, 1\)"):
        stable_rank(torch.eye(3), delta=delta)


def test_bool_delta_is_refused():
    with pytest.raises(TypeError, match="delta"):
        stable_rank(torch.eye(3), delta=True)
