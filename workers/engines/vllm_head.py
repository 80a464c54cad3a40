"""The final projection alone in a chosen dtype on vLLM: a head-only "quantization" method.

vLLM's ``dtype`` is the whole model's, and 0.18.1 honours ``hf_overrides={"head_dtype": ...}``
for pooling models only, so neither gives a bf16 model with an fp32 head (the configuration
production RL runs) or an fp32 model with a bf16 head. vLLM lets a package register its own
quantization method (``register_quantization_config``, in 0.8.5 and in 0.18.1); this one leaves
every layer as vLLM would build it except ``lm_head``, whose weight it stores in the head dtype
and whose matmul it runs in that dtype. It is selected with ``quantization=METHOD_NAME`` and the
head dtype travels in ``HEAD_DTYPE_ENV``, which engine-core and worker processes inherit.

The head weight is *stored* in the head dtype, so each weight update writes the trainer's weights
straight into it: there is no cached copy that an update could leave stale.

vLLM builds the model in its engine-core process, which 0.18.1 may start with ``spawn``; the
``vllm.general_plugins`` entry point in pyproject.toml makes vLLM call :func:`register` in every
process it starts. See docs/VLLM.md.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["HEAD_DTYPE_ENV", "HEAD_DTYPES", "METHOD_NAME", "head_dtype_from_env", "register"]

METHOD_NAME = "parityscope_head_dtype"
HEAD_DTYPE_ENV = "PARITYSCOPE_LM_HEAD_DTYPE"
# Engine settings' lm_head_dtype -> the torch dtype name the head runs in.
HEAD_DTYPES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16"}


def head_dtype_from_env() -> str:
    value = os.environ.get(HEAD_DTYPE_ENV, "")
    if value not in HEAD_DTYPES.values():
        raise RuntimeError(
            f"{METHOD_NAME} needs {HEAD_DTYPE_ENV} set to one of {', '.join(HEAD_DTYPES.values())}, got {value!r}"
        )
    return value


def register() -> None:
    """Register the method with the installed vLLM, once per process (vLLM plugin entry point)."""
    from vllm.model_executor.layers import quantization

    if METHOD_NAME in quantization.QUANTIZATION_METHODS:
        return
    quantization.register_quantization_config(METHOD_NAME)(_config_class())


def _config_class() -> type:
    import torch
    import torch.nn.functional as F
    from vllm.model_executor.layers.linear import LinearBase, UnquantizedLinearMethod
    from vllm.model_executor.layers.quantization.base_config import QuantizationConfig
    from vllm.model_executor.layers.vocab_parallel_embedding import (
        ParallelLMHead,
        UnquantizedEmbeddingMethod,
    )

    class HeadDtypeMethod(UnquantizedEmbeddingMethod):
        """``lm_head`` with its weight stored, and its matmul run, in ``compute_dtype``."""

        def __init__(self, compute_dtype: torch.dtype) -> None:
            super().__init__()
            self.compute_dtype = compute_dtype

        def create_weights(self, layer: torch.nn.Module, input_size_per_partition: int,
                           output_partition_sizes: list[int], input_size: int, output_size: int,
                           params_dtype: torch.dtype, **extra_weight_attrs: Any) -> None:
            super().create_weights(layer, input_size_per_partition, output_partition_sizes, input_size,
                                   output_size, self.compute_dtype, **extra_weight_attrs)

        def apply(self, layer: torch.nn.Module, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
            weight = layer.weight
            if bias is not None:
                bias = bias.to(self.compute_dtype)
            return F.linear(x.to(self.compute_dtype), weight.to(self.compute_dtype), bias)

    class HeadDtypeConfig(QuantizationConfig):
        def __init__(self) -> None:
            super().__init__()
            self.head_dtype = getattr(torch, head_dtype_from_env())

        def get_name(self) -> str:
            return METHOD_NAME

        def get_supported_act_dtypes(self) -> list[torch.dtype]:
            return [torch.bfloat16, torch.float16, torch.float32]

        @classmethod
        def get_min_capability(cls) -> int:
            return 0

        @staticmethod
        def get_config_filenames() -> list[str]:
            return []  # nothing to read from the checkpoint: vLLM then calls cls()

        @classmethod
        def from_config(cls, config: dict[str, Any]) -> HeadDtypeConfig:
            return cls()

        def get_quant_method(self, layer: torch.nn.Module, prefix: str) -> Any:
            if isinstance(layer, ParallelLMHead):
                return HeadDtypeMethod(self.head_dtype)
            if isinstance(layer, LinearBase):
                return UnquantizedLinearMethod()
            return None  # embeddings and attention: vLLM's unquantized default

    return HeadDtypeConfig
