"""In-process generation with transformers (CPU or GPU), batched with left padding."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sc_cello1._logging import log_elapsed, logger, progress_bar

from ._base import (
    DEFAULT_MAX_NEW_TOKENS,
    AnswerConstraint,
    Generation,
    check_generate_args,
)
from ._resolve import model_provenance

if TYPE_CHECKING:
    from sc_cello1.models import ResolvedModel

_INSTALL = "pip install 'sc-cello1[llm]'"


#: Seconds a batch decodes before its step progress bar appears.
STEP_BAR_DELAY = 3.0


class _StepCounter:
    """A logits processor that changes nothing and advances a progress bar per step."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.bar.update(1)
        return scores


class TransformersBackend:
    """Chat generation with a transformers causal LM, in this process.

    Prompts are rendered with the tokenizer's chat template (``add_generation_prompt``),
    sorted by length and run in batches with left padding. Greedy when
    ``temperature == 0``. Optional constrained decoding keeps every answer a valid
    permutation of the candidates (see :class:`AnswerConstraint`).

    Parameters
    ----------
    model
        A registered model name, a local model folder, a ``.gguf`` file, or a
        :class:`~sc_cello1.models.ResolvedModel` (loaded as it is, not resolved again).
    device_map
        Passed to ``from_pretrained`` (``"auto"`` spreads a model over GPUs). ``None``:
        the first GPU if there is one, else the CPU.
    dtype
        Weight dtype: ``"auto"`` is bfloat16 on GPU and float32 on CPU; or
        ``"float32"``, ``"bfloat16"``, ``"float16"``.
    batch_size
        Prompts per call of ``model.generate`` (each with ``n`` rows).
    attn_implementation
        Passed to ``from_pretrained`` (e.g. ``"sdpa"``, ``"flash_attention_2"``).
    trust_remote_code
        Passed to ``from_pretrained``.
    generation_kwargs
        Extra arguments for every ``model.generate`` call (e.g. ``{"min_new_tokens": 64}``
        to benchmark a fixed output length, or ``{"top_p": 0.95}``).

    Examples
    --------
    >>> backend = cello1.inference.TransformersBackend("path/to/model")  # doctest: +SKIP
    >>> out = backend.generate([[{"role": "user", "content": "Hi"}]], max_new_tokens=8)  # doctest: +SKIP
    """

    name = "transformers"

    def __init__(
        self,
        model: str | os.PathLike | ResolvedModel,
        *,
        device_map: str | dict | None = None,
        dtype: str = "auto",
        batch_size: int = 8,
        attn_implementation: str | None = None,
        trust_remote_code: bool = False,
        generation_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            msg = f"batch_size={batch_size!r} must be an integer >= 1."
            raise ValueError(msg)
        if dtype not in ("auto", "float32", "bfloat16", "float16"):
            msg = (
                f"dtype={dtype!r} is not supported; use 'auto', 'float32', 'bfloat16' or 'float16'."
            )
            raise ValueError(msg)
        if generation_kwargs is not None and not isinstance(generation_kwargs, dict):
            msg = "generation_kwargs must be a dict of model.generate arguments."
            raise TypeError(msg)
        from sc_cello1.models import resolve

        resolved = resolve(model)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - depends on the environment
            e.add_note(f"The transformers backend needs torch and transformers: {_INSTALL}")
            raise
        self.resolved = resolved
        self.batch_size = batch_size
        self.generation_kwargs = dict(generation_kwargs or {})
        cuda = torch.cuda.is_available()
        if dtype == "auto":
            dtype = "bfloat16" if cuda else "float32"
        self.dtype = dtype
        if device_map is None:
            device_map = "cuda:0" if cuda else "cpu"
        self.device_map = device_map
        with log_elapsed("loaded %s with transformers", resolved.name):
            self.tokenizer = AutoTokenizer.from_pretrained(
                resolved.path, trust_remote_code=trust_remote_code
            )
            kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "device_map": device_map}
            if attn_implementation is not None:
                kwargs["attn_implementation"] = attn_implementation
            self.model = AutoModelForCausalLM.from_pretrained(
                resolved.path, trust_remote_code=trust_remote_code, **kwargs
            )
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_token_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        for e in eos if isinstance(eos, list | tuple) else [eos]:
            if e is not None and int(e) not in ids:
                ids.append(int(e))
        return ids

    @property
    def device(self) -> str:
        """Device of the model's first parameters."""
        return str(next(self.model.parameters()).device)

    def provenance(self) -> dict[str, Any]:
        """Describe what produced the completions: backend, model, revision, path, dtype, device."""
        import transformers

        return {
            "backend": self.name,
            **model_provenance(self.resolved),
            "dtype": self.dtype,
            "device": self.device,
            "transformers": transformers.__version__,
            "generation_kwargs": self.generation_kwargs,
        }

    def render(self, messages: list[dict[str, str]]) -> str:
        """Render the prompt text of one conversation (chat template, generation prompt added)."""
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return str(text)

    def generate(
        self,
        messages: list[list[dict[str, str]]],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int | None = None,
        constraints: Sequence[AnswerConstraint | None] | None = None,
        min_new_tokens: int | None = None,
    ) -> list[list[Generation]]:
        """Generate ``n`` completions per conversation; see :class:`~sc_cello1.inference.Backend`.

        ``min_new_tokens`` (this backend only) suppresses the end of sequence before that
        many tokens, e.g. to benchmark a fixed output length.
        """
        check_generate_args(
            messages,
            n=n,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            constraints=constraints,
        )
        prompts = [self.render(m) for m in messages]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[list[Generation] | None] = [None] * len(prompts)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for b, idx in enumerate(
            progress_bar(batches, desc="generate", disable=len(batches) < 2, leave=False)
        ):
            cons = None if constraints is None else [constraints[i] for i in idx]
            gens = self._generate_batch(
                [prompts[i] for i in idx],
                n=n,
                temperature=temperature,
                max_new_tokens=max_new_tokens,
                seed=None if seed is None else seed + b,
                constraints=cons,
                min_new_tokens=min_new_tokens,
            )
            for i, g in zip(idx, gens, strict=True):
                out[i] = g
        return out  # type: ignore[return-value]

    def _generate_batch(
        self,
        prompts: list[str],
        *,
        n: int,
        temperature: float,
        max_new_tokens: int,
        seed: int | None,
        constraints: list[AnswerConstraint | None] | None,
        min_new_tokens: int | None,
    ) -> list[list[Generation]]:
        import torch
        from transformers import LogitsProcessorList

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        prompt_len = enc["input_ids"].shape[1]
        # greedy decoding is deterministic: one row per prompt, copied n times below
        copies, n = (n, 1) if temperature == 0 else (1, n)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "num_return_sequences": n,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.eos_token_ids,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        kwargs.update(self.generation_kwargs)
        if min_new_tokens:
            kwargs["min_new_tokens"] = min_new_tokens
        if constraints is not None and any(c is not None for c in constraints):
            from ._constrained import THINK_OPEN, AnswerLogitsProcessor

            rows = [c for c in constraints for _ in range(n)]
            ends = [p.rstrip().endswith(THINK_OPEN) for p in prompts for _ in range(n)]
            kwargs["logits_processor"] = LogitsProcessorList(
                [
                    AnswerLogitsProcessor(
                        self.tokenizer,
                        rows,
                        prompt_length=prompt_len,
                        max_new_tokens=max_new_tokens,
                        eos_token_ids=self.eos_token_ids,
                        prompt_ends_in_think=ends,
                    )
                ]
            )
        if seed is not None:
            torch.manual_seed(seed)
        start = time.perf_counter()
        # A bar over decoding steps, so a batch that takes minutes shows it moves.
        steps = progress_bar(
            total=max_new_tokens, desc="decoding", unit="step", leave=False, delay=STEP_BAR_DELAY
        )
        processors = kwargs.get("logits_processor") or LogitsProcessorList()
        kwargs["logits_processor"] = LogitsProcessorList([*processors, _StepCounter(steps)])
        try:
            with torch.inference_mode():
                seqs = self.model.generate(**enc, **kwargs)
        finally:
            steps.close()
        new = seqs[:, prompt_len:].tolist()
        eos = set(self.eos_token_ids)
        pad = self.tokenizer.pad_token_id
        gens: list[Generation] = []
        total = 0
        for ids in new:
            stop = next((j for j, t in enumerate(ids) if t in eos), None)
            if stop is None:
                body = [t for t in ids if t != pad] if pad not in eos else ids
                n_tok, reason = len(body), "length"
            else:
                body, n_tok, reason = ids[:stop], stop + 1, "stop"
            total += n_tok
            text = str(self.tokenizer.decode(body, skip_special_tokens=True))
            gens.append(Generation(text=text, reasoning=None, finish_reason=reason, n_tokens=n_tok))
        logger.debug(
            "generated %d tokens for %d prompts x %d in %.1f s",
            total,
            len(prompts),
            n,
            time.perf_counter() - start,
        )
        if copies > 1:
            return [[replace(gens[i]) for _ in range(copies)] for i in range(len(prompts))]
        return [gens[i * n : (i + 1) * n] for i in range(len(prompts))]
