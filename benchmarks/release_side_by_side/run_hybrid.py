"""Bisection: the release's loop, env and replay buffer (imported unmodified), with OUR networks,
MRQLoss and MRQ training step, and our policy for acting."""

import os
import sys

import _common  # first: puts the release on sys.path
import numpy as np
import torch

torch.set_num_threads(1)
import buffer
from _common import JsonlLog, action_stats, eval_row, evaluate, our_policy
from tensordict import TensorDict

from torchrl_mst.modules import make_mrq_networks
from torchrl_mst.objectives import MRQLoss
from torchrl_mst.trainers.mrq import MRQ

env_name, seed, steps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
RANDOM = int(os.environ.get("RANDOM_STEPS", "10000"))
env, eval_env = _common.release_envs(env_name, seed)
rb = buffer.ReplayBuffer(
    env.obs_shape,
    env.action_dim,
    env.max_action,
    False,
    torch.device("cpu"),
    1,
    5,
    1e6,
    256,
    True,
    initial_priority=1,
)


class Shim:
    def sample(self):
        s, a, ns, r, nd = rb.sample(5, include_intermediate=True)
        B = s.shape[0]
        return TensorDict(
            {
                "observation": s,
                "action": a,
                "index": torch.zeros(B, 5, dtype=torch.long),
                "next": {"observation": ns, "reward": r, "terminated": (1 - nd).bool()},
            },
            [B, 5],
        )

    def update_priority(self, index, prio):
        rb.update_priority(prio.float())

    def reward_abs_mean(self):
        return rb.reward_scale()

    def any_terminal(self):
        return rb.env_terminates


nets = make_mrq_networks(env.obs_shape[0], env.action_dim, scale=os.environ.get("SCALE", "1x"))
loss = MRQLoss(nets.encoder, nets.critic, nets.actor, use_done_loss=False)
mrq = MRQ(loss, Shim(), seed=seed)


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
    action = env.action_space.sample() if rb.size < RANDOM else act(np.array(state), True)
    acts.append(np.abs(action))
    next_state, reward, terminated, truncated = env.step(action)
    rb.add(state, action, next_state, reward, terminated, truncated)
    state = next_state
    if rb.size > RANDOM:
        m = mrq.step()
        qs.append(m["q/mean"])
    if terminated or truncated:
        log.emit(kind="episode", step=t + 1, ret=float(env.ep_total_reward), **action_stats(acts),
                 q=float(np.mean(qs)) if qs else None, reward_scale=float(loss.reward_scale))
        acts, qs = [], []
        state = env.reset()
