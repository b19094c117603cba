"""Plasticity diagnostics usable on any network.

Pure functions over feature matrices ``[B, F]`` (:func:`stable_rank`, :func:`dormant_ratio`),
context managers that record activations with forward hooks and remove them on exit
(:func:`capture_activations`, :func:`capture_inputs`) and global norms (:func:`param_norm`,
:func:`grad_norm`). Fractions are in ``[0, 1]``, never percentages.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from torchrl_mst.diagnostics import capture_activations, capture_inputs
    >>> from torchrl_mst.diagnostics import dormant_ratio, stable_rank
    >>> net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
    ...                     nn.Linear(16, 1))
    >>> with capture_activations(net) as acts, capture_inputs(net, "4") as last:
    ...     _ = net(torch.randn(64, 4))
    >>> ratio = dormant_ratio(acts)  # pooled over both ReLU layers
    >>> 0.0 <= ratio <= 1.0 and 1 <= stable_rank(last["4"]) <= 16
    True
"""

from torchrl_mst.diagnostics.capture import (
    DEFAULT_ACTIVATION_TYPES,
    capture_activations,
    capture_inputs,
)
from torchrl_mst.diagnostics.dormant import (
    activity_scores,
    dormant_mask,
    dormant_ratio,
    dormant_ratios,
)
from torchrl_mst.diagnostics.norms import grad_norm, param_norm
from torchrl_mst.diagnostics.rank import stable_rank

__all__ = [
    "DEFAULT_ACTIVATION_TYPES",
    "activity_scores",
    "capture_activations",
    "capture_inputs",
    "dormant_mask",
    "dormant_ratio",
    "dormant_ratios",
    "grad_norm",
    "param_norm",
    "stable_rank",
]
