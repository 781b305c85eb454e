"""The tiny base checkpoint is a real HF Mllama directory that torchtune and transformers both load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from torchtune.data import Message
from torchtune.training import FullModelHFCheckpointer

from eval.tasks import w2
from torchtune_ext.generation import user_message
from torchtune_ext.models import TINY, llama3_2_vision_tiny, llama3_2_vision_transform
from torchtune_ext.models.make_tiny import main as make_tiny_main
from torchtune_ext.models.tiny_tokenizer import SHIPPED_BPE, special_tokens, train_bpe_ranks


def _load_tune(ckpt: Path, tmp_path: Path) -> dict[str, torch.Tensor]:
    checkpointer = FullModelHFCheckpointer(
        checkpoint_dir=str(ckpt),
        checkpoint_files=["model-00001-of-00001.safetensors"],
        model_type="LLAMA3_VISION",
        output_dir=str(tmp_path),
    )
    return checkpointer.load_checkpoint()["model"]


def test_files_and_config(tiny_checkpoint: Path) -> None:
    for name in [
        "config.json",
        "model-00001-of-00001.safetensors",
        "model.safetensors.index.json",
        "generation_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "original/tokenizer.model",
    ]:
        assert (tiny_checkpoint / name).is_file(), name
    cfg = json.loads((tiny_checkpoint / "config.json").read_text())
    # HF numbers each cross-attention layer as its own layer before the layer it fuses.
    assert cfg["text_config"]["cross_attention_layers"] == [1, 4]
    assert cfg["text_config"]["num_hidden_layers"] == TINY.num_layers + 2
    assert cfg["vision_config"]["supported_aspect_ratios"] == [
        [1, 1],
        [1, 2],
        [1, 3],
        [1, 4],
        [2, 1],
        [2, 2],
        [3, 1],
        [4, 1],
    ]
    assert cfg["image_token_index"] == TINY.vocab_size


def test_tokenizer_special_ids() -> None:
    ids = special_tokens()
    assert sorted(ids.values()) == list(range(480, 513))
    assert ids["<|image|>"] == 512 and ids["<|begin_of_text|>"] == 480 and ids["<|eot_id|>"] == 489


def test_torchtune_loads_strictly_and_gates_are_live(tiny_checkpoint: Path, tmp_path: Path) -> None:
    state_dict = _load_tune(tiny_checkpoint, tmp_path)
    model = llama3_2_vision_tiny()
    model.load_state_dict(state_dict, strict=True)
    gates = {n: v for n, v in state_dict.items() if n.endswith(("_scale.scale", ".gate"))}
    # 2 per cross-attention layer, 2 per global encoder layer, 3 embedding gates.
    assert len(gates) == 2 * len(TINY.fusion_layers) + 2 * TINY.num_layers_projection + 3
    assert all(v.abs().min() > 0.4 for v in gates.values())


def test_deterministic_for_a_seed(tiny_checkpoint: Path, tmp_path: Path) -> None:
    assert make_tiny_main(["--output-dir", str(tmp_path / "again"), "--seed", "0"]) == 0
    assert make_tiny_main(["--output-dir", str(tmp_path / "other"), "--seed", "1"]) == 0

    def digest(d: Path) -> str:
        return hashlib.sha256((d / "model-00001-of-00001.safetensors").read_bytes()).hexdigest()

    assert digest(tmp_path / "again") == digest(tiny_checkpoint)
    assert digest(tmp_path / "other") != digest(tiny_checkpoint)
    # A non-empty directory is never silently overwritten.
    assert make_tiny_main(["--output-dir", str(tmp_path / "again")]) == 2


@pytest.mark.slow
def test_shipped_tokenizer_is_what_training_produces(tmp_path: Path) -> None:
    from tiktoken.load import load_tiktoken_bpe

    assert load_tiktoken_bpe(str(SHIPPED_BPE)) == train_bpe_ranks(0)


def test_transformers_loads_it_and_the_chat_template_matches_torchtune(tiny_checkpoint: Path) -> None:
    from transformers import AutoProcessor, MllamaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_checkpoint)
    model = MllamaForConditionalGeneration.from_pretrained(tiny_checkpoint)
    assert model.config.text_config.cross_attention_layers == [1, 4]

    answer = w2.target_json(dict.fromkeys(w2.FIELDS, "None"))
    transform = llama3_2_vision_transform(
        str(tiny_checkpoint / "original" / "tokenizer.model"),
        special_tokens_path=str(tiny_checkpoint / "tokenizer.json"),
        tile_size=56,
        image_dtype="float32",
        max_seq_len=4096,
    )
    from PIL import Image

    user = user_message(Image.new("RGB", (60, 60)), w2.PROMPT)
    tune_ids = transform({"messages": [user, Message(role="assistant", content=answer)]})["tokens"]
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": w2.PROMPT}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]
    text = processor.apply_chat_template(conversation)
    hf_ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    # torchtune appends <|end_of_text|> after the last turn when training; the server never sees it.
    assert tune_ids[-1] == special_tokens()["<|end_of_text|>"]
    assert hf_ids == tune_ids[:-1]
    # The generation prompt is what torchtune builds for inference.
    prompt = processor.apply_chat_template(conversation[:1], add_generation_prompt=True)
    prompt_ids = processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    inference = transform({"messages": [user, Message(role="assistant", content="")]}, inference=True)
    assert prompt_ids == inference["tokens"]


@pytest.mark.parametrize("name", ["model-00001-of-00001.safetensors"])
def test_index_lists_every_weight(tiny_checkpoint: Path, name: str) -> None:
    from safetensors import safe_open

    index = json.loads((tiny_checkpoint / "model.safetensors.index.json").read_text())
    with safe_open(str(tiny_checkpoint / name), "pt") as f:
        assert set(index["weight_map"]) == set(f.keys())
