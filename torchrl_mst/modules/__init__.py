"""Network blocks (architecture types 1-6), MR.Q networks, scale presets and policies."""

from torchrl_mst.modules.blocks import BLOCK_TYPES, MLP, Block, BlockType, build_mlp, init_linear
from torchrl_mst.modules.mrq import MRQActor, MRQCritic, MRQEncoder
from torchrl_mst.modules.policies import MRQPolicy, make_mrq_policies
from torchrl_mst.modules.presets import (
    MODULE_NAMES,
    SCALE_PRESETS,
    MRQNetworks,
    ScalePreset,
    count_parameters,
    get_scale_preset,
    make_mrq_networks,
)

__all__ = [
    "BLOCK_TYPES",
    "MLP",
    "MODULE_NAMES",
    "SCALE_PRESETS",
    "Block",
    "BlockType",
    "MRQActor",
    "MRQCritic",
    "MRQEncoder",
    "MRQNetworks",
    "MRQPolicy",
    "ScalePreset",
    "build_mlp",
    "count_parameters",
    "get_scale_preset",
    "init_linear",
    "make_mrq_networks",
    "make_mrq_policies",
]
