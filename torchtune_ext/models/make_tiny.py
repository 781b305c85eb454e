"""Build the embedded tiny Llama 3.2 Vision base checkpoint in the Hugging Face layout.

Usage::

    python -m torchtune_ext.models.make_tiny --output-dir out/tiny-llama3.2-vision --seed 0

The directory is what ``FullModelHFCheckpointer(model_type: LLAMA3_VISION)`` reads (the same
code path as the real 11B checkpoint), what ``transformers`` loads as
``MllamaForConditionalGeneration`` + ``MllamaProcessor``, and what ``transformers serve`` serves.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from torchtune_ext.models import hf_format
from torchtune_ext.models.llama3_2_vision import TINY, llama3_2_vision_tiny
from torchtune_ext.models.tiny_tokenizer import (
    PATTERN,
    SHIPPED_BPE,
    TINY_NUM_RANKS,
    TINY_VOCAB_SIZE,
    special_tokens,
    train_bpe_ranks,
    write_tiktoken_bpe,
)

__all__ = ["make_tiny_checkpoint", "main"]

#: Fusion (tanh) gates start at 0 in fresh torchtune builders, which cuts the image path off
#: and gives LoRA adapters there zero gradient; real checkpoints have trained, non-zero gates.
_GATE_RANGE = (0.5, 1.0)


def _is_gate(name: str) -> bool:
    # Cross-attention layers (ca_scale, mlp_scale), the encoder's global layers (sa_scale,
    # mlp_scale) and its tile/positional embeddings (gate) are all tanh-gated.
    return name.endswith(("_scale.scale", ".gate"))


def make_tiny_checkpoint(
    output_dir: Path | str, seed: int = 0, overwrite: bool = False, retrain_tokenizer: bool = False
) -> Path:
    """Write a complete, randomly initialised tiny Llama 3.2 Vision HF checkpoint.

    Args:
        output_dir (Path | str): directory to create.
        seed (int): seed of the weights; same seed, same bytes.
        overwrite (bool): replace files in a non-empty directory.
        retrain_tokenizer (bool): train the BPE here instead of copying the shipped one
            (identical result: training is deterministic).

    Returns:
        Path: ``output_dir``.

    Raises:
        FileExistsError: if ``output_dir`` is not empty and ``overwrite`` is False.
    """
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)

    specials = special_tokens(TINY_NUM_RANKS, TINY_VOCAB_SIZE)
    bpe_file = out / "original" / "tokenizer.model"
    if retrain_tokenizer:
        write_tiktoken_bpe(train_bpe_ranks(0, TINY_NUM_RANKS), bpe_file)
    else:
        bpe_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHIPPED_BPE, bpe_file)
    hf_format.write_hf_tokenizer(out, bpe_file, specials, PATTERN)

    torch.manual_seed(seed)
    model = llama3_2_vision_tiny()
    generator = torch.Generator().manual_seed(seed)
    low, high = _GATE_RANGE
    state_dict = model.state_dict()
    for name, value in state_dict.items():
        if _is_gate(name):
            value.copy_(low + (high - low) * torch.rand(value.shape, generator=generator))
    state_dict = {k: v.to(torch.float32) for k, v in state_dict.items()}

    hf_format.save_hf_weights(state_dict, TINY, out)
    hf_format.write_json(
        out / "config.json", hf_format.hf_config(TINY, special_ids=specials, torch_dtype="float32")
    )
    hf_format.write_generation_config(out, specials)
    hf_format.write_preprocessor_config(out, TINY)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv (list[str] | None): arguments (default ``sys.argv[1:]``).

    Returns:
        int: exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m torchtune_ext.models.make_tiny",
        description="Write the tiny Llama 3.2 Vision base checkpoint (HF Mllama layout).",
    )
    parser.add_argument("--output-dir", required=True, type=Path, help="directory to create")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and tokenizer (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace files in a non-empty directory")
    parser.add_argument(
        "--retrain-tokenizer",
        action="store_true",
        help="train the tiny BPE here (~10 s) instead of copying it",
    )
    args = parser.parse_args(argv)
    try:
        out = make_tiny_checkpoint(
            args.output_dir,
            seed=args.seed,
            overwrite=args.overwrite,
            retrain_tokenizer=args.retrain_tokenizer,
        )
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"tiny Llama 3.2 Vision checkpoint written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
