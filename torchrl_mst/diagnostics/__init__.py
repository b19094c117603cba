"""torchrl_mst.diagnostics."""
