"""The job spec validates without torch, and the API host validates jobs with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from parityscope.jobspec import (
    ENGINE_NAMES,
    EngineSettings,
    InvalidEngineSettings,
    InvalidWorkload,
    UnsupportedSetting,
    Workload,
    check_supported,
)

WORKLOAD = {
    "model": "llama-84k", "task": "sort4", "seed": 1, "steps": 2, "batch_size": 4,
    "group_size": 2, "max_tokens": 5, "lr": 1e-3, "temperature": 1.0, "top_p": 1.0,
    "objective": "gspo", "epsilon_low": 3e-4, "epsilon_high": 4e-4,
}


def test_validating_a_job_on_the_api_host_imports_neither_torch_nor_transformers():
    script = textwrap.dedent(
        f"""
        import sys
        import backend.app
        from backend.job_spec import LegRequest, normalise_workload, plan_legs
        from backend.errors import BadInput

        normalise_workload({WORKLOAD!r})
        legs = plan_legs(LegRequest("vllm-v0", {{}}, "reference", replicas=2),
                         [LegRequest("vllm-v1", {{"logprobs_mode": "raw"}}, "v1")])
        assert [leg.label for leg in legs] == ["reference", "reference-replica", "v1"], legs
        try:
            plan_legs(LegRequest("vllm-v0", {{"logprobs_mode": "raw"}}, "reference"), [])
        except BadInput as exc:
            assert exc.field == "reference.settings.logprobs_mode", exc.field
        else:
            raise AssertionError("raw logprobs on vllm-v0 were accepted")
        heavy = sorted(m for m in ("torch", "transformers", "vllm") if m in sys.modules)
        print("heavy:", heavy)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("heavy: []"), done.stdout


def test_the_spec_module_needs_only_the_standard_library():
    script = (
        "import sys, parityscope.jobspec; "
        "print(sorted(m for m in ('numpy', 'torch', 'backend', 'workers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_workload_and_settings_normalise_and_name_the_bad_field():
    parsed = Workload.from_dict(WORKLOAD).to_dict()
    assert parsed["minibatches"] == 1 and parsed["warm_start_steps"] == 40
    with pytest.raises(InvalidWorkload) as bad:
        Workload.from_dict({**WORKLOAD, "model": "gpt-5"})
    assert bad.value.field == "model"
    with pytest.raises(InvalidWorkload) as bad:
        Workload.from_dict({**WORKLOAD, "task": "sort9"})
    assert bad.value.field == "task"
    assert EngineSettings.from_dict({"logprobs_mode": "raw_logprobs"}).logprobs_mode == "raw"
    with pytest.raises(InvalidEngineSettings) as bad:
        EngineSettings.from_dict({"prefix_caching": "yes"})
    assert bad.value.field == "prefix_caching"


def test_only_vllm_v0_refuses_settings():
    raw = EngineSettings(logprobs_mode="raw")
    for engine in ENGINE_NAMES:
        if engine == "vllm-v0":
            with pytest.raises(UnsupportedSetting) as refused:
                check_supported(engine, raw)
            assert refused.value.field == "logprobs_mode"
        else:
            check_supported(engine, raw)
