"""SAC, TD3 and PPO with MST on TorchRL's own losses, through the shared training loop.

Each algorithm trains a few hundred steps on Pendulum with tiny networks; the loss is
TorchRL's class (not a subclass); the critic is RigL 0.6 and the actor static 0.6 in the
parameters the loss trains AND (SAC/TD3) in its target copies after soft updates; a run
stopped and resumed ends bit-identical to an uninterrupted one.
"""

import csv

import pytest
import torch
from torchrl.objectives import ClipPPOLoss, SACLoss, TD3Loss

from torchrl_mst.cli import main
from torchrl_mst.config import TrainConfig
from torchrl_mst.trainers.checkpoint import load_checkpoint
from torchrl_mst.trainers.loop import train
from torchrl_mst.trainers.torchrl_algos import LOSS_NETWORKS, TorchRLRun

LOSSES = {"sac": SACLoss, "td3": TD3Loss, "ppo": ClipPPOLoss}


def tiny(algo, **kw):
    base = dict(
        algo=algo, env="gym:Pendulum-v1", scale="0.0625x", steps=400, random_steps=100,
        batch_size=16, buffer_size=1_000, eval_every=200, eval_episodes=1,
        diagnostics_every=200, checkpoint_every=200, mask_update_interval=25, threads=1,
    )
    if algo == "ppo":
        base.update(rollout_steps=200)
    base.update(kw)
    return TrainConfig(**base)


def masked_entries(state, algo, role):
    """(mask, live, target-or-None) for every sparsified weight of ``role`` in a loss state."""
    net = LOSS_NETWORKS[algo][role]
    out = []
    for key, mask in state.items():
        if not key.startswith(f"sparse_masks.{net}__"):
            continue
        path = key[len(f"sparse_masks.{net}__"):].replace("__", ".")
        live = state[f"{net}_params.{path}"]
        target = state.get(f"target_{net}_params.{path}")
        out.append((mask, live, target))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3", "ppo"])
def test_algo_trains_with_mst_masks_exact_and_resumes_bit_identically(algo, tmp_path):
    cfg = tiny(algo)
    full = train(cfg, tmp_path / "full", quiet=True)
    assert full.steps == 400
    state = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    for role in ("critic", "actor"):
        entries = masked_entries(state["loss"], algo, role)
        assert entries, role
        kept = sum(int(m.sum()) for m, _, _ in entries)
        total = sum(m.numel() for m, _, _ in entries)
        assert 1 - kept / total == pytest.approx(0.6, abs=0.01)
        for mask, live, target in entries:
            assert (live[~mask] == 0).all()
            if target is not None:  # SAC/TD3: targets moved by SoftUpdate stay masked
                assert (target[~mask] == 0).all()
                assert not torch.equal(target, live)
    has_target = any(t is not None for _, _, t in masked_entries(state["loss"], algo, "critic"))
    assert has_target == (algo != "ppo")
    with open(tmp_path / "full" / "diagnostics.csv") as f:
        diag = list(csv.DictReader(f))
    for role in ("critic", "actor"):
        assert float(diag[-1][f"{role}/stable_rank"]) >= 1
        assert 0 <= float(diag[-1][f"{role}/dormant_ratio"]) <= 1
    # stop at 200 (a checkpoint), resume: same weights, masks, targets and eval rows
    train(cfg, tmp_path / "cut", quiet=True, stop_after=200)
    train(None, tmp_path / "cut", resume=True, quiet=True)
    resumed = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert sorted(resumed["loss"]) == sorted(state["loss"])
    for key, value in state["loss"].items():
        assert torch.equal(value, resumed["loss"][key]), key
    for name in ("evals.csv", "diagnostics.csv"):
        assert rows(tmp_path / "full" / name) == rows(tmp_path / "cut" / name), name


def rows(path):
    """CSV rows without wall_time (the last column of evals.csv)."""
    with open(path) as f:
        return [r[:-1] if path.name == "evals.csv" else r for r in csv.reader(f)]


@pytest.mark.parametrize("algo", ["sac", "td3", "ppo"])
def test_losses_are_torchrls_own_classes_and_regimes_are_overridable(algo):
    run = TorchRLRun(tiny(algo, critic="set:0.8", actor="dense", critic_type="4"))
    assert type(run.loss) is LOSSES[algo]
    assert type(run.loss).__module__.startswith("torchrl.objectives.")
    assert set(run.controllers) == {"critic"}  # dense actor: no controller
    assert run.controllers["critic"].sparsity() == pytest.approx(0.8, abs=0.01)
    assert run.plans["critic"].block_type == 4 and run.plans["actor"].block_type == 5


def test_mst_recipe_defaults_for_torchrl_algos():
    run = TorchRLRun(tiny("td3"))
    assert {k: (p.regime, p.block_type) for k, p in run.plans.items()} == {
        "critic": ("rigl:0.6", 6), "actor": ("static:0.6", 5)
    }
    dense = TorchRLRun(tiny("td3", recipe="baseline"))
    assert dense.controllers == {}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--algo", "dqn"], "algo must be one of mrq, sac, td3, ppo"),
        (["--algo", "sac", "--encoder", "dense"], "has no encoder"),
        (["--algo", "sac", "--critic", "bogus:0.5"], "Unknown regime"),
        (["--algo", "ppo", "--steps", "300", "--rollout-steps", "200"], "multiple of"),
    ],
)
def test_bad_algo_input_is_one_clear_line(flags, message, tmp_path, capsys):
    code = main(["train", "--env", "gym:Pendulum-v1", "--scale", "0.0625x", "--random-steps",
                 "10", "--steps", "400", *flags, "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_ppo_clips_each_network_apart_so_the_critic_scale_cannot_shrink_actor_steps():
    """The actor's PPO update does not depend on how large the critic's loss is.

    Advantages are computed once per rollout, so the actor's minibatch gradients are the same
    whatever the critic loss weight; with one clip over both networks, a critic gradient 1e6
    times larger would rescale (here: practically stop) every actor step.
    """
    from torchrl.collectors import Collector

    def actor_after_update(critic_coeff):
        torch.manual_seed(0)
        run = TorchRLRun(tiny("ppo", recipe="baseline"))
        run.loss.critic_coeff.fill_(critic_coeff)
        collector = Collector(run.env, run.explore, frames_per_batch=200, total_frames=200,
                              auto_register_policy_transforms=False)
        batch = next(iter(collector))
        collector.shutdown()
        before = [p.detach().clone() for p in run.loss.actor_network_params.values(True, True)]
        torch.manual_seed(1)
        run._ppo_update(batch)
        after = [p.detach().clone() for p in run.loss.actor_network_params.values(True, True)]
        return before, after

    before, small = actor_after_update(0.5)
    before_big, big = actor_after_update(1e6)
    for b, bb in zip(before, before_big, strict=True):
        assert torch.equal(b, bb)  # same start
    assert any(not torch.equal(b, a) for b, a in zip(before, small, strict=True))
    for a, b in zip(small, big, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
