"""One MR.Q training step, top to bottom, with per-module optimizers and sparse regimes."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import TensorSpec
from torchrl.modules import AdditiveGaussianModule

from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.modules.presets import MODULE_NAMES
from torchrl_mst.objectives import MRQHardUpdate, MRQLoss

__all__ = ["MRQ", "MRQPolicy", "make_mrq_policies"]


class MRQ:
    """MR.Q's training step over an :class:`MRQLoss` and an :class:`MRQReplayBuffer`.

    One call to :meth:`step` (once per environment step after the random phase) does:

    1. every ``target_update_interval`` steps (at 0, 250, ...): copy online -> target
       networks, refresh the reward scales (``reward_scale <- mean |r|`` in the buffer),
       switch the done loss on iff a terminal transition was ever stored, then run
       ``target_update_interval`` encoder updates, each on a fresh batch;
    2. one critic update (grad-norm clip 20) and one actor update on one batch, using the
       first ``value_horizon`` steps of its windows;
    3. write the LAP priorities of that batch back to the buffer.

    Each module has its own (fused) AdamW optimizer and, optionally, a sparse regime
    (:func:`torchrl_mst.sparse.sparsify`): gradients of masked weights are zeroed before
    clipping, and the regime's controller steps right after its optimizer.

    Args:
        loss: the :class:`MRQLoss` holding encoder, critic and actor.
        replay_buffer: where batches come from and priorities go.

    Keyword Args:
        regimes: ``{"encoder" | "critic" | "actor": regime}``; missing modules stay dense.
        lr: learning rates per module (MR.Q: encoder 1e-4, critic 3e-4, actor 3e-4).
        weight_decay: AdamW weight decay (1e-4).
        critic_grad_clip: gradient-norm clip of the critic (20).
        target_update_interval: steps between target copies and encoder bursts (250).
        seed: seed of the sparse controllers' RNG.
    """

    def __init__(
        self,
        loss: MRQLoss,
        replay_buffer: MRQReplayBuffer,
        *,
        regimes: Mapping[str, object] | None = None,
        lr: Mapping[str, float] | None = None,
        weight_decay: float = 1e-4,
        critic_grad_clip: float = 20.0,
        target_update_interval: int = 250,
        seed: int | None = None,
    ) -> None:
        from torchrl_mst.sparse import sparsify

        self.loss = loss
        self.replay_buffer = replay_buffer
        lrs = {"encoder": 1e-4, "critic": 3e-4, "actor": 3e-4} | dict(lr or {})
        unknown = set(regimes or {}) | set(lrs)
        unknown -= set(MODULE_NAMES)
        if unknown:
            raise ValueError(f"Unknown module names {sorted(unknown)}; use {list(MODULE_NAMES)}.")
        self.params = {
            name: list(getattr(loss, f"{name}_params").values(True, True)) for name in MODULE_NAMES
        }
        # fused AdamW: same update rule, one kernel per parameter group. On the CPU it is
        # ~2x faster than the default, and the default's sqrt on masked (exactly zero)
        # exp_avg_sq entries is what made sparse training 20-26% slower there
        # (benchmarks/sparse_overhead.py).
        self.optimizers = {
            name: torch.optim.AdamW(
                self.params[name], lr=lrs[name], weight_decay=weight_decay, fused=True
            )
            for name in MODULE_NAMES
        }
        self.controllers = {}
        for i, (name, regime) in enumerate((regimes or {}).items()):
            module = getattr(loss, name)
            self.controllers[name] = sparsify(
                module, regime, self.optimizers[name], seed=None if seed is None else seed + i
            )
        self.critic_grad_clip = critic_grad_clip
        # Built after sparsify so that the first copy carries the masks' zeros.
        self.target_updater = MRQHardUpdate(
            loss, interval=target_update_interval, reward_scale_fn=replay_buffer.reward_abs_mean
        )
        self.num_steps = 0
        self.burst_metrics: dict[str, float] = {}

    def _update(
        self,
        name: str,
        loss_value: torch.Tensor,
        clip: float | None = None,
        metrics: dict[str, float] | None = None,
    ) -> float:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss_value.backward()
        controller = self.controllers.get(name)
        if controller is not None:
            controller.mask_gradients()  # before clipping: masked grads must not count
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.params[name], clip if clip is not None else float("inf")
        )
        optimizer.step()
        if controller is not None:
            stats = controller.step()
            if stats is not None and metrics is not None:
                metrics.update(stats.as_dict(prefix=f"sparse/{name}/"))
        return float(grad_norm)

    def step(self) -> dict[str, float]:
        """One MR.Q training step.

        Returns:
            Scalar metrics: ``loss/*``, ``grad_norm/*``, ``q/mean``, ``time/*`` and, on mask
            updates, ``sparse/<module>/*``. The encoder's metrics (``loss/encoder*``,
            ``grad_norm/encoder``, ``reward_scale/*``) come from the latest burst, so every
            step reports every metric.
        """
        metrics: dict[str, float] = {}
        t0 = time.perf_counter()
        if self.target_updater.step():
            # MR.Q's done term is on once any terminal transition has been stored.
            self.loss.use_done_loss.fill_(self.replay_buffer.any_terminal())
            burst: dict[str, float] = {}
            for _ in range(self.target_updater.interval):
                loss_encoder, meta = self.loss.encoder_loss(self.replay_buffer.sample())
                burst["grad_norm/encoder"] = self._update("encoder", loss_encoder, None, metrics)
            burst["loss/encoder"] = float(loss_encoder.detach())
            burst.update({f"loss/encoder_{k}": float(v) for k, v in meta.items()})
            burst["reward_scale/online"] = float(self.loss.reward_scale)
            burst["reward_scale/target"] = float(self.loss.target_reward_scale)
            self.burst_metrics = burst
        metrics.update(self.burst_metrics)
        t1 = time.perf_counter()
        batch = self.replay_buffer.sample()
        loss_critic, critic_meta = self.loss.critic_loss(batch)
        metrics["grad_norm/critic"] = self._update(
            "critic", loss_critic, self.critic_grad_clip, metrics
        )
        loss_actor, _ = self.loss.actor_loss(batch)
        metrics["grad_norm/actor"] = self._update("actor", loss_actor, None, metrics)
        self.write_priorities(batch)
        self.num_steps += 1
        metrics.update(
            {
                "loss/critic": float(loss_critic.detach()),
                "loss/actor": float(loss_actor.detach()),
                "q/mean": float(critic_meta["q"].mean()),
                "time/encoder_burst": t1 - t0,
                "time/critic_actor": time.perf_counter() - t1,
            }
        )
        return metrics

    def write_priorities(self, batch: TensorDictBase) -> None:
        """Write the batch's LAP priorities (``td_error``) to the windows' start indices."""
        key = self.loss.tensor_keys.priority
        self.replay_buffer.update_priority(batch["index"][:, 0], batch[key][:, 0])

    def state_dict(self) -> dict:
        """Optimizers, sparse controllers, target-update counter and step count."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "controllers": {k: c.state_dict() for k, c in self.controllers.items()},
            "target_updater": self.target_updater.state_dict(),
            "num_steps": self.num_steps,
            "burst_metrics": self.burst_metrics,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved (the loss and buffer are restored apart)."""
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        if set(state["controllers"]) != set(self.controllers):
            raise ValueError(
                f"Checkpoint has sparse controllers for {sorted(state['controllers'])} but this "
                f"run sparsifies {sorted(self.controllers)}: it comes from another config."
            )
        for k, c in self.controllers.items():
            c.load_state_dict(state["controllers"][k])
        self.target_updater.load_state_dict(state["target_updater"])
        self.num_steps = state["num_steps"]
        self.burst_metrics = dict(state.get("burst_metrics", {}))


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
    """
    policy = TensorDictModule(
        MRQPolicy(encoder, actor), in_keys=[observation_key], out_keys=[action_key]
    )
    noise = AdditiveGaussianModule(
        action_spec, sigma_init=1.0, sigma_end=1.0, std=noise_std, action_key=action_key
    )
    return policy, TensorDictSequential(policy, noise)
