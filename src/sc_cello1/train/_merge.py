"""Merge a LoRA adapter into its base model (:func:`merge_lora`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sc_cello1._io import staged_into
from sc_cello1._logging import log_elapsed

from ._data import TRAIN_INFO, adapter_base, check_output_dir, load_model


def merge_lora(
    adapter_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    base_model: str | os.PathLike | None = None,
) -> Path:
    """Merge a LoRA/DoRA adapter into its base model and save a full transformers model.

    Parameters
    ----------
    adapter_dir
        Folder with ``adapter_config.json`` (e.g. the output of :func:`sc_cello1.train.sft`).
    output_dir
        Folder for the merged model and tokenizer (created; written atomically).
    base_model
        The base model folder or name, if not the ``base_model_name_or_path`` recorded
        in the adapter.

    Returns
    -------
    ``output_dir``, a model folder that :func:`sc_cello1.tl.annotate` and the trainers
    load as ``model=``.

    Examples
    --------
    >>> cello1.train.merge_lora("runs/sft", "runs/sft-merged")  # doctest: +SKIP
    """
    adapter = Path(adapter_dir).expanduser()
    if not (adapter / "adapter_config.json").is_file():
        msg = f"{str(adapter)!r} has no adapter_config.json; pass the folder of a LoRA adapter."
        raise ValueError(msg)
    base = str(base_model) if base_model is not None else adapter_base(adapter)
    from sc_cello1.models import resolve

    base_source = resolve(base)
    if base_source.is_adapter:
        msg = f"the base model {base!r} is itself an adapter; pass base_model= with a full model."
        raise ValueError(msg)
    out = check_output_dir(output_dir)
    if out.resolve() == adapter.resolve():
        msg = "output_dir must differ from adapter_dir; the adapter would be overwritten."
        raise ValueError(msg)

    from peft import PeftModel

    with log_elapsed("merged %s into %s", adapter, base):
        model, tokenizer = load_model(base_source)
        if (adapter / "tokenizer_config.json").is_file():
            from ._data import load_chat_tokenizer

            tokenizer = load_chat_tokenizer(adapter)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        stale = ("adapter_config.json", "adapter_model.safetensors")
        with staged_into(out, last=TRAIN_INFO, remove=stale) as tmp:
            merged.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            info = {"trainer": "merge_lora", "adapter": str(adapter.resolve()), "base_model": base}
            (tmp / TRAIN_INFO).write_text(json.dumps(info, indent=2))
    return out
