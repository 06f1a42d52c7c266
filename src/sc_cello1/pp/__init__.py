"""Preprocessing: per-cell top expressed genes."""

from ._top_genes import top_genes

__all__: list[str] = ["top_genes"]
