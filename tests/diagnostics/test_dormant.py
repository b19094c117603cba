"""dormant_ratio: unit score = mean_b |a| / layer mean of that; dormant if score <= tau."""

import pytest
import torch
from torch import nn

from torchrl_mst.diagnostics import (
    activity_scores,
    capture_activations,
    dormant_mask,
    dormant_ratio,
    dormant_ratios,
)


def constant_relu_layer(biases):
    """Linear with zero weights: pre-activation == bias for every input, then ReLU."""
    linear = nn.Linear(3, len(biases))
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor(biases))
    return nn.Sequential(linear, nn.ReLU())


# ReLU outputs 1, 0, 2, 4, 0, 5: layer mean 2, scores 0.5, 0, 1, 2, 0, 2.5
BIASES = [1.0, -1.0, 2.0, 4.0, -3.0, 5.0]


@pytest.mark.parametrize(
    ("tau", "expected"),
    [
        (0.0, 2 / 6),  # only the two dead units
        (0.1, 2 / 6),
        (0.49, 2 / 6),
        (0.5, 3 / 6),  # score exactly tau is dormant
        (1.0, 4 / 6),
    ],
)
def test_layer_with_known_activity_gives_hand_computed_ratio(tau, expected):
    net = constant_relu_layer(BIASES)
    with capture_activations(net) as acts:
        net(torch.randn(16, 3))
    assert set(acts) == {"1"}
    assert dormant_ratio(acts, tau=tau) == pytest.approx(expected, abs=0)
    torch.testing.assert_close(
        activity_scores(acts["1"]),
        torch.tensor([0.5, 0.0, 1.0, 2.0, 0.0, 2.5], dtype=torch.float64),
    )


def test_units_whose_preactivation_is_always_negative_are_dormant():
    # x >= 0; rows 1 and 4 have negative weights and bias -> always negative -> ReLU kills them.
    # The other 4 rows are identical, so the live units share one activity: score 6/4 each.
    linear = nn.Linear(5, 6)
    with torch.no_grad():
        linear.weight.copy_(torch.rand(6, 5) + 0.1)
        linear.weight[1:].copy_(linear.weight[0])
        linear.bias.fill_(0.5)
        for dead in (1, 4):
            linear.weight[dead] = -linear.weight[dead]
            linear.bias[dead] = -0.5
    net = nn.Sequential(linear, nn.ReLU())
    with capture_activations(net) as acts:
        net(torch.rand(32, 5))
    expected_mask = torch.tensor([False, True, False, False, True, False])
    for tau in (0.0, 0.1, 1.0, 1.0 - 1e-9):
        assert torch.equal(dormant_mask(acts["1"], tau), expected_mask)
        assert dormant_ratio(acts, tau) == 2 / 6
    # identical rows: equal activities up to float32 matmul round-off
    assert activity_scores(acts["1"])[0].item() == pytest.approx(1.5, rel=1e-6)


def test_ratio_pools_units_across_layers_and_per_layer_values_match():
    layer_a = torch.tensor([[1.0, 0.0, 3.0, 4.0], [1.0, 0.0, 5.0, 4.0]])  # 1 of 4 dormant
    layer_b = torch.zeros(7, 2)  # silent: both dormant
    acts = {"a": layer_a, "b": layer_b}
    assert dormant_ratio(acts) == 3 / 6
    assert dormant_ratio([layer_a, layer_b]) == 3 / 6
    assert dormant_ratios(acts) == {"a": 0.25, "b": 1.0}
    assert dormant_ratios([layer_a, layer_b]) == {"0": 0.25, "1": 1.0}
    assert dormant_ratios(layer_a) == {"0": 0.25}


def test_all_zero_layer_is_fully_dormant_without_nan():
    scores = activity_scores(torch.zeros(4, 5))
    assert torch.equal(scores, torch.zeros(5, dtype=torch.float64))
    assert dormant_ratio(torch.zeros(4, 5)) == 1.0
    assert dormant_ratio(torch.zeros(4, 5), tau=0.0) == 1.0


def test_scores_average_to_one_and_ignore_sign_and_scale():
    a = torch.randn(20, 9)
    s = activity_scores(a)
    assert s.mean().item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(activity_scores(-3.0 * a), s)


def test_leading_dimensions_are_batch():
    a = torch.randn(4, 5, 6)
    torch.testing.assert_close(activity_scores(a), activity_scores(a.reshape(20, 6)))


def test_elu_activations_count_negative_values_by_magnitude():
    # ELU units can be negative; |a| is what matters, so a negative-only unit is not dormant.
    a = torch.tensor([[-0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    assert torch.equal(dormant_mask(a), torch.tensor([False, False, True]))


@pytest.mark.parametrize("tau", [-0.1, 1.1, float("inf")])
def test_tau_outside_zero_one_is_refused(tau):
    with pytest.raises(ValueError, match=r"tau must lie in \[0, 1\]"):
        dormant_ratio(torch.ones(2, 2), tau=tau)


@pytest.mark.parametrize(
    ("activations", "error", "match"),
    [
        ([], ValueError, "empty"),
        ({}, ValueError, "empty"),
        (torch.ones(3), ValueError, "at least 2 dimensions"),
        (torch.ones(0, 3), ValueError, "one sample and one unit"),
        (torch.ones(2, 3, dtype=torch.int32), TypeError, "floating"),
        (torch.tensor([[float("inf"), 1.0]]), ValueError, "NaN or infinite"),
        ("relu", TypeError, "sequence of tensors"),
    ],
)
def test_bad_activations_raise(activations, error, match):
    with pytest.raises(error, match=match):
        dormant_ratio(activations)
