"""Run the authors' MR.Q release (imported unmodified from /tmp/mrq_rel/MRQ) on CPU with
extra logging of training-episode returns and stored action statistics."""

import os
import sys

import _common  # first: puts the release on sys.path
import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
import MRQ
from _common import JsonlLog, action_stats, eval_row, evaluate

env_name, seed, steps, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
env, eval_env = _common.release_envs(env_name, seed)
agent = MRQ.Agent(
    env.obs_shape,
    env.action_dim,
    env.max_action,
    env.pixel_obs,
    env.discrete,
    torch.device("cpu"),
    env.history,
)
log = JsonlLog(out)
state = env.reset()
acts = []
for t in range(steps + 1):
    if t % 5000 == 0:
        det = lambda s: agent.select_action(s, use_exploration=False)  # noqa: E731
        log.emit(**eval_row(t, evaluate(eval_env, det)))
    if t == steps:
        break
    action = agent.select_action(np.array(state))
    if action is None:
        action = env.action_space.sample()
    acts.append(np.abs(action))
    next_state, reward, terminated, truncated = env.step(action)
    agent.replay_buffer.add(state, action, next_state, reward, terminated, truncated)
    state = next_state
    agent.train()
    if terminated or truncated:
        log.emit(kind="episode", step=t + 1, ret=float(env.ep_total_reward), **action_stats(acts),
                 reward_scale=float(agent.reward_scale), train_steps=agent.training_steps)
        acts = []
        state = env.reset()
