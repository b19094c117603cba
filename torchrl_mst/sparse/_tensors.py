"""Internal: one sparsified tensor as the controller sees it (where its mask lives, its targets)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.weak import WeakIdKeyDictionary

TargetLike = torch.Tensor | Callable[[], torch.Tensor]


@dataclass
class _SparseTensor:
    """One tensor to sparsify, as :func:`~torchrl_mst.sparse.sparsify` hands it to the controller.

    Attributes:
        name: public name (key of ``controller.masks``).
        param: the tensor the optimizer trains.
        mask_owner: module on which the mask is registered as a buffer.
        mask_attr: buffer name of the mask on ``mask_owner``.
        ensemble_dims: number of leading dims indexing independent networks (1 for TorchRL's
            stacked ``[K, out, in]`` critic parameters): each member gets its own ER count and
            its own drop/grow.
        targets: tensors (or zero-argument callables returning them) that must share the mask,
            e.g. target-network copies.
        initial_mask: a mask to adopt instead of drawing one (restored from a loss state dict
            loaded before sparsifying), or ``None``.
    """

    name: str
    param: torch.Tensor
    mask_owner: nn.Module
    mask_attr: str
    ensemble_dims: int = 0
    targets: list[TargetLike] = field(default_factory=list)
    initial_mask: torch.Tensor | None = None

    @property
    def layer_shape(self) -> tuple[int, ...]:
        """Shape of one member (the weight shape of one network)."""
        return tuple(self.param.shape[self.ensemble_dims :])

    @property
    def members(self) -> int:
        """Number of ensemble members (1 without ensemble dims)."""
        return math.prod(self.param.shape[: self.ensemble_dims])

    def member_name(self, b: int) -> str:
        """Name of member ``b`` (the tensor name without ensemble dims)."""
        return self.name if self.ensemble_dims == 0 else f"{self.name}[{b}]"


class _Entry:
    """A :class:`_SparseTensor` plus its controller-side state (active counts per member)."""

    def __init__(self, spec: _SparseTensor, counts: list[int], allocated: list[int]):
        self.spec = spec
        self.name = spec.name
        self.param = spec.param
        self.members = spec.members
        self.member_numel = math.prod(spec.layer_shape)
        self.counts = counts  # active weights now, per member
        self.allocated = allocated  # Erdős–Rényi kept count at the regime's mask sparsity

    @property
    def mask(self) -> torch.Tensor:
        return getattr(self.spec.mask_owner, self.spec.mask_attr)

    @property
    def is_full(self) -> bool:
        return all(c == self.member_numel for c in self.counts)

    def targets(self) -> list[torch.Tensor]:
        return [t() if callable(t) else t for t in self.spec.targets]

    @property
    def numel(self) -> int:
        return self.members * self.member_numel


_MASK_OF: WeakIdKeyDictionary = WeakIdKeyDictionary()
"""Trained tensor -> its :class:`_Entry` (weakly keyed by identity)."""


def mask_of(param: torch.Tensor) -> torch.Tensor | None:
    """The live boolean mask of a sparsified tensor, wherever it lives, or ``None``.

    Works for the weights of a plain module and for a loss's parameters (which, for losses
    that do not stack copies, such as ``MRQLoss``, are the network modules' own parameters).
    """
    entry = _MASK_OF.get(param)
    return entry.mask if entry is not None else None


def _mul_masks_(tensors: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
    """``t *= mask`` for each pair; bool masks are read as uint8 (5x faster than bool on CPU)."""
    if not tensors:
        return
    views = [m.view(torch.uint8) for m in masks]
    if tensors[0].device.type == "cpu":
        for t, m in zip(tensors, views):
            t.mul_(m)
    else:
        torch._foreach_mul_(tensors, views)


def _param_getter(module: nn.Module, name: str) -> Callable[[], torch.Tensor]:
    owner_name, _, attr = name.rpartition(".")

    def get() -> torch.Tensor:
        owner = module.get_submodule(owner_name) if owner_name else module
        return getattr(owner, attr)

    return get
