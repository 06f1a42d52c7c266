"""Input checks, model resolution and loading, and the training records of puzzles.

Everything here that validates runs before any model is loaded.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sc_cello1._io import staged_into
from sc_cello1._logging import logger

if TYPE_CHECKING:
    from sc_cello1.data import Puzzle
    from sc_cello1.models import ResolvedModel

#: Written last into an output directory: its presence marks the output complete.
TRAIN_INFO = "cello1_train.json"


def check_puzzles(puzzles: Any, *, what: str = "puzzles", need_target: bool = True) -> list[Puzzle]:
    """Check a list of puzzles for training; returns it as a list.

    Raises
    ------
    TypeError
        If ``puzzles`` is not a sequence of :class:`~sc_cello1.data.Puzzle`.
    ValueError
        If it is empty, or a puzzle has no answer (``need_target``).
    """
    from sc_cello1.data import Puzzle

    if isinstance(puzzles, Puzzle):
        puzzles = [puzzles]
    if isinstance(puzzles, (str, bytes)) or not isinstance(puzzles, Sequence):
        msg = (
            f"`{what}` must be a list of cello1.data.Puzzle, got {type(puzzles).__name__}; "
            "build them with cello1.data.build_puzzles or read them with cello1.data.read_puzzles."
        )
        raise TypeError(msg)
    puzzles = list(puzzles)
    if not puzzles:
        msg = f"`{what}` is empty: training needs at least one puzzle."
        raise ValueError(msg)
    for i, p in enumerate(puzzles):
        if not isinstance(p, Puzzle):
            msg = f"`{what}[{i}]` is a {type(p).__name__}, not a cello1.data.Puzzle."
            raise TypeError(msg)
    if need_target:
        missing = [i for i, p in enumerate(puzzles) if p.answer is None]
        if missing:
            msg = (
                f"{len(missing)} of {len(puzzles)} `{what}` have no answer (first: index {missing[0]}); "
                "training needs the true cell types: build puzzles from annotated data "
                "(cell_type_key=...) or drop the unlabelled ones."
            )
            raise ValueError(msg)
    return puzzles


def check_output_dir(output_dir: str | os.PathLike) -> Path:
    """Create ``output_dir`` if needed and check that it is a writable folder."""
    if output_dir is None or str(output_dir) == "":
        msg = "`output_dir` is required: the folder that receives the trained model."
        raise ValueError(msg)
    path = Path(output_dir).expanduser()
    if path.exists() and not path.is_dir():
        msg = f"output_dir {str(path)!r} exists and is not a folder; pass a folder path."
        raise ValueError(msg)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as e:
        msg = f"output_dir {str(path)!r} is not writable ({e.strerror or e}); pass a folder you can write to."
        raise ValueError(msg) from e
    return path


def resolve_model(model: Any) -> ResolvedModel:
    """Resolve ``model`` with :func:`sc_cello1.models.resolve` (deprecated here; use that).

    .. deprecated:: 0.1
        The trainers call :func:`sc_cello1.models.resolve`, which also recognises a LoRA
        adapter folder (:attr:`~sc_cello1.models.ResolvedModel.is_adapter`).
    """
    import warnings

    from sc_cello1.models import resolve

    warnings.warn(
        "sc_cello1.train._data.resolve_model is deprecated; use sc_cello1.models.resolve.",
        FutureWarning,
        stacklevel=2,
    )
    return resolve(model)


def output_merge(source: ResolvedModel, config: Any) -> bool:
    """Whether to write a merged model (``config.merge`` with LoRA); checks the combination.

    A model that is itself an adapter is merged into its base in memory, so a new adapter
    saved on its own would name a base folder that lacks the first adapter's weights.

    Raises
    ------
    ValueError
        If ``merge=False`` is asked for on such a model.
    """
    if not config.use_peft:
        return False
    if source.is_adapter and not config.merge:
        msg = (
            f"model {source.name!r} is a LoRA adapter: it is merged into its base in memory, so a new "
            "adapter saved alone would not load on its own. Set merge=True (the default), or merge "
            "it first with cello1.train.merge_lora and train on that folder."
        )
        raise ValueError(msg)
    return bool(config.merge)


def adapter_base(adapter_dir: Path) -> str:
    """Return the ``base_model_name_or_path`` of a LoRA adapter folder."""
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        msg = f"{str(adapter_dir)!r} is not a readable LoRA adapter folder ({e})."
        raise ValueError(msg) from e
    base = config.get("base_model_name_or_path")
    if not base:
        msg = f"adapter_config.json in {str(adapter_dir)!r} names no base model (base_model_name_or_path)."
        raise ValueError(msg)
    return str(base)


def torch_dtype(name: str):
    """Return the torch dtype for a config's ``dtype`` field (``"auto"``: bf16 on capable GPUs, else fp32)."""
    import torch

    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, name)


def load_chat_tokenizer(path: str | os.PathLike):
    """Load the tokenizer of a model folder, with a pad token and left padding (for generation)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if not getattr(tok, "chat_template", None):
        msg = (
            f"the tokenizer of {str(path)!r} has no chat template; CellPuzzles prompts are chat "
            "messages, so use an instruction-tuned model or add a chat_template."
        )
        raise ValueError(msg)
    return tok


def load_model(source: ResolvedModel, *, dtype: str = "auto"):
    """Load a causal LM; a LoRA adapter folder is loaded on its base and merged in memory.

    Returns
    -------
    ``(model, tokenizer)``.
    """
    from transformers import AutoModelForCausalLM

    dt = torch_dtype(dtype)
    if source.is_adapter:
        from peft import PeftModel

        base = adapter_base(source.path)
        logger.info("loading base %s and merging the adapter %s", base, source.path)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dt)
        model = PeftModel.from_pretrained(model, str(source.path)).merge_and_unload()
        tok_dir = source.path if (source.path / "tokenizer_config.json").is_file() else base
    else:
        model = AutoModelForCausalLM.from_pretrained(str(source.path), dtype=dt)
        tok_dir = source.path
    tokenizer = load_chat_tokenizer(tok_dir)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def lora_config(config: Any):
    """Build the :class:`peft.LoraConfig` of a trainer config (LoRA or DoRA)."""
    from peft import LoraConfig

    targets = config.lora_target_modules.strip()
    target_modules: str | list[str] = (
        targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    )
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        use_dora=config.use_dora,
        target_modules=target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def prompt_messages(puzzle: Puzzle, style: str) -> list[dict[str, str]]:
    """Return the prompt turns of a puzzle in a prompt style (no assistant turn)."""
    return puzzle.messages(style=style)  # type: ignore[arg-type]


def completion_text(puzzle: Puzzle) -> str:
    """Return the training target of a puzzle (its reasoning trace, or the bare answer)."""
    text = puzzle.assistant_msg
    if text is None:
        msg = "This puzzle has no answer to train on."
        raise ValueError(msg)
    return text


def write_outputs(
    model: Any, tokenizer: Any, output_dir: Path, *, merge: bool, info: dict[str, Any]
) -> Path:
    """Save a trained model into ``output_dir`` atomically; ``cello1_train.json`` is written last.

    A PEFT model is saved as an adapter at the top of ``output_dir`` (loadable with
    ``AutoModelForCausalLM.from_pretrained`` when peft is installed), or with
    ``merge=True`` as a full merged model there and the adapter under ``adapter/``.
    """
    is_peft = hasattr(model, "peft_config")
    # Files of the other layout left by an earlier run would confuse loaders.
    stale: tuple[str, ...]
    if is_peft and not merge:
        stale = ("config.json", "model.safetensors", "model.safetensors.index.json")
    else:
        stale = ("adapter_config.json", "adapter_model.safetensors")
    # What a previous run left at the top level is replaced; cello1_train.json goes last.
    with staged_into(output_dir, last=TRAIN_INFO, remove=stale) as tmp:
        if is_peft and merge:
            model.save_pretrained(tmp / "adapter")
            tokenizer.save_pretrained(tmp / "adapter")
            merged = model.merge_and_unload()
            merged.save_pretrained(tmp)
        else:
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / TRAIN_INFO).write_text(json.dumps(info, indent=2, default=str))
    return output_dir


def training_info(
    kind: str, source: ResolvedModel, config: Any, n_puzzles: int, **extra: Any
) -> dict[str, Any]:
    """Build the training record written to ``cello1_train.json``."""
    from sc_cello1._version import __version__

    return {
        "trainer": kind,
        "base_model": {**source.provenance(), "adapter": source.is_adapter},
        "config": config.to_dict(),
        "n_puzzles": n_puzzles,
        "sc_cello1_version": __version__,
        **extra,
    }
