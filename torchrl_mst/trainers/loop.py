"""The training loop behind ``torchrl-mst train``: collector, MR.Q step, eval, diagnostics.

Outputs in the run directory:

* ``config.json``: the :class:`~torchrl_mst.config.TrainConfig` (reload it to reproduce);
* ``evals.csv``: ``step,return_mean,return_std,return_min,return_max,wall_time``;
* ``diagnostics.csv``: ``step`` then ``<module>/<metric>`` columns;
* ``logs/``: TorchRL logger output (CSV always, TensorBoard / W&B on request);
* ``curves.png``: returns and diagnostics vs agent steps, rewritten after each eval;
* ``checkpoint.pt``: everything a bit-identical resume needs, written atomically.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchrl.collectors import Collector
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_mst.config import TrainConfig
from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.diagnostics import (
    capture_activations,
    capture_inputs,
    dormant_ratio,
    param_norm,
    stable_rank,
)
from torchrl_mst.envs import make_env, parse_env_name
from torchrl_mst.modules import (
    MRQNetworks,
    count_parameters,
    make_mrq_networks,
    make_mrq_policies,
)
from torchrl_mst.objectives import MRQLoss
from torchrl_mst.recipes import parse_regime, resolve_recipe
from torchrl_mst.trainers.checkpoint import (
    env_rng_state,
    global_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_env_rng_state,
    set_global_rng_state,
)
from torchrl_mst.trainers.mrq import MRQ

__all__ = ["RunResult", "train"]

EVAL_COLUMNS = ["step", "return_mean", "return_std", "return_min", "return_max", "wall_time"]
DIAGNOSTICS_BATCH = 256


@dataclass
class RunResult:
    """What :func:`train` returns: final eval row, run directory, number of agent steps."""

    final_eval: dict[str, float]
    out_dir: Path
    steps: int


class _Run:
    """Everything one run holds; built identically for a fresh start and a resume."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        spec = parse_env_name(cfg.env)
        self.env = make_env(spec, seed=cfg.seed, device=cfg.device)
        self.eval_env = make_env(spec, seed=cfg.seed + 100, device=cfg.device)
        _check_supported(cfg.env, self.env)
        obs_dim = self.env.observation_spec["observation"].shape[-1]
        action_dim = self.env.action_spec.shape[-1]
        plans = resolve_recipe(
            cfg.recipe,
            {"encoder": cfg.encoder, "critic": cfg.critic, "actor": cfg.actor},
            {"encoder": cfg.encoder_type, "critic": cfg.critic_type, "actor": cfg.actor_type},
        )
        self.plans = plans
        self.networks: MRQNetworks = make_mrq_networks(
            obs_dim,
            action_dim,
            scale=cfg.scale,
            encoder_type=plans["encoder"].block_type,
            critic_type=plans["critic"].block_type,
            actor_type=plans["actor"].block_type,
            device=cfg.device,
        )
        self.loss = MRQLoss(
            self.networks.encoder, self.networks.critic, self.networks.actor, use_done_loss=False
        )
        self.replay = MRQReplayBuffer(
            cfg.buffer_size, horizon=5, batch_size=cfg.batch_size, device=cfg.device, seed=cfg.seed
        )
        train_steps = max(1, cfg.steps - cfg.random_steps)
        regimes = {
            name: parse_regime(plan.regime, total_steps=train_steps, **cfg.regime_options())
            for name, plan in plans.items()
        }
        self.mrq = MRQ(
            self.loss,
            self.replay,
            regimes=regimes,
            target_update_interval=cfg.target_update_interval,
            seed=cfg.seed,
        )
        self.policy, self.explore = make_mrq_policies(
            self.networks.encoder, self.networks.actor, self.env.action_spec
        )
        self.diag_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.wall_time = 0.0
        self.env_rng_before_reset = env_rng_state(self.env)
        self.last_metrics: dict[str, float] = {}

    # -- evaluation and diagnostics -------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        returns = []
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            for _ in range(self.cfg.eval_episodes):
                rollout = self.eval_env.rollout(
                    100_000, self.policy, break_when_any_done=True, auto_cast_to_device=True
                )
                returns.append(float(rollout["next", "reward"].sum()))
        r = torch.tensor(returns)
        return {
            "step": self.step,
            "return_mean": float(r.mean()),
            "return_std": float(r.std(unbiased=False)),
            "return_min": float(r.min()),
            "return_max": float(r.max()),
            "wall_time": round(self.wall_time, 3),
        }

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float]:
        n = len(self.replay)
        idx = torch.randint(n, (min(DIAGNOSTICS_BATCH, n),), generator=self.diag_generator)
        batch = self.replay.storage[idx].to(self.cfg.device)
        obs, action = batch["observation"], batch["action"]
        enc, critic, actor = self.networks.encoder, self.networks.critic, self.networks.actor
        out: dict[str, float] = {}
        with capture_activations(enc) as enc_acts:
            zs = enc.zs(obs)
            zsa = enc.zsa(zs, action)
        with capture_activations(critic) as critic_acts, capture_inputs(critic, "q1.head") as cin:
            critic(zsa)
        with capture_activations(actor) as actor_acts, capture_inputs(actor, "policy.head") as ain:
            actor(zs)
        out["encoder/stable_rank"] = stable_rank(zs)
        out["critic/stable_rank"] = stable_rank(cin["q1.head"])
        out["actor/stable_rank"] = stable_rank(ain["policy.head"])
        for name, acts in (("encoder", enc_acts), ("critic", critic_acts), ("actor", actor_acts)):
            out[f"{name}/dormant_ratio"] = dormant_ratio(acts)
            out[f"{name}/param_norm"] = param_norm(getattr(self.networks, name))
            out[f"{name}/grad_norm"] = self.last_metrics.get(f"grad_norm/{name}", math.nan)
            controller = self.mrq.controllers.get(name)
            if controller is not None and not _is_dense(controller):
                out[f"{name}/sparsity"] = float(controller.sparsity())
                last = controller.last_update
                out[f"{name}/mask_change"] = 0.0 if last is None else last.mask_change_fraction
        return out

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "wall_time": self.wall_time,
            "loss": self.loss.state_dict(),
            "mrq": self.mrq.state_dict(),
            "replay": self.replay.state_dict(),
            "exploration": self.explore.state_dict(),
            "rng": global_rng_state(),
            "diag_generator": self.diag_generator.get_state(),
            "env_rng_before_reset": self.env_rng_before_reset,
            "eval_env_rng": env_rng_state(self.eval_env),
            "last_metrics": self.last_metrics,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.wall_time = state["wall_time"]
        self.loss.load_state_dict(state["loss"])
        self.mrq.load_state_dict(state["mrq"])
        self.replay.load_state_dict(state["replay"])
        self.explore.load_state_dict(state["exploration"])
        self.diag_generator.set_state(state["diag_generator"])
        self.env_rng_before_reset = state["env_rng_before_reset"]
        # The collector built next resets the env once: from this state, that reset draws
        # the same initial state the uninterrupted run drew after the checkpointed episode.
        set_env_rng_state(self.env, self.env_rng_before_reset)
        set_env_rng_state(self.eval_env, state["eval_env_rng"])
        # The global RNGs are restored by `train` once the collector is built: building it
        # runs the exploration policy once, which draws noise.
        self.global_rng = state["rng"]
        self.last_metrics = state["last_metrics"]


def _check_supported(name: str, env: Any) -> None:
    from torchrl.data import Bounded

    obs_spec = env.observation_spec.get("observation", None)
    if obs_spec is None or len(obs_spec.shape) != 1:
        raise ValueError(
            f"{name}: the trainer needs a flat vector 'observation' (got observation keys "
            f"{list(env.observation_spec.keys())}); pixel and dict observations are not "
            "supported yet. Use a state-based task or flatten it with a TorchRL transform."
        )
    if not isinstance(env.action_spec, Bounded) or not env.action_spec.dtype.is_floating_point:
        raise ValueError(
            f"{name}: the trainer supports continuous (bounded) actions only, got "
            f"{type(env.action_spec).__name__}; MR.Q's discrete variant is not wired in yet."
        )


def _is_dense(controller: Any) -> bool:
    return all(regime.is_dense for regime in controller.regimes.values())


def _prepare_out_dir(cfg: TrainConfig, out_dir: Path) -> None:
    """Create ``out_dir`` for a new run; refuse one that holds another run."""
    config_path = out_dir / "config.json"
    if config_path.exists():
        existing = json.loads(config_path.read_text())
        if existing != cfg.to_dict():
            diff = {
                k: (existing.get(k), v) for k, v in cfg.to_dict().items() if existing.get(k) != v
            }
            raise FileExistsError(
                f"{out_dir} already holds a run with a different config (saved vs given: {diff}). "
                "Choose another --out, or continue that run with `torchrl-mst train --resume "
                f"{out_dir}`."
            )
        if (out_dir / "checkpoint.pt").exists():
            raise FileExistsError(
                f"{out_dir} already holds this run; continue it with `torchrl-mst train --resume "
                f"{out_dir}` or choose another --out."
            )
        # Same config, killed before its first checkpoint: nothing to resume, start again.
        for name in ("evals.csv", "diagnostics.csv"):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(config_path)


def _truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows written after the checkpoint a resume restarts from."""
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(float(r[0])) <= last_step]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)


def _append_csv(path: Path, row: dict[str, Any], columns: list[str] | None = None) -> None:
    new = not path.exists()
    columns = columns or list(row)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def _make_logger(cfg: TrainConfig, out_dir: Path):
    from torchrl.record.loggers import CSVLogger

    loggers = [CSVLogger(exp_name="logs", log_dir=str(out_dir))]
    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(cfg.logger)
    if package is not None:
        import importlib.util

        if importlib.util.find_spec(package) is None:
            raise ValueError(
                f"--logger {cfg.logger} needs the {package!r} package: "
                f"`pip install 'torchrl-mst[{package}]'` (or use --logger csv)."
            )
    if cfg.logger == "tensorboard":
        from torchrl.record.loggers import TensorboardLogger

        loggers.append(TensorboardLogger(exp_name="tensorboard", log_dir=str(out_dir)))
    elif cfg.logger == "wandb":
        from torchrl.record.loggers import WandbLogger

        loggers.append(WandbLogger(exp_name=out_dir.name, save_dir=str(out_dir)))
    return loggers


def train(
    cfg: TrainConfig | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    stop_after: int | None = None,
) -> RunResult:
    """Train MR.Q with per-module regimes as ``cfg`` says; write outputs to ``out_dir``.

    Args:
        cfg: the run's config; ``None`` with ``resume=True`` reloads ``out_dir/config.json``.
        out_dir: the run directory (refused if it holds a different config).

    Keyword Args:
        resume: continue the run in ``out_dir`` from its last checkpoint. The result is the
            same as an uninterrupted run (same seed, CPU).
        quiet: no progress bar, log lines only.
        stop_after: stop (as if killed) after this many agent steps, right after the
            checkpoint taken there; used to test resuming.
    """
    out_dir = Path(out_dir)
    if resume:
        if not (out_dir / "config.json").exists():
            raise FileNotFoundError(
                f"--resume {out_dir}: no run there (no config.json); start it without --resume."
            )
        saved = TrainConfig.load(out_dir / "config.json")
        if cfg is not None and cfg.to_dict() != saved.to_dict():
            raise FileExistsError(
                f"--resume {out_dir}: the run there has a different config; resume it without "
                "other flags, or start a new run in another --out."
            )
        cfg = saved
    if cfg is None:
        raise ValueError("Pass a TrainConfig, or resume=True to reload the saved one.")
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and not ckpt_path.exists():
        raise FileNotFoundError(
            f"--resume {out_dir}: it was stopped before its first checkpoint; start it again "
            f"with the same flags and --out {out_dir} (nothing is lost)."
        )
    run = _Run(cfg)  # validates every choice before anything is written
    if not resume:
        _prepare_out_dir(cfg, out_dir)
    loggers = _make_logger(cfg, out_dir)
    if resume:
        run.load_state_dict(load_checkpoint(ckpt_path))
        _truncate_csv(out_dir / "evals.csv", run.step)
        _truncate_csv(out_dir / "diagnostics.csv", run.step)
        if run.step >= cfg.steps:
            raise ValueError(
                f"--resume {out_dir}: the run already finished ({run.step} steps); its results "
                "are in evals.csv and curves.png."
            )
    counts = count_parameters(run.networks)
    if not quiet or run.step == 0:
        sizes = ", ".join(f"{k} {v['total'] / 1e6:.3f}M" for k, v in counts.items())
        plan = ", ".join(f"{k}={p.regime}/type {p.block_type}" for k, p in run.plans.items())
        print(f"[torchrl-mst] {cfg.env} seed {cfg.seed}: {plan}; parameters: {sizes}", flush=True)

    def log(metrics: dict[str, float]) -> None:
        for logger in loggers:
            for k, v in metrics.items():
                if isinstance(v, int | float) and math.isfinite(v):
                    logger.log_scalar(k, v, step=run.step)

    def record_eval() -> dict[str, float]:
        row = run.evaluate()
        _append_csv(out_dir / "evals.csv", row, EVAL_COLUMNS)
        log({"eval/return_mean": row["return_mean"]})
        _plot(out_dir)
        return row

    last_eval = None
    if run.step == 0:
        last_eval = record_eval()
    remaining = cfg.steps - run.step
    random_left = max(0, cfg.random_steps - run.step)
    collector = Collector(
        run.env,
        run.explore,
        frames_per_batch=1,
        total_frames=remaining,
        init_random_frames=random_left or None,
        auto_register_policy_transforms=False,
        device=cfg.device,
    )
    if resume:
        set_global_rng_state(run.global_rng)
    progress = _Progress(cfg.steps, run.step, quiet)
    checkpoint_due = False
    t_start = time.perf_counter() - run.wall_time
    try:
        for batch in collector:
            run.step += 1
            run.replay.extend(batch.reshape(-1))
            done = bool(batch["next", "done"].any())
            if not done:
                run.env_rng_before_reset = env_rng_state(run.env)
            if run.step > cfg.random_steps:
                run.last_metrics = run.mrq.step()
                if run.step % 1000 == 0:
                    log(run.last_metrics)
                else:  # mask updates are rare: log them whenever they happen
                    log({k: v for k, v in run.last_metrics.items() if k.startswith("sparse/")})
            run.wall_time = time.perf_counter() - t_start
            if run.step % cfg.diagnostics_every == 0 and run.step > cfg.random_steps:
                diag = {"step": run.step, **run.diagnostics()}
                _append_diagnostics(out_dir / "diagnostics.csv", diag)
                log({f"diagnostics/{k}": v for k, v in diag.items() if k != "step"})
            if run.step % cfg.eval_every == 0 or run.step == cfg.steps:
                last_eval = record_eval()
            if run.step % cfg.checkpoint_every == 0:
                checkpoint_due = True
            if checkpoint_due and (done or run.step == cfg.steps):
                save_checkpoint(run.state_dict(), ckpt_path)
                checkpoint_due = False
                if stop_after is not None and run.step >= stop_after:
                    break
            progress.update(run.step, last_eval)
    finally:
        collector.shutdown()
        progress.close()
    _plot(out_dir)
    return RunResult(dict(last_eval or {}), out_dir, run.step)


def _append_diagnostics(path: Path, row: dict[str, float]) -> None:
    columns = None
    if path.exists():
        with path.open() as f:
            columns = next(csv.reader(f), None)
    _append_csv(path, row, columns)


def _plot(out_dir: Path) -> None:
    from torchrl_mst.plots import plot_run

    plot_run(out_dir)


class _Progress:
    """tqdm bar with steps/s, last eval return and ETA; a log line every 5% when quiet."""

    def __init__(self, total: int, start: int, quiet: bool) -> None:
        self.quiet = quiet
        self.total = total
        self.next_log = start
        self.t0 = time.perf_counter()
        self.start = start
        self.bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, step: int, last_eval: dict[str, float] | None) -> None:
        ret = None if last_eval is None else last_eval["return_mean"]
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if ret is not None:
                self.bar.set_postfix(eval_return=f"{ret:.1f}", refresh=False)
        elif step >= self.next_log or step == self.total:
            now = time.perf_counter()
            # rate since the previous line: the random phase is much faster than training
            rate = (step - self.start) / max(now - self.t0, 1e-9)
            self.start, self.t0 = step, now
            eta = (self.total - step) / max(rate, 1e-9)
            print(
                f"[torchrl-mst] step {step}/{self.total} ({rate:.1f} steps/s, ETA {eta / 60:.1f} "
                f"min) last eval return {ret if ret is None else round(ret, 1)}",
                flush=True,
            )
            self.next_log = step + max(1, self.total // 20)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
