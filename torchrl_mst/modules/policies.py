"""MR.Q's policies as TorchRL modules: the deterministic one and the exploration one."""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import AdditiveGaussianModule

__all__ = ["MRQPolicy", "make_mrq_policies"]


class MRQPolicy(nn.Module):
    """Deterministic MR.Q policy: ``observation [..., obs] -> actor(encoder.zs(obs)) [..., A]``."""

    def __init__(self, encoder: nn.Module, actor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.actor = actor

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """The actor's action on the encoder's state embedding."""
        return self.actor(self.encoder.zs(observation))[0]


def make_mrq_policies(
    encoder: nn.Module,
    actor: nn.Module,
    action_spec: TensorSpec,
    *,
    noise_std: float = 0.2,
    observation_key: str = "observation",
    action_key: str = "action",
) -> tuple[TensorDictModule, TensorDictSequential]:
    """MR.Q's deterministic policy and its exploration policy, as TorchRL modules.

    The exploration policy adds ``N(0, noise_std)`` to the action and clips it to the
    bounds of ``action_spec`` (MR.Q: 0.2; halve it for discrete actions). TorchRL applies the
    noise only under ``ExplorationType.RANDOM`` (collectors' default), so the same module
    is deterministic inside ``set_exploration_type(ExplorationType.DETERMINISTIC)``.
    Random actions for the first steps come from the collector's ``init_random_frames``.

    Returns:
        ``(policy, exploration_policy)``; both share the networks' parameters.

    Raises:
        ValueError: if ``action_spec`` is bounded other than ``[-1, 1]``: the actor's
            ``tanh`` spans ``[-1, 1]`` and MR.Q's noises are sized for it, so rescale the env
            first (TorchRL's ``ActionScaling`` transform; ``torchrl_mst.envs.make_env`` does).
    """
    space = getattr(action_spec, "space", None)
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if low is not None and high is not None:
        if not (bool(torch.all(low == -1)) and bool(torch.all(high == 1))):
            raise ValueError(
                f"make_mrq_policies: the action bounds are [{float(low.min()):g}, "
                f"{float(high.max()):g}], but MR.Q's actor acts in [-1, 1] (tanh) and its noises "
                "are sized for that range: append torchrl.envs.ActionScaling() to the env "
                "(torchrl_mst.envs.make_env does it) so the policy sees [-1, 1]."
            )
    policy = TensorDictModule(
        MRQPolicy(encoder, actor), in_keys=[observation_key], out_keys=[action_key]
    )
    noise = AdditiveGaussianModule(
        action_spec, sigma_init=1.0, sigma_end=1.0, std=noise_std, action_key=action_key
    )
    return policy, TensorDictSequential(policy, noise)
