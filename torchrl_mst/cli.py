r"""``torchrl-mst`` command line: ``train``, ``plot`` and ``presets``.

Examples::

    torchrl-mst train --preset quick --out runs/quick
    torchrl-mst train --env dmc:dog-run --recipe mst --scale 1x --steps 500000 --seed 0 \\
        --out runs/dog-mst-s0
    torchrl-mst train --resume runs/dog-mst-s0
    torchrl-mst train --algo sac --env gym:Pendulum-v1 --critic set:0.8 --out runs/sac
    torchrl-mst plot runs/dog-mst-s* runs/dog-baseline-s* --out dog.png
    torchrl-mst presets --env dmc:dog-run --env dmc:humanoid-run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_type_hints

__all__ = ["main", "preset_table"]

# Environment knobs must be set before torchrl / dm_control import.
os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RL_WARNINGS", "0")


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _config_flags(parser: argparse.ArgumentParser) -> None:
    from torchrl_mst.config import TrainConfig

    hints = get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        base = {
            int: int,
            int | None: int,
            float: float,
            float | None: float,
            bool: _parse_bool,
        }.get(hint, str)
        extra: dict[str, Any] = {"nargs": "?", "const": True} if base is _parse_bool else {}
        parser.add_argument(
            flag,
            dest=f.name,
            type=base,
            default=None,
            help=f"{f.metadata.get('help', '')} (default: {f.default})",
            **extra,
        )


def preset_table(envs: Sequence[str] = ("dmc:dog-run", "dmc:humanoid-run")) -> str:
    """Markdown table of the scale presets' parameter counts for ``envs`` (MST types)."""
    from torchrl_mst.envs import make_env
    from torchrl_mst.modules import SCALE_PRESETS, count_parameters, make_mrq_networks

    dims = {}
    for env_name in envs:
        env = make_env(env_name)
        dims[env_name] = (
            env.observation_spec["observation"].shape[-1],
            env.action_spec.shape[-1],
        )
        env.close()
    lines = [
        "| env (obs, action) | preset | width x | blocks | hidden | encoder | critic | actor "
        "| total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for env_name, (obs, act) in dims.items():
        for name, preset in SCALE_PRESETS.items():
            nets = make_mrq_networks(
                obs, act, scale=preset, encoder_type=6, critic_type=6, actor_type=5, device="meta"
            )
            c = count_parameters(nets)
            lines.append(
                f"| {env_name} ({obs}, {act}) | {name} | {preset.width_multiplier:g} | "
                f"{preset.num_blocks} | {preset.widths()['hidden']} | "
                + " | ".join(f"{c[m]['total'] / 1e6:,.2f}M" for m in ("encoder", "critic", "actor"))
                + f" | **{c['total']['total'] / 1e6:,.1f}M** |"
            )
    return "\n".join(lines)


def _cmd_train(args: argparse.Namespace) -> int:
    from torchrl_mst.config import PRESETS, TrainConfig
    from torchrl_mst.trainers.loop import train

    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name) is not None
    }
    if args.resume:
        if given or args.preset:
            print(
                f"error: --resume takes the saved config; drop the other flags ({sorted(given)}).",
                file=sys.stderr,
            )
            return 2
        if args.overwrite:
            print("error: --overwrite starts a run again; it cannot go with --resume.",
                  file=sys.stderr)
            return 2
        result = train(None, args.resume, resume=True, quiet=args.quiet)
    else:
        values = {}
        if args.preset:
            if args.preset not in PRESETS:
                print(
                    f"error: unknown --preset {args.preset!r}; valid presets: {list(PRESETS)}",
                    file=sys.stderr,
                )
                return 2
            values.update(PRESETS[args.preset])
        values.update(given)
        cfg = TrainConfig(**values)
        out = args.out or f"runs/{cfg.env.replace(':', '-')}-{cfg.label}-s{cfg.seed}"
        result = train(cfg, out, overwrite=args.overwrite, quiet=args.quiet)
    ev = result.final_eval
    if ev:
        summary = (
            f"final eval return {ev['return_mean']:.1f} +- {ev['return_std']:.1f} "
            f"(mean +- std over the episodes of the evaluation at step {ev['step']})"
        )
    else:
        summary = "no evaluation in this session"
    print(
        f"[torchrl-mst] done: {result.steps} agent steps; {summary}; "
        f"curves: {Path(result.out_dir) / 'curves.png'}",
        flush=True,
    )
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from torchrl_mst.plots import plot_runs

    out = plot_runs(args.runs, args.out, label_by=args.label_by)
    print(f"[torchrl-mst] wrote {out}")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    print(preset_table(args.env or ["dmc:dog-run", "dmc:humanoid-run"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``torchrl-mst`` and ``python -m torchrl_mst``."""
    parser = argparse.ArgumentParser(
        prog="torchrl-mst", description="Module-Specific Training for MR.Q on TorchRL."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser(
        "train", help="train MR.Q, or SAC/TD3/PPO on TorchRL's losses (--algo)"
    )
    p_train.add_argument(
        "--out", default=None, help="run directory (default: runs/<env>-<label>-s<seed>)"
    )
    p_train.add_argument(
        "--preset", default=None, help="named config, e.g. quick (flags override it)"
    )
    p_train.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a killed run")
    p_train.add_argument("--quiet", action="store_true", help="log lines instead of a progress bar")
    p_train.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run already in --out (results, checkpoints, logs) and start again",
    )
    _config_flags(p_train)
    p_train.set_defaults(func=_cmd_train)
    p_plot = sub.add_parser("plot", help="overlay runs (mean and 95%% CI over seeds per label)")
    p_plot.add_argument("runs", nargs="+", help="run directories")
    p_plot.add_argument("--out", default="comparison.png", help="output PNG")
    p_plot.add_argument("--label-by", default="label", help="config field grouping seeds")
    p_plot.set_defaults(func=_cmd_plot)
    p_presets = sub.add_parser("presets", help="parameter table of the scale presets")
    p_presets.add_argument("--env", action="append", help="env name (repeatable)")
    p_presets.set_defaults(func=_cmd_presets)
    args = parser.parse_args(argv)
    from torchrl_mst.trainers.checkpoint import CheckpointError
    from torchrl_mst.trainers.loop import TrainingDiverged

    try:
        return args.func(args)
    except (ValueError, OSError, ImportError, CheckpointError, TrainingDiverged) as err:
        # Never an empty message: fall back to the exception's type.
        text = str(err).strip() or f"{type(err).__name__} (no message)"
        if isinstance(err, PermissionError) and err.filename:
            text = f"permission denied: {err.filename}; choose a directory you can write to."
        print(f"error: {text}", file=sys.stderr)
        return 1 if isinstance(err, TrainingDiverged) else 2


if __name__ == "__main__":
    sys.exit(main())
