"""Scale presets: shapes and parameter counts for every preset (on the meta device)."""

import pytest

from torchrl_mst.modules import SCALE_PRESETS, count_parameters, get_scale_preset, make_mrq_networks

DOG = (223, 38)


def hand_count(obs, act, m, blocks, bins=65):
    """Parameter count from the spec's layer list, written out by hand."""
    h, zs, za, zsa = round(512 * m), round(512 * m), round(256 * m), round(512 * m)
    lin = lambda i, o: i * o + o
    enc = (lin(obs, h) + (blocks - 1) * lin(h, h) + lin(h, zs) + lin(act, za)
           + lin(zs + za, h) + (blocks - 1) * lin(h, h) + lin(h, zsa) + lin(zsa, 1 + zs + bins))
    critic = 2 * (lin(zsa, h) + blocks * lin(h, h) + lin(h, 1))
    actor = lin(zs, h) + (blocks - 1) * lin(h, h) + lin(h, act)
    return enc, critic, actor


@pytest.mark.parametrize("name", list(SCALE_PRESETS))
@pytest.mark.parametrize("dims", [DOG, (67, 21)], ids=["dog", "humanoid"])
def test_preset_parameter_counts_match_hand_count(name, dims):
    preset = SCALE_PRESETS[name]
    nets = make_mrq_networks(*dims, scale=name, device="meta")
    counts = count_parameters(nets)
    enc, critic, actor = hand_count(*dims, preset.width_multiplier, preset.num_blocks)
    assert counts["encoder"]["total"] == enc
    assert counts["critic"]["total"] == critic
    assert counts["actor"]["total"] == actor
    assert counts["total"]["total"] == enc + critic + actor


def test_one_x_is_mrq_default_about_4m_on_dog_run():
    total = count_parameters(make_mrq_networks(*DOG, device="meta"))["total"]["total"]
    assert 3.9e6 < total < 4.1e6


def test_largest_preset_is_within_5_percent_of_362m_on_dog_run():
    largest = max(SCALE_PRESETS.values(), key=lambda p: p.width_multiplier)
    total = count_parameters(make_mrq_networks(*DOG, scale=largest, device="meta"))["total"]
    assert abs(total["total"] / 362e6 - 1) < 0.05


@pytest.mark.parametrize("name", list(SCALE_PRESETS))
def test_preset_shapes(name):
    w = SCALE_PRESETS[name].widths()
    nets = make_mrq_networks(*DOG, scale=name, device="meta")
    assert nets.encoder.zs_mlp.head.weight.shape == (w["zs_dim"], w["hidden"])
    assert nets.encoder.za.weight.shape == (w["za_dim"], DOG[1])
    assert nets.critic.q1.blocks[0].linear.weight.shape == (w["hidden"], w["zsa_dim"])
    assert nets.actor.policy.head.weight.shape == (DOG[1], w["hidden"])


def test_active_counts_follow_masks_not_zero_values():
    from torchrl_mst.sparse import StaticSparse, sparsify

    nets = make_mrq_networks(5, 2, scale="1x")
    before = count_parameters(nets)
    assert before["critic"]["active"] == before["critic"]["total"]  # zero biases count
    ctrl = sparsify(nets.critic, StaticSparse(sparsity=0.6))
    after = count_parameters(nets)
    kept = sum(int(m.sum()) for m in ctrl.masks.values())
    masked_numel = sum(m.numel() for m in ctrl.masks.values())
    assert after["critic"]["active"] == before["critic"]["total"] - masked_numel + kept
    assert after["critic"]["total"] == before["critic"]["total"]
    assert after["total"]["active"] == after["total"]["total"] - (masked_numel - kept)


def test_float_scales_and_too_small_scales():
    assert get_scale_preset("0.25x").widths()["za_dim"] == 64
    with pytest.raises(ValueError, match="rounds a width to 0"):
        get_scale_preset("0.001x")


def test_unknown_preset_lists_valid_choices():
    with pytest.raises(ValueError, match=r"valid presets are \['1x', '3x', '5x', 'xl'\]"):
        get_scale_preset("big")
