from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from workers.cpu_math import small_model_cpu_math
from workers.demo import DEMO_WORKLOAD
from workers.warm_start import warm_started_checkpoint
from workers.workload import Workload

transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


@pytest.fixture(autouse=True)
def _small_model_cpu_math():
    # The same CPU set-up a leg runs under (workers.cpu_math), restored after each test.
    with small_model_cpu_math():
        yield


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def demo_checkpoint(checkpoint_dir: Path) -> Path:
    """The demo workload's warm-started policy, built once per test session."""
    return warm_started_checkpoint(Workload.from_dict(DEMO_WORKLOAD), checkpoint_dir)


def perturbed(weights: dict[str, torch.Tensor], scale: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A deterministic small move of every weight, standing in for one optimizer step."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: tensor + scale * torch.randn(tensor.shape, generator=generator)
        for name, tensor in weights.items()
    }
