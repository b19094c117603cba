"""The code in docs/howto/torchrl-losses.md runs as written."""

import re
from pathlib import Path

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss, TD3Loss

HOWTO = Path(__file__).resolve().parents[2] / "docs" / "howto" / "torchrl-losses.md"


def blocks():
    return re.findall(r"```python\n(.*?)```", HOWTO.read_text(), flags=re.S)


def test_complete_example_and_ten_lines_run(capsys):
    ten_lines, complete, _, _ = blocks()
    ns: dict = {}
    exec(compile(complete, str(HOWTO), "exec"), ns)
    assert "sparse/critic/dropped" in capsys.readouterr().out
    assert abs(ns["critic_ctl"].sparsity() - 0.6) < 1e-3
    # the ten lines, on a fresh loss built from the same networks
    ns["loss"] = TD3Loss(ns["actor"], ns["qvalue"], action_spec=ns["spec"])
    ns["batch"] = ns["random_batch"]()
    exec(compile(ten_lines, str(HOWTO), "exec"), ns)
    assert ns["critic_ctl"].step_count == 1


def test_sac_snippet_runs():
    _, _, sac, _ = blocks()
    spec = Bounded(-1, 1, shape=(2,))
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 4), NormalParamExtractor())
    actor = ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        spec=spec,
    )
    qnet = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    qvalue = ValueOperator(_Cat(qnet), in_keys=["observation", "action"])
    loss = SACLoss(actor, qvalue, action_spec=spec)
    from torchrl_mst.sparse import RigL, StaticSparse, sparsify

    ns = {
        "loss": loss,
        "optimizer": torch.optim.Adam(loss.parameters()),
        "total_updates": 100,
        "RigL": RigL,
        "StaticSparse": StaticSparse,
        "sparsify": sparsify,
    }
    exec(compile(sac, str(HOWTO), "exec"), ns)
    assert set(ns["ctl"].regimes) == {"qvalue_network", "actor_network"}


class _Cat(nn.Module):
    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, observation, action):
        return self.mlp(torch.cat([observation, action], -1))


def test_complete_sac_example_runs_and_restores(capsys):
    *_, sac_complete = blocks()
    assert "loss_qvalue" in sac_complete and "value_loss" not in sac_complete
    ns: dict = {}
    exec(compile(sac_complete, str(HOWTO), "exec"), ns)
    assert "SAC critic sparsity 0.600" in capsys.readouterr().out
    loss, restored, ctl = ns["sac_loss"], ns["restored"], ns["critic_ctl"]
    assert type(loss).__name__ == "SACLoss"
    for name, mask in ctl.masks.items():
        key = tuple(name.split(".")[1:])
        for params in (loss.qvalue_network_params, loss.target_qvalue_network_params,
                       restored.qvalue_network_params):
            assert (params.get(key)[~mask] == 0).all()
        assert torch.equal(loss.qvalue_network_params.get(key),
                           restored.qvalue_network_params.get(key))
