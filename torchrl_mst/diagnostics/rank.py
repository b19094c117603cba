"""Stable rank of a feature matrix (the MST paper's representation-collapse diagnostic)."""

from __future__ import annotations

import torch

from torchrl_mst.diagnostics._checks import check_features, check_fraction

__all__ = ["stable_rank"]


def stable_rank(features: torch.Tensor, delta: float = 0.01) -> int:
    r"""Stable rank of a feature matrix: how many directions carry its mass.

    With :math:`\sigma_1 \ge \sigma_2 \ge \dots \ge \sigma_n \ge 0` the singular values of
    ``features`` (:math:`n = \min(B, F)`), the stable rank is the smallest :math:`k` with

    .. math::

        \sum_{i=1}^{k} \sigma_i \;\ge\; (1 - \delta) \sum_{i=1}^{n} \sigma_i .

    It is at most :math:`\min(B, F)`; a value falling during training means the features
    collapse onto fewer directions (the MST paper tracks it on the encoder output ``zs`` and
    on the last hidden features of the critic and the actor).

    Singular values come from an SVD in the input's dtype, so the partial sums carry round-off
    of order :math:`\max(B, F)\,\epsilon \sum_i \sigma_i` (:math:`\epsilon` the dtype's machine
    epsilon); the comparison grants that much slack, so a tie at the threshold resolves to the
    smaller :math:`k` and ``delta=0`` gives the numerical rank rather than counting
    round-off-sized singular values.

    Args:
        features: feature matrix of shape ``[B, F]`` (batch x features), floating point and
            finite. It is not centred: the paper's definition uses the raw features.
        delta: fraction of the singular-value mass allowed outside the top :math:`k`, in
            ``[0, 1)``. Default 0.01, the paper's value.

    Returns:
        The stable rank, an ``int`` in ``[0, min(B, F)]``; 0 exactly when ``features`` is all
        zeros (no direction carries mass).

    Raises:
        TypeError: if ``features`` is not a floating :class:`torch.Tensor`.
        ValueError: if ``features`` is not 2-D, holds NaN/inf, or ``delta`` is outside
            ``[0, 1)``.

    Example:
        >>> import torch
        >>> # singular values 4, 3, 2, 1: cumulative sums 4, 7, 9, 10
        >>> phi = torch.diag(torch.tensor([4.0, 3.0, 2.0, 1.0]))
        >>> stable_rank(phi)  # needs 9.9 of 10
        4
        >>> stable_rank(phi, delta=0.15)  # needs 8.5 of 10
        3
    """
    check_features(features)
    if features.ndim != 2:
        raise ValueError(
            f"features must be a [B, F] matrix, got shape {tuple(features.shape)}; "
            "flatten the leading dimensions with `features.flatten(0, -2)`."
        )
    delta = check_fraction(delta, name="delta", low_open=False, high_open=True)
    if features.numel() == 0:
        return 0
    # SVD kernels lack half precision on CPU; float32 is exact enough for a rank count.
    if features.dtype not in (torch.float32, torch.float64):
        features = features.float()
    sigma = torch.linalg.svdvals(features.detach())
    cumulative = torch.cumsum(sigma, dim=0)
    total = float(cumulative[-1])
    if total == 0.0:
        return 0
    slack = max(features.shape) * torch.finfo(sigma.dtype).eps * total
    threshold = (1.0 - delta) * total - slack
    # cumulative is non-decreasing (sigma >= 0): the first index reaching the threshold is k - 1.
    below = int(torch.count_nonzero(cumulative < threshold))
    return min(below + 1, sigma.numel())
