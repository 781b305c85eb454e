"""torchtune-ext: fine-tune Llama 3.2 Vision on document tasks with torchtune."""

__version__ = "0.1.0"
__all__ = ["__version__"]
