"""Getters: tidy tables from results stored in AnnData."""

from ._top_genes import top_genes

__all__: list[str] = ["top_genes"]
