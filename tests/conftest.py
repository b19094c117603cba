import os

os.environ.setdefault("MUJOCO_GL", "disable")
os.environ.setdefault("RL_WARNINGS", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
