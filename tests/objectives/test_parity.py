"""Number-for-number parity with the authors' MR.Q release (tests/data_files/PROVENANCE.md).

Tolerance from the golden README: allclose(rtol=1e-5, atol=1e-6). These tests never skip:
the parity file ships with the repository.
"""

from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from torchrl_mst.compat import mrq_from_reference, mrq_to_reference
from torchrl_mst.objectives import MRQHardUpdate, MRQLoss, reward_bins
from torchrl_mst.objectives.functional import two_hot_encode

GOLDEN = Path(__file__).parents[1] / "data_files" / "mrq_parity_v1.pt"


def close(ours, ref):
    return torch.allclose(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def build(golden):
    sd, hp = golden["initial_state_dicts"], golden["hyperparameters"]
    nets = mrq_from_reference(sd["encoder"], sd["value"], sd["policy"])
    loss = MRQLoss(
        nets.encoder, nets.critic, nets.actor,
        gamma=hp["discount"], value_horizon=hp["Q_horizon"],
        policy_noise=hp["target_policy_noise"], multistep_rule="reference",
        reward_scale=hp["reward_scale"], target_reward_scale=hp["target_reward_scale"],
    )
    MRQHardUpdate(loss)  # targets = copies of the initial weights, as in the release
    b = golden["batch"]
    td = TensorDict(
        {
            "observation": b["state"], "action": b["action"],
            "next": {"observation": b["next_state"], "reward": b["reward"],
                     "terminated": b["not_done"] == 0},
        },
        batch_size=b["state"].shape[:2],
    )
    return nets, loss, td


def run_updates(golden, dense_regimes=False):
    """Golden order: one encoder update, then one value update and one policy update."""
    hp = golden["hyperparameters"]
    nets, loss, td = build(golden)
    opt = {
        "encoder": torch.optim.AdamW(loss.encoder_params.values(True, True),
                                     lr=hp["encoder_lr"], weight_decay=hp["weight_decay"]),
        "critic": torch.optim.AdamW(loss.critic_params.values(True, True),
                                    lr=hp["value_lr"], weight_decay=hp["weight_decay"]),
        "actor": torch.optim.AdamW(loss.actor_params.values(True, True),
                                   lr=hp["policy_lr"], weight_decay=hp["weight_decay"]),
    }
    controllers = {}
    if dense_regimes:
        from torchrl_mst.sparse import Dense, sparsify

        for name in opt:
            controllers[name] = sparsify(getattr(nets, name), Dense(), opt[name])

    def step(name):
        opt[name].step()
        if name in controllers:
            controllers[name].step()

    out = {}
    loss_enc, _ = loss.encoder_loss(td)
    loss_enc.backward()
    step("encoder")
    out["encoder"] = {k: v.clone() for k, v in mrq_to_reference(nets)["encoder"].items()}
    loss_critic, meta = loss.critic_loss(td)
    loss_critic.backward()
    torch.nn.utils.clip_grad_norm_(loss.critic_params.values(True, True), 20.0)
    step("critic")
    loss_actor, _ = loss.actor_loss(td)
    loss_actor.backward()
    step("actor")
    ref = mrq_to_reference(nets)
    out["value"], out["policy"] = ref["value"], ref["policy"]
    return out, meta, td


def test_two_hot_encoding_matches_release(golden):
    e = golden["expected"]
    ours = two_hot_encode(e["two_hot_in"].reshape(-1), reward_bins())
    assert close(ours, e["two_hot_out"])


def test_two_hot_out_of_range_is_clamped_not_a_crash():
    bins = reward_bins()
    edge = bins[-1].item()
    enc = two_hot_encode(torch.tensor([1e6, -1e6, edge]), bins)
    assert enc[0, -1] == 1 and enc[1, 0] == 1 and enc[2, -1] == 1
    assert torch.allclose(enc.sum(-1), torch.ones(3))


def test_encoder_update_matches_release(golden):
    out, _, _ = run_updates(golden)
    ref = golden["expected"]["encoder_after_one_update"]
    assert out["encoder"].keys() == ref.keys()
    for k in ref:
        assert close(out["encoder"][k], ref[k]), k


def test_value_target_priorities_and_updates_match_release(golden):
    out, meta, td = run_updates(golden)
    e = golden["expected"]
    assert close(meta["reward"], e["rl_multistep_reward"])
    assert close(meta["not_done"], e["rl_not_done"])
    assert close(meta["q"], e["rl_Q"])
    assert close(meta["target"], e["rl_Q_target"])
    assert close(td["td_error"][:, 0], e["lap_priority"])
    assert (td["td_error"] == td["td_error"][:, :1]).all()
    for module, key in (("value", "value_after_one_update"), ("policy", "policy_after_one_update")):
        for k in e[key]:
            assert close(out[module][k], e[key][k]), (module, k)


def test_dense_regimes_do_not_change_a_single_number(golden):
    plain, meta_plain, _ = run_updates(golden)
    dense, meta_dense, _ = run_updates(golden, dense_regimes=True)
    for module in plain:
        for k in plain[module]:
            assert torch.equal(plain[module][k], dense[module][k]), (module, k)
    assert torch.equal(meta_plain["target"], meta_dense["target"])
