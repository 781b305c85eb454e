"""torchtune-ext evaluation: score any OpenAI-compatible server on document tasks.

This package imports without torch; it runs in a light client environment.
"""

__all__: list[str] = []
