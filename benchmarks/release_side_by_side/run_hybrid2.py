"""Bisection: the release's loop and env (imported unmodified) with OUR replay buffer, networks,
MRQLoss and MRQ training step, and our policy for acting."""

import os
import sys

import _common  # first: puts the release on sys.path
import numpy as np
import torch

torch.set_num_threads(1)
from _common import JsonlLog, action_stats, eval_row, evaluate, our_policy

from torchrl_mst.modules import make_mrq_networks
from torchrl_mst.objectives import MRQLoss
from torchrl_mst.trainers.mrq import MRQ

env_name, seed, steps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
RANDOM = int(os.environ.get("RANDOM_STEPS", "10000"))
env, eval_env = _common.release_envs(env_name, seed)
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
        _common.transition(state, action, next_state, reward, terminated, truncated, env.ep_num)
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
