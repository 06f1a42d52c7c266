"""Batched generation with transformers, used for GRPO rollouts and validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def render_prompts(tokenizer: Any, messages: Sequence[list[dict[str, str]]]) -> list[str]:
    """Apply the chat template (with the generation prompt) to each message list."""
    return [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        for m in messages
    ]


def encode_prompts(tokenizer: Any, prompts: Sequence[str], device: Any = None):
    """Left-padded ``input_ids`` and ``attention_mask`` of rendered prompts.

    The chat template already holds any special tokens, so none are added.
    """
    tokenizer.padding_side = "left"
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    if device is not None:
        enc = {k: v.to(device) for k, v in enc.items()}
    return enc["input_ids"], enc["attention_mask"]


def completion_mask(completion_ids: Any, eos_ids: Sequence[int], pad_id: int | None):
    """1 for the tokens of each completion up to and including its first end token, else 0."""
    import torch

    is_eos = torch.zeros_like(completion_ids, dtype=torch.bool)
    for e in eos_ids:
        is_eos |= completion_ids == e
    n = completion_ids.shape[1]
    idx = torch.arange(n, device=completion_ids.device).expand_as(completion_ids)
    first = torch.where(is_eos, idx, torch.full_like(idx, n)).min(dim=1, keepdim=True).values
    return (idx <= first).long()


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Return the token ids that end a completion (the generation config's, else the tokenizer's EOS)."""
    ids = getattr(model.generation_config, "eos_token_id", None)
    if ids is None:
        ids = tokenizer.eos_token_id
    if ids is None:
        return []
    return [int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])]


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    num_return_sequences: int = 1,
    **generate_kwargs: Any,
):
    """Generate completions of rendered prompts.

    ``generate_kwargs`` go to ``model.generate`` (e.g. ``min_new_tokens`` for fixed-length
    benchmarks).

    Returns
    -------
    ``(prompt_ids, prompt_mask, completion_ids, completion_mask, texts)``: the prompt
    tensors repeated ``num_return_sequences`` times (rows grouped by prompt), the
    generated tokens, the mask of the tokens up to the first end token, and the decoded
    completions.
    """
    import torch

    device = next(model.parameters()).device
    input_ids, attention_mask = encode_prompts(tokenizer, prompts, device)
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "num_return_sequences": num_return_sequences,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    kwargs.update(generate_kwargs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    finally:
        model.train(was_training)
    prompt_len = input_ids.shape[1]
    completion_ids = out[:, prompt_len:]
    mask = completion_mask(completion_ids, eos_token_ids(model, tokenizer), tokenizer.pad_token_id)
    texts = [
        tokenizer.decode(ids[m.bool()], skip_special_tokens=True).strip()
        for ids, m in zip(completion_ids, mask, strict=True)
    ]
    prompt_ids = input_ids.repeat_interleave(num_return_sequences, dim=0)
    prompt_mask = attention_mask.repeat_interleave(num_return_sequences, dim=0)
    return prompt_ids, prompt_mask, completion_ids, mask, texts


def generate_answers(
    model: Any,
    tokenizer: Any,
    puzzles: Sequence[Any],
    *,
    prompt_style: str = "eval",
    max_new_tokens: int = 256,
    batch_size: int = 8,
) -> list[str]:
    """Greedy completions for puzzles, in batches (for evaluation before/after training)."""
    from tqdm.auto import tqdm

    from sc_cello1._logging import progress_disabled

    texts: list[str] = []
    starts = range(0, len(puzzles), batch_size)
    for start in tqdm(starts, desc="generating", disable=progress_disabled()):
        chunk = puzzles[start : start + batch_size]
        prompts = render_prompts(tokenizer, [p.messages(style=prompt_style) for p in chunk])
        texts += generate(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, do_sample=False
        )[4]
    return texts
