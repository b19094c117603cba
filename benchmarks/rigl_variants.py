"""RigL as we default it vs RigL as its paper: a short offline MR.Q comparison on the CPU.

Ours: grown weights' Adam moments seeded from the dense gradient, a just-dropped position
cannot be regrown by the same update. Paper (``RigL.paper()``): zero moments, same-update
regrowth allowed (keeping the value). Both train the critic of a small MR.Q agent
(width x0.125, RigL 0.6 on the critic, static 0.6 on the actor) on a fixed buffer of random
Pendulum-v1 transitions, from the same initial weights, masks and batches; we report the
critic loss over the last 200 steps, the critic's dormant ratio at the end, and the mask
churn (fraction of critic mask entries flipped per update, averaged over updates).

    python benchmarks/rigl_variants.py            # ~5.5 minutes, 1 thread

Writes ``benchmarks/results/rigl_variants.md``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.diagnostics import capture_activations, dormant_ratio
from torchrl_mst.modules import make_mrq_networks
from torchrl_mst.objectives import MRQLoss
from torchrl_mst.sparse import RigL, StaticSparse
from torchrl_mst.trainers import MRQ

STEPS, INTERVAL, TRANSITIONS, SEEDS = 1500, 100, 4000, (0, 1)
VARIANTS = {
    "ours": dict(grown_moments="gradient", regrow_dropped=False),
    "paper": dict(grown_moments="zero", regrow_dropped=True),
}


def collect(seed: int) -> TensorDict:
    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    rows = []
    for _ in range(TRANSITIONS):
        act = env.action_space.sample()
        nxt, rew, term, trunc, _ = env.step(act)
        rows.append((obs, act / 2.0, nxt, rew, term, trunc))
        obs = env.reset()[0] if (term or trunc) else nxt
    o, a, n, r, te, tr = (torch.tensor(np.array(c)) for c in zip(*rows))
    te, tr = te.bool()[:, None], tr.bool()[:, None]
    return TensorDict({
        "observation": o.float(), "action": a.float(),
        ("next", "observation"): n.float(), ("next", "reward"): r.float()[:, None],
        ("next", "terminated"): te, ("next", "truncated"): tr, ("next", "done"): te | tr,
    }, [TRANSITIONS])


def run(variant: str, seed: int, data: TensorDict) -> dict[str, float]:
    torch.manual_seed(seed)
    nets = make_mrq_networks(3, 1, scale="0.125x", encoder_type=6, critic_type=6, actor_type=5)
    loss = MRQLoss(nets.encoder, nets.critic, nets.actor, use_done_loss=False)
    rb = MRQReplayBuffer(TRANSITIONS, batch_size=64, seed=seed)
    rb.extend(data)
    critic = RigL(0.6, update_interval=INTERVAL, stop_step=int(0.8 * STEPS), **VARIANTS[variant])
    mrq = MRQ(loss, rb, regimes={"critic": critic, "actor": StaticSparse(0.6)}, seed=seed)
    losses, churn = [], []
    for _ in range(STEPS):
        m = mrq.step()
        losses.append(m["loss/critic"])
        if "sparse/critic/mask_change_fraction" in m:
            churn.append(m["sparse/critic/mask_change_fraction"])
    batch = rb.sample()
    with torch.no_grad(), capture_activations(nets.critic) as acts:
        zs = nets.encoder.zs(batch["observation"][:, 0])
        nets.critic(nets.encoder.zsa(zs, batch["action"][:, 0]))
    return {
        "critic_loss": statistics.fmean(losses[-200:]),
        "dormant": dormant_ratio(acts),
        "churn": statistics.fmean(churn),
    }


def main() -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    results = {v: [] for v in VARIANTS}
    for seed in SEEDS:
        data = collect(seed)
        for variant in VARIANTS:
            results[variant].append(run(variant, seed, data))
            print(variant, seed, results[variant][-1], flush=True)
    lines = [
        f"RigL ours vs paper: MR.Q x0.125 (critic RigL 0.6 every {INTERVAL} steps until "
        f"{int(0.8 * STEPS)}, actor static 0.6), {STEPS} offline updates on {TRANSITIONS} "
        f"random Pendulum-v1 transitions, batch 64, seeds {list(SEEDS)}, 1 thread, "
        f"{time.perf_counter() - t0:.0f} s in all. torch {torch.__version__}, "
        f"python {sys.version.split()[0]}.",
        "",
        "| variant | critic loss (last 200 steps) | critic dormant ratio | mask churn per update |",
        "|---|---|---|---|",
    ]
    for variant, rows in results.items():
        cells = [
            " / ".join(f"{r[k]:.4f}" for r in rows) for k in ("critic_loss", "dormant", "churn")
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Each cell: one value per seed.")
    out = Path(__file__).parent / "results" / "rigl_variants.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
