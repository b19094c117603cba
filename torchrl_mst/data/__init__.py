"""Replay for MR.Q: a pure-torch sum tree, a LAP sub-trajectory sampler, the buffer.

* ``SumTree``: vectorised float64 sum tree, ``O(log N)`` per update and per draw.
* ``PrioritizedSubTrajectorySampler``: a TorchRL ``Sampler`` drawing ``[B, H]``
  windows whose starts are LAP-prioritized and never cross a truncation or the write
  cursor.
* ``MRQReplayBuffer`` / ``make_mrq_replay_buffer``: the
  ``TensorDictReplayBuffer`` MR.Q trains from.
"""

from torchrl_mst.data.replay import MRQReplayBuffer, make_mrq_replay_buffer
from torchrl_mst.data.samplers import PrioritizedSubTrajectorySampler
from torchrl_mst.data.sum_tree import SumTree

__all__ = [
    "MRQReplayBuffer",
    "PrioritizedSubTrajectorySampler",
    "SumTree",
    "make_mrq_replay_buffer",
]
