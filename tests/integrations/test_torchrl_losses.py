"""MST regimes on TorchRL's TD3Loss / SACLoss / ClipPPOLoss parameter containers.

TD3/SAC train stacked [K, out, in] critic copies in loss.qvalue_network_params and keep
target copies in loss.target_qvalue_network_params. After optimizer steps, RigL updates and
SoftUpdate/HardUpdate steps, every masked entry must be exactly 0 in the live AND the target
parameters, each critic member must hold its own exact ER count, and RigL must keep
per-member counts through updates.
"""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.data import Bounded
from torchrl.modules import Actor, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss, HardUpdate, SACLoss, SoftUpdate, TD3Loss

from torchrl_mst.sparse import Dense, RigL, StaticSparse, loss_network_names, sparsify
from torchrl_mst.sparse.distributions import allocate_kept_counts

OBS, ACT, HID, B = 5, 2, 24, 16
SPEC = Bounded(-1, 1, shape=(ACT,))


class Q(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(OBS + ACT, HID), nn.ReLU(), nn.Linear(HID, HID), nn.ReLU(), nn.Linear(HID, 1)
        )

    def forward(self, obs, act):
        return self.net(torch.cat([obs, act], -1))


def critic():
    return ValueOperator(Q(), in_keys=["observation", "action"])


def td3_actor():
    net = nn.Sequential(
        nn.Linear(OBS, HID), nn.ReLU(), nn.Linear(HID, HID), nn.ReLU(), nn.Linear(HID, ACT)
    )
    return Actor(net, in_keys=["observation"], spec=SPEC)


def sac_actor():
    net = nn.Sequential(
        nn.Linear(OBS, HID), nn.ReLU(), nn.Linear(HID, 2 * ACT), NormalParamExtractor()
    )
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(
        module,
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        spec=SPEC,
        return_log_prob=True,
    )


def batch(g):
    return TensorDict(
        {
            "observation": torch.randn(B, OBS, generator=g),
            "action": torch.rand(B, ACT, generator=g) * 2 - 1,
            "next": {
                "observation": torch.randn(B, OBS, generator=g),
                "reward": torch.randn(B, 1, generator=g),
                "done": torch.zeros(B, 1, dtype=torch.bool),
                "terminated": torch.zeros(B, 1, dtype=torch.bool),
            },
        },
        [B],
    )


def params_of(loss, ctl, target=False):
    """name -> live (or target) tensor for every sparsified tensor of ctl."""
    out = {}
    for name in ctl.masks:
        net, _, path = name.partition(".")
        container = getattr(loss, f"target_{net}_params" if target else f"{net}_params")
        out[name] = container.get(tuple(path.split(".")))
    return out


def assert_zero_where_masked(loss, ctl, opt, *, targets=True):
    live = params_of(loss, ctl)
    for name, mask in ctl.masks.items():
        assert mask.shape == live[name].shape
        assert torch.count_nonzero(live[name].detach()[~mask]) == 0, name
        for value in opt.state.get(live[name], {}).values():
            if isinstance(value, torch.Tensor) and value.shape == mask.shape:
                assert torch.count_nonzero(value[~mask]) == 0, name
    if targets:
        for name, tensor in params_of(loss, ctl, target=True).items():
            assert torch.count_nonzero(tensor[~ctl.masks[name]]) == 0, ("target", name)


@pytest.mark.parametrize("updater", ["soft", "hard"])
def test_td3_stacked_critic_and_targets_stay_masked(updater):
    torch.manual_seed(0)
    loss = TD3Loss(td3_actor(), critic(), action_spec=SPEC, num_qvalue_nets=2)
    critic_opt = torch.optim.AdamW(
        loss.qvalue_network_params.values(True, True), lr=1e-2, weight_decay=1e-2
    )
    actor_opt = torch.optim.AdamW(
        loss.actor_network_params.values(True, True), lr=1e-2, weight_decay=1e-2
    )
    critic_ctl = sparsify(
        loss,
        {"qvalue_network": RigL(update_interval=3, stop_step=100, drop_fraction=0.5)},
        critic_opt,
        seed=0,
    )
    actor_ctl = sparsify(loss, {"actor_network": StaticSparse(0.6)}, actor_opt, seed=1)
    if updater == "soft":
        target_updater = SoftUpdate(loss, tau=0.1)
    else:
        target_updater = HardUpdate(loss, value_network_update_interval=1)

    # per-member exact ER counts from the last two dims
    masks = critic_ctl.masks
    shapes = {f"{n}[{k}]": tuple(m.shape[1:]) for n, m in masks.items() for k in range(2)}
    expected = allocate_kept_counts(shapes, 0.6)
    for n, m in masks.items():
        assert m.shape[0] == 2
        for k in range(2):
            assert int(m[k].sum()) == expected[f"{n}[{k}]"]
    hidden = "qvalue_network.module.net.2.weight"
    assert not torch.equal(masks[hidden][0], masks[hidden][1])  # independent members
    counts = critic_ctl.kept_counts()

    g = torch.Generator().manual_seed(0)
    for step in range(9):
        data = batch(g)
        critic_opt.zero_grad()
        loss.value_loss(data)[0].backward()
        critic_ctl.mask_gradients()
        torch.nn.utils.clip_grad_norm_(loss.qvalue_network_params.values(True, True), 1.0)
        critic_opt.step()
        critic_ctl.step()
        if step % 2 == 1:  # delayed actor
            actor_opt.zero_grad()
            loss.actor_loss(data)[0].backward()
            actor_ctl.mask_gradients()
            actor_opt.step()
            actor_ctl.step()
        target_updater.step()
    assert critic_ctl.num_updates == 3
    assert critic_ctl.kept_counts() == counts
    assert_zero_where_masked(loss, critic_ctl, critic_opt)
    assert_zero_where_masked(loss, actor_ctl, actor_opt)
    # the actor's params are the user's module tensors: the mask reaches the module itself
    w = loss.actor_network.module[0].weight
    assert torch.count_nonzero(w[~actor_ctl.masks["actor_network.module.0.weight"]]) == 0
    # masks are saved with the loss
    sd = loss.state_dict()
    assert "sparse_masks.qvalue_network__module__net__0__weight" in sd


def test_sac_critic_rigl_actor_static_with_soft_updates():
    torch.manual_seed(0)
    loss = SACLoss(sac_actor(), critic(), action_spec=SPEC, num_qvalue_nets=2)
    assert sorted(loss_network_names(loss)) == ["actor_network", "qvalue_network"]
    opt = torch.optim.Adam(loss.parameters(), lr=1e-2)  # one optimizer for everything
    ctl = sparsify(
        loss,
        {
            "qvalue_network": RigL(update_interval=2, stop_step=50, drop_fraction=0.5),
            "actor_network": StaticSparse(0.5),
        },
        opt,
        seed=0,
    )
    updater = SoftUpdate(loss, eps=0.9)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        opt.zero_grad()
        out = loss(batch(g))
        (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
        ctl.mask_gradients()
        opt.step()
        ctl.step()
        updater.step()
    assert ctl.num_updates == 3
    assert_zero_where_masked(loss, ctl, opt, targets=False)
    for name, tensor in params_of(loss, ctl, target=True).items():
        if name.startswith("qvalue_network"):
            assert torch.count_nonzero(tensor[~ctl.masks[name]]) == 0
    assert ctl.last_update.grown > 0


def test_ppo_shared_critic_has_no_target_copy():
    torch.manual_seed(0)
    value = ValueOperator(
        nn.Sequential(nn.Linear(OBS, HID), nn.Tanh(), nn.Linear(HID, 1)), in_keys=["observation"]
    )
    actor = sac_actor()
    loss = ClipPPOLoss(actor, value)
    opt = torch.optim.Adam(loss.parameters(), lr=1e-2)
    ctl = sparsify(
        loss,
        {"critic_network": RigL(update_interval=2, stop_step=20), "actor_network": Dense()},
        opt,
        seed=0,
    )
    assert set(ctl.masks) == {"critic_network.module.0.weight", "critic_network.module.2.weight"}
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        data = batch(g)
        with torch.no_grad():
            actor(data)
            loss.value_estimator(
                data,
                params=loss.critic_network_params.detach(),
                target_params=loss.target_critic_network_params,
            )
        opt.zero_grad()
        out = loss(data)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
        ctl.mask_gradients()
        opt.step()
        ctl.step()
    assert_zero_where_masked(loss, ctl, opt, targets=False)
    # critic params are shared with the user's module: masks reach it
    w = value.module[0].weight
    assert torch.count_nonzero(w[~ctl.masks["critic_network.module.0.weight"]]) == 0


def test_integration_errors():
    loss = TD3Loss(td3_actor(), critic(), action_spec=SPEC)
    with pytest.raises(ValueError, match="no network 'critic'"):
        sparsify(loss, {"critic": StaticSparse()})
    sparsify(loss, {"qvalue_network": StaticSparse()}, seed=0)
    with pytest.raises(ValueError, match="already sparsified"):
        sparsify(loss, {"qvalue_network": StaticSparse()}, seed=0)
    with pytest.raises(ValueError, match="does not own"):
        sparsify(
            loss,
            {"actor_network": StaticSparse()},
            torch.optim.Adam(loss.qvalue_network_params.values(True, True)),
        )
    with pytest.raises(TypeError, match="mapping"):
        sparsify(loss, StaticSparse())
    pre = critic()
    sparsify(pre, StaticSparse(), seed=0)  # masks on the module would be cloned, not trained
    with pytest.raises(ValueError, match="already carries a weight mask"):
        sparsify(
            TD3Loss(td3_actor(), pre, action_spec=SPEC), {"qvalue_network": StaticSparse()}
        )


def sac_batch(n=B):
    return TensorDict(
        {
            "observation": torch.randn(n, OBS),
            "action": torch.rand(n, ACT) * 2 - 1,
            "next": {
                "observation": torch.randn(n, OBS),
                "reward": torch.randn(n, 1),
                "done": torch.zeros(n, 1, dtype=torch.bool),
                "terminated": torch.zeros(n, 1, dtype=torch.bool),
            },
        },
        [n],
    )


def test_sac_from_a_sparsified_module_raises_and_names_the_fix():
    """SACLoss stacks copies of the critic: masks on the module would train nothing."""
    pre = critic()
    sparsify(pre, StaticSparse(), seed=0)
    loss = SACLoss(sac_actor(), pre, action_spec=SPEC)
    with pytest.raises(RuntimeError, match=r"sparsify the loss: sparsify\(loss"):
        loss(sac_batch())


def test_targets_are_zero_at_masked_positions_right_after_construction():
    loss = SACLoss(sac_actor(), critic(), action_spec=SPEC)
    opt = torch.optim.Adam(loss.qvalue_network_params.values(True, True))
    ctl = sparsify(loss, {"qvalue_network": StaticSparse(0.6)}, opt, seed=0)
    for name, mask in ctl.masks.items():
        key = tuple(name.split(".")[1:])
        target = loss.target_qvalue_network_params.get(key)
        assert torch.count_nonzero(target[~mask]) == 0
        assert torch.count_nonzero(target[mask]) == int(mask.sum())


def test_masks_are_in_the_loss_state_dict_and_load_after_sparsify():
    def build(seed):
        torch.manual_seed(seed)
        loss = SACLoss(sac_actor(), critic(), action_spec=SPEC)
        ctl = sparsify(loss, {"qvalue_network": StaticSparse(0.6)}, seed=seed)
        return loss, ctl

    saved, saved_ctl = build(0)
    state = saved.state_dict()
    assert sum(k.startswith("sparse_masks.") for k in state) == len(saved_ctl.masks) == 3
    fresh, ctl = build(1)
    fresh.load_state_dict(state)
    for name, mask in ctl.masks.items():
        assert torch.equal(mask, saved_ctl.masks[name])


def test_torchrl_loss_loaded_before_sparsify_raises_naming_the_masks():
    saved = SACLoss(sac_actor(), critic(), action_spec=SPEC)
    sparsify(saved, {"qvalue_network": StaticSparse(0.6)}, seed=0)
    fresh = SACLoss(sac_actor(), critic(), action_spec=SPEC)
    with pytest.raises(RuntimeError, match="sparse_masks"):
        fresh.load_state_dict(saved.state_dict())
