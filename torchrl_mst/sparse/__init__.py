"""torchrl_mst.sparse."""
