"""MR.Q's three networks, built from the blocks of :mod:`torchrl_mst.modules.blocks`.

Shapes (``B`` batch, ``A`` action dim, ``K = 2`` critic heads):

* :class:`MRQEncoder`: ``zs = norm_act(zs_mlp(s))`` ``[B, zs_dim]``;
  ``za = act(za(a))`` ``[B, za_dim]``; ``zsa = zsa_mlp([zs, za])`` ``[B, zsa_dim]``;
  ``model(zsa)`` ``[B, 1 + zs_dim + num_bins]`` split into done logit ``[B, 1]``,
  next-zs ``[B, zs_dim]`` and reward logits ``[B, num_bins]``.
* :class:`MRQCritic`: ``Q = [q1(zsa), q2(zsa)]`` ``[B, K]``; each head is
  ``head(norm_act(base_mlp(zsa)))``, i.e. ``num_blocks + 1`` blocks and a linear head.
* :class:`MRQActor`: ``pre = mlp(zs)`` ``[B, A]``; ``action = tanh(pre)``.

With types ``(4, 4, 3)`` and the 1x widths these are the authors' networks, parameter for
parameter (:func:`torchrl_mst.compat.mrq_from_reference` maps their key layout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchrl_mst.modules.blocks import (
    MLP,
    BlockType,
    _activation,
    _check_width,
    block_spec,
    init_linear,
)

__all__ = ["PIXEL_CHANNELS", "MRQActor", "MRQCritic", "MRQEncoder"]


#: Channels of every convolution of MR.Q's pixel encoder (fixed by the release, whatever
#: the scale: the scale presets widen the MLPs).
PIXEL_CHANNELS = 32


class MRQEncoder(nn.Module):
    """MR.Q's encoder: state embedding, state-action embedding and latent model head.

    Pixel observations (``obs_dim`` a ``(C, H, W)`` shape, e.g. ``(9, 84, 84)`` for three
    stacked RGB frames): the state embedding is the release's convolutional one,
    ``zs = norm_act(Linear(flatten(cnn(s / 255 - 0.5))))`` with ``cnn`` four 3x3
    convolutions of 32 channels, strides 2, 2, 2, 1, each followed by the block type's
    activation (``[B, 9, 84, 84] -> [B, 32, 7, 7] -> [B, 1568] -> [B, zs_dim]``). Frames may
    come as ``uint8``; they are scaled here. The rest of the encoder is unchanged.

    Args:
        obs_dim: observation size, or the ``(C, H, W)`` shape of pixel observations.
        action_dim: action size.

    Keyword Args:
        zs_dim: state embedding size (MR.Q: 512).
        za_dim: action embedding size (MR.Q: 256).
        zsa_dim: state-action embedding size (MR.Q: 512).
        hidden: hidden width of both MLPs (MR.Q: 512).
        num_blocks: hidden blocks per MLP (MR.Q: 2).
        block_type: architecture type 1-6 (MR.Q: 4, ELU + LayerNorm).
        num_bins: reward bins of the model head (MR.Q: 65).
    """

    def __init__(
        self,
        obs_dim: int | tuple[int, int, int],
        action_dim: int,
        *,
        zs_dim: int = 512,
        za_dim: int = 256,
        zsa_dim: int = 512,
        hidden: int = 512,
        num_blocks: int = 2,
        block_type: BlockType = 4,
        num_bins: int = 65,
    ) -> None:
        super().__init__()
        spec = block_spec(block_type)
        self.pixel_obs = not isinstance(obs_dim, int)
        obs_sizes = [("obs_dim", obs_dim)] if isinstance(obs_dim, int) else [
            (f"obs_dim[{i}]", d) for i, d in enumerate(obs_dim)]
        if self.pixel_obs and len(obs_sizes) != 3:
            raise ValueError(
                f"obs_dim must be an int (state) or a (C, H, W) shape (pixels), got {obs_dim!r}."
            )
        for name, value in [*obs_sizes, ("action_dim", action_dim), ("za_dim", za_dim),
                            ("num_bins", num_bins)]:
            _check_width(name, value)
        self.zs_dim, self.za_dim, self.zsa_dim, self.num_bins = zs_dim, za_dim, zsa_dim, num_bins
        if isinstance(obs_dim, int):
            self.zs_mlp: nn.Module = MLP(obs_dim, zs_dim, hidden, num_blocks, block_type)
        else:
            self.zs_mlp = _pixel_trunk(tuple(obs_dim), zs_dim, spec.activation)
        self.zs_norm: nn.Module = (
            nn.LayerNorm(zs_dim, elementwise_affine=False) if spec.layer_norm else nn.Identity()
        )
        self.zs_act = _activation(spec.activation)
        self.za = nn.Linear(action_dim, za_dim)
        self.za_act = _activation(spec.activation)
        self.zsa_mlp = MLP(zs_dim + za_dim, zsa_dim, hidden, num_blocks, block_type)
        self.model = nn.Linear(zsa_dim, 1 + zs_dim + num_bins)
        init_linear(self.za)
        init_linear(self.model)

    def zs(self, obs: torch.Tensor) -> torch.Tensor:
        """State embedding ``[B, obs_dim]`` (or ``[B, C, H, W]`` pixels) ``-> [B, zs_dim]``."""
        if self.pixel_obs:  # uint8 (or float) frames in [0, 255] -> [-0.5, 0.5]
            obs = obs.to(self.model.weight.dtype) / 255.0 - 0.5
        return self.zs_act(self.zs_norm(self.zs_mlp(obs)))

    def zsa(self, zs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """State-action embedding ``([B, zs_dim], [B, A]) -> [B, zsa_dim]``."""
        za = self.za_act(self.za(action))
        return self.zsa_mlp(torch.cat([zs, za], dim=-1))

    def model_head(self, zsa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split ``model(zsa)`` into ``(done_logit [B,1], next_zs [B,zs_dim], reward_logits)``."""
        return self.model(zsa).split([1, self.zs_dim, self.num_bins], dim=-1)

    def forward(
        self, zs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One latent-model step: ``model_head(zsa(zs, action))``."""
        return self.model_head(self.zsa(zs, action))


def _pixel_trunk(shape: tuple[int, ...], zs_dim: int, activation: str) -> nn.Sequential:
    """The release's pixel trunk: 4 convs (32 ch, 3x3, strides 2/2/2/1) + act, flatten, Linear."""
    c, h, w = shape
    layers: list[nn.Module] = []
    for i, stride in enumerate((2, 2, 2, 1)):
        conv = nn.Conv2d(c if i == 0 else PIXEL_CHANNELS, PIXEL_CHANNELS, 3, stride=stride)
        init_linear(conv)
        layers += [conv, _activation(activation)]
        h, w = (h - 3) // stride + 1, (w - 3) // stride + 1
        if h < 1 or w < 1:
            raise ValueError(
                f"Pixel observations of shape {shape} are too small for MR.Q's four 3x3 "
                "convolutions (strides 2, 2, 2, 1); use frames of at least 31x31 (MR.Q: 84x84)."
            )
    head = nn.Linear(PIXEL_CHANNELS * h * w, zs_dim)
    init_linear(head)
    return nn.Sequential(*layers, nn.Flatten(), head)


class MRQCritic(nn.Module):
    """MR.Q's twin critic on ``zsa``: ``[B, zsa_dim] -> [B, 2]``.

    Args:
        zsa_dim: input size.

    Keyword Args:
        hidden: hidden width (MR.Q: 512).
        num_blocks: hidden blocks of the base MLP (MR.Q: 2); each head has one more block
            (MR.Q's ``ln_act`` after the base MLP's last linear) and a ``Linear(hidden, 1)``.
        block_type: architecture type (MR.Q: 4).
    """

    def __init__(
        self, zsa_dim: int, *, hidden: int = 512, num_blocks: int = 2, block_type: BlockType = 4
    ) -> None:
        super().__init__()
        self.q1 = MLP(zsa_dim, 1, hidden, num_blocks + 1, block_type)
        self.q2 = MLP(zsa_dim, 1, hidden, num_blocks + 1, block_type)

    def forward(self, zsa: torch.Tensor) -> torch.Tensor:
        """Both Q values, concatenated: ``[B, 2]``."""
        return torch.cat([self.q1(zsa), self.q2(zsa)], dim=-1)


class MRQActor(nn.Module):
    """MR.Q's deterministic actor on ``zs``: ``[B, zs_dim] -> ([B, A], [B, A])``.

    Args:
        zs_dim: input size.
        action_dim: action size ``A``.

    Keyword Args:
        hidden: hidden width (MR.Q: 512).
        num_blocks: hidden blocks (MR.Q: 2).
        block_type: architecture type (MR.Q: 3, ReLU + LayerNorm).
        discrete: if ``True`` the action is ``gumbel_softmax(pre, tau=gumbel_tau)`` (one
            sample per call) instead of ``tanh(pre)``.
        gumbel_tau: temperature of the Gumbel-softmax (MR.Q: 10).
    """

    def __init__(
        self,
        zs_dim: int,
        action_dim: int,
        *,
        hidden: int = 512,
        num_blocks: int = 2,
        block_type: BlockType = 3,
        discrete: bool = False,
        gumbel_tau: float = 10.0,
    ) -> None:
        super().__init__()
        self.policy = MLP(zs_dim, action_dim, hidden, num_blocks, block_type)
        self.discrete = discrete
        self.gumbel_tau = gumbel_tau

    def forward(self, zs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(action, pre_activation)``, both ``[B, A]``."""
        pre = self.policy(zs)
        if self.discrete:
            return F.gumbel_softmax(pre, tau=self.gumbel_tau), pre
        return torch.tanh(pre), pre
