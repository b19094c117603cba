"""The wheel ships LICENSE and a license expression, and builds out of tree."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_has_license_and_build_leaves_the_tree_clean(tmp_path):
    before = {p.name for p in ROOT.iterdir()}
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = tmp_path.glob("torchrl_mst-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert "torchrl_mst/py.typed" in names
    assert "License-Expression: MIT" in meta
    created = {p.name for p in ROOT.iterdir()} - before
    assert not {n for n in created if n == "build" or n.endswith(".egg-info")}, created
