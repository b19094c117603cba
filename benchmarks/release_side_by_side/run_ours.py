"""Run our trainer (torchrl_mst.trainers.loop.train) with the same extra per-episode logging."""

import json
import sys
import time

import torch

from torchrl_mst.config import TrainConfig
from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.trainers import loop

env, seed, steps, out, logpath = (
    sys.argv[1],
    int(sys.argv[2]),
    int(sys.argv[3]),
    sys.argv[4],
    sys.argv[5],
)
extra = dict(a.split("=", 1) for a in sys.argv[6:])
log = open(logpath, "w")
state = {"acts": [], "ret": 0.0, "step": 0, "t0": time.time()}
orig_extend = MRQReplayBuffer.extend


def extend(self, td, **kw):
    state["step"] += 1
    a = td["action"].abs()
    state["acts"].append(a)
    state["ret"] += float(td["next", "reward"].sum())
    if bool(td["next", "done"].any()):
        acts = torch.cat(state["acts"])
        log.write(
            json.dumps(
                dict(
                    kind="episode",
                    step=state["step"],
                    ret=state["ret"],
                    sat=float((acts >= 0.999).float().mean()),
                    absmean=float(acts.mean()),
                    wall=time.time() - state["t0"],
                )
            )
            + "\n"
        )
        log.flush()
        state["acts"], state["ret"] = [], 0.0
    return orig_extend(self, td, **kw)


MRQReplayBuffer.extend = extend
kw = dict(
    env=env,
    seed=seed,
    steps=steps,
    recipe="baseline",
    scale="1x",
    eval_every=5000,
    eval_episodes=10,
    threads=1,
)
for k, v in extra.items():
    kw[k] = type(getattr(TrainConfig(), k))(v) if getattr(TrainConfig(), k) is not None else v
cfg = TrainConfig(**kw)
print(cfg)
loop.train(cfg, out, quiet=True)
