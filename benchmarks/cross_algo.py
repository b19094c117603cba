"""MST beside dense training across algorithms: MR.Q, SAC, TD3, PPO (TorchRL's own losses).

A grid algos x regimes x envs x seeds x scales; one trial = one ``torchrl-mst train`` run
directory. Trials run one after another in this process, or as Ray tasks
(``--workers N``: a local Ray cluster; ``--ray-address ADDR``: an existing one).

    python benchmarks/cross_algo.py                      # --preset quick, into runs/cross_algo
    python benchmarks/cross_algo.py --workers 2          # same grid, two trials at a time
    python benchmarks/cross_algo.py --preset paper --ray-address HEAD:6379 --gpus-per-trial 0.25

Regimes: ``dense`` (the algorithm's dense baseline: ``--recipe baseline``), ``mst`` (dense
encoder, RigL 0.6 critic, static 0.6 actor, on the recipe's strong blocks), ``static``
(static 0.6 everywhere), ``rigl`` (RigL 0.6 everywhere), and the two cells that separate
MST's blocks from its sparsity: ``dense-strong`` (dense, MST's blocks) and ``mst-plain``
(MST's sparsity, the baseline's blocks).

Outputs in ``--out``: ``grid.json`` (the grid; another grid is refused),
``trials/<trial>/`` (run directories), ``results.csv`` (long format), ``published/`` (the
eval returns in the layouts of the SimbaV2 authors' baseline CSVs and of the MR.Q
release's ``results/*_results.txt``, to overlay curves on theirs), ``summary.csv`` /
``summary.md`` (final return mean and 95% CI per cell; IQM and probability of improvement
of MST over dense per algorithm with stratified-bootstrap CIs, from ``rliable``),
``cross_algo.png``. Running the same command again skips finished trials and resumes
interrupted ones. See ``docs/howto/cross-algo.md``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RL_WARNINGS", "0")

ALGOS = ("mrq", "sac", "td3", "ppo")
REGIMES = ("dense", "mst", "static", "rigl", "dense-strong", "mst-plain")
SCALES_HELP = "network scales, e.g. 0.125x 1x 3x"

#: The regime of each cell, as ``TrainConfig`` fields (``encoder`` only for MR.Q).
REGIME_FIELDS: dict[str, dict[str, Any]] = {
    "dense": {"recipe": "baseline"},
    "mst": {"recipe": "mst"},
    "static": {"recipe": "mst", "encoder": "static:0.6", "critic": "static:0.6",
               "actor": "static:0.6"},
    "rigl": {"recipe": "mst", "encoder": "rigl:0.6", "critic": "rigl:0.6",
             "actor": "rigl:0.6"},
    # the 2x2 that separates MST's two changes: blocks (strong = LayerNorm + residual, types
    # 6/6/5; plain = the baseline's 4/4/3) and module-specific sparsity
    "dense-strong": {"recipe": "mst", "encoder": "dense", "critic": "dense", "actor": "dense"},
    "mst-plain": {"recipe": "baseline", "critic": "rigl:0.6", "actor": "static:0.6"},
}

_SMALL = dict(
    eval_episodes=5, threads=1, buffer_size=10_000, mask_update_interval=250,
)
#: Per-algorithm run settings of each preset (grid flags override envs/seeds/scales/steps).
PRESETS: dict[str, dict[str, Any]] = {
    # Pendulum-v1 at width x0.125: every algorithm learns it on a CPU core within minutes
    # (see docs/howto/cross-algo.md for the measured rates and why).
    "quick": {
        "algos": list(ALGOS), "regimes": ["dense", "mst"], "envs": ["gym:Pendulum-v1"],
        "seeds": [0], "scales": ["0.125x"],
        "runs": {
            "mrq": dict(_SMALL, steps=5_000, random_steps=1_000, batch_size=64,
                        eval_every=1_000, diagnostics_every=1_000, checkpoint_every=1_000),
            "sac": dict(_SMALL, steps=5_000, random_steps=1_000, batch_size=128,
                        eval_every=1_000, diagnostics_every=1_000, checkpoint_every=1_000),
            "td3": dict(_SMALL, steps=5_000, random_steps=1_000, batch_size=128,
                        eval_every=1_000, diagnostics_every=1_000, checkpoint_every=1_000),
            # SB3 zoo's Pendulum PPO settings (gamma 0.9, lr 1e-3), rollouts of 1,000 steps
            # (5 whole episodes: a PPO checkpoint needs a rollout that ends an episode)
            "ppo": dict(_SMALL, steps=40_000, rollout_steps=1_000, gamma=0.9,
                        learning_rate=1e-3, eval_every=8_000, diagnostics_every=8_000,
                        checkpoint_every=8_000),
        },
    },
    # The paper's setting: sized for a GPU cluster (--ray-address, --gpus-per-trial).
    "paper": {
        "algos": list(ALGOS), "regimes": ["dense", "mst"],
        "envs": ["dmc:dog-run", "dmc:humanoid-run"], "seeds": list(range(10)),
        "scales": ["1x", "3x", "5x"],
        "runs": {
            "mrq": dict(steps=1_000_000),
            "sac": dict(steps=1_000_000, random_steps=10_000),
            "td3": dict(steps=1_000_000, random_steps=10_000),
            # DMC episodes are 500 agent steps (action repeat 2): 2,000-step rollouts
            "ppo": dict(steps=1_000_000, rollout_steps=2_000, eval_every=10_000,
                        diagnostics_every=10_000, checkpoint_every=10_000),
        },
    },
}

RESULT_COLUMNS = ["algo", "regime", "scale", "env", "seed", "env_step", "metric", "value"]


class GridError(ValueError):
    """Bad grid input; the message is one line naming the fix."""


# -- the grid ---------------------------------------------------------------------------
def trial_name(t: dict[str, Any]) -> str:
    """``<algo>-<regime>-<scale>-<env>-s<seed>`` with ``:`` and ``/`` made safe."""
    env = t["env"].replace(":", "-").replace("/", "-")
    return f"{t['algo']}-{t['regime']}-{t['scale']}-{env}-s{t['seed']}"


def build_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The trials of the grid: ``{"algo", "regime", "scale", "env", "seed", "config"}``."""
    from torchrl_mst.config import TrainConfig
    from torchrl_mst.envs import parse_env_name

    if args.preset not in PRESETS:
        raise GridError(f"unknown --preset {args.preset!r}; valid presets: {list(PRESETS)}.")
    preset = PRESETS[args.preset]
    algos = args.algos or preset["algos"]
    regimes = args.regimes or preset["regimes"]
    for a in algos:
        if a not in ALGOS:
            raise GridError(f"unknown algorithm {a!r} in --algos; valid: {list(ALGOS)}.")
    for r in regimes:
        if r not in REGIMES:
            raise GridError(f"unknown regime {r!r} in --regimes; valid: {list(REGIMES)}.")
    envs = args.envs or preset["envs"]
    for e in envs:
        try:
            parse_env_name(e)
        except ValueError as err:
            raise GridError(f"--envs {e}: {str(err).splitlines()[0]}") from None
    seeds = args.seeds if args.seeds is not None else preset["seeds"]
    scales = args.scales or preset["scales"]
    trials = []
    for algo, regime, scale, env, seed in itertools.product(algos, regimes, scales, envs, seeds):
        fields = dict(preset["runs"][algo])
        fields.update(REGIME_FIELDS[regime])
        if algo != "mrq":
            fields.pop("encoder", None)
        if args.steps is not None:
            fields["steps"] = args.steps
        fields.update(_parse_sets(args.set or [], algo))
        fields.update(algo=algo, env=env, seed=seed, scale=scale, device=args.device)
        try:
            cfg = TrainConfig(**fields)
        except ValueError as err:
            raise GridError(f"{algo}/{regime}/{env}: {str(err).splitlines()[0]}") from None
        trial = {"algo": algo, "regime": regime, "scale": scale, "env": env, "seed": seed,
                 "config": cfg.to_dict()}
        trial["name"] = trial_name(trial)
        trials.append(trial)
    if not trials:
        raise GridError("the grid is empty (no algos, regimes, envs, seeds or scales).")
    return trials


def _parse_sets(items: list[str], algo: str) -> dict[str, Any]:
    """``--set [ALGO.]FIELD=VALUE`` -> config fields for ``algo`` (JSON values, else text)."""
    from torchrl_mst.config import TrainConfig

    names = {f.name for f in __import__("dataclasses").fields(TrainConfig)}
    fields = {}
    for item in items:
        key, sep, text = item.partition("=")
        target, _, name = key.rpartition(".")
        if not sep or name not in names or (target and target not in ALGOS):
            raise GridError(
                f"--set {item!r}: expected [ALGO.]FIELD=VALUE with FIELD a `torchrl-mst train` "
                "option (e.g. random_steps=100, ppo.rollout_steps=512)."
            )
        if target and target != algo:
            continue
        try:
            fields[name] = json.loads(text)
        except ValueError:
            fields[name] = text
    return fields


def _with_defaults(trials: Any) -> Any:
    """Saved trials with each config passed through ``TrainConfig`` again.

    A grid made before a release that added a config field (with a default) is still the
    same grid: its saved configs just lack the field.
    """
    from torchrl_mst.config import TrainConfig

    if not isinstance(trials, list):
        return trials
    out = []
    for t in trials:
        try:
            out.append({**t, "config": TrainConfig(**t["config"]).to_dict()})
        except (KeyError, TypeError, ValueError):
            out.append(t)  # not a config this version understands: compared as saved
    return out


def claim_out_dir(out: Path, trials: list[dict[str, Any]], command: str) -> None:
    """Write ``grid.json``, or check that the one already there is this grid."""
    spec = {"trials": [{k: t[k] for k in ("name", "config")} for t in trials]}
    path = out / "grid.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        if _with_defaults(old.get("trials")) != spec["trials"]:
            raise GridError(
                f"--out {out} holds another grid ({len(old.get('trials', []))} trials, made by "
                f"`{old.get('command', '?')}`); choose another --out, or rerun that command to "
                "continue it."
            )
        return
    if out.exists() and any(out.iterdir()):
        raise GridError(f"--out {out} is not empty and holds no grid.json; choose another --out.")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": command, **spec}, indent=1) + "\n")


# -- execution --------------------------------------------------------------------------
def run_in_process(
    trials: list[dict[str, Any]], out: Path, max_retries: int
) -> dict[str, dict[str, Any]]:
    """Run the trials one after another here; a failure is retried, then reported."""
    from torchrl_mst.trainers.grid import run_trial

    outcomes = {}
    for i, t in enumerate(trials, 1):
        for attempt in range(max_retries + 1):
            try:
                res = run_trial(t["config"], str(out / "trials" / t["name"]))
                outcomes[t["name"]] = {**res, "attempts": attempt + 1, "error": ""}
                break
            except Exception as err:  # reported in the summary, never dropped
                outcomes[t["name"]] = {"action": "failed", "attempts": attempt + 1,
                                       "error": f"{type(err).__name__}: {err}".splitlines()[0]}
        print(f"[cross_algo] {i}/{len(trials)} {t['name']}: {outcomes[t['name']]['action']}",
              flush=True)
    return outcomes


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail within seconds when nobody answers at ``address`` (ray.init would hang)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise GridError(f"--ray-address {address!r}: expected HOST:PORT or ray://HOST:PORT.")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise GridError(
            f"--ray-address {address}: nobody answers ({err.strerror or err}); start the "
            "cluster (`ray start --head`) or fix the address."
        ) from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise GridError(
            "--workers / --ray-address need Ray: pip install 'torchrl-mst[ray]'."
        ) from None
    return ray


def run_on_ray(
    trials: list[dict[str, Any]], out: Path, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """One Ray task per trial, with the trial's resources and retries."""
    ray = _import_ray()
    if args.ray_address:
        _check_reachable(args.ray_address)
        ray.init(address=args.ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.workers, num_gpus=None, include_dashboard=False,
                 log_to_driver=False)
    try:
        from torchrl_mst.trainers.grid import run_trial

        task = ray.remote(run_trial).options(
            num_cpus=args.cpus_per_trial,
            num_gpus=args.gpus_per_trial,
            max_retries=args.max_retries,
            retry_exceptions=True,
        )
        refs = {t["name"]: task.remote(t["config"], str((out / "trials" / t["name"]).resolve()))
                for t in trials}
        outcomes = {}
        pending = {ref: name for name, ref in refs.items()}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            try:
                res = ray.get(done[0])
                outcomes[name] = {**res, "attempts": None, "error": ""}
            except Exception as err:
                outcomes[name] = {"action": "failed", "attempts": args.max_retries + 1,
                                  "error": f"{type(err).__name__}: {err}".splitlines()[0]}
            print(f"[cross_algo] {len(outcomes)}/{len(trials)} {name}: "
                  f"{outcomes[name]['action']}", flush=True)
        return outcomes
    finally:
        ray.shutdown()


# -- results ----------------------------------------------------------------------------
def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def collect_results(trials: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Long-format rows of every trial: eval returns and per-module diagnostics."""
    rows = []
    for t in trials:
        run = out / "trials" / t["name"]
        key = {k: t[k] for k in ("algo", "regime", "scale", "env", "seed")}
        for r in _read_csv(run / "evals.csv"):
            rows.append({**key, "env_step": int(float(r["step"])), "metric": "return",
                         "value": float(r["return_mean"])})
        for r in _read_csv(run / "diagnostics.csv"):
            for metric, value in r.items():
                if metric != "step" and value != "":
                    rows.append({**key, "env_step": int(float(r["step"])), "metric": metric,
                                 "value": float(value)})
    return rows


def _final_returns(trials: list[dict[str, Any]], out: Path) -> dict[str, float]:
    finals = {}
    for t in trials:
        run = out / "trials" / t["name"]
        from torchrl_mst.trainers.grid import trial_finished

        evals = _read_csv(run / "evals.csv")
        if evals and trial_finished(run):
            finals[t["name"]] = float(evals[-1]["return_mean"])
    return finals


def _trial_wall_time(run: Path) -> float:
    """Training + evaluation seconds of a run (its last evals.csv row; 0 if none)."""
    evals = _read_csv(run / "evals.csv")
    return float(evals[-1]["wall_time"]) if evals else 0.0


def _mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of a Student-t 95% CI (NaN for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def summarise(
    trials: list[dict[str, Any]], out: Path, outcomes: dict[str, dict[str, Any]], command: str,
    reps: int = 2_000, elapsed: float | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write summary.csv and summary.md; return (cells, comparisons).

    ``elapsed``: seconds this invocation spent running (or skipping) the trials.
    """
    finals = _final_returns(trials, out)
    cells: dict[tuple, list[float]] = {}
    for t in trials:
        key = (t["algo"], t["regime"], t["scale"], t["env"])
        cells.setdefault(key, [])
        if t["name"] in finals:
            cells[key].append(finals[t["name"]])
    cell_rows = []
    for (algo, regime, scale, env), vals in cells.items():
        mean, half = _mean_ci(vals) if vals else (math.nan, math.nan)
        cell_rows.append({"algo": algo, "regime": regime, "scale": scale, "env": env,
                          "seeds": len(vals), "final_return_mean": mean, "ci95_low": mean - half,
                          "ci95_high": mean + half})
    comparisons = compare_mst_dense(trials, finals, reps)
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(cell_rows[0]))
        w.writeheader()
        w.writerows(cell_rows)
    failed = {n: o for n, o in outcomes.items() if o.get("action") == "failed"}
    lines = [
        "# Cross-algorithm MST summary", "", f"Command: `{command}`", "",
        "Final evaluation return (mean over seeds; 95% Student-t CI, NaN with one seed).", "",
        "| algo | regime | scale | env | seeds | final return | 95% CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in cell_rows:
        lines.append(f"| {r['algo']} | {r['regime']} | {r['scale']} | {r['env']} | {r['seeds']} | "
                     f"{r['final_return_mean']:.1f} | [{r['ci95_low']:.1f}, "
                     f"{r['ci95_high']:.1f}] |")
    lines += ["", "MST vs dense per algorithm, across tasks (scores min-max normalised per task; "
              f"stratified bootstrap, {reps} reps, rliable):", ""]
    if comparisons:
        lines += ["| algo | IQM dense [95% CI] | IQM mst [95% CI] | P(mst > dense) [95% CI] |",
                  "|---|---|---|---|"]
        for c in comparisons:
            lines.append(
                f"| {c['algo']} | {c['iqm_dense']:.3f} [{c['iqm_dense_low']:.3f}, "
                f"{c['iqm_dense_high']:.3f}] | {c['iqm_mst']:.3f} [{c['iqm_mst_low']:.3f}, "
                f"{c['iqm_mst_high']:.3f}] | {c['poi']:.3f} [{c['poi_low']:.3f}, "
                f"{c['poi_high']:.3f}] |")
    else:
        lines.append("(no algorithm has both dense and mst trials finished)")
    lines += ["", f"Trials: {len(trials)}; finished: {len(finals)}; failed after retries: "
              f"{len(failed)}."]
    trial_time = sum(_trial_wall_time(out / "trials" / t["name"]) for t in trials)
    timing = f"Wall time of the trials' training and evaluation, summed: {trial_time:.0f} s"
    if elapsed is not None:
        timing += f"; running (or skipping) the trials in this invocation: {elapsed:.0f} s"
    lines += ["", timing + "."]
    for name, o in sorted(failed.items()):
        lines.append(f"- FAILED {name} ({o['attempts']} attempts): {o['error']}")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    with (out / "comparisons.json").open("w") as f:
        json.dump(comparisons, f, indent=1)
    return cell_rows, comparisons


def compare_mst_dense(
    trials: list[dict[str, Any]], finals: dict[str, float], reps: int
) -> list[dict[str, Any]]:
    """IQM of dense and MST and P(MST > dense) per algorithm, with rliable's bootstrap CIs.

    Tasks are (env, scale) pairs; runs are seeds. Scores are min-max normalised per task
    over every finished trial of that task, so that IQM aggregates across tasks.
    """
    import numpy as np

    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError:
        raise GridError(
            "summaries need rliable: pip install 'torchrl-mst[bench]'."
        ) from None
    out = []
    for algo in dict.fromkeys(t["algo"] for t in trials):
        tasks = sorted({(t["env"], t["scale"]) for t in trials if t["algo"] == algo})
        seeds = sorted({t["seed"] for t in trials if t["algo"] == algo})
        scores = {}
        for regime in ("dense", "mst"):
            m = np.full((len(seeds), len(tasks)), np.nan)
            for t in trials:
                if t["algo"] == algo and t["regime"] == regime and t["name"] in finals:
                    m[seeds.index(t["seed"]), tasks.index((t["env"], t["scale"]))] = finals[
                        t["name"]]
            scores[regime] = m
        if any(np.isnan(m).any() for m in scores.values()):
            continue
        both = np.concatenate([scores["dense"], scores["mst"]])
        lo, hi = both.min(0), both.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        norm = {k: (v - lo) / span for k, v in scores.items()}
        with warnings.catch_warnings():  # rliable 1.2 passes arch a deprecated random_state
            warnings.simplefilter("ignore", FutureWarning)
            iqm, iqm_ci = rly.get_interval_estimates(
                norm, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps,
                random_state=np.random.RandomState(0))
            poi, poi_ci = rly.get_interval_estimates(
                {"mst,dense": [norm["mst"], norm["dense"]]}, metrics.probability_of_improvement,
                reps=reps, random_state=np.random.RandomState(0))
        out.append({
            "algo": algo, "tasks": len(tasks), "seeds": len(seeds),
            "iqm_dense": float(iqm["dense"][0]), "iqm_dense_low": float(iqm_ci["dense"][0][0]),
            "iqm_dense_high": float(iqm_ci["dense"][1][0]),
            "iqm_mst": float(iqm["mst"][0]), "iqm_mst_low": float(iqm_ci["mst"][0][0]),
            "iqm_mst_high": float(iqm_ci["mst"][1][0]),
            "poi": float(np.ravel(poi["mst,dense"])[0]),
            "poi_low": float(np.ravel(poi_ci["mst,dense"][0])[0]),
            "poi_high": float(np.ravel(poi_ci["mst,dense"][1])[0]),
        })
    return out


def plot(rows: list[dict[str, Any]], out: Path) -> Path:
    """Return curves per algorithm (mean over seeds per regime), critic diagnostics below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(dict.fromkeys(r["algo"] for r in rows)) or ["none"]
    panels = [("return", "eval return"), ("critic/dormant_ratio", "critic dormant ratio"),
              ("critic/stable_rank", "critic stable rank")]
    fig, axes = plt.subplots(len(panels), len(algos), figsize=(4 * len(algos), 8),
                             squeeze=False)
    for j, algo in enumerate(algos):
        for i, (metric, label) in enumerate(panels):
            ax = axes[i][j]
            series: dict[str, dict[int, list[float]]] = {}
            for r in rows:
                if r["algo"] == algo and r["metric"] == metric:
                    lab = f"{r['regime']} {r['scale']} {r['env']}"
                    series.setdefault(lab, {}).setdefault(r["env_step"], []).append(r["value"])
            for lab, pts in sorted(series.items()):
                xs = sorted(pts)
                ax.plot(xs, [sum(pts[x]) / len(pts[x]) for x in xs], label=lab)
            if i == 0:
                ax.set_title(algo)
                if series:
                    ax.legend(fontsize=7)
            if j == 0:
                ax.set_ylabel(label)
            if i == len(panels) - 1:
                ax.set_xlabel("env steps")
    fig.tight_layout()
    path = out / "cross_algo.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_results(rows: list[dict[str, Any]], out: Path) -> None:
    """``results.csv``: one row per (algo, regime, scale, env, seed, env_step, metric)."""
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        w.writeheader()
        w.writerows(rows)


# -- exports in the layouts of published results ----------------------------------------
#: The names the MR.Q release's result files give a benchmark's envs ("Env: Dmc-walker-walk").
_MRQ_ENV_PREFIX = {"dmc": "Dmc", "gym": "Gym"}


def _exp_name(row: dict[str, Any]) -> str:
    return f"{row['algo']}-{row['regime']}-{row['scale']}"


def _bare_env(env: str) -> str:
    """``dmc:walker-walk -> walker-walk``, ``gym:Pendulum-v1 -> Pendulum-v1``."""
    return env.split(":", 1)[1]


def write_simbav2_layout(rows: list[dict[str, Any]], path: Path) -> None:
    """Eval returns as the long CSV the SimbaV2 authors publish for every baseline.

    Header ``,exp_name,env_name,seed,metric,env_step,value`` (a leading row index), one row
    per (experiment, env, seed, env step), metric ``avg_return``, env names without the
    backend (``walker-walk``, ``Pendulum-v1``), experiment ``<algo>-<regime>-<scale>``.
    """
    returns = sorted(
        (r for r in rows if r["metric"] == "return"),
        key=lambda r: (_exp_name(r), r["env"], int(r["env_step"]), int(r["seed"])),
    )
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "exp_name", "env_name", "seed", "metric", "env_step", "value"])
        for i, r in enumerate(returns):
            w.writerow([i, _exp_name(r), _bare_env(r["env"]), int(r["seed"]), "avg_return",
                        int(r["env_step"]), f"{float(r['value']):.5f}"])


def _mrq_cell(text: str, last: bool) -> str:
    """A cell of the MR.Q release's tables: padded with tabs to the next 16-column stop."""
    return text if last else text + "\t" * (2 if len(text) < 8 else 1)


def write_mrq_layout(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """Eval returns as the MR.Q release's ``results/<benchmark>_results.txt`` tables.

    One file per experiment (``<algo>-<regime>-<scale>_results.txt``); per env a block
    ``--------------------`` / ``Env: Dmc-walker-walk`` / ``Timestep  Seed 0  Seed 1 ...``
    with one line per evaluated step, values ``%.5f`` and tab-aligned like the release's
    files. A seed without an evaluation at a step gets ``nan``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, dict[int, dict[int, float]]]] = {}
    for r in rows:
        if r["metric"] != "return":
            continue
        env = tables.setdefault(_exp_name(r), {}).setdefault(r["env"], {})
        env.setdefault(int(r["env_step"]), {})[int(r["seed"])] = float(r["value"])
    paths = []
    for exp, envs in sorted(tables.items()):
        lines = []
        for env, steps in sorted(envs.items()):
            backend = env.split(":", 1)[0]
            seeds = sorted({s for per_step in steps.values() for s in per_step})
            lines += ["-" * 20, f"Env: {_MRQ_ENV_PREFIX[backend]}-{_bare_env(env)}"]
            head = ["Timestep"] + [f"Seed {s}" for s in seeds]
            lines.append("".join(_mrq_cell(h, i == len(head) - 1) for i, h in enumerate(head)))
            for step in sorted(steps):
                cells = [str(step)] + [f"{steps[step].get(s, math.nan):.5f}" for s in seeds]
                lines.append("".join(
                    _mrq_cell(c, i == len(cells) - 1) for i, c in enumerate(cells)))
        lines.append("-" * 20)
        path = folder / f"{exp}_results.txt"
        path.write_text("\n".join(lines) + "\n")
        paths.append(path)
    return paths


def export_published(rows: list[dict[str, Any]], out: Path) -> None:
    """``published/``: the eval returns in the SimbaV2 and MR.Q result layouts."""
    folder = out / "published"
    folder.mkdir(exist_ok=True)
    write_simbav2_layout(rows, folder / "simbav2_layout.csv")
    write_mrq_layout(rows, folder / "mrq_layout")


# -- command line -----------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="cross_algo.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick", help=f"one of {list(PRESETS)} (default quick)")
    p.add_argument("--out", default="runs/cross_algo", help="output directory of the grid")
    p.add_argument("--algos", nargs="+", help=f"subset of {list(ALGOS)}")
    p.add_argument("--regimes", nargs="+", help=f"subset of {list(REGIMES)}")
    p.add_argument("--envs", nargs="+", help="dmc:<domain>-<task> or gym:<id>")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds")
    p.add_argument("--scales", nargs="+", help=SCALES_HELP)
    p.add_argument("--steps", type=int, help="env steps of every trial (overrides the preset)")
    p.add_argument("--device", default="cpu", help="torch device of every trial")
    p.add_argument("--set", action="append", metavar="[ALGO.]FIELD=VALUE",
                   help="override a run setting of every trial (or of one algorithm's)")
    p.add_argument("--workers", type=int, help="start a local Ray cluster with N CPUs")
    p.add_argument("--ray-address", help="use an existing Ray cluster (HOST:PORT, ray://..)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="Ray CPUs per trial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="Ray GPUs per trial (fractions share a GPU)")
    p.add_argument("--max-retries", type=int, default=1,
                   help="retries of a failed trial before it is reported as failed")
    p.add_argument("--bootstrap-reps", type=int, default=2_000, help="rliable bootstrap reps")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or continue) the grid and write its summary."""
    args = parse_args(argv)
    command = "python benchmarks/cross_algo.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    try:
        if args.workers is not None and args.ray_address:
            raise GridError("--workers starts a local cluster, --ray-address uses one: not both.")
        if args.workers is not None and args.workers < 1:
            raise GridError(f"--workers must be >= 1, got {args.workers}.")
        if args.max_retries < 0:
            raise GridError(f"--max-retries must be >= 0, got {args.max_retries}.")
        if args.workers is not None or args.ray_address:
            _import_ray()
        trials = build_grid(args)
        out = Path(args.out)
        claim_out_dir(out, trials, command)
        t0 = time.perf_counter()
        if args.workers is not None or args.ray_address:
            outcomes = run_on_ray(trials, out, args)
        else:
            outcomes = run_in_process(trials, out, args.max_retries)
        rows = collect_results(trials, out)
        write_results(rows, out)
        export_published(rows, out)
        summarise(trials, out, outcomes, command, reps=args.bootstrap_reps,
                  elapsed=time.perf_counter() - t0)
        plot(rows, out)
    except GridError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[cross_algo] {len(trials)} trials in {time.perf_counter() - t0:.0f} s; "
          f"summary: {out / 'summary.md'}", flush=True)
    return 1 if any(o.get("action") == "failed" for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
