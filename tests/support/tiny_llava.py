"""Build a tiny random LLaVA checkpoint that current vLLM serves natively, without downloads.

It exists to prove the evaluator against a real vLLM server on a CPU (``python -m eval.serve --backend vllm-cpu``),
not to answer anything: the weights are random. Everything is made locally:

* a byte-level BPE tokenizer trained here with ``tokenizers``. Its alphabet holds all 256 bytes,
  so *every* string is encodable and a grammar backend (xgrammar) can always find a token for
  the next character a JSON schema allows: digits, quotes, braces, letters, escapes, UTF-8.
  Merges are learnt from the task prompts and field names, so keys cost few tokens;
* a ChatML-style chat template that iterates over OpenAI content parts and places ``<image>``
  where the image part is (vLLM's "openai" content format);
* a CLIP image processor and a :class:`~transformers.LlavaProcessor`;
* ``LlavaForConditionalGeneration`` with a CLIP vision tower and a Llama decoder, with every
  attention head 32 wide (vLLM's CPU attention rejects smaller heads).

This module runs inside the serving venv (it needs torch and transformers), so it imports them
inside functions only.

Usage (from the serving venv)::

    python tests/support/tiny_llava.py --output-dir DIR --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["TinyVlmSpec", "SPEC", "build_tokenizer_corpus", "make_tiny_llava", "main"]

#: File written last into a finished checkpoint; it records how the checkpoint was made.
MARKER = "tiny_vlm.json"


class TinyVlmSpec:
    """Sizes of the tiny LLaVA (one place, so the builder and its docs agree).

    Attributes:
        vocab_size (int): tokenizer size, special tokens included.
        text_hidden (int): decoder width.
        text_heads (int): decoder attention heads (head size = text_hidden / text_heads = 32).
        text_kv_heads (int): decoder key/value heads.
        text_layers (int): decoder layers.
        text_intermediate (int): decoder MLP width.
        max_positions (int): decoder context length.
        vision_hidden (int): CLIP width.
        vision_heads (int): CLIP heads (head size 32).
        vision_layers (int): CLIP layers.
        vision_intermediate (int): CLIP MLP width.
        image_size (int): CLIP input size in pixels.
        patch_size (int): CLIP patch size; (image_size / patch_size)^2 image tokens per image.
    """

    vocab_size = 1024
    text_hidden = 128
    text_heads = 4
    text_kv_heads = 2
    text_layers = 2
    text_intermediate = 256
    max_positions = 16384
    vision_hidden = 64
    vision_heads = 2
    vision_layers = 2
    vision_intermediate = 128
    image_size = 56
    patch_size = 14


SPEC = TinyVlmSpec()

#: Special tokens: end of text, ChatML turn delimiters and LLaVA's image placeholder.
SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>")

#: ChatML with OpenAI content parts: a string content, or a list of ``text`` / ``image`` parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('image', 'image_url') %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tokenizer_corpus(seed: int = 0) -> Iterator[str]:
    """Text the BPE merges are learnt from: task prompts, field names and JSON-shaped records.

    Only efficiency depends on it (the byte alphabet already covers every string). The records
    are made up from a seeded RNG, so the tokenizer is the same on every machine.

    Args:
        seed (int): seed of the made-up values.

    Yields:
        str: corpus lines.
    """
    import random

    from eval.tasks import w2

    rng = random.Random(seed)
    words = (
        "Smith Johnson Main Street Avenue Road Suite Apt Springfield Inc LLC Corp Company NY CA TX".split()
    )
    yield w2.PROMPT
    yield "0123456789 . , : ; - + ( ) [ ] { } \" ' / \\ _ x X null true false None"
    yield "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz"
    for _ in range(200):
        record: dict[str, Any] = {}
        for name in w2.FIELDS:
            if name in w2.MONEY_FIELDS:
                record[name] = round(rng.uniform(0, 100_000), 2)
            elif name in w2.INT_FIELDS:
                record[name] = rng.randrange(1_000_000)
            elif rng.random() < 0.3:
                record[name] = "None"
            else:
                record[name] = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        yield json.dumps(record)


def _build_tokenizer(vocab_size: int) -> Any:
    """Train the byte-level BPE and wrap it as a transformers fast tokenizer.

    Args:
        vocab_size (int): total size, special tokens included.

    Returns:
        Any: a ``PreTrainedTokenizerFast`` with eos/pad/bos set.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(build_tokenizer_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>"},
        model_max_length=SPEC.max_positions,
        chat_template=CHAT_TEMPLATE,
    )


def _to_hub_layout(checkpoint_dir: Path) -> None:
    """Rename the vision tower's weights to the layout of published LLaVA checkpoints.

    transformers 5 drops CLIP's ``vision_model.`` prefix when it saves
    (``vision_tower.embeddings...``), while checkpoints on the hub, and vLLM's loader, use
    ``vision_tower.vision_model.embeddings...``; transformers 5 loads both.

    Args:
        checkpoint_dir (Path): directory holding ``model.safetensors``.
    """
    from safetensors.torch import load_file, save_file

    path = checkpoint_dir / "model.safetensors"
    tensors = load_file(path)
    renamed = {
        (
            "vision_tower.vision_model." + key[len("vision_tower.") :]
            if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model.")
            else key
        ): value
        for key, value in tensors.items()
    }
    save_file(renamed, path, metadata={"format": "pt"})


def make_tiny_llava(output_dir: str | Path, seed: int = 0) -> Path:
    """Write a random tiny LLaVA checkpoint that vLLM and transformers load.

    Args:
        output_dir (str | Path): destination directory (created; existing files are overwritten).
        seed (int): torch seed for the random weights.

    Returns:
        Path: ``output_dir``.

    Raises:
        RuntimeError: if the tokenizer cannot encode a character a JSON answer needs as one
            token (the byte alphabet guarantees it; this guards a future change), or its size
            is not ``SPEC.vocab_size``.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        GenerationConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)

    tokenizer = _build_tokenizer(SPEC.vocab_size)
    for ch in '{}[]":,.-+0123456789eE \\/abcxyzABCXYZ_':
        ids = tokenizer.encode(ch, add_special_tokens=False)
        if len(ids) != 1:
            raise RuntimeError(f"tiny tokenizer encodes {ch!r} as {ids}, not one token")
    if len(tokenizer) != SPEC.vocab_size:
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens, expected {SPEC.vocab_size}")
    vocab = tokenizer.get_vocab()
    image_token_id = vocab["<image>"]
    eos_id = vocab["<|im_end|>"]
    pad_id = vocab["<|endoftext|>"]

    text_config = LlamaConfig(
        vocab_size=SPEC.vocab_size,
        hidden_size=SPEC.text_hidden,
        intermediate_size=SPEC.text_intermediate,
        num_hidden_layers=SPEC.text_layers,
        num_attention_heads=SPEC.text_heads,
        num_key_value_heads=SPEC.text_kv_heads,
        head_dim=SPEC.text_hidden // SPEC.text_heads,
        max_position_embeddings=SPEC.max_positions,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )
    vision_config = CLIPVisionConfig(
        hidden_size=SPEC.vision_hidden,
        intermediate_size=SPEC.vision_intermediate,
        num_hidden_layers=SPEC.vision_layers,
        num_attention_heads=SPEC.vision_heads,
        image_size=SPEC.image_size,
        patch_size=SPEC.patch_size,
        projection_dim=SPEC.vision_hidden,
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        image_seq_length=(SPEC.image_size // SPEC.patch_size) ** 2,
    )
    config.torch_dtype = torch.float32
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=pad_id, eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False
    )
    model.save_pretrained(out, safe_serialization=True)
    _to_hub_layout(out)

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": SPEC.image_size},
        crop_size={"height": SPEC.image_size, "width": SPEC.image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=SPEC.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped again by the "default" strategy
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out)
    (out / MARKER).write_text(
        json.dumps(
            {
                "builder": "tests/support/tiny_llava.py",
                "architecture": "LlavaForConditionalGeneration",
                "seed": seed,
            }
        )
        + "\n"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI: build the checkpoint.

    Args:
        argv (list[str] | None): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python tests/support/tiny_llava.py",
        description="Write a tiny random LLaVA checkpoint (tokenizer, chat template, processor) "
        "for vLLM tests.",
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="where to write the checkpoint")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the random weights (default 0)")
    args = parser.parse_args(argv)
    path = make_tiny_llava(args.output_dir, seed=args.seed)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
