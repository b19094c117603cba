"""Regime strings + training length -> scheduled regimes, against values computed by hand."""

import json

import pytest

from torchrl_mst.config import TrainConfig
from torchrl_mst.recipes import parse_regime
from torchrl_mst.sparse import SET, Dense, GradualGrowth, GradualPruning, RigL, StaticSparse


@pytest.mark.parametrize(
    ("text", "total", "expected"),
    [
        # stop = round(0.8 T): 800 for T = 1000; interval 1000 > 800 is cut to 800
        ("rigl:0.6", 1000, RigL(0.6, update_interval=800, stop_step=800)),
        ("rigl:0.6", 1_000_000, RigL(0.6, update_interval=1000, stop_step=800_000)),
        ("set:0.5", 10_000, SET(0.5, update_interval=1000, stop_step=8000)),
        # prune: start = round(0.2 T) = 2000, stop = 8000
        ("prune:0.7", 10_000, GradualPruning(0.7, start_step=2000, stop_step=8000, interval=1000)),
        # grow: from the start (0) to 8000
        ("grow:0.6", 10_000, GradualGrowth(0.6, start_step=0, stop_step=8000, interval=1000)),
        # rounding: 0.8 * 7 = 5.6 -> 6; 0.2 * 7 = 1.4 -> 1; interval cut to 6
        ("rigl", 7, RigL(0.6, update_interval=6, stop_step=6)),
        ("prune:0.5", 7, GradualPruning(0.5, start_step=1, stop_step=6, interval=6)),
        # half to even: 0.8 * 5 = 4.0; 0.2 * 5 = 1.0; T = 1: stop max(1, round(0.8)) = 1,
        # prune start round(0.2) = 0
        ("prune:0.5", 5, GradualPruning(0.5, start_step=1, stop_step=4, interval=4)),
        ("prune:0.5", 1, GradualPruning(0.5, start_step=0, stop_step=1, interval=1)),
        ("static:0.3", 10, StaticSparse(0.3)),
        ("dense", 10, Dense()),
    ],
)
def test_schedule_values_by_hand(text, total, expected):
    assert parse_regime(text, total_steps=total) == expected


def test_options_reach_the_regime_and_with_total_steps_is_the_same_rule():
    r = parse_regime(
        "rigl:0.6", total_steps=1000, update_interval=50, drop_fraction=0.5, stop_fraction=0.5,
        grown_moments="zero", regrow_dropped=True,
    )
    assert r == RigL(0.6, update_interval=50, drop_fraction=0.5, stop_step=500,
                     grown_moments="zero", regrow_dropped=True)
    assert r == RigL.paper(update_interval=50, drop_fraction=0.5).with_total_steps(
        1000, stop_fraction=0.5)


def test_bad_regime_strings():
    with pytest.raises(ValueError, match="Unknown regime"):
        parse_regime("rigle:0.6", total_steps=10)
    with pytest.raises(ValueError, match="number"):
        parse_regime("rigl:x", total_steps=10)
    with pytest.raises(ValueError, match="no sparsity"):
        parse_regime("dense:0.5", total_steps=10)


def test_config_names_say_what_they_set_and_old_keys_still_load(tmp_path):
    cfg = TrainConfig(mask_update_interval=20, drop_fraction=0.2, mask_stop_fraction=0.5,
                      grown_moments="zero", regrow_dropped=True)
    assert cfg.regime_options() == dict(update_interval=20, drop_fraction=0.2,
                                        stop_fraction=0.5, grown_moments="zero",
                                        regrow_dropped=True)
    old = TrainConfig().to_dict()
    for new, legacy in [("mask_update_interval", "rigl_update_interval"),
                        ("drop_fraction", "rigl_drop_fraction"),
                        ("mask_stop_fraction", "sparse_stop_fraction")]:
        old[legacy] = old.pop(new)
    for key in ("grown_moments", "regrow_dropped"):
        old.pop(key)
    old["rigl_update_interval"] = 77
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    loaded = TrainConfig.load(path)
    assert loaded.mask_update_interval == 77 and loaded.regrow_dropped is False
    with pytest.raises(ValueError, match="grown_moments"):
        TrainConfig(grown_moments="random")
