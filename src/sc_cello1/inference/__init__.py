"""Inference backends: transformers, vLLM and OpenAI-compatible servers."""

__all__: list[str] = []
