"""Replay sampling cost vs buffer size: sum tree vs an O(N) cumsum baseline.

The baseline is the same sampler with its start draw replaced by what the authors'
release does per batch: a cumulative sum over all N priorities (times eligibility) and a
binary search. Both share every other line (window expansion, storage gather, priority
write-back), so the difference is the priority structure alone.

Both run inside a plain ``TensorDictReplayBuffer`` over a ``LazyTensorStorage``.
Per buffer size it reports the median over ``--iters`` repetitions of

* ``draw``: drawing ``B`` start indices (tree descent vs cumsum + searchsorted);
* ``step``: one MR.Q replay step, ``extend`` of one transition + ``sample()`` of ``B``
  windows of ``H`` steps + ``update_tensordict_priority``.

Usage::

    python benchmarks/replay_sampling.py                # 10k, 100k, 1M
    python benchmarks/replay_sampling.py --sizes 10000 --iters 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("RL_WARNINGS", "0")

import torch
from tensordict import TensorDict
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer

from torchrl_mst.data import PrioritizedSubTrajectorySampler


class CumsumSubTrajectorySampler(PrioritizedSubTrajectorySampler):
    """Baseline: O(N) cumulative sum of the sampling mass for every batch."""

    def _draw_starts(self, batch_size: int) -> torch.Tensor:
        mass = torch.where(self._eligible, self._priority, 0.0)
        csum = mass.cumsum(0)
        u = torch.rand(batch_size, dtype=torch.float64, generator=self._rng)
        index = torch.searchsorted(csum, u * csum[-1], right=True)
        return index.clamp_max(self._capacity - 1)


def transitions(n: int, t0: int, obs_dim: int, act_dim: int, episode_len: int) -> TensorDict:
    """Collector-like flat transitions; DMC-style episodes truncated every episode_len."""
    t = torch.arange(t0, t0 + n)
    last = (t % episode_len) == episode_len - 1
    return TensorDict(
        {
            "observation": torch.randn(n, obs_dim),
            "action": torch.rand(n, act_dim) * 2 - 1,
            ("collector", "traj_ids"): t // episode_len,
            ("next", "observation"): torch.randn(n, obs_dim),
            ("next", "reward"): torch.rand(n, 1),
            ("next", "terminated"): torch.zeros(n, 1, dtype=torch.bool),
            ("next", "truncated"): last.unsqueeze(-1),
            ("next", "done"): last.unsqueeze(-1),
        },
        batch_size=[n],
    )


def build(size: int, sampler_cls: type, args: argparse.Namespace) -> TensorDictReplayBuffer:
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(size),
        sampler=sampler_cls(size, horizon=args.horizon),
        batch_size=args.batch_size,
        generator=torch.Generator().manual_seed(0),
    )
    chunk = 100_000
    for t0 in range(0, size, chunk):
        rb.extend(transitions(min(chunk, size - t0), t0, args.obs_dim, args.act_dim, 500))
    g = torch.Generator().manual_seed(1)
    rb.update_priority(torch.arange(size), 1 + torch.rand(size, generator=g, dtype=torch.float64))
    rb.sample()  # processes the bulk write once (O(N), not timed)
    return rb


def median_ms(fn, iters: int) -> float:
    fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def measure(size: int, sampler_cls: type, args: argparse.Namespace) -> tuple[float, float]:
    rb = build(size, sampler_cls, args)
    draw = median_ms(lambda: rb.sampler._draw_starts(args.batch_size), args.iters)
    t = [size]

    def step() -> None:
        rb.extend(transitions(1, t[0], args.obs_dim, args.act_dim, 500))
        t[0] += 1
        batch = rb.sample()
        batch["td_error"] = 1 + torch.rand(batch.shape)
        rb.update_tensordict_priority(batch)

    return draw, median_ms(step, args.iters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--obs-dim", type=int, default=8)
    parser.add_argument("--act-dim", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s); B={args.batch_size} windows x H={args.horizon}, "
        f"obs dim {args.obs_dim}, median of {args.iters}\n"
    )
    print(
        "| buffer size | draw: sum tree (ms) | draw: cumsum O(N) (ms) "
        "| step: sum tree (ms) | step: cumsum O(N) (ms) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        tree_draw, tree_step = measure(size, PrioritizedSubTrajectorySampler, args)
        base_draw, base_step = measure(size, CumsumSubTrajectorySampler, args)
        print(
            f"| {size:,} | {tree_draw:.3f} | {base_draw:.3f} | {tree_step:.3f} | {base_step:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
