"""Supervised fine-tuning with trl's ``SFTTrainer`` and peft LoRA/DoRA adapters."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sc_cello1._logging import logger, progress_disabled

from ._config import make_config
from ._data import (
    check_output_dir,
    check_puzzles,
    completion_text,
    load_model,
    lora_config,
    output_merge,
    prompt_messages,
    torch_dtype,
    training_info,
    write_outputs,
)
from ._sft_config import SFTConfig

if TYPE_CHECKING:
    from sc_cello1.data import Puzzle


def sft_records(puzzles: Sequence[Puzzle], prompt_style: str = "sft") -> list[dict[str, Any]]:
    """Conversational prompt-completion records for trl, one per puzzle.

    ``prompt`` holds the prompt turns in ``prompt_style`` (the authors' SFT layout: a
    system turn ``system_msg`` and a user turn ``user_msg``), ``completion`` the
    assistant turn (:attr:`~sc_cello1.data.Puzzle.assistant_msg`: a reasoning trace or
    the answer joined by ``" | "``).
    """
    return [
        {
            "prompt": prompt_messages(p, prompt_style),
            "completion": [{"role": "assistant", "content": completion_text(p)}],
        }
        for p in puzzles
    ]


def _last_checkpoint(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder))


def sft(
    model: str | os.PathLike,
    puzzles: Sequence[Puzzle],
    *,
    output_dir: str | os.PathLike,
    config: SFTConfig | None = None,
    **overrides: Any,
) -> Path:
    """Supervised fine-tuning on CellPuzzles with trl's ``SFTTrainer``, as the authors did.

    Each puzzle becomes a prompt (by default a system turn ``system_msg`` and a user
    turn ``user_msg``, through the model's chat template) and a completion: the
    puzzle's reasoning trace (``assistant_text``, e.g. the CellPuzzles ``reasoning``
    split) or its answer joined by ``" | "``. The loss covers the completion only.
    With ``use_peft=True`` (default) LoRA/DoRA adapters are trained on all linear
    layers; ``use_peft=False`` trains all parameters. Training resumes from the newest
    checkpoint in ``output_dir/checkpoints`` when one exists.

    Parameters
    ----------
    model
        The base model: a name known to :func:`sc_cello1.models.resolve`, a transformers
        model folder, or a LoRA adapter folder (merged into its base first).
    puzzles
        Training puzzles, each with ``answer`` (or ``assistant_text``).
    output_dir
        Folder that receives the trained model, checkpoints (``checkpoints/``) and the
        record ``cello1_train.json``.
    config
        An :class:`~sc_cello1.train.SFTConfig`; defaults are the authors' settings.
    **overrides
        Any :class:`~sc_cello1.train.SFTConfig` field, e.g. ``max_steps=3, lora_r=8``.

    Returns
    -------
    ``output_dir``, which :func:`sc_cello1.tl.annotate`, :func:`sc_cello1.train.grpo` and
    ``transformers.AutoModelForCausalLM.from_pretrained`` load as a model. With LoRA and
    ``merge=True`` (default) it holds the merged full model and tokenizer at the top and
    the adapter under ``adapter/``; with ``merge=False`` only the adapter
    (``adapter_config.json``, naming the base model's folder) and tokenizer; with
    ``use_peft=False`` the full model. Also ``checkpoints/`` (resumable trainer state)
    and ``cello1_train.json`` (configuration, base model provenance, loss history),
    written last.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> train, test = cello1.data.split_puzzles(puzzles)  # doctest: +SKIP
    >>> out = cello1.train.sft("smollm2-135m", train, output_dir="runs/sft",
    ...                        lora_r=16, lora_alpha=32, max_steps=100)  # doctest: +SKIP
    """
    # Everything is validated before the model is loaded.
    cfg = make_config(SFTConfig, config, overrides)
    puzzles = check_puzzles(puzzles)
    out = check_output_dir(output_dir)
    from sc_cello1.models import resolve

    source = resolve(model)
    merge = output_merge(source, cfg)

    import torch
    from datasets import Dataset
    from trl import SFTConfig as TrlSFTConfig
    from trl import SFTTrainer

    start = time.perf_counter()
    records = sft_records(puzzles, cfg.prompt_style)
    eval_dataset = None
    if cfg.eval_ratio > 0:
        order = list(range(len(records)))
        random.Random(cfg.seed).shuffle(order)
        n_eval = round(len(order) * cfg.eval_ratio)
        held = set(order[:n_eval])
        if n_eval:
            eval_dataset = Dataset.from_list([r for i, r in enumerate(records) if i in held])
            records = [r for i, r in enumerate(records) if i not in held]
    train_dataset = Dataset.from_list(records)

    model_obj, tokenizer = load_model(source, dtype=cfg.dtype)
    tokenizer.padding_side = "right"
    args = {
        "output_dir": str(out / "checkpoints"),
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "per_device_eval_batch_size": cfg.per_device_train_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "max_length": cfg.max_length,
        "completion_only_loss": cfg.completion_only_loss,
        "warmup_steps": cfg.warmup_steps,  # a float < 1 is a share of the steps
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "weight_decay": cfg.weight_decay,
        "max_grad_norm": cfg.max_grad_norm,
        "logging_steps": cfg.logging_steps,
        "save_strategy": "steps" if cfg.save_steps else "epoch",
        "eval_strategy": "epoch" if eval_dataset is not None else "no",
        "seed": cfg.seed,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "bf16": torch_dtype(cfg.dtype) == torch.bfloat16 if torch.cuda.is_available() else False,
        "report_to": "none",
        "dataloader_pin_memory": torch.cuda.is_available(),
        "disable_tqdm": progress_disabled(),
        "save_total_limit": 2,
        "dataset_num_proc": None,
    }
    if cfg.save_steps:
        args["save_steps"] = cfg.save_steps
    args.update(cfg.trainer_args)
    trainer = SFTTrainer(
        model=model_obj,
        args=TrlSFTConfig(**args),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg) if cfg.use_peft else None,
    )
    resume = _last_checkpoint(out / "checkpoints") if cfg.resume else None
    if resume:
        logger.info("resuming SFT from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    trained = trainer.model
    tokenizer.padding_side = "left"
    info = training_info(
        "sft",
        source,
        cfg,
        len(puzzles),
        n_train=len(train_dataset),
        n_eval=0 if eval_dataset is None else len(eval_dataset),
        train_loss=float(result.training_loss),
        global_step=int(result.global_step),
        log_history=trainer.state.log_history,
    )
    write_outputs(trained, tokenizer, out, merge=merge, info=info)
    logger.info(
        "SFT: %d steps on %d puzzles, loss %.4f, written to %s (%.1f s)",
        result.global_step,
        len(train_dataset),
        result.training_loss,
        out,
        time.perf_counter() - start,
    )
    return out
