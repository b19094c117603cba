"""Training regimes: what happens to the weights of one module during training.

A regime is a small frozen dataclass, validated on construction. It holds configuration
only; the state (masks, step counter, random generator) lives in the
:class:`~torchrl_mst.sparse.SparseController` returned by :func:`~torchrl_mst.sparse.sparsify`.

All step quantities (``update_interval``, ``start_step``, ``stop_step``, ``interval``) count
*optimizer steps of the module the regime is applied to*, i.e. calls to
``SparseController.step()``, not environment frames.

Defaults follow the MST spec: sparsity 0.6, Erdős–Rényi distribution, RigL every 1000 steps
with a drop fraction of 0.3 cosine-decayed to 0 at ``stop_step``. Schedules whose end depends
on the length of training (``stop_step`` of RigL/SET, ``start_step``/``stop_step`` of the
gradual regimes) default to ``None`` and must be set before :func:`sparsify` is called, either
explicitly or with :meth:`Regime.with_total_steps` (MST: dynamic updates stop at 80% of
training, gradual schedules run from 20% to 80%).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DISTRIBUTIONS",
    "GROWN_MOMENTS",
    "SET",
    "Dense",
    "GradualGrowth",
    "GradualPruning",
    "Regime",
    "RigL",
    "StaticSparse",
    "regime_from_dict",
]

Distribution = Literal["er", "erk", "uniform"]
GrownMoments = Literal["gradient", "zero"]

DISTRIBUTIONS: tuple[str, ...] = ("er", "erk", "uniform")
"""Valid values of ``distribution`` (see :func:`~torchrl_mst.sparse.erdos_renyi_densities`)."""

GROWN_MOMENTS: tuple[str, ...] = ("gradient", "zero")
"""Valid values of ``grown_moments`` (how Adam moments of regrown weights are initialised)."""

MST_START_FRACTION = 0.2
"""Fraction of training at which gradual pruning / growth starts (MST spec)."""

MST_STOP_FRACTION = 0.8
"""Fraction of training at which dynamic updates and gradual schedules stop (MST spec)."""


def _check_sparsity(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{field} must be a float in [0, 1), got {value!r} ({type(value).__name__})."
        )
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise ValueError(
            f"{field}={value!r} is outside [0, 1). It is the fraction of weights set to zero: "
            "use e.g. 0.6 (60% zeros); 1.0 would remove every weight, use Dense() for 0 zeros "
            "without masks."
        )


def _check_int(field: str, value: Any, *, minimum: int, allow_none: bool) -> None:
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{field} must be an int >= {minimum}, got None.")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{field} must be an int >= {minimum} (a number of optimizer steps), got {value!r} "
            f"({type(value).__name__}); pass int({value!r}) if you meant it."
        )
    if value < minimum:
        raise ValueError(f"{field}={value} is below the minimum {minimum}.")


def _check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {field}={value!r}; valid values are {list(choices)}.")


@dataclass(frozen=True)
class Regime:
    """Base class of all training regimes (configuration only, immutable)."""

    def with_total_steps(
        self,
        total_steps: int,
        *,
        start_fraction: float = MST_START_FRACTION,
        stop_fraction: float = MST_STOP_FRACTION,
    ) -> Regime:
        """Fill the schedule fields left as ``None`` from the length of training.

        Fields already set are kept. ``stop_step = round(stop_fraction * total_steps)`` and
        ``start_step = round(start_fraction * total_steps)`` (gradual regimes only).

        Args:
            total_steps: total optimizer steps of this module over the whole run.
            start_fraction: where gradual pruning / growth starts (MST: 0.2).
            stop_fraction: where dynamic updates and gradual schedules stop (MST: 0.8).

        Returns:
            A new regime (or ``self`` when nothing is schedule-dependent).
        """
        _check_int("total_steps", total_steps, minimum=1, allow_none=False)
        if not 0.0 <= start_fraction < stop_fraction <= 1.0:
            raise ValueError(
                f"Need 0 <= start_fraction < stop_fraction <= 1, got {start_fraction} and "
                f"{stop_fraction}."
            )
        updates: dict[str, int] = {}
        names = {f.name for f in dataclasses.fields(self)}
        if "stop_step" in names and self.stop_step is None:
            updates["stop_step"] = max(1, round(stop_fraction * total_steps))
        if "start_step" in names and self.start_step is None:
            updates["start_step"] = round(start_fraction * total_steps)
        return dataclasses.replace(self, **updates) if updates else self

    def check_ready(self) -> None:
        """Raise ``ValueError`` if a schedule field is still ``None`` (see ``with_total_steps``)."""

    @property
    def is_dense(self) -> bool:
        """Whether the regime leaves the module untouched (no masks)."""
        return False

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form ``{"type": class name, **fields}`` (used in state dicts)."""
        return {"type": type(self).__name__, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Dense(Regime):
    """Dense training: no masks, nothing happens (MST's encoder regime)."""

    @property
    def is_dense(self) -> bool:  # noqa: D102
        return True


@dataclass(frozen=True)
class StaticSparse(Regime):
    """Static sparse training (SST): a random mask drawn once at initialisation.

    Per-layer kept counts come from :func:`~torchrl_mst.sparse.erdos_renyi_densities` at
    global ``sparsity``; within a layer the kept positions are uniformly random with an exact
    count. Masked weights stay exactly zero forever (MST's actor regime).

    Args:
        sparsity: fraction of the sparsified weights set to zero, in [0, 1).
        distribution: per-layer density rule, one of ``"er"``, ``"erk"``, ``"uniform"``.
    """

    sparsity: float = 0.6
    distribution: Distribution = "er"

    def __post_init__(self) -> None:
        _check_sparsity("sparsity", self.sparsity)
        _check_choice("distribution", self.distribution, DISTRIBUTIONS)


@dataclass(frozen=True)
class _DynamicSparse(Regime):
    sparsity: float = 0.6
    distribution: Distribution = "er"
    update_interval: int = 1000
    drop_fraction: float = 0.3
    stop_step: int | None = None
    grown_moments: GrownMoments = "gradient"

    def __post_init__(self) -> None:
        _check_sparsity("sparsity", self.sparsity)
        _check_choice("distribution", self.distribution, DISTRIBUTIONS)
        _check_int("update_interval", self.update_interval, minimum=1, allow_none=False)
        if isinstance(self.drop_fraction, bool) or not isinstance(self.drop_fraction, (int, float)):
            raise TypeError(f"drop_fraction must be a float in [0, 1], got {self.drop_fraction!r}.")
        if not 0.0 <= self.drop_fraction <= 1.0:
            raise ValueError(
                f"drop_fraction={self.drop_fraction!r} is outside [0, 1]; it is the fraction of a "
                "layer's active weights replaced at the first update (RigL paper: 0.3)."
            )
        _check_int("stop_step", self.stop_step, minimum=1, allow_none=True)
        _check_choice("grown_moments", self.grown_moments, GROWN_MOMENTS)

    def check_ready(self) -> None:
        if self.stop_step is None:
            raise ValueError(
                f"{type(self).__name__}.stop_step is None: the cosine drop-fraction schedule "
                "decays to 0 at stop_step, so it needs an end. Pass it explicitly, e.g. "
                f"{type(self).__name__}(stop_step=800_000), or call "
                ".with_total_steps(total_optimizer_steps) (MST stops at 80% of training)."
            )


@dataclass(frozen=True)
class RigL(_DynamicSparse):
    r"""Dynamic sparse training with gradient-based regrowth (Evci et al. 2020, "RigL").

    Starts like :class:`StaticSparse`. At every step ``t`` with ``t % update_interval == 0``
    and ``0 < t < stop_step`` (``t`` = optimizer steps done), each sparse layer (each member
    of a stacked ensemble separately) with :math:`n_{on}` active weights:

    1. computes :math:`k = \min(\lfloor f(t)\, n_{on} \rfloor,\ n - n_{on})` with the cosine
       schedule :math:`f(t) = \tfrac{\alpha}{2}\,(1 + \cos(\pi t / T_{end}))`,
       :math:`\alpha` = ``drop_fraction``, :math:`T_{end}` = ``stop_step``;
    2. drops the :math:`k` active weights of smallest :math:`|w|`;
    3. grows the :math:`k` positions with the largest dense-gradient magnitude
       :math:`|\partial L / \partial w|` (from the batch of step ``t``) among the positions that
       were inactive *before* the update, so a just-dropped position is never regrown in the
       same update;
    4. sets grown weights to 0 and initialises their optimizer state (``grown_moments``),
       and zeroes the weights and all optimizer state at dropped positions.

    Per-layer active counts are unchanged by an update. Ties (equal magnitudes) are broken
    by the controller's seeded generator.

    Args:
        sparsity: fraction of the sparsified weights set to zero, in [0, 1).
        distribution: per-layer density rule, ``"er"``, ``"erk"`` or ``"uniform"``.
        update_interval: optimizer steps between topology updates (MST: 1000).
        drop_fraction: :math:`\alpha`, fraction of active weights replaced at step 0, in [0, 1].
        stop_step: :math:`T_{end}`: no update at or after this step. Required (``None`` must be
            filled, e.g. by :meth:`with_total_steps`; MST uses 80% of training).
        grown_moments: ``"gradient"`` (default) seeds the Adam moments of grown weights from the
            dense gradient so that their first updates have the size of a fresh Adam's
            (:math:`m = (1-\beta_1^{t})\,g`, :math:`v = (1-\beta_2^{t})\,g^2`, see
            :func:`~torchrl_mst.sparse.optim_state.reset_state_at`); ``"zero"`` zeroes them as
            the reference implementations do (first update about
            :math:`(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2` times the learning rate).
    """


@dataclass(frozen=True)
class SET(_DynamicSparse):
    r"""Sparse Evolutionary Training (Mocanu et al. 2018): :class:`RigL` with random growth.

    Identical to :class:`RigL` (same schedule, same drop rule, same counts), except that the
    :math:`k` grown positions are drawn uniformly at random, without replacement, among the
    positions inactive before the update. Arguments are those of :class:`RigL`.
    """


@dataclass(frozen=True)
class GradualPruning(Regime):
    r"""Dense-to-sparse training by gradual magnitude pruning (Zhu & Gupta 2017).

    Starts dense. Layer :math:`l` ends with the kept count :math:`n_l - z_l` that
    :class:`StaticSparse` would give it at ``sparsity`` (so the final global sparsity is
    exact). At update steps :math:`t = t_0 + j\Delta t` (:math:`j \ge 1`, :math:`t < t_1`) and
    at :math:`t = t_1` the layer's pruned count is

    .. math:: z_l(t) = \operatorname{round}\big(z_l\,[1 - (1 - p)^3]\big),\quad
              p = \frac{t - t_0}{t_1 - t_0},

    i.e. the cubic schedule :math:`s_t = s_f + (s_i - s_f)(1 - p)^3` with :math:`s_i = 0`
    applied per layer. Each update prunes the smallest-:math:`|w|` active weights (their
    optimizer state is zeroed); pruned weights are never regrown.

    Args:
        sparsity: final fraction of sparsified weights that are zero, in [0, 1).
        start_step: :math:`t_0` (MST: 20% of training); ``None`` must be filled.
        stop_step: :math:`t_1 > t_0` (MST: 80% of training); ``None`` must be filled.
        interval: :math:`\Delta t`, optimizer steps between pruning steps.
        distribution: per-layer rule for the final densities.
    """

    sparsity: float = 0.6
    start_step: int | None = None
    stop_step: int | None = None
    interval: int = 1000
    distribution: Distribution = "er"

    def __post_init__(self) -> None:
        _check_sparsity("sparsity", self.sparsity)
        _check_gradual(self)

    def check_ready(self) -> None:  # noqa: D102
        _check_gradual_ready(self)


@dataclass(frozen=True)
class GradualGrowth(Regime):
    r"""Sparse-to-dense training: start sparse and regrow to dense by ``stop_step``.

    Starts with the :class:`StaticSparse` mask at ``initial_sparsity`` (layer :math:`l` has
    :math:`z_l` zeros). At the update steps of :class:`GradualPruning` the layer's pruned count
    is the mirror of the cubic pruning schedule,

    .. math:: z_l(t) = \operatorname{round}\big(z_l\,(1 - p)^3\big),

    so the layer is fully dense at :math:`t_1`. Each update grows the positions with the
    largest dense-gradient magnitude among the inactive ones; grown weights start at 0 and
    their optimizer state follows ``grown_moments`` (as in :class:`RigL`). Nothing is dropped.

    Args:
        initial_sparsity: fraction of zeros at the start, in [0, 1).
        start_step: :math:`t_0` (default fraction 20% of training); ``None`` must be filled.
        stop_step: :math:`t_1`, full density (MST: 80% of training); ``None`` must be filled.
        interval: optimizer steps between growth steps.
        distribution: per-layer rule for the initial densities.
        grown_moments: optimizer-state initialisation of grown weights, see :class:`RigL`.
    """

    initial_sparsity: float = 0.6
    start_step: int | None = None
    stop_step: int | None = None
    interval: int = 1000
    distribution: Distribution = "er"
    grown_moments: GrownMoments = "gradient"

    def __post_init__(self) -> None:
        _check_sparsity("initial_sparsity", self.initial_sparsity)
        _check_gradual(self)
        _check_choice("grown_moments", self.grown_moments, GROWN_MOMENTS)

    def check_ready(self) -> None:  # noqa: D102
        _check_gradual_ready(self)


def _check_gradual(regime: GradualPruning | GradualGrowth) -> None:
    _check_choice("distribution", regime.distribution, DISTRIBUTIONS)
    _check_int("start_step", regime.start_step, minimum=0, allow_none=True)
    _check_int("stop_step", regime.stop_step, minimum=1, allow_none=True)
    _check_int("interval", regime.interval, minimum=1, allow_none=False)
    if (
        regime.start_step is not None
        and regime.stop_step is not None
        and regime.stop_step <= regime.start_step
    ):
        raise ValueError(
            f"{type(regime).__name__} needs start_step < stop_step, got start_step="
            f"{regime.start_step} and stop_step={regime.stop_step}."
        )


def _check_gradual_ready(regime: GradualPruning | GradualGrowth) -> None:
    missing = [f for f in ("start_step", "stop_step") if getattr(regime, f) is None]
    if missing:
        raise ValueError(
            f"{type(regime).__name__}.{' and '.join(missing)} is None. Pass it explicitly, e.g. "
            f"{type(regime).__name__}(start_step=200_000, stop_step=800_000), or call "
            ".with_total_steps(total_optimizer_steps) (MST: from 20% to 80% of training)."
        )


_REGIMES: dict[str, type[Regime]] = {
    cls.__name__: cls for cls in (Dense, StaticSparse, RigL, SET, GradualPruning, GradualGrowth)
}


def regime_from_dict(data: dict[str, Any]) -> Regime:
    """Inverse of :meth:`Regime.to_dict`.

    Args:
        data: ``{"type": class name, **fields}``.

    Returns:
        The regime.
    """
    data = dict(data)
    name = data.pop("type", None)
    if name not in _REGIMES:
        raise ValueError(f"Unknown regime type {name!r}; valid types are {sorted(_REGIMES)}.")
    return _REGIMES[name](**data)
