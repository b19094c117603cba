"""Scale presets and a parameter counter for MR.Q networks.

A scale is a width multiplier ``m`` applied to every hidden and embedding width of the
three modules (``zs``, ``za``, ``zsa`` and the encoder / critic / actor hidden widths) plus
a number of hidden blocks per MLP (MR.Q: 2). ``1x`` is MR.Q's default network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchrl_mst.modules.blocks import BlockType
from torchrl_mst.modules.mrq import MRQActor, MRQCritic, MRQEncoder

__all__ = [
    "MODULE_NAMES",
    "SCALE_PRESETS",
    "MRQNetworks",
    "ScalePreset",
    "count_parameters",
    "get_scale_preset",
    "make_mrq_networks",
]

#: The paper's three modules, in paper order.
MODULE_NAMES: tuple[str, str, str] = ("encoder", "critic", "actor")


@dataclass(frozen=True)
class ScalePreset:
    """A network scale: ``width_multiplier`` times MR.Q's widths, ``num_blocks`` per MLP.

    Attributes:
        name: preset name, e.g. ``"3x"``.
        width_multiplier: factor on MR.Q's widths (hidden 512, zs 512, za 256, zsa 512).
        num_blocks: hidden blocks per MLP (MR.Q: 2).
    """

    name: str
    width_multiplier: float
    num_blocks: int = 2

    def widths(self) -> dict[str, int]:
        """The four widths of this scale: ``hidden``, ``zs_dim``, ``za_dim``, ``zsa_dim``."""
        m = self.width_multiplier
        return {
            "hidden": round(512 * m),
            "zs_dim": round(512 * m),
            "za_dim": round(256 * m),
            "zsa_dim": round(512 * m),
        }


#: Named scales. ``xl`` (width x9.75: hidden 4992) is the paper's largest network: 363.2M
#: parameters for Dog Run (obs 223, action 38), 0.3% above the paper's 362M.
SCALE_PRESETS: dict[str, ScalePreset] = {
    p.name: p
    for p in (
        ScalePreset("1x", 1.0),
        ScalePreset("3x", 3.0),
        ScalePreset("5x", 5.0),
        ScalePreset("xl", 9.75),
    )
}


def get_scale_preset(scale: str | ScalePreset) -> ScalePreset:
    """Look ``scale`` up in :data:`SCALE_PRESETS` (a :class:`ScalePreset` passes through).

    Raises:
        ValueError: for an unknown preset name, listing the valid ones.
    """
    if isinstance(scale, ScalePreset):
        return scale
    if scale not in SCALE_PRESETS:
        raise ValueError(
            f"Unknown scale preset {scale!r}; valid presets are {list(SCALE_PRESETS)}, "
            "or pass a ScalePreset(name, width_multiplier, num_blocks)."
        )
    return SCALE_PRESETS[scale]


class MRQNetworks(nn.Module):
    """The three MR.Q modules under one parent: ``encoder``, ``critic``, ``actor``."""

    def __init__(self, encoder: MRQEncoder, critic: MRQCritic, actor: MRQActor) -> None:
        super().__init__()
        self.encoder = encoder
        self.critic = critic
        self.actor = actor


def make_mrq_networks(
    obs_dim: int,
    action_dim: int,
    *,
    scale: str | ScalePreset = "1x",
    encoder_type: BlockType = 4,
    critic_type: BlockType = 4,
    actor_type: BlockType = 3,
    num_bins: int = 65,
    discrete: bool = False,
    device: torch.device | str | None = None,
) -> MRQNetworks:
    """Build MR.Q's encoder, critic and actor at a scale, each with its own block type.

    Defaults ``(4, 4, 3)`` at ``"1x"`` are MR.Q's networks; MST's are ``(6, 6, 5)``.

    Args:
        obs_dim: observation size.
        action_dim: action size.

    Keyword Args:
        scale: a preset name of :data:`SCALE_PRESETS` or a :class:`ScalePreset`.
        encoder_type: block type of the encoder.
        critic_type: block type of the critic.
        actor_type: block type of the actor.
        num_bins: reward bins of the encoder's model head.
        discrete: Gumbel-softmax actor for discrete actions.
        device: where to allocate (``"meta"`` counts parameters without memory).
    """
    preset = get_scale_preset(scale)
    w = preset.widths()
    with torch.device(device) if device is not None else _nullcontext():
        encoder = MRQEncoder(
            obs_dim,
            action_dim,
            zs_dim=w["zs_dim"],
            za_dim=w["za_dim"],
            zsa_dim=w["zsa_dim"],
            hidden=w["hidden"],
            num_blocks=preset.num_blocks,
            block_type=encoder_type,
            num_bins=num_bins,
        )
        critic = MRQCritic(
            w["zsa_dim"], hidden=w["hidden"], num_blocks=preset.num_blocks, block_type=critic_type
        )
        actor = MRQActor(
            w["zs_dim"],
            action_dim,
            hidden=w["hidden"],
            num_blocks=preset.num_blocks,
            block_type=actor_type,
            discrete=discrete,
        )
    return MRQNetworks(encoder, critic, actor)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def count_parameters(module: nn.Module) -> dict[str, dict[str, int]]:
    """Per-child and total parameter counts, with non-zeros.

    Masked (sparse) weights are stored as zeros, so ``nonzero`` is the number of active
    parameters. On the ``meta`` device values are unknown and ``nonzero`` equals ``total``.

    Returns:
        ``{child_name: {"total": n, "nonzero": nz}, ..., "total": {...}}`` for every direct
        child that owns parameters (``encoder``, ``critic``, ``actor`` for
        :class:`MRQNetworks`).
    """
    out: dict[str, dict[str, int]] = {}
    for name, child in module.named_children():
        params = list(child.parameters())
        if params:
            out[name] = _count(params)
    out["total"] = _count(list(module.parameters()))
    return out


def _count(params: list[torch.Tensor]) -> dict[str, int]:
    total = sum(p.numel() for p in params)
    nonzero = sum(
        p.numel() if p.is_meta else int(torch.count_nonzero(p.detach())) for p in params
    )
    return {"total": total, "nonzero": nonzero}
