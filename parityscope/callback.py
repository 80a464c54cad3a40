"""A transformers ``TrainerCallback`` that sends the Trainer's logs to ParityScope.

    from parityscope.callback import ParityScopeCallback

    trainer = GRPOTrainer(..., callbacks=[ParityScopeCallback(project="gspo-v1", name="v1-candidate")])

It works with any ``transformers.Trainer``, so with TRL's trainers (``GRPOTrainer``,
``PPOTrainer``, ``DPOTrainer``…), which log through ``Trainer.log``: every ``on_log`` becomes one
``run.log(values, step=state.global_step)`` of the numeric values (one-element tensors included;
strings, lists and tables are left out). The run's config has the keys transformers' own MLflow
integration logs as params: the model's config and the training arguments in one flat mapping,
the arguments winning where both have a key (TRL's config classes are TrainingArguments, so
``temperature``, ``epsilon``, ``beta``, the vLLM settings … are there for the config diff). The
values keep their JSON types; the config diff compares them by meaning, so a run logged this way
and one logged with ``report_to="mlflow"`` compare like for like. Only the main process logs.
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


def trainer_config(args: Any, model: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keys transformers' ``MLflowCallback`` logs as params (``{**model.config.to_dict(),
    **args.to_dict()}``), with their JSON values, then ``extra`` over them."""
    combined: dict[str, Any] = {}
    model_config = getattr(model, "config", None)
    if model_config is not None and hasattr(model_config, "to_dict"):
        combined.update(model_config.to_dict())
    combined.update(args.to_dict())
    combined.update(extra or {})
    return _json_safe(combined)


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
        self.run = init(
            self.project, self._name(args), config=trainer_config(args, model, self.config), tags=self.tags,
            url=self.url, token=self.token, **self.init_options,
        )

    def _name(self, args: Any) -> str:
        return self.name or getattr(args, "run_name", None) or Path(args.output_dir).name


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
