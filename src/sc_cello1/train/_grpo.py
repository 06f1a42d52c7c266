"""The runner of GRPO: :func:`grpo` validates, loads, and fits with Lightning.

The layers follow scvi-tools: the torch part (``_grpo_loss``: the objective and
log-probabilities), the training plan (``_grpo_plan``: :class:`GRPOModule`, a
LightningModule), the data (``_grpo_data``: records and a LightningDataModule) and this
runner (callbacks, Trainer, fit, outputs). Lightning loads only when training starts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sc_cello1._logging import logger, progress_disabled

from ._config import make_config
from ._data import (
    check_output_dir,
    check_puzzles,
    load_chat_tokenizer,
    load_model,
    lora_config,
    output_merge,
    training_info,
    write_outputs,
)
from ._grpo_config import GRPOConfig
from ._grpo_loss import (
    KL_BOUND,
    LOG_RATIO_BOUND,
    group_advantages,
    grpo_loss,
    k3_kl,
    token_log_probs,
)

if TYPE_CHECKING:
    from sc_cello1.data import Puzzle

__all__ = [
    "KL_BOUND",
    "LOG_RATIO_BOUND",
    "group_advantages",
    "grpo",
    "grpo_loss",
    "grpo_module_class",
    "k3_kl",
    "token_log_probs",
]

# Lightning Trainer arguments that GRPOConfig owns.
_OWNED_TRAINER_ARGS = {
    "max_steps": "max_steps",
    "max_epochs": "num_train_epochs",
    "accumulate_grad_batches": "gradient_accumulation_steps",
    "gradient_clip_val": "max_grad_norm",
    "precision": "precision",
    "val_check_interval": "eval_steps",
    "log_every_n_steps": "logging_steps",
}

# Strategies that are tested: one process, or data parallel (DDP) over processes.
_UNSUPPORTED_STRATEGIES = ("fsdp", "deepspeed")


def grpo_module_class() -> type:
    """Return the :class:`~sc_cello1.train.GRPOModule` class (importing Lightning)."""
    from ._grpo_plan import GRPOModule

    return GRPOModule


# ----------------------------------------------------------------------------- entry point


def _check_trainer_kwargs(trainer_kwargs: Any) -> dict[str, Any]:
    if trainer_kwargs is None:
        return {}
    if not isinstance(trainer_kwargs, dict):
        msg = f"trainer_kwargs must be a dict of lightning.Trainer arguments, got {type(trainer_kwargs).__name__}."
        raise TypeError(msg)
    owned = sorted(k for k in trainer_kwargs if k in _OWNED_TRAINER_ARGS)
    if owned:
        fields = ", ".join(f"{k} -> GRPOConfig.{_OWNED_TRAINER_ARGS[k]}" for k in owned)
        msg = f"trainer_kwargs sets {owned}, which GRPOConfig owns; set them as config fields instead ({fields})."
        raise ValueError(msg)
    strategy = trainer_kwargs.get("strategy")
    name = strategy if isinstance(strategy, str) else type(strategy).__name__
    if strategy is not None and any(u in name.lower() for u in _UNSUPPORTED_STRATEGIES):
        msg = (
            f"strategy={strategy!r} is not supported by cello1.train.grpo (sharded training is "
            "untested here); use strategy='ddp' (data parallel) or leave it unset."
        )
        raise ValueError(msg)
    return dict(trainer_kwargs)


def _load_policy(source: Any, cfg: GRPOConfig) -> Any:
    """Load the starting policy, with LoRA adapters and gradient checkpointing as configured."""
    from sc_cello1._logging import log_elapsed

    with log_elapsed("GRPO: loaded %s", source.name):
        policy, _ = load_model(source, dtype=cfg.dtype)
    if cfg.use_peft:
        from peft import get_peft_model

        policy = get_peft_model(policy, lora_config(cfg))
    if cfg.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
        if cfg.use_peft:
            policy.enable_input_require_grads()
    policy.train()
    return policy


def _trainer(
    cfg: GRPOConfig, out: Path, tkw: dict[str, Any], *, n_train_batches: int, validate: bool
) -> Any:
    """Build the :class:`lightning.Trainer`: checkpoints, CSV logs, the config's limits."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    callbacks = list(tkw.pop("callbacks", []) or [])
    callbacks.append(
        ModelCheckpoint(
            dirpath=out / "checkpoints",
            filename="step{step}",
            save_last=True,
            save_top_k=1,
            every_n_train_steps=cfg.save_steps or None,
        )
    )
    show_bar = not progress_disabled() and tkw.get("enable_progress_bar", True)
    if show_bar and not any(type(c).__name__.endswith("ProgressBar") for c in callbacks):
        callbacks.append(_step_progress_bar(cfg))
    # Accumulation and clipping happen in GRPOModule.update (manual optimisation).
    trainer_args: dict[str, Any] = {
        "max_steps": cfg.max_steps,
        "max_epochs": -1 if cfg.max_steps > 0 else cfg.num_train_epochs,
        "log_every_n_steps": cfg.logging_steps,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": not progress_disabled(),
        "enable_model_summary": False,
        "default_root_dir": str(out),
        "logger": CSVLogger(str(out), name="logs"),
        "callbacks": callbacks,
    }
    if cfg.precision is not None:
        trainer_args["precision"] = cfg.precision
    if not validate:
        trainer_args["limit_val_batches"] = 0
    elif cfg.eval_steps:
        trainer_args["val_check_interval"] = min(cfg.eval_steps, n_train_batches)
    trainer_args.update(tkw)
    trainer = L.Trainer(**trainer_args)
    return trainer


def grpo(
    model: str | os.PathLike,
    puzzles: Sequence[Puzzle],
    *,
    output_dir: str | os.PathLike,
    config: GRPOConfig | None = None,
    eval_puzzles: Sequence[Puzzle] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    ckpt_path: str | os.PathLike | None = None,
    reward_fn: Any = None,
    **overrides: Any,
) -> Path:
    """GRPO on CellPuzzles with the authors' batch-level reward, run by Lightning.

    Rollouts are sampled from the current policy (``rollout``: transformers, or a
    colocated vLLM engine when installed with CUDA) with prompts in the authors' RL layout
    (one user turn ``user_msg + " " + system_msg``), rewarded with
    :func:`sc_cello1.metrics.reward` and optimised with the clipped surrogate and a k3
    KL penalty to the starting model (see :class:`~sc_cello1.train.GRPOModule`). With
    ``use_peft=True`` (default) LoRA adapters are trained and the reference is the
    model with adapters disabled; ``use_peft=False`` trains all parameters against a
    frozen copy (the authors' setting). Checkpoints go to ``output_dir/checkpoints``
    and a run resumes from ``last.ckpt`` there; metrics go to Lightning's CSV logger in
    ``output_dir/logs`` unless ``trainer_kwargs`` names another logger.

    Parameters
    ----------
    model
        The starting policy: a model name, a model folder, or the output of
        :func:`~sc_cello1.train.sft` (an adapter is merged into its base first).
    puzzles
        Training puzzles, each with ``answer``.
    output_dir
        Folder that receives the trained model, ``checkpoints/``, ``logs/`` and
        ``cello1_train.json``.
    config
        A :class:`~sc_cello1.train.GRPOConfig`; defaults are the authors' settings.
    eval_puzzles
        Held-out puzzles with answers, validated with greedy decoding every
        ``eval_steps`` training batches (and each epoch).
    trainer_kwargs
        Further :class:`lightning.Trainer` arguments: ``devices``, ``strategy``
        (``"ddp"``: data parallel, one process per device, each with its own
        ``per_device_train_batch_size``; sharded strategies such as FSDP or DeepSpeed are
        not supported and raise ``ValueError``), ``accelerator``, ``logger``,
        ``callbacks``, ... (not those that config owns).
    ckpt_path
        A Lightning checkpoint to resume from (default: ``output_dir/checkpoints/last.ckpt``
        if it exists and ``resume=True``).
    reward_fn
        A reward with trl's signature ``(completions, answer=..., **kwargs) -> list[float]``
        instead of the authors' (:func:`sc_cello1.metrics.cellpuzzles_reward`).
    **overrides
        Any :class:`~sc_cello1.train.GRPOConfig` field, e.g. ``num_generations=4,
        max_completion_length=64, max_steps=3``.

    Returns
    -------
    ``output_dir``, loadable as ``model=`` everywhere: with LoRA and ``merge=True``
    (default) the merged full policy and tokenizer at the top and the adapter under
    ``adapter/``; with ``merge=False`` only the adapter (not allowed when ``model`` is
    itself an adapter); with ``use_peft=False`` the full policy. Also ``checkpoints/``
    (Lightning, ``last.ckpt``; LoRA checkpoints hold only the adapter weights),
    ``logs/`` (Lightning's CSV logger) and ``cello1_train.json`` (configuration, base
    model provenance, per-step training metrics ``history`` and validation metrics
    ``val_history``), written last.

    Examples
    --------
    >>> out = cello1.train.grpo("runs/sft", train, output_dir="runs/grpo", eval_puzzles=test,
    ...                         trainer_kwargs={"devices": 8, "strategy": "ddp"})  # doctest: +SKIP
    """
    # Everything is validated before the model is loaded.
    cfg = make_config(GRPOConfig, config, overrides)
    puzzles = check_puzzles(puzzles)
    eval_list = None if eval_puzzles is None else check_puzzles(eval_puzzles, what="eval_puzzles")
    tkw = _check_trainer_kwargs(trainer_kwargs)
    out = check_output_dir(output_dir)
    from sc_cello1.models import resolve

    source = resolve(model)
    merge = output_merge(source, cfg)
    if reward_fn is not None and not callable(reward_fn):
        msg = f"reward_fn must be callable (completions, answer=..., **kwargs) -> list[float], got {type(reward_fn).__name__}."
        raise TypeError(msg)
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        msg = (
            f"ckpt_path {str(ckpt_path)!r} is not a file; pass a Lightning .ckpt or leave it None."
        )
        raise ValueError(msg)

    tok_dir = source.path
    if source.is_adapter and not (source.path / "tokenizer_config.json").is_file():
        from ._data import adapter_base

        tok_dir = Path(adapter_base(source.path))
    tokenizer = load_chat_tokenizer(tok_dir)
    from ._grpo_data import GRPODataModule, rl_records

    train_records = rl_records(puzzles, tokenizer, cfg.prompt_style)
    eval_records = None if eval_list is None else rl_records(eval_list, tokenizer, cfg.prompt_style)
    longest = max(
        len(tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]) for r in train_records
    )
    if longest > cfg.max_prompt_length:
        msg = (
            f"the longest prompt has {longest} tokens, over max_prompt_length={cfg.max_prompt_length}; "
            "raise max_prompt_length or build puzzles with fewer cells or genes."
        )
        raise ValueError(msg)

    import lightning as L

    start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    policy = _load_policy(source, cfg)
    module = grpo_module_class()(policy, tokenizer, cfg, reward_fn=reward_fn)

    data = GRPODataModule(train_records, eval_records, batch_size=cfg.puzzles_per_step)
    train_loader = data.train_dataloader()
    val_loader = data.val_dataloader() if eval_records else None

    trainer = _trainer(
        cfg, out, tkw, n_train_batches=len(train_loader), validate=val_loader is not None
    )

    if ckpt_path is None and cfg.resume and (out / "checkpoints" / "last.ckpt").is_file():
        ckpt_path = out / "checkpoints" / "last.ckpt"
        logger.info("resuming GRPO from %s", ckpt_path)
    trainer.fit(
        module,
        train_dataloaders=train_loader,
        val_dataloaders=val_loader,
        ckpt_path=None if ckpt_path is None else str(ckpt_path),
    )
    if trainer.is_global_zero:
        info = training_info(
            "grpo",
            source,
            cfg,
            len(puzzles),
            n_eval=0 if eval_list is None else len(eval_list),
            global_step=int(trainer.global_step),
            history=module.history,
            val_history=module.val_history,
        )
        write_outputs(module.model, tokenizer, out, merge=merge, info=info)
    logger.info(
        "GRPO: %d optimizer steps on %d puzzles, written to %s (%.1f s)",
        trainer.global_step,
        len(puzzles),
        out,
        time.perf_counter() - start,
    )
    return out


def _step_progress_bar(cfg: Any) -> Any:
    """Return a tqdm bar that counts the batches GRPO will really run, and says "Epoch N".

    Lightning's own bars count ``max_steps`` as batches (but one optimizer step takes
    ``gradient_accumulation_steps`` batches and runs ``num_iterations`` steps), and the
    rich one prints ``Epoch 0/-2`` when only ``max_steps`` bounds the run.
    """
    import math

    from lightning.pytorch.callbacks import TQDMProgressBar

    class StepProgressBar(TQDMProgressBar):
        @property
        def total_train_batches(self) -> int | float:
            trainer = self.trainer
            if trainer.max_epochs == -1 and trainer.max_steps is not None and trainer.max_steps > 0:
                steps = max(trainer.max_steps - trainer.global_step, 0)
                updates = math.ceil(steps / cfg.num_iterations)
                return min(trainer.num_training_batches, updates * cfg.gradient_accumulation_steps)
            return trainer.num_training_batches

    return StepProgressBar()


def __getattr__(name: str) -> Any:
    # Names that need Lightning, kept importable from here (their old home) lazily.
    if name == "GRPOModule":
        return grpo_module_class()
    if name in ("rl_records", "_collate", "GRPODataModule"):
        from . import _grpo_data

        return getattr(_grpo_data, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
