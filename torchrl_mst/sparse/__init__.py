"""Sparse training as composable module transforms (MST's per-module regimes).

Regimes (frozen, validated configs): :class:`Dense`, :class:`StaticSparse`, :class:`RigL`,
:class:`SET`, :class:`GradualPruning`, :class:`GradualGrowth`. Apply one (or a mapping
submodule name -> regime) with :func:`sparsify`, which registers boolean mask buffers next to
the weights and returns a :class:`SparseController`; call ``controller.mask_gradients()``
after backward and ``controller.step()`` after ``optimizer.step()``. Per-layer densities come
from :func:`erdos_renyi_densities`. TorchRL losses: :mod:`torchrl_mst.integrations`.
"""

from .controller import LayerUpdate, SparseController, SparseParam, UpdateStats, sparsify
from .distributions import allocate_kept_counts, erdos_renyi_densities
from .regimes import SET, Dense, GradualGrowth, GradualPruning, Regime, RigL, StaticSparse

__all__ = [
    "SET",
    "Dense",
    "GradualGrowth",
    "GradualPruning",
    "LayerUpdate",
    "Regime",
    "RigL",
    "SparseController",
    "SparseParam",
    "StaticSparse",
    "UpdateStats",
    "allocate_kept_counts",
    "erdos_renyi_densities",
    "sparsify",
]
