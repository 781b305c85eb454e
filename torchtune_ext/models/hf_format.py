"""Write Llama 3.2 Vision checkpoints in the Hugging Face ``MllamaForConditionalGeneration`` layout.

The files are those of the real ``meta-llama/Llama-3.2-11B-Vision-Instruct`` repository:
``config.json`` (HF cross-attention numbering, supported aspect ratios, llama3 RoPE scaling),
safetensors shards with ``model.safetensors.index.json``, ``generation_config.json``,
``preprocessor_config.json``, ``tokenizer.json`` / ``tokenizer_config.json`` /
``special_tokens_map.json`` with the chat template, and ``original/tokenizer.model`` (tiktoken)
for torchtune. Weights are converted with torchtune's own ``llama3_vision_tune_to_hf``, the
function ``FullModelHFCheckpointer(model_type=LLAMA3_VISION)`` uses, so what we write is what
torchtune reads and writes for the 11B model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torchtune.models.llama3_2_vision._convert_weights import llama3_vision_tune_to_hf

from torchtune_ext.models.llama3_2_vision._arch import VisionArch

__all__ = [
    "CHAT_TEMPLATE",
    "WEIGHTS_NAME",
    "supported_aspect_ratios",
    "hf_config",
    "write_json",
    "save_hf_weights",
    "write_hf_tokenizer",
    "write_preprocessor_config",
    "write_generation_config",
]

#: Single-shard weight file name (torchtune's checkpointer pattern ``model-{}-of-{}``).
WEIGHTS_NAME = "model-00001-of-00001.safetensors"

#: Renders a conversation exactly as torchtune's ``Llama3Tokenizer.tokenize_messages`` tokenises
#: it (BOS, headers, ``\n\n``, stripped text, ``<|image|>`` for image parts, ``<|eot_id|>``), so
#: a model trained in torchtune sees the same tokens when served.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|start_header_id|>' + message['role'] | trim + '<|end_header_id|>\\n\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] | trim -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] in ['image', 'image_url'] -%}{{- '<|image|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] | trim -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{%- endif -%}"
)

_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def supported_aspect_ratios(max_num_tiles: int) -> list[list[int]]:
    """Tile grids ``[rows, cols]`` with at most ``max_num_tiles`` tiles, in Hugging Face order.

    Args:
        max_num_tiles (int): tile budget.

    Returns:
        list[list[int]]: e.g. ``[[1,1],[1,2],[1,3],[1,4],[2,1],[2,2],[3,1],[4,1]]`` for 4.
    """
    return [
        [h, w]
        for h in range(1, max_num_tiles + 1)
        for w in range(1, max_num_tiles + 1)
        if h * w <= max_num_tiles
    ]


def hf_config(
    arch: VisionArch, *, special_ids: Mapping[str, int], torch_dtype: str = "bfloat16"
) -> dict[str, Any]:
    """The ``config.json`` of an ``MllamaForConditionalGeneration`` of this size.

    Args:
        arch (VisionArch): the size.
        special_ids (Mapping[str, int]): special-token name to id (needs begin/end_of_text,
            eom/eot, finetune_right_pad_id and ``<|image|>``).
        torch_dtype (str): dtype the weights are stored in.

    Returns:
        dict[str, Any]: the configuration.
    """
    eos = [special_ids["<|end_of_text|>"], special_ids["<|eom_id|>"], special_ids["<|eot_id|>"]]
    return {
        "architectures": ["MllamaForConditionalGeneration"],
        "model_type": "mllama",
        "image_token_index": special_ids["<|image|>"],
        "torch_dtype": torch_dtype,
        "text_config": {
            "model_type": "mllama_text_model",
            "vocab_size": arch.vocab_size,
            "hidden_size": arch.embed_dim,
            "hidden_act": "silu",
            "num_hidden_layers": arch.num_layers + len(arch.fusion_layers),
            "num_attention_heads": arch.num_heads,
            "num_key_value_heads": arch.num_kv_heads,
            "intermediate_size": arch.intermediate_dim,
            "rope_theta": float(arch.rope_base),
            "rope_scaling": {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            "rms_norm_eps": arch.norm_eps,
            "max_position_embeddings": arch.max_seq_len,
            "cross_attention_layers": arch.hf_cross_attention_layers,
            "tie_word_embeddings": False,
            "bos_token_id": special_ids["<|begin_of_text|>"],
            "eos_token_id": eos,
            "pad_token_id": special_ids["<|finetune_right_pad_id|>"],
            "torch_dtype": torch_dtype,
        },
        "vision_config": {
            "model_type": "mllama_vision_model",
            "hidden_size": arch.clip_embed_dim,
            "hidden_act": "gelu",
            "num_hidden_layers": arch.clip_num_layers,
            "num_global_layers": arch.num_layers_projection,
            "attention_heads": arch.clip_num_heads,
            "num_channels": 3,
            "intermediate_size": 4 * arch.clip_embed_dim,
            "vision_output_dim": arch.clip_embed_dim * (len(arch.clip_hidden_states) + 1),
            "image_size": arch.tile_size,
            "patch_size": arch.patch_size,
            "norm_eps": arch.norm_eps,
            "max_num_tiles": arch.max_num_tiles,
            "intermediate_layers_indices": list(arch.clip_hidden_states),
            "supported_aspect_ratios": supported_aspect_ratios(arch.max_num_tiles),
            "torch_dtype": torch_dtype,
        },
    }


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (parents created).

    Args:
        path (Path): output file.
        obj (Any): JSON-serialisable object.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def save_hf_weights(tune_state_dict: Mapping[str, torch.Tensor], arch: VisionArch, output_dir: Path) -> Path:
    """Convert a torchtune state dict to HF keys and write one safetensors shard plus its index.

    Args:
        tune_state_dict (Mapping[str, torch.Tensor]): torchtune ``DeepFusionModel`` state dict.
        arch (VisionArch): the size (for head counts and aspect ratios).
        output_dir (Path): checkpoint directory.

    Returns:
        Path: the written shard.
    """
    hf_sd = llama3_vision_tune_to_hf(
        dict(tune_state_dict),
        num_heads=arch.num_heads,
        num_kv_heads=arch.num_kv_heads,
        dim=arch.embed_dim,
        head_dim=arch.head_dim,
        vocab_size=arch.vocab_size,
        cross_attention_layers=arch.hf_cross_attention_layers,
        encoder_dim=arch.clip_embed_dim,
        tile_size=arch.tile_size,
        num_tiles=arch.max_num_tiles,
        supported_aspect_ratios=supported_aspect_ratios(arch.max_num_tiles),
    )
    hf_sd = {k: v.contiguous() for k, v in hf_sd.items()}
    shard = output_dir / WEIGHTS_NAME
    save_file(hf_sd, str(shard), metadata={"format": "pt"})
    total = sum(v.numel() * v.element_size() for v in hf_sd.values())
    write_json(
        output_dir / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": dict.fromkeys(sorted(hf_sd), WEIGHTS_NAME)},
    )
    return shard


def write_hf_tokenizer(
    output_dir: Path, bpe_file: Path, special_ids: Mapping[str, int], pattern: str
) -> None:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

    The fast tokenizer is converted from the tiktoken BPE file with the same pre-tokenisation
    pattern, with the special tokens at exactly their torchtune ids and a BOS-adding
    post-processor, as in the real Llama 3.2 tokenizer.

    Args:
        output_dir (Path): checkpoint directory.
        bpe_file (Path): tiktoken BPE file.
        special_ids (Mapping[str, int]): special-token name to id, contiguous after the BPE ranks.
        pattern (str): pre-tokenisation regex.

    Raises:
        ValueError: if the special ids are not contiguous after the BPE ranks.
    """
    from tokenizers import AddedToken, processors
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tok = TikTokenConverter(vocab_file=str(bpe_file), pattern=pattern).converted()
    first = tok.get_vocab_size()
    ordered = sorted(special_ids.items(), key=lambda kv: kv[1])
    if [i for _, i in ordered] != list(range(first, first + len(ordered))):
        raise ValueError(f"special token ids must be contiguous from {first}, got {[i for _, i in ordered]}")
    tok.add_special_tokens([AddedToken(name, normalized=False, special=True) for name, _ in ordered])
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, special_ids[bos])]
            ),
        ]
    )
    tok.save(str(output_dir / "tokenizer.json"))
    write_json(
        output_dir / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": bos,
            "eos_token": "<|eot_id|>",
            "pad_token": "<|finetune_right_pad_id|>",
            "model_input_names": ["input_ids", "attention_mask"],
            "clean_up_tokenization_spaces": True,
            "model_max_length": 131072,
            "chat_template": CHAT_TEMPLATE,
        },
    )
    write_json(
        output_dir / "special_tokens_map.json",
        {"bos_token": bos, "eos_token": "<|eot_id|>", "pad_token": "<|finetune_right_pad_id|>"},
    )
    (output_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def write_preprocessor_config(output_dir: Path, arch: VisionArch) -> None:
    """Write ``preprocessor_config.json`` for ``MllamaImageProcessor`` (tile size, tile budget).

    Args:
        output_dir (Path): checkpoint directory.
        arch (VisionArch): the size.
    """
    write_json(
        output_dir / "preprocessor_config.json",
        {
            "image_processor_type": "MllamaImageProcessor",
            "processor_class": "MllamaProcessor",
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_pad": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": _CLIP_MEAN,
            "image_std": _CLIP_STD,
            "max_image_tiles": arch.max_num_tiles,
            "resample": 2,
            "rescale_factor": 1 / 255,
            "size": {"height": arch.tile_size, "width": arch.tile_size},
        },
    )


def write_generation_config(output_dir: Path, special_ids: Mapping[str, int]) -> None:
    """Write ``generation_config.json`` (greedy by default; stop on end_of_text, eom, eot).

    Args:
        output_dir (Path): checkpoint directory.
        special_ids (Mapping[str, int]): special-token name to id.
    """
    write_json(
        output_dir / "generation_config.json",
        {
            "bos_token_id": special_ids["<|begin_of_text|>"],
            "eos_token_id": [
                special_ids["<|end_of_text|>"],
                special_ids["<|eom_id|>"],
                special_ids["<|eot_id|>"],
            ],
            "pad_token_id": special_ids["<|finetune_right_pad_id|>"],
            "do_sample": False,
        },
    )
