r"""Dormant units (Sokar et al., 2023, arXiv 2302.12902), as the MST paper measures them.

For a layer with post-activation outputs :math:`a \in \mathbb{R}^{B \times F}` the activity
score of unit :math:`i` is its mean absolute activation normalised by the layer's average:

.. math::

    s_i = \frac{\frac{1}{B}\sum_b |a_{b,i}|}
               {\frac{1}{F}\sum_{j=1}^{F} \frac{1}{B}\sum_b |a_{b,j}|},

and the unit is *dormant* when :math:`s_i \le \tau`. Scores average to 1 over a layer, so
:math:`\tau` is a fraction of the average unit's activity. A layer whose activations are all
zero has no average to compare with: every unit in it is dormant (score 0), never NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from torchrl_mst.diagnostics._checks import check_features, check_fraction

__all__ = ["activity_scores", "dormant_mask", "dormant_ratio", "dormant_ratios"]

Activations = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]


def activity_scores(activations: torch.Tensor) -> torch.Tensor:
    r"""Per-unit activity scores :math:`s_i` of one layer (see the module docstring).

    Args:
        activations: post-activation outputs of one layer, shape ``[B, F]``, or ``[..., F]``
            with every leading dimension treated as batch (e.g. ``[B, H, F]``).

    Returns:
        ``float64`` tensor of shape ``[F]``; its mean is 1, or every entry is 0 when the layer
        is silent on the whole batch.

    Raises:
        TypeError: if ``activations`` is not a floating tensor.
        ValueError: if it has fewer than 2 dimensions, is empty or holds NaN/inf.

    Example:
        >>> import torch
        >>> # mean |a| per unit: 1, 0, 5; layer average 2
        >>> activity_scores(torch.tensor([[1.0, 0.0, 6.0], [-1.0, 0.0, 4.0]]))
        tensor([0.5000, 0.0000, 2.5000], dtype=torch.float64)
    """
    check_features(activations, name="activations")
    if activations.numel() == 0:
        raise ValueError(
            f"activations of shape {tuple(activations.shape)} are empty: a layer needs at least "
            "one sample and one unit."
        )
    # float64 so that scores which are exactly tau on paper compare as such.
    per_unit = activations.detach().abs().flatten(0, -2).mean(dim=0, dtype=torch.float64)
    layer_mean = per_unit.mean()
    if layer_mean == 0:
        return torch.zeros_like(per_unit)
    return per_unit / layer_mean


def dormant_mask(activations: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    r"""Which units of one layer are dormant: :math:`s_i \le \tau`.

    Args:
        activations: post-activation outputs of one layer, ``[B, F]`` (or ``[..., F]``).
        tau: dormancy threshold in ``[0, 1]``; 0.1 by default (0.025 and 0.2 are also common).
            ``tau=0`` flags only units that are exactly zero on the whole batch.

    Returns:
        Boolean tensor of shape ``[F]``, ``True`` for dormant units.

    Raises:
        ValueError: if ``tau`` is outside ``[0, 1]`` (and as :func:`activity_scores`).
    """
    tau = check_fraction(tau, name="tau", low_open=False, high_open=False)
    return activity_scores(activations) <= tau


def _as_layers(activations: Activations) -> dict[str, torch.Tensor]:
    if isinstance(activations, torch.Tensor):
        return {"0": activations}
    if isinstance(activations, Mapping):
        layers = {str(k): v for k, v in activations.items()}
    elif isinstance(activations, Sequence) and not isinstance(activations, (str, bytes)):
        layers = {str(i): v for i, v in enumerate(activations)}
    else:
        raise TypeError(
            "activations must be a tensor, a sequence of tensors or a mapping name -> tensor, "
            f"got {type(activations).__name__}."
        )
    if not layers:
        raise ValueError(
            "activations is empty: capture at least one layer (the module may apply its "
            "activations functionally, which hooks cannot see)."
        )
    return layers


def dormant_ratios(activations: Activations, tau: float = 0.1) -> dict[str, float]:
    """Fraction of dormant units in each layer.

    Args:
        activations: one layer's ``[B, F_l]`` outputs, a sequence of them, or a mapping
            ``name -> [B, F_l]`` such as the dict filled by
            :func:`~torchrl_mst.diagnostics.capture_activations`.
        tau: dormancy threshold in ``[0, 1]`` (see :func:`dormant_mask`).

    Returns:
        ``{layer name: dormant units / F_l}``; names are the mapping's keys, or the positions
        ``"0", "1", ...`` for a tensor or a sequence. Each value lies in ``[0, 1]``.
    """
    layers = _as_layers(activations)
    return {name: float(dormant_mask(a, tau).double().mean()) for name, a in layers.items()}


def dormant_ratio(activations: Activations, tau: float = 0.1) -> float:
    r"""Dormant ratio of a module: dormant units over all its hidden units.

    Scores are computed per layer (each unit against its own layer's average), then pooled:

    .. math::

        \text{ratio} = \frac{\sum_l \#\{i : s^{(l)}_i \le \tau\}}{\sum_l F_l} \in [0, 1].

    Args:
        activations: one layer's ``[B, F]`` outputs, a sequence of per-layer outputs
            ``[B, F_l]`` (batch sizes may differ), or a mapping ``name -> [B, F_l]`` such as
            the dict filled by :func:`~torchrl_mst.diagnostics.capture_activations`.
        tau: dormancy threshold in ``[0, 1]``; 0.1 by default.

    Returns:
        The pooled fraction of dormant units, a ``float`` in ``[0, 1]`` (not a percentage).

    Raises:
        TypeError: if ``activations`` is not a tensor, sequence or mapping of floating tensors.
        ValueError: if no layer is given, a layer is not at least 2-D, is empty or holds
            NaN/inf, or ``tau`` is outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> # layer 0: scores 0.5, 0, 2.5 -> 1 dormant unit; layer 1: silent -> 2 dormant
        >>> layer0 = torch.tensor([[1.0, 0.0, 6.0], [-1.0, 0.0, 4.0]])
        >>> dormant_ratio([layer0, torch.zeros(2, 2)])
        0.6
        >>> dormant_ratio([layer0, torch.zeros(2, 2)], tau=0.5)  # 0.5 <= tau: dormant too
        0.8
    """
    masks = [dormant_mask(a, tau) for a in _as_layers(activations).values()]
    dormant = sum(int(m.sum()) for m in masks)
    return dormant / sum(m.numel() for m in masks)
