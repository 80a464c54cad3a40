"""A transformers ``TrainerCallback`` that sends the Trainer's logs to ParityScope.

    from parityscope.callback import ParityScopeCallback

    trainer = GRPOTrainer(..., callbacks=[ParityScopeCallback(project="gspo-v1", name="v1-candidate")])

It works with any ``transformers.Trainer``, so with TRL's trainers (``GRPOTrainer``,
``PPOTrainer``, ``DPOTrainer``…), which log through ``Trainer.log``: every ``on_log`` becomes one
``run.log(values, step=state.global_step)`` of the numeric values (one-element tensors included;
strings, lists and tables are left out). The run's config holds the training arguments (TRL's
config classes are TrainingArguments, so ``temperature``, ``epsilon``, ``beta``, the vLLM settings
… are there for the config diff; ``run_name``, ``output_dir`` and ``logging_dir``, which only name
the run, are left out) and the model's config. Only the main process logs.
"""

from __future__ import annotations

import json
import numbers
import os
import uuid
from pathlib import Path
from typing import Any

from parityscope.client import Run, init

try:
    from transformers import TrainerCallback
except ModuleNotFoundError as exc:  # the client installs without transformers
    raise ImportError(
        "parityscope.callback plugs into transformers' Trainer: install transformers (pip install transformers)"
    ) from exc

__all__ = ["ParityScopeCallback"]

ENV_PROJECT = "PARITYSCOPE_PROJECT"
# Arguments that name the run rather than configure it: they differ between any two runs, and
# the config diff would report them.
RUN_IDENTITY_ARGS = frozenset({"run_name", "output_dir", "logging_dir"})


def _json_safe(mapping: dict[str, Any]) -> dict[str, Any]:
    """Config values as JSON (dtypes, enums, paths… as their text)."""
    return json.loads(json.dumps(mapping, default=str))


def scalar_logs(logs: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a Trainer log; everything else is left out."""
    values: dict[str, float] = {}
    for key, value in logs.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, numbers.Real):
            values[key] = float(value)
        elif hasattr(value, "numel") and hasattr(value, "item") and value.numel() == 1:
            values[key] = float(value.item())
    return values


class ParityScopeCallback(TrainerCallback):
    """Send the Trainer's logs to a ParityScope run with the global step.

    ``project`` defaults to ``PARITYSCOPE_PROJECT``; ``name`` to the Trainer's ``run_name``, else
    the output directory's name; ``url`` and ``token`` to ``PARITYSCOPE_URL`` and
    ``PARITYSCOPE_TOKEN``. ``config`` is merged over the collected one. Other keyword arguments
    go to ``parityscope.init`` (``external_id``, ``spool_dir``, ``flush_interval``…).
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        url: str | None = None,
        token: str | None = None,
        **init_options: Any,
    ) -> None:
        self.project = project or os.environ.get(ENV_PROJECT)
        if not self.project:
            raise ValueError(f"ParityScopeCallback: no project; pass project= or set {ENV_PROJECT}")
        self.name = name
        self.config = config or {}
        self.tags = tags
        self.url = url
        self.token = token
        # One identity for the callback's life: logs after on_train_end (a final evaluate, say)
        # reopen the same run rather than starting another.
        init_options.setdefault("external_id", uuid.uuid4().hex)
        self.init_options = init_options
        self.run: Run | None = None

    def _start(self, args: Any, model: Any) -> None:
        training_args = {k: v for k, v in args.to_sanitized_dict().items() if k not in RUN_IDENTITY_ARGS}
        config: dict[str, Any] = {"training_args": _json_safe(training_args)}
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_diff_dict"):
            config["model_config"] = _json_safe(model_config.to_diff_dict())
        config.update(self.config)
        name = self.name or getattr(args, "run_name", None) or Path(args.output_dir).name
        self.run = init(
            self.project, name, config=config, tags=self.tags, url=self.url, token=self.token, **self.init_options
        )

    def _running(self) -> bool:
        return self.run is not None and not self.run.finished

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and not self._running():
            self._start(args, model)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        values = scalar_logs(logs)
        if values:
            if not self._running():
                self._start(args, kwargs.get("model"))
            self.run.log(values, step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._running():
            self.run.finish("finished")
