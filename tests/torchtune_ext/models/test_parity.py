"""Training/serving parity on the tiny model: torchtune-ext vs transformers on the exported directory.

torchtune side: our builder, weights loaded with ``FullModelHFCheckpointer`` from the exported
directory. transformers side: ``MllamaForConditionalGeneration`` on the same directory, fed the same
processor tensors (the two image preprocessors are compared separately below), fp32 on CPU.

transformers departs from Meta's reference (= the checkpoint's training semantics = torchtune-ext; and
for the vision tower, vLLM 0.10.0) in two documented places, which ``use_reference_semantics`` puts back
on the loaded instance: transformers 5 taps the CLIP layers one layer late, and every transformers
version lets text before the first ``<|image|>`` cross-attend (huggingface/transformers#39379). The
negative controls show that each correction, and our encoder, is needed to meet the bound.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from support import parity

from torchtune_ext.export import export_checkpoint
from torchtune_ext.models import TINY, llama3_2_vision_tiny

pytestmark = pytest.mark.slow  # each fixture runs a couple of training steps of the tiny model

BOUND = 1e-4
#: (width, height) of the test image -> the tiling the processor must pick; None = text only.
CASES = {
    "text": (None, None),
    "1x1": ((56, 56), [1, 1]),
    "1x2": ((112, 56), [1, 2]),
    "2x1": ((56, 112), [2, 1]),
    "2x2": ((112, 112), [2, 2]),
    "1x3": ((168, 40), [1, 3]),
    "4x1": ((30, 200), [4, 1]),
}
IMAGE_CASES = [c for c in CASES if c != "text"]


def _batch(proc, case: str, image_first: bool = True) -> dict:
    size, tiling = CASES[case]
    content = [{"type": "text", "text": "Parse this W-2 form."}]
    if size is None:
        text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        return proc(text=text, return_tensors="pt", add_special_tokens=False)
    from PIL import Image

    content = [{"type": "image"}, *content] if image_first else [*content, {"type": "image"}]
    text = proc.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    batch = proc(images=[img], text=text, return_tensors="pt", add_special_tokens=False)
    # The tiling is part of the case: check the processor picked it.
    assert TINY_RATIOS[int(batch["aspect_ratio_ids"][0, 0]) - 1] == tiling
    return batch


TINY_RATIOS = [[h, w] for h in range(1, 5) for w in range(1, 5) if h * w <= TINY.max_num_tiles]


class Pair:
    """The exported model loaded on both sides."""

    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoProcessor, MllamaForConditionalGeneration

        self.dir = model_dir
        self.proc = AutoProcessor.from_pretrained(model_dir)
        self.tt = parity.load_torchtune_model(model_dir, llama3_2_vision_tiny)
        self.hf = MllamaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
        parity.use_reference_semantics(self.hf)

    def inputs(self, batch: dict) -> dict:
        return parity.hf_batch_to_torchtune(
            batch, supported_aspect_ratios=TINY_RATIOS, tokens_per_tile=TINY.tokens_per_tile
        )

    @torch.no_grad()
    def tt_logits(self, batch: dict, model: torch.nn.Module | None = None) -> torch.Tensor:
        inp = self.inputs(batch)
        model = model if model is not None else self.tt
        enc_in, enc_mask = inp.get("encoder_input"), inp.get("encoder_mask")
        return model(inp["tokens"], encoder_input=enc_in, encoder_mask=enc_mask)

    @torch.no_grad()
    def hf_logits(self, batch: dict, model: torch.nn.Module | None = None) -> torch.Tensor:
        return (model if model is not None else self.hf)(**batch).logits


@pytest.fixture(scope="module", params=["full", "lora"])
def pair(request: pytest.FixtureRequest, tiny_checkpoint: Path, tmp_path_factory) -> Pair:
    epoch = request.getfixturevalue(f"tiny_{request.param}_output")
    out = tmp_path_factory.mktemp(f"export_{request.param}") / "model"
    export_checkpoint(epoch, out, tiny_checkpoint)
    return Pair(out)


@pytest.fixture(scope="module")
def full_pair(tiny_full_output: Path, tiny_checkpoint: Path, tmp_path_factory) -> Pair:
    out = tmp_path_factory.mktemp("export_full_ctl") / "model"
    export_checkpoint(tiny_full_output, out, tiny_checkpoint)
    return Pair(out)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.mark.parametrize("case", list(CASES))
def test_logits_match(pair: Pair, case: str) -> None:
    batch = _batch(pair.proc, case)
    assert _max_diff(pair.tt_logits(batch), pair.hf_logits(batch)) <= BOUND


@pytest.mark.parametrize("case", ["1x2", "2x2"])
def test_logits_match_text_before_image(full_pair: Pair, case: str) -> None:
    # The cookbook's evaluate.py sends the instruction before the image.
    batch = _batch(full_pair.proc, case, image_first=False)
    assert _max_diff(full_pair.tt_logits(batch), full_pair.hf_logits(batch)) <= BOUND


@pytest.mark.parametrize("case", ["text", "1x2", "2x2"])
def test_greedy_generation_matches(pair: Pair, case: str) -> None:
    batch = _batch(pair.proc, case)
    stop = pair.hf.generation_config.eos_token_id
    ours = parity.torchtune_greedy(pair.tt, pair.inputs(batch), max_new_tokens=5, stop_ids=stop)
    theirs = parity.hf_greedy(pair.hf, batch, max_new_tokens=5)
    assert ours == theirs and len(ours) >= 1


def test_stock_torchtune_encoder_misses_the_bound(full_pair: Pair) -> None:
    """Control: with torchtune 0.6.1's own encoder (no padding, no mask) the image path is off."""
    from torchtune.models.llama3_2_vision._encoder import Llama3VisionEncoder

    ours = full_pair.tt.encoder
    stock = Llama3VisionEncoder(clip=ours.clip, projection_head=ours.projection)  # same weights
    try:
        full_pair.tt.encoder = stock
        for case in IMAGE_CASES:
            batch = _batch(full_pair.proc, case)
            assert _max_diff(full_pair.tt_logits(batch), full_pair.hf_logits(batch)) > 1e-3, case
        text = _batch(full_pair.proc, "text")  # the text path never involved the encoder
        assert _max_diff(full_pair.tt_logits(text), full_pair.hf_logits(text)) <= BOUND
    finally:
        full_pair.tt.encoder = ours


def test_uncorrected_transformers_misses_the_bound(full_pair: Pair) -> None:
    """Control: each of the two transformers deviations alone breaks parity (so both corrections matter)."""
    from transformers import MllamaForConditionalGeneration

    def load() -> torch.nn.Module:
        return MllamaForConditionalGeneration.from_pretrained(full_pair.dir, dtype=torch.float32).eval()

    rows_only = parity.zero_cross_attention_for_imageless_rows(load())  # transformers' own taps
    taps_only = parity.use_reference_vision_taps(load())  # transformers' own pre-image rows
    batch = _batch(full_pair.proc, "2x2")
    ours = full_pair.tt_logits(batch)
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        assert _max_diff(ours, full_pair.hf_logits(batch, rows_only)) > 1e-3
    image_at = int((batch["input_ids"][0] == full_pair.hf.config.image_token_index).nonzero()[0])
    before = _max_diff(ours[:, :image_at], full_pair.hf_logits(batch, taps_only)[:, :image_at])
    assert before > 1e-3


def _image_transform(pair: Pair):
    from torchtune_ext.models import llama3_2_vision_transform

    return llama3_2_vision_transform(
        path=str(pair.dir / "original/tokenizer.model"),
        special_tokens_path=str(pair.dir / "tokenizer.json"),
        tile_size=TINY.tile_size,
        image_dtype="float32",
    )


def test_image_preprocessors_agree(full_pair: Pair) -> None:
    """torchtune's CLIPImageTransform vs the HF MllamaImageProcessor the server runs.

    Same tiling; pixels equal to float rounding unless the image is shrunk, where the two resizers
    differ by up to ~0.015 (normalised units). The parity tests above feed both sides the HF tensors.
    """
    from PIL import Image

    transform = _image_transform(full_pair)
    rng = np.random.default_rng(0)
    for size, tiling in [v for v in CASES.values() if v[0] is not None] + [((100, 70), [2, 2])]:
        img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        hf = full_pair.proc.image_processor(images=[img], return_tensors="pt")
        tt = transform.transform_image({"image": img})
        assert tt["aspect_ratio"].tolist() == tiling
        n = tiling[0] * tiling[1]
        assert _max_diff(tt["image"], hf["pixel_values"][0, 0, :n]) <= 1e-5, size
    shrunk = Image.fromarray(rng.integers(0, 255, (792, 612, 3), dtype=np.uint8))  # a W-2 page
    hf = full_pair.proc.image_processor(images=[shrunk], return_tensors="pt")
    tt = transform.transform_image({"image": shrunk})
    assert tt["aspect_ratio"].tolist() == [2, 2]
    assert 1e-5 < _max_diff(tt["image"], hf["pixel_values"][0, 0]) <= 0.03


def _transparent_logo() -> bytes:
    """A 112x56 RGBA logo (tiling 1x2, no resize): transparent background, an opaque blue square,
    a half-transparent red band."""
    import io

    from PIL import Image, ImageDraw

    logo = Image.new("RGBA", (112, 56), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.rectangle([10, 10, 40, 40], fill=(0, 0, 255, 255))
    draw.rectangle([60, 0, 100, 55], fill=(255, 0, 0, 128))
    buf = io.BytesIO()
    logo.save(buf, format="PNG")
    return buf.getvalue()


def test_transparent_images_agree_between_training_and_serving(full_pair: Pair, tmp_path: Path) -> None:
    """RGBA: every training path shows the model what the server's image processor computes.

    Serving: the HF processor composites transparency on white, on the stored RGBA image or on
    the RGB PNG the evaluator sends. Training: the task builders (open_upright) and the W-2
    builder (its decoder) apply the same rule before torchtune's transform. Control: torchtune's
    own RGB conversion alone turns the transparent pixels black, far outside the bound.
    """
    import io

    import datasets
    from PIL import Image

    from eval.core.records import open_upright
    from eval.core.splits import read_image_bytes
    from torchtune_ext.datasets._w2 import _ImageCells

    stored = _transparent_logo()
    (tmp_path / "logo.png").write_bytes(stored)
    sent, _ = read_image_bytes(stored, 0)
    features = datasets.Features({"image": datasets.Image()})
    split = datasets.Dataset.from_dict({"image": [{"bytes": stored, "path": None}]}, features=features)

    def processor(image: Image.Image) -> torch.Tensor:
        return full_pair.proc.image_processor(images=[image], return_tensors="pt")["pixel_values"][0, 0, :2]

    server_sees = processor(Image.open(io.BytesIO(stored)))
    assert _max_diff(processor(Image.open(io.BytesIO(sent))), server_sees) == 0.0
    transform = _image_transform(full_pair)
    for name, image in {
        "task builders": open_upright(tmp_path / "logo.png"),
        "W-2 builder": _ImageCells(split, "image").decode(0),
    }.items():
        tiles = transform.transform_image({"image": image})
        assert tiles["aspect_ratio"].tolist() == [1, 2]
        assert _max_diff(tiles["image"], server_sees) <= 1e-5, name
    black = transform.transform_image({"image": Image.open(io.BytesIO(stored))})["image"]
    assert _max_diff(black, server_sees) > 3.0
