"""Read a DocVQA dataset: JSONL rows ``image``, ``question``, ``answers`` (a list of strings,
or one string).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.core.records import DatasetRowError, Loaded, image_path, read_jsonl, resolve_jsonl, row_id

__all__ = ["DocVQARecord", "load_docvqa"]


@dataclass(frozen=True)
class DocVQARecord:
    """One DocVQA question.

    Attributes:
        id (str): unique id within the dataset.
        image (Path): absolute image path.
        question (str): the question.
        answers (tuple[str, ...]): gold answers (at least one).
    """

    id: str
    image: Path
    question: str
    answers: tuple[str, ...]


def load_docvqa(
    path: str | Path, *, skip_invalid: bool = False, limit: Optional[int] = None
) -> Loaded[DocVQARecord]:
    """Read a DocVQA dataset (``image``, ``question``, ``answers``).

    Args:
        path (str | Path): a JSONL file or a directory holding ``data.jsonl``.
        skip_invalid (bool): skip bad rows instead of raising.
        limit (Optional[int]): keep at most this many records.

    Returns:
        Loaded[DocVQARecord]: the questions.

    Raises:
        DatasetRowError: on a bad row (unless ``skip_invalid``).
    """
    source = resolve_jsonl(path)

    def parse(row: dict[str, Any], root: Path, where: str) -> DocVQARecord:
        rid = row_id(row, where)
        image = image_path(row, root, where)
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DatasetRowError(f"{where}: 'question' must be a non-empty string")
        answers = row.get("answers")
        if isinstance(answers, str):
            answers = [answers]
        if (
            not isinstance(answers, list)
            or not answers
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            raise DatasetRowError(f"{where}: 'answers' must be a non-empty list of non-empty strings")
        return DocVQARecord(rid, image, question.strip(), tuple(a.strip() for a in answers))

    records, skipped = read_jsonl(source, parse, skip_invalid, limit)
    return Loaded(records, source, skipped)
