"""Global parameter and gradient norms of a module."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["grad_norm", "param_norm"]


def _tensors(params: nn.Module | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(params, nn.Module):
        return list(params.parameters())
    if isinstance(params, torch.Tensor):
        return [params]
    tensors = list(params)
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"params must hold tensors, got {type(t).__name__}.")
    return tensors


def _global_norm(tensors: Iterable[torch.Tensor]) -> float:
    # Sum of squares in float64: tiny per-tensor norms must not underflow in the total.
    total = sum(float(t.detach().double().square().sum()) for t in tensors)
    return math.sqrt(total)


def param_norm(params: nn.Module | Iterable[torch.Tensor]) -> float:
    r"""Global L2 norm of parameters, :math:`\sqrt{\sum_p \lVert p \rVert_2^2}`.

    Args:
        params: a module (all its parameters) or an iterable of tensors.

    Returns:
        The norm as a ``float`` (0.0 for no parameters).

    Example:
        >>> import torch
        >>> param_norm([torch.tensor([3.0]), torch.tensor([[4.0]])])
        5.0
    """
    return _global_norm(_tensors(params))


def grad_norm(params: nn.Module | Iterable[torch.Tensor]) -> float:
    r"""Global L2 norm of the gradients, :math:`\sqrt{\sum_p \lVert \nabla p \rVert_2^2}`.

    Parameters whose ``.grad`` is ``None`` contribute nothing (same convention as
    :func:`torch.nn.utils.clip_grad_norm_`).

    Args:
        params: a module (all its parameters) or an iterable of tensors.

    Returns:
        The norm as a ``float`` (0.0 when no parameter has a gradient).
    """
    return _global_norm(p.grad for p in _tensors(params) if p.grad is not None)
