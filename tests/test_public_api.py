"""The public API: main names at the top level, internals private, paper RigL on the CLI."""

import argparse
import subprocess
import sys

import pytest

import torchrl_mst
import torchrl_mst.sparse as sparse


def test_top_level_reexports_the_main_names_lazily():
    # a fresh interpreter: importing the package does not import TorchRL
    code = "import sys, torchrl_mst; print('torchrl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    for name in ("MRQLoss", "MRQ", "sparsify", "RigL", "make_mrq_networks", "make_mrq_policies",
                 "TrainConfig", "parse_regime", "train"):
        assert name in torchrl_mst.__all__
        assert getattr(torchrl_mst, name) is not None
    assert torchrl_mst.sparsify is sparse.sparsify
    with pytest.raises(AttributeError):
        torchrl_mst.SparseParam  # noqa: B018


def test_sparse_exports_are_small_and_internals_private():
    internals = {"SparseParam", "LayerUpdate", "allocate_kept_counts", "MASK_HOLDER",
                 "sparsify_loss", "drop_indices", "reset_state_at"}
    assert not internals & set(sparse.__all__)
    assert len(sparse.__all__) <= 20
    for name in sparse.__all__:
        assert hasattr(sparse, name)


def test_rigl_paper_options_are_cli_flags():
    from torchrl_mst.cli import _config_flags

    parser = argparse.ArgumentParser()
    _config_flags(parser)
    args = parser.parse_args(["--grown-moments", "zero", "--regrow-dropped", "true",
                              "--mask-update-interval", "50"])
    assert (args.grown_moments, args.regrow_dropped, args.mask_update_interval) == (
        "zero", True, 50)
    with pytest.raises(SystemExit):
        parser.parse_args(["--regrow-dropped", "maybe"])
    # a bare boolean flag means true; the config refuses compile for TorchRL's losses
    assert parser.parse_args(["--compile"]).compile is True
    assert parser.parse_args(["--compile", "false"]).compile is False
    from torchrl_mst.config import TrainConfig

    with pytest.raises(ValueError, match=r"compile is an MR\.Q option"):
        TrainConfig(algo="sac", compile=True)
