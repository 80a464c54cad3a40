"""Fixtures of the contract tier: the released wheels, read as source (docs/VLLM.md).

The tier is marked ``vllm_contract`` and left out of ``make test`` (it needs a 0.7 GB download);
``make test-vllm-contract`` fetches the wheels and runs it. Without the wheels its tests skip and
say how to fetch them.
"""

from __future__ import annotations

import pytest

from tests.vllm_contract.release import VllmRelease, wheel_dir, wheel_path


def _release(version: str) -> VllmRelease:
    wheel = wheel_path(version)
    if wheel is None:
        pytest.skip(f"the vllm=={version} wheel is not in {wheel_dir()}: run `make test-vllm-contract` "
                    "(or `python -m tests.vllm_contract.release`) to fetch it")
    return VllmRelease(version, wheel)


@pytest.fixture(scope="session")
def v0_release() -> VllmRelease:
    return _release("0.8.5")


@pytest.fixture(scope="session")
def v1_release() -> VllmRelease:
    return _release("0.18.1")
