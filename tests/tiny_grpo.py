"""A tiny TRL GRPOTrainer run on CPU: a one-layer Llama with a character tokenizer built in
memory (nothing downloaded), a digit-sorting prompt set and a length reward."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train_grpo(output_dir: Path, *, report_to: list[str], run_name: str, steps: int = 2,
               callbacks: list[Any] | None = None, save_steps: int | None = None):  # type: ignore[no-untyped-def]
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    vocab = {c: i for i, c in enumerate(["<pad>", "<eos>", "<unk>", *"0123456789 "])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, eos_token_id=1, bos_token_id=None)
    data = Dataset.from_dict({"prompt": ["3 1 2", "9 8 7", "5 4 6", "2 2 1"]})

    def length_reward(completions: list[str], **_: Any) -> list[float]:
        return [float(len(c)) for c in completions]

    args = GRPOConfig(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=2, num_generations=2,
        max_completion_length=4, logging_steps=1, report_to=report_to, run_name=run_name,
        save_strategy="no" if save_steps is None else "steps", save_steps=save_steps or 500,
        use_cpu=True, disable_tqdm=True, bf16=False, seed=0,
    )
    trainer = GRPOTrainer(model=LlamaForCausalLM(config), args=args, train_dataset=data,
                          reward_funcs=length_reward, processing_class=tokenizer, callbacks=callbacks)
    trainer.train()
    return trainer
