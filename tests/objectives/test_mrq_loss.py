"""MRQLoss behaviour: hand-derived returns, gradient isolation, keys, targets, bad input."""

import pytest
import torch
from tensordict import TensorDict

from torchrl_mst.modules import ScalePreset, make_mrq_networks
from torchrl_mst.objectives import MRQHardUpdate, MRQLoss, lap_priority, multistep_return

TINY = ScalePreset("tiny", 1 / 32)  # hidden 16, za 8


def make_loss(**kwargs):
    nets = make_mrq_networks(4, 2, scale=TINY)
    return nets, MRQLoss(nets.encoder, nets.critic, nets.actor, **kwargs)


def make_batch(b=6, h=5, terminated_at=None):
    term = torch.zeros(b, h, 1, dtype=torch.bool)
    if terminated_at is not None:
        term[0, terminated_at] = True
    return TensorDict(
        {
            "observation": torch.randn(b, h, 4),
            "action": torch.rand(b, h, 2) * 2 - 1,
            "next": {"observation": torch.randn(b, h, 4), "reward": torch.randn(b, h, 1),
                     "terminated": term},
        },
        batch_size=[b, h],
    )


class TestMultistepReturn:
    """R = sum_t g^t r_t prod_{j<t}(1 - d_j) by default; the release's rule on request."""

    r = torch.tensor([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    d = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

    def test_correct_rule_by_hand(self):
        ret, nd = multistep_return(self.r, self.d, 0.5)
        # no termination: 1 + .5*2 + .25*4 = 3; terminal at t=1: 1 + .5*2 = 2 (the
        # terminal reward counts, the later one does not); terminal at t=0: 1.
        assert ret.squeeze(1).tolist() == [3.0, 2.0, 1.0]
        assert nd.squeeze(1).tolist() == [1.0, 0.0, 0.0]

    def test_reference_rule_by_hand(self):
        ret, nd = multistep_return(self.r, self.d, 0.5, rule="reference")
        # release: each reward times its own not_done: [3, 1 + 0 + 1 = 2, 0 + 1 + 1 = 2]
        assert ret.squeeze(1).tolist() == [3.0, 2.0, 2.0]
        assert nd.squeeze(1).tolist() == [1.0, 0.0, 0.0]

    def test_rules_agree_without_terminations(self):
        r = torch.randn(10, 3)
        d = torch.zeros(10, 3)
        assert torch.equal(multistep_return(r, d, 0.99)[0],
                           multistep_return(r, d, 0.99, rule="reference")[0])

    def test_unknown_rule(self):
        with pytest.raises(ValueError, match="'correct' or 'reference'"):
            multistep_return(self.r, self.d, 0.9, rule="nstep")


def test_lap_priority_by_hand():
    q = torch.tensor([[0.0, 3.0], [0.5, 0.2], [-2.0, 1.0]])
    y = torch.tensor([[1.0], [0.0], [1.0]])
    # max |delta|: 2, 0.5 -> floor 1, 3
    expected = torch.tensor([2.0, 1.0, 3.0]) ** 0.4
    torch.testing.assert_close(lap_priority(q, y), expected)


def test_critic_target_by_hand_with_default_rule():
    """Zero target networks' output: y = R / reward_scale with the correct return."""
    nets, loss = make_loss(reward_scale=2.0, target_reward_scale=3.0, policy_noise=0.0)
    MRQHardUpdate(loss)
    with torch.no_grad():
        for p in loss.target_critic_params.values(True, True):
            p.zero_()
    td = make_batch(terminated_at=1)
    _, meta = loss.critic_loss(td)
    r = td["next", "reward"][:, :3, 0]
    expected = r[:, 0] + 0.99 * r[:, 1] + 0.99**2 * r[:, 2]
    expected[0] = r[0, 0] + 0.99 * r[0, 1]  # terminal at t=1 counts, t=2 does not
    torch.testing.assert_close(meta["target"].squeeze(1), expected / 2.0)


def test_critic_target_uses_target_scale_and_gamma_cubed():
    nets, loss = make_loss(reward_scale=2.0, target_reward_scale=3.0, policy_noise=0.0)
    MRQHardUpdate(loss)
    with torch.no_grad():  # each target head outputs its bias: Q = [5, 7] -> min 5
        loss.target_critic_params["q1", "head", "weight"].zero_()
        loss.target_critic_params["q2", "head", "weight"].zero_()
        loss.target_critic_params["q1", "head", "bias"].fill_(5.0)
        loss.target_critic_params["q2", "head", "bias"].fill_(7.0)
    td = make_batch()
    td["next", "reward"].zero_()
    _, meta = loss.critic_loss(td)
    torch.testing.assert_close(meta["target"], torch.full((6, 1), 0.99**3 * 5.0 * 3.0 / 2.0))


@pytest.mark.parametrize("which", ["encoder", "critic", "actor"])
def test_each_loss_only_reaches_its_own_module(which):
    nets, loss = make_loss()
    MRQHardUpdate(loss)
    td = make_batch(terminated_at=2)
    value, _ = getattr(loss, f"{which}_loss")(td)
    value.backward()
    for module in ("encoder", "critic", "actor"):
        grads = [p.grad for p in getattr(nets, module).parameters()]
        if module == which:
            assert any(g is not None and g.abs().sum() > 0 for g in grads), module
        else:
            assert all(g is None for g in grads), module
    for name, p in loss.named_buffers():
        if name.startswith("target_"):
            assert p.grad is None and not p.requires_grad


def test_forward_writes_losses_and_priority_and_leaves_inputs_unchanged():
    nets, loss = make_loss()
    MRQHardUpdate(loss)
    td = make_batch()
    before = td.clone()
    out = loss(td)
    assert set(loss.out_keys) <= set(out.keys())
    assert td["td_error"].shape == (6, 5) and (td["td_error"] >= 1).all()
    assert (td.exclude("td_error") == before).all()


def test_set_keys_renames_inputs_and_priority():
    nets, loss = make_loss()
    MRQHardUpdate(loss)
    loss.set_keys(observation="obs", priority="prio")
    td = make_batch().rename_key_("observation", "obs")
    td["next"].rename_key_("observation", "obs")
    loss(td)
    assert "prio" in td.keys() and "td_error" not in td.keys()
    assert ("next", "obs") in loss.in_keys
    with pytest.raises(ValueError):
        loss.set_keys(not_a_key="x")


def test_encoder_mask_stops_after_first_termination():
    """Changing anything after the terminal step of a window leaves the encoder loss equal."""
    nets, loss = make_loss()
    MRQHardUpdate(loss)
    td = make_batch(b=1, terminated_at=1)
    base, _ = loss.encoder_loss(td)
    td2 = td.clone()
    td2["next", "reward"][0, 2:] += 100.0
    td2["next", "observation"][0, 2:] += 5.0
    td2["action"][0, 2:] = -td2["action"][0, 2:]
    changed, _ = loss.encoder_loss(td2)
    torch.testing.assert_close(base, changed)
    td3 = td.clone()
    td3["next", "reward"][0, 1] += 100.0  # the terminal step itself still counts
    assert loss.encoder_loss(td3)[0] != base


def test_done_loss_switch():
    nets, loss = make_loss(use_done_loss=False)
    MRQHardUpdate(loss)
    td = make_batch(terminated_at=0)
    off, meta = loss.encoder_loss(td)
    loss.use_done_loss.fill_(True)
    on, _ = loss.encoder_loss(td)
    torch.testing.assert_close(on - off, 0.1 * meta["done"])
    assert "use_done_loss" in loss.state_dict()


def test_hard_update_copies_at_0_250_500_and_refreshes_scales():
    nets, loss = make_loss()
    scales = iter([2.0, 5.0, 7.0, 11.0])
    updater = MRQHardUpdate(loss, interval=250, reward_scale_fn=lambda: next(scales))
    copied = [updater.step() for _ in range(501)]
    assert [i for i, c in enumerate(copied) if c] == [0, 250, 500]
    assert loss.reward_scale.item() == 7.0 and loss.target_reward_scale.item() == 5.0
    with torch.no_grad():
        nets.critic.q1.head.bias.fill_(9.0)
    assert loss.target_critic_params["q1", "head", "bias"].item() != 9.0
    for _ in range(249):
        updater.step()
    assert updater.step()  # step 750
    assert loss.target_critic_params["q1", "head", "bias"].item() == 9.0
    sd = loss.state_dict()
    assert sd["reward_scale"].item() == 11.0 and "target_critic_params.q1.head.bias" in sd


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(multistep_rule="nstep"), "multistep_rule"),
        (dict(value_horizon=0), "value_horizon"),
        (dict(gamma=1.5), "gamma"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_loss(**kwargs)


def test_flat_batch_is_refused_with_a_fix():
    nets, loss = make_loss()
    MRQHardUpdate(loss)
    with pytest.raises(ValueError, match=r"expects \[B, H\]"):
        loss.critic_loss(make_batch()[:, 0])
    with pytest.raises(ValueError, match="value_horizon is 3"):
        loss.critic_loss(make_batch(h=2))


def test_discrete_actor_targets_the_one_hot_argmax_with_halved_noises():
    nets = make_mrq_networks(4, 3, scale=TINY, discrete=True)
    loss = MRQLoss(nets.encoder, nets.critic, nets.actor)
    assert (loss.discrete, loss.policy_noise, loss.noise_clip) == (True, 0.1, 0.15)
    cont = make_loss()[1]
    assert (cont.discrete, cont.policy_noise, cont.noise_clip) == (False, 0.2, 0.3)
    assert make_loss(policy_noise=0.05, noise_clip=0.5)[1].policy_noise == 0.05
    batch = make_batch()
    # stored discrete actions are the env's one-hot integers
    batch["action"] = torch.nn.functional.one_hot(torch.randint(3, (6, 5)), 3)
    actions = []
    real_zsa = nets.encoder.zsa
    nets.encoder.zsa = lambda zs, a: (actions.append(a), real_zsa(zs, a))[1]
    torch.manual_seed(0)
    loss.critic_loss(batch)
    target_action, stored_action = actions  # the target's a' first, then the batch's action
    assert target_action.dtype == torch.float32 and stored_action.dtype == torch.float32
    assert torch.equal(stored_action, batch["action"][:, 0].float())
    # a' is exactly one-hot: the argmax of the target actor's sample plus noise
    assert set(target_action.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(target_action.sum(-1), torch.ones(6))
    # and it is the argmax of that sample + noise, replayed with the same seed
    torch.manual_seed(0)
    with torch.no_grad(), loss.target_encoder_params.to_module(nets.encoder), \
            loss.target_actor_params.to_module(nets.actor):
        sample = nets.actor(nets.encoder.zs(batch["next", "observation"][:, 2]))[0]
        noise = (torch.randn_like(sample) * 0.1).clamp(-0.15, 0.15)
    assert torch.equal(target_action.argmax(-1), (sample + noise).argmax(-1))
    # the actor's loss runs on the differentiable Gumbel-softmax sample
    loss_actor, _ = loss.actor_loss(batch)
    loss_actor.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets.actor.parameters())
