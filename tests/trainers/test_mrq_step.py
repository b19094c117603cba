"""The MRQ training step: the spec's order of operations, optimizers, regimes, policies."""

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical, OneHot
from torchrl.envs.utils import ExplorationType, set_exploration_type

from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.modules import ScalePreset, make_mrq_networks, make_mrq_policies
from torchrl_mst.objectives import MRQLoss
from torchrl_mst.sparse import RigL, StaticSparse
from torchrl_mst.trainers import MRQ

TINY = ScalePreset("tiny", 1 / 32)


def filled_buffer(n=300, terminal_at=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    rb = MRQReplayBuffer(1000, batch_size=8, seed=seed)
    trunc = torch.zeros(n, 1, dtype=torch.bool)
    trunc[99::100] = True
    term = torch.zeros(n, 1, dtype=torch.bool)
    if terminal_at is not None:
        term[terminal_at] = True
    rb.extend(TensorDict({
        "observation": torch.randn(n, 4, generator=g), "action": torch.rand(n, 2, generator=g),
        ("next", "observation"): torch.randn(n, 4, generator=g),
        ("next", "reward"): torch.randn(n, 1, generator=g) * 3,
        ("next", "terminated"): term, ("next", "truncated"): trunc,
        ("next", "done"): term | trunc}, [n]))
    return rb


def make(regimes=None, terminal_at=None, interval=10):
    nets = make_mrq_networks(4, 2, scale=TINY)
    loss = MRQLoss(nets.encoder, nets.critic, nets.actor, use_done_loss=False)
    rb = filled_buffer(terminal_at=terminal_at)
    return nets, loss, rb, MRQ(loss, rb, regimes=regimes, target_update_interval=interval, seed=0)


def test_first_step_copies_targets_refreshes_scale_and_runs_the_encoder_burst():
    nets, loss, rb, mrq = make(interval=10)
    enc_before = [p.detach().clone() for p in nets.encoder.parameters()]
    calls = {"n": 0}
    sample = rb.sample

    def counting_sample(*a, **k):
        calls["n"] += 1
        return sample(*a, **k)

    rb.sample = counting_sample
    metrics = mrq.step()
    # 10 encoder batches + 1 critic/actor batch
    assert calls["n"] == 11
    assert mrq.optimizers["encoder"].state_dict()["state"][0]["step"] == 10
    assert mrq.optimizers["critic"].state_dict()["state"][0]["step"] == 1
    stored = rb.storage[: len(rb)]["next", "reward"]
    assert loss.reward_scale.item() == pytest.approx(stored.abs().mean().item(), rel=1e-6)
    assert loss.target_reward_scale.item() == 1.0
    # targets were copied BEFORE the burst: they hold the initial encoder weights
    targets = list(loss.target_encoder_params.values(True, True))
    assert all(torch.equal(t, b) for t, b in zip(targets, enc_before))
    assert {"loss/encoder", "loss/critic", "loss/actor", "grad_norm/critic"} <= set(metrics)
    opt_steps = lambda: mrq.optimizers["encoder"].state_dict()["state"][0]["step"]
    for _ in range(9):
        assert "loss/encoder" in mrq.step()  # the last burst's metrics, every step
        assert opt_steps() == 10
    mrq.step()  # step 10: next copy and burst
    assert opt_steps() == 20
    assert loss.target_reward_scale.item() == pytest.approx(stored.abs().mean().item(), rel=1e-6)


def test_priorities_are_written_to_the_sampled_start_indices():
    nets, loss, rb, mrq = make()
    batch = rb.sample()
    loss.critic_loss(batch)
    mrq.write_priorities(batch)
    starts = batch["index"][:, 0]
    got = rb.sampler.priority(starts)
    torch.testing.assert_close(got.float(), batch["td_error"][:, 0].float())


def test_done_loss_is_on_iff_a_terminal_was_stored():
    _, loss, _, mrq = make(terminal_at=[50])
    assert not loss.use_done_loss
    mrq.step()
    assert loss.use_done_loss
    nets = make_mrq_networks(4, 2, scale=TINY)
    loss2 = MRQLoss(nets.encoder, nets.critic, nets.actor)  # standalone default: on
    assert loss2.use_done_loss
    mrq2 = MRQ(loss2, filled_buffer(), target_update_interval=10)
    mrq2.step()
    assert not loss2.use_done_loss  # DMC-like data: no terminal, no done term


def test_regimes_keep_masked_weights_zero_through_training_and_in_targets():
    nets, loss, rb, mrq = make(
        regimes={"critic": RigL(sparsity=0.6, update_interval=5, stop_step=40),
                 "actor": StaticSparse(sparsity=0.6)},
        interval=10,
    )
    for _ in range(25):
        mrq.step()
    for name in ("critic", "actor"):
        ctrl = mrq.controllers[name]
        assert ctrl.sparsity() == pytest.approx(0.6, abs=0.02)
        for pname, mask in ctrl.masks.items():
            weight = nets.get_parameter(pname)  # names: <module>.<layer path>.weight
            target = loss._modules[f"target_{name}_params"].get(tuple(pname.split(".")[1:]))
            assert (weight[~mask] == 0).all(), pname
            assert (target[~mask] == 0).all(), pname
    assert mrq.controllers["critic"].num_updates >= 4
    sd = mrq.state_dict()
    assert set(sd["controllers"]) == {"critic", "actor"}


def test_state_dict_refuses_a_checkpoint_from_another_config():
    _, _, _, sparse_mrq = make(regimes={"actor": StaticSparse(sparsity=0.5)})
    _, _, _, dense_mrq = make()
    with pytest.raises(ValueError, match="another config"):
        dense_mrq.load_state_dict(sparse_mrq.state_dict())


def test_unknown_module_name_in_regimes():
    nets = make_mrq_networks(4, 2, scale=TINY)
    loss = MRQLoss(nets.encoder, nets.critic, nets.actor)
    with pytest.raises(ValueError, match=r"Unknown module names \['value'\]"):
        MRQ(loss, filled_buffer(), regimes={"value": StaticSparse()})


def test_exploration_policy_adds_clipped_noise_only_when_exploring():
    nets = make_mrq_networks(4, 2, scale=TINY)
    spec = Bounded(-1.0, 1.0, shape=(2,))
    policy, explore = make_mrq_policies(nets.encoder, nets.actor, spec)
    td = TensorDict({"observation": torch.randn(512, 4)}, [512])
    with torch.no_grad():
        clean = policy(td.clone())["action"]
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            assert torch.equal(explore(td.clone())["action"], clean)
        with set_exploration_type(ExplorationType.RANDOM):
            noisy = explore(td.clone())["action"]
    assert noisy.abs().max() <= 1.0
    unclipped = (noisy - clean)[(noisy.abs() < 1)]
    assert 0.17 < unclipped.std() < 0.23


def test_discrete_policies_act_by_the_argmax_and_explore_with_half_the_noise():
    nets = make_mrq_networks(4, 3, scale=TINY, discrete=True)
    spec = OneHot(3)
    policy, explore = make_mrq_policies(nets.encoder, nets.actor, spec)
    assert explore.module.noise_std == 0.1
    td = TensorDict({"observation": torch.randn(4096, 4)}, [4096])
    with torch.no_grad():
        torch.manual_seed(0)
        acted = policy(td.clone())["action"]
        torch.manual_seed(0)  # the same Gumbel draws: the argmax of the actor's sample
        sample = nets.actor(nets.encoder.zs(td["observation"]))[0]
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            torch.manual_seed(0)
            assert torch.equal(explore(td.clone())["action"], acted)
        with set_exploration_type(ExplorationType.RANDOM):
            torch.manual_seed(0)
            noisy = explore(td.clone())["action"]
    assert acted.dtype == spec.dtype and spec.is_in(acted[0])
    assert torch.equal(acted, torch.nn.functional.one_hot(sample.argmax(-1), 3).to(spec.dtype))
    # tau = 10 makes the sample nearly uniform, so N(0, 0.1) noise changes many argmaxes
    changed = (noisy != acted).any(-1).float().mean()
    assert 0.05 < changed < 0.9


def test_discrete_and_continuous_mismatches_name_the_fix():
    discrete = make_mrq_networks(4, 3, scale=TINY, discrete=True)
    continuous = make_mrq_networks(4, 3, scale=TINY)
    with pytest.raises(ValueError, match=r"continuous action spec with a discrete actor.*"
                                         r"discrete=False"):
        make_mrq_policies(discrete.encoder, discrete.actor, Bounded(-1.0, 1.0, shape=(3,)))
    with pytest.raises(ValueError, match=r"discrete \(OneHot\) action spec with a continuous "
                                         r"actor.*discrete=True"):
        make_mrq_policies(continuous.encoder, continuous.actor, OneHot(3))
    with pytest.raises(ValueError, match=r"Categorical .*one-hot actions"):
        make_mrq_policies(discrete.encoder, discrete.actor, Categorical(3))


def test_mrq_masks_are_in_the_loss_state_dict_and_targets_zero_from_construction():
    nets, loss, rb, mrq = make(regimes={"critic": RigL(sparsity=0.6, update_interval=5,
                                                        stop_step=40)})
    masks = mrq.controllers["critic"].masks
    keys = [k for k in loss.state_dict() if k.startswith("sparse_masks.")]
    assert len(keys) == len(masks) > 0
    for name, mask in masks.items():  # before any step or target copy
        target = loss.target_critic_params.get(tuple(name.split(".")[1:]))
        assert torch.count_nonzero(target[~mask]) == 0


@pytest.mark.parametrize("order", ["load_then_sparsify", "sparsify_then_load"])
def test_loading_a_sparsified_mrq_loss_is_order_independent(order):
    regimes = {"critic": RigL(sparsity=0.6, update_interval=5, stop_step=40),
               "actor": StaticSparse(sparsity=0.6)}
    _, loss, rb, mrq = make(regimes=regimes)
    for _ in range(12):  # two mask updates: masks differ from any fresh draw
        mrq.step()
    state = loss.state_dict()
    nets2 = make_mrq_networks(4, 2, scale=TINY)
    loss2 = MRQLoss(nets2.encoder, nets2.critic, nets2.actor, use_done_loss=False)
    if order == "load_then_sparsify":
        loss2.load_state_dict(state)
        mrq2 = MRQ(loss2, rb, regimes=regimes, target_update_interval=10, seed=1)
    else:
        mrq2 = MRQ(loss2, rb, regimes=regimes, target_update_interval=10, seed=1)
        loss2.load_state_dict(state)
    for name in ("critic", "actor"):
        for pname, mask in mrq2.controllers[name].masks.items():
            assert torch.equal(mask, mrq.controllers[name].masks[pname]), pname
    w_before = [p.detach().clone() for p in loss2.critic_params.values(True, True)]
    mrq2.controllers["critic"].apply_masks()  # the next controller step zeroes nothing trained
    for a, b in zip(w_before, loss2.critic_params.values(True, True)):
        assert torch.equal(a, b)


@pytest.mark.slow
# tensordict reads a dynamo flag that torch 2.13 deprecates (a FutureWarning while tracing)
@pytest.mark.filterwarnings("ignore:torch._dynamo.config.inline_inbuilt_nn_modules")
def test_compiled_losses_give_the_eager_step(monkeypatch):
    """MRQ(compile=True) = MRQ(compile=False) through bursts, copies and a RigL critic.

    Inductor's own RNG is swapped for eager's (``fallback_random``) so both draw the same
    target-policy noise; what is left is float reassociation in fused kernels.
    """
    import warnings

    import torch._inductor.config as inductor_config

    with warnings.catch_warnings():  # torch's own import-time warning (torch.utils.mkldnn)
        warnings.simplefilter("ignore", DeprecationWarning)
        import torch._inductor.compile_fx
    monkeypatch.setattr(inductor_config, "fallback_random", True)
    torch._dynamo.reset()
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        nets = make_mrq_networks(4, 2, scale=TINY)
        loss = MRQLoss(nets.encoder, nets.critic, nets.actor, use_done_loss=False)
        rb = filled_buffer()
        mrq = MRQ(loss, rb, regimes={"critic": RigL(sparsity=0.6, update_interval=3, stop_step=8)},
                  target_update_interval=4, seed=0, compile=compiled)
        torch.manual_seed(1)
        metrics = [mrq.step() for _ in range(9)]
        runs.append((metrics, [p.detach().clone() for p in loss.parameters()]))
    (eager_m, eager_p), (comp_m, comp_p) = runs
    assert mrq.compiled
    for a, b in zip(eager_m, comp_m, strict=True):
        for key in ("loss/critic", "loss/actor", "loss/encoder", "q/mean"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    for a, b in zip(eager_p, comp_p, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_runs_the_losses_in_bf16_and_keeps_fp32_state():
    nets, loss, rb, fp32 = make()
    nets_bf16 = make_mrq_networks(4, 2, scale=TINY)
    nets_bf16.load_state_dict(nets.state_dict())
    loss_bf16 = MRQLoss(nets_bf16.encoder, nets_bf16.critic, nets_bf16.actor, use_done_loss=False)
    bf16 = MRQ(loss_bf16, filled_buffer(), target_update_interval=10, seed=0,
               autocast=torch.bfloat16)
    seen = []
    first_linear = next(m for m in nets_bf16.critic.modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    torch.manual_seed(0)
    m32 = fp32.step()
    torch.manual_seed(0)
    m16 = bf16.step()
    assert seen and set(seen) == {torch.bfloat16}
    # the same batches, rounded differently: close but not equal
    assert m16["loss/critic"] != m32["loss/critic"]
    assert m16["loss/critic"] == pytest.approx(m32["loss/critic"], rel=5e-2)
    assert all(p.dtype == torch.float32 for p in nets_bf16.parameters())
    for opt in bf16.optimizers.values():
        for state in opt.state.values():
            assert state["exp_avg"].dtype == torch.float32
    with pytest.raises(ValueError, match=r"autocast must be None or torch\.bfloat16"):
        MRQ(loss_bf16, rb, autocast=torch.float64)


def test_a_step_reads_its_metrics_from_the_device_in_one_copy(monkeypatch):
    """Each float()/item() of a CUDA tensor waits for the device: the step's metrics come
    back in one copy (grad norms, losses and Q are not read one by one)."""
    import traceback

    _, _, _, mrq = make(interval=10)
    mrq.step()  # the burst
    reads = []
    for name in ("item", "__float__", "tolist"):
        real = getattr(torch.Tensor, name)

        def wrapped(self, *a, _real=real, _name=name, **k):
            caller = traceback.extract_stack(limit=2)[0]
            if caller.filename.endswith("trainers/mrq.py"):
                reads.append((_name, caller.name))
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    metrics = mrq.step()  # no burst: one critic and one actor update
    assert reads == [("tolist", "_to_floats")]
    assert all(isinstance(v, float) for v in metrics.values())
