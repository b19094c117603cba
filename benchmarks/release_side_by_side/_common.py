"""Pieces the side-by-side scripts share. Import it before any module of the release.

Importing it puts the release's ``MRQ/`` folder (``$MRQ_RELEASE``, default
``/tmp/mrq_rel/MRQ``) first on ``sys.path``, keeps DMC off any display, and stubs
``torch.cuda.mem_get_info`` so that the release's buffer allocates on the CPU.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.environ.get("MRQ_RELEASE", "/tmp/mrq_rel/MRQ"))  # release MRQ/ dir
os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import torch
from tensordict import TensorDict

torch.cuda.mem_get_info = lambda *a, **k: (1 << 40, 1 << 40)  # the release's buffer on the CPU


def release_envs(env_name: str, seed: int) -> tuple[Any, Any]:
    """Seed numpy and torch, then the release's training env and its eval env (seed + 100)."""
    import env_preprocessing  # the release's

    np.random.seed(seed)
    torch.manual_seed(seed)
    env = env_preprocessing.Env(env_name, seed, eval_env=False)
    return env, env_preprocessing.Env(env_name, seed + 100, eval_env=True)


def transition(
    s: np.ndarray, a: np.ndarray, ns: np.ndarray, r: float, terminated: bool, truncated: bool,
    traj_id: int,
) -> TensorDict:
    """One transition as our replay buffer takes it from a TorchRL collector, batch ``[1]``."""
    return TensorDict(
        {
            "observation": torch.tensor(s, dtype=torch.float32)[None],
            "action": torch.tensor(a, dtype=torch.float32)[None],
            "collector": {"traj_ids": torch.tensor([traj_id])},
            "next": {
                "observation": torch.tensor(ns, dtype=torch.float32)[None],
                "reward": torch.tensor([[r]], dtype=torch.float32),
                "terminated": torch.tensor([[terminated]]),
                "truncated": torch.tensor([[truncated]]),
                "done": torch.tensor([[terminated or truncated]]),
            },
        },
        [1],
    )


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
