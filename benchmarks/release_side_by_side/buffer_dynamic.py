"""Both buffers in lockstep: same stream, same LAP-like updates; compare the ages sampled."""


import _common  # first: puts the release on sys.path
import buffer
import numpy as np
import torch

from torchrl_mst.data import MRQReplayBuffer

torch.manual_seed(0)
np.random.seed(0)
L, E, START = 500, 5, 1000
rel = buffer.ReplayBuffer(
    (3,), 2, 1.0, False, torch.device("cpu"), 1, 5, 10000, 256, True, initial_priority=1
)
ours = MRQReplayBuffer(10000, horizon=5, batch_size=256, seed=0)
slot2t_rel = {}
ages_rel, ages_ours = [], []


def prio_of(t_idx, step):
    g = torch.Generator().manual_seed(int(step))
    return (1 + 4 * torch.rand(len(t_idx), generator=g)) ** 0.4


t = 0
for e in range(E):
    s = np.random.randn(3).astype(np.float32)
    for k in range(L):
        a = np.random.uniform(-1, 1, 2).astype(np.float32)
        ns = np.random.randn(3).astype(np.float32)
        trunc = k == L - 1
        slot2t_rel[rel.ind] = t
        rel.add(s, a, ns, 0.1, False, trunc)
        ours.extend(_common.transition(s, a, ns, 0.1, False, trunc, e))
        if t >= START:
            rel.sample(3)
            it = np.array([slot2t_rel[int(i)] for i in rel.sampled_ind])
            ages_rel.append(t - it)
            rel.update_priority(prio_of(it, t))
            b = ours.sample()
            io = b["index"][:, 0].numpy()
            ages_ours.append(t - io)
            ours.update_priority(b["index"][:, 0], prio_of(io, t))
        s = ns
        t += 1
ar, ao = np.concatenate(ages_rel), np.concatenate(ages_ours)
print("samples", len(ar), len(ao))
for q in (0.01, 0.05, 0.1, 0.25, 0.5, 0.75):
    print(f"age quantile {q}: release {np.quantile(ar, q):.0f} ours {np.quantile(ao, q):.0f}")
print("mean age release", ar.mean(), "ours", ao.mean())
print("fraction age<10: release", (ar < 10).mean(), "ours", (ao < 10).mean())
print("max prio release", rel.max_priority, "ours", ours.sampler._running_max)
