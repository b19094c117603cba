"""Sparse training as composable transforms (MST's per-module regimes).

Regimes (frozen, validated configs that own their rule): :class:`Dense`,
:class:`StaticSparse`, :class:`SET`, :class:`RigL` (SET with a gradient grow score),
:class:`GradualPruning`, :class:`GradualGrowth`. Apply them with :func:`sparsify`, to a loss
(``MRQLoss`` or a TorchRL loss: ``{network name: regime}``) or to a plain module; it returns
a :class:`SparseController`: call ``controller.mask_gradients()`` after backward and
``controller.step()`` after ``optimizer.step()``. Per-layer densities come from
:func:`erdos_renyi_densities`.

Files, one concept each: ``regimes.py`` (each regime's schedule, drop score, grow score),
``schedules.py`` (pure schedule functions), ``dynamic.py`` (top-k by score with random
ties), ``distributions.py`` (Erdős–Rényi allocation), ``masks.py`` (which layers, random
masks), ``optim_state.py`` (optimizer-state resets), ``controller.py`` (the engine and its
checkpoint), ``stats.py`` (update statistics), ``apply.py`` (``sparsify``: where masks live).
"""

from ._tensors import mask_of
from .apply import SparseMasks, loss_network_names, sparsify
from .controller import SparseController, StateMasking
from .distributions import erdos_renyi_densities
from .regimes import (
    SET,
    Dense,
    Distribution,
    GradualGrowth,
    GradualPruning,
    GrownMoments,
    Regime,
    RigL,
    StaticSparse,
)
from .stats import UpdateStats

__all__ = [
    "SET",
    "Dense",
    "Distribution",
    "GradualGrowth",
    "GradualPruning",
    "GrownMoments",
    "Regime",
    "RigL",
    "SparseController",
    "SparseMasks",
    "StateMasking",
    "StaticSparse",
    "UpdateStats",
    "erdos_renyi_densities",
    "loss_network_names",
    "mask_of",
    "sparsify",
]
