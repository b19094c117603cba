"""Schedules: when topology updates happen and how large they are.

All functions are pure functions of the optimizer step ``t`` (number of optimizer steps done
so far, so the first call of ``SparseController.step()`` sees ``t = 1``).
"""

from __future__ import annotations

import math

__all__ = [
    "cosine_drop_fraction",
    "cubic_progress",
    "is_dynamic_update_step",
    "is_gradual_update_step",
]


def cosine_drop_fraction(step: int, *, drop_fraction: float, stop_step: int) -> float:
    r"""RigL's cosine-decayed drop fraction.

    .. math:: f(t) = \frac{\alpha}{2}\left(1 + \cos\frac{\pi t}{T_{end}}\right)
              \text{ for } t < T_{end}, \qquad f(t) = 0 \text{ for } t \ge T_{end},

    counted from step 0 (not from the first update), as in RigL and rigl-torch.

    Args:
        step: optimizer step :math:`t \ge 0`.
        drop_fraction: :math:`\alpha`, the value at :math:`t = 0`.
        stop_step: :math:`T_{end} \ge 1`.

    Returns:
        The fraction of active weights to replace at step ``t``.
    """
    if step >= stop_step:
        return 0.0
    return 0.5 * drop_fraction * (1.0 + math.cos(math.pi * step / stop_step))


def is_dynamic_update_step(step: int, *, update_interval: int, stop_step: int) -> bool:
    """Whether RigL/SET update the topology at optimizer step ``step``.

    Updates happen at every positive multiple of ``update_interval`` strictly before
    ``stop_step`` (at ``stop_step`` the drop fraction is 0 anyway).

    Args:
        step: optimizer step (>= 1 when called from the controller).
        update_interval: steps between updates.
        stop_step: no update at or after this step.

    Returns:
        ``True`` on update steps.
    """
    return 0 < step < stop_step and step % update_interval == 0


def is_gradual_update_step(step: int, *, start_step: int, stop_step: int, interval: int) -> bool:
    r"""Whether gradual pruning / growth updates the masks at optimizer step ``step``.

    Update steps are :math:`t_0 + j\Delta t` for :math:`j \ge 1` below :math:`t_1`, plus
    :math:`t_1` itself so the schedule always ends exactly at its target. (At :math:`t_0` the
    schedule has not moved, so there is nothing to do.)

    Args:
        step: optimizer step.
        start_step: :math:`t_0`.
        stop_step: :math:`t_1 > t_0`.
        interval: :math:`\Delta t`.

    Returns:
        ``True`` on update steps.
    """
    if step == stop_step:
        return True
    return start_step < step < stop_step and (step - start_step) % interval == 0


def cubic_progress(step: int, *, start_step: int, stop_step: int) -> float:
    r"""Fraction of the way from the initial to the final sparsity (Zhu & Gupta, power 3).

    .. math:: c(t) = 1 - (1 - p)^3, \quad p = \operatorname{clip}\!\left(
              \frac{t - t_0}{t_1 - t_0}, 0, 1\right),

    so the sparsity is :math:`s_t = s_i + (s_f - s_i)\,c(t)
    = s_f + (s_i - s_f)(1 - p)^3`: fast change early, slow near the end.

    Args:
        step: optimizer step :math:`t`.
        start_step: :math:`t_0`.
        stop_step: :math:`t_1 > t_0`.

    Returns:
        :math:`c(t) \in [0, 1]`.
    """
    p = (step - start_step) / (stop_step - start_step)
    p = min(1.0, max(0.0, p))
    return 1.0 - (1.0 - p) ** 3
