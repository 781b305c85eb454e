"""Pure-Python metrics for the classification, detection and DocVQA tasks (no torch, no numpy)."""

__all__: list[str] = []
