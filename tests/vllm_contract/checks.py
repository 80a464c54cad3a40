"""Each check takes what the adapters produce and a release, and returns the problems: one line per
name the release does not have. An empty list is a pass; the planted-name tests feed each check a
misspelt name and expect it back.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tests.vllm_contract.release import VllmRelease, parameters, required_parameters

ENGINE_ARGS = "engine/arg_utils.py"
SAMPLING = "sampling_params.py"
ENVS = "envs.py"
ASYNC_LLM = "v1/engine/async_llm.py"
LLM = "entrypoints/llm.py"
QUANTIZATION = "model_executor/layers/quantization/__init__.py"
QUANT_BASE = "model_executor/layers/quantization/base_config.py"
LINEAR = "model_executor/layers/linear.py"
EMBEDDING = "model_executor/layers/vocab_parallel_embedding.py"
LOGITS = "model_executor/layers/logits_processor.py"
PLUGINS = "plugins/__init__.py"


def _missing(release: VllmRelease, what: str, names: Iterable[str], available: set[str]) -> list[str]:
    return [f"vllm-{release.version}: {what} has no {name!r}" for name in sorted(set(names) - available)]


def engine_args_problems(release: VllmRelease, kwargs: Iterable[Mapping[str, Any]], class_name: str) -> list[str]:
    """Every keyword the adapter passes is a field of ``class_name`` (EngineArgs / AsyncEngineArgs)."""
    names = {key for each in kwargs for key in each}
    return _missing(release, class_name, names, release.fields(ENGINE_ARGS, class_name))


def sampling_problems(release: VllmRelease, kwargs: Iterable[Mapping[str, Any]]) -> list[str]:
    names = {key for each in kwargs for key in each}
    return _missing(release, "SamplingParams", names, release.fields(SAMPLING, "SamplingParams"))


def logprobs_mode_problems(release: VllmRelease, values: Iterable[str]) -> list[str]:
    return _missing(release, "LogprobsMode", values, release.literal("config/model.py", "LogprobsMode"))


def env_problems(release: VllmRelease, env: Mapping[str, str], own_prefix: str = "PARITYSCOPE_") -> list[str]:
    """Every variable the adapter sets for vLLM is one vLLM reads (its ``environment_variables``)."""
    names = {name for name in env if not name.startswith(own_prefix)}
    return _missing(release, "envs.environment_variables", names, release.dict_keys(ENVS, "environment_variables"))


def call_problems(release: VllmRelease, path: str, class_name: str, method: str,
                  keywords: Iterable[str], *, positional: int = 0) -> list[str]:
    """``class_name.method`` exists and accepts ``keywords`` by name and ``positional`` arguments."""
    try:
        function = release.method(path, class_name, method)
    except LookupError as exc:
        return [str(exc)]
    kinds = parameters(function)
    problems = _missing(release, f"{class_name}.{method}()", keywords, set(kinds) - {"self", "cls"})
    takes = [name for name, kind in kinds.items() if kind == "positional" and name not in ("self", "cls")]
    if len(takes) < positional and function.args.vararg is None:
        problems.append(f"vllm-{release.version}: {class_name}.{method}() takes {len(takes)} positional arguments, "
                        f"the adapter passes {positional}")
    extra_required = required_parameters(function) - set(keywords) - set(takes[:positional])
    if extra_required:
        problems.append(f"vllm-{release.version}: {class_name}.{method}() also requires {sorted(extra_required)}")
    return problems


def class_problems(release: VllmRelease, path: str, names: Iterable[str]) -> list[str]:
    problems = []
    for name in names:
        try:
            release.class_def(path, name)
        except LookupError as exc:
            problems.append(str(exc))
    return problems


def head_method_problems(release: VllmRelease, own_source: Path) -> list[str]:
    """The head-only method implements QuantizationConfig's abstract methods and overrides
    UnquantizedEmbeddingMethod's ``create_weights`` / ``apply`` with the release's parameters."""
    own = {node.name: node for node in ast.walk(ast.parse(own_source.read_text())) if isinstance(node, ast.ClassDef)}
    problems = class_problems(release, QUANT_BASE, ["QuantizationConfig"])
    problems += class_problems(release, LINEAR, ["LinearBase", "UnquantizedLinearMethod"])
    problems += class_problems(release, EMBEDDING, ["ParallelLMHead", "UnquantizedEmbeddingMethod"])
    if problems:
        return problems
    config = release.class_def(QUANT_BASE, "QuantizationConfig")
    abstract = {
        item.name for item in config.body
        if isinstance(item, ast.FunctionDef)
        and any((isinstance(d, ast.Name) and d.id == "abstractmethod")
                or (isinstance(d, ast.Attribute) and d.attr == "abstractmethod") for d in item.decorator_list)
    }
    defined = {item.name for item in own["HeadDtypeConfig"].body if isinstance(item, ast.FunctionDef)}
    problems += [f"vllm-{release.version}: QuantizationConfig.{name} is abstract and HeadDtypeConfig lacks it"
                 for name in sorted(abstract - defined)]
    mine = {item.name: item for item in own["HeadDtypeMethod"].body if isinstance(item, ast.FunctionDef)}
    for name in ("create_weights", "apply"):
        theirs = parameters(release.method(EMBEDDING, "UnquantizedEmbeddingMethod", name))
        if list(parameters(mine[name])) != list(theirs):
            problems.append(f"vllm-{release.version}: UnquantizedEmbeddingMethod.{name}{tuple(theirs)} "
                            f"!= HeadDtypeMethod.{name}{tuple(parameters(mine[name]))}")
    if "lm_head.quant_method.apply(" not in " ".join(release.source(LOGITS).split()):
        problems.append(f"vllm-{release.version}: the logits processor no longer calls lm_head.quant_method.apply")
    try:
        release.function(QUANTIZATION, "register_quantization_config")
    except LookupError as exc:
        problems.append(str(exc))
    if "QUANTIZATION_METHODS" not in release.source(QUANTIZATION):
        problems.append(f"vllm-{release.version}: no QUANTIZATION_METHODS in vllm/{QUANTIZATION}")
    if "vllm.general_plugins" not in release.strings(PLUGINS) and "vllm.general_plugins" not in release.source(PLUGINS):
        problems.append(f"vllm-{release.version}: vLLM no longer loads the vllm.general_plugins entry points")
    return problems
