"""Plotting: labels with confidence, reasoning views."""

from ._annotation import annotation
from ._reasoning import ClusterReasoning, reasoning

__all__ = ["ClusterReasoning", "annotation", "reasoning"]
