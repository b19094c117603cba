"""SumTree against brute force: prefix sums, tie rule, sampling law, exact rebuilds."""

import pytest
import torch
from replay_fixtures import chi_square, chi_square_critical

from torchrl_mst.data import SumTree


def brute_force_find(values: torch.Tensor, masses: torch.Tensor) -> torch.Tensor:
    """First leaf i with cumsum[i] > m, i.e. c_{i-1} <= m < c_i."""
    csum = values.double().cumsum(0)
    return torch.searchsorted(csum, masses.double(), right=True)


@pytest.mark.parametrize("branching", [2, 4, 32])
@pytest.mark.parametrize("capacity", [1, 2, 3, 37, 64, 100, 1500])
def test_prefix_sum_search_matches_cumsum_search(capacity, branching):
    g = torch.Generator().manual_seed(capacity)
    # Integer leaves keep every partial sum exact, so ties are compared exactly too.
    values = torch.randint(0, 5, (capacity,), generator=g).double()
    values[0] = max(values[0].item(), 1.0)
    tree = SumTree(capacity, branching=branching)
    tree.update(torch.arange(capacity), values)
    assert branching**tree.depth >= capacity > branching ** (tree.depth - 1) or tree.depth == 1
    total = int(values.sum())
    assert tree.total == total
    masses = torch.cat([torch.arange(total) + 0.5, torch.arange(total).double()])
    found = tree.find_prefix_sum(masses)
    torch.testing.assert_close(found, brute_force_find(values, masses))
    assert (values[found] > 0).all()


def test_getitem_total_and_last_duplicate_wins():
    tree = SumTree(6)
    tree.update(torch.tensor([1, 4, 1]), torch.tensor([2.0, 3.0, 5.0]))
    assert tree[torch.tensor([0, 1, 4])].tolist() == [0.0, 5.0, 3.0]
    assert tree.total == 8.0
    assert tree[torch.tensor([[1], [4]])].shape == (2, 1)
    tree.update(4, 0.0)
    assert tree.total == 5.0
    assert tree.find_prefix_sum(torch.tensor([0.0, 4.999])).tolist() == [1, 1]


@pytest.mark.parametrize("branching", [2, 8])
def test_incremental_updates_agree_with_a_fresh_build(branching):
    g = torch.Generator().manual_seed(0)
    capacity = 50
    tree = SumTree(capacity, branching=branching)
    leaves = torch.zeros(capacity, dtype=torch.float64)
    for _ in range(200):
        k = int(torch.randint(1, 9, (), generator=g))
        idx = torch.randint(0, capacity, (k,), generator=g)
        val = torch.rand(k, generator=g, dtype=torch.float64) * 10
        tree.update(idx, val)
        for i, v in zip(idx.tolist(), val.tolist()):
            leaves[i] = v
    rebuilt = SumTree(capacity, branching=branching)
    rebuilt.build(leaves)
    assert torch.equal(tree.leaves, leaves)
    assert tree.total == pytest.approx(rebuilt.total, rel=1e-14)
    assert abs(tree.total - float(leaves.sum())) < 1e-12 * tree.total
    masses = torch.rand(10_000, generator=g, dtype=torch.float64) * tree.total
    assert torch.equal(tree.find_prefix_sum(masses), rebuilt.find_prefix_sum(masses))


@pytest.mark.parametrize("branching", [2, 4])
def test_sampling_frequencies_follow_leaf_values(branching):
    values = torch.tensor([0.0, 1.0, 2.0, 0.0, 0.5, 4.0, 0.0, 2.5, 1.0, 3.0, 0.0])
    tree = SumTree(values.numel(), branching=branching)
    tree.update(torch.arange(values.numel()), values)
    g = torch.Generator().manual_seed(123)
    draws = tree.find_prefix_sum(torch.rand(200_000, generator=g, dtype=torch.float64) * tree.total)
    counts = torch.bincount(draws, minlength=values.numel()).double()
    assert counts[values == 0].sum() == 0
    stat, dof = chi_square(counts, values.double() / values.sum())
    assert stat < chi_square_critical(dof), (stat, dof)


@pytest.mark.parametrize("branching", [2, 32])
def test_masses_at_or_beyond_the_total_never_pick_an_empty_leaf(branching):
    values = torch.tensor([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 0.0])  # float sums round
    tree = SumTree(values.numel(), branching=branching)
    tree.update(torch.arange(values.numel()), values)
    total = tree.total
    masses = torch.tensor([total, total * (1 - 1e-17), 2 * total, -1.0, 0.6], dtype=torch.float64)
    found = tree.find_prefix_sum(masses)
    assert (values[found] > 0).all()
    assert found.tolist()[:3] == [2, 2, 2] and found[3] == 0


def test_state_dict_round_trip():
    tree = SumTree(9)
    tree.update(torch.arange(9), torch.arange(9.0))
    other = SumTree(9)
    other.load_state_dict(tree.state_dict())
    masses = torch.linspace(0, tree.total - 1e-9, 50)
    assert torch.equal(other.find_prefix_sum(masses), tree.find_prefix_sum(masses))
    with pytest.raises(ValueError, match="capacity"):
        SumTree(10).load_state_dict(tree.state_dict())
    with pytest.raises(ValueError, match="branching"):
        SumTree(9, branching=4).load_state_dict(tree.state_dict())


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="positive int"):
        SumTree(0)
    with pytest.raises(ValueError, match="power of two"):
        SumTree(8, branching=3)
    tree = SumTree(4)
    with pytest.raises(IndexError, match=r"valid leaves are \[0, 3\]"):
        tree.update(torch.tensor([4]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(torch.tensor([0]), torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(torch.tensor([0]), torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="integers"):
        tree.update(torch.tensor([0.5]), torch.tensor([1.0]))
    with pytest.raises(RuntimeError, match="no mass"):
        tree.find_prefix_sum(torch.tensor([0.0]))
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        tree.build(torch.ones(3))
