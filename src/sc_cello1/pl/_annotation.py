"""``cello1.pl.annotation``: the embedding coloured by Cell-o1 label and confidence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.axes import Axes


def check_annotated(adata: AnnData, key: str) -> None:
    """Raise a KeyError naming the fix when ``adata`` holds no annotation under ``key``."""
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        msg = f"`adata` must be an AnnData, got {type(adata).__name__}."
        raise TypeError(msg)
    if not isinstance(key, str):
        msg = f"`key` must be a string (the `key_added` of `cello1.tl.annotate`), got {key!r}."
        raise TypeError(msg)
    if key not in adata.obs.columns or key not in adata.uns:
        msg = f"`obs[{key!r}]` / `uns[{key!r}]` not found; run `cello1.tl.annotate` first or pass `key=`."
        raise KeyError(msg)


def annotation(
    adata: AnnData,
    *,
    key: str = "cello1",
    basis: str = "umap",
    confidence: bool = True,
    title: str | Sequence[str] | None = None,
    show: bool | None = None,
    save: bool | str | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Plot an embedding coloured by the Cell-o1 labels and their confidence.

    Two panels side by side (with ``confidence=True``): the cells coloured by
    ``obs[key]`` and by ``obs[f"{key}_confidence"]`` on a fixed 0-1 colour scale, drawn
    with :func:`scanpy.pl.embedding`.

    Parameters
    ----------
    adata
        Annotated data matrix with the results of :func:`sc_cello1.tl.annotate`.
    key
        The ``key_added`` used in :func:`~sc_cello1.tl.annotate`.
    basis
        Embedding in ``obsm`` (``"umap"`` reads ``obsm["X_umap"]``).
    confidence
        Add the confidence panel.
    title
        Panel titles; default ``"Cell-o1 label"`` and ``"confidence"``.
    show
        Show the figure; ``None``: as :attr:`scanpy.settings.autoshow`.
    save
        Save the figure, as in scanpy: ``True`` or a file name suffix (written under
        :attr:`scanpy.settings.figdir`).
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (``legend_loc``, ``size``, ``ncols``...).

    Returns
    -------
    The axes (a list of two with ``confidence=True``) when ``show`` is ``False``,
    else ``None``.

    Examples
    --------
    >>> import sc_cello1 as cello1
    >>> cello1.pl.annotation(adata, basis="umap", show=False)  # doctest: +SKIP
    """
    check_annotated(adata, key)
    if not isinstance(basis, str):
        msg = f"`basis` must be a string such as 'umap', got {basis!r}."
        raise TypeError(msg)
    if basis not in adata.obsm and f"X_{basis}" not in adata.obsm:
        msg = (
            f"`obsm['X_{basis}']` not found; run `sc.tl.{basis}` first or pass `basis=` "
            f"(obsm keys: {list(adata.obsm)})."
        )
        raise KeyError(msg)
    conf_key = f"{key}_confidence"
    if confidence and conf_key not in adata.obs.columns:
        msg = f"`obs[{conf_key!r}]` not found; run `cello1.tl.annotate` again or pass `confidence=False`."
        raise KeyError(msg)
    import scanpy as sc

    colors = [key, conf_key] if confidence else [key]
    if title is None:
        title = ["Cell-o1 label", "confidence"][: len(colors)]
    elif isinstance(title, str):
        title = [title]
    kwargs.setdefault("vmin", [None, 0.0][: len(colors)])
    kwargs.setdefault("vmax", [None, 1.0][: len(colors)])
    kwargs.setdefault("color_map", "viridis")
    kwargs.setdefault("wspace", 0.6)
    return sc.pl.embedding(
        adata,
        basis=basis,
        color=colors,
        title=list(title),
        show=show,
        save=save,
        **kwargs,
    )
