"""Place our evaluation curves inside the MR.Q release's published seed range.

Reads the release's ``results/<benchmark>_results.txt`` (from a checkout you fetch yourself:
nothing of it is in this repository) and any number of our run directories (their
``evals.csv``), prints a markdown table (our return, the release's min / median / max over
its seeds, and how many release seeds we beat) at every step both sides evaluated, and
draws the curves.

    python benchmarks/release_side_by_side/compare_curves.py \
        --release /tmp/mrq_rel/results/dmc_results.txt --env Dmc-walker-walk \
        --runs runs/ww-s0 runs/ww-s1 --out walker-walk.png --max-step 20000 \
        --logs release-s0.jsonl release-s1.jsonl --log-labels "release s0" "release s1"

``--logs`` adds curves from the JSONL logs of ``run_release.py`` / ``run_hybrid*.py`` (their
``eval`` rows), e.g. the release run on this machine beside its published GPU seeds.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path


def read_release_table(path: Path, env: str) -> dict[int, list[float]]:
    """``{step: [return per seed]}`` of one ``Env: <env>`` block of a release results file."""
    table: dict[int, list[float]] = {}
    inside = False
    for line in path.read_text().splitlines():
        if line.startswith("Env: "):
            inside = line[len("Env: "):].strip() == env
            continue
        if not inside or not line.strip() or line.startswith("-") or line.startswith("Timestep"):
            continue
        step, *values = line.split()
        table[int(step)] = [float(v) for v in values]
    if not table:
        raise SystemExit(f"error: no 'Env: {env}' block in {path}")
    return table


def read_run(run: Path) -> dict[int, float]:
    """``{step: mean eval return}`` of one of our run directories."""
    path = run / "evals.csv"
    if not path.is_file():
        raise SystemExit(f"error: {run} has no evals.csv (is it a torchrl-mst run directory?)")
    with path.open() as f:
        return {int(float(r["step"])): float(r["return_mean"]) for r in csv.DictReader(f)}


def read_log(path: Path) -> dict[int, float]:
    """``{step: mean eval return}`` of a side-by-side script's JSONL log."""
    import json

    if not path.is_file():
        raise SystemExit(f"error: no log {path}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {int(r["step"]): float(r["mean"]) for r in rows if r.get("kind") == "eval"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--release", type=Path, required=True, help="release results .txt file")
    p.add_argument("--env", required=True, help="block name, e.g. Dmc-walker-walk")
    p.add_argument("--runs", type=Path, nargs="+", default=[], help="our run directories")
    p.add_argument("--labels", nargs="+", help="one label per run (default: directory names)")
    p.add_argument("--logs", type=Path, nargs="+", default=[],
                   help="JSONL logs of run_release.py / run_hybrid*.py")
    p.add_argument("--log-labels", nargs="+", help="one label per log (default: file stems)")
    p.add_argument("--max-step", type=int, help="last step to show")
    p.add_argument("--out", type=Path, help="write the figure here (PNG)")
    args = p.parse_args(argv)
    release = read_release_table(args.release, args.env)
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit("error: give one --labels entry per --runs entry")
    log_labels = args.log_labels or [log.stem for log in args.logs]
    if len(log_labels) != len(args.logs):
        raise SystemExit("error: give one --log-labels entry per --logs entry")
    if not args.runs and not args.logs:
        raise SystemExit("error: give --runs and/or --logs")
    ours = {label: read_run(run) for label, run in zip(labels, args.runs, strict=True)}
    ours |= {label: read_log(log) for label, log in zip(log_labels, args.logs, strict=True)}
    labels = list(ours)
    last = args.max_step or max(max(c) for c in ours.values())
    steps = sorted({s for c in ours.values() for s in c if s in release and s <= last})
    print(f"| step | {' | '.join(labels)} | release min / median / max "
          f"({len(next(iter(release.values())))} seeds) |")
    print("|---|" + "---|" * len(labels) + "---|")
    for s in steps:
        vals = release[s]
        cells = []
        for label in labels:
            v = ours[label].get(s)
            cells.append("" if v is None else f"{v:.1f} (> {sum(v > r for r in vals)}/{len(vals)})")
        print(f"| {s:,} | {' | '.join(cells)} | {min(vals):.1f} / "
              f"{statistics.median(vals):.1f} / {max(vals):.1f} |")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        rsteps = [s for s in sorted(release) if s <= last]
        lo = [min(release[s]) for s in rsteps]
        hi = [max(release[s]) for s in rsteps]
        med = [statistics.median(release[s]) for s in rsteps]
        ax.fill_between(rsteps, lo, hi, color="0.85", label="release, min-max over seeds")
        ax.plot(rsteps, med, color="0.4", lw=1, label="release, median")
        for label, curve in ours.items():
            xs = [s for s in sorted(curve) if s <= last]
            name = label if label in log_labels else f"ours: {label}"
            style = "--" if label in log_labels else "-"
            ax.plot(xs, [curve[s] for s in xs], style, marker="o", label=name)
        ax.set_xlabel("agent steps")
        ax.set_ylabel("eval return")
        ax.set_title(args.env)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
