"""Cost of MST's sparse regimes on a critic update: dense vs static vs RigL, side by side.

One update = forward + MSE loss + backward + ``mask_gradients()`` + gradient-norm clipping
(20, as MR.Q's critic) + AdamW (lr 3e-4, weight decay 1e-4) + ``controller.step()``. The
critic is an MR.Q-style MLP: ``Linear(512, W) -> LN -> ELU``, two ``Linear(W, W) -> LN ->
ELU`` blocks, ``Linear(W, 1)``; batch 256; sparse modes use sparsity 0.6 with ER densities.

Modes, each on its own copy of the same initial network, timed in interleaved rounds (every
round runs every mode for ``--steps`` updates; medians over rounds, so a noisy neighbour
hurts all modes alike):

* ``dense``: no controller;
* ``static``: ``StaticSparse(0.6)`` (default ``state_masking="auto"``: weights re-masked every
  step, optimizer state only when needed);
* ``static/always``: same with ``state_masking="always"`` (weights + ``exp_avg`` +
  ``exp_avg_sq`` re-masked every step: the cost of the insurance);
* ``rigl``: ``RigL(0.6, update_interval=1000)``: steady state between topology updates;
* ``rigl@1``: ``RigL(update_interval=1)``: a topology update on every step, used only to
  measure the cost of one update: ``(controller time of rigl@1) - (controller time of
  static)``; amortised over 1000 steps it is reported relative to the dense step.

Every mode runs once with ``torch.optim.AdamW`` as constructed by default (on CPU: the
per-tensor loop implementation) and once with ``AdamW(fused=True)``. On this CPU the
default implementation's ``sqrt`` is several times slower on exact zeros (the masked
``exp_avg_sq`` entries) than on positive numbers, which the fused kernel does not show.

Usage::

    python benchmarks/sparse_overhead.py            # widths 512 and 2048 (~2 min on 1 CPU)
    python benchmarks/sparse_overhead.py --quick    # seconds, same table, fewer repetitions
    python benchmarks/sparse_overhead.py --device cuda

Writes the markdown table to stdout and to ``benchmarks/results/sparse_overhead.md``.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from torchrl_mst.sparse import RigL, StaticSparse, sparsify

IN_DIM, BATCH, SPARSITY, INTERVAL = 512, 256, 0.6, 1000


def critic(width: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = [IN_DIM, width, width, width]
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.LayerNorm(b, elementwise_affine=False), nn.ELU()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class NullController:
    def mask_gradients(self) -> None:
        pass

    def step(self) -> None:
        pass


def build(mode: str, base: nn.Module, device: torch.device, fused: bool):
    net = copy.deepcopy(base).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=1e-4, fused=fused or None)
    if mode == "dense":
        ctl = NullController()
    elif mode == "static":
        ctl = sparsify(net, StaticSparse(SPARSITY), opt, seed=0)
    elif mode == "static/always":
        ctl = sparsify(net, StaticSparse(SPARSITY), opt, seed=0, state_masking="always")
    elif mode == "rigl":
        ctl = sparsify(net, RigL(SPARSITY, update_interval=INTERVAL, stop_step=10**9), opt, seed=0)
    elif mode == "rigl@1":
        ctl = sparsify(net, RigL(SPARSITY, update_interval=1, stop_step=10**9), opt, seed=0)
    else:
        raise ValueError(mode)
    return net, opt, ctl


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_steps(net, opt, ctl, x, y, steps, device):
    """Returns (total seconds, controller seconds) for `steps` updates."""
    ctrl = 0.0
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = (net(x) - y).pow(2).mean()
        loss.backward()
        sync(device)
        t0 = time.perf_counter()
        ctl.mask_gradients()
        sync(device)
        ctrl += time.perf_counter() - t0
        torch.nn.utils.clip_grad_norm_(net.parameters(), 20.0)
        opt.step()
        sync(device)
        t0 = time.perf_counter()
        ctl.step()
        sync(device)
        ctrl += time.perf_counter() - t0
    sync(device)
    return time.perf_counter() - start, ctrl


def bench_width(width, rounds, steps, device, modes, fused):
    torch.manual_seed(0)
    base = critic(width)
    x = torch.randn(BATCH, IN_DIM, device=device)
    y = torch.randn(BATCH, 1, device=device)
    setups = {m: build(m, base, device, fused) for m in modes}
    for m in modes:  # warm-up (allocations, optimizer state)
        run_steps(*setups[m], x, y, 2, device)
    per_step = {m: [] for m in modes}
    per_ctrl = {m: [] for m in modes}
    for _ in range(rounds):
        for m in modes:
            n = steps if m != "rigl@1" else max(1, steps // 2)
            total, ctrl = run_steps(*setups[m], x, y, n, device)
            per_step[m].append(total / n)
            per_ctrl[m].append(ctrl / n)
    med = {m: statistics.median(v) for m, v in per_step.items()}
    ctrl = {m: statistics.median(v) for m, v in per_ctrl.items()}
    return med, ctrl


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--quick", action="store_true", help="fewer rounds/steps (seconds)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (<= 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--optimizers",
        nargs="+",
        default=["adamw", "adamw-fused"],
        choices=["adamw", "adamw-fused"],
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "sparse_overhead.md")
    )
    args = parser.parse_args(argv)
    if not 1 <= args.threads <= 2:
        parser.error("--threads must be 1 or 2 (shared machine)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    modes = ["dense", "static", "static/always", "rigl", "rigl@1"]

    rows = []
    for width in args.widths:
        for optimizer in args.optimizers:
            small = width <= 1024
            if args.quick:
                rounds, steps = 2, (6 if small else 2)
            else:
                rounds, steps = 5, (16 if small else 3)
            if device.type == "cuda":
                rounds, steps = (3, 20) if args.quick else (7, 100)
            fused = optimizer == "adamw-fused"
            med, ctrl = bench_width(width, rounds, steps, device, modes, fused)
            update_cost = ctrl["rigl@1"] - ctrl["static"]
            rows.append((width, optimizer, med, ctrl, update_cost, rounds, steps))
            print(f"width {width} {optimizer} done", file=sys.stderr)

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"{cpu}, {args.threads} thread(s)")
    )
    cmd = "python benchmarks/sparse_overhead.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    lines = [
        f"Command: `{cmd.strip()}`  ",
        f"Device: {where}; torch {torch.__version__}; "
        f"{datetime.date.today().isoformat()}; critic {IN_DIM}->W->W->W->1 (LN+ELU), batch "
        f"{BATCH}, AdamW, clip 20, sparsity {SPARSITY} (ER).",
        "",
        "| width | optimizer | mode | ms / update | updates / s | vs dense "
        "| controller ms / update |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for width, optimizer, med, ctrl, _, _, _ in rows:
        for m in ("dense", "static", "static/always", "rigl"):
            label = {"rigl": f"rigl (every {INTERVAL})"}.get(m, m)
            lines.append(
                f"| {width} | {optimizer} | {label} | {med[m] * 1e3:.2f} | {1 / med[m]:.1f} | "
                f"{med[m] / med['dense']:.3f} | {ctrl[m] * 1e3:.2f} |"
            )
    lines += [
        "",
        "| width | optimizer | one RigL topology update (ms) "
        "| amortised over 1000 updates, % of dense update |",
        "|---:|---|---:|---:|",
    ]
    for width, optimizer, med, _, update_cost, _, _ in rows:
        lines.append(
            f"| {width} | {optimizer} | {update_cost * 1e3:.1f} | "
            f"{100 * update_cost / INTERVAL / med['dense']:.3f} |"
        )
    reps = ", ".join(
        dict.fromkeys(f"W={w}: {r} rounds x {s} updates" for w, _, _, _, _, r, s in rows)
    )
    lines += ["", f"Medians over interleaved rounds ({reps})."]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    return table


if __name__ == "__main__":
    os.environ.setdefault("RL_WARNINGS", "0")
    main()
