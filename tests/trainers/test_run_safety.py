"""Runs a user can trust (issue 10): safe checkpoints, honest resume, no lost results,
clear errors. Every test uses a 30-step Pendulum run of a tiny agent."""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from torchrl_mst.cli import main
from torchrl_mst.config import TrainConfig
from torchrl_mst.trainers import checkpoint as ckpt_mod
from torchrl_mst.trainers.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from torchrl_mst.trainers.loop import TrainingDiverged, train

SHORT = dict(env="gym:Pendulum-v1", steps=30, random_steps=10, eval_every=30, eval_episodes=1,
             diagnostics_every=30, checkpoint_every=30, scale="0.03125x", batch_size=4,
             buffer_size=100, target_update_interval=5)


def steps_in(path: Path) -> list[int]:
    with path.open() as f:
        return [int(float(r[0])) for r in csv.reader(f) if r and r[0] != "step"]


# -- 1. weights_only loading: a crafted checkpoint must not run code ----------------------
class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_a_crafted_checkpoint_does_not_execute(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**SHORT), out, quiet=True)
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["payload"] = _Evil()
    torch.save(state, out / "checkpoint.pt")
    (out / "checkpoint.prev.pt").unlink()
    with pytest.raises(CheckpointError, match="safe load refuses"):
        load_checkpoint(out / "checkpoint.pt")
    assert not marker.exists()


def test_checkpoints_load_with_weights_only_and_round_trip(tmp_path):
    import numpy as np

    state = {"rng": np.random.get_state(), "t": (1, "a", None), "x": torch.arange(3),
             "big": 2**100, "arr": np.arange(4, dtype=np.uint32)}
    save_checkpoint(state, tmp_path / "c.pt")
    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # must not raise
    assert isinstance(raw, dict)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["rng"][0] == "MT19937" and np.array_equal(back["rng"][1], state["rng"][1])
    assert back["t"] == (1, "a", None) and back["big"] == 2**100
    assert back["arr"].dtype == np.uint32 and back["arr"].tolist() == [0, 1, 2, 3]


# -- 2. an edited config.json is refused on resume -----------------------------------------
def test_resume_refuses_an_edited_config(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**SHORT), out, quiet=True, stop_after=0)
    data = json.loads((out / "config.json").read_text())
    data["batch_size"] = 8
    (out / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"does not match the config stored in the checkpoint.*"
                                         r"batch_size.*\(4, 8\)"):
        train(None, out, resume=True, quiet=True)


# -- 3. a finished run is recognised; nothing is deleted without --overwrite ---------------
def test_rerunning_a_finished_short_run_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = TrainConfig(**(SHORT | dict(checkpoint_every=10_000)))  # shorter than one interval
    train(cfg, out, quiet=True)
    evals = (out / "evals.csv").read_text()
    assert json.loads((out / "status.json").read_text())["finished"] is True
    args = ["train", "--env", "gym:Pendulum-v1", "--out", str(out)] + [
        f"--{k.replace('_', '-')}={v}" for k, v in SHORT.items() if k != "env"
    ] + ["--checkpoint-every=10000"]
    assert main(args) == 2
    assert "already finished" in capsys.readouterr().err
    assert (out / "evals.csv").read_text() == evals
    assert main([*args, "--overwrite"]) == 0
    assert steps_in(out / "evals.csv") == [0, 30]


def test_results_without_checkpoint_need_overwrite(tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(**SHORT)
    out.mkdir()
    cfg.save(out / "config.json")
    (out / "evals.csv").write_text("step,return_mean\n0,1\n")
    with pytest.raises(FileExistsError, match="--overwrite"):
        train(cfg, out, quiet=True)
    assert (out / "evals.csv").read_text() == "step,return_mean\n0,1\n"


# -- 4. corrupt / truncated checkpoints and a full disk -------------------------------------
def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**SHORT), out, quiet=True)  # checkpoints at 0 (prev) and 30
    good = load_checkpoint(out / "checkpoint.prev.pt")["step"]
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    (out / "checkpoint.pt.tmp").write_bytes(b"partial")  # a crashed write
    with pytest.warns(UserWarning, match=r"checkpoint.pt .* unreadable; resuming from the "
                                         r"previous checkpoint .*checkpoint.prev.pt"):
        result = train(None, out, resume=True, quiet=True)
    assert result.steps == 30 and good == 0
    assert steps_in(out / "evals.csv") == [0, 30]
    assert not (out / "checkpoint.pt.tmp").exists()


def test_no_readable_checkpoint_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "run"
    train(TrainConfig(**SHORT), out, quiet=True)
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (out / name).write_bytes(b"garbage")
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no readable checkpoint" in err and "checkpoint.prev.pt" in err
    assert "Traceback" not in err


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1}, path)

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a file")
        raise RuntimeError("[enforce fail at inline_container.cc:858] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(CheckpointError, match=r"the disk is full.*previous checkpoint .* intact"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.setattr(ckpt_mod.torch, "save", lambda *a, **k: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(CheckpointError, match="the disk is full"):
        save_checkpoint({"step": 3}, path)
    monkeypatch.undo()
    assert not path.with_suffix(".pt.tmp").exists()
    assert load_checkpoint(path)["step"] == 1


# -- 5. TorchRL's logger CSVs are trimmed on resume -----------------------------------------
def test_resume_trims_torchrl_logger_csvs(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(**(SHORT | dict(log_every=5))), out, quiet=True)
    logged = sorted((out / "logs").rglob("loss/critic.csv"))[0]
    assert steps_in(logged) == [15, 20, 25, 30]
    # resume from the step-0 checkpoint, as after a kill that left rows past it
    (out / "checkpoint.pt").unlink()
    train(None, out, resume=True, quiet=True)
    assert steps_in(logged) == [15, 20, 25, 30]


# -- 6. a failed start does not block its directory -----------------------------------------
def test_a_failed_start_does_not_block_the_directory(tmp_path, monkeypatch):
    import importlib.util

    out = tmp_path / "run"
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match="wandb"):
        train(TrainConfig(**SHORT, logger="wandb"), out, quiet=True)
    monkeypatch.undo()
    # what older versions left behind after such a failure
    out.mkdir(exist_ok=True)
    TrainConfig(**SHORT, logger="wandb").save(out / "config.json")
    (out / "logs").mkdir()
    result = train(TrainConfig(**SHORT), out, quiet=True)  # the corrected command
    assert result.steps == 30


# -- 7. checkpoints hold only the filled replay rows ----------------------------------------
def test_checkpoint_size_grows_with_the_filled_rows_not_the_capacity(tmp_path):
    sizes = {}
    for capacity in (1_000, 100_000):
        out = tmp_path / f"cap{capacity}"
        train(TrainConfig(**(SHORT | dict(buffer_size=capacity))), out, quiet=True)
        sizes[capacity] = (out / "checkpoint.pt").stat().st_size
        state = load_checkpoint(out / "checkpoint.pt")
        assert state["replay"]["_storage"]["_storage"].shape == (30,)
    # 99,000 more empty slots would add > 2.5 MB (observations alone); allow 10 KB slack
    assert abs(sizes[100_000] - sizes[1_000]) < 10_000


# -- 8. clear errors --------------------------------------------------------------------------
@pytest.mark.parametrize(("flags", "match"), [
    (["--device", "foo"], "is not a device torch knows"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "cuda:99"],
     "CUDA"),
    (["--env", "gym:Blackjack-v1"], "cannot be built as a TorchRL env"),
    (["--random-steps", "50", "--steps", "40"], "must be smaller than --steps"),
])
def test_bad_input_gives_one_clear_line(tmp_path, capsys, flags, match):
    args = ["train", "--env", "gym:Pendulum-v1", "--out", str(tmp_path / "r"), *flags]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and err.startswith("error: ")
    assert not (tmp_path / "r").exists()


def test_out_naming_a_file_or_a_read_only_dir(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["train", "--env", "gym:Pendulum-v1", "--out", str(f)]) == 2
    assert "is an existing file" in capsys.readouterr().err
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere: the read-only case cannot be staged")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    assert main(["train", "--env", "gym:Pendulum-v1", "--out", str(ro / "run")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_an_invalid_config_json_is_named(tmp_path, capsys):
    out = tmp_path / "run"
    train(TrainConfig(**SHORT), out, quiet=True)
    (out / "config.json").write_text('{"env": "gym:Pendulum-v1", "stepz": 3}')
    assert main(["train", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "stepz" in err


# -- 9/10. silent settings warn; divergence is named --------------------------------------------
def test_diagnostics_that_never_run_warn(tmp_path):
    with pytest.warns(UserWarning, match="--diagnostics-every 100 never fires"):
        train(TrainConfig(**(SHORT | dict(diagnostics_every=100))), tmp_path / "r", quiet=True)


def test_a_diverging_run_names_the_step_and_the_last_checkpoint(tmp_path, monkeypatch):
    from torchrl_mst.trainers.mrq import MRQ

    real = MRQ.step

    def step(self):
        metrics = real(self)
        if self.num_steps >= 5:
            metrics["loss/critic"] = float("nan")
        return metrics

    monkeypatch.setattr(MRQ, "step", step)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 15 .*loss/critic.*"
                                               r"checkpoint.pt \(step 0\)"):
        train(TrainConfig(**SHORT), out, quiet=True)
    logged = sorted((out / "logs").rglob("loss/critic.csv"))[0].read_text()
    assert "nan" in logged  # non-finite metrics are logged, not dropped


# -- 11. state tasks do not depend on MUJOCO_GL ------------------------------------------------
@pytest.mark.parametrize("backend", ["glfw", ""])
def test_dmc_state_tasks_ignore_a_broken_mujoco_gl(backend):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"} | {"MUJOCO_GL": backend}
    code = ("from torchrl_mst.envs import make_env; import os; "
            "e = make_env('dmc:cartpole-balance', seed=0); e.rollout(3); "
            "print('ok', repr(os.environ['MUJOCO_GL']))")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"ok {backend!r}" in res.stdout  # the user's value is left as it was


def test_the_cli_never_prints_an_empty_error(capsys, monkeypatch):
    import torchrl_mst.cli as cli

    def boom(args):
        raise ValueError("")

    monkeypatch.setattr(cli, "_cmd_presets", boom)
    assert main(["presets"]) == 2
    err = capsys.readouterr().err.strip()
    assert err != "error:" and "ValueError" in err


# -- 14. progress after a resume ----------------------------------------------------------------
def test_progress_after_resume_shows_the_last_eval(tmp_path, capsys):
    out = tmp_path / "run"
    train(TrainConfig(**SHORT), out, quiet=True, stop_after=0)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(None, out, resume=True, quiet=True)
    printed = capsys.readouterr().out
    lines = [ln for ln in printed.splitlines() if "step " in ln and "/30" in ln]
    assert lines and "last eval return None" not in printed
    assert "last eval return" in lines[0] and "none yet" not in lines[0]


# -- 8/9. library-level errors -----------------------------------------------------------------
def test_mrq_loss_refuses_networks_that_do_not_chain():
    from torchrl_mst.modules import ScalePreset, make_mrq_networks
    from torchrl_mst.objectives import MRQLoss

    tiny = ScalePreset("tiny", 1 / 16)
    a, b = make_mrq_networks(4, 2, scale=tiny), make_mrq_networks(4, 3, scale=ScalePreset(
        "tinier", 1 / 32))
    with pytest.raises(ValueError, match=r"critic takes \[16\] inputs but encoder.zsa_dim is 32"):
        MRQLoss(a.encoder, b.critic, a.actor)
    with pytest.raises(ValueError, match="actor outputs 3 actions but the encoder embeds 2"):
        MRQLoss(a.encoder, a.critic, make_mrq_networks(4, 3, scale=tiny).actor)


def test_policies_refuse_actions_outside_minus_one_one():
    from torchrl.data import Bounded

    from torchrl_mst.modules import ScalePreset, make_mrq_networks, make_mrq_policies

    nets = make_mrq_networks(3, 1, scale=ScalePreset("tiny", 1 / 16))
    with pytest.raises(ValueError, match=r"action bounds are \[-2, 2\].*ActionScaling"):
        make_mrq_policies(nets.encoder, nets.actor, Bounded(-2.0, 2.0, shape=(1,)))
    make_mrq_policies(nets.encoder, nets.actor, Bounded(-1.0, 1.0, shape=(1,)))


def test_a_layer_left_without_weights_is_an_error():
    from torch import nn

    from torchrl_mst.sparse import StaticSparse, sparsify

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    with pytest.raises(ValueError, match=r"would be all zeros.*Lower the sparsity"):
        sparsify(net, StaticSparse(0.99), seed=0)


def test_cli_sparsity_errors_name_the_flag_value(capsys):
    assert main(["train", "--env", "gym:Pendulum-v1", "--critic", "rigl:1.5", "--out",
                 "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err
    assert "'rigl:1.5'" in err and "rigl:0.6" in err and "Dense()" not in err
