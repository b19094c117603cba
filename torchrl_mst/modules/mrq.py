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

__all__ = ["MRQActor", "MRQCritic", "MRQEncoder"]


class MRQEncoder(nn.Module):
    """MR.Q's encoder: state embedding, state-action embedding and latent model head.

    Args:
        obs_dim: observation size.
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
        obs_dim: int,
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
        for name, value in [("obs_dim", obs_dim), ("action_dim", action_dim), ("za_dim", za_dim),
                            ("num_bins", num_bins)]:
            _check_width(name, value)
        self.zs_dim, self.za_dim, self.zsa_dim, self.num_bins = zs_dim, za_dim, zsa_dim, num_bins
        self.zs_mlp = MLP(obs_dim, zs_dim, hidden, num_blocks, block_type)
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
        """State embedding ``[B, obs_dim] -> [B, zs_dim]``."""
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
