"""Numerical parity between a torchtune-ext Llama 3.2 Vision model and its Hugging Face export.

The same weights must give the same logits in training (torchtune) and serving. Two places where
``transformers`` departs from Meta's reference implementation (which torchtune-ext, and for the vision
tower vLLM 0.10.0, follow) have to be put back before a logit comparison means anything; see
torchtune_ext/models/llama3_2_vision/README.md for the source lines:

1. **Vision taps (transformers >= 5 only).** The CLIP features concatenated for the projector are the
   *input* of layers ``intermediate_layers_indices`` in Meta's code, vLLM 0.10.0 and transformers 4.x;
   transformers 5 records layer *outputs*, i.e. taps one layer later.
2. **Text rows before the first image (all transformers versions; huggingface/transformers#39379).**
   Meta (and torchtune) zero both the cross-attention and the MLP output of text tokens that attend to
   no image; transformers zeroes only the MLP, so those tokens receive cross-attention over every tile.

:func:`use_reference_semantics` patches both on a loaded model instance (nothing global, weights
untouched). The rest of the module turns a processor batch into torchtune inputs and runs greedy
decoding on either side, for the parity tests and for checking a real export by hand.
"""

from __future__ import annotations

import tempfile
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

__all__ = [
    "hf_batch_to_torchtune",
    "load_torchtune_model",
    "torchtune_greedy",
    "hf_greedy",
    "use_reference_semantics",
    "use_reference_vision_taps",
    "zero_cross_attention_for_imageless_rows",
]


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _mllama_parts(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(vision model, text model) of an ``MllamaForConditionalGeneration`` (4.x or 5.x layout)."""
    inner = getattr(model, "model", model)
    vision = getattr(inner, "vision_model", None)
    text = getattr(inner, "language_model", None)
    text = getattr(text, "model", text)  # 4.x: language_model is MllamaForCausalLM
    if vision is None or text is None or not hasattr(text, "cross_attention_layers"):
        raise TypeError(f"{type(model).__name__} is not a transformers MllamaForConditionalGeneration")
    return vision, text


def _vision_forward_recording_inputs(
    self: nn.Module, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, **_: Any
) -> Any:
    from transformers.modeling_outputs import BaseModelOutput

    states = []
    for layer in self.layers:
        states.append(hidden_states)  # the input of this layer, as Meta / vLLM / transformers 4.x
        hidden_states = layer(hidden_states=hidden_states, attention_mask=attention_mask)
    states.append(hidden_states)
    return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=tuple(states))


def use_reference_vision_taps(model: nn.Module) -> nn.Module:
    """Make a transformers 5 Mllama tap the *input* of the intermediate CLIP layers (no-op on 4.x).

    Args:
        model (nn.Module): a loaded ``MllamaForConditionalGeneration`` or ``MllamaVisionModel``.

    Returns:
        nn.Module: the same model, patched in place.
    """
    if _transformers_major() >= 5:
        is_vision = hasattr(model, "global_transformer")
        vision = model if is_vision else _mllama_parts(model)[0]
        vision.transformer.forward = types.MethodType(_vision_forward_recording_inputs, vision.transformer)
    return model


def zero_cross_attention_for_imageless_rows(model: nn.Module) -> nn.Module:
    """Zero the cross-attention output of text tokens that attend to no image, as Meta's reference does.

    transformers applies ``full_text_row_masked_out_mask`` after the MLP only; this adds it after the
    cross-attention too (the change proposed for huggingface/transformers#39379).

    Args:
        model (nn.Module): a loaded ``MllamaForConditionalGeneration``.

    Returns:
        nn.Module: the same model, patched in place (forward hooks on the cross-attention layers).
    """
    _, text = _mllama_parts(model)
    for idx in text.cross_attention_layers:
        layer = text.layers[idx]
        if getattr(layer, "_tt_ext_row_mask_hooked", False):
            continue
        state: dict[str, Optional[torch.Tensor]] = {}

        def remember(module: nn.Module, args: tuple, kwargs: dict, state: dict = state) -> None:
            state["mask"] = kwargs.get("full_text_row_masked_out_mask")

        def apply(module: nn.Module, args: tuple, output: Any, state: dict = state) -> Any:
            mask = state.get("mask")
            if mask is None:
                return output
            attn, *rest = output if isinstance(output, tuple) else (output,)
            attn = mask[:, 0].to(attn.dtype) * attn
            return (attn, *rest) if isinstance(output, tuple) else attn

        layer.register_forward_pre_hook(remember, with_kwargs=True)
        layer.cross_attn.register_forward_hook(apply)
        layer._tt_ext_row_mask_hooked = True
    return model


def use_reference_semantics(model: nn.Module) -> nn.Module:
    """Apply :func:`use_reference_vision_taps` and :func:`zero_cross_attention_for_imageless_rows`.

    Args:
        model (nn.Module): a loaded ``MllamaForConditionalGeneration``.

    Returns:
        nn.Module: the same model, computing Meta's reference semantics (= torchtune-ext).
    """
    return zero_cross_attention_for_imageless_rows(use_reference_vision_taps(model))


def load_torchtune_model(model_dir: Path | str, builder: Callable[[], nn.Module]) -> nn.Module:
    """Build a torchtune model and load an HF-format directory through ``FullModelHFCheckpointer``.

    Args:
        model_dir (Path | str): HF directory (base, epoch output or export).
        builder (Callable[[], nn.Module]): e.g. ``torchtune_ext.models.llama3_2_vision_tiny``.

    Returns:
        nn.Module: the model in eval mode, fp32.
    """
    from torchtune.training import FullModelHFCheckpointer

    model_dir = Path(model_dir)
    shards = sorted(p.name for p in model_dir.glob("model*.safetensors"))
    with tempfile.TemporaryDirectory() as scratch:
        checkpointer = FullModelHFCheckpointer(
            checkpoint_dir=str(model_dir),
            checkpoint_files=shards,
            model_type="LLAMA3_VISION",
            output_dir=scratch,
        )
        state_dict = checkpointer.load_checkpoint()["model"]
    model = builder()
    model.load_state_dict({k: v.float() for k, v in state_dict.items()})
    return model.float().eval()


def hf_batch_to_torchtune(
    batch: dict[str, torch.Tensor],
    *,
    supported_aspect_ratios: Sequence[Sequence[int]],
    tokens_per_tile: int,
) -> dict[str, Any]:
    """The torchtune ``DeepFusionModel`` inputs for the exact tensors an ``MllamaProcessor`` produced.

    Images keep the batch's largest tile count (torchtune's collate), aspect ratios come from the ids,
    and the cross-attention mask is expanded from tiles to tokens.

    Args:
        batch (dict[str, torch.Tensor]): processor output (``input_ids`` and, with images,
            ``pixel_values``, ``aspect_ratio_ids``, ``cross_attention_mask``).
        supported_aspect_ratios (Sequence[Sequence[int]]): ``vision_config.supported_aspect_ratios``.
        tokens_per_tile (int): CLS + patches per tile.

    Returns:
        dict[str, Any]: ``tokens`` and, with images, ``encoder_input`` and ``encoder_mask``.
    """
    out: dict[str, Any] = {"tokens": batch["input_ids"]}
    if batch.get("pixel_values") is None:
        return out
    ratios = torch.tensor([[0, 0], *supported_aspect_ratios])  # id 0 is HF's "no image"
    aspect_ratio = ratios[batch["aspect_ratio_ids"]]
    n_tiles = int(aspect_ratio.prod(-1).max())
    mask = batch["cross_attention_mask"][..., :n_tiles].repeat_interleave(tokens_per_tile, dim=-1)
    out["encoder_input"] = {"images": batch["pixel_values"][:, :, :n_tiles], "aspect_ratio": aspect_ratio}
    out["encoder_mask"] = mask.flatten(2).bool()
    return out


@torch.no_grad()
def torchtune_greedy(
    model: nn.Module, inputs: dict[str, Any], *, max_new_tokens: int, stop_ids: Sequence[int]
) -> list[int]:
    """Greedy decoding by full recomputation (no KV cache), batch size 1.

    Args:
        model (nn.Module): torchtune ``DeepFusionModel``.
        inputs (dict[str, Any]): from :func:`hf_batch_to_torchtune`.
        max_new_tokens (int): most tokens to generate.
        stop_ids (Sequence[int]): ids that end generation (included in the result).

    Returns:
        list[int]: the generated ids.
    """
    tokens = inputs["tokens"]
    mask = inputs.get("encoder_mask")
    generated: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(tokens, encoder_input=inputs.get("encoder_input"), encoder_mask=mask)
        nxt = int(logits[0, -1].argmax())
        generated.append(nxt)
        if nxt in stop_ids:
            break
        tokens = torch.cat([tokens, tokens.new_tensor([[nxt]])], dim=1)
        if mask is not None:
            mask = torch.cat([mask, mask[:, -1:]], dim=1)  # new tokens see what the last one saw
    return generated


@torch.no_grad()
def hf_greedy(model: nn.Module, batch: dict[str, torch.Tensor], *, max_new_tokens: int) -> list[int]:
    """Greedy decoding with ``generate`` (KV cache, the generation config's stop ids), batch size 1.

    Args:
        model (nn.Module): ``MllamaForConditionalGeneration``.
        batch (dict[str, torch.Tensor]): processor output.
        max_new_tokens (int): most tokens to generate.

    Returns:
        list[int]: the generated ids.
    """
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, batch["input_ids"].shape[1] :].tolist()
