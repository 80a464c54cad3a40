"""The supervised warm start, and the on-disk checkpoint every leg of a workload starts from.

A random policy never samples a sorted answer, so RL from scratch shows a flat reward. A short
supervised phase on (prompt, sorted answer) pairs drawn from a stream the RL prompts never use
brings the policy to partial accuracy, from where RL visibly improves it within a demo.

The result is cached under ``checkpoint_dir`` keyed by everything that determines it (model size,
task, seed, warm-start recipe), so the four legs of a job share one checkpoint, built once even
when legs start in parallel processes (a file lock serialises the build).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from workers.cpu_math import small_model_cpu_math
from workers.policy import build_policy, policy_config, save_policy
from workers.task import SortDigitsTask
from workers.workload import Workload, task_for

__all__ = ["WarmStartRecipe", "default_checkpoint_dir", "warm_started_checkpoint", "supervised_warm_start"]

# Bump when the recipe's meaning changes, so stale checkpoints are never reused.
_FORMAT = 1


@dataclass(frozen=True)
class WarmStartRecipe:
    steps: int
    batch_size: int = 64
    lr: float = 3e-3


def default_checkpoint_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("PARITYSCOPE_CHECKPOINT_DIR") or Path(user_cache_dir("parityscope")) / "checkpoints")


def warm_start_key(workload: Workload, recipe: WarmStartRecipe) -> str:
    identity = {
        "format": _FORMAT,
        "model": asdict(policy_config(workload.model)),
        "task": workload.task,
        "instruction_tokens": workload.instruction_tokens,
        "seed": workload.seed,
        "recipe": asdict(recipe),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"{workload.task}-{workload.model}-{digest}"


def warm_started_checkpoint(workload: Workload, checkpoint_dir: Path | None = None) -> Path:
    """The directory of the workload's warm-started policy, built on first use."""
    root = Path(checkpoint_dir) if checkpoint_dir is not None else default_checkpoint_dir()
    recipe = WarmStartRecipe(steps=workload.warm_start_steps)
    target = root / warm_start_key(workload, recipe)
    if (target / "warm_start.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".{target.name}.lock"):
        if (target / "warm_start.json").is_file():  # another leg built it while we waited
            return target
        started = time.perf_counter()
        model = build_policy(policy_config(workload.model), seed=workload.seed)
        with small_model_cpu_math():
            stats = supervised_warm_start(model, task_for(workload), workload.seed, recipe)
        stats["seconds"] = round(time.perf_counter() - started, 3)
        # Build next to the target and rename: a crash never leaves a half-written checkpoint
        # that a later leg would take for a finished one.
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
        try:
            save_policy(model, staging, policy_config(workload.model))
            (staging / "warm_start.json").write_text(json.dumps({"recipe": asdict(recipe), **stats}, indent=2))
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return target


def supervised_warm_start(
    model: LlamaForCausalLM, task: SortDigitsTask, seed: int, recipe: WarmStartRecipe
) -> dict[str, float]:
    """Teacher-forced cross-entropy on the answer tokens; returns the final loss and accuracy."""
    if recipe.steps == 0:
        return {"final_loss": float("nan"), "final_token_accuracy": float("nan")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    model.train()
    prompt_length = task.prompt_length
    loss = torch.tensor(float("nan"))
    accuracy = float("nan")
    for step, batch in enumerate(_examples(task, seed, recipe)):
        logits = model(input_ids=batch[:, :-1]).logits[:, prompt_length - 1 :]
        targets = batch[:, prompt_length:]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == recipe.steps - 1:
            accuracy = float((logits.argmax(-1) == targets).float().mean())
    model.eval()
    return {"final_loss": loss.item(), "final_token_accuracy": accuracy}


def _examples(task: SortDigitsTask, seed: int, recipe: WarmStartRecipe) -> Iterator[torch.Tensor]:
    for step in range(recipe.steps):
        prompts = task.warm_start_prompts(seed, step, recipe.batch_size)
        yield torch.tensor([(*p, *task.target(p)) for p in prompts], dtype=torch.long)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
