"""torchrl_mst.integrations."""
