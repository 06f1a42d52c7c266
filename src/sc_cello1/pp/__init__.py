"""Preprocessing: per-cell top expressed genes."""

__all__: list[str] = []
