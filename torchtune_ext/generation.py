"""Greedy generation for torchtune's ``DeepFusionModel`` (Llama 3.2 Vision).

torchtune 0.6.1's ``torchtune.generation.generate`` rejects ``DeepFusionModel``; this is the
KV-cache loop of torchtune's ``dev/generate_v2`` recipe as a function: prefill with the image
and the cross-attention mask, then one token at a time with the mask's last row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchtune.data import Message, padded_collate_tiled_images_and_mask
from torchtune.models.llama3_2_vision import Llama3VisionTransform
from torchtune.modules.model_fusion import DeepFusionModel

from eval.tasks import CONTENT_ORDER

__all__ = ["user_message", "greedy_generate"]


def user_message(image: Image.Image, prompt: str) -> Message:
    """One user turn holding an image and a prompt in the shared :data:`CONTENT_ORDER`.

    Args:
        image (Image.Image): the image.
        prompt (str): the text.

    Returns:
        Message: a torchtune user message.
    """
    parts = {"image": {"type": "image", "content": image}, "text": {"type": "text", "content": prompt}}
    return Message(role="user", content=[parts[kind] for kind in CONTENT_ORDER])


@torch.inference_mode()
def greedy_generate(
    model: DeepFusionModel,
    transform: Llama3VisionTransform,
    messages: Sequence[Message],
    *,
    max_new_tokens: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    max_seq_len: int | None = None,
    all_finished: Callable[[bool], bool] | None = None,
) -> list[int]:
    """Greedily continue a conversation with an assistant turn.

    Caches are set up on the first call for ``max_seq_len`` tokens (unless the caller set
    them up, e.g. with torchtune's ``local_kv_cache``) and reset on every call, so one model
    can answer many prompts.

    Args:
        model (DeepFusionModel): the model, on ``device``, in eval mode.
        transform (Llama3VisionTransform): its transform (needs ``max_seq_len`` set).
        messages (Sequence[Message]): the conversation so far (at most one image).
        max_new_tokens (int): generation budget.
        device (torch.device | str): device of the model.
        dtype (torch.dtype): dtype of the caches (the model's dtype).
        max_seq_len (int | None): length of the KV cache and of the attention mask (the
            prompt plus the budget must fit); ``transform.max_seq_len`` if None. Caches set
            up by the caller must have this length.
        all_finished (Callable[[bool], bool] | None): for processes that share one model's
            forward passes (FSDP shards): called once per decoding step with whether this
            process has finished, it returns whether every process has; a process that has
            finished keeps stepping (its extra tokens discarded) until all have, so every
            process runs the same number of forward passes. None: stop on the stop token.

    Returns:
        list[int]: generated token ids, the stop token excluded; ``max_new_tokens`` ids when
        the budget ran out.

    Raises:
        ValueError: if the prompt plus the budget exceed ``max_seq_len``.
    """
    max_len = transform.max_seq_len if max_seq_len is None else max_seq_len
    conversation = [*messages, Message(role="assistant", content="")]
    sample = transform({"messages": conversation}, inference=True)
    seq_len = len(sample["tokens"])
    if max_len is None or seq_len + max_new_tokens > max_len:
        raise ValueError(
            f"prompt ({seq_len} tokens) + {max_new_tokens} new tokens exceed max_seq_len={max_len}"
        )
    if not model.caches_are_setup():
        with torch.device(device):
            model.setup_caches(
                batch_size=1,
                dtype=dtype,
                encoder_max_seq_len=transform.image_seq_len,
                decoder_max_seq_len=max_len,
            )
    model.reset_caches()
    causal = torch.tril(torch.ones(max_len, max_len, dtype=torch.bool, device=device))
    positions = torch.arange(max_len, device=device)

    has_image = bool(sample["encoder_input"]["images"])
    if has_image:
        batch = padded_collate_tiled_images_and_mask(
            [sample], pad_direction="left", pad_max_images=1, pad_max_tiles=transform.max_num_tiles
        )
        batch["encoder_mask"] = batch["encoder_mask"][:, :seq_len]
        tokens = batch.pop("tokens")
        batch["encoder_input"] = {
            "images": batch["encoder_input"]["images"].to(device=device, dtype=dtype),
            "aspect_ratio": batch["encoder_input"]["aspect_ratio"].to(device),
        }
        batch["encoder_mask"] = batch["encoder_mask"].to(device)
    else:
        batch = {}
        tokens = torch.tensor([sample["tokens"]])
    tokens = tokens.to(device)

    logits = model(tokens, mask=causal[None, :seq_len], input_pos=positions[None, :seq_len], **batch)
    token = logits[:, -1].argmax(dim=-1, keepdim=True)
    if has_image:
        batch.pop("encoder_input")
        batch["encoder_mask"] = batch["encoder_mask"][:, -1:]
    generated: list[int] = []
    stop = set(transform.stop_tokens)
    finished = False
    for _ in range(max_new_tokens):
        finished = finished or token.item() in stop
        if all_finished(finished) if all_finished is not None else finished:
            break
        if not finished:
            generated.append(token.item())
        logits = model(
            token, mask=causal[None, seq_len, None, :], input_pos=positions[None, seq_len], **batch
        )
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        seq_len += 1
    return generated
