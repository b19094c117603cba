import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RL_WARNINGS", "0")

import pytest
import torch

# One thread: tiny test networks are overhead-bound and 2 threads on a loaded 2-core
# machine thrash (10-20x slower measured).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
