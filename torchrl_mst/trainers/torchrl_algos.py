"""SAC, TD3 and PPO with MST on TorchRL's own, unmodified losses, collectors and buffers.

``torchrl-mst train --algo sac|td3|ppo`` builds one of the runs below and hands it to the
loop of :mod:`torchrl_mst.trainers.loop` (run directory, evaluation, diagnostics,
checkpoints and resume are shared with MR.Q).

* Networks: the critic and the actor are :func:`~torchrl_mst.modules.build_mlp` MLPs of the
  recipe's block types (MST: critic type 6, actor type 5; baseline: 4 and 3) at the
  ``--scale`` preset's hidden width and block count. There is no shared trunk (no encoder):
  ``--encoder`` is refused.
* Losses: :class:`torchrl.objectives.SACLoss`, :class:`~torchrl.objectives.TD3Loss`,
  :class:`~torchrl.objectives.ClipPPOLoss`, as TorchRL ships them. The recipe's regimes go
  on the networks the loss trains (``qvalue_network`` / ``critic_network`` and
  ``actor_network``) through :func:`~torchrl_mst.sparse.sparsify`, one controller per
  optimizer; target parameters are tied to the masks.
* Hyper-parameters: :data:`ALGO_DEFAULTS`, with the source of each value.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.modules import (
    Actor,
    AdditiveGaussianModule,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
)
from torchrl.objectives import ClipPPOLoss, SACLoss, SoftUpdate, TD3Loss, ValueEstimators

from torchrl_mst.config import TrainConfig
from torchrl_mst.diagnostics import capture_activations, capture_inputs, dormant_ratio, param_norm
from torchrl_mst.diagnostics import stable_rank as _stable_rank
from torchrl_mst.envs import make_env, parse_env_name
from torchrl_mst.modules import build_mlp
from torchrl_mst.modules.presets import get_scale_preset
from torchrl_mst.recipes import parse_regime, resolve_recipe
from torchrl_mst.sparse import sparsify
from torchrl_mst.trainers.checkpoint import env_rng_state
from torchrl_mst.trainers.evaluation import evaluate_policy

__all__ = ["ALGOS", "ALGO_DEFAULTS", "LOSS_NETWORKS", "AlgoDefaults", "TorchRLRun"]

#: Algorithms of ``torchrl-mst train --algo``.
ALGOS: tuple[str, ...] = ("mrq", "sac", "td3", "ppo")

#: The loss's network name of each MST role, per algorithm.
LOSS_NETWORKS: dict[str, dict[str, str]] = {
    "sac": {"critic": "qvalue_network", "actor": "actor_network"},
    "td3": {"critic": "qvalue_network", "actor": "actor_network"},
    "ppo": {"critic": "critic_network", "actor": "actor_network"},
}


@dataclass(frozen=True)
class AlgoDefaults:
    """Hyper-parameters of one algorithm; ``source`` names where they come from."""

    lr: float
    gamma: float = 0.99
    tau: float = 0.005
    policy_delay: int = 1
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    exploration_noise: float = 0.1
    rollout_steps: int = 2048
    minibatch_size: int = 64
    epochs: int = 10
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.2
    entropy_coeff: float = 0.0
    critic_coeff: float = 0.5
    max_grad_norm: float | None = None
    source: str = ""


#: Per-algorithm defaults (``--learning-rate``, ``--gamma``, ``--rollout-steps`` override).
ALGO_DEFAULTS: dict[str, AlgoDefaults] = {
    "sac": AlgoDefaults(
        lr=3e-4,
        source="TorchRL sota-implementations/sac/config.yaml (lr 3e-4, gamma 0.99, polyak "
        "0.995 = tau 0.005, batch 256, one update per env step, auto-tuned alpha)",
    ),
    "td3": AlgoDefaults(
        lr=3e-4,
        policy_delay=2,
        source="CleanRL td3_continuous_action.py (lr 3e-4, gamma 0.99, tau 0.005, batch 256, "
        "policy noise 0.2 clipped at 0.5, exploration noise 0.1, policy delay 2)",
    ),
    "ppo": AlgoDefaults(
        lr=3e-4,
        max_grad_norm=0.5,
        source="CleanRL ppo_continuous_action.py (lr 3e-4, 2048 steps per rollout, 10 epochs "
        "of 64-sample minibatches, gamma 0.99, GAE lambda 0.95, clip 0.2, value coeff 0.5, "
        "no entropy bonus, grad-norm clip 0.5, here per network; without its lr annealing "
        "and reward/observation normalisation)",
    ),
}

DIAGNOSTICS_BATCH = 256


class _QNetwork(nn.Module):
    """``Q(s, a)``: an MLP over ``[observation, action]``; ``mlp.head`` gives the value."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([observation, action], -1))


class _GaussianNetwork(nn.Module):
    """``obs -> (loc, scale)`` for a TanhNormal policy (SAC, PPO)."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.mlp = mlp
        self.extractor = NormalParamExtractor()

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.extractor(self.mlp(observation))


class _TanhNetwork(nn.Module):
    """``obs -> tanh(mlp(obs))``: TD3's deterministic policy."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.mlp = mlp
        self.squash = nn.Tanh()

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.squash(self.mlp(observation))


class _Networks(nn.Module):
    """The trained networks, as children ``critic`` and ``actor`` (for parameter counts)."""

    def __init__(self, critic: nn.Module, actor: nn.Module) -> None:
        super().__init__()
        self.critic = critic
        self.actor = actor


class TorchRLRun:
    """One SAC/TD3/PPO run: env, networks, TorchRL loss, optimizers, sparse controllers.

    The interface the loop of :mod:`torchrl_mst.trainers.loop` drives (shared with MR.Q's
    run): ``frames_per_batch``, ``random_steps``, ``update(batch)``, ``note_env_state``,
    ``evaluate``, ``diagnostics``, ``state_dict`` / ``load_state_dict``.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.algo = cfg.algo
        if self.algo not in LOSS_NETWORKS:
            raise ValueError(f"TorchRLRun runs sac, td3 or ppo, got algo {self.algo!r}.")
        if cfg.encoder is not None or cfg.encoder_type is not None:
            raise ValueError(
                f"--algo {self.algo} has no encoder (no shared trunk): drop --encoder / "
                "--encoder-type; the MST recipe applies to --critic and --actor."
            )
        hp = ALGO_DEFAULTS[self.algo]
        if cfg.gamma is not None:
            hp = dataclasses.replace(hp, gamma=cfg.gamma)
        self.hp = hp
        self.lr = cfg.learning_rate if cfg.learning_rate is not None else hp.lr
        if threads := cfg.threads:
            torch.set_num_threads(threads)
        torch.manual_seed(cfg.seed)
        import random

        import numpy as np

        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        spec = parse_env_name(cfg.env)
        self.env = make_env(spec, seed=cfg.seed, device=cfg.device)
        self.eval_env = make_env(spec, seed=cfg.seed + 100, device=cfg.device)
        from torchrl_mst.trainers.loop import _check_supported

        _check_supported(cfg.env, self.env)
        obs_dim = self.env.observation_spec["observation"].shape[-1]
        act_dim = self.env.action_spec.shape[-1]
        action_spec = self.env.action_spec
        plans = resolve_recipe(
            cfg.recipe,
            {"critic": cfg.critic, "actor": cfg.actor},
            {"critic": cfg.critic_type, "actor": cfg.actor_type},
        )
        self.plans = {k: plans[k] for k in ("critic", "actor")}
        preset = get_scale_preset(cfg.scale)
        width, blocks = preset.widths()["hidden"], preset.num_blocks
        ctype, atype = self.plans["critic"].block_type, self.plans["actor"].block_type
        device = torch.device(cfg.device)

        if self.algo == "ppo":
            self.random_steps = 0
            self.frames_per_batch = cfg.rollout_steps or hp.rollout_steps
            if cfg.steps % self.frames_per_batch:
                raise ValueError(
                    f"--algo ppo: --steps ({cfg.steps}) must be a multiple of --rollout-steps "
                    f"({self.frames_per_batch})."
                )
            critic_net: nn.Module = _ValueNetwork(build_mlp(obs_dim, 1, width, blocks, ctype))
            critic = ValueOperator(critic_net, in_keys=["observation"])
        else:
            self.random_steps = cfg.random_steps
            self.frames_per_batch = 1
            critic_net = _QNetwork(build_mlp(obs_dim + act_dim, 1, width, blocks, ctype))
            critic = ValueOperator(critic_net, in_keys=["observation", "action"])
        if self.algo == "td3":
            actor_net: nn.Module = _TanhNetwork(build_mlp(obs_dim, act_dim, width, blocks, atype))
            actor: nn.Module = Actor(actor_net, in_keys=["observation"], spec=action_spec)
        else:
            actor_net = _GaussianNetwork(build_mlp(obs_dim, 2 * act_dim, width, blocks, atype))
            actor = ProbabilisticActor(
                TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
                in_keys=["loc", "scale"],
                distribution_class=TanhNormal,
                spec=action_spec,
                return_log_prob=True,
            )
        critic, actor = critic.to(device), actor.to(device)
        self.networks = _Networks(critic, actor)

        if self.algo == "sac":
            self.loss: Any = SACLoss(actor, critic, action_spec=action_spec)
            self.loss.make_value_estimator(ValueEstimators.TD0, gamma=hp.gamma)
        elif self.algo == "td3":
            self.loss = TD3Loss(
                actor,
                critic,
                action_spec=action_spec,
                policy_noise=hp.policy_noise,
                noise_clip=hp.noise_clip,
            )
            self.loss.make_value_estimator(ValueEstimators.TD0, gamma=hp.gamma)
        else:
            self.loss = ClipPPOLoss(
                actor,
                critic,
                clip_epsilon=hp.clip_epsilon,
                entropy_bonus=hp.entropy_coeff > 0,
                entropy_coeff=hp.entropy_coeff,
                critic_coeff=hp.critic_coeff,
                loss_critic_type="l2",
                normalize_advantage=True,
            )
            self.loss.make_value_estimator(ValueEstimators.GAE, gamma=hp.gamma, lmbda=hp.gae_lambda)
        self.updater = SoftUpdate(self.loss, tau=hp.tau) if self.algo != "ppo" else None

        names = LOSS_NETWORKS[self.algo]
        # fused Adam: the foreach one is slow on the exact zeros of masked weights on CPU
        fused = device.type in ("cpu", "cuda")
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            role: torch.optim.Adam(
                getattr(self.loss, f"{names[role]}_params").values(True, True),
                lr=self.lr,
                fused=fused,
            )
            for role in ("critic", "actor")
        }
        if self.algo == "sac":
            self.optimizers["alpha"] = torch.optim.Adam(
                [self.loss.log_alpha], lr=self.lr, fused=fused
            )
        updates = self._optimizer_steps()
        self.controllers = {}
        for i, role in enumerate(("critic", "actor")):
            regime = parse_regime(
                self.plans[role].regime, total_steps=updates[role], **cfg.regime_options()
            )
            if not regime.is_dense:
                self.controllers[role] = sparsify(
                    self.loss, {names[role]: regime}, self.optimizers[role], seed=cfg.seed + i
                )

        self.replay: TensorDictReplayBuffer | None = None
        if self.algo != "ppo":
            self.replay = TensorDictReplayBuffer(
                storage=LazyTensorStorage(cfg.buffer_size, device=device),
                batch_size=cfg.batch_size,
            )
        self.policy = actor
        if self.algo == "td3":
            self.explore: nn.Module = TensorDictSequential(
                actor,
                AdditiveGaussianModule(
                    action_spec,
                    sigma_init=hp.exploration_noise,
                    sigma_end=hp.exploration_noise,
                    annealing_num_steps=1,
                ),
            )
        else:
            self.explore = actor
        self.diag_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.updates = 0
        self.wall_time = 0.0
        self.last_metrics: dict[str, float] = {}
        self._last_obs: torch.Tensor | None = None
        self.env_rng_before_reset = env_rng_state(self.env)
        self._record_resets()

    # -- schedule ---------------------------------------------------------------------
    def _optimizer_steps(self) -> dict[str, int]:
        """Optimizer steps of the critic and the actor over the run (regime schedules)."""
        cfg, hp = self.cfg, self.hp
        if self.algo == "ppo":
            per_batch = hp.epochs * math.ceil(self.frames_per_batch / hp.minibatch_size)
            n = max(1, cfg.steps // self.frames_per_batch * per_batch)
            return {"critic": n, "actor": n}
        n = max(1, cfg.steps - cfg.random_steps)
        return {"critic": n, "actor": max(1, n // hp.policy_delay)}

    def _record_resets(self) -> None:
        """Keep the env RNG state from just before each reset (for an exact resume).

        A PPO batch holds several episodes; the collector resets the env after the last
        frame of a batch that ends an episode, and a resumed collector must draw the same
        initial state from the same RNG state.
        """
        base = self.env.base_env
        original = base._reset

        def _reset(*args: Any, **kwargs: Any) -> Any:
            self._rng_before_reset = env_rng_state(self.env)
            return original(*args, **kwargs)

        self._rng_before_reset = self.env_rng_before_reset
        base._reset = _reset

    def note_env_state(self, done: bool) -> None:
        """Called after each batch: remember the env RNG a resume must restore."""
        if self.frames_per_batch == 1:
            if not done:
                self.env_rng_before_reset = env_rng_state(self.env)
        elif done:
            self.env_rng_before_reset = self._rng_before_reset

    # -- updates ----------------------------------------------------------------------
    def update(self, batch: Any) -> dict[str, float] | None:
        """Store ``batch`` and run the updates that are due; the metrics, or ``None``."""
        if self.algo == "ppo":
            return self._ppo_update(batch)
        assert self.replay is not None
        self.replay.extend(batch.reshape(-1))
        if self.step <= self.random_steps:
            return None
        sample = self.replay.sample().to(self.cfg.device)
        self.updates += 1
        if self.algo == "sac":
            return self._sac_update(sample)
        return self._td3_update(sample)

    def _step(self, role: str, metrics: dict[str, float]) -> None:
        ctl = self.controllers.get(role)
        if ctl is not None:
            ctl.mask_gradients()
        self.optimizers[role].step()
        if ctl is not None:
            stats = ctl.step()
            if stats is not None:
                metrics.update(stats.as_dict(prefix=f"sparse/{role}/"))

    def _sac_update(self, sample: Any) -> dict[str, float]:
        out = self.loss(sample)
        total = out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        total.backward()
        metrics = {
            "loss/critic": float(out["loss_qvalue"].detach()),
            "loss/actor": float(out["loss_actor"].detach()),
            "loss/alpha": float(out["loss_alpha"].detach()),
            "alpha": float(out["alpha"].detach()),
        }
        self._step("critic", metrics)
        self._step("actor", metrics)
        self.optimizers["alpha"].step()
        assert self.updater is not None
        self.updater.step()
        return metrics

    def _td3_update(self, sample: Any) -> dict[str, float]:
        metrics: dict[str, float] = {}
        critic_loss, _ = self.loss.value_loss(sample)
        self.optimizers["critic"].zero_grad(set_to_none=True)
        critic_loss.backward()
        metrics["loss/critic"] = float(critic_loss.detach())
        self._step("critic", metrics)
        if self.updates % self.hp.policy_delay == 0:
            actor_loss, _ = self.loss.actor_loss(sample)
            self.optimizers["actor"].zero_grad(set_to_none=True)
            actor_loss.backward()
            self._step("actor", metrics)
            assert self.updater is not None
            self.updater.step()
            metrics["loss/actor"] = float(actor_loss.detach())
        return metrics

    def _ppo_update(self, batch: Any) -> dict[str, float]:
        hp = self.hp
        batch = batch.to(self.cfg.device)
        self._last_obs = batch["observation"].reshape(-1, batch["observation"].shape[-1])
        with torch.no_grad():
            params = self.loss.critic_network_params.detach()
            self.loss.value_estimator(batch, params=params, target_params=params)
        flat = batch.reshape(-1)
        sums: dict[str, float] = {"loss/actor": 0.0, "loss/critic": 0.0}
        count = 0
        # The grad-norm clip applies to each network apart. CleanRL clips actor and critic
        # jointly, but it also normalises rewards: without that, the critic's gradient (its
        # targets are raw returns) dominates a joint norm and shrinks every actor step (on
        # Pendulum, seed 0, dense PPO went from -1601 to -1231 in 40k steps with a joint clip
        # and to -102 with per-network clips; docs/howto/cross-algo.md).
        groups = [
            [p for g in opt.param_groups for p in g["params"]] for opt in self.optimizers.values()
        ]
        metrics: dict[str, float] = {}
        for _ in range(hp.epochs):
            perm = torch.randperm(flat.shape[0], device=flat.device)
            for idx in perm.split(hp.minibatch_size):
                out = self.loss(flat[idx])
                total = out["loss_objective"] + out["loss_critic"]
                if "loss_entropy" in out.keys():
                    total = total + out["loss_entropy"]
                for opt in self.optimizers.values():
                    opt.zero_grad(set_to_none=True)
                total.backward()
                for ctl in self.controllers.values():
                    ctl.mask_gradients()
                if hp.max_grad_norm is not None:
                    for params in groups:
                        torch.nn.utils.clip_grad_norm_(params, hp.max_grad_norm)
                for role, opt in self.optimizers.items():
                    opt.step()
                    ctl = self.controllers.get(role)
                    if ctl is not None:
                        stats = ctl.step()
                        if stats is not None:
                            metrics.update(stats.as_dict(prefix=f"sparse/{role}/"))
                sums["loss/actor"] += float(out["loss_objective"].detach())
                sums["loss/critic"] += float(out["loss_critic"].detach())
                count += 1
                self.updates += 1
        metrics.update({k: v / max(count, 1) for k, v in sums.items()})
        return metrics

    # -- evaluation and diagnostics ----------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Deterministic-policy returns on the evaluation env."""
        return evaluate_policy(
            self.eval_env, self.policy, self.cfg.eval_episodes, step=self.step,
            wall_time=self.wall_time,
        )

    def _diagnostics_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.replay is None:
            assert self._last_obs is not None
            obs = self._last_obs
            n = obs.shape[0]
            idx = torch.randint(n, (min(DIAGNOSTICS_BATCH, n),), generator=self.diag_generator)
            return obs[idx.to(obs.device)], None
        n = len(self.replay)
        idx = torch.randint(n, (min(DIAGNOSTICS_BATCH, n),), generator=self.diag_generator)
        rows = self.replay.storage[idx].to(self.cfg.device)
        return rows["observation"], rows["action"]

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float]:
        """Stable rank, dormant ratio, norms (and sparsity) of the critic and the actor.

        The critic of SAC/TD3 is measured on member 0 of the loss's stacked copies.
        """
        obs, action = self._diagnostics_batch()
        names = LOSS_NETWORKS[self.algo]
        out: dict[str, float] = {}
        for role in ("critic", "actor"):
            module = getattr(self.loss, names[role])
            params = getattr(self.loss, f"{names[role]}_params")
            if role == "critic" and self.algo != "ppo":
                params = params[0]
            inner = _inner(module)
            with params.to_module(module), capture_activations(inner) as acts, capture_inputs(
                inner, "mlp.head"
            ) as ins:
                if role == "critic" and self.algo != "ppo":
                    inner(obs, action)
                else:
                    inner(obs)
                norm = param_norm(params.values(True, True))
            out[f"{role}/stable_rank"] = _stable_rank(ins["mlp.head"])
            out[f"{role}/dormant_ratio"] = dormant_ratio(
                {k: v for k, v in acts.items() if k.startswith("mlp.")}
            )
            out[f"{role}/param_norm"] = norm
            ctl = self.controllers.get(role)
            if ctl is not None:
                out[f"{role}/sparsity"] = float(ctl.sparsity())
                last = ctl.last_update
                out[f"{role}/mask_change"] = 0.0 if last is None else last.mask_change_fraction
        return out

    # -- checkpoints ------------------------------------------------------------------
    def _replay_state(self) -> dict[str, Any] | None:
        if self.replay is None:
            return None
        n = len(self.replay)
        return {
            "rows": self.replay.storage[torch.arange(n)] if n else None,
            "cursor": int(self.replay._writer._cursor),
        }

    def _load_replay(self, state: dict[str, Any] | None) -> None:
        if self.replay is None or state is None:
            return
        if state["rows"] is not None:
            self.replay.extend(state["rows"])
        self.replay._writer._cursor = state["cursor"]

    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-identical resume needs (global RNGs are added by the loop)."""
        from torchrl_mst.trainers.checkpoint import global_rng_state

        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "updates": self.updates,
            "wall_time": self.wall_time,
            "loss": self.loss.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "controllers": {k: ctl.state_dict() for k, ctl in self.controllers.items()},
            "replay": self._replay_state(),
            "exploration": self.explore.state_dict(),
            "rng": global_rng_state(),
            "diag_generator": self.diag_generator.get_state(),
            "env_rng_before_reset": self.env_rng_before_reset,
            "eval_env_rng": env_rng_state(self.eval_env),
            "last_metrics": self.last_metrics,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the loop restores the global RNGs afterwards."""
        from torchrl_mst.trainers.checkpoint import set_env_rng_state

        self.step = state["step"]
        self.updates = state["updates"]
        self.wall_time = state["wall_time"]
        self.loss.load_state_dict(state["loss"])
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, ctl in self.controllers.items():
            ctl.load_state_dict(state["controllers"][k])
        self._load_replay(state["replay"])
        self.explore.load_state_dict(state["exploration"])
        self.diag_generator.set_state(state["diag_generator"])
        self.env_rng_before_reset = state["env_rng_before_reset"]
        set_env_rng_state(self.env, self.env_rng_before_reset)
        set_env_rng_state(self.eval_env, state["eval_env_rng"])
        self.global_rng = state["rng"]
        self.last_metrics = state["last_metrics"]


class _ValueNetwork(nn.Module):
    """``V(s)``: PPO's critic."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.mlp(observation)


def _inner(module: nn.Module) -> nn.Module:
    """The plain network inside a TorchRL wrapper (``ValueOperator``, ``Actor``, ...)."""
    for sub in module.modules():
        if isinstance(sub, _QNetwork | _ValueNetwork | _GaussianNetwork | _TanhNetwork):
            return sub
    raise TypeError(f"no torchrl_mst network inside {type(module).__name__}.")
