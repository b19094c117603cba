"""Updates/s of one MR.Q training step: torchrl_mst (TensorDict + LossModule) vs plain PyTorch.

One "training step" is what MR.Q does per environment step, amortised: one encoder update
(250 every 250 steps), one critic update, one actor update. Both renditions use the same
network modules, the same math and fresh fused AdamW optimizers (as trainers.MRQ); the
plain one holds its batches as tensors and calls the networks directly (target networks as
deep copies), with no TensorDict, no LossModule and no functional parameter swapping.
Batches are pre-sampled so that only the update is timed; the replay buffer's sampling cost
is reported on its own line.

    python benchmarks/mrq_update.py            # default widths, batch 256, Dog Run dims
    python benchmarks/mrq_update.py --quick    # tiny widths, seconds
"""

from __future__ import annotations

import argparse
import copy
import os
import time

os.environ.setdefault("RL_WARNINGS", "0")

import torch
import torch.nn.functional as F
from tensordict import TensorDict

from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.modules import ScalePreset, make_mrq_networks
from torchrl_mst.objectives import MRQHardUpdate, MRQLoss
from torchrl_mst.objectives.functional import reward_bins, two_hot_encode

OBS, ACT, H = 223, 38, 5


def make_batch(b: int) -> TensorDict:
    return TensorDict(
        {
            "observation": torch.randn(b, H, OBS),
            "action": torch.rand(b, H, ACT) * 2 - 1,
            "next": {
                "observation": torch.randn(b, H, OBS),
                "reward": torch.randn(b, H, 1),
                "terminated": torch.zeros(b, H, 1, dtype=torch.bool),
            },
        },
        [b, H],
    )


class PlainMRQ:
    """MR.Q's update written directly on tensors (the benchmark's reference rendition)."""

    def __init__(self, nets) -> None:
        self.enc, self.critic, self.actor = nets.encoder, nets.critic, nets.actor
        self.enc_t, self.critic_t, self.actor_t = (
            copy.deepcopy(m) for m in (self.enc, self.critic, self.actor)
        )
        kw = dict(weight_decay=1e-4, fused=True)
        self.opt_e = torch.optim.AdamW(self.enc.parameters(), lr=1e-4, **kw)
        self.opt_c = torch.optim.AdamW(self.critic.parameters(), lr=3e-4, **kw)
        self.opt_a = torch.optim.AdamW(self.actor.parameters(), lr=3e-4, **kw)
        self.bins = reward_bins()

    def encoder_update(self, s, a, s2, r, d) -> None:
        b = s.shape[0]
        with torch.no_grad():
            zs_t = self.enc_t.zs(s2.flatten(0, 1)).unflatten(0, (b, H))
        zs = self.enc.zs(s[:, 0])
        mask = torch.ones(b, 1)
        loss = 0.0
        for t in range(H):
            done, zs, rl = self.enc(zs, a[:, t])
            ce = -(two_hot_encode(r[:, t, 0], self.bins) * F.log_softmax(rl, -1)).sum(-1, True)
            loss = loss + ((zs - zs_t[:, t]) ** 2 * mask).mean() + 0.1 * (ce * mask).mean()
            loss = loss + 0.1 * ((done - d[:, t]) ** 2 * mask).mean()
            mask = mask * (1 - d[:, t])
        self.opt_e.zero_grad()
        loss.backward()
        self.opt_e.step()

    def critic_actor_update(self, s, a, s2, r, d) -> None:
        nd = 1 - d[:, :3, 0]
        alive = torch.cumprod(torch.cat([torch.ones_like(nd[:, :1]), nd[:, :-1]], 1), 1)
        ret = (r[:, :3, 0] * alive * 0.99 ** torch.arange(3.0)).sum(1, keepdim=True)
        not_done = nd.prod(1, keepdim=True)
        with torch.no_grad():
            zs2 = self.enc_t.zs(s2[:, 2])
            a2 = self.actor_t(zs2)[0]
            a2 = (a2 + (torch.randn_like(a2) * 0.2).clamp(-0.3, 0.3)).clamp(-1, 1)
            q2 = self.critic_t(self.enc_t.zsa(zs2, a2)).amin(-1, keepdim=True)
            y = ret + not_done * 0.99**3 * q2
            zs = self.enc.zs(s[:, 0])
            zsa = self.enc.zsa(zs, a[:, 0])
        q = self.critic(zsa)
        loss = F.smooth_l1_loss(q, y.expand_as(q))
        self.opt_c.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic.parameters(), 20.0)
        self.opt_c.step()
        _priority = (q.detach() - y).abs().amax(-1).clamp(min=1).pow(0.4)
        for p in (*self.enc.parameters(), *self.critic.parameters()):
            p.requires_grad_(False)
        act, pre = self.actor(zs)
        aloss = -self.critic(self.enc.zsa(zs, act)).mean() + 1e-5 * pre.pow(2).mean()
        self.opt_a.zero_grad()
        aloss.backward()
        self.opt_a.step()
        for p in (*self.enc.parameters(), *self.critic.parameters()):
            p.requires_grad_(True)

    def step(self, batch: TensorDict) -> None:
        s, a = batch["observation"], batch["action"]
        s2, r = batch["next", "observation"], batch["next", "reward"]
        d = batch["next", "terminated"].float()
        self.encoder_update(s, a, s2, r, d)
        self.critic_actor_update(s, a, s2, r, d)


class OursMRQ:
    """The same step through MRQLoss's three loss methods (the losses trainers.MRQ calls)."""

    def __init__(self, nets) -> None:
        self.loss = MRQLoss(nets.encoder, nets.critic, nets.actor)
        MRQHardUpdate(self.loss)
        self.opts = {
            n: torch.optim.AdamW(getattr(self.loss, f"{n}_params").values(True, True),
                                 lr=lr, weight_decay=1e-4, fused=True)
            for n, lr in (("encoder", 1e-4), ("critic", 3e-4), ("actor", 3e-4))
        }

    def _update(self, name, value, clip=None):
        self.opts[name].zero_grad()
        value.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(self.opts[name].param_groups[0]["params"], clip)
        self.opts[name].step()

    def step(self, batch: TensorDict) -> None:
        self._update("encoder", self.loss.encoder_loss(batch)[0])
        self._update("critic", self.loss.critic_loss(batch)[0], 20.0)
        self._update("actor", self.loss.actor_loss(batch)[0])


def timeit(fn, batches, warmup: int, iters: int) -> float:
    for i in range(warmup):
        fn(batches[i % len(batches)])
    t = time.perf_counter()
    for i in range(iters):
        fn(batches[i % len(batches)])
    return iters / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/mrq_update.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scale = ScalePreset("tiny", 1 / 16) if args.quick else "1x"
    batch_size = 32 if args.quick else 256
    iters, warmup = (50, 5) if args.quick else (15, 3)
    batches = [make_batch(batch_size) for _ in range(4)]
    torch.manual_seed(0)
    plain = PlainMRQ(make_mrq_networks(OBS, ACT, scale=scale))
    torch.manual_seed(0)
    ours = OursMRQ(make_mrq_networks(OBS, ACT, scale=scale))
    rates = {"plain": [], "ours": []}
    for _ in range(args.rounds):  # interleaved rounds: both see the same machine state
        rates["plain"].append(timeit(plain.step, batches, warmup, iters))
        rates["ours"].append(timeit(ours.step, batches, warmup, iters))
    best = {k: max(v) for k, v in rates.items()}
    rb = MRQReplayBuffer(100_000, batch_size=batch_size, seed=0)
    n = 100_000
    done = torch.zeros(n, 1, dtype=torch.bool)
    done[499::500] = True
    rb.extend(TensorDict({
        "observation": torch.randn(n, OBS), "action": torch.rand(n, ACT),
        ("next", "observation"): torch.randn(n, OBS), ("next", "reward"): torch.randn(n, 1),
        ("next", "terminated"): torch.zeros(n, 1, dtype=torch.bool),
        ("next", "truncated"): done, ("next", "done"): done}, [n]))
    rb.sample()  # the first sample indexes the 100k transitions just written (one-off O(N))
    t = time.perf_counter()
    for _ in range(20):
        rb.sample()
    sample_ms = (time.perf_counter() - t) / 20 * 1e3
    width = "tiny (x1/16)" if args.quick else "1x (hidden 512)"
    cmd = "python benchmarks/mrq_update.py" + (" --quick" if args.quick else "")
    report = "\n".join([
        f"Command: `{cmd}` (torch {torch.__version__}, {args.threads} threads)",
        "",
        f"MR.Q training step (1 encoder + 1 critic + 1 actor update), {width}, batch "
        f"{batch_size}, obs {OBS}, action {ACT}; best of {args.rounds} interleaved rounds of "
        f"{iters} steps.",
        "",
        "| rendition | updates/s | ratio to plain |",
        "|---|---|---|",
        f"| plain PyTorch (in this benchmark) | {best['plain']:.2f} | 1.000 |",
        f"| torchrl_mst MRQLoss (TensorDict) | {best['ours']:.2f} | "
        f"{best['ours'] / best['plain']:.3f} |",
        "",
        f"`MRQReplayBuffer.sample()` of {batch_size} x {H} windows from 100k transitions: "
        f"{sample_ms:.2f} ms (two samples per step: encoder batch, critic/actor batch).",
        "",
    ])
    print(report)
    if not args.quick:
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
