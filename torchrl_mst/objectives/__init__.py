"""MR.Q's objectives as TorchRL loss modules, and their pure functional pieces."""

from torchrl_mst.objectives.functional import (
    lap_priority,
    multistep_return,
    reward_bins,
    two_hot_cross_entropy,
)
from torchrl_mst.objectives.mrq import MRQHardUpdate, MRQLoss

__all__ = [
    "MRQHardUpdate",
    "MRQLoss",
    "lap_priority",
    "multistep_return",
    "reward_bins",
    "two_hot_cross_entropy",
]
