"""The verifiable synthetic task: sort four digits.

The vocabulary is defined here, in code, so nothing is downloaded. A prompt is an instruction
("sort the digits in ascending order :") followed by four digits and "="; the answer is the four
digits sorted, then ``<eos>``. The instruction is a shared prefix, like a system prompt: it fills
whole prefix-cache blocks, so an engine with prefix caching reuses its keys and values on every
request, which is what makes a cache that survives weight updates matter.

The instruction is 8 tokens by default, two of the torch engine's 4-token blocks. vLLM caches
only full 16-token blocks and never serves a prompt's last token from the cache, so a job with a
vLLM leg lengthens it with ``instruction_tokens`` (the workload option of that name, at least 32:
two vLLM blocks), padding it with a repeated filler word after ``<bos>``.

The prompt order is a pure function of the workload seed and the step, so every leg of a job sees
the same prompts in the same order whatever engine runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from workers.errors import InvalidWorkload

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "TASKS",
    "VOCAB",
    "INSTRUCTION_WORDS",
    "SortDigitsTask",
    "get_task",
]

VOCAB: tuple[str, ...] = (
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
    "<bos>", "<eos>", "<pad>", "=", ":",
    "sort", "the", "digits", "in", "ascending", "order", "please",
)
BOS = VOCAB.index("<bos>")
EOS = VOCAB.index("<eos>")
PAD = VOCAB.index("<pad>")

INSTRUCTION_WORDS: tuple[str, ...] = ("<bos>", "sort", "the", "digits", "in", "ascending", "order", ":")
_FILLER = "please"

# Independent random streams derived from the workload seed: RL prompts and warm-start data must
# never coincide by construction, or the warm start would memorise the RL prompts.
_RL_STREAM = 0
_WARM_START_STREAM = 1


@dataclass(frozen=True)
class SortDigitsTask:
    name: str = "sort4"
    num_digits: int = 4
    instruction_tokens: int = len(INSTRUCTION_WORDS)

    def __post_init__(self) -> None:
        if self.instruction_tokens < len(INSTRUCTION_WORDS):
            raise InvalidWorkload(
                "instruction_tokens", f"must be at least {len(INSTRUCTION_WORDS)}, got {self.instruction_tokens}"
            )

    @property
    def instruction(self) -> tuple[int, ...]:
        padding = (_FILLER,) * (self.instruction_tokens - len(INSTRUCTION_WORDS))
        words = (INSTRUCTION_WORDS[0], *padding, *INSTRUCTION_WORDS[1:])
        return tuple(VOCAB.index(word) for word in words)

    @property
    def prompt_length(self) -> int:
        return len(self.instruction) + self.num_digits + 1

    @property
    def answer_length(self) -> int:
        return self.num_digits + 1

    def prompt(self, digits: Sequence[int]) -> tuple[int, ...]:
        if len(digits) != self.num_digits or any(not 0 <= d <= 9 for d in digits):
            raise ValueError(f"expected {self.num_digits} digits in 0..9, got {list(digits)}")
        return (*self.instruction, *(int(d) for d in digits), VOCAB.index("="))

    def rl_prompts(self, seed: int, step: int, count: int) -> list[tuple[int, ...]]:
        """The ``count`` distinct-draw prompts of RL step ``step``; the same for every leg."""
        return self._draw(seed, _RL_STREAM, step, count)

    def warm_start_prompts(self, seed: int, step: int, count: int) -> list[tuple[int, ...]]:
        return self._draw(seed, _WARM_START_STREAM, step, count)

    def target(self, prompt: Sequence[int]) -> tuple[int, ...]:
        digits = self._digits(prompt)
        return (*sorted(digits), EOS)

    def reward(self, prompt: Sequence[int], completion: Sequence[int]) -> float:
        """Share of the answer's positions (four digits, then ``<eos>``) that are right.

        Partial credit gives RL a signal before whole answers are right, so the reward curve
        rises within a short demo instead of jumping.
        """
        target = self.target(prompt)
        hits = sum(1 for want, got in zip(target, completion, strict=False) if want == got)
        return hits / len(target)

    def render(self, tokens: Sequence[int]) -> str:
        return " ".join(VOCAB[t] if 0 <= t < len(VOCAB) else f"<{t}>" for t in tokens)

    def _draw(self, seed: int, stream: int, step: int, count: int) -> list[tuple[int, ...]]:
        if count < 1:
            raise ValueError("count must be positive")
        rng = np.random.default_rng([seed, stream, step])
        digits = rng.integers(0, 10, size=(count, self.num_digits))
        return [self.prompt(row.tolist()) for row in digits]

    def _digits(self, prompt: Sequence[int]) -> list[int]:
        if len(prompt) != self.prompt_length or tuple(prompt[: len(self.instruction)]) != self.instruction:
            raise ValueError(f"not a {self.name} prompt: {self.render(prompt)}")
        return list(prompt[len(self.instruction) : len(self.instruction) + self.num_digits])


TASKS: dict[str, SortDigitsTask] = {"sort4": SortDigitsTask()}


def get_task(name: str, instruction_tokens: int | None = None) -> SortDigitsTask:
    """The task ``name``, with its shared instruction lengthened to ``instruction_tokens``."""
    try:
        task = TASKS[name]
    except KeyError:
        raise InvalidWorkload("task", f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
    if instruction_tokens is None or instruction_tokens == task.instruction_tokens:
        return task
    return replace(task, instruction_tokens=instruction_tokens)
