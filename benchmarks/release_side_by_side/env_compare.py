"""Our ``dmc:`` env against the release's wrapper over one whole episode.

Both envs are seeded alike, ours is put in the release's initial physics state, and both
are driven by the same uniform actions until the episode ends. Prints the largest
observation and reward differences and each side's end-of-episode flags.

    python benchmarks/release_side_by_side/env_compare.py [Dmc-walker-walk] [seed]
"""

import sys

import _common  # first: puts the release on sys.path
import numpy as np
import torch

from torchrl_mst.envs import make_env

name = sys.argv[1] if len(sys.argv) > 1 else "Dmc-walker-walk"
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
release, _ = _common.release_envs(name, seed)
ours = make_env("dmc:" + name.removeprefix("Dmc-"), seed=seed)
release.reset()
td = ours.reset()
physics = ours.base_env._env.physics
physics.set_state(release.env.env.physics.get_state())
physics.forward()
td["observation"] = torch.as_tensor(
    np.concatenate([v.ravel() for v in ours.base_env._env.task.get_observation(physics).values()]),
    dtype=torch.float32,
)
rng = np.random.default_rng(seed)
obs_diff = reward_diff = 0.0
steps = 0
for _ in range(10_000):
    steps += 1
    action = rng.uniform(-1, 1, size=release.action_dim).astype(np.float32)
    state, reward, terminated, truncated = release.step(action)
    nxt = ours.step(td.set("action", torch.from_numpy(action)))["next"]
    obs_diff = max(obs_diff, float(np.abs(state - nxt["observation"].numpy()).max()))
    reward_diff = max(reward_diff, abs(reward - nxt["reward"].item()))
    if terminated or truncated or nxt["done"].item():
        break
    td = nxt
print(f"{name} seed {seed}: episode of {steps} steps (ours {nxt['step_count'].item()})")
print(f"  release: terminated={terminated} truncated={truncated}")
print(f"  ours:    terminated={nxt['terminated'].item()} truncated={nxt['truncated'].item()}")
print(f"  max |obs diff| {obs_diff:.2e}, max |reward diff| {reward_diff:.2e}")
