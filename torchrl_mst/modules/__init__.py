"""torchrl_mst.modules."""
