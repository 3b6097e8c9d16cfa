"""seg train under torchrun: two CPU processes (gloo) train one model; rank 0 alone writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.seg_fixtures import write_seg_data

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path) -> None:
    data = write_seg_data(tmp_path / "data", n=6, side=32)
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        "29517",
        "-m",
        "dinoscope.cli.main",
        "seg",
        "train",
        str(data),
        "--out",
        str(tmp_path / "m"),
        "--model",
        "unet",
        "--input-size",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("epoch   2") == 1  # rank 0 alone prints
    assert (tmp_path / "m" / "checkpoints" / "best.pt").is_file()
    assert len((tmp_path / "m" / "metrics.csv").read_text().splitlines()) == 3
    assert "processes: 2" in (tmp_path / "m" / "run.yaml").read_text()
