"""MR.Q's training step (:class:`MRQ`), the training loop and checkpoints."""

from torchrl_mst.trainers.mrq import MRQ, MRQPolicy, make_mrq_policies

__all__ = ["MRQ", "MRQPolicy", "make_mrq_policies"]
