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
