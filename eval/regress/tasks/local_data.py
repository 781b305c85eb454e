"""Dataset loader of the shipped offline tasks: reads the JSONL beside the task YAMLs.

The task YAMLs name it as ``custom_dataset: !function local_data.load`` with
``dataset_kwargs: {data_files: data/NAME.jsonl}``; a relative path is taken from this folder, so
the tasks run from any working directory (``dataset_path: json`` would resolve it against the
current directory). Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.core.records import iter_jsonl

HERE = Path(__file__).resolve().parent


def load(data_files: str, split: str = "test", **_: Any) -> Any:
    """Read one JSONL file into a ``datasets.DatasetDict`` with a single split.

    Args:
        data_files (str): the JSONL file, relative to this folder or absolute.
        split (str): the split name the task YAML reads (``test_split``).
        **_ (Any): task metadata lm_eval passes along (unused).

    Returns:
        datasets.DatasetDict: ``{split: Dataset}``.

    Raises:
        ValueError: for a line that is not a JSON object (file and line named).
    """
    from datasets import Dataset, DatasetDict

    path = Path(data_files)
    path = path if path.is_absolute() else HERE / path
    rows = []
    for where, row in iter_jsonl(path):  # names the file and line of a bad one
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return DatasetDict({split: Dataset.from_list(rows)})
