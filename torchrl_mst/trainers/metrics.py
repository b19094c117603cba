"""Names of the training-step metrics, in one place (the keys of ``MRQ.step()``'s dict).

Grouped by prefix: ``loss/``, ``grad_norm/``, ``q/``, ``reward_scale/``, ``time/`` and, on
mask updates, ``sparse/<module>/`` (keys of :meth:`torchrl_mst.sparse.UpdateStats.as_dict`).
"""

from __future__ import annotations

__all__ = [
    "LOSS_ACTOR",
    "LOSS_CRITIC",
    "LOSS_ENCODER",
    "Q_MEAN",
    "REWARD_SCALE_ONLINE",
    "REWARD_SCALE_TARGET",
    "TIME_CRITIC_ACTOR",
    "TIME_ENCODER_BURST",
    "encoder_term",
    "grad_norm",
    "sparse_prefix",
]

LOSS_ENCODER = "loss/encoder"
"""Weighted encoder loss of the last batch of the latest burst."""
LOSS_CRITIC = "loss/critic"
"""Huber TD loss of this step's critic update."""
LOSS_ACTOR = "loss/actor"
"""Actor loss of this step's actor update."""
Q_MEAN = "q/mean"
"""Mean online Q over the batch and heads."""
REWARD_SCALE_ONLINE = "reward_scale/online"
"""MR.Q's reward scale (mean |r| in the buffer at the latest target copy)."""
REWARD_SCALE_TARGET = "reward_scale/target"
"""The reward scale of the previous target copy."""
TIME_ENCODER_BURST = "time/encoder_burst"
"""Seconds spent in the 250-step events (target copy ... encoder burst) this step."""
TIME_CRITIC_ACTOR = "time/critic_actor"
"""Seconds spent in the critic and actor updates and the priority write-back."""


def encoder_term(term: str) -> str:
    """``loss/encoder_<term>``: an unweighted encoder term (dynamics, reward, done)."""
    return f"loss/encoder_{term}"


def grad_norm(module: str) -> str:
    """``grad_norm/<module>``: gradient norm before clipping."""
    return f"grad_norm/{module}"


def sparse_prefix(module: str) -> str:
    """``sparse/<module>/``: prefix of a module's mask-update statistics."""
    return f"sparse/{module}/"
