"""The workload: everything every leg of a paired job must share to be like-for-like.

The job API passes it as a JSON dict; :meth:`Workload.from_dict` validates it and names the field
in every error, because a worker that fails a leg on bad input must say what to fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Literal

from workers.errors import InvalidWorkload
from workers.objectives import OBJECTIVES
from workers.policy import policy_config
from workers.rl_metrics import METRIC_AGGREGATIONS
from workers.task import SortDigitsTask, get_task

__all__ = ["METRIC_AGGREGATIONS", "OBJECTIVES", "Workload"]

Objective = Literal["gspo", "ppo", "grpo", "gspo_pipelinerl"]


@dataclass(frozen=True)
class Workload:
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
    # -- options for vLLM legs and PipelineRL-style metrics (docs/WORKERS.md) -----------------
    # How the rl/* metrics aggregate: "sequence_mean" (PipelineRL) or "token_mean".
    metric_aggregation: str = "sequence_mean"
    # The shared instruction's length in tokens; vLLM legs need two full 16-token blocks.
    instruction_tokens: int = 8
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
            seed=_integer(values, "seed", minimum=0),
            steps=_integer(values, "steps", minimum=1),
            batch_size=_integer(values, "batch_size", minimum=1),
            group_size=_integer(values, "group_size", minimum=2),
            max_tokens=_integer(values, "max_tokens", minimum=1),
            lr=_number(values, "lr", low=0.0, low_open=True),
            temperature=_number(values, "temperature", low=0.0, low_open=True),
            top_p=_number(values, "top_p", low=0.0, low_open=True, high=1.0),
            objective=_choice(values, "objective", OBJECTIVES),
            epsilon_low=_number(values, "epsilon_low", low=0.0, low_open=True, high=1.0, high_open=True),
            epsilon_high=_number(values, "epsilon_high", low=0.0, low_open=True),
            top_k=_integer(values, "top_k", minimum=0),
            minibatches=_integer(values, "minibatches", minimum=1),
            warm_start_steps=_integer(values, "warm_start_steps", minimum=0),
            metric_aggregation=_choice(values, "metric_aggregation", METRIC_AGGREGATIONS),
            instruction_tokens=_integer(values, "instruction_tokens", minimum=1),
            prefix_block_size=_integer(values, "prefix_block_size", minimum=1),
        )
        # Resolving these now turns an unknown name into an error naming the field, before any
        # work starts.
        policy = policy_config(workload.model)
        task = workload.task_spec
        if workload.batch_size % workload.minibatches:
            raise InvalidWorkload(
                "minibatches",
                f"must divide batch_size ({workload.batch_size}) so each minibatch holds whole groups",
            )
        if workload.max_tokens < task.answer_length:
            raise InvalidWorkload(
                "max_tokens",
                f"task {task.name} needs at least {task.answer_length} tokens for a full answer",
            )
        if task.prompt_length + workload.max_tokens > policy.max_positions:
            raise InvalidWorkload(
                "max_tokens",
                f"a prompt of {task.prompt_length} tokens plus {workload.max_tokens} sampled ones exceeds "
                f"{workload.model}'s {policy.max_positions} positions",
            )
        return workload

    @property
    def task_spec(self) -> SortDigitsTask:
        """The task with this workload's shared instruction."""
        return get_task(self.task, self.instruction_tokens)

    @property
    def sequence_length(self) -> int:
        """Prompt plus the longest completion: what an engine must hold per sequence."""
        return self.task_spec.prompt_length + self.max_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def sequences_per_step(self) -> int:
        return self.batch_size * self.group_size


def _text(values: dict[str, Any], name: str) -> str:
    value = values[name]
    if not isinstance(value, str) or not value:
        raise InvalidWorkload(name, f"expected a non-empty string, got {value!r}")
    return value


def _integer(values: dict[str, Any], name: str, *, minimum: int) -> int:
    value = values[name]
    # bool is an int subclass; true/false for a step count is a mistake, not a 1/0.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidWorkload(name, f"expected an integer, got {value!r}")
    if value < minimum:
        raise InvalidWorkload(name, f"must be at least {minimum}, got {value}")
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
