"""What a paired job may ask for: its engines, their settings and the shared workload.

This is the one declaration of a job's vocabulary and bounds. The server validates submissions
with it, the workers parse a claimed leg with it, and it needs nothing beyond the standard
library, so validating a job never loads torch. Every error names the field to fix.

Both parsers return the normalised form: every default filled in and every alias spelled
canonically, so all legs and all runs record the same explicit values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Literal

__all__ = [
    "ENGINE_NAMES",
    "MAX_LEGS",
    "MAX_REPLICAS",
    "METRIC_AGGREGATIONS",
    "MODEL_MAX_POSITIONS",
    "MODEL_NAMES",
    "OBJECTIVES",
    "TASK_ANSWER_LENGTHS",
    "TASK_QUESTION_LENGTHS",
    "VLLM_BLOCK_SIZE",
    "EngineSettings",
    "InvalidEngineSettings",
    "InvalidWorkload",
    "JobSpecError",
    "UnsupportedSetting",
    "Workload",
    "check_supported",
    "check_workload_for_engine",
]

ENGINE_NAMES: tuple[str, ...] = ("torch", "vllm-v0", "vllm-v1")
"""The engines a leg may run on: the built-in torch engine and the two vLLM adapters."""

MODEL_NAMES: tuple[str, ...] = ("llama-84k", "llama-0.4m", "llama-15m")
"""The policy sizes a workload may name (their shapes live with the worker's policy)."""

MODEL_MAX_POSITIONS: dict[str, int] = dict.fromkeys(MODEL_NAMES, 128)
"""The longest sequence (prompt plus completion) each policy size can hold."""

TASK_ANSWER_LENGTHS: dict[str, int] = {"sort4": 5}
"""Each task a workload may name, with the tokens a full answer takes (four digits, ``<eos>``)."""

TASK_QUESTION_LENGTHS: dict[str, int] = {"sort4": 5}
"""The prompt tokens after the shared instruction (four digits and ``=``)."""

MIN_INSTRUCTION_TOKENS = 8
"""The instruction's own words; ``instruction_tokens`` above this pads it with filler tokens."""

VLLM_BLOCK_SIZE = 16
"""vLLM's prefix cache keeps only full blocks of this many tokens."""

OBJECTIVES: tuple[str, ...] = ("gspo", "ppo", "grpo", "gspo_pipelinerl")
"""``gspo`` as the paper defines it (uniform sequence weights); ``gspo_pipelinerl`` is
PipelineRL's length-weighted, leave-one-out variant (docs/WORKERS.md)."""

METRIC_AGGREGATIONS: tuple[str, ...] = ("sequence_mean", "token_mean")
"""How the ``rl/*`` metrics aggregate: PipelineRL's mean over sequences of each sequence's token
mean, or the mean over all tokens."""

MAX_LEGS = 32
MAX_REPLICAS = 16

LogprobsMode = Literal["raw", "processed"]
WeightUpdate = Literal["blocking", "inflight"]
HeadDtype = Literal["fp32", "bf16"]
ModelDtype = Literal["float32", "bfloat16"]
Objective = Literal["gspo", "ppo", "grpo", "gspo_pipelinerl"]


class JobSpecError(ValueError):
    """A job asks for something it may not; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidWorkload(JobSpecError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, f"workload.{field}: {message}")


class InvalidEngineSettings(JobSpecError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, f"settings.{field}: {message}")


class UnsupportedSetting(JobSpecError):
    """The engine cannot honour a valid setting (for example raw logprobs on vLLM V0)."""

    def __init__(self, engine: str, field: str, message: str) -> None:
        super().__init__(field, f"{engine} cannot honour settings.{field}: {message}")
        self.engine = engine


# Spellings users bring from the engines' own configs; each maps onto one canonical value.
_ALIASES: dict[str, dict[str, Any]] = {
    "logprobs_mode": {
        "raw": "raw", "raw_logprobs": "raw",
        "processed": "processed", "processed_logprobs": "processed",
    },
    "weight_update": {
        "blocking": "blocking", "block": "blocking",
        "inflight": "inflight", "in-flight": "inflight", "in_flight": "inflight",
    },
    "lm_head_dtype": {
        "fp32": "fp32", "float32": "fp32",
        "bf16": "bf16", "bfloat16": "bf16",
    },
    "dtype": {
        "float32": "float32", "fp32": "float32",
        "bfloat16": "bfloat16", "bf16": "bfloat16",
    },
}
_SWITCHES: dict[Any, bool] = {True: True, False: False, "on": True, "off": False,
                              "true": True, "false": False}


@dataclass(frozen=True)
class EngineSettings:
    """The backend settings a leg runs with. Defaults are the reference (V0-like) behaviour.

    The settings are the same for every engine; ``logprobs_mode`` belongs to the semantic
    layer, the others to the inference path (see docs/WORKERS.md). ``lm_head_dtype`` is the
    precision of the final projection alone, on every engine; ``dtype`` is the model's own dtype,
    a separate inference-path setting (an engine that cannot run a dtype refuses it).
    """

    logprobs_mode: LogprobsMode = "processed"
    prefix_caching: bool = False
    async_scheduling: bool = False
    weight_update: WeightUpdate = "blocking"
    lm_head_dtype: HeadDtype = "fp32"
    dtype: ModelDtype = "float32"

    def __post_init__(self) -> None:
        for name in ("logprobs_mode", "weight_update", "lm_head_dtype", "dtype"):
            value = getattr(self, name)
            if value not in set(_ALIASES[name].values()):
                allowed = ", ".join(sorted(set(_ALIASES[name].values())))
                raise InvalidEngineSettings(name, f"expected one of {allowed}, got {value!r}")
        for name in ("prefix_caching", "async_scheduling"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidEngineSettings(name, f"expected a boolean, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any] | None) -> EngineSettings:
        """Parse the JSON dict the job API passes; missing keys take the reference defaults."""
        if payload is None:
            return cls()
        if not isinstance(payload, Mapping):
            raise InvalidEngineSettings("<root>", f"expected an object, got {type(payload).__name__}")
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in payload.items():
            if key not in known:
                raise InvalidEngineSettings(
                    str(key), f"unknown setting; known: {', '.join(sorted(known))}"
                )
            lookup = raw.lower() if isinstance(raw, str) else raw
            if key in _ALIASES:
                canonical = _ALIASES[key].get(lookup) if isinstance(lookup, str) else None
                if canonical is None:
                    allowed = ", ".join(sorted(set(_ALIASES[key].values())))
                    raise InvalidEngineSettings(key, f"expected one of {allowed}, got {raw!r}")
                values[key] = canonical
            else:
                # Only real booleans and on/off words: 0/1 or "yes" are too easy to misread.
                switch = _SWITCHES.get(lookup) if isinstance(lookup, str | bool) else None
                if switch is None:
                    raise InvalidEngineSettings(key, f"expected true/false or on/off, got {raw!r}")
                values[key] = switch
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_supported(engine: str, settings: EngineSettings) -> None:
    """Raise ``UnsupportedSetting`` for a valid setting ``engine`` cannot honour.

    vLLM 0.8.5's V0 engine computes logprobs only after processing, has no async scheduling and
    loads weights between batches only; a reference that is not what it claims would poison
    every comparison made against it, so these are refused instead of ignored. The torch engine
    runs the model body in float32 only (``lm_head_dtype`` rounds the head).
    """
    if engine == "torch" and settings.dtype != "float32":
        raise UnsupportedSetting(
            engine, "dtype", "the torch engine runs the model body in float32 only; lm_head_dtype rounds the head"
        )
    if engine != "vllm-v0":
        return
    if settings.logprobs_mode != "processed":
        raise UnsupportedSetting(engine, "logprobs_mode", "vLLM 0.8.5 V0 only returns processed logprobs")
    if settings.async_scheduling:
        raise UnsupportedSetting(engine, "async_scheduling", "vLLM 0.8.5 V0 has no async scheduling")
    if settings.weight_update != "blocking":
        raise UnsupportedSetting(
            engine, "weight_update", "the offline V0 engine loads weights between batches only"
        )


# Upper bounds: a job far beyond them would hold a worker for years or exhaust its memory
# before its first step, and is a typo rather than a plan (docs/WORKERS.md).
MAX_STEPS = 1_000_000
MAX_BATCH_SIZE = 65_536
MAX_GROUP_SIZE = 1024
MAX_TOKENS = 131_072


@dataclass(frozen=True)
class Workload:
    """Everything every leg of a paired job must share to be like-for-like."""

    model: str
    task: str
    seed: int
    steps: int
    batch_size: int
    group_size: int
    max_tokens: int
    lr: float
    temperature: float
    top_p: float
    objective: Objective
    epsilon_low: float
    epsilon_high: float
    top_k: int = 0
    minibatches: int = 1
    warm_start_steps: int = 40
    # How the rl/* metrics aggregate (METRIC_AGGREGATIONS).
    metric_aggregation: str = "sequence_mean"
    # The shared instruction's length in tokens; vLLM legs need two full 16-token blocks.
    instruction_tokens: int = MIN_INSTRUCTION_TOKENS
    # The prefix cache's block size on every engine of the job (vLLM's is 16).
    prefix_block_size: int = 4

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Workload:
        if not isinstance(payload, Mapping):
            raise InvalidWorkload("<root>", f"expected an object, got {type(payload).__name__}")
        known = {f.name for f in fields(cls)}
        for key in payload:
            if key not in known:
                raise InvalidWorkload(str(key), f"unknown field; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in payload:
                values[f.name] = payload[f.name]
            elif f.default is not MISSING:
                values[f.name] = f.default
            else:
                raise InvalidWorkload(f.name, "required field is missing")
        workload = cls(
            model=_text(values, "model"),
            task=_text(values, "task"),
            seed=_integer(values, "seed", minimum=0, maximum=2**32 - 1),
            steps=_integer(values, "steps", minimum=1, maximum=MAX_STEPS),
            batch_size=_integer(values, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE),
            group_size=_integer(values, "group_size", minimum=2, maximum=MAX_GROUP_SIZE),
            max_tokens=_integer(values, "max_tokens", minimum=1, maximum=MAX_TOKENS),
            lr=_number(values, "lr", low=0.0, low_open=True),
            temperature=_number(values, "temperature", low=0.0, low_open=True),
            top_p=_number(values, "top_p", low=0.0, low_open=True, high=1.0),
            objective=_choice(values, "objective", OBJECTIVES),
            epsilon_low=_number(values, "epsilon_low", low=0.0, low_open=True, high=1.0, high_open=True),
            epsilon_high=_number(values, "epsilon_high", low=0.0, low_open=True),
            top_k=_integer(values, "top_k", minimum=0, maximum=2**31 - 1),
            minibatches=_integer(values, "minibatches", minimum=1, maximum=MAX_BATCH_SIZE),
            warm_start_steps=_integer(values, "warm_start_steps", minimum=0, maximum=MAX_STEPS),
            metric_aggregation=_choice(values, "metric_aggregation", METRIC_AGGREGATIONS),
            instruction_tokens=_integer(
                values, "instruction_tokens", minimum=MIN_INSTRUCTION_TOKENS, maximum=MAX_TOKENS
            ),
            prefix_block_size=_integer(values, "prefix_block_size", minimum=1, maximum=MAX_TOKENS),
        )
        if workload.model not in MODEL_NAMES:
            known_models = ", ".join(sorted(MODEL_NAMES))
            raise InvalidWorkload(
                "model", f"unknown model size {workload.model!r}; known: {known_models}"
            )
        answer_length = task_answer_length(workload.task)
        if workload.batch_size % workload.minibatches:
            raise InvalidWorkload(
                "minibatches",
                f"must divide batch_size ({workload.batch_size}) so each minibatch holds whole groups",
            )
        if workload.max_tokens < answer_length:
            raise InvalidWorkload(
                "max_tokens",
                f"task {workload.task} needs at least {answer_length} tokens for a full answer",
            )
        positions = MODEL_MAX_POSITIONS[workload.model]
        if workload.sequence_length > positions:
            raise InvalidWorkload(
                "max_tokens",
                f"a prompt of {workload.prompt_length} tokens plus {workload.max_tokens} sampled ones "
                f"exceeds {workload.model}'s {positions} positions",
            )
        return workload

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def sequences_per_step(self) -> int:
        return self.batch_size * self.group_size

    @property
    def prompt_length(self) -> int:
        """The shared instruction plus the question, in tokens."""
        return self.instruction_tokens + TASK_QUESTION_LENGTHS[self.task]

    @property
    def sequence_length(self) -> int:
        """Prompt plus the longest completion: what an engine must hold per sequence."""
        return self.prompt_length + self.max_tokens


def check_workload_for_engine(engine: str, workload: Workload) -> None:
    """Raise ``InvalidWorkload`` for a workload that ``engine``'s legs cannot run as written.

    vLLM caches only full ``VLLM_BLOCK_SIZE``-token blocks and never serves a prompt's last token
    from the cache, so a vLLM leg needs that block size and a shared instruction of at least two
    blocks, or its prefix caching would be inert.
    """
    if engine not in ("vllm-v0", "vllm-v1"):
        return
    if workload.prefix_block_size != VLLM_BLOCK_SIZE:
        raise InvalidWorkload(
            "prefix_block_size", f"{engine} legs cache {VLLM_BLOCK_SIZE}-token blocks; "
            f"set prefix_block_size to {VLLM_BLOCK_SIZE}, got {workload.prefix_block_size}"
        )
    if workload.instruction_tokens < 2 * VLLM_BLOCK_SIZE:
        raise InvalidWorkload(
            "instruction_tokens", f"{engine} legs need a shared instruction of at least two "
            f"{VLLM_BLOCK_SIZE}-token blocks ({2 * VLLM_BLOCK_SIZE} tokens), got {workload.instruction_tokens}"
        )


def task_answer_length(name: str) -> int:
    try:
        return TASK_ANSWER_LENGTHS[name]
    except KeyError:
        raise InvalidWorkload(
            "task", f"unknown task {name!r}; known: {', '.join(TASK_ANSWER_LENGTHS)}"
        ) from None


def _text(values: dict[str, Any], name: str) -> str:
    value = values[name]
    if not isinstance(value, str) or not value:
        raise InvalidWorkload(name, f"expected a non-empty string, got {value!r}")
    return value


def _integer(values: dict[str, Any], name: str, *, minimum: int, maximum: int) -> int:
    value = values[name]
    # bool is an int subclass; true/false for a step count is a mistake, not a 1/0.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidWorkload(name, f"expected an integer, got {value!r}")
    if value < minimum:
        raise InvalidWorkload(name, f"must be at least {minimum}, got {value}")
    if value > maximum:
        raise InvalidWorkload(name, f"must be at most {maximum}, got {value}")
    return value


def _number(
    values: dict[str, Any],
    name: str,
    *,
    low: float,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    value = values[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidWorkload(name, f"expected a finite number, got {value!r}")
    value = float(value)
    if value < low or (low_open and value == low):
        raise InvalidWorkload(name, f"must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise InvalidWorkload(name, f"must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def _choice(values: dict[str, Any], name: str, allowed: tuple[str, ...]) -> Any:
    value = values[name]
    if value not in allowed:
        raise InvalidWorkload(name, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value
