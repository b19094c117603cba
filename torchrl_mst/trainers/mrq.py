"""MR.Q's update (:class:`MRQ`): one method, :meth:`MRQ.step`, reads top to bottom."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDictBase

from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.modules.presets import MODULE_NAMES
from torchrl_mst.objectives import MRQHardUpdate, MRQLoss
from torchrl_mst.sparse import Regime, SparseController, sparsify
from torchrl_mst.trainers import metrics as M

__all__ = ["MRQ"]


class MRQ:
    """MR.Q's training step over an :class:`MRQLoss` and an :class:`MRQReplayBuffer`.

    :meth:`step` (once per environment step after the random phase) does, in this order,
    as the release's ``Agent.train()``:

    1. every ``target_update_interval`` steps (at 0, 250, ...): copy online -> target
       networks; swap the reward scales (``target <- online``, ``online <- mean |r|`` in the
       buffer); switch the done loss on iff a terminal transition was ever stored; run
       ``target_update_interval`` encoder updates, each on a fresh batch;
    2. one critic update (grad-norm clip 20) on a fresh batch (its first ``value_horizon``
       steps);
    3. one actor update on the same batch;
    4. write the LAP priorities of that batch back to the buffer.

    Each module has its own (fused) AdamW optimizer and, optionally, a sparse regime applied
    through the loss (:func:`torchrl_mst.sparse.sparsify`: masks in ``loss.sparse_masks``,
    targets tied): gradients of masked weights are zeroed before clipping, and the regime's
    controller steps right after its optimizer.

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
        compile: run the three losses (forward and backward) through ``torch.compile``.
            Masks, clipping, optimizer steps and RigL topology updates stay eager. Off by
            default; the compiled losses give the eager numbers up to float reassociation
            (``tests/trainers/test_mrq_step.py``).
        autocast: run the three losses' forward passes under ``torch.autocast`` in this
            dtype (``torch.bfloat16``); backward follows the forward's dtypes, weights,
            gradients and optimizer states stay fp32. ``None`` (default): no autocast. Its
            effect on the parity vectors is in ``docs/reference/benchmarks.md``.
    """

    def __init__(
        self,
        loss: MRQLoss,
        replay_buffer: MRQReplayBuffer,
        *,
        regimes: Mapping[str, Regime] | None = None,
        lr: Mapping[str, float] | None = None,
        weight_decay: float = 1e-4,
        critic_grad_clip: float = 20.0,
        target_update_interval: int = 250,
        seed: int | None = None,
        compile: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.loss = loss
        self.replay_buffer = replay_buffer
        lrs = {"encoder": 1e-4, "critic": 3e-4, "actor": 3e-4} | dict(lr or {})
        unknown = set(regimes or {}) | set(lrs)
        unknown -= set(MODULE_NAMES)
        if unknown:
            raise ValueError(f"Unknown module names {sorted(unknown)}; use {list(MODULE_NAMES)}.")
        if not (isinstance(target_update_interval, int) and target_update_interval >= 1):
            raise ValueError(
                f"target_update_interval must be an int >= 1, got {target_update_interval!r}."
            )
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
        self.controllers: dict[str, SparseController] = {
            name: sparsify(
                loss, {name: regime}, self.optimizers[name], seed=None if seed is None else seed + i
            )
            for i, (name, regime) in enumerate((regimes or {}).items())
        }
        self.critic_grad_clip = critic_grad_clip
        self.target_update_interval = target_update_interval
        self.target_copy = MRQHardUpdate(loss, interval=target_update_interval)
        self.num_steps = 0
        self.burst_metrics: dict[str, float] = {}
        self.compiled = compile
        if autocast not in (None, torch.bfloat16):
            raise ValueError(
                f"autocast must be None or torch.bfloat16 (float16 would need a gradient "
                f"scaler), got {autocast!r}."
            )
        self.autocast = autocast
        self._encoder_loss = loss.encoder_loss
        self._critic_loss = loss.critic_loss
        self._actor_loss = loss.actor_loss
        if compile:
            self._encoder_loss = torch.compile(loss.encoder_loss)
            self._critic_loss = torch.compile(loss.critic_loss)
            self._actor_loss = torch.compile(loss.actor_loss)

    def step(self) -> dict[str, float]:
        """One MR.Q training step (class docstring: the order).

        Returns:
            Scalar metrics named in :mod:`torchrl_mst.trainers.metrics`. The encoder's
            (``loss/encoder*``, ``grad_norm/encoder``, ``reward_scale/*``) come from the
            latest burst, so every step reports every metric.
        """
        loss, buffer, metrics = self.loss, self.replay_buffer, {}
        t0 = time.perf_counter()
        if self.num_steps % self.target_update_interval == 0:
            self.target_copy.copy()  # targets <- online (encoder, critic, actor)
            loss.refresh_reward_scale(buffer.reward_abs_mean())  # target scale <- scale <- new
            loss.use_done_loss.fill_(buffer.any_terminal())  # done term once a terminal exists
            for _ in range(self.target_update_interval):  # the encoder burst
                with self._forward_precision():
                    loss_encoder, terms = self._encoder_loss(buffer.sample())
                encoder_grad_norm = self._update("encoder", loss_encoder, metrics)
            self.burst_metrics = _to_floats({
                M.LOSS_ENCODER: loss_encoder,
                **{M.encoder_term(k): v for k, v in terms.items()},
                M.grad_norm("encoder"): encoder_grad_norm,
                M.REWARD_SCALE_ONLINE: loss.reward_scale,
                M.REWARD_SCALE_TARGET: loss.target_reward_scale,
            })
        metrics.update(self.burst_metrics)
        t1 = time.perf_counter()
        batch = buffer.sample()
        with self._forward_precision():
            loss_critic, critic_out = self._critic_loss(batch)  # also writes td_error
        critic_grad_norm = self._update("critic", loss_critic, metrics, clip=self.critic_grad_clip)
        with self._forward_precision():
            loss_actor, _ = self._actor_loss(batch)
        actor_grad_norm = self._update("actor", loss_actor, metrics)
        self.write_priorities(batch)
        self.num_steps += 1
        metrics.update(_to_floats({
            M.grad_norm("critic"): critic_grad_norm,
            M.grad_norm("actor"): actor_grad_norm,
            M.LOSS_CRITIC: loss_critic,
            M.LOSS_ACTOR: loss_actor,
            M.Q_MEAN: critic_out["q"].mean(),
        }))
        metrics[M.TIME_ENCODER_BURST] = t1 - t0
        metrics[M.TIME_CRITIC_ACTOR] = time.perf_counter() - t1
        return metrics

    def _forward_precision(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` in ``self.autocast``, or nothing."""
        if self.autocast is None:
            return contextlib.nullcontext()
        device_type = next(iter(self.loss.parameters())).device.type
        return torch.autocast(device_type, dtype=self.autocast)

    def _update(
        self,
        name: str,
        loss_value: torch.Tensor,
        metrics: dict[str, float],
        clip: float | None = None,
    ) -> torch.Tensor:
        """Backward, mask gradients, clip, optimizer step, sparse step; returns the grad norm.

        The norm stays a tensor on the device (reading it would wait for the device).
        """
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
            if stats is not None:
                metrics.update(stats.as_dict(prefix=M.sparse_prefix(name)))
        return grad_norm.detach()

    def write_priorities(self, batch: TensorDictBase) -> None:
        """Write the batch's LAP priorities (``td_error``) to the windows' start indices."""
        key = self.loss.tensor_keys.priority
        self.replay_buffer.update_priority(batch["index"][:, 0], batch[key][:, 0])

    def state_dict(self) -> dict[str, Any]:
        """Optimizers, sparse controllers and step count (the loss and buffer are apart)."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "controllers": {k: c.state_dict() for k, c in self.controllers.items()},
            "num_steps": self.num_steps,
            "burst_metrics": self.burst_metrics,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
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
        self.num_steps = state["num_steps"]
        self.burst_metrics = dict(state.get("burst_metrics", {}))


def _to_floats(values: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Scalar tensors as Python floats in ONE device-to-host copy.

    Each ``float(t)`` of a CUDA tensor waits for the device; a step that read its seven
    metrics one by one synchronised seven times.
    """
    flat = torch.stack([v.detach().reshape(()).float() for v in values.values()]).tolist()
    return dict(zip(values, flat, strict=True))
