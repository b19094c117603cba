"""One config object for a training run: saved with the run, reloaded to reproduce it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_STEPS", "PRESETS", "TrainConfig"]


def _field(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


#: Values of ``TrainConfig.matmul_precision`` (``torch.set_float32_matmul_precision``'s).
MATMUL_PRECISIONS = ("highest", "high", "medium")
#: Values of ``TrainConfig.autocast``: no autocast, or the MR.Q losses in bfloat16.
AUTOCAST_DTYPES = ("none", "bf16")

#: Training length per env domain when ``steps`` is left out (the MR.Q release's protocol).
DEFAULT_STEPS: dict[str, int] = {"dmc": 500_000, "gym": 1_000_000}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Each field is a ``torchrl-mst train`` flag."""

    algo: str = _field(
        "mrq",
        "algorithm: mrq (MR.Q), or sac, td3, ppo on TorchRL's own losses",
    )
    env: str = _field(
        "dmc:cartpole-balance",
        "dmc:<domain>-<task> or gym:<id>",
    )
    seed: int = _field(
        0,
        "seed of the run (evaluation env: seed + 100)",
    )
    steps: int | None = _field(  # an int once constructed (the domain's default filled in)
        None,
        "agent (environment) steps in total (default: the domain's, as in the MR.Q release: "
        "dmc 500,000, gym 1,000,000)",
    )
    recipe: str = _field(
        "mst",
        "baseline (MR.Q: dense, types 4/4/3) or mst (dense/RigL/static, types 6/6/5)",
    )
    scale: str = _field(
        "1x",
        "network scale: 1x, 3x, 5x, xl, or any '<float>x' such as 0.25x",
    )
    encoder: str | None = _field(
        None,
        "encoder regime override, e.g. dense, static:0.6, rigl:0.6, set:0.6, prune:0.6, grow:0.6",
    )
    critic: str | None = _field(
        None,
        "critic regime override (same syntax)",
    )
    actor: str | None = _field(
        None,
        "actor regime override (same syntax)",
    )
    encoder_type: str | None = _field(
        None,
        "encoder block type override: 1-6, 5post, 6post",
    )
    critic_type: str | None = _field(
        None,
        "critic block type override",
    )
    actor_type: str | None = _field(
        None,
        "actor block type override",
    )
    threads: int | None = _field(
        None,
        "torch CPU threads (default: torch's choice); 1 is fastest for tiny networks and "
        "whenever other jobs share the cores",
    )
    device: str = _field(
        "cpu",
        "torch device of networks and replay",
    )
    multistep_rule: str = _field(
        "correct",
        "mrq: the multi-step return near a termination: correct (the terminal reward counts, "
        "nothing after it) or reference (the release's rule, docs/concepts/mrq.md); the same "
        "on tasks that never terminate (DMC)",
    )
    compile: bool = _field(
        False,
        "mrq: run the encoder, critic and actor losses through torch.compile (first steps "
        "are slow while it compiles); masks, optimizers and RigL updates stay eager",
    )
    matmul_precision: str = _field(
        "highest",
        "float32 matmuls (torch.set_float32_matmul_precision): highest (full fp32), high "
        "(TF32 tensor cores on NVIDIA GPUs) or medium (bf16 internally where supported); "
        "set for the run, restored after it",
    )
    autocast: str = _field(
        "none",
        "mrq: none, or bf16 (the encoder, critic and actor losses' forward passes under "
        "torch.autocast in bfloat16; weights, optimizer states, acting and evaluation stay "
        "fp32)",
    )
    batch_size: int = _field(
        256,
        "windows per update (MR.Q: 256)",
    )
    buffer_size: int = _field(
        1_000_000,
        "replay capacity in transitions",
    )
    random_steps: int = _field(
        10_000,
        "uniform random actions before training starts (MR.Q: 10,000)",
    )
    target_update_interval: int = _field(
        250,
        "training steps between target copies and encoder bursts (MR.Q: 250)",
    )
    mask_update_interval: int = _field(
        1000,
        "optimizer steps between mask updates of sparse regimes: RigL/SET drop-and-grow, "
        "pruning steps (prune:S) and growth steps (grow:S)",
    )
    drop_fraction: float = _field(
        0.3,
        "initial RigL/SET drop fraction (cosine-decayed to 0)",
    )
    mask_stop_fraction: float = _field(
        0.8,
        "fraction of training after which masks stop changing (RigL/SET updates end, pruning "
        "and growth reach their final sparsity)",
    )
    grown_moments: str = _field(
        "gradient",
        "Adam moments of weights grown by RigL/SET/grow:S: gradient (seeded from the dense "
        "gradient, ours) or zero (RigL's paper)",
    )
    regrow_dropped: bool = _field(
        False,
        "RigL/SET: allow a position dropped by an update to be regrown by the same update, "
        "keeping its value (RigL's paper); default: not",
    )
    eval_every: int = _field(
        5_000,
        "agent steps between evaluations",
    )
    eval_episodes: int = _field(
        10,
        "episodes per evaluation (deterministic policy)",
    )
    diagnostics_every: int = _field(
        5_000,
        "agent steps between plasticity diagnostics",
    )
    checkpoint_every: int = _field(
        10_000,
        "agent steps between checkpoints (taken at the next episode end)",
    )
    log_every: int = _field(
        1_000,
        "agent steps between training-scalar logs (losses, Q, grad norms; mask updates are "
        "logged whenever they happen)",
    )
    logger: str = _field(
        "csv",
        "extra TorchRL logger: csv, tensorboard or wandb",
    )
    learning_rate: float | None = _field(
        None,
        "sac/td3/ppo: learning rate of every optimizer (default: the algorithm's, see "
        "docs/howto/cross-algo.md)",
    )
    gamma: float | None = _field(
        None,
        "sac/td3/ppo: discount (default: the algorithm's, 0.99); MR.Q keeps its own",
    )
    rollout_steps: int | None = _field(
        None,
        "ppo: env steps per rollout (default 2048); --steps must be a multiple of it",
    )
    label: str | None = _field(
        None,
        "label used by `torchrl-mst plot` to group seeds (default: recipe-scale-overrides)",
    )

    def __post_init__(self) -> None:
        if self.steps is None:  # the MR.Q release's training length of the env's domain
            self.steps = DEFAULT_STEPS.get(str(self.env).split(":", 1)[0], 500_000)
        for name in (
            "steps",
            "batch_size",
            "buffer_size",
            "eval_every",
            "eval_episodes",
            "diagnostics_every",
            "checkpoint_every",
            "target_update_interval",
            "mask_update_interval",
            "log_every",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {self.threads!r}.")
        if self.algo != "ppo" and self.random_steps < 5:
            raise ValueError(
                f"random_steps must be >= 5 (one 5-step window must exist before the first "
                f"update), got {self.random_steps}."
            )
        if self.algo != "ppo" and self.random_steps >= self.steps:
            raise ValueError(
                f"--random-steps ({self.random_steps}) must be smaller than --steps "
                f"({self.steps}): training starts after the random phase, so this run would "
                "finish without a single update. Raise --steps or lower --random-steps."
            )
        _check_device(self.device)
        if self.algo not in ("mrq", "sac", "td3", "ppo"):
            raise ValueError(f"algo must be one of mrq, sac, td3, ppo, got {self.algo!r}.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be a positive float, got {self.learning_rate!r}.")
        if self.multistep_rule not in ("correct", "reference"):
            raise ValueError(
                f"multistep_rule must be 'correct' or 'reference', got {self.multistep_rule!r}."
            )
        if self.multistep_rule != "correct" and self.algo != "mrq":
            raise ValueError(
                f"multistep_rule is an MR.Q option; --algo {self.algo} uses TorchRL's value "
                "estimators (drop --multistep-rule)."
            )
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, got {self.compile!r}.")
        if self.compile and self.algo != "mrq":
            raise ValueError(
                f"compile is an MR.Q option; --algo {self.algo} runs TorchRL's losses eagerly "
                "(drop --compile)."
            )
        if self.matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(
                f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, got "
                f"{self.matmul_precision!r}."
            )
        if self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(
                f"autocast must be one of {', '.join(AUTOCAST_DTYPES)}, got {self.autocast!r}."
            )
        if self.autocast != "none" and self.algo != "mrq":
            raise ValueError(
                f"autocast is an MR.Q option; --algo {self.algo} runs TorchRL's losses in fp32 "
                "(drop --autocast; --matmul-precision works for every algorithm)."
            )
        if self.gamma is not None and (self.algo == "mrq" or not 0 < self.gamma <= 1):
            raise ValueError(
                f"gamma ({self.gamma!r}) is a sac/td3/ppo option in (0, 1]; MR.Q keeps its own."
            )
        if self.rollout_steps is not None and (
            isinstance(self.rollout_steps, bool) or self.rollout_steps < 1
        ):
            raise ValueError(f"rollout_steps must be a positive int, got {self.rollout_steps!r}.")
        if self.recipe not in ("baseline", "mst"):
            raise ValueError(f"recipe must be 'baseline' or 'mst', got {self.recipe!r}.")
        if self.logger not in ("csv", "tensorboard", "wandb"):
            raise ValueError(f"logger must be csv, tensorboard or wandb, got {self.logger!r}.")
        if not 0.0 < self.mask_stop_fraction <= 1.0:
            raise ValueError(
                f"mask_stop_fraction must be in (0, 1], got {self.mask_stop_fraction}."
            )
        if self.grown_moments not in ("gradient", "zero"):
            raise ValueError(
                f"grown_moments must be 'gradient' or 'zero', got {self.grown_moments!r}."
            )
        if not isinstance(self.regrow_dropped, bool):
            raise ValueError(f"regrow_dropped must be a bool, got {self.regrow_dropped!r}.")
        if self.label is None:
            overrides = [
                f"{name}={value}"
                for name in ("encoder", "critic", "actor", "encoder_type", "critic_type",
                             "actor_type")
                if (value := getattr(self, name)) is not None
            ]
            prefix = [] if self.algo == "mrq" else [self.algo]
            self.label = "-".join([*prefix, self.recipe, self.scale, *overrides])

    def regime_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`torchrl_mst.recipes.parse_regime` set by this config."""
        return {
            "update_interval": self.mask_update_interval,
            "drop_fraction": self.drop_fraction,
            "stop_fraction": self.mask_stop_fraction,
            "grown_moments": self.grown_moments,
            "regrow_dropped": self.regrow_dropped,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a config written by :meth:`save`; unknown fields are an error.

        Configs saved before the sparse options were renamed load too (``rigl_update_interval``
        -> ``mask_update_interval``, ``rigl_drop_fraction`` -> ``drop_fraction``,
        ``sparse_stop_fraction`` -> ``mask_stop_fraction``).
        """
        data = json.loads(Path(path).read_text())
        for old, new in _RENAMED.items():
            if old in data and new not in data:
                data[new] = data.pop(old)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{path}: unknown config fields {unknown}; valid: {sorted(names)}.")
        return cls(**data)


def _check_device(device: str) -> None:
    """Refuse a device torch cannot parse or that this machine lacks, naming the fix."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"--device {device!r} is not a device torch knows ({err}); use cpu, cuda or cuda:N."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: CUDA is not available on this machine (torch "
                f"{torch.__version__}); use --device cpu, or install a CUDA build of torch."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s)."
            )
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"--device {device}: use cpu or cuda (got device type {dev.type!r}).")


_RENAMED = {
    "rigl_update_interval": "mask_update_interval",
    "rigl_drop_fraction": "drop_fraction",
    "sparse_stop_fraction": "mask_stop_fraction",
}

#: Named configs for ``torchrl-mst train --preset NAME`` (flags given too override them).
PRESETS: dict[str, dict[str, Any]] = {
    # About three minutes on a 2-core CPU: a small MR.Q agent (width x0.125) learns
    # Pendulum-v1 from about -1400 (untrained) to about -200 within 5,000 steps. (The same
    # run with the MST recipe reached only -961, and it is MST's blocks, not its sparsity:
    # dense on MST's blocks -869, MST's sparsity on the baseline blocks -107;
    # docs/howto/cross-algo.md.)
    "quick": dict(
        env="gym:Pendulum-v1",
        recipe="baseline",
        scale="0.125x",
        steps=5_000,
        random_steps=1_000,
        batch_size=64,
        buffer_size=10_000,
        eval_every=1_000,
        eval_episodes=5,
        diagnostics_every=1_000,
        checkpoint_every=2_000,
        mask_update_interval=250,
        threads=1,
    ),
}
