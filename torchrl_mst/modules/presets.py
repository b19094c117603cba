"""Scale presets and a parameter counter for MR.Q networks.

A scale is a width multiplier ``m`` applied to every hidden and embedding width of the
three modules (``zs``, ``za``, ``zsa`` and the encoder / critic / actor hidden widths) plus
a number of hidden blocks per MLP (MR.Q: 2). ``1x`` is MR.Q's default network.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import torch
from torch import nn

from torchrl_mst.modules.blocks import BlockType
from torchrl_mst.modules.mrq import MRQActor, MRQCritic, MRQEncoder
from torchrl_mst.sparse import mask_of

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
    """A preset of :data:`SCALE_PRESETS`, any ``"<float>x"`` (``"0.25x"``), or a preset object.

    Raises:
        ValueError: for anything else, listing the valid presets; or for a multiplier so
            small that a width rounds to 0.
    """
    if isinstance(scale, ScalePreset):
        return scale
    if scale in SCALE_PRESETS:
        return SCALE_PRESETS[scale]
    match = re.fullmatch(r"(\d+(?:\.\d+)?)x", scale) if isinstance(scale, str) else None
    if match is None:
        raise ValueError(
            f"Unknown scale preset {scale!r}; valid presets are {list(SCALE_PRESETS)}, or "
            "'<float>x' such as '0.25x', or a ScalePreset(name, width_multiplier, num_blocks)."
        )
    preset = ScalePreset(scale, float(match.group(1)))
    if min(preset.widths().values()) < 1:
        raise ValueError(
            f"Scale {scale!r} rounds a width to 0 ({preset.widths()}); use at least "
            f"'{1 / 256:g}x'."
        )
    return preset


class MRQNetworks(nn.Module):
    """The three MR.Q modules under one parent: ``encoder``, ``critic``, ``actor``."""

    def __init__(self, encoder: MRQEncoder, critic: MRQCritic, actor: MRQActor) -> None:
        super().__init__()
        self.encoder = encoder
        self.critic = critic
        self.actor = actor


def make_mrq_networks(
    obs_dim: int | tuple[int, int, int],
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
        obs_dim: observation size, or the ``(C, H, W)`` shape of pixel observations (the
            encoder then embeds states with MR.Q's convolutional trunk).
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
    with torch.device(device) if device is not None else contextlib.nullcontext():
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


def count_parameters(module: nn.Module) -> dict[str, dict[str, int]]:
    """Per-child and total parameter counts: all parameters, and the active ones.

    A weight sparsified by :func:`torchrl_mst.sparse.sparsify` (directly or through a loss)
    has a boolean mask (:func:`torchrl_mst.sparse.mask_of`); its active count is the number
    of kept entries.
    Every other parameter counts in full (a zero-initialised bias is still trained).

    Returns:
        ``{child_name: {"total": n, "active": k}, ..., "total": {...}}`` for every direct
        child that owns parameters (``encoder``, ``critic``, ``actor`` for
        :class:`MRQNetworks`).
    """
    out: dict[str, dict[str, int]] = {}
    for name, child in module.named_children():
        counts = _count(child)
        if counts["total"]:
            out[name] = counts
    out["total"] = _count(module)
    return out


def _count(module: nn.Module) -> dict[str, int]:
    total = active = 0
    for p in module.parameters():
        total += p.numel()
        mask = mask_of(p)
        active += int(mask.sum()) if mask is not None else p.numel()
    return {"total": total, "active": active}
