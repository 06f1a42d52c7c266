"""Fine-tuning: SFT (trl + peft) and GRPO (Lightning)."""

__all__: list[str] = []
