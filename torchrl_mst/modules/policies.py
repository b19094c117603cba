"""MR.Q's policies as TorchRL modules: the deterministic one and the exploration one."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.data import Categorical, OneHot, TensorSpec
from torchrl.envs.utils import ExplorationType, exploration_type
from torchrl.modules import AdditiveGaussianModule

__all__ = ["MRQPolicy", "make_mrq_policies"]


class MRQPolicy(nn.Module):
    """MR.Q's policy: ``observation [..., obs] -> actor(encoder.zs(obs)) [..., A]``.

    Continuous actor: the deterministic action (exploration noise is added by a TorchRL
    module after it, see :func:`make_mrq_policies`).

    Discrete (Gumbel-softmax) actor, as the release acts: ``one_hot(argmax(a + eps))`` with
    ``a`` the actor's Gumbel-softmax sample and ``eps ~ N(0, noise_std)`` under
    ``ExplorationType.RANDOM`` only. The Gumbel sample makes even the evaluation policy
    stochastic (the release's evaluation does the same).

    Args:
        encoder: the MR.Q encoder (``zs``).
        actor: the MR.Q actor.

    Keyword Args:
        noise_std: exploration noise of a discrete actor (MR.Q: 0.1); ignored when continuous.
        action_dtype: dtype of the discrete one-hot output (the action spec's). Defaults to
            the actor's (float).
    """

    def __init__(
        self,
        encoder: nn.Module,
        actor: nn.Module,
        *,
        noise_std: float = 0.0,
        action_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.actor = actor
        self.noise_std = noise_std
        self.action_dtype = action_dtype

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """The actor's action on the encoder's state embedding."""
        action = self.actor(self.encoder.zs(observation))[0]
        if not getattr(self.actor, "discrete", False):
            return action
        explore = exploration_type() in (ExplorationType.RANDOM, None)
        if self.noise_std and explore:
            action = action + torch.randn_like(action) * self.noise_std
        one_hot = F.one_hot(action.argmax(-1), action.shape[-1])
        return one_hot.to(self.action_dtype or action.dtype)


def make_mrq_policies(
    encoder: nn.Module,
    actor: nn.Module,
    action_spec: TensorSpec,
    *,
    noise_std: float | None = None,
    observation_key: str = "observation",
    action_key: str = "action",
) -> tuple[TensorDictModule, TensorDictModuleBase]:
    """MR.Q's deterministic policy and its exploration policy, as TorchRL modules.

    Continuous actions: the exploration policy adds ``N(0, noise_std)`` to the action and
    clips it to the bounds of ``action_spec`` (MR.Q: 0.2). Discrete actions (a ``OneHot``
    spec and an actor built with ``discrete=True``): both policies act by the argmax of the
    actor's Gumbel-softmax sample, the exploration one after adding ``N(0, noise_std)``
    (MR.Q: 0.1, half the continuous noise), and write the one-hot in the spec's dtype (see
    :class:`MRQPolicy`). Noise is added only under ``ExplorationType.RANDOM`` (collectors'
    default), so the exploration module is the deterministic one inside
    ``set_exploration_type(ExplorationType.DETERMINISTIC)``. Random actions for the first
    steps come from the collector's ``init_random_frames``.

    Returns:
        ``(policy, exploration_policy)``; both share the networks' parameters.

    Raises:
        ValueError: if ``action_spec`` is bounded other than ``[-1, 1]`` (the actor's
            ``tanh`` spans ``[-1, 1]`` and MR.Q's noises are sized for it: rescale the env
            first with TorchRL's ``ActionScaling``; ``torchrl_mst.envs.make_env`` does); if
            the actor is discrete and the spec is not ``OneHot``, or the reverse; if the spec
            is ``Categorical`` (index actions: build the env with one-hot actions).
    """
    discrete_actor = bool(getattr(actor, "discrete", False))
    if isinstance(action_spec, Categorical) and not isinstance(action_spec, OneHot):
        raise ValueError(
            "make_mrq_policies: the action spec is Categorical (integer actions), but MR.Q "
            "stores and predicts one-hot actions: build the env with one-hot actions (TorchRL "
            "GymEnv's default, categorical_action_encoding=False)."
        )
    if isinstance(action_spec, OneHot) != discrete_actor:
        kind = "a discrete (OneHot)" if isinstance(action_spec, OneHot) else "a continuous"
        fix = "discrete=True" if isinstance(action_spec, OneHot) else "discrete=False"
        raise ValueError(
            f"make_mrq_policies: {kind} action spec with a "
            f"{'discrete' if discrete_actor else 'continuous'} actor; build the networks "
            f"with make_mrq_networks(..., {fix})."
        )
    if discrete_actor:
        std = 0.1 if noise_std is None else noise_std
        policy = TensorDictModule(
            MRQPolicy(encoder, actor, action_dtype=action_spec.dtype),
            in_keys=[observation_key], out_keys=[action_key],
        )
        explore = TensorDictModule(
            MRQPolicy(encoder, actor, noise_std=std, action_dtype=action_spec.dtype),
            in_keys=[observation_key], out_keys=[action_key],
        )
        return policy, explore
    noise_std = 0.2 if noise_std is None else noise_std
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
