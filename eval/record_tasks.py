"""Running the JSONL-based tasks (classification, detection, DocVQA) on the shared runner.

These evaluators read their datasets with :mod:`eval.tasks.records` (the readers the torchtune
builders use) and hand them to :func:`eval.cli.run_from_args` through :class:`RecordSplit`:
row ``i`` is the ``i``-th record, and the dataset hash that ``--resume`` checks covers the
JSONL file and every image's bytes. :func:`run_record_task` adds one thing to the shared CLI:
after the run, a task may write extra files (confusion matrix, overlays) from the scores in
the log; they are listed under ``files`` in ``report.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from eval.data import DatasetError, read_image_bytes
from eval.tasks.records import DatasetRowError, Loaded

__all__ = ["RecordSplit", "build_task_parser", "load_records", "record_image", "run_record_task"]

#: ``after(output_dir, split, [(row id, score), ...])`` writes extra files from the scores of the
#: selected rows and returns ``{report key: file name}``.
AfterRun = Callable[[Path, "RecordSplit", list[tuple[int, Mapping[str, Any]]]], Mapping[str, str]]


class RecordSplit:
    """Validated task records, addressed by index, as :class:`eval.runner.run` expects.

    Args:
        loaded (Loaded[Any]): what an :mod:`eval.tasks.records` reader returned.
        columns (Sequence[str]): field names of the records (for messages).
        context (Optional[Mapping[str, Any]]): settings that change what is asked (label set,
            prompt); hashed with the data so ``--resume`` refuses to mix runs that differ.
    """

    image_column = "image"

    def __init__(
        self, loaded: Loaded[Any], columns: Sequence[str], context: Optional[Mapping[str, Any]] = None
    ) -> None:
        self.loaded = loaded
        self._context = json.dumps(context or {}, sort_keys=True, ensure_ascii=False).encode()
        self.path = loaded.source
        self.records = loaded.records
        self._columns = list(columns)
        self._sha256: Optional[str] = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def columns(self) -> list[str]:
        """list[str]: field names of the records."""
        return list(self._columns)

    def row(self, index: int) -> dict[str, Any]:
        """The record at ``index``, as ``{"record": record}``.

        Args:
            index (int): position in the dataset.

        Returns:
            dict[str, Any]: the row.
        """
        return {"record": self.records[index]}

    def sha256(self) -> str:
        """Content hash: the context, the JSONL file (if any), then each record's id, image name and bytes.

        Returns:
            str: hex digest.
        """
        if self._sha256 is None:
            digest = hashlib.sha256(self._context + b"\0")
            if self.path.is_file():
                digest.update(self.path.read_bytes())
            for record in self.records:
                digest.update(str(record.id).encode() + b"\0" + record.image.name.encode() + b"\0")
                try:
                    digest.update(record.image.read_bytes())
                except OSError:
                    digest.update(b"<unreadable>")
            self._sha256 = digest.hexdigest()
        return self._sha256


def load_records(
    reader: Callable[..., Loaded[Any]],
    columns: Sequence[str],
    context: Optional[Mapping[str, Any]] = None,
    **kwargs: Any,
) -> Callable[[str], RecordSplit]:
    """A ``load`` function for :func:`eval.cli.run_from_args` that uses a records reader.

    Args:
        reader (Callable[..., Loaded[Any]]): e.g. :func:`eval.tasks.records.load_detect`.
        columns (Sequence[str]): the record fields (for messages).
        context (Optional[Mapping[str, Any]]): see :class:`RecordSplit`.
        **kwargs (Any): passed to the reader.

    Returns:
        Callable[[str], RecordSplit]: path -> split; raises
        :class:`~eval.data.DatasetError` (one line, naming file and row) on a bad dataset.
    """

    def load(path: str) -> RecordSplit:
        try:
            loaded = reader(path, **kwargs)
        except (DatasetRowError, FileNotFoundError, ValueError) as exc:
            raise DatasetError(str(exc)) from exc
        if not loaded.records:
            raise DatasetError(f"{loaded.source}: no records")
        return RecordSplit(loaded, columns, context)

    return load


def record_image(record: Any, row_id: int) -> tuple[bytes, str]:
    """Read a record's image file as stored, checking that it decodes.

    Args:
        record (Any): a record with an ``image`` path.
        row_id (int): its index, for messages.

    Returns:
        tuple[bytes, str]: the encoded bytes and the MIME type.

    Raises:
        InputError: if the file cannot be read or does not decode (names the row).
    """
    return read_image_bytes({"bytes": None, "path": str(record.image)}, row_id, "image")


def build_task_parser(task: str, description: str, dataset_help: str) -> argparse.ArgumentParser:
    """The shared evaluator flags (:func:`eval.cli.build_parser`), with this task's ``--dataset`` help.

    Args:
        task (str): task name.
        description (str): the ``--help`` description.
        dataset_help (str): what ``--dataset`` accepts for this task.

    Returns:
        argparse.ArgumentParser: the parser; the task adds its own flags.
    """
    from eval.cli import build_parser

    parser = build_parser(task, description)
    for action in parser._actions:  # argparse has no public way to edit a help text
        if action.dest == "dataset":
            action.help = dataset_help
    return parser


def run_record_task(
    task: str,
    args: argparse.Namespace,
    adapter: Any,
    load: Callable[[str], RecordSplit],
    after: Optional[AfterRun] = None,
) -> int:
    """Run a record-based task through the shared CLI, then its ``after`` hook.

    Args:
        task (str): task name.
        args (argparse.Namespace): from :func:`eval.cli.build_parser` plus the task's flags.
        adapter (Any): the task adapter.
        load (Callable[[str], RecordSplit]): from :func:`load_records`.
        after (Optional[AfterRun]): writes extra files into ``--output_dir`` from the scores.

    Returns:
        int: the exit status of the run (2 with ``error: ...`` on bad input).
    """
    from eval.cli import PREDICTIONS, REPORT, CLIError, run_from_args
    from eval.report import write_json
    from eval.runner import ResultsLog

    splits: list[RecordSplit] = []

    def load_and_remember(path: str) -> RecordSplit:
        splits.append(load(path))
        return splits[-1]

    try:
        status = run_from_args(args, lambda _args, _split: adapter, task=task, load=load_and_remember)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    report_path = out / REPORT
    if after is None or not splits or not report_path.exists():
        return status
    split = splits[0]
    n = len(split) if args.limit <= 0 else min(args.limit, len(split))
    records = ResultsLog(out / PREDICTIONS).read()
    scores = [
        (i, records[i]["score"]) for i in range(n) if i in records and records[i].get("score") is not None
    ]
    if scores:
        files = after(out, split, scores)
        report = json.loads(report_path.read_text())
        report.setdefault("files", {}).update(files)
        write_json(report_path, report)
    return status
