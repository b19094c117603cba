"""torchrl_mst.data."""
