"""bench/gpu.py refuses to run without a GPU and says why (it is run by hand on a GPU host)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a GPU; the script would run")
def test_gpu_bench_refuses_without_a_gpu_and_says_why():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "bench/gpu.py needs a GPU:" in done.stderr
    assert ("has no CUDA support" in done.stderr) or ("sees no CUDA device" in done.stderr)
    assert done.stdout == ""  # nothing ran
