"""Training regimes: what happens to the weights of one module during training.

A regime is a small frozen dataclass, validated on construction, that owns its whole rule
(jaxpruner's decomposition): *when* masks change (:meth:`Regime.is_update_step`), *how many*
weights each update drops and grows (:meth:`Regime.update_sizes`), and *which* ones, through a
drop score (:meth:`Regime.drop_score`, the smallest are dropped) and a grow score
(:meth:`Regime.grow_score`, the largest are grown; ``None`` = uniformly random). The
:class:`~torchrl_mst.sparse.SparseController` is the engine that applies any regime; it holds
the state (masks, step counter, random generators) and checks no regime type.

========================  ==========================  ============  =============
regime                    schedule                    drop score    grow score
========================  ==========================  ============  =============
:class:`Dense`            never                       none          none
:class:`StaticSparse`     never                       none          none
:class:`SET`              cosine drop fraction        ``|w|``       random
:class:`RigL`             as SET                      ``|w|``       ``|grad|``
:class:`GradualPruning`   cubic, dense to sparse      ``|w|``       none
:class:`GradualGrowth`    cubic, sparse to dense      none          ``|grad|``
========================  ==========================  ============  =============

All step quantities (``update_interval``, ``start_step``, ``stop_step``, ``interval``) count
*optimizer steps of the module the regime is applied to*, i.e. calls to
``SparseController.step()``, not environment frames.

Defaults follow the MST spec: sparsity 0.6, Erdős–Rényi distribution, RigL every 1000 steps
with a drop fraction of 0.3 cosine-decayed to 0 at ``stop_step``. Schedules whose end depends
on the length of training default to ``None`` and are filled by :meth:`Regime.with_total_steps`,
the one place where fractions of training become step numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import torch

from .schedules import (
    cosine_drop_fraction,
    cubic_progress,
    is_dynamic_update_step,
    is_gradual_update_step,
)

__all__ = [
    "SET",
    "Dense",
    "Distribution",
    "GradualGrowth",
    "GradualPruning",
    "GrownMoments",
    "Regime",
    "RigL",
    "StaticSparse",
    "regime_from_dict",
]

Distribution = Literal["er", "erk", "uniform"]
"""Per-layer density rule (see :func:`~torchrl_mst.sparse.erdos_renyi_densities`)."""

GrownMoments = Literal["gradient", "zero"]
"""How the Adam moments of grown weights start: seeded from the gradient, or zero (paper)."""

_DISTRIBUTIONS: tuple[str, ...] = ("er", "erk", "uniform")
_GROWN_MOMENTS: tuple[str, ...] = ("gradient", "zero")

MST_START_FRACTION = 0.2
"""Fraction of training at which gradual pruning starts (MST spec)."""

MST_STOP_FRACTION = 0.8
"""Fraction of training at which dynamic updates and gradual schedules stop (MST spec)."""

_R = TypeVar("_R", bound="Regime")


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


def _check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{field} must be a bool, got {value!r} ({type(value).__name__}).")


@dataclass(frozen=True)
class Regime:
    """Base class of all training regimes: configuration plus the rule it implies.

    Subclasses override the rule methods below; the defaults describe a regime whose mask
    never changes.
    """

    #: Fraction of training where a gradual schedule starts, used by :meth:`with_total_steps`.
    default_start_fraction: ClassVar[float] = 0.0
    #: Whether growth ranks positions by the dense gradient (the controller then keeps it).
    grows_by_gradient: ClassVar[bool] = False

    # -- configuration ----------------------------------------------------------------
    @property
    def is_dense(self) -> bool:
        """Whether the regime leaves the module untouched (no masks)."""
        return False

    @property
    def mask_sparsity(self) -> float:
        """Global sparsity of the Erdős–Rényi allocation (the per-layer *allocated* counts)."""
        return 0.0

    @property
    def mask_distribution(self) -> Distribution:
        """Per-layer density rule of the allocation."""
        return "er"

    def with_total_steps(
        self: _R,
        total_steps: int,
        *,
        stop_fraction: float = MST_STOP_FRACTION,
        start_fraction: float | None = None,
    ) -> _R:
        """The regime with its schedule computed from the length of training.

        The one place where fractions of training become steps (the CLI goes through it
        too). Fields already set are kept. With :math:`T` = ``total_steps``:

        * ``stop_step = max(1, round(stop_fraction * T))`` (RigL, SET, gradual regimes);
        * ``start_step = round(start_fraction * T)`` (gradual regimes; default fraction 0.2
          for :class:`GradualPruning` and 0 for :class:`GradualGrowth`), and ``stop_step`` is
          raised to ``start_step + 1`` if the rounding made them meet;
        * an update interval longer than ``stop_step`` is cut to ``stop_step``.

        ``round`` is Python's (half to even).

        Args:
            total_steps: total optimizer steps of this module over the whole run.
            stop_fraction: where dynamic updates and gradual schedules stop (MST: 0.8).
            start_fraction: where gradual schedules start (``None``: the regime's default).

        Returns:
            A new regime (or ``self`` when nothing is schedule-dependent).
        """
        _check_int("total_steps", total_steps, minimum=1, allow_none=False)
        start = self.default_start_fraction if start_fraction is None else start_fraction
        if not 0.0 <= start < stop_fraction <= 1.0:
            raise ValueError(
                f"Need 0 <= start_fraction < stop_fraction <= 1, got {start} and "
                f"{stop_fraction}."
            )
        names = {f.name for f in dataclasses.fields(self)}
        values = {n: getattr(self, n) for n in names}
        updates: dict[str, int] = {}
        if "start_step" in names and values["start_step"] is None:
            updates["start_step"] = round(start * total_steps)
        if "stop_step" in names and values["stop_step"] is None:
            stop = max(1, round(stop_fraction * total_steps))
            if "start_step" in names:
                stop = max(stop, updates.get("start_step", values["start_step"]) + 1)
            updates["stop_step"] = stop
            for interval in ("update_interval", "interval"):
                if interval in names and values[interval] > stop:
                    updates[interval] = stop
        return dataclasses.replace(self, **updates) if updates else self

    def check_ready(self) -> None:
        """Raise ``ValueError`` if a schedule field is still ``None`` (see ``with_total_steps``)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form ``{"type": class name, **fields}`` (used in state dicts)."""
        return {"type": type(self).__name__, **dataclasses.asdict(self)}

    # -- the rule: schedule -----------------------------------------------------------
    def initial_active(self, allocated: int, numel: int) -> int:
        """Active weights of one layer at construction, given its allocated count."""
        return allocated

    def is_update_step(self, step: int) -> bool:
        """Whether the masks change at optimizer step ``step`` (``>= 1``)."""
        return False

    def update_sizes(self, step: int, active: int, allocated: int, numel: int) -> tuple[int, int]:
        """``(n_drop, n_grow)`` for one layer at an update step.

        Args:
            step: optimizer step of the update.
            active: active weights of the layer now.
            allocated: the layer's Erdős–Rényi kept count at :attr:`mask_sparsity`.
            numel: size of the layer.
        """
        return 0, 0

    def scheduled_drop_fraction(self, step: int) -> float | None:
        """Drop fraction :math:`f(t)` for logging (``None`` for regimes without one)."""
        return None

    # -- the rule: scores -------------------------------------------------------------
    def drop_score(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        """Score of active weights; the smallest ``|score|`` are dropped (default ``|w|``)."""
        return weight

    def grow_score(
        self, weight: torch.Tensor, grad: torch.Tensor | None
    ) -> torch.Tensor | None:
        """Score of growth candidates; the largest ``|score|`` grow (``None``: random)."""
        return None

    @property
    def grown_init(self) -> GrownMoments:
        """Optimizer state of grown weights (see :class:`RigL`'s ``grown_moments``)."""
        return "zero"

    @property
    def regrows_dropped(self) -> bool:
        """Whether a position dropped by an update may be regrown by the same update."""
        return False

    def needs_dense_grad(self, step: int) -> bool:
        """Whether the update at ``step`` reads the dense (unmasked) gradient."""
        return self.is_update_step(step) and (
            self.grows_by_gradient or self.grown_init == "gradient"
        )


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
        _check_choice("distribution", self.distribution, _DISTRIBUTIONS)

    @property
    def mask_sparsity(self) -> float:  # noqa: D102
        return self.sparsity

    @property
    def mask_distribution(self) -> Distribution:  # noqa: D102
        return self.distribution


@dataclass(frozen=True)
class SET(Regime):
    r"""Sparse Evolutionary Training (Mocanu et al. 2018): drop by magnitude, grow at random.

    Starts like :class:`StaticSparse`. At every step ``t`` with ``t % update_interval == 0``
    and ``0 < t < stop_step`` (``t`` = optimizer steps done), each sparse layer (each member
    of a stacked ensemble separately) with :math:`n_{on}` active weights:

    1. computes :math:`k = \min(\lfloor f(t)\, n_{on} \rfloor,\ n - n_{on})` with the cosine
       schedule :math:`f(t) = \tfrac{\alpha}{2}\,(1 + \cos(\pi t / T_{end}))`,
       :math:`\alpha` = ``drop_fraction``, :math:`T_{end}` = ``stop_step``;
    2. drops the :math:`k` active weights of smallest :math:`|w|` (the drop score);
    3. grows :math:`k` positions with the largest grow score (SET: uniformly random;
       :class:`RigL`: :math:`|\partial L / \partial w|`) among the positions inactive
       *before* the update (default), or among all positions not kept (``regrow_dropped=True``,
       RigL's paper: a dropped-and-regrown weight keeps its value and optimizer state);
    4. sets newly grown weights to 0 and initialises their optimizer state
       (``grown_moments``), and zeroes the weights and all optimizer state at dropped
       positions.

    Per-layer active counts are unchanged by an update. Ties (equal scores) are broken by the
    controller's seeded generator.

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
            RigL's paper and the reference implementations do (first update about
            :math:`(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2` times the learning rate).
        regrow_dropped: ``False`` (default): a position dropped by an update cannot be regrown
            by the same update; ``True``: it can (RigL's paper), keeping its value.
    """

    sparsity: float = 0.6
    distribution: Distribution = "er"
    update_interval: int = 1000
    drop_fraction: float = 0.3
    stop_step: int | None = None
    grown_moments: GrownMoments = "gradient"
    regrow_dropped: bool = False

    def __post_init__(self) -> None:
        _check_sparsity("sparsity", self.sparsity)
        _check_choice("distribution", self.distribution, _DISTRIBUTIONS)
        _check_int("update_interval", self.update_interval, minimum=1, allow_none=False)
        if isinstance(self.drop_fraction, bool) or not isinstance(self.drop_fraction, (int, float)):
            raise TypeError(f"drop_fraction must be a float in [0, 1], got {self.drop_fraction!r}.")
        if not 0.0 <= self.drop_fraction <= 1.0:
            raise ValueError(
                f"drop_fraction={self.drop_fraction!r} is outside [0, 1]; it is the fraction of a "
                "layer's active weights replaced at the first update (RigL paper: 0.3)."
            )
        _check_int("stop_step", self.stop_step, minimum=1, allow_none=True)
        _check_choice("grown_moments", self.grown_moments, _GROWN_MOMENTS)
        _check_bool("regrow_dropped", self.regrow_dropped)

    def check_ready(self) -> None:  # noqa: D102
        if self.stop_step is None:
            raise ValueError(
                f"{type(self).__name__}.stop_step is None: the cosine drop-fraction schedule "
                "decays to 0 at stop_step, so it needs an end. Pass it explicitly, e.g. "
                f"{type(self).__name__}(stop_step=800_000), or call "
                ".with_total_steps(total_optimizer_steps) (MST stops at 80% of training)."
            )
        if self.update_interval > self.stop_step:
            raise ValueError(
                f"{type(self).__name__}(update_interval={self.update_interval}, "
                f"stop_step={self.stop_step}) would never update its mask (the first update "
                "comes after the last allowed step): lower update_interval (CLI: "
                "--mask-update-interval) or raise stop_step (train longer)."
            )

    @property
    def mask_sparsity(self) -> float:  # noqa: D102
        return self.sparsity

    @property
    def mask_distribution(self) -> Distribution:  # noqa: D102
        return self.distribution

    def _stop(self) -> int:
        self.check_ready()
        assert self.stop_step is not None
        return self.stop_step

    def is_update_step(self, step: int) -> bool:  # noqa: D102
        return is_dynamic_update_step(
            step, update_interval=self.update_interval, stop_step=self._stop()
        )

    def scheduled_drop_fraction(self, step: int) -> float:  # noqa: D102
        return cosine_drop_fraction(step, drop_fraction=self.drop_fraction, stop_step=self._stop())

    def update_sizes(  # noqa: D102
        self, step: int, active: int, allocated: int, numel: int
    ) -> tuple[int, int]:
        k = min(math.floor(self.scheduled_drop_fraction(step) * active), numel - active)
        return k, k

    @property
    def grown_init(self) -> GrownMoments:  # noqa: D102
        return self.grown_moments

    @property
    def regrows_dropped(self) -> bool:  # noqa: D102
        return self.regrow_dropped


@dataclass(frozen=True)
class RigL(SET):
    r"""Dynamic sparse training with gradient-based regrowth (Evci et al. 2020, "RigL").

    :class:`SET` with another grow score: the :math:`k` grown positions are those with the
    largest dense-gradient magnitude :math:`|\partial L / \partial w|` (from the batch of
    the update step). Everything else (schedule, drop rule, counts, arguments) is SET's.

    Our defaults differ from RigL's paper in two places, each one option away:
    ``grown_moments="gradient"`` (paper: ``"zero"``) and ``regrow_dropped=False`` (paper:
    ``True``). ``RigL.paper()`` builds the paper's variant.
    """

    grows_by_gradient: ClassVar[bool] = True

    @classmethod
    def paper(cls, **kwargs: Any) -> RigL:
        """RigL as in its paper: zero moments for grown weights, same-update regrowth allowed."""
        options: dict[str, Any] = {"grown_moments": "zero", "regrow_dropped": True}
        return cls(**(options | kwargs))

    def grow_score(  # noqa: D102
        self, weight: torch.Tensor, grad: torch.Tensor | None
    ) -> torch.Tensor | None:
        return grad


def _gradual_update_step(regime: GradualPruning | GradualGrowth, step: int) -> bool:
    regime.check_ready()
    assert regime.start_step is not None and regime.stop_step is not None
    return is_gradual_update_step(
        step, start_step=regime.start_step, stop_step=regime.stop_step, interval=regime.interval
    )


def _progress(regime: GradualPruning | GradualGrowth, step: int) -> float:
    assert regime.start_step is not None and regime.stop_step is not None
    return cubic_progress(step, start_step=regime.start_step, stop_step=regime.stop_step)


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

    default_start_fraction: ClassVar[float] = MST_START_FRACTION

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

    @property
    def mask_sparsity(self) -> float:  # noqa: D102
        return self.sparsity

    @property
    def mask_distribution(self) -> Distribution:  # noqa: D102
        return self.distribution

    def initial_active(self, allocated: int, numel: int) -> int:  # noqa: D102
        return numel

    def is_update_step(self, step: int) -> bool:  # noqa: D102
        return _gradual_update_step(self, step)

    def update_sizes(  # noqa: D102
        self, step: int, active: int, allocated: int, numel: int
    ) -> tuple[int, int]:
        wanted = numel - round((numel - allocated) * _progress(self, step))
        return max(0, active - wanted), 0


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
        start_step: :math:`t_0` (``with_total_steps``: 0, growth from the start);
            ``None`` must be filled.
        stop_step: :math:`t_1`, full density (MST: 80% of training); ``None`` must be filled.
        interval: optimizer steps between growth steps.
        distribution: per-layer rule for the initial densities.
        grown_moments: optimizer-state initialisation of grown weights, see :class:`SET`.
    """

    grows_by_gradient: ClassVar[bool] = True

    initial_sparsity: float = 0.6
    start_step: int | None = None
    stop_step: int | None = None
    interval: int = 1000
    distribution: Distribution = "er"
    grown_moments: GrownMoments = "gradient"

    def __post_init__(self) -> None:
        _check_sparsity("initial_sparsity", self.initial_sparsity)
        _check_gradual(self)
        _check_choice("grown_moments", self.grown_moments, _GROWN_MOMENTS)

    def check_ready(self) -> None:  # noqa: D102
        _check_gradual_ready(self)

    @property
    def mask_sparsity(self) -> float:  # noqa: D102
        return self.initial_sparsity

    @property
    def mask_distribution(self) -> Distribution:  # noqa: D102
        return self.distribution

    def is_update_step(self, step: int) -> bool:  # noqa: D102
        return _gradual_update_step(self, step)

    def update_sizes(  # noqa: D102
        self, step: int, active: int, allocated: int, numel: int
    ) -> tuple[int, int]:
        wanted = numel - round((numel - allocated) * (1.0 - _progress(self, step)))
        return 0, max(0, wanted - active)

    def grow_score(  # noqa: D102
        self, weight: torch.Tensor, grad: torch.Tensor | None
    ) -> torch.Tensor | None:
        return grad

    @property
    def grown_init(self) -> GrownMoments:  # noqa: D102
        return self.grown_moments


def _check_gradual(regime: GradualPruning | GradualGrowth) -> None:
    _check_choice("distribution", regime.distribution, _DISTRIBUTIONS)
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
