"""GRPO with the Cell-o1 reward, as a Lightning module, and the :func:`grpo` entry point.

The objective follows the authors' verl recipe: ``num_generations`` sampled
completions per puzzle, rewards from :func:`sc_cello1.metrics.reward`, advantages
normalised within each puzzle's group, the PPO clipped surrogate, and a KL penalty to
the frozen reference policy with the low-variance "k3" estimator, averaged over the
completion tokens of the batch.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sc_cello1._logging import logger, progress_disabled

from ._config import GRPOConfig, make_config
from ._data import (
    check_output_dir,
    check_puzzles,
    load_model,
    load_tokenizer,
    lora_config,
    output_merge,
    prompt_messages,
    resolve_model,
    training_info,
    write_outputs,
)
from ._generate import generate, render_prompts

if TYPE_CHECKING:
    import torch

    from sc_cello1.data import Puzzle

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


# ----------------------------------------------------------------------------- math


def group_advantages(
    rewards: torch.Tensor, num_generations: int, eps: float = 1e-6
) -> torch.Tensor:
    """GRPO advantages: each reward minus its group's mean, over the group's std + ``eps``.

    Rows are grouped by puzzle: rows ``[k * G, (k + 1) * G)`` are the ``G =
    num_generations`` samples of puzzle ``k``. The standard deviation is the unbiased
    one, as in verl's GRPO outcome advantage.
    """
    grouped = rewards.view(-1, num_generations)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)
    return ((grouped - mean) / (std + eps)).view(-1)


#: Bounds of the log-ratios before ``exp``, as in verl (``core_algos.py``): the PPO
#: ratio ``log_prob - old_log_prob`` and the k3 log-ratio ``ref - log_prob`` are clamped
#: to ``[-20, 20]``, the k3 value to ``[-10, 10]``.
LOG_RATIO_BOUND = 20.0
KL_BOUND = 10.0


def k3_kl(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    clamp: float = KL_BOUND,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token low-variance KL estimate ``exp(r) - r - 1`` with ``r = ref_logp - logp``.

    An unbiased, non-negative estimator of ``KL(policy || reference)`` from samples of
    the policy (Schulman's "k3"; verl's ``low_var_kl``). As in verl, ``r`` is clamped to
    ``[-20, 20]`` before ``exp`` (so the value and its gradient stay finite for any
    log-probabilities) and the estimate to ``[-clamp, clamp]`` (default 10). Where
    ``mask`` is 0 the estimate is 0 and no gradient flows, even from infinite or NaN
    log-probabilities there.
    """
    import torch

    log_ratio = ref_logp - logp
    if mask is not None:
        log_ratio = torch.where(mask.bool(), log_ratio, torch.zeros_like(log_ratio))
    log_ratio = torch.clamp(log_ratio, min=-LOG_RATIO_BOUND, max=LOG_RATIO_BOUND)
    kl = torch.exp(log_ratio) - log_ratio - 1
    return torch.clamp(kl, min=-clamp, max=clamp)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    epsilon: float = 0.2,
    beta: float = 0.001,
    clip_epsilon: float | None = None,
    kl_coef: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Compute the GRPO loss: clipped surrogate plus ``beta`` times the k3 KL, token-averaged.

    Per completion token ``t`` of row ``i`` with ratio ``rho = exp(logp - old_logp)``
    the surrogate is ``max(-A_i rho, -A_i clip(rho, 1 - epsilon, 1 + epsilon))``; the
    loss is its mean over the unmasked tokens of the batch plus ``beta`` times the mean
    :func:`k3_kl`. The log-ratio ``logp - old_logp`` is clamped to ``[-20, 20]``
    before ``exp`` (verl's bound), and masked tokens are removed with ``torch.where``
    before any arithmetic, so the loss and its gradient stay finite for extreme or
    non-finite log-probabilities at masked positions and for fully masked rows.

    Parameters
    ----------
    logp, old_logp
        Log-probabilities of the completion tokens under the current policy (with
        gradient) and the policy that sampled them, shape ``(batch, tokens)``.
    advantages
        One advantage per completion, shape ``(batch,)``.
    mask
        1 for completion tokens, 0 for padding, shape ``(batch, tokens)``.
    ref_logp
        Log-probabilities under the reference policy; ``None`` skips the KL term.
    epsilon
        Clip range of the ratio ``exp(logp - old_logp)`` (trl's name).
    beta
        Weight of the KL term (trl's name).
    clip_epsilon, kl_coef
        Deprecated names of ``epsilon`` and ``beta`` (FutureWarning).

    Returns
    -------
    ``(loss, stats)``; ``stats`` holds detached ``policy_loss``, ``kl`` and
    ``clip_fraction`` (share of tokens where the clipped term was taken).
    """
    import warnings

    import torch

    if clip_epsilon is not None or kl_coef is not None:
        warnings.warn(
            "grpo_loss: clip_epsilon and kl_coef are deprecated; use epsilon and beta.",
            FutureWarning,
            stacklevel=2,
        )
        epsilon = epsilon if clip_epsilon is None else clip_epsilon
        beta = beta if kl_coef is None else kl_coef
    keep = mask.bool()
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    n_tokens = keep.sum().to(logp.dtype).clamp(min=1.0)
    adv = advantages.to(logp.dtype).unsqueeze(1)
    log_ratio = torch.where(keep, logp - old_logp, zero)
    ratio = torch.exp(torch.clamp(log_ratio, min=-LOG_RATIO_BOUND, max=LOG_RATIO_BOUND))
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon)
    per_token = torch.maximum(unclipped, clipped)
    policy_loss = torch.where(keep, per_token, zero).sum() / n_tokens
    clip_fraction = (keep & (clipped > unclipped)).sum().to(logp.dtype) / n_tokens
    loss = policy_loss
    kl = zero
    if ref_logp is not None:
        kl = torch.where(keep, k3_kl(logp, ref_logp, mask=keep), zero).sum() / n_tokens
        loss = loss + beta * kl
    stats = {
        "policy_loss": policy_loss.detach(),
        "kl": kl.detach(),
        "clip_fraction": clip_fraction.detach(),
    }
    return loss, stats


def token_log_probs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Log-probabilities of the last ``n_completion`` tokens of each (left-padded) row."""
    import torch

    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_completion + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1, :]
    targets = input_ids[:, -n_completion:]
    # log_softmax of the chosen token, one row at a time in float32: peak memory is one
    # row of (tokens x vocabulary) floats, not the whole batch (as trl's selective_log_softmax).
    rows = []
    for row_logits, row_targets in zip(logits, targets, strict=True):
        row = row_logits.float()
        if temperature != 1.0:
            row = row / temperature
        chosen = torch.gather(row, 1, row_targets.unsqueeze(-1)).squeeze(-1)
        rows.append(chosen - torch.logsumexp(row, dim=-1))
    return torch.stack(rows)


# ----------------------------------------------------------------------------- data


def _collate(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def rl_records(
    puzzles: Sequence[Puzzle], tokenizer: Any, prompt_style: str
) -> list[dict[str, Any]]:
    """One ``{"prompt", "answer"}`` record per puzzle; the prompt rendered by the chat template."""
    prompts = render_prompts(tokenizer, [prompt_messages(p, prompt_style) for p in puzzles])
    return [
        {"prompt": t, "answer": list(p.answer or [])} for t, p in zip(prompts, puzzles, strict=True)
    ]


# ----------------------------------------------------------------------------- module


def _make_module_class():
    import lightning as L
    import torch

    from sc_cello1.metrics import evaluate, score_completion

    class GRPOModule(L.LightningModule):
        """GRPO on CellPuzzles as a :class:`lightning.LightningModule`.

        Each training step samples ``config.num_generations`` completions for each of
        ``config.puzzles_per_step`` puzzles from the current policy (the rollout engine
        of ``config.rollout``: transformers ``generate``, or a colocated vLLM engine that
        receives the policy weights, LoRA merged, before the first rollout after each
        optimizer step), scores them with :func:`sc_cello1.metrics.reward`, normalises
        the rewards within each puzzle's group and stores the batch. Every
        ``gradient_accumulation_steps`` batches, :meth:`update` runs ``num_iterations``
        optimizer steps on the stored batches with :func:`grpo_loss` (the sampling
        policy's log-probabilities are computed once, before the first step, so that
        with ``num_iterations > 1`` the importance ratio and its clip take effect).
        Optimisation is manual (``automatic_optimization = False``): accumulation and
        gradient clipping (``max_grad_norm``) happen here, not in the Trainer. With a
        peft model the reference policy is the model with its adapters disabled (no
        second copy); otherwise a frozen copy of the initial model. Lightning provides
        devices, data parallelism (``strategy="ddp"``), precision, checkpoints and
        logging; each step logs ``train/reward``, ``train/batch_accuracy``,
        ``train/cell_accuracy``, ``train/format_rate``, ``train/response_length`` and,
        on steps that update, ``train/kl``, ``train/clip_fraction`` and ``train/loss``
        (means over the iterations); validation logs ``val/cell_accuracy``,
        ``val/batch_accuracy``, ``val/format_rate`` and ``val/mean_reward`` from
        :func:`sc_cello1.metrics.evaluate` on greedy completions.

        Parameters
        ----------
        model
            A transformers causal LM, or a peft model (LoRA policy).
        tokenizer
            Its tokenizer, with a chat template.
        config
            A :class:`~sc_cello1.train.GRPOConfig`.
        reward_fn
            A reward with trl's signature ``(completions, answer=..., **kwargs) ->
            list[float]``; default :func:`sc_cello1.metrics.cellpuzzles_reward` (the
            authors' reward). The logged accuracies always use the paper's scoring.
        rollout_engine
            An engine with ``generate(model, prompts, n=, max_tokens=, temperature=,
            top_p=)`` and ``sync_weights(model)``; default: built from ``config.rollout``
            when training starts.

        Examples
        --------
        >>> module = cello1.train.GRPOModule(model, tokenizer, cello1.train.GRPOConfig())  # doctest: +SKIP
        >>> lightning.Trainer(max_steps=10).fit(module, loader)  # doctest: +SKIP
        """

        def __init__(
            self,
            model: Any,
            tokenizer: Any,
            config: GRPOConfig,
            reward_fn: Any = None,
            rollout_engine: Any = None,
        ) -> None:
            super().__init__()
            if not isinstance(config, GRPOConfig):
                msg = f"config must be a GRPOConfig, got {type(config).__name__}."
                raise TypeError(msg)
            if reward_fn is not None and not callable(reward_fn):
                msg = f"reward_fn must be callable (completions, answer=..., **kwargs) -> list[float], got {type(reward_fn).__name__}."
                raise TypeError(msg)
            # Several updates per rollout batch and accumulation over rollout batches are
            # done here, so Lightning's automatic optimisation is off.
            self.automatic_optimization = False
            self.reward_fn = reward_fn
            self.model = model
            self.tokenizer = tokenizer
            self.config = config
            self.is_peft = hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
            # A frozen reference for full-parameter training, kept out of the module tree so
            # that it is neither trained nor written into checkpoints.
            ref = None
            if not self.is_peft and config.beta > 0:
                ref = copy.deepcopy(model).eval().requires_grad_(False)
            object.__setattr__(self, "_ref_model", ref)
            object.__setattr__(self, "rollout_engine", rollout_engine)
            # The engine holds the starting weights until the first push.
            self._engine_stale = True
            # LoRA checkpoints hold only the trainable weights.
            self.strict_loading = not self.is_peft
            self.history: list[dict[str, float]] = []
            self.val_history: list[dict[str, Any]] = []
            self._val_texts: list[str] = []
            self._val_answers: list[list[str]] = []
            self._buffer: list[dict[str, Any]] = []

        # -- reference policy and rollout engine
        def on_fit_start(self) -> None:
            if self._ref_model is not None:
                self._ref_model.to(self.device)
            if self.rollout_engine is None:
                from ._rollout import make_rollout_engine

                engine = make_rollout_engine(
                    self.config, self.model, self.tokenizer, world_size=self.trainer.world_size
                )
                object.__setattr__(self, "rollout_engine", engine)
            self._engine_stale = True
            self._buffer = []

        def reference_log_probs(self, input_ids, attention_mask, n_completion):
            """Token log-probabilities under the reference policy (no gradient)."""
            with torch.no_grad():
                if self.is_peft:
                    with self.model.disable_adapter():
                        return token_log_probs(
                            self.model,
                            input_ids,
                            attention_mask,
                            n_completion,
                            self.config.temperature,
                        )
                return token_log_probs(
                    self._ref_model,
                    input_ids,
                    attention_mask,
                    n_completion,
                    self.config.temperature,
                )

        # -- rollouts
        def rollout(self, prompts: list[str]):
            """Sample ``num_generations`` completions per rendered prompt from the current policy.

            Returns ``(prompt_ids, prompt_mask, completion_ids, completion_mask, texts)``
            as :func:`sc_cello1.train._generate.generate`, rows grouped by prompt. The
            rollout engine (transformers or a colocated vLLM engine) first receives the
            policy weights if an optimizer step changed them since the last rollout.
            """
            cfg = self.config
            engine: Any = self.rollout_engine
            if engine is None:  # used outside trainer.fit
                from ._rollout import TransformersRollout

                engine = TransformersRollout(self.tokenizer)
            if self._engine_stale:
                engine.sync_weights(self.model)
                self._engine_stale = False
            return engine.generate(
                self.model,
                prompts,
                n=cfg.num_generations,
                max_tokens=cfg.max_completion_length,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
            )

        def make_rollout_batch(self, batch: list[dict[str, Any]]):
            """Rollouts of a batch of records, rewarded, with advantages and old/reference log-probs.

            Returns ``(rollout_batch, metrics)``: the tensors an update needs and the
            rollout metrics (reward, accuracies, format rate, response length).
            """
            cfg = self.config
            G = cfg.num_generations
            prompts = [b["prompt"] for b in batch]
            prompt_ids, prompt_mask, comp_ids, comp_mask, texts = self.rollout(prompts)
            gold = [b["answer"] for b in batch for _ in range(G)]
            scores = [score_completion(t, g) for t, g in zip(texts, gold, strict=True)]
            if self.reward_fn is None:
                values = [s["reward"] for s in scores]
            else:
                values = [float(v) for v in self.reward_fn(texts, answer=gold)]
                if len(values) != len(texts):
                    msg = f"reward_fn returned {len(values)} rewards for {len(texts)} completions."
                    raise ValueError(msg)
            rewards = torch.tensor(values, dtype=torch.float32, device=self.device)
            input_ids = torch.cat([prompt_ids, comp_ids], dim=1).to(self.device)
            attention_mask = torch.cat([prompt_mask, comp_mask], dim=1).to(self.device)
            n_comp = comp_ids.shape[1]
            rb = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "completion_mask": comp_mask.to(self.device),
                "n_completion": n_comp,
                "advantages": group_advantages(rewards, G),
                "old_logp": None,
                "ref_logp": None,
            }
            if cfg.num_iterations > 1:
                # The sampling policy's log-probabilities, before any update on this batch.
                with torch.no_grad():
                    rb["old_logp"] = torch.cat(
                        [
                            token_log_probs(self.model, i, m, n_comp, cfg.temperature)
                            for i, m in self._chunks(input_ids, attention_mask)
                        ]
                    )
            if cfg.beta > 0:
                rb["ref_logp"] = torch.cat(
                    [
                        self.reference_log_probs(i, m, n_comp)
                        for i, m in self._chunks(input_ids, attention_mask)
                    ]
                )
            n = len(scores)
            n_cells = sum(s["n_cells"] for s in scores)
            metrics = {
                "train/reward": float(rewards.mean()),
                "train/reward_std": float(rewards.std()) if n > 1 else 0.0,
                "train/batch_accuracy": sum(bool(s["exact"]) for s in scores) / n,
                "train/cell_accuracy": sum(s["correct"] for s in scores) / max(n_cells, 1),
                "train/format_rate": sum(bool(s["valid"]) for s in scores) / n,
                "train/response_length": float(comp_mask.sum(dim=1).float().mean()),
            }
            return rb, metrics

        def update(self, buffer: list[dict[str, Any]]) -> dict[str, float]:
            """``num_iterations`` optimizer steps on the buffered rollout batches.

            Each step accumulates the gradient of :func:`grpo_loss` over the buffered
            batches (each weighted ``1 / len(buffer)``), clips it to ``max_grad_norm``
            and steps AdamW. With ``num_iterations=1`` the ratio is 1 (the sampling
            policy is the current one); with more, it is taken against the log-probs
            stored at rollout time. Returns the mean loss, KL and clip fraction.
            """
            cfg = self.config
            opt: Any = self.optimizers()  # one optimizer
            totals = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0}
            count = 0
            max_steps = self.trainer.max_steps if self._trainer is not None else -1
            for _ in range(cfg.num_iterations):
                if max_steps > 0 and self.trainer.global_step >= max_steps:
                    break
                for rb in buffer:
                    n_total = rb["completion_mask"].sum().clamp(min=1)
                    for (rows,) in self._chunks(torch.arange(rb["input_ids"].shape[0])):
                        mask = rb["completion_mask"][rows]
                        logp = token_log_probs(
                            self.model,
                            rb["input_ids"][rows],
                            rb["attention_mask"][rows],
                            rb["n_completion"],
                            cfg.temperature,
                        )
                        old = logp.detach() if rb["old_logp"] is None else rb["old_logp"][rows]
                        ref = None if rb["ref_logp"] is None else rb["ref_logp"][rows]
                        loss, stats = grpo_loss(
                            logp,
                            old,
                            rb["advantages"][rows],
                            mask,
                            ref_logp=ref,
                            epsilon=cfg.epsilon,
                            beta=cfg.beta,
                        )
                        # Token mean over the whole batch: each chunk weighted by its tokens.
                        share = float(mask.sum() / n_total)
                        self.manual_backward(loss * share / len(buffer))
                        totals["loss"] += float(loss.detach()) * share
                        totals["kl"] += float(stats["kl"]) * share
                        totals["clip_fraction"] += float(stats["clip_fraction"]) * share
                    count += 1
                if cfg.max_grad_norm:
                    self.clip_gradients(
                        opt, gradient_clip_val=cfg.max_grad_norm, gradient_clip_algorithm="norm"
                    )
                opt.step()
                opt.zero_grad(set_to_none=True)
                self._engine_stale = True
            return {f"train/{k}": v / max(count, 1) for k, v in totals.items()}

        def _chunks(self, *tensors):
            """Split tensors along the first dimension into ``micro_batch_size`` rows."""
            size = self.config.micro_batch_size or tensors[0].shape[0]
            for start in range(0, tensors[0].shape[0], size):
                yield tuple(t[start : start + size] for t in tensors)

        # -- training
        def training_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
            rb, metrics = self.make_rollout_batch(batch)
            self._buffer.append(rb)
            n_batches = self.trainer.num_training_batches
            last = isinstance(n_batches, int) and batch_idx + 1 >= n_batches
            if len(self._buffer) >= self.config.gradient_accumulation_steps or last:
                buffer, self._buffer = self._buffer, []
                metrics.update(self.update(buffer))
            n = len(batch) * self.config.num_generations
            self.log_dict(metrics, on_step=True, on_epoch=False, batch_size=n)
            self.log("reward", metrics["train/reward"], prog_bar=True, logger=False, batch_size=n)
            self.history.append({"step": int(self.global_step), "batch": int(batch_idx), **metrics})

        # -- validation
        def on_validation_epoch_start(self) -> None:
            self._val_texts, self._val_answers = [], []

        def validation_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
            max_new = self.config.eval_max_completion_length or self.config.max_completion_length
            texts = generate(
                self.model,
                self.tokenizer,
                [b["prompt"] for b in batch],
                max_new_tokens=max_new,
                do_sample=False,
            )[4]
            self._val_texts += texts
            self._val_answers += [b["answer"] for b in batch]

        def on_validation_epoch_end(self) -> None:
            if not self._val_texts:
                return
            result = evaluate(self._val_texts, self._val_answers)
            keys = ("cell_accuracy", "batch_accuracy", "format_rate", "mean_reward", "uniqueness")
            self.log_dict({f"val/{k}": float(result[k]) for k in keys}, sync_dist=True)
            self.val_history.append({"step": int(self.global_step), **{k: result[k] for k in keys}})
            logger.info(
                "GRPO validation at step %d: cell accuracy %.3f, batch accuracy %.3f, format rate %.3f",
                self.global_step,
                result["cell_accuracy"],
                result["batch_accuracy"],
                result["format_rate"],
            )

        # -- optimisation and checkpoints
        def configure_optimizers(self):
            params = [p for p in self.model.parameters() if p.requires_grad]
            return torch.optim.AdamW(
                params, lr=self.config.learning_rate, weight_decay=self.config.weight_decay
            )

        def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            if self.is_peft:
                trainable = {k for k, p in self.named_parameters() if p.requires_grad}
                checkpoint["state_dict"] = {
                    k: v for k, v in checkpoint["state_dict"].items() if k in trainable
                }
            checkpoint["cello1_history"] = {"train": self.history, "val": self.val_history}

        def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            hist = checkpoint.get("cello1_history", {})
            self.history = list(hist.get("train", []))
            self.val_history = list(hist.get("val", []))

    GRPOModule.__module__ = __name__
    GRPOModule.__qualname__ = "GRPOModule"
    return GRPOModule


_MODULE_CLASS: type | None = None


def grpo_module_class() -> type:
    """Return the :class:`GRPOModule` class (built on first use so that lightning loads lazily)."""
    global _MODULE_CLASS
    if _MODULE_CLASS is None:
        _MODULE_CLASS = _make_module_class()
    return _MODULE_CLASS


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
    source = resolve_model(model)
    merge = output_merge(source, cfg)
    if reward_fn is not None and not callable(reward_fn):
        msg = f"reward_fn must be callable (completions, answer=..., **kwargs) -> list[float], got {type(reward_fn).__name__}."
        raise TypeError(msg)
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        msg = (
            f"ckpt_path {str(ckpt_path)!r} is not a file; pass a Lightning .ckpt or leave it None."
        )
        raise ValueError(msg)

    from sc_cello1._logging import log_elapsed

    tok_dir = source.path
    if source.is_adapter and not (source.path / "tokenizer_config.json").is_file():
        from ._data import adapter_base

        tok_dir = Path(adapter_base(source.path))
    tokenizer = load_tokenizer(tok_dir)
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
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    start = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
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
    module = grpo_module_class()(policy, tokenizer, cfg, reward_fn=reward_fn)

    # a list of records is a map-style dataset (DataLoader takes any sequence)
    train_loader: DataLoader[Any] = DataLoader(
        cast("Any", train_records),
        batch_size=cfg.puzzles_per_step,
        shuffle=True,
        collate_fn=_collate,
        drop_last=False,
    )
    val_loader: DataLoader[Any] | None = None
    if eval_records:
        val_loader = DataLoader(
            cast("Any", eval_records), batch_size=max(cfg.puzzles_per_step, 8), collate_fn=_collate
        )

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
    if not progress_disabled() and not any(
        type(c).__name__.endswith("ProgressBar") for c in callbacks
    ):
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
    if val_loader is None:
        trainer_args["limit_val_batches"] = 0
    elif cfg.eval_steps:
        trainer_args["val_check_interval"] = min(cfg.eval_steps, len(train_loader))
    trainer_args.update(tkw)
    trainer = L.Trainer(**trainer_args)

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
    if name == "GRPOModule":
        return grpo_module_class()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
