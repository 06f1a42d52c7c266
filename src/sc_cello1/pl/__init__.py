"""Plotting: labels with confidence, reasoning views."""

__all__: list[str] = []
