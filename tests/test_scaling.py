"""benchmarks/scaling.py: the ablation cells, a tiny study end to end, bad input."""

import csv
import importlib.util
import math
import sys
from pathlib import Path

import pytest

from torchrl_mst.config import TrainConfig

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"
spec = importlib.util.spec_from_file_location("scaling", SCRIPT)
scaling = importlib.util.module_from_spec(spec)
sys.modules["scaling"] = scaling
spec.loader.exec_module(scaling)

TINY = [
    "--cells", "baseline", "critic=rigl", "--scales", "0.03125x", "0.0625x", "--steps", "300",
    "--set", "random_steps=100", "--set", "batch_size=8", "--set", "buffer_size=2000",
    "--set", "eval_every=150", "--set", "diagnostics_every=150",
    "--set", "checkpoint_every=150", "--set", "eval_episodes=1",
    "--set", "target_update_interval=25", "--set", "mask_update_interval=20",
]


def test_each_ablation_cell_changes_one_module_of_the_baseline():
    base = TrainConfig(**scaling.CELLS["baseline"]).to_dict()
    for name, fields in scaling.CELLS.items():
        cfg = TrainConfig(**fields).to_dict()
        changed = {k for k in cfg if cfg[k] != base[k] and k != "label"}
        if name == "mst":
            assert changed == {"recipe"}
        elif name != "baseline":
            module, _, change = name.partition("=")
            key = f"{module}_type" if change == "strong" else module
            assert changed == {key}, name
    assert len(scaling.CELLS) == 2 + 3 * 3


def test_presets_build_valid_grids():
    for preset in scaling.PRESETS:
        trials = scaling.build_grid(scaling.parse_args(["--preset", preset]))
        assert len({t["name"] for t in trials}) == len(trials)
    paper = scaling.build_grid(scaling.parse_args(["--preset", "paper"]))
    assert {t["scale"] for t in paper} == {"1x", "3x", "5x"}
    assert {t["regime"] for t in paper} == set(scaling.CELLS)


@pytest.mark.slow
def test_tiny_study_writes_the_table_and_figure_and_resumes(tmp_path, capsys):
    out = tmp_path / "study"
    assert scaling.main([*TINY, "--out", str(out)]) == 0
    with open(out / "scaling.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["cell"], r["scale"]) for r in table] == [
        ("baseline", "0.03125x"), ("baseline", "0.0625x"),
        ("critic=rigl", "0.03125x"), ("critic=rigl", "0.0625x")]
    for r in table:
        assert r["seeds"] == "1" and math.isfinite(float(r["final_return_mean"]))
        assert 0 <= float(r["critic/dormant_ratio"]) <= 1
        for m in ("encoder", "critic", "actor"):
            assert float(r[f"{m}/stable_rank"]) >= 1
    # the table's return is the trial's last evaluation
    trial = out / "trials" / "mrq-critic=rigl-0.0625x-gym-Pendulum-v1-s0"
    with open(trial / "evals.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(table[-1]["final_return_mean"]) == pytest.approx(float(last["return_mean"]))
    assert TrainConfig.load(trial / "config.json").critic == "rigl:0.6"
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| critic=rigl | 0.0625x |" in (out / "scaling.md").read_text()
    before = {p: p.stat().st_mtime_ns for p in (out / "trials").rglob("checkpoint.pt")}
    capsys.readouterr()
    assert scaling.main([*TINY, "--out", str(out)]) == 0  # finished trials are skipped
    assert {p: p.stat().st_mtime_ns for p in before} == before


@pytest.mark.parametrize(("flags", "message"), [
    (["--cells", "critic=sparse"], "unknown cell 'critic=sparse' in --cells; valid:"),
    (["--preset", "huge"], "unknown --preset 'huge'"),
    (["--envs", "gym:Pendulum-v9"], "--envs gym:Pendulum-v9: Unknown Gymnasium id"),
])
def test_bad_input_is_one_clear_line(flags, message, tmp_path, capsys):
    assert scaling.main([*flags, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
