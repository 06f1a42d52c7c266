"""The training plan of GRPO: :class:`GRPOModule`, a :class:`lightning.LightningModule`.

Rollouts, rewards, advantages, the manual optimisation of :func:`grpo_loss`, validation
and checkpoints. Imports Lightning and torch at module level: imported only when
training starts or on first access of ``cello1.train.GRPOModule``, never by ``import
sc_cello1``.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch

from sc_cello1._logging import logger
from sc_cello1.metrics import evaluate, score_completion

from ._generate import generate
from ._grpo_config import GRPOConfig
from ._grpo_loss import group_advantages, grpo_loss, token_log_probs


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

    #: Whether the module is in training mode, torch's flag (:meth:`torch.nn.Module.train`
    #: and ``eval()`` set it, and Lightning calls them); declared here so that the class
    #: page that lists it documents it.
    training: bool

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
        as ``sc_cello1.train._generate.generate``, rows grouped by prompt. The
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
