"""MR.Q's three objectives as one TorchRL :class:`~torchrl.objectives.LossModule`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDict, TensorDictBase, TensorDictParams
from tensordict.nn import dispatch
from tensordict.utils import NestedKey
from torchrl.objectives import LossModule
from torchrl.objectives.utils import TargetNetUpdater

from torchrl_mst.modules.mrq import MRQActor, MRQCritic, MRQEncoder
from torchrl_mst.objectives.functional import (
    MultistepRule,
    lap_priority,
    multistep_return,
    reward_bins,
    two_hot_cross_entropy,
)
from torchrl_mst.sparse import SparseMasks

__all__ = ["MRQHardUpdate", "MRQLoss"]


class MRQLoss(LossModule):
    r"""MR.Q's encoder, critic and actor losses (Fujimoto et al., arXiv 2501.16142).

    Three objectives on ``[B, H]`` sub-trajectory batches (``B`` windows, ``H`` steps in
    time order, as :func:`torchrl_mst.data.make_mrq_replay_buffer` samples them):

    * :meth:`encoder_loss`: latent dynamics rolled ``H`` steps from ``zs(s_0)``:
      :math:`\sum_t m_t\,[\lambda_{dyn}\,\|\hat z_{t+1} - \bar z(s_{t+1})\|^2 +
      \lambda_r\,\mathrm{CE}(\hat r_t, \text{twohot}(r_t)) + \lambda_d\,(\hat d_t - d_t)^2]`,
      ``m_t = 1`` up to and including the first termination, then ``0``.
    * :meth:`critic_loss`: Huber loss of both heads against
      :math:`y = (R + \text{nd}\,\gamma^{n}\,\min_k \bar Q_k(\bar z_{sa}(s_n, a'))\,
      \bar\sigma) / \sigma` with ``n`` = ``value_horizon``, ``a'`` the target actor's action
      plus clipped noise, ``sigma`` / ``sigma_bar`` = ``reward_scale`` /
      ``target_reward_scale``. The online encoder runs under ``no_grad``.
    * :meth:`actor_loss`: :math:`-\mathrm{mean}_k Q_k(z_{sa}(z_s, \pi(z_s))) +
      \lambda_{pre}\,\mathrm{mean}(\text{pre}^2)`; only the actor gets gradients.

    Discrete actions (an actor built with ``discrete=True``): the actor's action is a
    Gumbel-softmax sample (differentiable, used by ``actor_loss``), stored actions are
    one-hot (any dtype; cast to float here), the target action ``a'`` is the one-hot of the
    argmax of the target actor's sample plus clipped noise, and both noises default to half
    their continuous values, as in the release.

    ``critic_loss`` writes the LAP priority :math:`\max(\max_k|Q_k - y|, 1)^{0.4}` of each
    window into the input batch under ``tensor_keys.priority`` (``"td_error"``), repeated
    over the window's steps (``[B, H]``; the replay buffer reads column 0).

    Args:
        encoder: an :class:`~torchrl_mst.modules.MRQEncoder`.
        critic: an :class:`~torchrl_mst.modules.MRQCritic` (``[B, zsa] -> [B, K]``).
        actor: an :class:`~torchrl_mst.modules.MRQActor` (``[B, zs] -> (action, pre)``).

    Keyword Args:
        gamma: discount (0.99).
        value_horizon: steps of the multi-step return (3).
        dynamics_weight: weight of the latent dynamics MSE (1).
        reward_weight: weight of the two-hot reward cross-entropy (0.1).
        done_weight: weight of the done MSE (0.1).
        policy_noise: std of the TD3 target smoothing noise (default: MR.Q's 0.2, or 0.1
            for a discrete actor, whose one-hot actions span [0, 1] instead of [-1, 1]).
        noise_clip: clip of that noise (default: 0.3, or 0.15 for a discrete actor).
        pre_activation_weight: actor pre-activation penalty (1e-5).
        lap_alpha: LAP priority exponent (0.4).
        min_priority: LAP floor on ``|delta|`` (1).
        num_bins: reward bins, symexp of ``num_bins`` values uniform in ``bin_range`` (65).
        bin_range: range of those values before symexp ((-10, 10)).
        reward_scale: initial reward scale (1).
        target_reward_scale: initial target reward scale (1).
        multistep_rule: ``"correct"`` (default) or ``"reference"`` (the release's rule, see
            :func:`~torchrl_mst.objectives.functional.multistep_return`).
        use_done_loss: whether the done term is on. MR.Q turns it on once any terminal
            transition has been stored (the trainer flips it); saved in ``state_dict``.

    Sparse training: ``sparsify(loss, {"critic": RigL(...)}, critic_optimizer)``
    (:func:`torchrl_mst.sparse.sparsify`) puts the masks in ``loss.sparse_masks`` (so in
    ``loss.state_dict()``) and ties the target parameters to them.

    Examples:
        >>> from torchrl_mst.modules import make_mrq_networks, ScalePreset
        >>> nets = make_mrq_networks(4, 2, scale=ScalePreset("tiny", 1 / 16))
        >>> loss = MRQLoss(nets.encoder, nets.critic, nets.actor)
        >>> updater = MRQHardUpdate(loss)  # MR.Q's target copies (every 250 steps)
        >>> td = TensorDict({
        ...     "observation": torch.randn(8, 5, 4), "action": torch.rand(8, 5, 2) * 2 - 1,
        ...     "next": {"observation": torch.randn(8, 5, 4), "reward": torch.randn(8, 5, 1),
        ...              "terminated": torch.zeros(8, 5, 1, dtype=torch.bool)},
        ... }, [8, 5])
        >>> out = loss(td)
        >>> sorted(k for k in out.keys() if k.startswith("loss_"))
        ['loss_actor', 'loss_critic', 'loss_encoder']
        >>> td["td_error"].shape
        torch.Size([8, 5])
    """

    @dataclass
    class _AcceptedKeys:
        """Tensordict keys read and written by :class:`MRQLoss` (rename with ``set_keys``).

        Attributes:
            observation: observation ``[B, H, obs]``; also read under ``"next"``.
            action: action ``[B, H, A]``.
            reward: reward, read under ``"next"`` ``[B, H, 1]``.
            terminated: termination flag, read under ``"next"`` ``[B, H, 1]``.
            priority: where :meth:`critic_loss` writes the LAP priority (``[B, H]``, one
                value per window repeated over its steps).
        """

        observation: NestedKey = "observation"
        action: NestedKey = "action"
        reward: NestedKey = "reward"
        terminated: NestedKey = "terminated"
        priority: NestedKey = "td_error"

    tensor_keys: _AcceptedKeys
    default_keys = _AcceptedKeys
    #: Every entry :meth:`forward` writes (losses first).
    out_keys = [  # noqa: RUF012 (TorchRL API)
        "loss_encoder",
        "loss_critic",
        "loss_actor",
        "encoder_dynamics",
        "encoder_reward",
        "encoder_done",
        "pred_value",
        "target_value",
        "actor_q",
    ]
    _schedulable_buffers = frozenset({"reward_scale", "target_reward_scale"})

    encoder: MRQEncoder
    encoder_params: TensorDictParams
    target_encoder_params: TensorDictParams
    critic: MRQCritic
    critic_params: TensorDictParams
    target_critic_params: TensorDictParams
    actor: MRQActor
    actor_params: TensorDictParams
    target_actor_params: TensorDictParams
    sparse_masks: SparseMasks

    def __init__(
        self,
        encoder: MRQEncoder,
        critic: MRQCritic,
        actor: MRQActor,
        *,
        gamma: float = 0.99,
        value_horizon: int = 3,
        dynamics_weight: float = 1.0,
        reward_weight: float = 0.1,
        done_weight: float = 0.1,
        policy_noise: float | None = None,
        noise_clip: float | None = None,
        pre_activation_weight: float = 1e-5,
        lap_alpha: float = 0.4,
        min_priority: float = 1.0,
        num_bins: int = 65,
        bin_range: tuple[float, float] = (-10.0, 10.0),
        reward_scale: float = 1.0,
        target_reward_scale: float = 1.0,
        multistep_rule: MultistepRule = "correct",
        use_done_loss: bool = True,
    ) -> None:
        super().__init__()
        if multistep_rule not in ("correct", "reference"):
            raise ValueError(
                f"multistep_rule must be 'correct' or 'reference', got {multistep_rule!r}."
            )
        if not (isinstance(value_horizon, int) and value_horizon >= 1):
            raise ValueError(f"value_horizon must be an int >= 1, got {value_horizon!r}.")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}.")
        _check_dims(encoder, critic, actor)
        self._in_keys: list[NestedKey] | None = None
        self.convert_to_functional(encoder, "encoder", create_target_params=True)
        self.convert_to_functional(critic, "critic", create_target_params=True)
        self.convert_to_functional(actor, "actor", create_target_params=True)
        self.gamma = gamma
        self.value_horizon = value_horizon
        self.dynamics_weight = dynamics_weight
        self.reward_weight = reward_weight
        self.done_weight = done_weight
        # Discrete actions live in [0, 1] (one-hot), continuous ones in [-1, 1]: MR.Q halves
        # both noises for a discrete (Gumbel-softmax) actor.
        self.discrete = bool(getattr(actor, "discrete", False))
        half = 0.5 if self.discrete else 1.0
        self.policy_noise = 0.2 * half if policy_noise is None else policy_noise
        self.noise_clip = 0.3 * half if noise_clip is None else noise_clip
        self.pre_activation_weight = pre_activation_weight
        self.lap_alpha = lap_alpha
        self.min_priority = min_priority
        self.multistep_rule = multistep_rule
        self.register_buffer("bins", reward_bins(num_bins, *bin_range))
        self.register_coeff_buffer("reward_scale", float(reward_scale))
        self.register_coeff_buffer("target_reward_scale", float(target_reward_scale))
        self.register_buffer("use_done_loss", torch.tensor(bool(use_done_loss)))
        # Home of the masks of :func:`torchrl_mst.sparse.sparsify` (empty while dense); made
        # here so that a sparsified state dict loads before or after sparsify.
        self.sparse_masks = SparseMasks()

    # -- TorchRL plumbing ---------------------------------------------------------------
    def _forward_value_estimator_keys(self, **kwargs: Any) -> None:
        # MR.Q's n-step target is computed inline; there is no value estimator.
        self._in_keys = None

    @property
    def in_keys(self) -> list[NestedKey]:
        """Keys read from the input batch."""
        if self._in_keys is None:
            k = self.tensor_keys
            self._in_keys = [
                k.observation,
                k.action,
                ("next", k.observation),
                ("next", k.reward),
                ("next", k.terminated),
            ]
        return self._in_keys

    @in_keys.setter
    def in_keys(self, values: list[NestedKey]) -> None:
        self._in_keys = values

    def refresh_reward_scale(self, reward_scale: float) -> None:
        """MR.Q's refresh at target-copy time: ``target_scale <- scale; scale <- new``."""
        self.target_reward_scale.copy_(self.reward_scale)
        self.reward_scale.fill_(max(float(reward_scale), 1e-8))

    def _windows(
        self, td: TensorDictBase, horizon: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if td.batch_dims != 2:
            raise ValueError(
                f"MRQLoss expects [B, H] sub-trajectory batches, got batch_size {td.batch_size}; "
                "sample windows with torchrl_mst.data.make_mrq_replay_buffer (or unsqueeze a "
                "[B] batch of transitions to [B, 1])."
            )
        if horizon is not None and td.shape[1] < horizon:
            raise ValueError(
                f"The batch has {td.shape[1]} steps per window but value_horizon is {horizon}."
            )
        k = self.tensor_keys
        end = td.shape[1] if horizon is None else horizon
        obs = td.get(k.observation)[:, :end]
        action = td.get(k.action)[:, :end]
        if not action.is_floating_point():  # one-hot discrete actions, stored as the env's
            action = action.to(obs.dtype)
        return (
            obs,
            action,
            td.get(("next", k.observation))[:, :end],
            td.get(("next", k.reward))[:, :end].reshape(td.shape[0], end),
            td.get(("next", k.terminated))[:, :end].reshape(td.shape[0], end).float(),
        )

    # -- the three objectives, in paper order --------------------------------------------
    def encoder_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict]:
        """Encoder (latent dynamics) loss on a ``[B, H]`` batch; gradients reach the encoder only.

        Returns:
            ``(loss, metadata)`` with the three unweighted terms summed over ``H``.
        """
        obs, action, next_obs, reward, terminated = self._windows(tensordict)
        batch, horizon = obs.shape[:2]
        with torch.no_grad(), self.target_encoder_params.to_module(
            self.encoder, preserve_module_state=False
        ):
            zs_target = self.encoder.zs(next_obs.flatten(0, 1)).unflatten(0, (batch, horizon))
        mask = torch.ones(batch, 1, device=obs.device)
        dyn = rew = done = torch.zeros((), device=obs.device)
        with self.encoder_params.to_module(self.encoder, preserve_module_state=False):
            zs = self.encoder.zs(obs[:, 0])
            for t in range(horizon):
                done_logit, zs, reward_logits = self.encoder(zs, action[:, t])
                dyn = dyn + ((zs - zs_target[:, t]).pow(2) * mask).mean()
                ce = two_hot_cross_entropy(reward_logits, reward[:, t], self.bins)
                rew = rew + (ce * mask).mean()
                done = done + ((done_logit - terminated[:, t, None]).pow(2) * mask).mean()
                mask = mask * (1.0 - terminated[:, t, None])
        loss = self.dynamics_weight * dyn + self.reward_weight * rew
        loss = loss + self.done_weight * done * self.use_done_loss
        return loss, {"dynamics": dyn.detach(), "reward": rew.detach(), "done": done.detach()}

    def critic_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict]:
        """Critic (TD) loss on the first ``value_horizon`` steps of a ``[B, H]`` batch.

        Writes the LAP priority into ``tensordict`` under ``tensor_keys.priority``
        (``[B, H]``, constant along ``H``).

        Returns:
            ``(loss, metadata)`` with ``q`` ``[B, K]``, ``target`` ``[B, 1]``, the
            multi-step ``reward`` ``[B, 1]`` and ``not_done`` ``[B, 1]``.
        """
        n = self.value_horizon
        obs, action, next_obs, reward, terminated = self._windows(tensordict, n)
        ret, not_done = multistep_return(reward, terminated, self.gamma, self.multistep_rule)
        with torch.no_grad():
            with self.target_encoder_params.to_module(self.encoder, preserve_module_state=False):
                next_zs = self.encoder.zs(next_obs[:, n - 1])
            with self.target_actor_params.to_module(self.actor, preserve_module_state=False):
                next_action = self.actor(next_zs)[0]
            noise = (torch.randn_like(next_action) * self.policy_noise).clamp(
                -self.noise_clip, self.noise_clip
            )
            next_action = next_action + noise
            if self.discrete:  # the one-hot of the argmax, as the env would receive it
                next_action = F.one_hot(next_action.argmax(-1), next_action.shape[-1])
                next_action = next_action.to(next_zs.dtype)
            else:
                next_action = next_action.clamp(-1.0, 1.0)
            with self.target_encoder_params.to_module(self.encoder, preserve_module_state=False):
                next_zsa = self.encoder.zsa(next_zs, next_action)
            with self.target_critic_params.to_module(self.critic, preserve_module_state=False):
                next_q = self.critic(next_zsa).amin(dim=-1, keepdim=True)
            target = ret + not_done * self.gamma**n * next_q * self.target_reward_scale
            target = target / self.reward_scale
            with self.encoder_params.to_module(self.encoder, preserve_module_state=False):
                zsa = self.encoder.zsa(self.encoder.zs(obs[:, 0]), action[:, 0])
        with self.critic_params.to_module(self.critic, preserve_module_state=False):
            q = self.critic(zsa)
        loss = F.smooth_l1_loss(q, target.expand_as(q))
        priority = lap_priority(
            q.detach(), target, alpha=self.lap_alpha, min_priority=self.min_priority
        )
        # One priority per window, repeated over its steps so it fits the [B, H] batch;
        # the replay buffer writes column 0 to the window's start index.
        tensordict.set(
            self.tensor_keys.priority, priority.unsqueeze(1).expand(tensordict.shape).clone()
        )
        return loss, {"q": q.detach(), "target": target, "reward": ret, "not_done": not_done}

    def actor_loss(self, tensordict: TensorDictBase) -> tuple[torch.Tensor, dict]:
        """Deterministic policy gradient through ``zsa`` and the critic; actor gradients only.

        Returns:
            ``(loss, metadata)`` with the mean ``q`` and the pre-activation penalty.
        """
        obs = tensordict.get(self.tensor_keys.observation)
        obs = obs[:, 0] if tensordict.batch_dims == 2 else obs
        with torch.no_grad(), self.encoder_params.to_module(
            self.encoder, preserve_module_state=False
        ):
            zs = self.encoder.zs(obs)
        with self.actor_params.to_module(self.actor, preserve_module_state=False):
            action, pre = self.actor(zs)
        with self.encoder_params.detach().to_module(self.encoder, preserve_module_state=False):
            zsa = self.encoder.zsa(zs, action)
        with self.critic_params.detach().to_module(self.critic, preserve_module_state=False):
            q = self.critic(zsa)
        penalty = pre.pow(2).mean()
        loss = -q.mean() + self.pre_activation_weight * penalty
        return loss, {"q": q.detach().mean(), "pre_activation": penalty.detach()}

    @dispatch
    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """All three losses on one ``[B, H]`` batch (MR.Q itself calls them separately)."""
        loss_encoder, enc = self.encoder_loss(tensordict)
        loss_critic, critic = self.critic_loss(tensordict)
        loss_actor, actor = self.actor_loss(tensordict)
        return TensorDict(
            {
                "loss_encoder": loss_encoder,
                "loss_critic": loss_critic,
                "loss_actor": loss_actor,
                "encoder_dynamics": enc["dynamics"],
                "encoder_reward": enc["reward"],
                "encoder_done": enc["done"],
                "pred_value": critic["q"].mean(),
                "target_value": critic["target"].mean(),
                "actor_q": actor["q"],
            },
            batch_size=[],
        )


def _linears(module: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def _check_dims(encoder: MRQEncoder, critic: MRQCritic, actor: MRQActor) -> None:
    """Refuse networks whose sizes do not chain, at construction rather than at forward."""
    zs_dim = getattr(encoder, "zs_dim", None)
    zsa_dim = getattr(encoder, "zsa_dim", None)
    za = getattr(encoder, "za", None)
    critic_in = {heads[0].in_features for heads in (_linears(critic),) if heads}
    for head in ("q1", "q2"):
        sub = getattr(critic, head, None)
        if isinstance(sub, torch.nn.Module) and _linears(sub):
            critic_in.add(_linears(sub)[0].in_features)
    problems = []
    if zsa_dim is not None and critic_in and critic_in != {zsa_dim}:
        problems.append(
            f"the critic takes {sorted(critic_in)} inputs but encoder.zsa_dim is {zsa_dim}"
        )
    actor_linears = _linears(actor)
    if zs_dim is not None and actor_linears and actor_linears[0].in_features != zs_dim:
        problems.append(
            f"the actor takes {actor_linears[0].in_features} inputs but encoder.zs_dim is {zs_dim}"
        )
    if isinstance(za, torch.nn.Linear) and actor_linears:
        if actor_linears[-1].out_features != za.in_features:
            problems.append(
                f"the actor outputs {actor_linears[-1].out_features} actions but the encoder "
                f"embeds {za.in_features}"
            )
    if problems:
        raise ValueError(
            "MRQLoss: the networks do not fit together: " + "; ".join(problems) + ". Build "
            "them together with torchrl_mst.modules.make_mrq_networks(obs_dim, action_dim, ...)."
        )


class MRQHardUpdate(TargetNetUpdater):
    """MR.Q's hard target copy every ``interval`` calls, starting with the first.

    :meth:`step` copies ``online -> target`` for the encoder, critic and actor at calls
    ``0, interval, 2 * interval, ...`` (TorchRL's :class:`~torchrl.objectives.HardUpdate`
    copies at its ``(N + 1)``-th call instead) and, when ``reward_scale_fn`` is given,
    refreshes the loss's reward scales at the same moment
    (:meth:`MRQLoss.refresh_reward_scale`).

    Args:
        loss_module: the :class:`MRQLoss`.

    Keyword Args:
        interval: steps between copies (MR.Q: 250).
        reward_scale_fn: returns the new ``reward_scale`` (MR.Q: mean ``|r|`` in the buffer).
    """

    def __init__(
        self,
        loss_module: MRQLoss,
        *,
        interval: int = 250,
        reward_scale_fn: Callable[[], float] | None = None,
    ) -> None:
        if not (isinstance(interval, int) and interval >= 1):
            raise ValueError(f"interval must be an int >= 1, got {interval!r}.")
        super().__init__(loss_module)
        self.interval = interval
        self.reward_scale_fn = reward_scale_fn
        self.counter = 0

    def copy(self) -> None:
        """Copy the online parameters into the targets now (no counter involved)."""
        super().step()

    def step(self) -> bool:
        """Advance one training step; copy (and refresh scales) if due. Returns whether it did."""
        due = self.counter % self.interval == 0
        if due:
            self.copy()
            if self.reward_scale_fn is not None:
                self.loss_module.refresh_reward_scale(self.reward_scale_fn())
        self.counter += 1
        return due

    def _step(self, p_source: torch.Tensor, p_target: torch.Tensor) -> None:
        p_target.data.copy_(p_source.data)
