"""Pieces the side-by-side scripts share: JSONL logging, evaluation, action statistics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class JsonlLog:
    """One JSON object per line, flushed at once (a run may be stopped at any time)."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "w")
        self.t0 = time.time()

    def emit(self, **row: Any) -> None:
        self.file.write(json.dumps({**row, "wall": time.time() - self.t0}) + "\n")
        self.file.flush()


def evaluate(eval_env: Any, act: Callable[[np.ndarray], Any], episodes: int = 10) -> list[float]:
    """Returns of ``episodes`` episodes of the release's env wrapper under ``act``."""
    returns = []
    for _ in range(episodes):
        s, term, trunc = eval_env.reset(), False, False
        while not (term or trunc):
            s, _, term, trunc = eval_env.step(act(np.array(s)))
        returns.append(float(eval_env.ep_total_reward))
    return returns


def eval_row(step: int, returns: list[float]) -> dict[str, Any]:
    return {"kind": "eval", "step": step, "mean": float(np.mean(returns)), "rets": returns}


def action_stats(abs_actions: list[np.ndarray]) -> dict[str, float]:
    """Fraction of stored action components at the +-1 bound, and the mean |a|."""
    a = np.stack(abs_actions)
    return {"sat": float((a >= 0.999).mean()), "absmean": float(a.mean())}


def our_policy(nets: Any) -> Callable[[np.ndarray, bool], np.ndarray]:
    """Act with our encoder and actor: deterministic, or plus N(0, 0.2), clipped to [-1, 1]."""

    def act(state: np.ndarray, explore: bool) -> np.ndarray:
        with torch.no_grad():
            obs = torch.tensor(state, dtype=torch.float).reshape(1, -1)
            a = nets.actor(nets.encoder.zs(obs))[0]
            if explore:
                a = a + torch.randn_like(a) * 0.2
            return a.clamp(-1, 1).numpy().flatten()

    return act
