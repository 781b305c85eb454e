"""What a task is, for the shared evaluator and for training: the :class:`Task` interface.

A task says how a dataset row is asked (an image and a prompt), what the model should answer
(the target serialisation training learns), and how a reply is scored. The evaluator's run
path (:mod:`eval.core.cli`, :mod:`eval.core.runner`), the torchtune dataset builders, the
validation of the training recipes and the generation recipe all go through it, so every one
of them asks, teaches and scores the same way.

Every task lives in one folder, ``eval/tasks/<name>/``, with a ``task.py`` that defines
``TASK``, its :class:`Task` subclass (see :mod:`eval.tasks` for the registry). No torch here.
"""

from __future__ import annotations

import argparse
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Protocol

__all__ = [
    "CONTENT_ORDER",
    "UNBOUNDED_MAX_TOKENS",
    "Response",
    "Sample",
    "Split",
    "Task",
    "answer_token_budget",
    "openai_user_content",
]

#: Order of the parts of the single user turn, in training and in evaluation: the image first,
#: then the text, which is how torchtune's ``vqa_dataset`` and the Llama 3.2 Vision chat
#: template train.
CONTENT_ORDER: tuple[str, str] = ("image", "text")


#: The completion token limit for a task whose answers have no length bound (the reference's).
UNBOUNDED_MAX_TOKENS = 8192
#: Margin of the default token budget over the longest valid answer: x1.25, plus 64 tokens for
#: a code fence or a sentence around the JSON.
TOKEN_MARGIN = 1.25
TOKEN_OVERHEAD = 64


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


class Split(Protocol):
    """One split of a dataset, as a task reads it: rows addressed by index.

    Attributes:
        path (Path): where it was read from (for messages and the report).
    """

    path: Path

    def __len__(self) -> int: ...

    def row(self, index: int) -> Any:
        """The raw row at ``index`` (what :meth:`Task.sample` takes)."""
        ...

    def sha256(self) -> str:
        """Content hash of the data, checked by ``--resume``."""
        ...


@dataclass(frozen=True)
class Sample:
    """One dataset row as the model is asked it.

    Attributes:
        id (int): row index in the split (the id every result record carries).
        image (bytes): the encoded image, as stored (checked to decode).
        mime (str): its MIME type, e.g. ``image/png``.
        prompt (str): the task's prompt for this row.
        target (Any): what the task needs to score an answer (JSON-serialisable).
    """

    id: int
    image: bytes
    mime: str
    prompt: str
    target: Any


@dataclass
class Response:
    """The outcome of asking one sample (after retries), from a server or a local model.

    Attributes:
        status (str): ``ok``, ``request_failed`` or ``http_error``.
        content (Optional[str]): the reply text when ``ok``.
        finish_reason (Optional[str]): the choice's finish reason when ``ok`` (``"length"``:
            cut by the token limit).
        usage (Optional[dict[str, Any]]): the server's ``usage`` when ``ok``.
        latency_s (Optional[float]): duration of the answered attempt.
        attempts (int): attempts made.
        elapsed_s (float): total time including back-off.
        error (Optional[str]): failure message (the server's own for ``http_error``).
        http_status (Optional[int]): HTTP status of the failure, if any.
    """

    status: str
    content: Optional[str] = None
    finish_reason: Optional[str] = None
    usage: Optional[dict[str, Any]] = None
    latency_s: Optional[float] = None
    attempts: int = 0
    elapsed_s: float = 0.0
    error: Optional[str] = None
    http_status: Optional[int] = None

    @property
    def answered(self) -> bool:
        """bool: True when a completion came back."""
        return self.status == "ok"


class Task(ABC):
    """A document task: how a row is asked, what the model learns to answer, how a reply scores.

    Score dictionaries are free-form JSON for the task's own :meth:`aggregate`, with three
    optional keys the runner reads for the failure table: ``parsed`` (bool: an answer was
    read), ``failure`` (None, ``"truncated"`` or ``"invalid_json"``) and ``schema_valid``
    (bool, when the task has a schema).

    Class attributes:
        name: the registry name (``python -m eval <name>``).
        description: the evaluator's ``--help`` description.
        dataset_help: what ``--dataset`` accepts.
        headline_metric: the key of :meth:`aggregate`'s result that ranks runs (validation,
            keep-best, the demo's table); higher is better.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    dataset_help: ClassVar[str]
    headline_metric: ClassVar[str]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the task's own evaluator flags (none by default).

        Their ``dest`` names are the task's options (:meth:`from_options`), and ``__init__``
        takes them as keyword arguments; a flag must not be ``required`` (``__init__`` says
        what is missing instead), so that every option has a default.

        Args:
            parser (argparse.ArgumentParser): the evaluator's parser.
        """
        del parser

    @classmethod
    def from_options(cls, **options: Any) -> Task:
        """Build the task from named options: the ``dest`` names of its evaluator flags.

        This is how configs name a task's options (``task_options: {labels: ...}`` in a
        recipe config); options left out take the flags' defaults.

        Args:
            **options (Any): e.g. ``labels="data/cars/labels.txt"``.

        Returns:
            Task: the task.

        Raises:
            ValueError: for an unknown option (the message lists the valid ones) or a bad value.
        """
        defaults = cls.option_defaults()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            valid = ", ".join(sorted(defaults)) or "none"
            raise ValueError(f"task {cls.name!r} has no option {', '.join(unknown)}; its options: {valid}")
        return cls(**{**defaults, **options})

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """The task's options (:meth:`add_arguments`' flags, by ``dest``) and their defaults.

        Returns:
            dict[str, Any]: option name -> default.
        """
        parser = argparse.ArgumentParser(add_help=False)
        cls.add_arguments(parser)
        return vars(parser.parse_args([]))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Task:
        """Build the task from parsed evaluator flags (:meth:`from_options` with its own flags).

        Args:
            args (argparse.Namespace): the parsed flags.

        Returns:
            Task: the task.

        Raises:
            ValueError: for a bad task option (the message names the flag or file).
        """
        return cls.from_options(**{name: getattr(args, name) for name in cls.option_defaults()})

    @abstractmethod
    def load(self, path: str | Path) -> Split:
        """Read one split.

        Args:
            path (str | Path): what ``--dataset`` names.

        Returns:
            Split: the rows.

        Raises:
            eval.core.splits.DatasetError: if the split cannot be used at all (names the path).
        """

    @abstractmethod
    def sample(self, row: Any, index: int) -> Sample:
        """Turn a row into what the model is asked, and what scores the answer.

        Args:
            row (Any): ``split.row(index)``.
            index (int): its index.

        Returns:
            Sample: image, prompt and target.

        Raises:
            eval.core.splits.InputError: if the row cannot be used (names the row and column).
        """

    @abstractmethod
    def answer(self, target: Any) -> str:
        """The reply the model learns for a target (the training side's assistant turn).

        Args:
            target (Any): a :attr:`Sample.target`.

        Returns:
            str: the canonical answer text.
        """

    def instruction(self) -> Optional[str]:
        """The prompt for an image alone, when the task has one fixed prompt.

        Returns:
            Optional[str]: the prompt, or None when it depends on the row (e.g. a question).
        """
        return None

    def json_schema(self) -> Optional[dict[str, Any]]:
        """The JSON schema of an answer, if the task has one (sent by ``--structured``).

        Returns:
            Optional[dict[str, Any]]: the schema, or None.
        """
        return None

    def response_format(self) -> Optional[dict[str, Any]]:
        """The ``response_format`` sent with ``--structured``: :meth:`json_schema`, strict.

        Returns:
            Optional[dict[str, Any]]: None if the task has no schema.
        """
        from eval.core.client import response_format

        schema = self.json_schema()
        if schema is None:
            return None
        return response_format(str(schema.get("title") or self.name), schema, strict=True)

    def max_answer_chars(self, max_string_chars: int) -> Optional[int]:
        """Characters of the longest valid answer, the bound the default token budget comes from.

        By default: the longest JSON text the task's schema allows once bounded
        (:func:`eval.core.schema_bounds.json_text_bound`: strings of ``max_string_chars``
        characters unless the schema says otherwise, numbers within +-1e9, at most 64 list
        items, labels from an ``enum``). A task overrides it when its answers have a natural
        length the schema does not state.

        Args:
            max_string_chars (int): the longest free string value (``--max_string_chars``).

        Returns:
            Optional[int]: the length, or None when answers have no bound.
        """
        from eval.core.schema_bounds import json_text_bound

        schema = self.json_schema()
        return None if schema is None else json_text_bound(schema, max_string_chars)

    def options(self) -> dict[str, Any]:
        """Settings that change what is asked (label set, object name); ``--resume`` checks them.

        Returns:
            dict[str, Any]: JSON-serialisable settings (empty by default).
        """
        return {}

    @abstractmethod
    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """Score one reply, including failed requests (``response.answered`` is False).

        Args:
            sample (Sample): what was asked.
            response (Response): what came back.

        Returns:
            dict[str, Any]: a JSON-serialisable score.
        """

    @abstractmethod
    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Task metrics over all scored samples.

        Args:
            scores (Sequence[Mapping[str, Any]]): one score per scored sample.

        Returns:
            dict[str, Any]: JSON-serialisable metrics, :attr:`headline_metric` among them.
        """

    @abstractmethod
    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Rows (name, formatted value) for the terminal summary table.

        Args:
            metrics (Mapping[str, Any]): from :meth:`aggregate`.

        Returns:
            list[tuple[str, str]]: the rows.
        """

    def chart_series(self, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """Per-item bars for the report chart: ``{series: {label: value in [0, 1]}}`` (may be empty).

        Args:
            metrics (Mapping[str, Any]): from :meth:`aggregate`.

        Returns:
            dict[str, dict[str, float]]: the series.
        """
        return {}

    @property
    def chart_file(self) -> str:
        """str: file name of the report chart in ``--output_dir``."""
        return f"{self.name}_per_field.png"

    def write_extras(
        self, out: Path, split: Split, scored: Sequence[tuple[int, Mapping[str, Any]]], title: str
    ) -> dict[str, str]:
        """Write extra report files (confusion matrix, overlays) from the scores of a run.

        Args:
            out (Path): the output directory.
            split (Split): the evaluated split.
            scored (Sequence[tuple[int, Mapping[str, Any]]]): ``(row id, score)`` of the
                selected rows that have a score.
            title (str): a title naming the run (task and model).

        Returns:
            dict[str, str]: ``{report key: file name in out}`` (empty by default).
        """
        return {}


def answer_token_budget(task: Task, max_string_chars: int) -> int:
    """The default completion token limit of a task: its longest valid answer, with margin.

    ``ceil(1.25 * chars) + 64`` where ``chars`` is :meth:`Task.max_answer_chars`: one token per
    character is an upper bound for ASCII text under a byte-level BPE tokenizer such as Llama
    3's (real answers take 3-4 times fewer), the 25 % covers indentation and line breaks, and
    the 64 tokens a code fence or a sentence around the JSON. A task without a bound gets
    :data:`UNBOUNDED_MAX_TOKENS`.

    Args:
        task (Task): the task.
        max_string_chars (int): the longest free string value.

    Returns:
        int: the token limit.
    """
    chars = task.max_answer_chars(max_string_chars)
    if chars is None:
        return UNBOUNDED_MAX_TOKENS
    return math.ceil(TOKEN_MARGIN * chars) + TOKEN_OVERHEAD
