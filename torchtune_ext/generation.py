"""Greedy generation for torchtune's ``DeepFusionModel`` (Llama 3.2 Vision).

torchtune 0.6.1's ``torchtune.generation.generate`` rejects ``DeepFusionModel``; this is the
KV-cache loop of torchtune's ``dev/generate_v2`` recipe as a function: prefill with the image
and the cross-attention mask, then one token at a time with the mask's last row. Several
conversations go in one batch the way ``torchtune.generation.generate`` batches prompts: left
padding, masked out of attention, with positions counted from each prompt's first token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torchtune.data import Message, padded_collate_tiled_images_and_mask
from torchtune.generation import get_causal_mask_from_padding_mask, get_position_ids_from_padding_mask
from torchtune.models.llama3_2_vision import Llama3VisionTransform
from torchtune.modules.model_fusion import DeepFusionModel

from eval.tasks import CONTENT_ORDER

__all__ = ["user_message", "greedy_generate", "greedy_generate_batch"]


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

    :func:`greedy_generate_batch` with one conversation.

    Args:
        model (DeepFusionModel): the model, on ``device``, in eval mode.
        transform (Llama3VisionTransform): its transform (needs ``max_seq_len`` set).
        messages (Sequence[Message]): the conversation so far (at most one image).
        max_new_tokens (int): generation budget.
        device (torch.device | str): device of the model.
        dtype (torch.dtype): dtype of the caches (the model's dtype).
        max_seq_len (int | None): length of the KV cache and of the attention mask; see
            :func:`greedy_generate_batch`.
        all_finished (Callable[[bool], bool] | None): see :func:`greedy_generate_batch`.

    Returns:
        list[int]: generated token ids, the stop token excluded; ``max_new_tokens`` ids when
        the budget ran out.

    Raises:
        ValueError: if the prompt plus the budget exceed ``max_seq_len``.
    """
    return greedy_generate_batch(
        model,
        transform,
        [messages],
        max_new_tokens=max_new_tokens,
        device=device,
        dtype=dtype,
        max_seq_len=max_seq_len,
        all_finished=all_finished,
    )[0]


@torch.inference_mode()
def greedy_generate_batch(
    model: DeepFusionModel,
    transform: Llama3VisionTransform,
    conversations: Sequence[Sequence[Message]],
    *,
    max_new_tokens: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    max_seq_len: int | None = None,
    all_finished: Callable[[bool], bool] | None = None,
) -> list[list[int]]:
    """Greedily continue several conversations at once, each with an assistant turn.

    Caches are set up on the first call for ``len(conversations)`` rows of ``max_seq_len``
    tokens (unless the caller set them up, e.g. with torchtune's ``local_kv_cache``, for as
    many rows) and reset on every call, so one model can answer many batches of that size.

    Args:
        model (DeepFusionModel): the model, on ``device``, in eval mode.
        transform (Llama3VisionTransform): its transform (needs ``max_seq_len`` set).
        conversations (Sequence[Sequence[Message]]): the conversations so far, each with one
            image, or none of them with an image.
        max_new_tokens (int): generation budget per conversation.
        device (torch.device | str): device of the model.
        dtype (torch.dtype): dtype of the caches (the model's dtype).
        max_seq_len (int | None): length of the KV cache and of the attention mask (the
            longest prompt plus the budget must fit); ``transform.max_seq_len`` if None. Caches
            set up by the caller must have this length.
        all_finished (Callable[[bool], bool] | None): for processes that share one model's
            forward passes (FSDP shards): called once per decoding step with whether every
            conversation here has finished, it returns whether every process's have; until
            then finished conversations keep stepping (their extra tokens discarded), so every
            process runs the same number of forward passes. None: stop when all here stopped.

    Returns:
        list[list[int]]: per conversation, the generated token ids, the stop token excluded;
        ``max_new_tokens`` ids when the budget ran out.

    Raises:
        ValueError: if a prompt plus the budget exceed ``max_seq_len``, or only some
            conversations hold an image.
    """
    max_len = transform.max_seq_len if max_seq_len is None else max_seq_len
    samples = [
        transform({"messages": [*messages, Message(role="assistant", content="")]}, inference=True)
        for messages in conversations
    ]
    prompt_len = max(len(s["tokens"]) for s in samples)
    if max_len is None or prompt_len + max_new_tokens > max_len:
        raise ValueError(
            f"prompt ({prompt_len} tokens) + {max_new_tokens} new tokens exceed max_seq_len={max_len}"
        )
    with_image = {bool(s["encoder_input"]["images"]) for s in samples}
    if len(with_image) > 1:
        raise ValueError("either every conversation in a batch holds an image or none does")
    batch_size = len(samples)
    if not model.caches_are_setup():
        with torch.device(device):
            model.setup_caches(
                batch_size=batch_size,
                dtype=dtype,
                encoder_max_seq_len=transform.image_seq_len,
                decoder_max_seq_len=max_len,
            )
    model.reset_caches()

    if with_image.pop():
        batch = padded_collate_tiled_images_and_mask(
            samples,
            padding_idx=transform.pad_id,
            pad_direction="left",
            pad_max_images=1,
            pad_max_tiles=transform.max_num_tiles,
        )
        tokens = batch.pop("tokens").to(device)
        extra = {
            "encoder_input": {
                "images": batch["encoder_input"]["images"].to(device=device, dtype=dtype),
                "aspect_ratio": batch["encoder_input"]["aspect_ratio"].to(device),
            },
            "encoder_mask": batch["encoder_mask"][:, :prompt_len].to(device),
        }
    else:
        rows = [[transform.pad_id] * (prompt_len - len(s["tokens"])) + s["tokens"] for s in samples]
        tokens = torch.tensor(rows, device=device)
        extra = {}
    # Left padding: attention skips the pad positions, each prompt's positions start at 0.
    padding = torch.nn.functional.pad(tokens != transform.pad_id, (0, max_new_tokens), value=True)
    masks = get_causal_mask_from_padding_mask(padding, target_seq_len=max_len)
    positions = get_position_ids_from_padding_mask(padding)

    logits = model(tokens, mask=masks[:, :prompt_len], input_pos=positions[:, :prompt_len], **extra)
    next_tokens = logits[:, -1].argmax(dim=-1)
    if extra:
        extra = {"encoder_mask": extra["encoder_mask"][:, -1:]}  # the image is in the cache now
    stop = set(transform.stop_tokens)
    generated: list[list[int]] = [[] for _ in range(batch_size)]
    finished = [False] * batch_size
    for step in range(max_new_tokens):
        for row, token in enumerate(next_tokens.tolist()):
            if not finished[row]:
                if token in stop:
                    finished[row] = True
                else:
                    generated[row].append(token)
        done = all(finished)
        if all_finished(done) if all_finished is not None else done:
            break
        pos = prompt_len + step
        logits = model(
            next_tokens[:, None], mask=masks[:, pos, None, :], input_pos=positions[:, pos, None], **extra
        )
        next_tokens = logits[:, -1].argmax(dim=-1)
    return generated
