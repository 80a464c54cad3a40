"""A tiny transformers Trainer run on CPU (a linear regression), for the integration tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class Regression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = nn.functional.mse_loss(self.linear(x).squeeze(-1), labels)
        return {"loss": loss}


class Points(torch.utils.data.Dataset):
    def __init__(self, n: int = 64) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=generator)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


def train(
    output_dir: Path, *, report_to: list[str], run_name: str, steps: int, callbacks: list[Any] | None = None,
    save_steps: int | None = None,
):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        logging_steps=1,
        per_device_train_batch_size=8,
        learning_rate=0.01,
        report_to=report_to,
        run_name=run_name,
        save_strategy="no" if save_steps is None else "steps",
        save_steps=save_steps or 500,
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=Regression(), args=args, train_dataset=Points(), callbacks=callbacks)
    trainer.train()
    return trainer
