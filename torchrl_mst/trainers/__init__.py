"""torchrl_mst.trainers."""
