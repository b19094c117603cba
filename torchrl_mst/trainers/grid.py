"""One trial of a benchmark grid: train, or resume, or skip a finished run directory.

:func:`run_trial` is what ``benchmarks/cross_algo.py`` runs for each cell, in-process or as
one Ray task (it lives in the package so that Ray workers import it by name). It is
idempotent: a finished run is skipped, an interrupted one resumes from its checkpoint
(bit-identically), a run that never reached a checkpoint starts again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["run_trial", "trial_finished"]


def trial_finished(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a run that reached its last step."""
    path = Path(out_dir) / "status.json"
    try:
        return bool(json.loads(path.read_text()).get("finished"))
    except (OSError, ValueError):
        return False


def run_trial(config: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Train the run ``config`` describes into ``out_dir``, or skip / resume it.

    Args:
        config: the fields of a :class:`~torchrl_mst.config.TrainConfig`.
        out_dir: the trial's run directory.

    Returns:
        ``{"out_dir", "action" ("skipped", "resumed" or "trained"), "steps", "seconds"}``.
    """
    import os

    os.environ.setdefault("MUJOCO_GL", "disable")
    os.environ.setdefault("RL_WARNINGS", "0")
    from torchrl_mst.config import TrainConfig
    from torchrl_mst.trainers.loop import _has_checkpoint, train

    out = Path(out_dir)
    t0 = time.perf_counter()
    cfg = TrainConfig(**config)
    if trial_finished(out):
        return {"out_dir": str(out), "action": "skipped", "steps": cfg.steps, "seconds": 0.0}
    if (out / "config.json").exists() and _has_checkpoint(out):
        result = train(None, out, resume=True, quiet=True)
        action = "resumed"
    else:
        # nothing to keep: the grid owns this directory and the run never checkpointed
        result = train(cfg, out, overwrite=True, quiet=True)
        action = "trained"
    return {
        "out_dir": str(out),
        "action": action,
        "steps": result.steps,
        "seconds": round(time.perf_counter() - t0, 2),
    }
