"""MR.Q training steps per second: dense and MST, per scale, eager and compiled, beside the release.

A *step* is what MR.Q does per environment step after its random phase: one critic and one
actor update on a fresh batch, plus the encoder burst amortised (``k`` encoder updates every
``k`` steps = one per step). Every configuration trains on the same synthetic Dog-Run-sized
data (obs 223, action 38, 500-step episodes, batch 256) through the full :class:`MRQ` step,
replay sampling and LAP priority writes included. ``--interval`` sets ``k`` for both sides
(MR.Q: 250); a smaller one times whole bursts in fewer steps and costs the same per step.

For each configuration the table gives steps/s (best of ``--rounds`` interleaved rounds),
FLOPs per step (``torch.utils.flop_counter``: one critic + actor update and one encoder
update), the achieved FLOP rate as a fraction of this machine's measured dense matmul rate,
and peak memory (CUDA: ``max_memory_allocated``; CPU: the process's peak RSS so far).

With ``--release DIR`` (the ``MRQ/`` folder of a checkout of facebookresearch/MRQ that you
fetch yourself: nothing of it is in this repository), the authors' ``Agent.train()`` is
timed on the same data in the same process, interleaved with ours, and the table gets a
ratio column.

    python benchmarks/throughput.py --scales 1x --regimes dense mst --modes eager \
        --release /tmp/mrq_rel/MRQ --out benchmarks/results/throughput_cpu.md
    python benchmarks/throughput.py --device cuda --scales 1x 3x 5x xl --modes eager compiled \
        --precisions fp32 high bf16
    python benchmarks/throughput.py --quick            # tiny widths, seconds, no file
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("RL_WARNINGS", "0")

import numpy as np
import torch
from tensordict import TensorDict
from torch.utils.flop_counter import FlopCounterMode

from torchrl_mst.data import MRQReplayBuffer
from torchrl_mst.modules import (
    ScalePreset,
    count_parameters,
    get_scale_preset,
    make_mrq_networks,
)
from torchrl_mst.objectives import MRQLoss
from torchrl_mst.recipes import RECIPES, parse_regime
from torchrl_mst.trainers import MRQ

OBS, ACT, EPISODE = 223, 38, 500


def synthetic_transitions(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` transitions of episodes of ``EPISODE`` steps (truncated), reproducible."""
    g = np.random.default_rng(seed)
    obs = g.standard_normal((n + 1, OBS)).astype(np.float32)
    return {
        "obs": obs[:-1],
        "next_obs": obs[1:],
        "action": g.uniform(-1, 1, (n, ACT)).astype(np.float32),
        "reward": g.uniform(0, 1, n).astype(np.float32),
        "truncated": (np.arange(n) % EPISODE) == EPISODE - 1,
    }


#: ``--precisions``: (float32 matmul precision, autocast dtype of the MR.Q losses).
PRECISIONS: dict[str, tuple[str, torch.dtype | None]] = {
    "fp32": ("highest", None),
    "high": ("high", None),  # TF32 tensor cores on NVIDIA GPUs
    "medium": ("medium", None),
    "bf16": ("highest", torch.bfloat16),  # --autocast bf16
}


def build_ours(scale: Any, regime: str, data: dict, args: argparse.Namespace, compiled: bool,
               autocast: torch.dtype | None = None):
    """(MRQ, networks) of one configuration, its replay filled with ``data``."""
    recipe = RECIPES["baseline" if regime == "dense" else "mst"]
    torch.manual_seed(0)
    nets = make_mrq_networks(OBS, ACT, scale=scale, encoder_type=recipe["encoder"][1],
                             critic_type=recipe["critic"][1], actor_type=recipe["actor"][1],
                             device=args.device)
    loss = MRQLoss(nets.encoder, nets.critic, nets.actor, use_done_loss=False).to(args.device)
    n = len(data["reward"])
    rb = MRQReplayBuffer(n, horizon=5, batch_size=args.batch_size, device=args.device, seed=0)
    trunc = torch.as_tensor(data["truncated"])[:, None]
    rb.extend(TensorDict({
        "observation": torch.as_tensor(data["obs"]), "action": torch.as_tensor(data["action"]),
        ("next", "observation"): torch.as_tensor(data["next_obs"]),
        ("next", "reward"): torch.as_tensor(data["reward"])[:, None],
        ("next", "terminated"): torch.zeros_like(trunc), ("next", "truncated"): trunc,
        ("next", "done"): trunc,
    }, [n]))
    regimes = {
        name: parse_regime(spec, total_steps=1_000_000)
        for name, (spec, _) in recipe.items()
    }
    mrq = MRQ(loss, rb, regimes=regimes, target_update_interval=args.interval, seed=0,
              compile=compiled, autocast=autocast)
    return mrq, nets


def build_release(release_dir: str, width: float, data: dict, args: argparse.Namespace):
    """The release's Agent at ``width`` x its default widths, its own buffer filled alike."""
    if not (Path(release_dir) / "MRQ.py").is_file():
        raise SystemExit(
            f"error: --release {release_dir} has no MRQ.py; pass the MRQ/ folder of a checkout "
            "of github.com/facebookresearch/MRQ (e.g. /tmp/mrq_rel/MRQ)."
        )
    sys.path.insert(0, release_dir)
    if args.device == "cpu":  # the release sizes its buffer's device from free CUDA memory
        torch.cuda.mem_get_info = lambda *a, **k: (1 << 40, 1 << 40)
    import MRQ as release  # the release's module

    w = ScalePreset("bench", width).widths()
    hp = dict(zs_dim=w["zs_dim"], za_dim=w["za_dim"], zsa_dim=w["zsa_dim"],
              enc_hdim=w["hidden"], value_hdim=w["hidden"], policy_hdim=w["hidden"],
              target_update_freq=args.interval,
              batch_size=args.batch_size, buffer_size=len(data["reward"]) + 1_000)
    torch.manual_seed(0)
    agent = release.Agent((OBS,), ACT, 1.0, False, False, torch.device(args.device), hp=hp)
    agent.buffer_size_before_training = 0
    for i in range(len(data["reward"])):
        agent.replay_buffer.add(data["obs"][i], data["action"][i], data["next_obs"][i],
                                float(data["reward"][i]), False, bool(data["truncated"][i]))
    return agent


def steps_per_second(step: Callable[[], Any], steps: int, device: str) -> float:
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps / (time.perf_counter() - t)


def flops_per_step(mrq: MRQ) -> int:
    """FLOPs of one encoder update plus one critic and one actor update (forward + backward)."""
    batch = mrq.replay_buffer.sample()
    counter = FlopCounterMode(display=False)
    with counter:
        for name, fn in (("encoder", mrq.loss.encoder_loss), ("critic", mrq.loss.critic_loss),
                         ("actor", mrq.loss.actor_loss)):
            value, _ = fn(batch)
            value.backward()
            mrq.optimizers[name].zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_rate(device: str, n: int = 2048, reps: int = 10) -> float:
    """Measured dense fp32 matmul FLOP/s of this machine (the ceiling for achieved fractions)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    rate = steps_per_second(lambda: a @ b, reps, device)
    return rate * 2 * n**3


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def parse_scale(text: str) -> tuple[Any, float]:
    """``(scale for make_mrq_networks, width multiplier)``; ``xl`` and ``<float>x`` too."""
    try:
        return text, get_scale_preset(text).width_multiplier
    except ValueError as err:
        raise SystemExit(f"error: --scales {text}: {err}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", nargs="+", default=["1x"], help="e.g. 1x 3x 5x xl 0.25x")
    p.add_argument("--regimes", nargs="+", default=["dense", "mst"], choices=["dense", "mst"])
    p.add_argument("--modes", nargs="+", default=["eager"], choices=["eager", "compiled"])
    p.add_argument("--precisions", nargs="+", default=["fp32"], choices=list(PRECISIONS),
                   help="fp32; high / medium: torch.set_float32_matmul_precision (high = TF32 "
                   "on NVIDIA GPUs); bf16: the losses under bf16 autocast (--autocast bf16)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--interval", type=int, default=10, help="encoder burst = target interval")
    p.add_argument("--steps", type=int, default=30, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--transitions", type=int, default=20_000)
    p.add_argument("--release", help="the release's MRQ/ folder, to time it side by side")
    p.add_argument("--quick", action="store_true", help="tiny widths, few steps, no file")
    p.add_argument("--out", type=Path, help="write the markdown table here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.scales, args.steps, args.rounds, args.batch_size = ["0.0625x"], 10, 1, 32
        args.transitions = 2_000
    data = synthetic_transitions(args.transitions)
    ceiling = matmul_rate(args.device)
    rows = []
    for scale_text in args.scales:
        scale, width = parse_scale(scale_text)
        release = build_release(args.release, width, data, args) if args.release else None
        configs = {}
        for regime in args.regimes:
            for mode, precision in itertools.product(args.modes, args.precisions):
                matmul, autocast = PRECISIONS[precision]
                torch.set_float32_matmul_precision(matmul)
                mrq, nets = build_ours(scale, regime, data, args, mode == "compiled", autocast)
                mrq.step()  # first burst (and compilation) outside the timing
                for _ in range(args.interval - 1):
                    mrq.step()
                configs[(regime, mode, precision)] = (mrq, nets)
        rates: dict[Any, list[float]] = {key: [] for key in configs}
        rates["release"] = []
        torch.set_float32_matmul_precision("highest")  # the release: fp32, its default
        if release is not None:
            for _ in range(args.interval):
                release.train()
        for _ in range(args.rounds):  # interleaved: every side sees the same machine state
            for key, (mrq, _) in configs.items():
                torch.set_float32_matmul_precision(PRECISIONS[key[2]][0])
                rates[key].append(steps_per_second(mrq.step, args.steps, args.device))
            torch.set_float32_matmul_precision("highest")
            if release is not None:
                rates["release"].append(steps_per_second(release.train, args.steps, args.device))
        release_rate = max(rates["release"]) if rates["release"] else None
        for (regime, mode, precision), (mrq, nets) in configs.items():
            rate = max(rates[(regime, mode, precision)])
            flops = flops_per_step(mrq)
            rows.append({
                "scale": scale_text, "regime": regime, "mode": mode, "precision": precision,
                "params_m": count_parameters(nets)["total"]["total"] / 1e6,
                "steps_s": rate, "release_s": release_rate,
                "gflop": flops / 1e9, "achieved": rate * flops / ceiling,
                "peak_gib": peak_memory_gib(args.device),
            })
    cmd = "python benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    machine = (torch.cuda.get_device_name() if args.device.startswith("cuda")
               else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"{torch.get_num_threads()} torch threads")
    lines = [
        f"Command: `{cmd}`", "",
        f"Machine: {machine}; torch {torch.__version__}; measured dense matmul rate "
        f"{ceiling / 1e9:.1f} GFLOP/s (fp32, 2048^2).", "",
        f"MR.Q step = 1 critic + 1 actor update + 1 amortised encoder update, batch "
        f"{args.batch_size}, obs {OBS}, action {ACT}; best of {args.rounds} interleaved rounds "
        f"of {args.steps} steps.", "",
        "| scale | regime | mode | precision | params (M) | steps/s | release steps/s "
        "| ours / release | GFLOP/step | achieved / matmul rate | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rel = r["release_s"]
        rel_cells = ("", "") if rel is None else (f"{rel:.2f}", f"{r['steps_s'] / rel:.2f}")
        lines.append(
            f"| {r['scale']} | {r['regime']} | {r['mode']} | {r['precision']} | "
            f"{r['params_m']:.2f} | "
            f"{r['steps_s']:.2f} | {rel_cells[0]} | {rel_cells[1]} | {r['gflop']:.2f} | "
            f"{r['achieved']:.1%} | {r['peak_gib']:.2f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out and not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
