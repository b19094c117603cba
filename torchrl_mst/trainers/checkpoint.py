"""Checkpoints that load with ``weights_only=True``; RNG states for a bit-identical resume.

A checkpoint is a nested dict of tensors and plain Python values. Values that
``weights_only`` loading refuses (NumPy arrays in RNG states, TensorDicts) are stored as
tagged dicts (``{"__type__": "ndarray", ...}``) by :func:`to_safe` and rebuilt by
:func:`from_safe`, so loading a checkpoint never unpickles arbitrary objects: a crafted
file cannot run code.

Writing is crash- and disk-full-safe (:func:`save_checkpoint`): the new file is written
next to the old one, and only once it is complete does the old one become
``checkpoint.prev.pt`` and the new one ``checkpoint.pt``. :func:`load_checkpoint` falls back
to the previous file, with a message naming both, when the newest is unreadable.
"""

from __future__ import annotations

import errno
import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.envs import EnvBase

__all__ = [
    "CheckpointError",
    "env_rng_state",
    "from_safe",
    "global_rng_state",
    "load_checkpoint",
    "previous_checkpoint_path",
    "save_checkpoint",
    "set_env_rng_state",
    "set_global_rng_state",
    "to_safe",
]

_TAG = "__type__"


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message says which file and why."""


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


# -- weights_only-safe encoding --------------------------------------------------------
def to_safe(obj: Any) -> Any:
    """Encode ``obj`` with only what ``torch.load(weights_only=True)`` accepts.

    NumPy arrays and scalars, TensorDicts and tuples are tagged dicts; dicts and lists are
    encoded recursively; tensors, ``str``, ``int``, ``float``, ``bool`` and ``None`` pass.
    """
    if isinstance(obj, torch.Tensor) or obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, np.ndarray):
        return {_TAG: "ndarray", "dtype": str(obj.dtype), "data": obj.tolist()}
    if isinstance(obj, np.generic):
        return {_TAG: "npscalar", "dtype": str(obj.dtype), "data": obj.item()}
    if isinstance(obj, TensorDictBase):
        return {
            _TAG: "tensordict",
            "batch_size": list(obj.batch_size),
            "data": to_safe(obj.to_dict()),
        }
    if isinstance(obj, torch.device):
        return {_TAG: "device", "data": str(obj)}
    if isinstance(obj, dict):
        if _TAG in obj:
            raise ValueError(f"cannot checkpoint a dict holding the reserved key {_TAG!r}.")
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {_TAG: "tuple", "data": [to_safe(v) for v in obj]}
    if isinstance(obj, list):
        return [to_safe(v) for v in obj]
    raise TypeError(
        f"cannot checkpoint a {type(obj).__name__}: checkpoints hold tensors, numbers, strings "
        "and dicts/lists/tuples of them (so that they load with weights_only=True)."
    )


def from_safe(obj: Any) -> Any:
    """Inverse of :func:`to_safe`."""
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    tag = obj.get(_TAG)
    if tag is None:
        return {k: from_safe(v) for k, v in obj.items()}
    if tag == "ndarray":
        return np.asarray(obj["data"], dtype=obj["dtype"])
    if tag == "npscalar":
        return np.dtype(obj["dtype"]).type(obj["data"])
    if tag == "tensordict":
        return TensorDict(from_safe(obj["data"]), batch_size=obj["batch_size"])
    if tag == "device":
        return torch.device(obj["data"])
    if tag == "tuple":
        return tuple(from_safe(v) for v in obj["data"])
    raise CheckpointError(f"unknown tag {tag!r} in a checkpoint (written by a newer version?).")


# -- files ----------------------------------------------------------------------------
def previous_checkpoint_path(path: str | Path) -> Path:
    """Where :func:`save_checkpoint` keeps the last good checkpoint before ``path``."""
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def _is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    # torch's zip writer reports a short write as "unexpected pos ..." or a failed write.
    return "unexpected pos" in text or "no space left" in text or "file write failed" in text


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` without ever leaving the run without a good checkpoint.

    The new file is written to ``path.tmp``; once complete, the current ``path`` (if any)
    becomes ``checkpoint.prev.pt`` and ``path.tmp`` becomes ``path``. On any failure the
    partial ``.tmp`` is deleted and the existing checkpoints are untouched.

    Raises:
        CheckpointError: the write failed; a full disk is named as such.
    """
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(to_safe(state), tmp)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, KeyboardInterrupt):
            raise
        kept = path if path.exists() else None
        keep = f" The previous checkpoint {kept} is intact." if kept else ""
        if _is_disk_full(err):
            raise CheckpointError(
                f"the disk is full: could not write the checkpoint {path} (the partial file "
                f"was removed).{keep} Free some space, then continue with `torchrl-mst train "
                f"--resume {path.parent}`."
            ) from err
        raise CheckpointError(f"could not write the checkpoint {path}: {err}.{keep}") from err
    if path.exists():
        os.replace(path, previous_checkpoint_path(path))
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any]:
    return from_safe(torch.load(path, weights_only=True, map_location="cpu"))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    If ``path`` is unreadable (truncated, corrupt, or not a checkpoint), falls back to
    ``checkpoint.prev.pt`` with a warning naming both files.

    Raises:
        CheckpointError: neither file can be read; the message names them and why.
    """
    path = Path(path)
    path.with_suffix(path.suffix + ".tmp").unlink(missing_ok=True)  # a crashed write
    prev = previous_checkpoint_path(path)
    errors = []
    for candidate in (path, prev):
        if not candidate.exists():
            continue
        try:
            state = _read(candidate)
        except Exception as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if "weights_only" in str(err) or "Unsupported global" in str(err):
                reason = (
                    "it holds Python objects that a safe load refuses (it was not written by "
                    "this version of torchrl_mst, or it was tampered with)"
                )
            errors.append(f"{candidate} ({reason})")
            continue
        if errors:
            warnings.warn(
                f"the checkpoint {errors[0]} is unreadable; resuming from the previous "
                f"checkpoint {candidate} (step {state.get('step', '?')}).",
                stacklevel=2,
            )
        return state
    if not errors:
        raise CheckpointError(f"no checkpoint at {path}.")
    raise CheckpointError(
        "no readable checkpoint: " + "; ".join(errors) + ". Start the run again in a new --out "
        "(or pass --overwrite to start over in this one)."
    )
