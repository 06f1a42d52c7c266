"""The resolved-model record: what :func:`~sc_cello1.models.resolve` hands down.

It imports nothing from :mod:`sc_cello1.models`, so every module there (and every
floor above) can use it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

#: Where a resolved model comes from.
Source = Literal["registry", "local", "gguf"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to load: a local folder plus where it came from.

    Attributes
    ----------
    path
        Folder loadable with ``AutoModelForCausalLM.from_pretrained`` /
        ``AutoTokenizer.from_pretrained``.
    name
        The registered name, or the absolute path of a local folder / GGUF file.
    revision
        The pinned revision of a registered model; ``None`` for local folders and GGUF.
    source
        ``"registry"`` (fetched and verified), ``"local"`` (a folder given by the user) or
        ``"gguf"`` (converted from a GGUF file).
    files
        File name -> sha256 where known (every file of a registered model; the GGUF file
        for ``"gguf"``; empty for a local folder).
    repo
        Repository of a registered model (``"ncbi/Cell-o1"``), else ``None``.
    gguf_file
        The ``.gguf`` file the folder was converted from (``source="gguf"``), else ``None``.
    is_adapter
        Whether the folder is a LoRA adapter (``adapter_config.json``, no ``config.json``
        of its own): transformers loads it on its base when peft is installed, and the
        trainers merge it into its base first.

    Notes
    -----
    Made once by :func:`~sc_cello1.models.resolve` and passed down: every function that
    takes ``model=`` also takes a :class:`~sc_cello1.models.ResolvedModel` and uses it as is, without
    checking or resolving it again.
    """

    path: Path
    name: str
    revision: str | None
    source: Source
    files: dict[str, str] = field(default_factory=dict)
    repo: str | None = None
    gguf_file: Path | None = None
    is_adapter: bool = False

    def provenance(self) -> dict[str, Any]:
        """Return what to record in ``uns[key_added]['params']`` (JSON-serialisable).

        Returns
        -------
        ``{"model", "source", "repo", "revision", "path", "files"}`` with ``model`` the
        name (the key every backend's ``provenance()`` gives it; earlier releases wrote
        ``name`` here) and ``files`` a dict of file name -> sha256.

        Examples
        --------
        >>> from pathlib import Path
        >>> from sc_cello1.models import ResolvedModel
        >>> ResolvedModel(Path("/m"), "m", None, "local").provenance()["source"]
        'local'
        """
        return {
            "model": self.name,
            "source": self.source,
            "repo": self.repo,
            "revision": self.revision,
            "path": str(self.path),
            "files": dict(sorted(self.files.items())),
        }
