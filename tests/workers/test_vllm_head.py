"""The head-only dtype method against stand-ins of the vLLM classes it builds on.

The stand-ins have the module paths, class names and method parameters that the contract tier
checks against vLLM 0.8.5 and 0.18.1 (tests/vllm_contract); here the method's own logic runs:
which layers it takes over, the dtype the head's weight is stored and computed in, idempotent
registration, and what the engine reads back from the loaded model.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch

from workers.engines import vllm_head
from workers.engines.base import EngineSettings
from workers.engines.vllm_common import check_loaded_model, describe_loaded_model
from workers.errors import UnsupportedSetting


class QuantizationConfig:
    def __init__(self) -> None:
        self.packed_modules_mapping: dict = {}


class LinearBase(torch.nn.Module):
    pass


class UnquantizedLinearMethod:
    pass


class UnquantizedEmbeddingMethod:
    def create_weights(self, layer, input_size_per_partition, output_partition_sizes, input_size, output_size,
                       params_dtype, **extra_weight_attrs):
        layer.weight = torch.nn.Parameter(
            torch.empty(sum(output_partition_sizes), input_size_per_partition, dtype=params_dtype),
            requires_grad=False)

    def apply(self, layer, x, bias=None):
        return torch.nn.functional.linear(x, layer.weight, bias)


class VocabParallelEmbedding(torch.nn.Module):
    """As vLLM builds it: the quant config picks the method, which creates the weight."""

    def __init__(self, vocab: int, hidden: int, params_dtype: torch.dtype, quant_config=None, prefix: str = ""):
        super().__init__()
        method = quant_config.get_quant_method(self, prefix=prefix) if quant_config is not None else None
        self.quant_method = method if method is not None else UnquantizedEmbeddingMethod()
        self.quant_method.create_weights(self, hidden, [vocab], hidden, vocab, params_dtype)


class ParallelLMHead(VocabParallelEmbedding):
    pass


@pytest.fixture
def vllm_stand_in(monkeypatch):
    registered: dict[str, type] = {}
    methods: list[str] = []

    def register_quantization_config(name):
        def wrap(cls):
            if name in methods:
                raise ValueError(f"{name} already exists")  # 0.8.5 refuses a second registration
            methods.append(name)
            registered[name] = cls
            return cls
        return wrap

    modules = {
        "vllm": types.ModuleType("vllm"),
        "vllm.model_executor": types.ModuleType("vllm.model_executor"),
        "vllm.model_executor.layers": types.ModuleType("vllm.model_executor.layers"),
        "vllm.model_executor.layers.quantization": types.SimpleNamespace(
            QUANTIZATION_METHODS=methods, register_quantization_config=register_quantization_config),
        "vllm.model_executor.layers.quantization.base_config": types.SimpleNamespace(
            QuantizationConfig=QuantizationConfig),
        "vllm.model_executor.layers.linear": types.SimpleNamespace(
            LinearBase=LinearBase, UnquantizedLinearMethod=UnquantizedLinearMethod),
        "vllm.model_executor.layers.vocab_parallel_embedding": types.SimpleNamespace(
            ParallelLMHead=ParallelLMHead, UnquantizedEmbeddingMethod=UnquantizedEmbeddingMethod),
    }
    modules["vllm.model_executor.layers"].quantization = modules["vllm.model_executor.layers.quantization"]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return registered


class Model(torch.nn.Module):
    def __init__(self, body_dtype: torch.dtype, quant_config=None) -> None:
        super().__init__()
        self.embed = VocabParallelEmbedding(16, 8, body_dtype)
        self.lm_head = ParallelLMHead(16, 8, body_dtype, quant_config, prefix="lm_head")


def test_registration_is_once_per_process(vllm_stand_in):
    vllm_head.register()
    vllm_head.register()  # the entry point and the engine may both call it
    assert list(vllm_stand_in) == [vllm_head.METHOD_NAME]


@pytest.mark.parametrize(("head", "body"), [("float32", torch.bfloat16), ("bfloat16", torch.float32)])
def test_the_head_alone_is_stored_and_computed_in_the_head_dtype(vllm_stand_in, monkeypatch, head, body):
    monkeypatch.setenv(vllm_head.HEAD_DTYPE_ENV, head)
    vllm_head.register()
    config = vllm_stand_in[vllm_head.METHOD_NAME].from_config({})
    model = Model(body, config)
    assert model.embed.weight.dtype == body  # nothing but the head changes
    assert config.get_quant_method(LinearBase(), prefix="model.layers.0.mlp").__class__ is UnquantizedLinearMethod
    assert config.get_quant_method(model.embed, prefix="model.embed_tokens") is None
    assert model.lm_head.weight.dtype == getattr(torch, head)

    weight = torch.randn(16, 8)
    model.lm_head.weight.data.copy_(weight)  # what a weight update does
    hidden = torch.randn(3, 8).to(body)
    logits = model.lm_head.quant_method.apply(model.lm_head, hidden)
    assert logits.dtype == getattr(torch, head)
    expected = hidden.to(getattr(torch, head)) @ weight.to(getattr(torch, head)).T
    assert torch.equal(logits, expected)

    loaded = describe_loaded_model(types.SimpleNamespace(model_runner=types.SimpleNamespace(get_model=lambda: model)))
    assert loaded["lm_head_compute_dtype"] == head and loaded["lm_head_method"] == "HeadDtypeMethod"
    settings = EngineSettings(lm_head_dtype={"float32": "fp32", "bfloat16": "bf16"}[head],
                              dtype=str(body).removeprefix("torch."))
    check_loaded_model("vllm-v1", settings, loaded)


def test_without_the_method_a_bf16_model_has_a_bf16_head_and_fp32_is_refused(vllm_stand_in):
    model = Model(torch.bfloat16)
    loaded = describe_loaded_model(types.SimpleNamespace(model_runner=types.SimpleNamespace(get_model=lambda: model)))
    assert loaded["lm_head_compute_dtype"] == "bfloat16"
    with pytest.raises(UnsupportedSetting, match="lm_head_dtype"):
        check_loaded_model("vllm-v1", EngineSettings(lm_head_dtype="fp32", dtype="bfloat16"), loaded)


def test_the_method_refuses_to_guess_a_head_dtype(vllm_stand_in, monkeypatch):
    monkeypatch.delenv(vllm_head.HEAD_DTYPE_ENV, raising=False)
    vllm_head.register()
    with pytest.raises(RuntimeError, match="PARITYSCOPE_LM_HEAD_DTYPE"):
        vllm_stand_in[vllm_head.METHOD_NAME]()
