"""Models: Llama 3.2 Vision builders (tiny default and 11B), transform, tiny checkpoint."""

from torchtune_ext.models.llama3_2_vision import (
    LLAMA_11B,
    TINY,
    VisionArch,
    llama3_2_vision_11b,
    llama3_2_vision_tiny,
    llama3_2_vision_transform,
    lora_llama3_2_vision_11b,
    lora_llama3_2_vision_tiny,
    qlora_llama3_2_vision_11b,
    qlora_llama3_2_vision_tiny,
)

__all__ = [
    "LLAMA_11B",
    "TINY",
    "VisionArch",
    "llama3_2_vision_11b",
    "llama3_2_vision_tiny",
    "llama3_2_vision_transform",
    "lora_llama3_2_vision_11b",
    "lora_llama3_2_vision_tiny",
    "make_tiny_checkpoint",
    "qlora_llama3_2_vision_11b",
    "qlora_llama3_2_vision_tiny",
]


def __getattr__(name: str):
    # make_tiny pulls in the HF writers; import it only when asked for.
    if name == "make_tiny_checkpoint":
        from torchtune_ext.models.make_tiny import make_tiny_checkpoint

        return make_tiny_checkpoint
    raise AttributeError(name)
