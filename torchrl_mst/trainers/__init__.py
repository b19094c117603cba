"""MR.Q's training step (:class:`MRQ`), its metric names, the training loop and checkpoints."""

from torchrl_mst.trainers.mrq import MRQ

__all__ = ["MRQ"]
