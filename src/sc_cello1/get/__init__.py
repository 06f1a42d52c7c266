"""Getters: tidy tables from results stored in AnnData."""

__all__: list[str] = []
