"""Import networks from the authors' MR.Q release (checkpoint key layout of ``mrq.md``).

Name map (MR.Q release -> torchrl_mst), ``i`` in 1..3 and ``k`` in 1..2:

==============================  =====================================
MR.Q ``encoder``                ``MRQEncoder``
==============================  =====================================
``zs_mlp.l{i}``                 ``zs_mlp.blocks.{i-1}.linear`` (``l3`` -> ``zs_mlp.head``)
``za``                          ``za``
``zsa.l{i}``                    ``zsa_mlp.blocks.{i-1}.linear`` (``l3`` -> ``zsa_mlp.head``)
``model``                       ``model``
``value.q{k}.q1.l{i}``          ``critic.q{k}.blocks.{i-1}.linear``
``value.q{k}.q2``               ``critic.q{k}.head``
``policy.policy.l{i}``          ``actor.policy.blocks.{i-1}.linear`` (``l3`` -> ``head``)
==============================  =====================================
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from torchrl_mst.modules.mrq import MRQActor, MRQCritic, MRQEncoder
from torchrl_mst.modules.presets import MRQNetworks

__all__ = ["mrq_from_reference", "mrq_to_reference"]


def _mlp_map(ref_prefix: str, our_prefix: str, num_layers: int = 3) -> dict[str, str]:
    out = {}
    for i in range(1, num_layers + 1):
        ours = f"{our_prefix}.head" if i == num_layers else f"{our_prefix}.blocks.{i - 1}.linear"
        for p in ("weight", "bias"):
            out[f"{ref_prefix}.l{i}.{p}"] = f"{ours}.{p}"
    return out


def _key_maps() -> dict[str, dict[str, str]]:
    enc = {**_mlp_map("zs_mlp", "zs_mlp"), **_mlp_map("zsa", "zsa_mlp")}
    for p in ("weight", "bias"):
        enc[f"za.{p}"] = f"za.{p}"
        enc[f"model.{p}"] = f"model.{p}"
    val: dict[str, str] = {}
    for k in (1, 2):
        # The critic's three base-MLP linears are all followed by ln_act: all are blocks.
        for i in range(1, 4):
            for p in ("weight", "bias"):
                val[f"q{k}.q1.l{i}.{p}"] = f"q{k}.blocks.{i - 1}.linear.{p}"
        for p in ("weight", "bias"):
            val[f"q{k}.q2.{p}"] = f"q{k}.head.{p}"
    pol = _mlp_map("policy", "policy")
    return {"encoder": enc, "value": val, "policy": pol}


def _check_keys(name: str, sd: Mapping[str, torch.Tensor], expected: set[str]) -> None:
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        raise ValueError(
            f"The {name} state dict does not have MR.Q's key layout (state observations): "
            f"missing {missing[:6]}{'...' if len(missing) > 6 else ''}, unexpected "
            f"{unexpected[:6]}{'...' if len(unexpected) > 6 else ''}. Pass the state dicts of the "
            "release's `agent.encoder`, `agent.value` and `agent.policy` (pixel encoders are not "
            "supported by this importer)."
        )


def mrq_from_reference(
    encoder_sd: Mapping[str, torch.Tensor],
    value_sd: Mapping[str, torch.Tensor],
    policy_sd: Mapping[str, torch.Tensor],
    *,
    num_bins: int = 65,
) -> MRQNetworks:
    """Build MR.Q networks (types 4/4/3) holding the weights of an authors' checkpoint.

    Widths are inferred from the shapes: ``zs_mlp.l1.weight`` is ``[hidden, obs_dim]``,
    ``za.weight`` ``[za_dim, action_dim]``, ``zsa.l3.weight`` ``[zsa_dim, hidden]``,
    ``model.weight`` ``[1 + zs_dim + num_bins, zsa_dim]``, and so on.

    Args:
        encoder_sd: the release's ``encoder.state_dict()``.
        value_sd: the release's ``value.state_dict()``.
        policy_sd: the release's ``policy.state_dict()``.

    Keyword Args:
        num_bins: reward bins of the model head (MR.Q: 65).

    Raises:
        ValueError: when a key is missing or unexpected, or shapes are inconsistent.
    """
    maps = _key_maps()
    _check_keys("encoder", encoder_sd, set(maps["encoder"]))
    _check_keys("value", value_sd, set(maps["value"]))
    _check_keys("policy", policy_sd, set(maps["policy"]))

    enc_hidden, obs_dim = encoder_sd["zs_mlp.l1.weight"].shape
    zs_dim = encoder_sd["zs_mlp.l3.weight"].shape[0]
    za_dim, action_dim = encoder_sd["za.weight"].shape
    zsa_dim = encoder_sd["zsa.l3.weight"].shape[0]
    model_out = encoder_sd["model.weight"].shape[0]
    if model_out != 1 + zs_dim + num_bins:
        raise ValueError(
            f"model.weight has {model_out} rows but 1 + zs_dim + num_bins = "
            f"{1 + zs_dim + num_bins} (zs_dim={zs_dim}, num_bins={num_bins}); pass the release's "
            "num_bins."
        )
    value_hidden = value_sd["q1.q1.l1.weight"].shape[0]
    policy_hidden = policy_sd["policy.l1.weight"].shape[0]
    encoder = MRQEncoder(
        int(obs_dim),
        int(action_dim),
        zs_dim=int(zs_dim),
        za_dim=int(za_dim),
        zsa_dim=int(zsa_dim),
        hidden=int(enc_hidden),
        block_type=4,
        num_bins=num_bins,
    )
    critic = MRQCritic(int(zsa_dim), hidden=int(value_hidden), block_type=4)
    actor = MRQActor(int(zs_dim), int(action_dim), hidden=int(policy_hidden), block_type=3)
    for module, name, sd in (
        (encoder, "encoder", encoder_sd),
        (critic, "value", value_sd),
        (actor, "policy", policy_sd),
    ):
        ours = {maps[name][k]: v for k, v in sd.items()}
        target = module.state_dict()
        for k, v in ours.items():
            if target[k].shape != v.shape:
                raise ValueError(
                    f"{name} tensor for {k!r} has shape {tuple(v.shape)}, expected "
                    f"{tuple(target[k].shape)} from the widths inferred elsewhere in the "
                    "checkpoint; the state dicts do not belong to one MR.Q agent."
                )
        module.load_state_dict(ours, strict=True)
    return MRQNetworks(encoder, critic, actor)


def mrq_to_reference(networks: MRQNetworks) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of :func:`mrq_from_reference`: ``{"encoder", "value", "policy"}`` state dicts.

    Only for types 4/4/3 networks with two blocks per MLP (MR.Q's layout).
    """
    maps = _key_maps()
    encoder_sd = networks.encoder.state_dict()
    critic_sd = networks.critic.state_dict()
    actor_sd = networks.actor.state_dict()
    return {
        "encoder": {ref: encoder_sd[ours] for ref, ours in maps["encoder"].items()},
        "value": {ref: critic_sd[ours] for ref, ours in maps["value"].items()},
        "policy": {ref: actor_sd[ours] for ref, ours in maps["policy"].items()},
    }
