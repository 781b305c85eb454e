"""torchtune-ext: fine-tune Llama 3.2 Vision on document tasks with torchtune 0.6.1."""
