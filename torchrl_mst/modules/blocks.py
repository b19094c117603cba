"""Architecture types 1-6 of the MST paper as hidden blocks, and one MLP builder.

A hidden block maps ``x`` of width ``h_in`` to width ``h``:

=========  =====================================  ==============================
type       block                                  note
=========  =====================================  ==============================
1          ``relu(W x)``
2          ``elu(W x)``
3          ``relu(LN(W x))``                      MR.Q's actor block
4          ``elu(LN(W x))``                       MR.Q's encoder and critic block
5          ``x + relu(LN(W x))``                  pre-layer residual
6          ``x + elu(LN(W x))``                   pre-layer residual
"5post"    ``relu(LN(x + W x))``                  post-layer residual (ablation)
"6post"    ``elu(LN(x + W x))``                   post-layer residual (ablation)
=========  =====================================  ==============================

``LN`` is a LayerNorm WITHOUT learnable affine parameters, as in MR.Q. In a residual
type, a block whose input width differs from its output width cannot carry a shortcut:
it is a plain projection ``W x`` (no norm, no activation), as the spec fixes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = [
    "BLOCK_TYPES",
    "MLP",
    "Block",
    "BlockSpec",
    "BlockType",
    "block_spec",
    "build_mlp",
    "init_linear",
]

BlockType = int | Literal["5post", "6post"]
#: Every valid block type, in the order the paper numbers them.
BLOCK_TYPES: tuple[BlockType, ...] = (1, 2, 3, 4, 5, 6, "5post", "6post")


@dataclass(frozen=True)
class BlockSpec:
    """What a block type is made of.

    Attributes:
        activation: ``"relu"`` or ``"elu"``.
        layer_norm: whether a non-affine LayerNorm precedes the activation.
        residual: ``None``, ``"pre"`` (``x + act(LN(W x))``) or ``"post"``
            (``act(LN(x + W x))``).
    """

    activation: Literal["relu", "elu"]
    layer_norm: bool
    residual: Literal["pre", "post"] | None


_SPECS: dict[BlockType, BlockSpec] = {
    1: BlockSpec("relu", False, None),
    2: BlockSpec("elu", False, None),
    3: BlockSpec("relu", True, None),
    4: BlockSpec("elu", True, None),
    5: BlockSpec("relu", True, "pre"),
    6: BlockSpec("elu", True, "pre"),
    "5post": BlockSpec("relu", True, "post"),
    "6post": BlockSpec("elu", True, "post"),
}


def block_spec(block_type: BlockType) -> BlockSpec:
    """Return the :class:`BlockSpec` of ``block_type``.

    Raises:
        ValueError: if ``block_type`` is not one of :data:`BLOCK_TYPES`.
    """
    # bool is an int subclass and 4.0 == 4: accept exactly int or str.
    if type(block_type) not in (int, str) or block_type not in _SPECS:
        raise ValueError(
            f"Unknown block type {block_type!r}; valid types are {list(BLOCK_TYPES)} "
            "(see torchrl_mst.modules.blocks)."
        )
    return _SPECS[block_type]


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.ELU()


def init_linear(linear: nn.Linear | nn.Conv2d) -> None:
    """MR.Q's initialisation: Xavier-uniform weight with the ReLU gain, zero bias.

    ``W ~ U(-a, a)`` with ``a = sqrt(2) * sqrt(6 / (fan_in + fan_out))`` (for a convolution
    the fans include the kernel size).
    """
    nn.init.xavier_uniform_(linear.weight, gain=nn.init.calculate_gain("relu"))
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class Block(nn.Module):
    """One hidden block ``[B, in_features] -> [B, out_features]`` of a given type.

    Submodules are named so that parameters, masks and hooks are legible:
    ``linear`` (:class:`~torch.nn.Linear`), ``norm`` (non-affine
    :class:`~torch.nn.LayerNorm` or :class:`~torch.nn.Identity`) and ``act``
    (:class:`~torch.nn.ReLU`, :class:`~torch.nn.ELU` or :class:`~torch.nn.Identity`).

    Args:
        in_features: input width.
        out_features: output width.
        block_type: one of :data:`BLOCK_TYPES`.
    """

    def __init__(self, in_features: int, out_features: int, block_type: BlockType) -> None:
        super().__init__()
        spec = block_spec(block_type)
        _check_width("in_features", in_features)
        _check_width("out_features", out_features)
        self.block_type = block_type
        # A residual type cannot add x to W x when the widths differ: plain projection.
        self.projection = spec.residual is not None and in_features != out_features
        self.residual = None if self.projection else spec.residual
        self.linear = nn.Linear(in_features, out_features)
        if self.projection:
            self.norm: nn.Module = nn.Identity()
            self.act: nn.Module = nn.Identity()
        else:
            self.norm = (
                nn.LayerNorm(out_features, elementwise_affine=False)
                if spec.layer_norm
                else nn.Identity()
            )
            self.act = _activation(spec.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` of shape ``[..., in_features]``."""
        h = self.linear(x)
        if self.residual == "pre":
            return x + self.act(self.norm(h))
        if self.residual == "post":
            return self.act(self.norm(x + h))
        return self.act(self.norm(h))

    def extra_repr(self) -> str:
        """Show the type and whether the block is a plain projection."""
        return f"type={self.block_type!r}, projection={self.projection}"


class MLP(nn.Module):
    """A stack of :class:`Block` s followed by an optional linear ``head``.

    ``[B, in_features] -> [B, out_features]``. With ``num_blocks = 2`` and type 4 this is
    MR.Q's base MLP: ``Linear -> ln_elu -> Linear -> ln_elu -> Linear``.

    Attributes:
        blocks: the hidden blocks (``blocks.0`` maps ``in_features -> width``).
        head: ``Linear(width, out_features)``, or ``None`` when ``out_features`` is ``None``
            (the MLP then ends with the last block's output of size ``width``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int | None,
        width: int,
        num_blocks: int,
        block_type: BlockType,
    ) -> None:
        super().__init__()
        block_spec(block_type)
        _check_width("in_features", in_features)
        _check_width("width", width)
        if out_features is not None:
            _check_width("out_features", out_features)
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"num_blocks must be an int >= 1, got {num_blocks!r}.")
        self.in_features = in_features
        self.out_features = width if out_features is None else out_features
        self.blocks = nn.ModuleList(
            Block(in_features if i == 0 else width, width, block_type) for i in range(num_blocks)
        )
        self.head = nn.Linear(width, out_features) if out_features is not None else None
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_linear(m)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden features ``[B, width]`` (the input of ``head``)."""
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` of shape ``[..., in_features]`` to ``[..., out_features]``."""
        x = self.features(x)
        return x if self.head is None else self.head(x)


def build_mlp(
    in_features: int,
    out_features: int | None,
    width: int,
    num_blocks: int = 2,
    block_type: BlockType = 4,
) -> MLP:
    """Build an :class:`MLP` of ``num_blocks`` hidden blocks of ``block_type``.

    Args:
        in_features: input width.
        out_features: output width of the linear head, or ``None`` for no head.
        width: hidden width ``h`` of every block.
        num_blocks: number of hidden blocks (MR.Q: 2).
        block_type: one of :data:`BLOCK_TYPES`.

    Returns:
        A plain ``nn.Module`` initialised as MR.Q does (:func:`init_linear`).

    Examples:
        >>> mlp = build_mlp(24, 6, width=64, num_blocks=2, block_type=5)
        >>> mlp(torch.zeros(3, 24)).shape
        torch.Size([3, 6])
    """
    return MLP(in_features, out_features, width, num_blocks, block_type)


def _check_width(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")


def xavier_bound(fan_in: int, fan_out: int) -> float:
    """Bound ``a`` of MR.Q's Xavier-uniform init with ReLU gain (for tests and docs)."""
    return math.sqrt(2.0) * math.sqrt(6.0 / (fan_in + fan_out))
