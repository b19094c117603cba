"""The training loop behind ``torchrl-mst train``: collector, update, eval, diagnostics.

One loop serves every algorithm: MR.Q's run (``_Run`` below) and SAC/TD3/PPO's
(:class:`~torchrl_mst.trainers.torchrl_algos.TorchRLRun`) expose the same small interface
(``frames_per_batch``, ``random_steps``, ``update(batch)``, ``note_env_state(done)``,
``evaluate``, ``diagnostics``, ``state_dict``/``load_state_dict``), and the run directory,
checkpoints and resume are the same for all.

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
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchrl.collectors import Collector

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
    previous_checkpoint_path,
    save_checkpoint,
    set_env_rng_state,
    set_global_rng_state,
)
from torchrl_mst.trainers.evaluation import EVAL_COLUMNS, evaluate_policy
from torchrl_mst.trainers.mrq import MRQ

__all__ = ["RunResult", "TrainingDiverged", "train"]

DIAGNOSTICS_BATCH = 256
CHECKPOINT = "checkpoint.pt"


@dataclass
class RunResult:
    """What :func:`train` returns: final eval row, run directory, number of agent steps."""

    final_eval: dict[str, float]
    out_dir: Path
    steps: int


class _Run:
    """Everything one MR.Q run holds; built identically for a fresh start and a resume."""

    frames_per_batch = 1

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.random_steps = cfg.random_steps
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        spec = parse_env_name(cfg.env)
        self.env = make_env(spec, seed=cfg.seed, device=cfg.device)
        self.eval_env = make_env(spec, seed=cfg.seed + 100, device=cfg.device)
        _check_supported(cfg.env, self.env, discrete_ok=True)
        obs_dim = self.env.observation_spec["observation"].shape[-1]
        action_dim = self.env.action_spec.shape[-1]
        self.discrete = _is_one_hot(self.env.action_spec)
        plans = resolve_recipe(
            cfg.recipe,
            {"encoder": cfg.encoder, "critic": cfg.critic, "actor": cfg.actor},
            {"encoder": cfg.encoder_type, "critic": cfg.critic_type, "actor": cfg.actor_type},
        )
        self.plans = plans
        try:
            self.networks: MRQNetworks = make_mrq_networks(
                obs_dim,
                action_dim,
                scale=cfg.scale,
                encoder_type=plans["encoder"].block_type,
                critic_type=plans["critic"].block_type,
                actor_type=plans["actor"].block_type,
                discrete=self.discrete,
                device=cfg.device,
            )
        except (RuntimeError, MemoryError) as err:
            if "alloc" not in str(err).lower() and not isinstance(err, MemoryError):
                raise
            raise ValueError(
                f"--scale {cfg.scale}: the networks do not fit in memory on {cfg.device} "
                f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); choose a "
                "smaller --scale (see `torchrl-mst presets` for parameter counts)."
            ) from None
        # the loss's own buffers (reward bins, reward scales) live with the networks
        self.loss = MRQLoss(
            self.networks.encoder,
            self.networks.critic,
            self.networks.actor,
            use_done_loss=False,
            multistep_rule=cfg.multistep_rule,  # type: ignore[arg-type]  # checked by the config
        ).to(cfg.device)
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
            compile=cfg.compile,
            autocast=torch.bfloat16 if cfg.autocast == "bf16" else None,
        )
        if cfg.autocast != "none" and torch.device(cfg.device).type == "cpu":
            import warnings

            warnings.warn(
                f"--autocast {cfg.autocast} on the CPU is likely slower, not faster: 14x slower "
                "measured on an x86_64 CPU without bf16 matmul units (docs/reference/"
                "benchmarks.md); it is meant for GPUs.",
                stacklevel=2,
            )
        self.policy, self.explore = make_mrq_policies(
            self.networks.encoder, self.networks.actor, self.env.action_spec
        )
        self.diag_generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.wall_time = 0.0
        self.env_rng_before_reset = env_rng_state(self.env)
        self.last_metrics: dict[str, float] = {}

    # -- the loop's interface ---------------------------------------------------------------
    def note_env_state(self, done: bool) -> None:
        """After each env step: remember the env RNG a resume must restore."""
        if not done:
            self.env_rng_before_reset = env_rng_state(self.env)

    def update(self, batch: Any) -> dict[str, float] | None:
        """Store the transition; one MR.Q step once the random phase is over."""
        self.replay.extend(batch.reshape(-1))
        if self.step > self.cfg.random_steps:
            return self.mrq.step()
        return None

    # -- evaluation and diagnostics -------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Deterministic-policy returns on the evaluation env."""
        return evaluate_policy(
            self.eval_env, self.policy, self.cfg.eval_episodes, step=self.step,
            wall_time=self.wall_time,
        )

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float]:
        n = len(self.replay)
        idx = torch.randint(n, (min(DIAGNOSTICS_BATCH, n),), generator=self.diag_generator)
        batch = self.replay.storage[idx].to(self.cfg.device)
        obs, action = batch["observation"], batch["action"].to(batch["observation"].dtype)
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


def _is_one_hot(spec: Any) -> bool:
    from torchrl.data import OneHot

    return isinstance(spec, OneHot)


def _check_supported(name: str, env: Any, *, discrete_ok: bool = False) -> None:
    """Refuse, in one sentence naming the fix, an env the algorithm cannot train on."""
    from torchrl.data import Bounded

    obs_spec = env.observation_spec.get("observation", None)
    if obs_spec is None or len(obs_spec.shape) != 1:
        raise ValueError(
            f"{name}: the trainer needs a flat vector 'observation' (got observation keys "
            f"{list(env.observation_spec.keys())}); pixel and dict observations are not "
            "supported yet. Use a state-based task or flatten it with a TorchRL transform."
        )
    if discrete_ok and _is_one_hot(env.action_spec):
        return
    if not isinstance(env.action_spec, Bounded) or not env.action_spec.dtype.is_floating_point:
        what = "continuous (bounded) or one-hot discrete" if discrete_ok else (
            "continuous (bounded)")
        fix = ("" if discrete_ok else
               "; MR.Q (--algo mrq) trains discrete-action tasks such as gym:CartPole-v1")
        raise ValueError(
            f"{name}: this algorithm supports {what} actions only, got "
            f"{type(env.action_spec).__name__}{fix}."
        )


def _is_dense(controller: Any) -> bool:
    return all(regime.is_dense for regime in controller.regimes.values())


RUN_FILES = ("config.json", "evals.csv", "diagnostics.csv", "curves.png", "status.json")


class TrainingDiverged(RuntimeError):
    """A loss, Q value or priority became NaN or infinite; the message names the step."""


def _check_out_dir_usable(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(
            f"--out {out_dir} is an existing file, not a directory; choose another --out."
        )
    probe = out_dir if out_dir.exists() else next(
        (p for p in out_dir.parents if p.exists()), Path(".")
    )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(
            f"--out {out_dir}: {probe} is not writable; choose a directory you can write to."
        )


def _read_status(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / "status.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _has_checkpoint(out_dir: Path) -> bool:
    ckpt = out_dir / CHECKPOINT
    return ckpt.exists() or previous_checkpoint_path(ckpt).exists()


def _has_results(out_dir: Path) -> bool:
    return any((out_dir / name).exists() for name in ("evals.csv", "diagnostics.csv"))


def _clear_run(out_dir: Path) -> None:
    """Delete one run's files (only for --overwrite or a run that never trained)."""
    import shutil

    for name in (*RUN_FILES, CHECKPOINT):
        (out_dir / name).unlink(missing_ok=True)
    ckpt = out_dir / CHECKPOINT
    previous_checkpoint_path(ckpt).unlink(missing_ok=True)
    ckpt.with_suffix(ckpt.suffix + ".tmp").unlink(missing_ok=True)
    for sub in ("logs", "tensorboard", "wandb"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)


def _prepare_out_dir(cfg: TrainConfig, out_dir: Path, overwrite: bool) -> None:
    """Make ``out_dir`` ready for a new run without ever deleting results silently.

    * a run that never trained (no checkpoint, no results: e.g. a failed start) does not
      block its directory: it is cleared;
    * a run with a checkpoint or results is refused (continue it with ``--resume``, or
      pass ``--overwrite`` to delete it and start again); a finished run says so.
    """
    _check_out_dir_usable(out_dir)
    config_path = out_dir / "config.json"
    if out_dir.exists() and (_has_checkpoint(out_dir) or _has_results(out_dir)):
        if overwrite:
            _clear_run(out_dir)
        else:
            status = _read_status(out_dir)
            existing = _read_config_dict(config_path) if config_path.exists() else None
            if existing is not None and existing != cfg.to_dict():
                diff = {
                    k: (existing.get(k), v)
                    for k, v in cfg.to_dict().items()
                    if existing.get(k) != v
                }
                raise FileExistsError(
                    f"{out_dir} already holds a run with a different config (saved vs given: "
                    f"{diff}). Choose another --out, continue that run with `torchrl-mst train "
                    f"--resume {out_dir}`, or add --overwrite to delete it and start again."
                )
            if status is not None and status.get("finished"):
                raise FileExistsError(
                    f"{out_dir} holds this run, already finished ({status.get('step')} steps); "
                    "its results are in evals.csv and curves.png. Add --overwrite to delete it "
                    "and train again, or choose another --out."
                )
            if _has_checkpoint(out_dir):
                raise FileExistsError(
                    f"{out_dir} already holds this run; continue it with `torchrl-mst train "
                    f"--resume {out_dir}`, or add --overwrite to start again, or choose another "
                    "--out."
                )
            raise FileExistsError(
                f"{out_dir} holds results (evals.csv) but no checkpoint to resume from; add "
                "--overwrite to delete them and start again, or choose another --out."
            )
    elif out_dir.exists():
        _clear_run(out_dir)  # never trained (e.g. a failed start): nothing to keep
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(config_path)


def _read_config_dict(path: Path) -> dict[str, Any]:
    try:
        return TrainConfig.load(path).to_dict()
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a valid torchrl-mst config: {err}") from err


def _truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows written after the checkpoint a resume restarts from.

    The first column is the step; rows whose first column is not a number (headers) stay.
    """
    if not path.exists():
        return
    with path.open() as f:
        rows = list(csv.reader(f))
    kept = []
    for r in rows:
        try:
            step = float(r[0]) if r else None
        except ValueError:
            step = None
        if step is None or step <= last_step:
            kept.append(r)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(kept)


def _truncate_logs(out_dir: Path, last_step: int) -> None:
    """Trim every CSV of the run (ours and TorchRL's ``logs/``) to ``last_step``."""
    _truncate_csv(out_dir / "evals.csv", last_step)
    _truncate_csv(out_dir / "diagnostics.csv", last_step)
    logs = out_dir / "logs"
    if logs.exists():
        for path in logs.rglob("*.csv"):
            _truncate_csv(path, last_step)


def _append_csv(path: Path, row: dict[str, Any], columns: list[str] | None = None) -> None:
    new = not path.exists()
    columns = columns or list(row)
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def _check_logger(cfg: TrainConfig) -> None:
    package = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(cfg.logger)
    if package is not None:
        import importlib.util

        if importlib.util.find_spec(package) is None:
            raise ValueError(
                f"--logger {cfg.logger} needs the {package!r} package: "
                f"`pip install 'torchrl-mst[{package}]'` (or use --logger csv)."
            )


def _make_logger(cfg: TrainConfig, out_dir: Path):
    from torchrl.record.loggers import CSVLogger

    _check_logger(cfg)
    loggers = [CSVLogger(exp_name="logs", log_dir=str(out_dir))]
    if cfg.logger == "tensorboard":
        from torchrl.record.loggers import TensorboardLogger

        loggers.append(TensorboardLogger(exp_name="tensorboard", log_dir=str(out_dir)))
    elif cfg.logger == "wandb":
        from torchrl.record.loggers import WandbLogger

        loggers.append(WandbLogger(exp_name=out_dir.name, save_dir=str(out_dir)))
    return loggers


def _write_status(out_dir: Path, step: int, total: int) -> None:
    tmp = out_dir / "status.json.tmp"
    tmp.write_text(json.dumps({"step": step, "steps": total, "finished": step >= total}))
    os.replace(tmp, out_dir / "status.json")


def _last_eval(out_dir: Path) -> dict[str, float] | None:
    path = out_dir / "evals.csv"
    if not path.exists():
        return None
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items()} if rows else None


def _load_for_resume(cfg: TrainConfig | None, out_dir: Path) -> tuple[TrainConfig, dict]:
    config_path = out_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(
            f"--resume {out_dir}: no run there (no config.json); start it without --resume."
        )
    saved = TrainConfig(**_read_config_dict(config_path))
    if cfg is not None and cfg.to_dict() != saved.to_dict():
        raise FileExistsError(
            f"--resume {out_dir}: the run there has a different config; resume it without "
            "other flags, or start a new run in another --out."
        )
    if not _has_checkpoint(out_dir):
        raise FileNotFoundError(
            f"--resume {out_dir}: there is no checkpoint to resume from (the run stopped "
            f"before its first one); start it again with the same flags, --out {out_dir} and "
            "--overwrite."
        )
    state = load_checkpoint(out_dir / CHECKPOINT)
    # fields added later (e.g. algo) take their defaults in older checkpoints
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    in_ckpt = {**defaults, **state.get("config", {})}
    if in_ckpt != saved.to_dict():
        diff = {k: (in_ckpt.get(k), v) for k, v in saved.to_dict().items() if in_ckpt.get(k) != v}
        raise ValueError(
            f"--resume {out_dir}: config.json does not match the config stored in the checkpoint "
            f"(checkpoint vs config.json: {diff}); the run can only continue under the config "
            "it was trained with. Restore config.json, or start a new run."
        )
    return saved, state


def train(
    cfg: TrainConfig | None,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    stop_after: int | None = None,
) -> RunResult:
    """Train ``cfg.algo`` (MR.Q, SAC, TD3 or PPO) with per-module regimes; write ``out_dir``.

    Args:
        cfg: the run's config; ``None`` with ``resume=True`` reloads ``out_dir/config.json``.
        out_dir: the run directory.

    Keyword Args:
        resume: continue the run in ``out_dir`` from its last checkpoint. The result is the
            same as an uninterrupted run (same seed, CPU).
        overwrite: delete a run already in ``out_dir`` and start again (never implied).
        quiet: no progress bar, log lines only.
        stop_after: stop (as if killed) after this many agent steps, right after the
            checkpoint taken there; used to test resuming.

    Raises:
        FileExistsError: ``out_dir`` holds another run, or this run (resume it instead).
        TrainingDiverged: a loss, Q value or priority became non-finite.
    """
    previous = torch.get_float32_matmul_precision()  # the run sets its own; put it back
    try:
        return _train(cfg, out_dir, resume=resume, overwrite=overwrite, quiet=quiet,
                      stop_after=stop_after)
    finally:
        torch.set_float32_matmul_precision(previous)


def _train(
    cfg: TrainConfig | None,
    out_dir: str | Path,
    *,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    stop_after: int | None,
) -> RunResult:
    import logging

    logging.getLogger("torchrl").setLevel(logging.WARNING)  # its INFO lines break the bar
    out_dir = Path(out_dir)
    state = None
    if resume:
        cfg, state = _load_for_resume(cfg, out_dir)
        if state["step"] >= cfg.steps:
            raise ValueError(
                f"--resume {out_dir}: the run already finished ({state['step']} steps); its "
                "results are in evals.csv and curves.png."
            )
    if cfg is None:
        raise ValueError("Pass a TrainConfig, or resume=True to reload the saved one.")
    _check_logger(cfg)
    if not resume:
        _check_out_dir_usable(out_dir)
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    run = _make_run(cfg)  # validates every choice before anything is written
    if not resume:
        _prepare_out_dir(cfg, out_dir, overwrite)
    ckpt_path = out_dir / CHECKPOINT
    loggers = _make_logger(cfg, out_dir)
    last_eval = None
    if state is not None:
        run.load_state_dict(state)
        del state
        _truncate_logs(out_dir, run.step)
        last_eval = _last_eval(out_dir)
    counts = count_parameters(run.networks)
    if not quiet or run.step == 0:
        sizes = ", ".join(f"{k} {v['total'] / 1e6:.3f}M" for k, v in counts.items())
        plan = ", ".join(f"{k}={p.regime}/type {p.block_type}" for k, p in run.plans.items())
        print(f"[torchrl-mst] {cfg.env} seed {cfg.seed}: {plan}; parameters: {sizes}", flush=True)
    _warn_silent_settings(cfg, run.random_steps)

    def log(metrics: dict[str, float]) -> None:
        for logger in loggers:
            for k, v in metrics.items():
                if isinstance(v, int | float):  # NaN/inf are logged too, never dropped
                    logger.log_scalar(k, float(v), step=run.step)

    def record_eval() -> dict[str, float]:
        row = run.evaluate()
        _append_csv(out_dir / "evals.csv", row, EVAL_COLUMNS)
        log({"eval/return_mean": row["return_mean"]})
        _plot(out_dir)
        return row

    def checkpoint() -> None:
        save_checkpoint(run.state_dict(), ckpt_path)
        _write_status(out_dir, run.step, cfg.steps)

    if not resume:
        last_eval = record_eval()
        checkpoint()  # every run with results can be resumed
        if stop_after == 0:
            return RunResult(dict(last_eval), out_dir, 0)
    remaining = cfg.steps - run.step
    random_left = max(0, run.random_steps - run.step)
    collector = Collector(
        run.env,
        run.explore,
        frames_per_batch=run.frames_per_batch,
        total_frames=remaining,
        init_random_frames=random_left or None,
        auto_register_policy_transforms=False,
        device=cfg.device,
    )
    if resume:
        set_global_rng_state(run.global_rng)
    progress = _Progress(cfg.steps, run.step, quiet, last_eval)
    checkpoint_due = False
    t_start = time.perf_counter() - run.wall_time
    try:
        for batch in collector:
            before = run.step
            run.step += batch.numel()
            # the last frame decides: a batch ending an episode is a checkpoint point
            done = bool(batch["next", "done"].reshape(-1)[-1])
            run.note_env_state(done)
            try:
                metrics = run.update(batch)
            except ValueError as err:
                if "finite" not in str(err):
                    raise
                _diverged(run, ckpt_path, str(err), log)
            if metrics is not None:
                run.last_metrics = metrics
                bad = sorted(k for k, v in run.last_metrics.items() if not math.isfinite(v))
                if bad:
                    _diverged(run, ckpt_path, f"non-finite {', '.join(bad)}", log)
                if _crossed(before, run.step, cfg.log_every):
                    log(run.last_metrics)
                else:  # mask updates are rare: log them whenever they happen
                    log({k: v for k, v in run.last_metrics.items() if k.startswith("sparse/")})
            run.wall_time = time.perf_counter() - t_start
            if _crossed(before, run.step, cfg.diagnostics_every) and run.step > run.random_steps:
                diag = {"step": run.step, **run.diagnostics()}
                _append_diagnostics(out_dir / "diagnostics.csv", diag)
                log({f"diagnostics/{k}": v for k, v in diag.items() if k != "step"})
            if _crossed(before, run.step, cfg.eval_every) or run.step == cfg.steps:
                last_eval = record_eval()
            if _crossed(before, run.step, cfg.checkpoint_every):
                checkpoint_due = True
            if (checkpoint_due and done) or run.step == cfg.steps:
                checkpoint()
                checkpoint_due = False
                if stop_after is not None and run.step >= stop_after:
                    break
            progress.update(run.step, last_eval)
    finally:
        collector.shutdown()
        progress.close()
    _plot(out_dir)
    return RunResult(dict(last_eval or {}), out_dir, run.step)


def _crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in ``(before, after]``.

    With one step at a time this is ``after % every == 0``.
    """
    return before // every < after // every


def _make_run(cfg: TrainConfig) -> Any:
    """MR.Q's run, or a SAC/TD3/PPO run on TorchRL's losses."""
    if cfg.algo == "mrq":
        return _Run(cfg)
    from torchrl_mst.trainers.torchrl_algos import TorchRLRun

    return TorchRLRun(cfg)


def _diverged(run: Any, ckpt_path: Path, what: str, log: Any) -> None:
    log(run.last_metrics)  # the non-finite values go to the logs too
    good = "no checkpoint"
    if ckpt_path.exists():
        status = _read_status(ckpt_path.parent) or {}
        good = f"the last good checkpoint is {ckpt_path} (step {status.get('step', '?')})"
    raise TrainingDiverged(
        f"training diverged at step {run.step} ({what}); {good}. Lower the learning rates or "
        "check the environment's rewards and observations for NaN/inf."
    )


def _warn_silent_settings(cfg: TrainConfig, random_steps: int) -> None:
    """Warn about settings that would silently do nothing in this run."""
    import warnings

    d = cfg.diagnostics_every
    first_diagnostics = (random_steps // d + 1) * d  # first multiple after the random phase
    if first_diagnostics > cfg.steps:
        warnings.warn(
            f"--diagnostics-every {d} never fires after the random phase ({random_steps} "
            f"steps) of this {cfg.steps}-step run: diagnostics.csv will stay empty. Lower "
            "--diagnostics-every.",
            stacklevel=3,
        )


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
    """tqdm bar with steps/s, last eval return and ETA; a log line every 5% when quiet.

    The rate of a quiet line is measured since the previous line (the random phase is much
    faster than training), so the first line comes one interval after the start.
    """

    def __init__(
        self, total: int, start: int, quiet: bool, last_eval: dict[str, float] | None = None
    ) -> None:
        self.quiet = quiet
        self.total = total
        self.interval = max(1, total // 20)
        self.next_log = min(start + self.interval, total)
        self.t0 = time.perf_counter()
        self.start = start
        self.last_eval = last_eval
        self.bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)
            self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None and self.last_eval is not None:
            self.bar.set_postfix(eval_return=f"{self.last_eval['return_mean']:.1f}", refresh=False)

    def update(self, step: int, last_eval: dict[str, float] | None) -> None:
        self.last_eval = last_eval if last_eval is not None else self.last_eval
        ret = None if self.last_eval is None else self.last_eval["return_mean"]
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self._postfix()
        elif step >= self.next_log or step == self.total:
            now = time.perf_counter()
            rate = (step - self.start) / max(now - self.t0, 1e-9)
            self.start, self.t0 = step, now
            eta = (self.total - step) / max(rate, 1e-9)
            shown = "none yet" if ret is None else f"{ret:.1f}"
            print(
                f"[torchrl-mst] step {step}/{self.total} ({rate:.1f} steps/s, ETA {eta / 60:.1f} "
                f"min) last eval return {shown}",
                flush=True,
            )
            self.next_log = step + self.interval

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
