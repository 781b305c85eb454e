"""The schema-driven extraction task: ``python -m eval.extract --schema S.json``.

Example::

    python -m eval.extract --server_url http://127.0.0.1:8001/v1 --model 11B-lora-invoices \\
        --schema data/invoices/schema.json --dataset data/invoices/test --structured

The schema file (:mod:`eval.tasks.extract.schema`) defines the answer; the prompt is generated
from it (:mod:`eval.tasks.extract.answers`) unless ``--prompt_file`` gives one. ``--structured``
sends the schema (without ``x-`` keywords) as ``response_format``. Metrics
(:mod:`eval.tasks.extract.metrics`; definitions with examples in ``eval/tasks/extract/README.md``):
leaf accuracy normalised and strict, per-path accuracy (``items[].total``), item
precision/recall/F1 of order-insensitively matched arrays, character similarity of long text,
exact match, JSON-parse and schema-valid rates. ``per_path.csv`` in ``--output_dir`` lists the
per-path numbers.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from eval.core.client import response_format
from eval.core.report import pct
from eval.core.splits import RecordSplit, read_records, record_image
from eval.core.task import Response, Sample, Task
from eval.tasks.extract.answers import default_prompt, read_prompt_file, target_json
from eval.tasks.extract.metrics import aggregate_extract, score_extract
from eval.tasks.extract.reader import ExtractRecord, load_extract
from eval.tasks.extract.schema import ExtractSchema, load_schema

__all__ = ["ExtractTask", "TASK"]

PER_PATH_CSV = "per_path.csv"


class ExtractTask(Task):
    """Extraction of a JSON object defined by a user's JSON Schema (see :class:`eval.core.task.Task`).

    Args:
        schema (str | Path | ExtractSchema | None): the schema file (or a loaded schema).
        prompt_file (str | Path | None): a prompt file replacing the generated prompt
            (``{fields}`` and ``{schema}`` are filled in).

    Raises:
        ValueError: if no schema is given, or the schema or prompt file is unusable (names it).
        OSError: if a file cannot be read.
    """

    name = "extract"
    description = (
        "Score extraction of a JSON object defined by your JSON Schema (nested objects, lists, enums, "
        "numbers, dates) by a vision model served with an OpenAI-compatible API."
    )
    dataset_help = "a JSONL file (image, target, doc_id, page) or a directory holding data.jsonl"
    headline_metric = "accuracy"

    def __init__(
        self, schema: str | Path | ExtractSchema | None = None, prompt_file: str | Path | None = None
    ) -> None:
        if schema is None:
            raise ValueError("the extract task needs a JSON Schema file (--schema, or the schema option)")
        self.schema = schema if isinstance(schema, ExtractSchema) else load_schema(schema)
        self.prompt_file = None if prompt_file is None else str(prompt_file)
        self.prompt = (
            default_prompt(self.schema) if prompt_file is None else read_prompt_file(prompt_file, self.schema)
        )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """``--schema`` and ``--prompt_file``."""
        parser.add_argument(
            "--schema",
            default=None,
            help="JSON Schema file of the answer (required): objects, lists, enums, numbers, dates, strings",
        )
        parser.add_argument(
            "--prompt_file",
            "--prompt-file",
            default=None,
            help="prompt text file replacing the one generated from the schema ({fields} and {schema} "
            "are filled in)",
        )

    def options(self) -> dict[str, Any]:
        """The schema's title and hash, and the prompt (either changes what is asked)."""
        return {"schema_title": self.schema.title, "schema_sha256": self.schema.sha256, "prompt": self.prompt}

    def load(self, path: str | Path) -> RecordSplit:
        """Read the pages with :func:`~eval.tasks.extract.reader.load_extract` (targets validated).

        Raises:
            DatasetError: on a bad row or an empty dataset (names file and line).
        """
        return read_records(load_extract, path, self.schema)

    @staticmethod
    def sample_target(row: ExtractRecord) -> dict[str, Any]:
        """What a page's :attr:`Sample.target` holds: ``{"record_id", "doc_id", "page", "target"}``.

        Args:
            row (ExtractRecord): the page.

        Returns:
            dict[str, Any]: the sample target (``target`` is the gold object).
        """
        return {"record_id": row.id, "doc_id": row.doc_id, "page": row.page, "target": row.target}

    def sample(self, row: ExtractRecord, index: int) -> Sample:
        """The page image, the prompt and :meth:`sample_target`.

        Raises:
            InputError: if the image cannot be read or does not decode.
        """
        data, mime = record_image(row, index)
        return Sample(id=index, image=data, mime=mime, prompt=self.prompt, target=self.sample_target(row))

    def answer(self, target: Mapping[str, Any]) -> str:
        """The gold object (``target["target"]``) as JSON, keys in schema order, values unchanged."""
        return target_json(self.schema, target["target"])

    def instruction(self) -> str:
        """The prompt (generated from the schema, or the prompt file's)."""
        return self.prompt

    def json_schema(self) -> dict[str, Any]:
        """The schema sent as ``response_format`` (``x-`` keywords removed)."""
        return self.schema.response_schema()

    def response_format(self) -> Optional[dict[str, Any]]:
        """``json_schema``, strict, named after the schema's title (letters, digits, ``_``, ``-``)."""
        return response_format(self.schema.response_name(), self.json_schema(), strict=True)

    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """Score one reply with :func:`eval.tasks.extract.metrics.score_extract`."""
        score = score_extract(
            self.schema,
            sample.target["target"],
            response.content,
            answered=response.answered,
            finish_reason=response.finish_reason,
        )
        return {"record_id": sample.target["record_id"], "doc_id": sample.target["doc_id"], **score}

    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Aggregate with :func:`eval.tasks.extract.metrics.aggregate_extract`."""
        return aggregate_extract(scores)

    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Headline metrics, item matching, and the five weakest paths."""
        rows = [
            ("accuracy (normalised)", pct(metrics["accuracy"])),
            ("accuracy_strict", pct(metrics["accuracy_strict"])),
            (
                "exact match (normalised / strict)",
                f"{pct(metrics['exact_match'])} / {pct(metrics['exact_match_strict'])}",
            ),
        ]
        if metrics["items"]["gold"] or metrics["items"]["predicted"]:
            rows.append(
                (
                    "items precision / recall / F1",
                    f"{pct(metrics['item_precision'])} / {pct(metrics['item_recall'])} / {pct(metrics['item_f1'])}",
                )
            )
        if metrics["char_similarity"] is not None:
            rows.append(("character similarity", pct(metrics["char_similarity"])))
        rows += [
            ("JSON parse rate", pct(metrics["json_parse_rate"])),
            ("schema-valid rate", pct(metrics["schema_valid_rate"])),
        ]
        worst = sorted(metrics["per_path"].items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))[:5]
        rows += [(f"  weakest: {path}", pct(v["accuracy"])) for path, v in worst]
        return rows

    def chart_series(self, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """Per-path accuracy, normalised and strict."""
        per = metrics["per_path"]
        return {
            "normalised": {k: v["accuracy"] for k, v in per.items()},
            "strict": {k: v["accuracy_strict"] for k, v in per.items()},
        }

    def write_extras(
        self, out: Path, split: Any, scored: Sequence[tuple[int, Mapping[str, Any]]], title: str
    ) -> dict[str, str]:
        """``per_path.csv``: per path, leaves, accuracy normalised/strict, and list matching."""
        del split, title
        metrics = aggregate_extract([s for _, s in scored])
        with (out / PER_PATH_CSV).open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "leaves", "accuracy", "accuracy_strict", "char_similarity"])
            for path, v in metrics["per_path"].items():
                similar = metrics["per_path_char_similarity"].get(path)
                writer.writerow([path, v["n"], f"{v['accuracy']:.4f}", f"{v['accuracy_strict']:.4f}",
                                 "" if similar is None else f"{similar:.4f}"])  # fmt: skip
            writer.writerow([])
            writer.writerow(["list", "gold_items", "predicted_items", "matched", "precision", "recall", "f1"])
            for path, v in metrics["per_array"].items():
                cells = [v[k] for k in ("precision", "recall", "f1")]
                writer.writerow([path, v["gold"], v["predicted"], v["matched"],
                                 *("" if c is None else f"{c:.4f}" for c in cells)])  # fmt: skip
        return {"per_path_csv": PER_PATH_CSV}


TASK = ExtractTask
