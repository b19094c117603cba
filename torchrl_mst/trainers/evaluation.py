"""The evaluation row every trainer writes to ``evals.csv``."""

from __future__ import annotations

from typing import Any

import torch
from torchrl.envs.utils import ExplorationType, set_exploration_type

__all__ = ["EVAL_COLUMNS", "evaluate_policy"]

EVAL_COLUMNS = ["step", "return_mean", "return_std", "return_min", "return_max", "wall_time"]


@torch.no_grad()
def evaluate_policy(
    eval_env: Any, policy: Any, episodes: int, *, step: int, wall_time: float
) -> dict[str, float]:
    """Returns of ``episodes`` deterministic-policy episodes on ``eval_env``, as one row.

    The row has :data:`EVAL_COLUMNS`: the step, the mean, population std, min and max of
    the episode returns, and the wall time so far.
    """
    returns = []
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(episodes):
            rollout = eval_env.rollout(
                100_000, policy, break_when_any_done=True, auto_cast_to_device=True
            )
            returns.append(float(rollout["next", "reward"].sum()))
    r = torch.tensor(returns)
    return {
        "step": step,
        "return_mean": float(r.mean()),
        "return_std": float(r.std(unbiased=False)),
        "return_min": float(r.min()),
        "return_max": float(r.max()),
        "wall_time": round(wall_time, 3),
    }
