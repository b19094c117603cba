"""Input validation shared by the diagnostics functions."""

from __future__ import annotations

import math

import torch


def check_features(features: object, *, name: str = "features", min_dim: int = 2) -> torch.Tensor:
    """Validate a floating, finite feature tensor with at least ``min_dim`` dimensions."""
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(features).__name__}.")
    if features.ndim < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimensions ([B, F]), got shape "
            f"{tuple(features.shape)}; add a batch dimension with `unsqueeze(0)`."
        )
    if not features.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor, got dtype {features.dtype}; "
            "cast it with `.float()`."
        )
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name} contains NaN or infinite values; diagnostics need finite inputs.")
    return features


def check_fraction(value: object, *, name: str, low_open: bool, high_open: bool) -> float:
    """Validate a float in [0, 1] with the requested open/closed ends."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}.")
    v = float(value)
    ok = (
        math.isfinite(v)
        and (v > 0.0 if low_open else v >= 0.0)
        and (v < 1.0 if high_open else v <= 1.0)
    )
    if not ok:
        lo = "(0" if low_open else "[0"
        hi = "1)" if high_open else "1]"
        raise ValueError(f"{name} must lie in {lo}, {hi}, got {value!r}.")
    return v
