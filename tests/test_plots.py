"""plots: run-directory reading, seed aggregation (mean, Student-t CI), atomic PNG writing."""

import json
import math

import numpy as np
import pytest
from matplotlib import image as mpimg
from matplotlib.figure import Figure

from torchrl_mst.plots import (
    aggregate_curves,
    load_run,
    plot_run,
    plot_runs,
    t_critical,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVAL_HEADER = "step,return_mean,return_std,return_min,return_max,wall_time\n"
T_975_DF2 = 4.302652729911275  # 97.5% quantile of Student's t, 2 dof (three seeds)
T_975_DF1 = 12.706204736174707


def make_run(root, name, *, evals, diagnostics=None, config=None):
    run = root / name
    run.mkdir()
    if config is not None:
        (run / "config.json").write_text(json.dumps(config))
    text = EVAL_HEADER + "".join(
        f"{s},{m},1.0,{m - 1},{m + 2},{i * 0.5}\n" for i, (s, m) in enumerate(evals)
    )
    (run / "evals.csv").write_text(text)
    if diagnostics is not None:
        (run / "diagnostics.csv").write_text(diagnostics)
    return run


def assert_valid_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    # not a blank canvas
    assert img[..., :3].std() > 0.01


def no_temp_files(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (1, T_975_DF1),
        (2, T_975_DF2),
        (4, 2.7764451051977934),
        (10, 2.2281388519862744),
        (30, 2.0422724563012373),
    ],
)
def test_t_critical_matches_the_student_t_table(df, expected):
    assert t_critical(0.95, df) == pytest.approx(expected, rel=1e-9)


def test_t_critical_matches_scipy_over_a_grid():
    stats = pytest.importorskip("scipy.stats")
    for df in [1, 2, 3, 5, 8, 13, 21, 50, 101]:
        for conf in [0.5, 0.8, 0.9, 0.95, 0.99, 0.999]:
            expected = stats.t.ppf(0.5 + conf / 2, df)
            assert t_critical(conf, df) == pytest.approx(expected, rel=1e-9), (df, conf)


@pytest.mark.parametrize(("conf", "df"), [(0.0, 2), (1.0, 2), (0.95, 0), (0.95, 1.5)])
def test_t_critical_refuses_bad_arguments(conf, df):
    with pytest.raises(ValueError, match="must"):
        t_critical(conf, df)


def test_three_seeds_on_common_steps_give_hand_computed_mean_and_ci():
    steps = [0, 10, 20]
    agg = aggregate_curves([(steps, [1, 2, 3]), (steps, [2, 4, 6]), (steps, [3, 6, 9])])
    # per step: values (1,2,3), (2,4,6), (3,6,9) -> mean 2, 4, 6; sample std 1, 2, 3
    mean = np.array([2.0, 4.0, 6.0])
    half = T_975_DF2 * np.array([1.0, 2.0, 3.0]) / math.sqrt(3)
    np.testing.assert_array_equal(agg.steps, steps)
    np.testing.assert_allclose(agg.mean, mean)
    np.testing.assert_allclose(agg.lo, mean - half, rtol=1e-9)
    np.testing.assert_allclose(agg.hi, mean + half, rtol=1e-9)
    np.testing.assert_array_equal(agg.n, [3, 3, 3])


def test_union_grid_interpolates_inside_each_seed_and_never_extrapolates():
    a = ([0, 10, 20], [0.0, 10.0, 20.0])
    b = ([0, 20], [4.0, 8.0])  # no eval at 10: interpolated to 6
    c = ([0, 10], [2.0, 2.0])  # stopped at 10: absent at 20
    agg = aggregate_curves([a, b, c])
    np.testing.assert_array_equal(agg.steps, [0, 10, 20])
    np.testing.assert_array_equal(agg.n, [3, 3, 2])
    # step 0: (0, 4, 2) mean 2 sd 2; step 10: (10, 6, 2) mean 6 sd 4; step 20: (20, 8) mean 14
    np.testing.assert_allclose(agg.mean, [2.0, 6.0, 14.0])
    half = [T_975_DF2 * 2 / math.sqrt(3), T_975_DF2 * 4 / math.sqrt(3), T_975_DF1 * 6.0]
    np.testing.assert_allclose(agg.hi - agg.mean, half, rtol=1e-9)
    np.testing.assert_allclose(agg.mean - agg.lo, half, rtol=1e-9)

    inter = aggregate_curves([a, b, c], grid="intersection")
    np.testing.assert_array_equal(inter.steps, [0])
    np.testing.assert_allclose(inter.mean, [2.0])


def test_single_seed_steps_have_no_band_and_nan_values_are_dropped():
    agg = aggregate_curves([([0, 5, 10], [1.0, np.nan, 3.0]), ([0], [3.0])])
    np.testing.assert_array_equal(agg.steps, [0, 10])
    np.testing.assert_array_equal(agg.n, [2, 1])
    np.testing.assert_allclose(agg.mean, [2.0, 3.0])
    assert np.isfinite(agg.lo[0]) and np.isnan(agg.lo[1]) and np.isnan(agg.hi[1])
    empty = aggregate_curves([([0], [np.nan])])
    assert empty.steps.size == 0 and empty.n.size == 0


def test_confidence_level_changes_the_band_by_the_t_ratio():
    curves = [([0], [1.0]), ([0], [2.0]), ([0], [4.0])]
    wide, narrow = aggregate_curves(curves), aggregate_curves(curves, confidence=0.5)
    ratio = (wide.hi - wide.mean) / (narrow.hi - narrow.mean)
    assert ratio[0] == pytest.approx(T_975_DF2 / t_critical(0.5, 2))


@pytest.mark.parametrize(
    ("curves", "kwargs", "match"),
    [
        ([], {}, "empty"),
        ([([0, 1], [1.0])], {}, "2 steps but 1 values"),
        ([([0, 0], [1.0, 2.0])], {}, "repeats a step"),
        ([([0], [1.0])], {"grid": "common"}, "grid must be"),
        ([([0], [1.0])], {"confidence": 95}, "confidence"),
    ],
)
def test_aggregate_curves_refuses_bad_input(curves, kwargs, match):
    with pytest.raises(ValueError, match=match):
        aggregate_curves(curves, **kwargs)


# --------------------------------------------------------------------------- reading runs


def test_load_run_skips_partial_rows_keeps_last_row_per_step_and_reads_empty_cells(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "evals.csv").write_text(
        EVAL_HEADER + "10,5.0,1,4,6,1.0\n0,1.0,1,0,2,0.5\n10,7.0,1,6,8,2.0\n20,9.0,1"
    )
    (run / "diagnostics.csv").write_text(
        "step,critic/dormant_ratio,critic/mask_change\n0,0.1,\n10,0.2,0.05\n"
    )
    data = load_run(run)
    np.testing.assert_array_equal(data.evals["step"], [0, 10])  # half-written "20" row dropped
    np.testing.assert_array_equal(data.evals["return_mean"], [1.0, 7.0])  # resumed: last wins
    assert np.isnan(data.diagnostics["critic/mask_change"][0])
    assert data.metric_columns == ["critic/dormant_ratio", "critic/mask_change"]
    assert data.config == {}
    assert data.label() == "r"


def test_labels_come_from_config_then_recipe_then_directory_name(tmp_path):
    a = make_run(tmp_path, "dog-mst-s3", evals=[(0, 1.0)], config={"seed": 3})
    b = make_run(tmp_path, "b", evals=[(0, 1.0)], config={"train": {"recipe": "mst"}})
    c = make_run(tmp_path, "c", evals=[(0, 1.0)], config={"label": "x", "recipe": "mst"})
    assert load_run(a).label() == "dog-mst"
    d = make_run(tmp_path, "cartpole_runs3", evals=[(0, 1.0)])
    assert load_run(d).label() == "cartpole_runs3"  # "s3" without a separator is no seed
    assert load_run(b).label() == "mst"
    assert load_run(b).config_value("recipe") == "mst"
    assert load_run(c).label() == "x"
    assert load_run(c).label("recipe") == "mst"


def test_load_run_refuses_what_is_not_a_run_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_run(tmp_path)
    (tmp_path / "evals.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no 'step' column"):
        load_run(tmp_path)


# --------------------------------------------------------------------------- figures

DIAG = (
    "step,encoder/stable_rank,critic/stable_rank,actor/stable_rank,critic/dormant_ratio,"
    "critic/param_norm,critic/grad_norm,critic/sparsity,critic/mask_change,loss/critic\n"
    "0,30,20,10,0.0,5.0,1.0,0.6,,0.5\n"
    "100,28,18,11,0.1,5.5,0.8,0.6,0.02,0.4\n"
    "200,25,15,12,0.2,6.0,0.7,0.6,0.01,0.3\n"
)


def test_plot_run_writes_curves_png_with_every_panel(tmp_path):
    run = make_run(
        tmp_path,
        "r",
        evals=[(0, 1.0), (100, 3.0), (200, 2.0)],
        diagnostics=DIAG,
        config={"env": "dmc:cartpole-balance", "seed": 0, "recipe": "mst"},
    )
    out = plot_run(run)
    assert out == run / "curves.png"
    assert_valid_png(out)
    assert out.stat().st_mode & 0o777 == 0o644
    assert no_temp_files(run)


def test_plot_run_works_with_one_eval_and_no_diagnostics_and_with_no_evals(tmp_path):
    one = make_run(tmp_path, "one", evals=[(0, 1.0)])
    assert_valid_png(plot_run(one))
    empty = make_run(tmp_path, "empty", evals=[])
    out = plot_run(empty, tmp_path / "elsewhere" / "fig.png")
    assert_valid_png(out)


def test_plot_run_replaces_the_old_figure_and_leaves_it_intact_if_saving_fails(
    tmp_path, monkeypatch
):
    run = make_run(tmp_path, "r", evals=[(0, 1.0), (10, 2.0)])
    (run / "curves.png").write_bytes(b"old")
    plot_run(run)
    first = (run / "curves.png").read_bytes()
    assert first[:8] == PNG_MAGIC

    def broken_savefig(self, fname, **kwargs):
        fname.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_run(run)
    assert (run / "curves.png").read_bytes() == first
    assert no_temp_files(run)


def test_plot_run_refuses_an_unknown_image_suffix(tmp_path):
    run = make_run(tmp_path, "r", evals=[(0, 1.0)])
    with pytest.raises(ValueError, match="suffix"):
        plot_run(run, tmp_path / "fig.xyz")


def test_plot_runs_overlays_labels_with_seed_bands(tmp_path):
    runs = []
    for label in ("mst", "baseline"):
        for seed in range(3):
            evals = [(s, seed + s / 100 + (label == "mst")) for s in (0, 100, 200)]
            runs.append(
                make_run(
                    tmp_path,
                    f"{label}-s{seed}",
                    evals=evals[: 2 if seed == 2 else 3],  # one seed stopped early
                    diagnostics=DIAG,
                    config={"env": "dmc:cartpole-balance", "seed": seed, "recipe": label},
                )
            )
    out = plot_runs(runs, tmp_path / "cmp.png")
    assert_valid_png(out)
    out = plot_runs(runs, tmp_path / "ret.png", metrics=["return", "critic/dormant_ratio"])
    assert_valid_png(out)


def test_plot_runs_refuses_unknown_metrics_and_empty_input(tmp_path):
    run = make_run(tmp_path, "r", evals=[(0, 1.0)], diagnostics=DIAG)
    with pytest.raises(ValueError, match=r"critic/dormant_ratio"):
        plot_runs([run], tmp_path / "x.png", metrics=["critic/dormant"])
    with pytest.raises(ValueError, match="empty"):
        plot_runs([], tmp_path / "x.png")
