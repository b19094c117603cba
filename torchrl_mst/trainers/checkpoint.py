"""Atomic checkpoints and the RNG states a bit-identical resume needs."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchrl.envs import EnvBase

__all__ = [
    "env_rng_state",
    "global_rng_state",
    "load_checkpoint",
    "save_checkpoint",
    "set_env_rng_state",
    "set_global_rng_state",
]


def global_rng_state() -> dict[str, Any]:
    """States of torch's, NumPy's and Python's global RNGs."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _env_rng(env: EnvBase) -> Any:
    base = env.base_env if hasattr(env, "base_env") else env
    inner = base._env
    task = getattr(inner, "task", None)
    if task is not None and hasattr(task, "_random"):  # dm_control
        return task._random
    unwrapped = getattr(inner, "unwrapped", inner)  # gymnasium
    rng = getattr(unwrapped, "np_random", None)
    if rng is None:
        raise TypeError(f"Cannot find the RNG of env {type(inner).__name__} to checkpoint it.")
    return rng


def env_rng_state(env: EnvBase) -> Any:
    """The state of the env's own RNG (dm_control task RandomState or gymnasium Generator)."""
    rng = _env_rng(env)
    if isinstance(rng, np.random.RandomState):
        return rng.get_state()
    return rng.bit_generator.state


def set_env_rng_state(env: EnvBase, state: Any) -> None:
    """Restore what :func:`env_rng_state` returned."""
    rng = _env_rng(env)
    if isinstance(rng, np.random.RandomState):
        rng.set_state(state)
    else:
        rng.bit_generator.state = state


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file, then atomically replace ``path``."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (it holds NumPy RNG states)."""
    return torch.load(path, weights_only=False)
