"""The paper's scaling study of MR.Q: baseline vs MST per scale, and the per-module ablation.

Cells (one ``torchrl-mst train`` config each, at every scale):

* ``baseline``: MR.Q as released (``--recipe baseline``: dense, block types 4/4/3);
* ``mst``: Module-Specific Training (``--recipe mst``: dense encoder, RigL 0.6 critic,
  static 0.6 actor, block types 6/6/5);
* the per-module ablation: the baseline with ONE module changed, all others held at the
  baseline: ``<module>=static`` (static 0.6), ``<module>=rigl`` (RigL 0.6) and
  ``<module>=strong`` (MST's block type for that module), for ``encoder``, ``critic`` and
  ``actor``.

Trials run through the cross-algorithm harness (``cross_algo.py``): one after another here,
or as Ray tasks (``--workers N`` for a local cluster, ``--ray-address`` for an existing one),
with the same resume, retry and grid-ownership rules. Outputs in ``--out``: ``grid.json``,
``trials/``, ``results.csv`` (long format), and the study itself: ``scaling.csv`` /
``scaling.md`` (per cell and scale: final return mean and 95% CI over seeds, and at the
last diagnostics step the critic's dormant ratio and every module's stable rank) and
``scaling.png`` (each of them against the scale, one line per cell).

    python benchmarks/scaling.py                       # --preset cpu, into runs/scaling
    python benchmarks/scaling.py --workers 2           # the same grid, two trials at a time
    python benchmarks/scaling.py --preset paper --ray-address HEAD:6379 --gpus-per-trial 0.5

``--preset cpu`` is sized for a laptop: Pendulum-v1 at widths x1/16, x3/16, x5/16 (the
paper's 1x : 3x : 5x), MR.Q's quick settings, the four cells ``baseline``, ``mst``,
``critic=rigl``, ``actor=static``. ``--preset paper`` is the paper's: dog-run at 1x, 3x, 5x,
every cell, 5 seeds, 1M steps; a GPU cluster's work.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RL_WARNINGS", "0")

import cross_algo  # the harness next to this file
from cross_algo import GridError

MODULES = ("encoder", "critic", "actor")
#: MST's block type of each module (``torchrl_mst.recipes.RECIPES["mst"]``).
STRONG_TYPES = {"encoder": "6", "critic": "6", "actor": "5"}


def _cells() -> dict[str, dict[str, Any]]:
    cells: dict[str, dict[str, Any]] = {
        "baseline": {"recipe": "baseline"},
        "mst": {"recipe": "mst"},
    }
    for m in MODULES:
        cells[f"{m}=static"] = {"recipe": "baseline", m: "static:0.6"}
        cells[f"{m}=rigl"] = {"recipe": "baseline", m: "rigl:0.6"}
        cells[f"{m}=strong"] = {"recipe": "baseline", f"{m}_type": STRONG_TYPES[m]}
    return cells


#: Every cell as ``TrainConfig`` fields.
CELLS = _cells()

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "cells": ["baseline", "mst", "critic=rigl", "actor=static"],
        "envs": ["gym:Pendulum-v1"], "seeds": [0],
        "scales": ["0.0625x", "0.1875x", "0.3125x"],
        "run": dict(cross_algo.PRESETS["quick"]["runs"]["mrq"]),
    },
    "paper": {
        "cells": list(CELLS), "envs": ["dmc:dog-run"], "seeds": list(range(5)),
        "scales": ["1x", "3x", "5x"],
        "run": dict(steps=1_000_000),
    },
}

DIAGNOSTICS = ["critic/dormant_ratio", "encoder/stable_rank", "critic/stable_rank",
               "actor/stable_rank"]


def build_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Trials ``{"algo", "regime" (the cell), "scale", "env", "seed", "config", "name"}``."""
    from torchrl_mst.config import TrainConfig
    from torchrl_mst.envs import parse_env_name

    if args.preset not in PRESETS:
        raise GridError(f"unknown --preset {args.preset!r}; valid presets: {list(PRESETS)}.")
    preset = PRESETS[args.preset]
    cells = args.cells or preset["cells"]
    for c in cells:
        if c not in CELLS:
            raise GridError(f"unknown cell {c!r} in --cells; valid: {list(CELLS)}.")
    envs = args.envs or preset["envs"]
    for e in envs:
        try:
            parse_env_name(e)
        except ValueError as err:
            raise GridError(f"--envs {e}: {str(err).splitlines()[0]}") from None
    seeds = args.seeds if args.seeds is not None else preset["seeds"]
    scales = args.scales or preset["scales"]
    trials = []
    for cell in cells:
        for scale in scales:
            for env in envs:
                for seed in seeds:
                    fields = dict(preset["run"]) | CELLS[cell]
                    if args.steps is not None:
                        fields["steps"] = args.steps
                    fields.update(cross_algo._parse_sets(args.set or [], "mrq"))
                    fields.update(algo="mrq", env=env, seed=seed, scale=scale,
                                  device=args.device)
                    try:
                        cfg = TrainConfig(**fields)
                    except ValueError as err:
                        raise GridError(f"{cell}/{env}: {str(err).splitlines()[0]}") from None
                    t = {"algo": "mrq", "regime": cell, "scale": scale, "env": env,
                         "seed": seed, "config": cfg.to_dict()}
                    t["name"] = cross_algo.trial_name(t)
                    trials.append(t)
    if not trials:
        raise GridError("the grid is empty (no cells, envs, seeds or scales).")
    return trials


def _scale_value(scale: str) -> float:
    from torchrl_mst.modules import get_scale_preset

    return float(get_scale_preset(scale).width_multiplier)


def summarise(trials: list[dict[str, Any]], rows: list[dict[str, Any]], out: Path,
              command: str) -> list[dict[str, Any]]:
    """``scaling.csv`` and ``scaling.md``: one row per (cell, scale, env)."""
    from torchrl_mst.trainers.grid import trial_finished

    by_trial: dict[tuple, dict[str, list[tuple[int, float]]]] = {}
    for r in rows:
        key = (r["regime"], r["scale"], r["env"], r["seed"])
        by_trial.setdefault(key, {}).setdefault(r["metric"], []).append(
            (r["env_step"], r["value"]))
    cells: dict[tuple, dict[str, list[float]]] = {}
    for t in trials:
        key = (t["regime"], t["scale"], t["env"])
        vals = cells.setdefault(key, {m: [] for m in ["return", *DIAGNOSTICS]})
        if not trial_finished(out / "trials" / t["name"]):
            continue
        series = by_trial.get((t["regime"], t["scale"], t["env"], t["seed"]), {})
        for metric, values in vals.items():
            if series.get(metric):
                values.append(max(series[metric])[1])  # the value at the last step
    out_rows = []
    for (cell, scale, env), vals in cells.items():
        mean, half = (cross_algo._mean_ci(vals["return"]) if vals["return"]
                      else (math.nan, math.nan))
        row = {"cell": cell, "scale": scale, "env": env, "seeds": len(vals["return"]),
               "final_return_mean": mean, "ci95_low": mean - half, "ci95_high": mean + half}
        for m in DIAGNOSTICS:
            row[m] = sum(vals[m]) / len(vals[m]) if vals[m] else math.nan
        out_rows.append(row)
    with (out / "scaling.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(out_rows[0]))
        w.writeheader()
        w.writerows(out_rows)
    lines = [
        "# MR.Q scaling study", "", f"Command: `{command}`", "",
        "Final evaluation return (mean over seeds, 95% Student-t CI; NaN with one seed); "
        "at the last diagnostics step, means over seeds: the critic's dormant ratio and each "
        "module's stable rank.", "",
        "| cell | scale | env | seeds | final return | 95% CI | critic dormant | "
        "encoder SR | critic SR | actor SR |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out_rows:
        lines.append(
            f"| {r['cell']} | {r['scale']} | {r['env']} | {r['seeds']} | "
            f"{r['final_return_mean']:.1f} | [{r['ci95_low']:.1f}, {r['ci95_high']:.1f}] | "
            + " | ".join(f"{r[m]:.3f}" if m.endswith("dormant_ratio") else f"{r[m]:.1f}"
                         for m in DIAGNOSTICS) + " |")
    (out / "scaling.md").write_text("\n".join(lines) + "\n")
    return out_rows


def plot(cells: list[dict[str, Any]], out: Path) -> Path:
    """``scaling.png``: return, critic dormant ratio, stable ranks vs scale, per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("final_return_mean", "final return"), ("critic/dormant_ratio",
              "critic dormant ratio"), ("encoder/stable_rank", "encoder stable rank"),
              ("critic/stable_rank", "critic stable rank"), ("actor/stable_rank",
              "actor stable rank")]
    envs = sorted({c["env"] for c in cells})
    fig, axes = plt.subplots(len(envs), len(panels), figsize=(4 * len(panels), 3.2 * len(envs)),
                             squeeze=False)
    for i, env in enumerate(envs):
        for j, (key, title) in enumerate(panels):
            ax = axes[i][j]
            for cell in dict.fromkeys(c["cell"] for c in cells):
                pts = sorted((_scale_value(c["scale"]), c[key]) for c in cells
                             if c["cell"] == cell and c["env"] == env)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=cell)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("width multiplier")
            ax.set_title(f"{title}\n{env}", fontsize=9)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scaling.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu", help=f"one of {list(PRESETS)} (default cpu)")
    p.add_argument("--out", default="runs/scaling", help="output directory of the grid")
    p.add_argument("--cells", nargs="+", help=f"subset of {list(CELLS)}")
    p.add_argument("--envs", nargs="+", help="dmc:<domain>-<task> or gym:<id>")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds")
    p.add_argument("--scales", nargs="+", help="network scales, e.g. 1x 3x 5x")
    p.add_argument("--steps", type=int, help="env steps of every trial (overrides the preset)")
    p.add_argument("--device", default="cpu", help="torch device of every trial")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a run setting of every trial (a `torchrl-mst train` option)")
    p.add_argument("--workers", type=int, help="start a local Ray cluster with N CPUs")
    p.add_argument("--ray-address", help="use an existing Ray cluster (HOST:PORT, ray://..)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="Ray CPUs per trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="Ray GPUs per trial (fractions share a GPU)")
    p.add_argument("--max-retries", type=int, default=1,
                   help="retries of a failed trial before it is reported as failed")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or continue) the study and write its table and figure."""
    args = parse_args(argv)
    command = "python benchmarks/scaling.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        if args.workers is not None and args.ray_address:
            raise GridError("--workers starts a local cluster, --ray-address uses one: not both.")
        if args.workers is not None and args.workers < 1:
            raise GridError(f"--workers must be >= 1, got {args.workers}.")
        if args.max_retries < 0:
            raise GridError(f"--max-retries must be >= 0, got {args.max_retries}.")
        if args.workers is not None or args.ray_address:
            cross_algo._import_ray()
        trials = build_grid(args)
        out = Path(args.out)
        cross_algo.claim_out_dir(out, trials, command)
        t0 = time.perf_counter()
        if args.workers is not None or args.ray_address:
            outcomes = cross_algo.run_on_ray(trials, out, args)
        else:
            outcomes = cross_algo.run_in_process(trials, out, args.max_retries)
        rows = cross_algo.collect_results(trials, out)
        cross_algo.write_results(rows, out)
        cells = summarise(trials, rows, out, command)
        plot(cells, out)
    except GridError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = sorted(n for n, o in outcomes.items() if o.get("action") == "failed")
    for name in failed:
        print(f"[scaling] FAILED {name}: {outcomes[name]['error']}", file=sys.stderr)
    print(f"[scaling] {len(trials)} trials in {time.perf_counter() - t0:.0f} s; "
          f"table: {out / 'scaling.md'}, figure: {out / 'scaling.png'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
