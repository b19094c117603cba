"""MR.Q networks: the authors' shapes, key layout, initialisation and forward numbers."""

from pathlib import Path

import pytest
import torch

from torchrl_mst.compat import mrq_from_reference, mrq_to_reference
from torchrl_mst.modules import MRQEncoder, make_mrq_networks
from torchrl_mst.modules.blocks import xavier_bound
from torchrl_mst.sparse import StaticSparse, sparsify

GOLDEN = Path(__file__).parents[1] / "data_files" / "mrq_parity_v1.pt"


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def test_default_networks_have_the_authors_parameter_shapes():
    """Types (4,4,3) at 1x: every tensor of the release's layout, with MR.Q's default widths."""
    nets = make_mrq_networks(24, 6)
    ref = mrq_to_reference(nets)
    obs, act, h, zs, za, zsa, bins = 24, 6, 512, 512, 256, 512, 65
    expected = {
        "encoder": {
            "zs_mlp.l1.weight": (h, obs), "zs_mlp.l2.weight": (h, h), "zs_mlp.l3.weight": (zs, h),
            "za.weight": (za, act),
            "zsa.l1.weight": (h, zs + za), "zsa.l2.weight": (h, h), "zsa.l3.weight": (zsa, h),
            "model.weight": (1 + zs + bins, zsa),
        },
        "value": {
            f"q{k}.q1.l{i}.weight": (h, zsa if i == 1 else h) for k in (1, 2) for i in (1, 2, 3)
        } | {"q1.q2.weight": (1, h), "q2.q2.weight": (1, h)},
        "policy": {"policy.l1.weight": (h, zs), "policy.l2.weight": (h, h),
                   "policy.l3.weight": (act, h)},
    }
    for module, shapes in expected.items():
        got = {k: tuple(v.shape) for k, v in ref[module].items() if k.endswith("weight")}
        assert got == shapes
        for k, v in ref[module].items():
            if k.endswith("bias"):
                assert v.shape == (ref[module][k[:-4] + "weight"].shape[0],)
    # Nothing else: no affine LayerNorm parameters, no extra tensors.
    assert sum(p.numel() for p in nets.parameters()) == sum(
        v.numel() for sd in ref.values() for v in sd.values()
    )


def test_default_initialisation_statistics():
    torch.manual_seed(3)
    nets = make_mrq_networks(223, 38)
    linears = [m for m in nets.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 + 1 + 3 + 1 + 2 * 4 + 3
    for lin in linears:
        a = xavier_bound(lin.in_features, lin.out_features)
        w = lin.weight.detach()
        assert w.abs().max() <= a
        assert abs(w.mean().item()) < 0.05 * a
        if w.numel() > 20_000:
            assert abs(w.std().item() / (a / 3**0.5) - 1) < 0.02
        assert torch.count_nonzero(lin.bias) == 0


def test_reference_import_reproduces_authors_forward(golden):
    sd = golden["initial_state_dicts"]
    nets = mrq_from_reference(sd["encoder"], sd["value"], sd["policy"])
    b, e = golden["batch"], golden["expected"]
    with torch.no_grad():
        zs = nets.encoder.zs(b["state"][:, 0])
        zsa = nets.encoder.zsa(zs, b["action"][:, 0])
        done, next_zs, reward = nets.encoder.model_head(zsa)
        q = nets.critic(zsa)
        action, pre = nets.actor(zs)
    got = dict(zs=zs, zsa=zsa, model_done=done, model_zs=next_zs, model_reward=reward, q=q,
               policy_action=action, policy_pre=pre)
    for k, v in got.items():
        assert v.shape == e[k].shape, k
        assert torch.allclose(v, e[k], rtol=1e-5, atol=1e-6), k


def test_reference_round_trip_is_exact(golden):
    sd = golden["initial_state_dicts"]
    back = mrq_to_reference(mrq_from_reference(sd["encoder"], sd["value"], sd["policy"]))
    for module in ("encoder", "value", "policy"):
        assert back[module].keys() == sd[module].keys()
        for k in sd[module]:
            assert torch.equal(back[module][k], sd[module][k])


def test_reference_import_rejects_foreign_state_dict(golden):
    sd = golden["initial_state_dicts"]
    bad = dict(sd["encoder"])
    bad.pop("za.weight")
    with pytest.raises(ValueError, match=r"missing \['za.weight'\]"):
        mrq_from_reference(bad, sd["value"], sd["policy"])
    wrong_shape = dict(sd["value"])
    wrong_shape["q1.q1.l2.weight"] = torch.zeros(64, 32)
    with pytest.raises(ValueError, match=r"do not belong to one MR\.Q agent"):
        mrq_from_reference(sd["encoder"], wrong_shape, sd["policy"])


def test_mst_types_build_and_run():
    nets = make_mrq_networks(10, 3, scale="1x", encoder_type=6, critic_type=6, actor_type=5)
    zs = nets.encoder.zs(torch.randn(4, 10))
    zsa = nets.encoder.zsa(zs, torch.rand(4, 3) * 2 - 1)
    assert nets.critic(zsa).shape == (4, 2)
    action, pre = nets.actor(zs)
    assert action.shape == pre.shape == (4, 3) and action.abs().max() < 1
    # zs 512 -> hidden 512: the actor's first block carries the shortcut; the encoder's
    # obs(10) -> 512 first block is a plain projection.
    assert nets.actor.policy.blocks[0].residual == "pre"
    assert nets.encoder.zs_mlp.blocks[0].projection


def test_pixel_encoder_is_the_releases_conv_trunk():
    enc = MRQEncoder((9, 84, 84), 6)
    convs = [m for m in enc.zs_mlp if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (9, 32, (3, 3), (2, 2)), (32, 32, (3, 3), (2, 2)), (32, 32, (3, 3), (2, 2)),
        (32, 32, (3, 3), (1, 1))]
    # 84 -> 41 -> 20 -> 9 -> 7: 32 * 7 * 7 = 1568 features into Linear(1568, 512)
    head = enc.zs_mlp[-1]
    assert (head.in_features, head.out_features) == (1568, 512)
    # the release's counts by hand: 9*32*9+32, 3 x (32*32*9+32), 1568*512+512
    assert sum(p.numel() for p in enc.zs_mlp.parameters()) == 2624 + 3 * 9248 + 803328
    frames = torch.randint(0, 256, (4, 9, 84, 84), dtype=torch.uint8)
    zs = enc.zs(frames)
    assert zs.shape == (4, 512) and zs.dtype == torch.float32
    # zs = elu(layer_norm(Linear(flatten(elu-convs(s / 255 - 0.5)))))
    x = frames.float() / 255 - 0.5
    for c in convs:
        x = torch.nn.functional.elu(c(x))
    by_hand = torch.nn.functional.elu(
        torch.nn.functional.layer_norm(head(x.flatten(1)), (512,)))
    torch.testing.assert_close(zs, by_hand)
    torch.testing.assert_close(enc.zs(frames.float()), zs)
    bound = xavier_bound(9 * 9, 32 * 9)
    assert convs[0].weight.abs().max() <= bound and torch.count_nonzero(convs[0].bias) == 0


def test_pixel_encoder_sparsifies_its_convolutions_and_refuses_tiny_frames():
    nets = make_mrq_networks((3, 64, 64), 2, scale="0.25x")
    ctl = sparsify(nets.encoder, StaticSparse(0.6), seed=0)
    assert {f"zs_mlp.{i}.weight" for i in (0, 2, 4, 6)} <= set(ctl.masks)
    total = sum(m.numel() for m in ctl.masks.values())
    assert sum(int(m.sum()) for m in ctl.masks.values()) == round(0.4 * total)
    with pytest.raises(ValueError, match=r"too small .* at least 31x31"):
        MRQEncoder((3, 16, 16), 2)
    with pytest.raises(ValueError, match=r"an int \(state\) or a \(C, H, W\) shape"):
        MRQEncoder((84, 84), 2)
