"""Integrations of :mod:`torchrl_mst.sparse` with TorchRL's loss modules."""

from .torchrl_losses import MASK_HOLDER, loss_network_names, sparsify_loss

__all__ = ["MASK_HOLDER", "loss_network_names", "sparsify_loss"]
