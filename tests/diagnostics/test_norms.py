import math

import pytest
import torch
from torch import nn

from torchrl_mst.diagnostics import grad_norm, param_norm


def test_param_norm_is_the_norm_of_all_parameters_concatenated():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert param_norm(net) == pytest.approx(flat.norm().item(), rel=1e-6)
    assert param_norm([torch.tensor([3.0]), torch.tensor([[4.0]])]) == 5.0
    assert param_norm([]) == 0.0


def test_grad_norm_skips_parameters_without_gradients():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    assert grad_norm(net) == 0.0
    net[1].weight.grad = torch.tensor([[1.0, 2.0]])
    net[1].bias.grad = torch.tensor([2.0])
    assert grad_norm(net) == 3.0
    assert grad_norm(net[1].parameters()) == 3.0


def test_tiny_values_do_not_underflow():
    p = torch.full((4,), 1e-30)  # float32 squares underflow to 0
    assert param_norm([p]) == pytest.approx(2e-30, rel=1e-6)
    assert math.isfinite(param_norm([torch.full((2,), 1e30)]))


def test_non_tensor_items_are_refused():
    with pytest.raises(TypeError, match="tensors"):
        param_norm([1.0])
