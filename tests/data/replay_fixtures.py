"""Collector-like synthetic transitions and brute-force oracles for the replay tests.

Every transition encodes who it is in its observation (obs dim 3):
``observation = [t, traj_id, step_in_episode]`` where ``t`` is the global write counter,
so a sampled window can be checked against the written history without trusting the
buffer's indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from tensordict import TensorDict


@dataclass
class Step:
    t: int
    traj: int
    pos: int
    terminated: bool
    truncated: bool
    reward: float


class Stream:
    """Episodes written as a single-env TorchRL collector would, in order."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._traj = 0
        self._pos = 0

    def episode(self, length: int, end: str | None) -> list[Step]:
        """Append ``length`` steps; ``end`` in {"terminated", "truncated", None (ongoing)}."""
        out = []
        for i in range(length):
            last = i == length - 1
            step = Step(
                t=len(self.steps),
                traj=self._traj,
                pos=self._pos,
                terminated=last and end == "terminated",
                truncated=last and end == "truncated",
                reward=float(((len(self.steps) * 7) % 11) - 5) / 2,
            )
            self.steps.append(step)
            out.append(step)
            self._pos += 1
        if end is not None:
            self._traj += 1
            self._pos = 0
        return out


def to_td(steps: list[Step], *, action_dim: int = 2) -> TensorDict:
    """Flat ``[N]`` TensorDict with the keys a TorchRL ``Collector`` produces."""
    n = len(steps)
    t = torch.tensor([s.t for s in steps], dtype=torch.float32)
    traj = torch.tensor([s.traj for s in steps], dtype=torch.int64)
    pos = torch.tensor([s.pos for s in steps], dtype=torch.float32)
    obs = torch.stack([t, traj.float(), pos], -1)
    terminated = torch.tensor([s.terminated for s in steps]).unsqueeze(-1)
    truncated = torch.tensor([s.truncated for s in steps]).unsqueeze(-1)
    reward = torch.tensor([s.reward for s in steps]).unsqueeze(-1)
    return TensorDict(
        {
            "observation": obs,
            "action": (t.unsqueeze(-1) / 100).expand(n, action_dim).clone(),
            "is_init": (pos == 0).unsqueeze(-1),
            "step_count": pos.long().unsqueeze(-1),
            ("collector", "traj_ids"): traj,
            ("next", "observation"): obs + torch.tensor([0.5, 0.0, 1.0]),
            ("next", "reward"): reward,
            ("next", "terminated"): terminated,
            ("next", "truncated"): truncated,
            ("next", "done"): terminated | truncated,
            ("next", "step_count"): pos.long().unsqueeze(-1) + 1,
        },
        batch_size=[n],
    )


def brute_force_eligible(steps: list[Step], capacity: int, horizon: int) -> torch.Tensor:
    """Eligibility per storage slot, walking the written history step by step."""
    written = len(steps)
    eligible = torch.zeros(capacity, dtype=torch.bool)
    for t in range(max(0, written - capacity), written):
        ok = True
        for k in range(horizon):
            if t + k >= written:  # past the newest transition
                ok = False
                break
            step = steps[t + k]
            if step.terminated:  # the rest of the window is padding
                break
            if k < horizon - 1 and (
                step.truncated or (t + k + 1 < written and steps[t + k + 1].traj != step.traj)
            ):
                ok = False
                break
        eligible[t % capacity] = ok
    return eligible


def chi_square_critical(dof: int, z: float = 3.719) -> float:
    """Upper chi-square quantile by Wilson-Hilferty; z=3.719 is the 1e-4 normal tail."""
    a = 2.0 / (9.0 * dof)
    return dof * (1.0 - a + z * math.sqrt(a)) ** 3


def chi_square(counts: torch.Tensor, probs: torch.Tensor) -> tuple[float, int]:
    """Pearson statistic and degrees of freedom over the cells with positive probability."""
    keep = probs > 0
    expected = probs[keep] * counts.sum()
    stat = float(((counts[keep] - expected) ** 2 / expected).sum())
    return stat, int(keep.sum()) - 1
