"""Llama 3.2 Vision builders: the embedded tiny default and 11B."""

from torchtune_ext.models.llama3_2_vision._arch import LLAMA_11B, TINY, VisionArch
from torchtune_ext.models.llama3_2_vision._model_builders import (
    build_llama3_2_vision,
    build_lora_llama3_2_vision,
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
    "build_llama3_2_vision",
    "build_lora_llama3_2_vision",
    "llama3_2_vision_11b",
    "llama3_2_vision_tiny",
    "llama3_2_vision_transform",
    "lora_llama3_2_vision_11b",
    "lora_llama3_2_vision_tiny",
    "qlora_llama3_2_vision_11b",
    "qlora_llama3_2_vision_tiny",
]
