"""The image-classification task: closed label set, one prompt, one answer format.

Training (``torchtune_ext.datasets.classify_dataset``) and evaluation
(``python -m eval.classify``) both import from here.

* **Labels** come from a labels file (:func:`load_labels`): one label per line, optional
  aliases after ``|``; blank lines and ``#`` comments are ignored. A ``.json`` file may hold a
  list of labels or an object ``{label: [aliases...]}``.
* **Prompt**: :func:`prompt` lists every label, in file order.
* **Answer**: the JSON object ``{"label": "<label>"}`` (:func:`target_json`). ``--structured``
  evaluation sends :func:`json_schema`, whose ``label`` is an ``enum`` of the labels, so a
  constrained server can only produce valid answers.
* **Canonicalisation** of free-form answers (:meth:`LabelSet.canonical`): NFKC, casefold,
  whitespace collapsed, surrounding quotes / backticks and one trailing ``.`` removed, then
  an exact lookup among the labels and their aliases. Nothing else is guessed: an answer that
  merely *contains* a label is invalid.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from eval.core.records import DatasetRowError, decode_utf8
from eval.core.replies import extract_json_value, strip_code_fences

__all__ = [
    "LABEL_KEY",
    "INVALID",
    "LabelSet",
    "LabelsFileError",
    "load_labels",
    "normalize_label",
    "prompt",
    "json_schema",
    "target_json",
    "parse_label",
]

#: Key of the single field of the answer object.
LABEL_KEY = "label"
#: Name of the bucket for answers that are not one of the labels (confusion-matrix column).
INVALID = "invalid"

_PROMPT_TEMPLATE = (
    "Which one of these labels fits this image? Labels: {labels}. "
    'Answer with JSON {{"label": "<one of the labels>"}}.'
)
_STRIP_CHARS = "\"'`\u201c\u201d\u2018\u2019 "


class LabelsFileError(ValueError):
    """A labels file is malformed; the message names the file and line."""


def normalize_label(text: str) -> str:
    """Normalise a label or an answer for lookup.

    NFKC, casefold and whitespace collapsed (the text normalisation of
    ``eval.core.values.normalize_text``; a task definition does not import metrics), then
    surrounding quotes / backticks and one trailing ``.`` removed.

    Args:
        text (str): a label, an alias or a model answer.

    Returns:
        str: the lookup key.
    """
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split()).strip(_STRIP_CHARS)
    if text.endswith("."):
        text = text[:-1].strip(_STRIP_CHARS)
    return text


@dataclass(frozen=True)
class LabelSet:
    """A closed, ordered set of labels with aliases.

    Args:
        labels (tuple[str, ...]): canonical labels, in display order.
        aliases (Mapping[str, str]): alias -> canonical label (as written; normalised on use).
    """

    labels: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels:
            raise ValueError("a label set needs at least one label")
        lookup: dict[str, str] = {}
        for label in self.labels:
            key = normalize_label(label)
            if not key:
                raise ValueError(f"empty label {label!r}")
            if key in lookup:
                raise ValueError(f"labels {lookup[key]!r} and {label!r} are the same after normalisation")
            lookup[key] = label
        for alias, label in self.aliases.items():
            if label not in self.labels:
                raise ValueError(f"alias {alias!r} points to unknown label {label!r}")
            key = normalize_label(alias)
            if lookup.get(key, label) != label:
                raise ValueError(f"alias {alias!r} of {label!r} clashes with {lookup[key]!r}")
            lookup[key] = label
        object.__setattr__(self, "_lookup", lookup)

    def canonical(self, text: str) -> Optional[str]:
        """Map a free-form answer to its canonical label.

        Args:
            text (str): the answer text (a bare label, not JSON).

        Returns:
            Optional[str]: the canonical label, or None if the answer is not a label or alias.
        """
        return self._lookup.get(normalize_label(text))  # type: ignore[attr-defined]

    def __contains__(self, label: object) -> bool:
        return label in self.labels

    def __len__(self) -> int:
        return len(self.labels)


def load_labels(path: str | Path) -> LabelSet:
    """Read a labels file.

    Text format: one label per line, aliases after ``|`` (``Mercedes-Benz | Mercedes | Benz``),
    ``#`` comments and blank lines ignored. JSON format (``.json``): a list of labels, or an
    object mapping each label to a list of aliases.

    Args:
        path (str | Path): the labels file.

    Returns:
        LabelSet: the labels in file order with their aliases.

    Raises:
        LabelsFileError: if the file is empty, not UTF-8 (names the line), malformed, or has
            duplicate / clashing entries.
        FileNotFoundError: if it does not exist.
    """
    path = Path(path)
    try:
        text = decode_utf8(path.read_bytes(), path)
    except DatasetRowError as e:
        raise LabelsFileError(str(e)) from None
    labels: list[str] = []
    aliases: dict[str, str] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabelsFileError(f"{path}: not valid JSON ({e})") from e
        if isinstance(data, list) and all(isinstance(x, str) for x in data):
            labels = list(data)
        elif isinstance(data, dict) and all(
            isinstance(v, list) and all(isinstance(a, str) for a in v) for v in data.values()
        ):
            labels = list(data)
            aliases = {a: label for label, v in data.items() for a in v}
        else:
            raise LabelsFileError(f"{path}: expected a list of labels or an object {{label: [aliases]}}")
        where = {label: f"{path}" for label in labels}
    else:
        where = {}
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = [p.strip() for p in line.split("|")]
            if not all(parts):
                raise LabelsFileError(f"{path}:{lineno}: empty label or alias in {raw!r}")
            label, *alias_list = parts
            if label in where:
                raise LabelsFileError(f"{path}:{lineno}: duplicate label {label!r}")
            where[label] = f"{path}:{lineno}"
            labels.append(label)
            for alias in alias_list:
                aliases[alias] = label
    if not labels:
        raise LabelsFileError(f"{path}: no labels")
    try:
        return LabelSet(tuple(labels), aliases)
    except ValueError as e:
        raise LabelsFileError(f"{path}: {e}") from e


def prompt(labels: LabelSet | Sequence[str]) -> str:
    """The one classification instruction, sent after the image.

    Args:
        labels (LabelSet | Sequence[str]): the label set (listed in its order).

    Returns:
        str: the prompt.
    """
    names = labels.labels if isinstance(labels, LabelSet) else tuple(labels)
    return _PROMPT_TEMPLATE.format(labels=", ".join(names))


def json_schema(labels: LabelSet | Sequence[str]) -> dict[str, Any]:
    """JSON schema of the answer, ``label`` constrained to an ``enum`` of the labels.

    Args:
        labels (LabelSet | Sequence[str]): the label set.

    Returns:
        dict[str, Any]: a strict-mode compatible object schema.
    """
    names = labels.labels if isinstance(labels, LabelSet) else tuple(labels)
    return {
        "title": "Classification",
        "type": "object",
        "properties": {LABEL_KEY: {"type": "string", "enum": list(names)}},
        "required": [LABEL_KEY],
        "additionalProperties": False,
    }


def target_json(label: str) -> str:
    """Serialise a ground-truth label as the answer the model learns.

    Args:
        label (str): the canonical label.

    Returns:
        str: ``{"label": "<label>"}`` (``json.dumps``, non-ASCII kept).
    """
    return json.dumps({LABEL_KEY: label}, ensure_ascii=False)


def parse_label(text: Optional[str], labels: LabelSet) -> Optional[str]:
    """Read the predicted label from a model response.

    Accepts the answer object (also inside code fences or surrounded by prose), a JSON string,
    or a bare label; the value is then canonicalised with :meth:`LabelSet.canonical`.

    Args:
        text (Optional[str]): the response content (None for a failed request).
        labels (LabelSet): the closed label set.

    Returns:
        Optional[str]: the canonical label, or None (the "invalid" bucket).
    """
    if text is None:
        return None
    value = extract_json_value(text)
    if isinstance(value, dict):
        inner = value.get(LABEL_KEY)
        return labels.canonical(inner) if isinstance(inner, str) else None
    if isinstance(value, str):
        return labels.canonical(value)
    return labels.canonical(strip_code_fences(text))
