"""Regime configs: defaults from the MST spec, validation, schedules, and round trips."""

import dataclasses
import math

import pytest

from torchrl_mst.sparse import (
    SET,
    Dense,
    GradualGrowth,
    GradualPruning,
    RigL,
    StaticSparse,
)
from torchrl_mst.sparse.regimes import regime_from_dict
from torchrl_mst.sparse.schedules import (
    cosine_drop_fraction,
    cubic_progress,
    is_dynamic_update_step,
    is_gradual_update_step,
)


def test_spec_defaults():
    r = RigL()
    assert (r.sparsity, r.distribution, r.update_interval, r.drop_fraction) == (
        0.6,
        "er",
        1000,
        0.3,
    )
    assert r.stop_step is None and r.grown_moments == "gradient"
    assert StaticSparse() == StaticSparse(sparsity=0.6, distribution="er")
    assert SET().update_interval == 1000


def test_regimes_are_frozen_and_reject_unknown_fields():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RigL().sparsity = 0.5
    with pytest.raises(TypeError):
        RigL(sparsty=0.5)  # typo must not be swallowed


@pytest.mark.parametrize("cls", [StaticSparse, RigL, SET, GradualPruning])
@pytest.mark.parametrize("bad", [-0.01, 1.0, 2.0])
def test_sparsity_outside_unit_interval(cls, bad):
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        cls(sparsity=bad)


def test_field_validation():
    with pytest.raises(ValueError, match=r"outside \[0, 1\)"):
        GradualGrowth(initial_sparsity=1.0)
    with pytest.raises(ValueError, match="Unknown distribution"):
        StaticSparse(distribution="ERK")
    with pytest.raises(ValueError, match="drop_fraction"):
        RigL(drop_fraction=1.5)
    with pytest.raises(ValueError, match="update_interval"):
        RigL(update_interval=0)
    with pytest.raises(TypeError, match="int"):
        RigL(stop_step=8e5)
    with pytest.raises(TypeError):
        RigL(update_interval=True)
    with pytest.raises(ValueError, match="start_step < stop_step"):
        GradualPruning(start_step=10, stop_step=10)
    with pytest.raises(ValueError, match="grown_moments"):
        RigL(grown_moments="random")


def test_with_total_steps_fills_only_missing_fields():
    assert RigL().with_total_steps(1_000_000).stop_step == 800_000
    assert RigL(stop_step=5).with_total_steps(1_000_000).stop_step == 5
    g = GradualPruning().with_total_steps(1000)
    assert (g.start_step, g.stop_step) == (200, 800)
    assert GradualGrowth(start_step=0).with_total_steps(1000).start_step == 0
    assert StaticSparse().with_total_steps(10) == StaticSparse()
    assert Dense().with_total_steps(10) == Dense()


def test_check_ready_explains_the_fix():
    with pytest.raises(ValueError, match="with_total_steps"):
        RigL().check_ready()
    with pytest.raises(ValueError, match="start_step and stop_step"):
        GradualPruning().check_ready()
    RigL(stop_step=10, update_interval=5).check_ready()
    # an update interval past the stop step would never update the mask: say so (issue 10)
    with pytest.raises(ValueError, match=r"would never update its mask.*--mask-update-interval"):
        RigL(stop_step=10).check_ready()


@pytest.mark.parametrize(
    "regime",
    [
        Dense(),
        StaticSparse(0.3, "erk"),
        RigL(stop_step=7),
        SET(drop_fraction=0.1, stop_step=9),
        GradualPruning(0.9, 1, 5, 2),
        GradualGrowth(0.5, 0, 4, 1, "uniform", "zero"),
    ],
)
def test_dict_round_trip(regime):
    assert regime_from_dict(regime.to_dict()) == regime


def test_cosine_schedule_values():
    assert cosine_drop_fraction(0, drop_fraction=0.3, stop_step=100) == pytest.approx(0.3)
    assert cosine_drop_fraction(50, drop_fraction=0.3, stop_step=100) == pytest.approx(0.15)
    assert cosine_drop_fraction(25, drop_fraction=0.3, stop_step=100) == pytest.approx(
        0.15 * (1 + math.cos(math.pi / 4))
    )
    assert cosine_drop_fraction(100, drop_fraction=0.3, stop_step=100) == 0.0
    assert cosine_drop_fraction(150, drop_fraction=0.3, stop_step=100) == 0.0


def test_update_step_rules():
    steps = [t for t in range(1, 40) if is_dynamic_update_step(t, update_interval=10, stop_step=30)]
    assert steps == [10, 20]
    steps = [
        t for t in range(0, 40) if is_gradual_update_step(t, start_step=5, stop_step=22, interval=4)
    ]
    assert steps == [9, 13, 17, 21, 22]


def test_cubic_progress():
    assert cubic_progress(0, start_step=10, stop_step=20) == 0.0
    assert cubic_progress(15, start_step=10, stop_step=20) == pytest.approx(1 - 0.5**3)
    assert cubic_progress(25, start_step=10, stop_step=20) == 1.0
