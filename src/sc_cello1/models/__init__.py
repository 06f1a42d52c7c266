"""Pretrained weights: a pooch registry, fetching, caching and verification."""

__all__: list[str] = []
