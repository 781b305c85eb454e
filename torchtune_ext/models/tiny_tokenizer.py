"""A small Llama-3-style tokenizer trained locally, for the tiny model.

No tokenizer can be downloaded here, so the tiny model's tokenizer is a tiktoken byte-level
BPE trained deterministically on a corpus built from the project's own task definitions
(W-2 keys, prompts, JSON punctuation, amounts, codes) plus some plain English. Llama 3 special
tokens sit just below ``vocab_size`` and ``<|image|>`` is ``vocab_size`` itself, exactly the
layout of the real 11B tokenizer (128 000 + 256 specials, ``<|image|>`` = 128 256).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from eval.tasks import w2

__all__ = [
    "TINY_NUM_RANKS",
    "TINY_VOCAB_SIZE",
    "PATTERN",
    "special_tokens",
    "training_corpus",
    "train_bpe_ranks",
    "write_tiktoken_bpe",
    "SHIPPED_BPE",
]

#: The BPE trained by :func:`train_bpe_ranks` with seed 0, shipped so that building the tiny
#: checkpoint does not re-run the (pure Python, ~10 s) training; a test re-trains and compares.
SHIPPED_BPE = Path(__file__).parent / "assets" / "tiny_tokenizer.model"

#: Ordinary BPE ranks (256 single bytes + merges).
TINY_NUM_RANKS = 480
#: Decoder vocabulary: BPE ranks followed by 32 special tokens; ``<|image|>`` = this value.
TINY_VOCAB_SIZE = 512
#: The Llama 3 pre-tokenisation pattern (torchtune's ``CL100K_PATTERN``).
PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Llama 3.2 Vision special tokens at their offsets from the first special id (128000 in 11B).
_NAMED_OFFSETS = {
    0: "<|begin_of_text|>",
    1: "<|end_of_text|>",
    2: "<|reserved_special_token_0|>",
    3: "<|reserved_special_token_1|>",
    4: "<|finetune_right_pad_id|>",
    5: "<|step_id|>",
    6: "<|start_header_id|>",
    7: "<|end_header_id|>",
    8: "<|eom_id|>",
    9: "<|eot_id|>",
    10: "<|python_tag|>",
    12: "<|video|>",
}

_ENGLISH = (
    "The quick brown fox jumps over the lazy dog. What is the total amount on this form? "
    "Answer the question using the document. Which label describes the image best? "
    "Return the bounding boxes of the nutrition table as json. The employer paid wages, "
    "tips and other compensation. Federal income tax withheld. Social security wages. "
    "Medicare wages and tips. State, local wages, income tax, locality name. "
)


def special_tokens(num_ranks: int = TINY_NUM_RANKS, vocab_size: int = TINY_VOCAB_SIZE) -> dict[str, int]:
    """Map special-token names to ids: ``num_ranks .. vocab_size-1`` plus ``<|image|>`` = vocab_size.

    Every id in that range is assigned (unnamed ones become reserved tokens), because tiktoken
    cannot decode an unassigned id.

    Args:
        num_ranks (int): number of ordinary BPE ranks; the first special id.
        vocab_size (int): decoder vocabulary size; ``<|image|>`` gets this id.

    Returns:
        dict[str, int]: special token name to id, in id order.
    """
    tokens: dict[str, int] = {}
    reserved = 2
    for offset in range(vocab_size - num_ranks):
        name = _NAMED_OFFSETS.get(offset)
        if name is None:
            name = f"<|reserved_special_token_{reserved}|>"
            reserved += 1
        tokens[name] = num_ranks + offset
    tokens["<|image|>"] = vocab_size
    return tokens


def training_corpus(seed: int = 0, num_records: int = 40) -> str:
    """Build the deterministic text the tiny BPE is trained on.

    Args:
        seed (int): seed of the random values in the corpus.
        num_records (int): number of fake W-2 JSON answers in the corpus.

    Returns:
        str: the corpus.
    """
    rng = random.Random(seed)
    parts = [_ENGLISH * 3, w2.PROMPT * 3]
    for _ in range(num_records):
        record = {}
        for name in w2.FIELDS:
            if name in w2.MONEY_FIELDS:
                record[name] = round(rng.uniform(0, 90000), 2)
            elif name in w2.INT_FIELDS:
                record[name] = rng.randint(1000, 99999)
            else:
                record[name] = rng.choice(["None", "x", "DD", "CA", "NY 10001", "123-45-6789", "Acme Inc"])
        parts.append(json.dumps(record))
    return "\n".join(parts)


def train_bpe_ranks(seed: int = 0, num_ranks: int = TINY_NUM_RANKS) -> dict[bytes, int]:
    """Train a byte-level BPE deterministically.

    Args:
        seed (int): corpus seed.
        num_ranks (int): number of ranks to produce (at least 256).

    Returns:
        dict[bytes, int]: token bytes to rank, ranks ``0 .. num_ranks-1``.
    """
    from tiktoken._educational import bpe_train

    return bpe_train(training_corpus(seed), vocab_size=num_ranks, pat_str=PATTERN, visualise=None)


def write_tiktoken_bpe(ranks: dict[bytes, int], path: Path) -> None:
    """Write ranks in tiktoken's file format (base64 token, space, rank per line).

    Args:
        ranks (dict[bytes, int]): token bytes to rank.
        path (Path): output file.
    """
    from tiktoken.load import dump_tiktoken_bpe

    path.parent.mkdir(parents=True, exist_ok=True)
    dump_tiktoken_bpe(ranks, str(path))
