"""How far each precision option moves MR.Q's update from the release's parity vectors.

Replays the golden update of ``tests/data_files/mrq_parity_v1.pt`` (one encoder update,
then one critic and one actor update, from the release's initial weights; see its
``PROVENANCE.md``) under each setting of ``--matmul-precision`` and ``--autocast`` and
reports the relative error against the file:

* forward values (Q, its target, the LAP priorities): ``max|ours - golden| / max|golden|``;
* each module's update: ``||Δ_ours - Δ_golden|| / ||Δ_golden||`` with ``Δ`` the change of
  all its weights in that one update (the weights themselves barely move in one step, so
  errors on them would hide in the weights' size).

The fp32 row is the parity tests' own setting (their tolerance: 1e-5 relative).

    python benchmarks/precision_parity.py [--out benchmarks/results/precision_parity.md]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
from pathlib import Path

import torch
from tensordict import TensorDict

from torchrl_mst.compat import mrq_from_reference, mrq_to_reference
from torchrl_mst.objectives import MRQHardUpdate, MRQLoss

GOLDEN = Path(__file__).parents[1] / "tests" / "data_files" / "mrq_parity_v1.pt"
#: name -> (float32 matmul precision, autocast dtype): the trainer's two options.
SETTINGS: dict[str, tuple[str, torch.dtype | None]] = {
    "fp32 (default)": ("highest", None),
    "--matmul-precision high": ("high", None),
    "--matmul-precision medium": ("medium", None),
    "--autocast bf16": ("highest", torch.bfloat16),
}


def golden_update(golden: dict, autocast: torch.dtype | None) -> dict[str, torch.Tensor | dict]:
    """The golden file's three updates; returns forward values and weights after each."""
    sd, hp, b = golden["initial_state_dicts"], golden["hyperparameters"], golden["batch"]
    nets = mrq_from_reference(sd["encoder"], sd["value"], sd["policy"])
    loss = MRQLoss(
        nets.encoder, nets.critic, nets.actor, gamma=hp["discount"],
        value_horizon=hp["Q_horizon"], policy_noise=hp["target_policy_noise"],
        multistep_rule="reference", reward_scale=hp["reward_scale"],
        target_reward_scale=hp["target_reward_scale"],
    )
    MRQHardUpdate(loss)
    td = TensorDict({
        "observation": b["state"], "action": b["action"],
        "next": {"observation": b["next_state"], "reward": b["reward"],
                 "terminated": b["not_done"] == 0},
    }, batch_size=b["state"].shape[:2])
    lrs = {"encoder": hp["encoder_lr"], "critic": hp["value_lr"], "actor": hp["policy_lr"]}
    opt = {name: torch.optim.AdamW(getattr(loss, f"{name}_params").values(True, True),
                                   lr=lr, weight_decay=hp["weight_decay"])
           for name, lr in lrs.items()}

    def forward() -> contextlib.AbstractContextManager:
        return (contextlib.nullcontext() if autocast is None
                else torch.autocast("cpu", dtype=autocast))

    with forward():
        loss_encoder, _ = loss.encoder_loss(td)
    loss_encoder.backward()
    opt["encoder"].step()
    encoder = {k: v.clone() for k, v in mrq_to_reference(nets)["encoder"].items()}
    with forward():
        loss_critic, meta = loss.critic_loss(td)
    loss_critic.backward()
    torch.nn.utils.clip_grad_norm_(loss.critic_params.values(True, True), 20.0)
    opt["critic"].step()
    with forward():
        loss_actor, _ = loss.actor_loss(td)
    loss_actor.backward()
    opt["actor"].step()
    ref = mrq_to_reference(nets)
    return {"q": meta["q"].float(), "target": meta["target"].float(),
            "priority": td["td_error"][:, 0].float(),
            "encoder": encoder, "value": ref["value"], "policy": ref["policy"]}


def update_error(ours: dict, golden: dict, initial: dict) -> float:
    """``||Δ_ours - Δ_golden|| / ||Δ_golden||`` over all weights of one module."""
    num = sum(float(((ours[k] - golden[k]) ** 2).sum()) for k in golden)
    den = sum(float(((golden[k] - initial[k]) ** 2).sum()) for k in golden)
    return (num / den) ** 0.5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="write the markdown table here")
    args = p.parse_args(argv)
    golden = torch.load(GOLDEN, weights_only=True)
    e, init = golden["expected"], golden["initial_state_dicts"]
    previous = torch.get_float32_matmul_precision()
    rows = []
    for name, (matmul, autocast) in SETTINGS.items():
        torch.set_float32_matmul_precision(matmul)
        try:
            out = golden_update(golden, autocast)
        finally:
            torch.set_float32_matmul_precision(previous)

        def rel(x: torch.Tensor, g: torch.Tensor) -> float:
            return float((x - g).abs().max() / g.abs().max())

        rows.append((name, rel(out["q"], e["rl_Q"]), rel(out["target"], e["rl_Q_target"]),
                     rel(out["priority"], e["lap_priority"]),
                     update_error(out["encoder"], e["encoder_after_one_update"], init["encoder"]),
                     update_error(out["value"], e["value_after_one_update"], init["value"]),
                     update_error(out["policy"], e["policy_after_one_update"], init["policy"])))
    cmd = "python benchmarks/precision_parity.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    lines = [
        f"Command: `{cmd.strip()}`", "",
        f"Machine: {platform.processor() or platform.machine()}; torch {torch.__version__}. "
        "Relative errors against the release's parity vectors (`tests/data_files/"
        "mrq_parity_v1.pt`); the parity tests accept 1e-5.", "",
        "| setting | Q | Q target | priority | encoder update | critic update | actor update |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | " + " | ".join(f"{v:.1e}" for v in r[1:]) + " |" for r in rows]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
