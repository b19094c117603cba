"""Bisection: the release's loop and env (imported unmodified) with OUR replay buffer, networks,
MRQLoss and MRQ training step, and our policy for acting."""

import os
import sys

sys.path.insert(0, os.environ.get("MRQ_RELEASE", "/tmp/mrq_rel/MRQ"))  # release MRQ/ dir
os.environ.setdefault("MUJOCO_GL", "disable")
import numpy as np
import torch

torch.cuda.mem_get_info = lambda *a, **k: (1 << 40, 1 << 40)
torch.set_num_threads(1)
import env_preprocessing
from _common import JsonlLog, action_stats, eval_row, evaluate, our_policy
from tensordict import TensorDict

from torchrl_mst.modules import make_mrq_networks
from torchrl_mst.objectives import MRQLoss
from torchrl_mst.trainers.mrq import MRQ

env_name, seed, steps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
RANDOM = int(os.environ.get("RANDOM_STEPS", "10000"))
np.random.seed(seed)
torch.manual_seed(seed)
env = env_preprocessing.Env(env_name, seed, eval_env=False)
eval_env = env_preprocessing.Env(env_name, seed + 100, eval_env=True)
from torchrl_mst.data import MRQReplayBuffer

ours_rb = MRQReplayBuffer(1_000_000, horizon=5, batch_size=256, seed=seed)

nets = make_mrq_networks(env.obs_shape[0], env.action_dim, scale=os.environ.get("SCALE", "1x"))
loss = MRQLoss(nets.encoder, nets.critic, nets.actor, use_done_loss=False)
mrq = MRQ(loss, ours_rb, seed=seed)


act = our_policy(nets)
log = JsonlLog(out)
state = env.reset()
acts = []
qs = []
for t in range(steps + 1):
    if t % 5000 == 0:
        log.emit(**eval_row(t, evaluate(eval_env, lambda s: act(s, False))))
    if t == steps:
        break
    action = env.action_space.sample() if t < RANDOM else act(np.array(state), True)
    acts.append(np.abs(action))
    next_state, reward, terminated, truncated = env.step(action)
    ours_rb.extend(
        TensorDict(
            {
                "observation": torch.tensor(state, dtype=torch.float32)[None],
                "action": torch.tensor(action, dtype=torch.float32)[None],
                "collector": {"traj_ids": torch.tensor([env.ep_num])},
                "next": {
                    "observation": torch.tensor(next_state, dtype=torch.float32)[None],
                    "reward": torch.tensor([[reward]], dtype=torch.float32),
                    "terminated": torch.tensor([[terminated]]),
                    "truncated": torch.tensor([[truncated]]),
                    "done": torch.tensor([[terminated or truncated]]),
                },
            },
            [1],
        )
    )
    state = next_state
    if t + 1 > RANDOM:
        m = mrq.step()
        qs.append(m["q/mean"])
    if terminated or truncated:
        log.emit(kind="episode", step=t + 1, ret=float(env.ep_total_reward), **action_stats(acts),
                 q=float(np.mean(qs)) if qs else None, reward_scale=float(loss.reward_scale))
        acts, qs = [], []
        state = env.reset()
