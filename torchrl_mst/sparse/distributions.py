r"""Per-layer densities: Erdős–Rényi (ER), ERK and uniform, with exact integer counts.

Derivation (Mocanu et al. 2018; Evci et al. 2020). Layer :math:`l` has :math:`n_l` weights
and a raw score :math:`p_l`:

* ``"er"``: :math:`p_l = (c_{out} + c_{in}) / (c_{out}\,c_{in})` from the first two dims of the
  PyTorch weight (``[out, in]`` for Linear, ``[out, in/groups, *kernel]`` for Conv: the
  channel graph, kernel dims ignored). For a Linear layer this is the expected density of an
  Erdős–Rényi random bipartite graph with :math:`\varepsilon(c_{in} + c_{out})` edges.
* ``"erk"``: :math:`p_l = \sum_i d_i / \prod_i d_i` over all dims (kernel dims included).
  Identical to ``"er"`` for Linear layers.
* ``"uniform"``: :math:`p_l = 1`.

Layer :math:`l` gets density :math:`\varepsilon p_l`. With a set :math:`D` of layers forced
dense, requiring the kept total to equal the budget :math:`K = \operatorname{round}((1-s)N)`,
:math:`N = \sum_l n_l`, gives the closed form

.. math:: \varepsilon = \frac{K - \sum_{l \in D} n_l}{\sum_{l \notin D} p_l\, n_l}.

Starting from :math:`D = \emptyset`, every layer with :math:`\varepsilon p_l > 1` is moved to
:math:`D` and :math:`\varepsilon` is solved again until no layer exceeds 1 (moving a layer to
:math:`D` only raises :math:`\varepsilon`, so moving all offenders at once is equivalent to
RigL's one-tie-group-at-a-time loop).

Integer allocation (where this module differs from RigL/jaxpruner, which floor or round each
layer independently and so miss the global budget): the ideal counts
:math:`c_l = \varepsilon p_l n_l` sum to :math:`K`; each layer first gets
:math:`\lfloor c_l \rfloor`, then the :math:`K - \sum_l \lfloor c_l \rfloor` remaining weights
go one each to the layers with the largest fractional parts (largest-remainder method; ties
go to the larger layer, then to the earlier layer in iteration order). A sparsified layer
whose count would be 0 receives one weight from the layer with the largest count (so no
layer is cut off), keeping the total. The budget uses exact rational arithmetic on the given
float ``sparsity`` and Python's ``round`` (halves to even): e.g. ``sparsity=0.6`` over 1000
weights keeps exactly 400.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import torch
from torch import nn

from .masks import sparsifiable_layers
from .regimes import _DISTRIBUTIONS, _check_choice, _check_sparsity

__all__ = ["allocate_kept_counts", "erdos_renyi_densities", "layer_score"]


def layer_score(shape: Sequence[int], distribution: str = "er") -> float:
    """Raw density score :math:`p_l` of one layer (see the module docstring).

    Args:
        shape: the weight shape of one layer (no ensemble dims), at least 2-D.
        distribution: ``"er"``, ``"erk"`` or ``"uniform"``.

    Returns:
        The score; the layer's density is ``epsilon * score``.
    """
    _check_choice("distribution", distribution, _DISTRIBUTIONS)
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"A sparsified weight needs at least 2 non-empty dims, got {shape}.")
    if distribution == "uniform":
        return 1.0
    if distribution == "er":
        return (shape[0] + shape[1]) / (shape[0] * shape[1])
    return sum(shape) / math.prod(shape)


def allocate_kept_counts(
    shapes: Mapping[str, Sequence[int]], sparsity: float, distribution: str = "er"
) -> dict[str, int]:
    """Exact per-layer kept counts for a global sparsity.

    Args:
        shapes: layer name -> weight shape (one entry per layer; an ensemble of ``K`` stacked
            networks contributes ``K`` entries).
        sparsity: global fraction of zeros over all given layers, in [0, 1).
        distribution: ``"er"``, ``"erk"`` or ``"uniform"``.

    Returns:
        Layer name -> number of kept (non-zero) weights, in the order of ``shapes``. The sum is
        exactly ``round((1 - sparsity) * total)``; a layer whose ER density would exceed 1 is
        dense (count = numel).

    Example:
        >>> allocate_kept_counts({"hidden": (256, 256), "head": (1, 256)}, 0.6)
        {'hidden': 26061, 'head': 256}
    """
    _check_sparsity("sparsity", sparsity)
    _check_choice("distribution", distribution, _DISTRIBUTIONS)
    if not shapes:
        raise ValueError("allocate_kept_counts needs at least one layer shape.")
    names = list(shapes)
    numel = {n: math.prod(int(d) for d in shapes[n]) for n in names}
    score = {n: layer_score(shapes[n], distribution) for n in names}
    total = sum(numel.values())
    budget = round((1 - Fraction(sparsity)) * total)

    dense: set[str] = set()
    eps = 0.0
    while True:
        free = [n for n in names if n not in dense]
        divisor = sum(score[n] * numel[n] for n in free)
        if not free or divisor == 0:
            break
        eps = (budget - sum(numel[n] for n in dense)) / divisor
        over = [n for n in free if eps * score[n] > 1.0]
        if not over:
            break
        dense.update(over)

    ideal = {n: (float(numel[n]) if n in dense else eps * score[n] * numel[n]) for n in names}
    counts = {n: min(numel[n], max(0, math.floor(ideal[n]))) for n in names}
    remaining = budget - sum(counts.values())
    order = sorted(
        range(len(names)),
        key=lambda i: (-(ideal[names[i]] - math.floor(ideal[names[i]])), -numel[names[i]], i),
    )
    # Each floor loses < 1, so one pass normally suffices; loop for float round-off.
    while remaining > 0:
        progressed = False
        for i in order:
            n = names[i]
            if remaining == 0:
                break
            if counts[n] < numel[n]:
                counts[n] += 1
                remaining -= 1
                progressed = True
        if not progressed:  # pragma: no cover - budget <= total makes this unreachable
            raise RuntimeError("ER allocation could not place its budget; please report.")
    while remaining < 0:  # pragma: no cover - float round-off safety
        n = max(names, key=lambda m: counts[m])
        counts[n] -= 1
        remaining += 1

    if budget >= len(names):
        for n in names:
            if counts[n] == 0:
                donor = max(names, key=lambda m: counts[m])
                counts[donor] -= 1
                counts[n] = 1
    return counts


def erdos_renyi_densities(
    module: nn.Module, sparsity: float, distribution: str = "er"
) -> dict[str, float]:
    """Per-weight densities of a module's Linear and Conv layers.

    The weights considered are the ``weight`` tensors of every ``nn.Linear`` and
    ``nn.Conv*d`` / ``nn.ConvTranspose*d`` (subclasses included); biases and norm parameters
    are never sparsified and not counted. See the module docstring for the rule.

    Args:
        module: any ``nn.Module`` with at least one Linear/Conv layer.
        sparsity: global fraction of zeros over those weights, in [0, 1).
        distribution: ``"er"``, ``"erk"`` or ``"uniform"``.

    Returns:
        Parameter name (as in ``module.named_parameters()``) -> density
        ``kept_count / numel``, where the kept counts are the exact integers of
        :func:`allocate_kept_counts`.
    """
    layers = sparsifiable_layers(module)
    if not layers:
        raise ValueError(f"{type(module).__name__} has no nn.Linear or nn.Conv weight to sparsify.")
    shapes = {
        f"{name}.weight" if name else "weight": _weight_shape(layer) for name, layer in layers
    }
    counts = allocate_kept_counts(shapes, sparsity, distribution)
    return {n: counts[n] / math.prod(shapes[n]) for n in shapes}


def _weight_shape(layer: nn.Module) -> tuple[int, ...]:
    weight = layer.weight
    assert isinstance(weight, torch.Tensor)
    return tuple(weight.shape)
