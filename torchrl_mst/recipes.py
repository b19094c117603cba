"""The role x regime table: which training regime and block type each module gets.

=========  ==================  ==================  ==================
recipe     encoder             critic              actor
=========  ==================  ==================  ==================
baseline   dense, type 4       dense, type 4       dense, type 3
mst        dense, type 6       RigL 0.6, type 6    static 0.6, type 5
=========  ==================  ==================  ==================

Per-module overrides use a short syntax: ``dense``, ``static:S``, ``rigl:S``, ``set:S``,
``prune:S`` (dense-to-sparse, Zhu & Gupta, pruning between 20% and 80% of training) and
``grow:S`` (sparse-to-dense from ``S`` at the start, dense by ``mask_stop_fraction`` of
training). :func:`parse_regime` turns one into a scheduled regime.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchrl_mst.modules.blocks import BlockType, block_spec
from torchrl_mst.modules.presets import MODULE_NAMES
from torchrl_mst.sparse import (
    SET,
    Dense,
    GradualGrowth,
    GradualPruning,
    GrownMoments,
    Regime,
    RigL,
    StaticSparse,
)
from torchrl_mst.sparse.regimes import MST_STOP_FRACTION

__all__ = ["RECIPES", "ModulePlan", "parse_block_type", "parse_regime", "resolve_recipe"]

#: Default (regime, block type) per module for each recipe.
RECIPES: dict[str, dict[str, tuple[str, BlockType]]] = {
    "baseline": {"encoder": ("dense", 4), "critic": ("dense", 4), "actor": ("dense", 3)},
    "mst": {"encoder": ("dense", 6), "critic": ("rigl:0.6", 6), "actor": ("static:0.6", 5)},
}

_REGIME_KINDS = ("dense", "static", "rigl", "set", "prune", "grow")


@dataclass(frozen=True)
class ModulePlan:
    """The resolved plan of one module: its regime string and block type."""

    regime: str
    block_type: BlockType


def parse_block_type(value: str | int) -> BlockType:
    """``"6"`` -> ``6``, ``"5post"`` -> ``"5post"``; anything else is a ``ValueError``."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    block_spec(value)  # raises with the valid choices
    return value


def parse_regime(
    text: str,
    *,
    total_steps: int,
    update_interval: int = 1000,
    drop_fraction: float = 0.3,
    stop_fraction: float = MST_STOP_FRACTION,
    grown_moments: GrownMoments = "gradient",
    regrow_dropped: bool = False,
) -> Regime:
    """Turn a regime string and a training length into a scheduled regime.

    The one function from ``"rigl:0.6"`` (etc.) and a number of optimizer steps to a regime
    ready for :func:`~torchrl_mst.sparse.sparsify`; the schedule itself is computed by
    :meth:`~torchrl_mst.sparse.Regime.with_total_steps` (e.g. ``rigl`` with
    ``total_steps=1000``: ``stop_step=800``; ``prune``: steps 200 to 800; ``grow``: 0 to 800).

    Args:
        text: ``dense``, ``static:S``, ``rigl:S``, ``set:S``, ``prune:S`` or ``grow:S``
            (``S`` the sparsity in [0, 1); 0.6 when left out).

    Keyword Args:
        total_steps: optimizer steps of the module over the whole run.
        update_interval: steps between mask updates (RigL/SET drop-and-grow, pruning and
            growth steps); cut to ``stop_step`` for short runs.
        drop_fraction: RigL/SET initial drop fraction.
        stop_fraction: fraction of training after which masks stop changing (0.8).
        grown_moments: RigL/SET/growth: Adam moments of grown weights (``"zero"``: paper).
        regrow_dropped: RigL/SET: allow regrowing a just-dropped position (``True``: paper).

    Returns:
        The scheduled regime.
    """
    kind, _, arg = text.partition(":")
    if kind not in _REGIME_KINDS:
        raise ValueError(
            f"Unknown regime {text!r}; use one of dense, static:S, rigl:S, set:S, prune:S, grow:S "
            "with S the sparsity in [0, 1), e.g. rigl:0.6."
        )
    if kind == "dense":
        if arg:
            raise ValueError(f"'dense' takes no sparsity, got {text!r}.")
        return Dense()
    try:
        s = float(arg) if arg else 0.6
    except ValueError:
        raise ValueError(f"Sparsity in {text!r} must be a number in [0, 1).") from None
    if not 0.0 <= s < 1.0:
        raise ValueError(
            f"{text!r}: the sparsity {s:g} is outside [0, 1); it is the fraction of weights set to "
            f"zero, e.g. {kind}:0.6 (60% zeros). For no zeros at all use dense."
        )
    regime: Regime
    if kind == "static":
        regime = StaticSparse(sparsity=s)
    elif kind in ("rigl", "set"):
        cls = RigL if kind == "rigl" else SET
        regime = cls(
            sparsity=s,
            update_interval=update_interval,
            drop_fraction=drop_fraction,
            grown_moments=grown_moments,
            regrow_dropped=regrow_dropped,
        )
    elif kind == "prune":
        regime = GradualPruning(sparsity=s, interval=update_interval)
    else:
        regime = GradualGrowth(
            initial_sparsity=s, interval=update_interval, grown_moments=grown_moments
        )
    return regime.with_total_steps(total_steps, stop_fraction=stop_fraction)


def resolve_recipe(
    recipe: str,
    overrides: dict[str, str | None] | None = None,
    type_overrides: dict[str, str | int | None] | None = None,
) -> dict[str, ModulePlan]:
    """Recipe defaults with per-module overrides applied: ``{module: ModulePlan}``."""
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; valid recipes are {list(RECIPES)}.")
    plans = {}
    for module in MODULE_NAMES:
        regime, block_type = RECIPES[recipe][module]
        if overrides and overrides.get(module):
            regime = overrides[module]
        if type_overrides and type_overrides.get(module) is not None:
            block_type = parse_block_type(type_overrides[module])
        plans[module] = ModulePlan(regime, block_type)
    return plans
