"""torchrl_mst.objectives."""
