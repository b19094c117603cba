"""Bisection: the release's loop, env and replay buffer (imported unmodified), with OUR networks,
MRQLoss and MRQ training step, and our policy for acting."""

import json
import os
import sys
import time

sys.path.insert(0, os.environ.get("MRQ_RELEASE", "/tmp/mrq_rel/MRQ"))  # release MRQ/ dir
os.environ.setdefault("MUJOCO_GL", "disable")
import numpy as np
import torch

torch.cuda.mem_get_info = lambda *a, **k: (1 << 40, 1 << 40)
torch.set_num_threads(1)
import buffer
import env_preprocessing
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


def act(state, explore):
    with torch.no_grad():
        a = nets.actor(nets.encoder.zs(torch.tensor(state, dtype=torch.float).reshape(1, -1)))[0]
        if explore:
            a = a + torch.randn_like(a) * 0.2
        return a.clamp(-1, 1).numpy().flatten()


log = open(out, "w")


def emit(**kw):
    log.write(json.dumps(kw) + "\n")
    log.flush()


state = env.reset()
t0 = time.time()
acts = []
qs = []
for t in range(steps + 1):
    if t % 5000 == 0:
        rets = []
        for _ in range(10):
            s, term, trunc = eval_env.reset(), False, False
            while not (term or trunc):
                s, _, term, trunc = eval_env.step(act(np.array(s), False))
            rets.append(eval_env.ep_total_reward)
        emit(
            kind="eval",
            step=t,
            mean=float(np.mean(rets)),
            rets=[float(r) for r in rets],
            wall=time.time() - t0,
        )
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
        a = np.stack(acts)
        emit(
            kind="episode",
            step=t + 1,
            ret=float(env.ep_total_reward),
            sat=float((a >= 0.999).mean()),
            absmean=float(a.mean()),
            q=float(np.mean(qs)) if qs else None,
            reward_scale=float(loss.reward_scale),
            wall=time.time() - t0,
        )
        acts, qs = [], []
        state = env.reset()
