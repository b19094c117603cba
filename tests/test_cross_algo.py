"""benchmarks/cross_algo.py: grids in-process and on a real local Ray, resume, bad input."""

import csv
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from torchrl_mst.config import TrainConfig
from torchrl_mst.trainers.grid import trial_finished
from torchrl_mst.trainers.loop import train

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cross_algo.py"
spec = importlib.util.spec_from_file_location("cross_algo", SCRIPT)
cross_algo = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cross_algo)

TINY = [
    "--algos", "sac", "ppo", "--regimes", "dense", "mst", "--scales", "0.0625x",
    "--steps", "400", "--set", "random_steps=100", "--set", "batch_size=16",
    "--set", "eval_every=200", "--set", "diagnostics_every=200",
    "--set", "checkpoint_every=200", "--set", "eval_episodes=1",
    "--set", "ppo.rollout_steps=200", "--bootstrap-reps", "200",
]


def rows(path, drop=()):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def mtimes(out):
    return {p: p.stat().st_mtime_ns for p in (out / "trials").rglob("checkpoint.pt")}


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
    """A tiny grid run in-process after an interruption: (out dir, printed lines)."""
    local = tmp_path_factory.mktemp("grid") / "local"
    trials = cross_algo.build_grid(cross_algo.parse_args([*TINY, "--out", str(local)]))
    cross_algo.claim_out_dir(local, trials, "test")
    # an interrupted grid: the last trial (PPO) stopped at its step-200 checkpoint
    last = trials[-1]
    train(TrainConfig(**last["config"]), local / "trials" / last["name"], quiet=True,
          stop_after=200)
    assert not trial_finished(local / "trials" / last["name"])
    printed = _run_capturing([*TINY, "--out", str(local)])
    return local, last["name"], printed


def _run_capturing(argv):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cross_algo.main(argv) == 0
    return buf.getvalue()


@pytest.mark.slow
def test_interrupted_grid_completes_without_redoing_finished_trials(local_grid):
    local, last, printed = local_grid
    assert f"{last}: resumed" in printed and printed.count(": trained") == 3
    before = mtimes(local)
    again = _run_capturing([*TINY, "--out", str(local)])  # nothing redone
    assert again.count(": skipped") == 4 and mtimes(local) == before
    for name in ("results.csv", "summary.csv", "summary.md", "cross_algo.png", "grid.json"):
        assert (local / name).is_file(), name
    results = rows(local / "results.csv")
    assert list(results[0]) == cross_algo.RESULT_COLUMNS
    metrics = {r["metric"] for r in results}
    assert {"return", "critic/dormant_ratio", "critic/stable_rank", "actor/stable_rank"} <= metrics
    summary = (local / "summary.md").read_text()
    assert "P(mst > dense)" in summary and "failed after retries: 0" in summary
    assert "running (or skipping) the trials in this invocation:" in summary
    # the published-layout exports hold exactly the eval returns of results.csv
    returns = {(f"{r['algo']}-{r['regime']}-{r['scale']}", r["seed"], r["env_step"]):
               float(r["value"]) for r in results if r["metric"] == "return"}
    simba = rows(local / "published" / "simbav2_layout.csv")
    assert {(r["exp_name"], r["seed"], r["env_step"]): float(r["value"]) for r in simba} == (
        pytest.approx(returns, abs=1e-5))
    tables = sorted((local / "published" / "mrq_layout").glob("*_results.txt"))
    assert [t.name for t in tables] == sorted(
        {f"{exp}_results.txt" for exp, _, _ in returns})


@pytest.mark.slow
def test_grid_on_a_real_local_ray_gives_the_same_schema_and_numbers(local_grid, tmp_path):
    pytest.importorskip("ray")
    local, _, _ = local_grid
    remote = tmp_path / "ray"
    _run_capturing([*TINY, "--out", str(remote), "--workers", "2"])
    assert rows(remote / "results.csv") == rows(local / "results.csv")
    assert rows(remote / "summary.csv") == rows(local / "summary.csv")
    assert json.loads((remote / "comparisons.json").read_text()) == json.loads(
        (local / "comparisons.json").read_text())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--algos", "dqn"], "unknown algorithm 'dqn'"),
        (["--regimes", "sparse"], "unknown regime 'sparse'"),
        (["--envs", "dmc:nope-run"], "--envs dmc:nope-run"),
        (["--preset", "huge"], "unknown --preset 'huge'"),
        (["--set", "nonsense=1"], "expected [ALGO.]FIELD=VALUE"),
        (["--workers", "2", "--ray-address", "auto"], "not both"),
    ],
)
def test_bad_input_is_one_clear_line(flags, message, tmp_path, capsys):
    assert cross_algo.main([*flags, "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_grid_saved_before_a_new_config_field_is_still_the_same_grid(tmp_path):
    """A grid.json whose configs lack a field added later (with its default) is accepted."""
    args = cross_algo.parse_args([*TINY, "--out", str(tmp_path / "g")])
    trials = cross_algo.build_grid(args)
    cross_algo.claim_out_dir(tmp_path / "g", trials, "test")
    saved = json.loads((tmp_path / "g" / "grid.json").read_text())
    for t in saved["trials"]:
        del t["config"]["multistep_rule"]  # as written by a version without that field
    (tmp_path / "g" / "grid.json").write_text(json.dumps(saved))
    cross_algo.claim_out_dir(tmp_path / "g", trials, "test")  # no GridError
    for t in saved["trials"]:
        t["config"]["seed"] += 1  # a different grid is still refused
    (tmp_path / "g" / "grid.json").write_text(json.dumps(saved))
    with pytest.raises(cross_algo.GridError, match="holds another grid"):
        cross_algo.claim_out_dir(tmp_path / "g", trials, "test")


def test_out_holding_another_grid_is_refused(tmp_path, capsys):
    out = tmp_path / "g"
    trials = cross_algo.build_grid(cross_algo.parse_args([*TINY, "--out", str(out)]))
    cross_algo.claim_out_dir(out, trials, "python benchmarks/cross_algo.py --seeds 0")
    assert cross_algo.main([*TINY, "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds another grid" in err and len(err.splitlines()) == 1


def test_unreachable_ray_address_fails_within_seconds(tmp_path, capsys):
    pytest.importorskip("ray")
    t0 = time.perf_counter()
    assert cross_algo.main([*TINY, "--ray-address", "127.0.0.1:1", "--out",
                            str(tmp_path / "g")]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err.strip()
    assert "nobody answers" in err and len(err.splitlines()) == 1


def test_missing_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert cross_algo.main(["--workers", "2", "--out", str(tmp_path / "g")]) == 2
    assert "pip install 'torchrl-mst[ray]'" in capsys.readouterr().err


def test_presets_build_valid_grids():
    quick = cross_algo.build_grid(cross_algo.parse_args([]))
    assert {t["algo"] for t in quick} == {"mrq", "sac", "td3", "ppo"}
    assert {t["regime"] for t in quick} == {"dense", "mst"}
    ablation = cross_algo.build_grid(cross_algo.parse_args(
        ["--algos", "sac", "--regimes", "dense-strong", "mst-plain"]))
    cfgs = {t["regime"]: t["config"] for t in ablation}
    assert (cfgs["dense-strong"]["recipe"], cfgs["dense-strong"]["critic"],
            cfgs["dense-strong"]["actor"]) == ("mst", "dense", "dense")
    assert (cfgs["mst-plain"]["recipe"], cfgs["mst-plain"]["critic"],
            cfgs["mst-plain"]["actor"]) == ("baseline", "rigl:0.6", "static:0.6")
    paper = cross_algo.build_grid(cross_algo.parse_args(["--preset", "paper"]))
    assert len(paper) == 4 * 2 * 3 * 2 * 10
    assert {t["env"] for t in paper} == {"dmc:dog-run", "dmc:humanoid-run"}


def test_failed_trials_are_retried_then_reported(tmp_path, capsys, monkeypatch):
    import torchrl_mst.trainers.grid as grid

    calls = []

    def broken(config, out_dir):
        calls.append(out_dir)
        raise RuntimeError("boom")

    monkeypatch.setattr(grid, "run_trial", broken)
    out = tmp_path / "g"
    argv = [*TINY, "--algos", "sac", "--max-retries", "2", "--out", str(out)]
    assert cross_algo.main(argv) == 1
    assert len(calls) == 2 * 3  # two trials, 1 + 2 retries each
    summary = (out / "summary.md").read_text()
    assert "failed after retries: 2" in summary
    assert "FAILED sac-mst-0.0625x-gym-Pendulum-v1-s0 (3 attempts): RuntimeError: boom" in summary


def test_published_layouts_match_hand_written_files(tmp_path):
    """MR.Q release tables (tab stops of 16 columns) and SimbaV2's long CSV, written by hand."""
    base = {"algo": "sac", "regime": "mst", "scale": "1x", "metric": "return"}
    rows_ = [
        {**base, "env": "dmc:walker-walk", "seed": 0, "env_step": 0, "value": 1.5},
        {**base, "env": "dmc:walker-walk", "seed": 1, "env_step": 0, "value": 22.25},
        {**base, "env": "dmc:walker-walk", "seed": 0, "env_step": 5000, "value": 301.125},
        {**base, "env": "gym:Pendulum-v1", "seed": 0, "env_step": 0, "value": -1234.5},
        {**base, "metric": "critic/stable_rank", "env": "dmc:walker-walk", "seed": 0,
         "env_step": 0, "value": 9.0},
    ]
    cross_algo.write_mrq_layout(rows_, tmp_path / "mrq")
    text = (tmp_path / "mrq" / "sac-mst-1x_results.txt").read_text()
    assert text == (
        "--------------------\n"
        "Env: Dmc-walker-walk\n"
        "Timestep\tSeed 0\t\tSeed 1\n"
        "0\t\t1.50000\t\t22.25000\n"
        "5000\t\t301.12500\tnan\n"
        "--------------------\n"
        "Env: Gym-Pendulum-v1\n"
        "Timestep\tSeed 0\n"
        "0\t\t-1234.50000\n"
        "--------------------\n"
    )
    cross_algo.write_simbav2_layout(rows_, tmp_path / "simba.csv")
    assert (tmp_path / "simba.csv").read_text().splitlines() == [
        ",exp_name,env_name,seed,metric,env_step,value",
        "0,sac-mst-1x,walker-walk,0,avg_return,0,1.50000",
        "1,sac-mst-1x,walker-walk,1,avg_return,0,22.25000",
        "2,sac-mst-1x,walker-walk,0,avg_return,5000,301.12500",
        "3,sac-mst-1x,Pendulum-v1,0,avg_return,0,-1234.50000",
    ]


def test_release_layout_export_reads_back_with_the_release_side_by_side_parser(tmp_path):
    """What write_mrq_layout writes, compare_curves.read_release_table reads (per env)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "release_side_by_side"
    spec_ = importlib.util.spec_from_file_location("compare_curves", path / "compare_curves.py")
    compare = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(compare)
    base = {"algo": "mrq", "regime": "dense", "scale": "1x", "metric": "return"}
    rows_ = [
        {**base, "env": env, "seed": seed, "env_step": step, "value": 100 * seed + step / 1000 + k}
        for k, env in enumerate(["dmc:walker-walk", "dmc:walker-stand"])
        for seed in (0, 1, 2) for step in (0, 5000, 10000)
    ]
    cross_algo.write_mrq_layout(rows_, tmp_path)
    table = compare.read_release_table(tmp_path / "mrq-dense-1x_results.txt", "Dmc-walker-stand")
    assert table == {step: pytest.approx([100 * s + step / 1000 + 1 for s in (0, 1, 2)])
                     for step in (0, 5000, 10000)}
