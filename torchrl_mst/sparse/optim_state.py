r"""Optimizer state of masked, dropped and regrown weights.

Invariant kept by the controller: at every masked position the weight and *every*
parameter-shaped optimizer state tensor (Adam's ``exp_avg``, ``exp_avg_sq``,
``max_exp_avg_sq``, SGD's ``momentum_buffer``, ...) are exactly zero, so neither momentum
nor weight decay can resurrect a pruned weight.

Regrown weights and Adam's shared step counter. ``torch.optim.Adam``/``AdamW`` keep one
``step`` :math:`t` per tensor, and bias-correct with :math:`1-\beta^t`. Zeroing the moments
of a weight regrown at a large :math:`t` gives it, on its :math:`\tau`-th step and with a
constant gradient :math:`g`,

.. math:: \frac{|\Delta w|}{\eta} =
    \frac{(1-\beta_1^{\tau})/(1-\beta_1^{t+\tau})}{\sqrt{(1-\beta_2^{\tau})/(1-\beta_2^{t+\tau})}}
    \;\xrightarrow{t \to \infty}\; \frac{1-\beta_1^{\tau}}{\sqrt{1-\beta_2^{\tau}}},

which is :math:`(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.16` at :math:`\tau = 1` and peaks
near 6.5 around :math:`\tau = 10` for the default betas, while a fresh Adam moves by exactly
:math:`\eta`. (``tests/sparse/test_optim_state.py`` measures it with ``torch.optim.AdamW``.)

Treatment (``grown_moments="gradient"``, the default). At the update the dense gradient
:math:`g_0` of each grown position is known (RigL grows by it). We seed

.. math:: m = (1-\beta_1^{t})\,g_0, \qquad v = (1-\beta_2^{t})\,g_0^2

(``max_exp_avg_sq = v`` with AMSGrad; ``-g_0`` with ``maximize=True``), where :math:`t` is
the tensor's current step count. By induction, if the gradient stays :math:`g_0`, after
:math:`\tau` more steps :math:`m = (1-\beta_1^{t+\tau}) g_0` and
:math:`v = (1-\beta_2^{t+\tau}) g_0^2`, so the bias-corrected ratio is exactly
:math:`\operatorname{sign}(g_0)` on *every* step: the regrown weight moves like a fresh Adam
parameter, whatever :math:`t` is, with no per-element step counter and no per-step cost. With
noisy gradients the seed acts as a one-sample prior that decays like Adam's own history.
A grown position whose gradient was exactly 0 gets :math:`m = v = 0` (same as ``"zero"``).
For other optimizers (SGD momentum, RMSprop, ...) grown positions get zero state, which for
SGD without dampening matches a fresh momentum buffer.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = [
    "check_optimizer_owns",
    "param_group_of",
    "param_shaped_state",
    "reset_state_at",
]


def check_optimizer_owns(
    optimizer: torch.optim.Optimizer, params: Mapping[str, torch.Tensor]
) -> None:
    """Raise ``ValueError`` unless every tensor in ``params`` is a parameter of ``optimizer``.

    Args:
        optimizer: the optimizer that will train the sparsified tensors.
        params: name -> parameter.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}."
        )
    owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
    missing = [name for name, p in params.items() if id(p) not in owned]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(
            f"The optimizer does not own {len(missing)} of the {len(params)} tensors to "
            f"sparsify ({shown}). Pass the optimizer that trains this module (for TorchRL "
            "losses: the one built from loss.<net>_params), or optimizer=None."
        )


def param_group_of(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> dict:
    """The param group of ``optimizer`` that holds ``param`` (by identity)."""
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise ValueError("The optimizer does not own this tensor.")


def param_shaped_state(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> list[torch.Tensor]:
    """Optimizer state tensors of ``param`` that have its shape (moments, buffers).

    Scalars such as Adam's ``step`` are excluded.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        param: one of its parameters.

    Returns:
        The state tensors (empty before the first step).
    """
    state = optimizer.state.get(param)
    if not state:
        return []
    return [v for v in state.values() if isinstance(v, torch.Tensor) and v.shape == param.shape]


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    if not tensor.is_contiguous():
        raise ValueError(
            "Sparse training needs contiguous parameters and optimizer state; got a tensor with "
            f"shape {tuple(tensor.shape)} and strides {tensor.stride()}."
        )
    return tensor.view(-1)


def _is_adam(optimizer: torch.optim.Optimizer, state: Mapping) -> bool:
    return (
        isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))
        and "exp_avg" in state
        and "exp_avg_sq" in state
        and "step" in state
    )


@torch.no_grad()
def reset_state_at(
    optimizer: torch.optim.Optimizer,
    param: torch.Tensor,
    index: torch.Tensor,
    *,
    grad: torch.Tensor | None = None,
    mode: str = "zero",
    group: dict | None = None,
) -> None:
    r"""Re-initialise the optimizer state of ``param`` at flat positions ``index``.

    Args:
        optimizer: the optimizer owning ``param``.
        param: the parameter.
        index: flat ``int64`` positions into ``param.view(-1)``.
        grad: dense gradient of ``param`` (same shape), needed for ``mode="gradient"``.
        mode: ``"zero"``: every parameter-shaped state tensor is set to 0 at ``index`` (used
            for dropped weights, and for grown ones with ``grown_moments="zero"``).
            ``"gradient"``: as ``"zero"``, then Adam/AdamW moments are seeded with
            :math:`m = (1-\beta_1^t)g`, :math:`v = (1-\beta_2^t)g^2` (module docstring).
        group: the param group of ``param`` (looked up when omitted).
    """
    if mode not in ("zero", "gradient"):
        raise ValueError(f"Unknown mode={mode!r}; valid values are ['zero', 'gradient'].")
    state = optimizer.state.get(param)
    if not state or index.numel() == 0:
        return
    for value in param_shaped_state(optimizer, param):
        _flat(value)[index] = 0
    if mode != "gradient" or grad is None or not _is_adam(optimizer, state):
        return
    group = group if group is not None else param_group_of(optimizer, param)
    beta1, beta2 = (float(b) for b in group["betas"])
    step = float(state["step"])
    g = _flat(grad)[index].to(state["exp_avg"].dtype)
    if group.get("maximize", False):
        g = -g
    _flat(state["exp_avg"])[index] = (1.0 - beta1**step) * g
    v = (1.0 - beta2**step) * g * g
    _flat(state["exp_avg_sq"])[index] = v
    if "max_exp_avg_sq" in state:
        _flat(state["max_exp_avg_sq"])[index] = v
