"""Task definitions shared by training and evaluation (no torch here).

Each task module defines its schema, its one prompt and how a target is serialised.
This package also fixes the order of a user turn: the image first, then the text,
which is how torchtune's ``vqa_dataset`` and the Llama 3.2 Vision chat template train.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONTENT_ORDER", "openai_user_content"]

#: Order of the parts of the single user turn, in training and in evaluation.
CONTENT_ORDER: tuple[str, str] = ("image", "text")


def openai_user_content(image_url: str, prompt: str) -> list[dict[str, Any]]:
    """Build an OpenAI chat ``content`` list in :data:`CONTENT_ORDER`.

    Args:
        image_url (str): an ``http(s)://`` or ``data:image/...;base64,`` URL.
        prompt (str): the task's prompt.

    Returns:
        list[dict[str, Any]]: content parts, image first.
    """
    parts = {
        "image": {"type": "image_url", "image_url": {"url": image_url}},
        "text": {"type": "text", "text": prompt},
    }
    return [parts[kind] for kind in CONTENT_ORDER]
