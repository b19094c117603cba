"""Pure functions of MR.Q's objectives: multi-step return, LAP priority, two-hot loss.

Shapes: ``B`` batch, ``H`` horizon, ``K`` critic heads, ``N`` reward bins.
"""

from __future__ import annotations

from typing import Literal

import torch
from torchrl.modules.functional import symexp
from torchrl.objectives import two_hot_encode

__all__ = [
    "MultistepRule",
    "lap_priority",
    "multistep_return",
    "reward_bins",
    "two_hot_cross_entropy",
]

MultistepRule = Literal["correct", "reference"]


def multistep_return(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    rule: MultistepRule = "correct",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Discounted ``H``-step reward and the bootstrap flag.

    With ``d_t`` the termination flag of step ``t`` and ``nd_t = 1 - d_t``:

    * ``"correct"`` (default): :math:`R = \sum_t \gamma^t r_t \prod_{j<t} nd_j`: the
      terminal step's reward counts, nothing after it does.
    * ``"reference"``: :math:`R = \sum_t \gamma^t r_t\, nd_t`, the rule of the authors'
      MR.Q release, which drops the terminal reward and keeps rewards stored after it.
      Use it only to reproduce the release (parity tests).

    Both return :math:`\text{not\_done} = \prod_t nd_t`. On tasks that never terminate
    (DMC) the two rules are identical.

    Args:
        reward: ``[B, H]`` or ``[B, H, 1]`` rewards.
        terminated: same shape, bool or float termination flags.
        gamma: discount factor.
        rule: ``"correct"`` or ``"reference"``.

    Returns:
        ``(R, not_done)``, each ``[B, 1]``.
    """
    if rule not in ("correct", "reference"):
        raise ValueError(f"rule must be 'correct' or 'reference', got {rule!r}.")
    reward = reward.reshape(reward.shape[0], -1)
    not_done = 1.0 - terminated.reshape(reward.shape).to(reward.dtype)
    horizon = reward.shape[1]
    discounts = gamma ** torch.arange(horizon, dtype=reward.dtype, device=reward.device)
    if rule == "correct":
        # alive_t = prod_{j<t} nd_j
        alive = torch.cumprod(torch.cat([torch.ones_like(not_done[:, :1]), not_done[:, :-1]], 1), 1)
    else:
        alive = not_done
    ret = (reward * alive * discounts).sum(1, keepdim=True)
    return ret, not_done.prod(1, keepdim=True)


def lap_priority(
    q: torch.Tensor, target: torch.Tensor, *, alpha: float = 0.4, min_priority: float = 1.0
) -> torch.Tensor:
    r"""LAP priority of each sample: :math:`\max(\max_k |Q_k - y|, p_{min})^\alpha`.

    Args:
        q: ``[B, K]`` predictions of the critic heads.
        target: ``[B, 1]`` TD target.

    Keyword Args:
        alpha: priority exponent (MR.Q: 0.4).
        min_priority: floor on ``|delta|`` (MR.Q: 1).

    Returns:
        ``[B]`` priorities.
    """
    delta = (q - target).abs().amax(dim=-1)
    return delta.clamp(min=min_priority).pow(alpha)


def reward_bins(
    num_bins: int = 65,
    low: float = -10.0,
    high: float = 10.0,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``symexp`` of ``num_bins`` values uniform in ``[low, high]`` (MR.Q's reward support)."""
    return symexp(torch.linspace(low, high, num_bins, device=device))


def two_hot_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, bins: torch.Tensor
) -> torch.Tensor:
    r"""Cross-entropy between ``softmax(logits)`` and the two-hot encoding of ``target``.

    :math:`\ell = -\sum_n \text{twohot}(y)_n \log \text{softmax}(z)_n`. Targets beyond the
    outermost bins are clamped to the edge bin (the release crashes there).

    Args:
        logits: ``[B, N]``.
        target: ``[B]`` or ``[B, 1]`` raw (scaled) rewards.
        bins: ``[N]`` ascending support.

    Returns:
        ``[B, 1]`` per-sample losses.
    """
    encoded = two_hot_encode(target.reshape(-1), bins)
    return -(encoded * torch.log_softmax(logits, dim=-1)).sum(-1, keepdim=True)
