
import _common  # first: puts the release on sys.path
import buffer
import numpy as np
import torch

from torchrl_mst.data import MRQReplayBuffer

torch.manual_seed(0)
np.random.seed(0)
obs_dim, act_dim, L, E = 3, 2, 50, 6
rel = buffer.ReplayBuffer(
    (obs_dim,), act_dim, 1.0, False, torch.device("cpu"), 1, 5, 10000, 8, True, initial_priority=1
)
ours = MRQReplayBuffer(10000, horizon=5, batch_size=8, seed=0)
t = 0
rel_slot = {}
for e in range(E):
    s = np.random.randn(obs_dim).astype(np.float32)
    for k in range(L):
        a = np.random.uniform(-1, 1, act_dim).astype(np.float32)
        ns = np.random.randn(obs_dim).astype(np.float32)
        r = float(np.random.rand())
        trunc = k == L - 1
        rel_slot[t] = rel.ind
        rel.add(s, a, ns, r, False, trunc)
        ours.extend(_common.transition(s, a, ns, r, False, trunc, e))
        s = ns
        t += 1
ours.sample()  # flush
# same priorities on every transition
prio = torch.rand(t) * 3 + 1
for i in range(t):
    rel.priority[rel_slot[i]] = prio[i]
ours.sampler._priority[:t] = prio.double()
ours.sampler._tree.build(torch.where(ours.sampler._eligible, ours.sampler._priority, 0.0))
p_rel = rel.priority * rel.mask
p_rel = torch.tensor([float(p_rel[rel_slot[i]]) for i in range(t)])
p_rel /= p_rel.sum()
leaves = ours.sampler._tree._levels[0][:t]
p_ours = (leaves / leaves.sum()).float()
diff = (p_rel - p_ours).abs()
print("transitions", t, "eligible rel", int((p_rel > 0).sum()), "ours", int((p_ours > 0).sum()))
print("max |p_rel - p_ours|", float(diff.max()), "total variation", float(diff.sum() / 2))
only_ours = [i for i in range(t) if p_ours[i] > 0 and p_rel[i] == 0]
only_rel = [i for i in range(t) if p_rel[i] > 0 and p_ours[i] == 0]
print(
    "eligible only in ours (episode offset):",
    [i % L for i in only_ours][:12],
    "only in release:",
    [i % L for i in only_rel][:12],
)
# check windows content: sample from both the same start and compare
ours_idx, info = ours.sampler.sample(ours._storage, 4)
print(ours_idx)
