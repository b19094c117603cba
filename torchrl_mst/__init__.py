"""torchrl_mst: Module-Specific Training (MST) for MR.Q on TorchRL.

The paper's three modules keep one name everywhere in this package:

* ``encoder``: latent dynamics model (MR.Q's ``encoder``), trained dense;
* ``critic``: twin Q networks (MR.Q's ``value``), trained with RigL;
* ``actor``: deterministic policy (MR.Q's ``policy``), trained with a static ER mask.

The main names are importable from the top level (loaded on first use, so that
``import torchrl_mst`` stays cheap and the CLI can set environment variables before TorchRL
loads)::

    import torchrl_mst as mst

    nets = mst.make_mrq_networks(obs_dim, action_dim, scale="1x")
    loss = mst.MRQLoss(nets.encoder, nets.critic, nets.actor)
    ctl = mst.sparsify(loss, {"critic": mst.RigL(stop_step=800_000)}, critic_optimizer)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # networks and policies
    "make_mrq_networks": "torchrl_mst.modules",
    "MRQNetworks": "torchrl_mst.modules",
    "ScalePreset": "torchrl_mst.modules",
    "count_parameters": "torchrl_mst.modules",
    "make_mrq_policies": "torchrl_mst.modules",
    # losses
    "MRQLoss": "torchrl_mst.objectives",
    "MRQHardUpdate": "torchrl_mst.objectives",
    # sparse training
    "sparsify": "torchrl_mst.sparse",
    "SparseController": "torchrl_mst.sparse",
    "Regime": "torchrl_mst.sparse",
    "Dense": "torchrl_mst.sparse",
    "StaticSparse": "torchrl_mst.sparse",
    "RigL": "torchrl_mst.sparse",
    "SET": "torchrl_mst.sparse",
    "GradualPruning": "torchrl_mst.sparse",
    "GradualGrowth": "torchrl_mst.sparse",
    # replay, training
    "MRQReplayBuffer": "torchrl_mst.data",
    "MRQ": "torchrl_mst.trainers",
    "TrainConfig": "torchrl_mst.config",
    "parse_regime": "torchrl_mst.recipes",
    "train": "torchrl_mst.trainers.loop",
}

__all__ = [
    "MRQ",
    "SET",
    "Dense",
    "GradualGrowth",
    "GradualPruning",
    "MRQHardUpdate",
    "MRQLoss",
    "MRQNetworks",
    "MRQReplayBuffer",
    "Regime",
    "RigL",
    "ScalePreset",
    "SparseController",
    "StaticSparse",
    "TrainConfig",
    "__version__",
    "count_parameters",
    "make_mrq_networks",
    "make_mrq_policies",
    "parse_regime",
    "sparsify",
    "train",
]

if TYPE_CHECKING:
    from torchrl_mst.config import TrainConfig
    from torchrl_mst.data import MRQReplayBuffer
    from torchrl_mst.modules import (
        MRQNetworks,
        ScalePreset,
        count_parameters,
        make_mrq_networks,
        make_mrq_policies,
    )
    from torchrl_mst.objectives import MRQHardUpdate, MRQLoss
    from torchrl_mst.recipes import parse_regime
    from torchrl_mst.sparse import (
        SET,
        Dense,
        GradualGrowth,
        GradualPruning,
        Regime,
        RigL,
        SparseController,
        StaticSparse,
        sparsify,
    )
    from torchrl_mst.trainers import MRQ
    from torchrl_mst.trainers.loop import train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'torchrl_mst' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
