"""Which tensors are sparsified, and random masks with exact counts.

Masks are ``torch.bool`` tensors registered as persistent buffers next to the weight they
mask (``weight`` -> ``weight_mask`` on the owning ``nn.Linear``/``nn.Conv*``), so
``copy.deepcopy``, ``state_dict()``, ``.to(device)`` and target-network copies carry them.
Nothing is recomputed in the forward pass: the weight itself holds exact zeros.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

__all__ = ["MASK_SUFFIX", "SPARSIFIABLE_TYPES", "random_mask", "sparsifiable_layers"]

SPARSIFIABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)
"""Layer types whose ``weight`` is sparsified (subclasses included)."""

MASK_SUFFIX = "_mask"
"""Buffer name suffix: the mask of ``weight`` is the buffer ``weight_mask``."""


def sparsifiable_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Linear and Conv layers of ``module`` (itself included), in ``named_modules`` order.

    Args:
        module: any module.

    Returns:
        ``(qualified name, layer)`` pairs; the name is ``""`` when ``module`` itself is a layer.

    Raises:
        ValueError: if a layer is lazy (its shape is unknown until the first forward).
    """
    layers = []
    for name, layer in module.named_modules():
        if not isinstance(layer, SPARSIFIABLE_TYPES):
            continue
        weight = getattr(layer, "weight", None)
        if isinstance(weight, UninitializedParameter):
            raise ValueError(
                f"Layer {name or type(layer).__name__!r} is lazy (uninitialised weight): run one "
                "forward pass to materialise it before sparsifying."
            )
        if isinstance(weight, torch.Tensor):
            layers.append((name, layer))
    return layers


def random_mask(
    shape: Sequence[int],
    count: int,
    *,
    generator: torch.Generator,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A boolean mask with exactly ``count`` ``True`` entries at uniformly random positions.

    Args:
        shape: mask shape.
        count: number of kept positions, ``0 <= count <= numel``.
        generator: source of randomness (its device is where the permutation is drawn).
        device: device of the returned mask (default: the generator's device).

    Returns:
        ``torch.bool`` tensor of ``shape``.
    """
    numel = math.prod(shape)
    if not 0 <= count <= numel:
        raise ValueError(
            f"count={count} is outside [0, {numel}] for a mask of shape {tuple(shape)}."
        )
    device = torch.device(device) if device is not None else generator.device
    mask = torch.zeros(numel, dtype=torch.bool, device=device)
    if count == numel:
        mask.fill_(True)
    elif count > 0:
        kept = torch.randperm(numel, generator=generator, device=generator.device)[:count]
        mask[kept.to(device)] = True
    return mask.view(tuple(shape))
