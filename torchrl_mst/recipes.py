"""The role x regime table: which training regime and block type each module gets.

=========  ==================  ==================  ==================
recipe     encoder             critic              actor
=========  ==================  ==================  ==================
baseline   dense, type 4       dense, type 4       dense, type 3
mst        dense, type 6       RigL 0.6, type 6    static 0.6, type 5
=========  ==================  ==================  ==================

Per-module overrides use a short syntax: ``dense``, ``static:S``, ``rigl:S``, ``set:S``,
``prune:S`` (dense-to-sparse, Zhu & Gupta, pruning between 20% and 80% of training) and
``grow:S`` (sparse-to-dense from ``S``, dense by ``sparse_stop_fraction`` of training).
"""

from __future__ import annotations

from dataclasses import dataclass

from torchrl_mst.modules.blocks import BlockType, block_spec
from torchrl_mst.modules.presets import MODULE_NAMES

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
    stop_fraction: float = 0.8,
):
    """Turn ``"rigl:0.6"`` (etc.) into a regime of :mod:`torchrl_mst.sparse`.

    Args:
        text: ``dense``, ``static:S``, ``rigl:S``, ``set:S``, ``prune:S`` or ``grow:S``.

    Keyword Args:
        total_steps: optimizer steps of the module over the whole run; schedules
            (``stop_step``, pruning window) are fractions of it.
        update_interval: RigL/SET (and pruning/growth) update interval in optimizer steps.
        drop_fraction: RigL/SET initial drop fraction.
        stop_fraction: fraction of training after which masks stop changing (0.8).
    """
    from torchrl_mst import sparse

    kind, _, arg = text.partition(":")
    if kind not in _REGIME_KINDS:
        raise ValueError(
            f"Unknown regime {text!r}; use one of dense, static:S, rigl:S, set:S, prune:S, grow:S "
            "with S the sparsity in [0, 1), e.g. rigl:0.6."
        )
    if kind == "dense":
        if arg:
            raise ValueError(f"'dense' takes no sparsity, got {text!r}.")
        return sparse.Dense()
    try:
        s = float(arg) if arg else 0.6
    except ValueError:
        raise ValueError(f"Sparsity in {text!r} must be a number in [0, 1).") from None
    stop = max(1, int(stop_fraction * total_steps))
    interval = max(1, min(update_interval, stop))
    if kind == "static":
        return sparse.StaticSparse(sparsity=s)
    if kind in ("rigl", "set"):
        cls = sparse.RigL if kind == "rigl" else sparse.SET
        return cls(
            sparsity=s, update_interval=interval, drop_fraction=drop_fraction, stop_step=stop
        )
    if kind == "prune":
        start = int(0.2 * total_steps)
        return sparse.GradualPruning(
            sparsity=s, start_step=start, stop_step=max(stop, start + 1), interval=interval
        )
    return sparse.GradualGrowth(initial_sparsity=s, start_step=0, stop_step=stop, interval=interval)


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
