"""Drop and grow rules as small pure functions of (weight, gradient, mask).

Every function works on flat 1-D views of ONE layer (one ensemble member) and returns flat
indices; the caller edits the mask, the weight and the optimizer state. The four regimes
differ only in the scores they hand to these (``Regime.drop_score``/``Regime.grow_score``):
RigL = drop by magnitude + grow by gradient, SET = drop by magnitude + grow at random,
gradual pruning = drop only, gradual growth = grow only.

Ties are broken at random with a seeded generator, without sorting: each score is turned
into an ``int64`` key ``(bits(|x|) << 31) | r`` where ``bits`` is the IEEE-754 bit pattern
of the non-negative float32 magnitude (order-preserving for non-negative floats) and ``r`` a
uniform 31-bit integer. One ``topk`` over the keys then selects by magnitude first and
uniformly among equal magnitudes, e.g. among grown weights that are still exactly 0.
"""

from __future__ import annotations

import torch

__all__ = ["drop_indices", "grow_indices", "ranking_keys"]

_INT64_MAX = torch.iinfo(torch.int64).max


def _random_bits(numel: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    bits = torch.randint(0, 2**31, (numel,), generator=generator, device=generator.device)
    return bits.to(device)


def ranking_keys(
    scores: torch.Tensor | None, numel: int, *, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``int64`` keys ordering entries by ``|scores|`` with uniformly random tie-breaking.

    Args:
        scores: flat scores (any float dtype), or ``None`` for purely random keys.
        numel: number of entries (``scores.numel()`` when given).
        generator: source of the tie-breaking bits.
        device: device of the keys.

    Returns:
        Flat ``int64`` tensor; ``key_i < key_j`` whenever ``|s_i| < |s_j|``. NaN scores count as 0.
    """
    keys = _random_bits(numel, generator, device)
    if scores is not None:
        magnitude = torch.nan_to_num(scores.detach().abs().float(), nan=0.0)
        keys |= magnitude.view(torch.int32).to(torch.int64) << 31
    return keys


def drop_indices(
    scores: torch.Tensor, mask: torch.Tensor, k: int, *, generator: torch.Generator
) -> torch.Tensor:
    """The ``k`` active entries of smallest ``|scores|`` (the drop score; magnitude: the weights).

    Args:
        scores: flat drop scores of one layer (magnitude pruning: its weights).
        mask: flat bool mask of the same size (``True`` = active); must hold at least ``k``
            active entries.
        k: number of entries to drop.
        generator: tie-breaking generator.

    Returns:
        Flat ``int64`` indices (all active), ``k`` of them.
    """
    keys = ranking_keys(scores, scores.numel(), generator=generator, device=scores.device)
    keys.masked_fill_(~mask, _INT64_MAX)
    return torch.topk(keys, k, largest=False, sorted=False).indices


def grow_indices(
    candidates: torch.Tensor,
    k: int,
    *,
    generator: torch.Generator,
    scores: torch.Tensor | None = None,
) -> torch.Tensor:
    """The ``k`` candidate positions with the largest ``|scores|`` (uniformly random if ``None``).

    Args:
        candidates: flat bool tensor, ``True`` where growth is allowed (RigL/SET: inactive
            before the update); must hold at least ``k`` candidates.
        k: number of positions to grow.
        generator: tie-breaking (or, for SET, selection) generator.
        scores: flat grow scores (RigL: the dense gradient), or ``None`` for random growth.

    Returns:
        Flat ``int64`` indices (all candidates), ``k`` of them. With ``scores=None`` the result
        is a uniformly random ``k``-subset of the candidates.
    """
    keys = ranking_keys(scores, candidates.numel(), generator=generator, device=candidates.device)
    keys.masked_fill_(~candidates, -1)
    return torch.topk(keys, k, largest=True, sorted=False).indices
