"""The saved result of ``python -m eval.regress run``: one model, one directory.

Files:

* ``run.json`` — what was run (``identity``: server URL, kind and version, model, tasks, limit,
  where stop strings apply, lm_eval version, the server's quantization when stated), which leaf
  tasks each requested name expanded to (``tasks``), which requested names are lm_eval groups
  (``groups``: compared as one pooled set of items; a tag is compared task by task), and the
  status of each leaf task (``status``: ``done`` or the error).
* ``results.json`` — per leaf task: output type, item count, wall time, and each metric
  (``metric``, ``filter``, ``value``, lm_eval's ``stderr``, ``aggregation``,
  ``higher_is_better``).
* ``samples/<task>.jsonl`` — one line per item and filter: ``doc_id``, ``filter``, the lm_eval
  hashes of the document, prompt and target, ``target``, the model's ``reply`` (generate-until
  tasks, cut at the stop strings), the filtered ``response`` (for log-likelihood tasks: each
  option's ``[log-likelihood, is_greedy]``) and the item's ``metrics``. :mod:`eval.regress.compare` pairs items on ``doc_id`` and checks the
  prompt hashes agree.

A run directory is written task by task, so an interrupted run keeps every finished task; no
torch and no lm_eval are needed to read one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from eval.core.records import DatasetRowError, iter_jsonl, write_jsonl

__all__ = [
    "RESULTS_FILE",
    "RUN_FILE",
    "SAMPLES_DIR",
    "Run",
    "RunError",
    "jsonable",
    "load_run",
    "read_samples",
    "write_samples",
]

RUN_FILE = "run.json"
RESULTS_FILE = "results.json"
SAMPLES_DIR = "samples"


class RunError(Exception):
    """A run directory is missing, incomplete or unreadable (the message names the file)."""


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars, tuples and other odd types turned into plain JSON values.

    Args:
        value (Any): a value from lm_eval's results.

    Returns:
        Any: JSON-serialisable data (non-finite floats become None; unknown objects, strings).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunError(f"{path}: missing") from exc
    except ValueError as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from exc


def samples_path(run_dir: Path, task: str) -> Path:
    """``run_dir/samples/<task>.jsonl``.

    Args:
        run_dir (Path): the run directory.
        task (str): a leaf task name.

    Returns:
        Path: the file.
    """
    return Path(run_dir) / SAMPLES_DIR / f"{task}.jsonl"


def write_samples(path: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write per-item records as JSONL (atomically: a temp file, then a rename).

    Args:
        path (Path): destination.
        records (Iterable[Mapping[str, Any]]): the records.

    Returns:
        int: how many were written.
    """
    return write_jsonl(path, (jsonable(rec) for rec in records))


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Read a samples file.

    Args:
        path (Path): ``samples/<task>.jsonl``.

    Returns:
        list[dict[str, Any]]: the records.

    Raises:
        RunError: if it is missing, not UTF-8, or a line is not a JSON object (file and line named).
    """
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: missing")
    out: list[dict[str, Any]] = []
    try:
        for where, rec in iter_jsonl(path):
            if not isinstance(rec, dict):
                raise RunError(f"{where}: expected a JSON object")
            out.append(rec)
    except DatasetRowError as exc:
        raise RunError(str(exc)) from exc
    return out


@dataclass
class Run:
    """A run directory, read back.

    Attributes:
        path (Path): the directory.
        identity (dict[str, Any]): what was run (``run.json`` ``identity``).
        tasks (dict[str, list[str]]): requested name → its leaf tasks, in order.
        groups (list[str]): the requested names that are lm_eval groups (pooled).
        status (dict[str, str]): leaf task → ``done`` or an error message.
        results (dict[str, dict[str, Any]]): leaf task → its ``results.json`` entry.
    """

    path: Path
    identity: dict[str, Any]
    tasks: dict[str, list[str]]
    groups: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """str: the served model name the run evaluated."""
        return str(self.identity.get("model", "?"))

    def done(self, task: str) -> bool:
        """Whether leaf ``task`` finished and has results.

        Args:
            task (str): a leaf task name.

        Returns:
            bool: True when its status is ``done`` and its results are present.
        """
        return self.status.get(task) == "done" and task in self.results

    def samples(self, task: str) -> list[dict[str, Any]]:
        """The per-item records of a finished leaf task.

        Args:
            task (str): a leaf task name.

        Returns:
            list[dict[str, Any]]: see the module docstring.
        """
        return read_samples(samples_path(self.path, task))


def load_run(path: str | Path) -> Run:
    """Read a run directory (``run.json`` and ``results.json``).

    Args:
        path (str | Path): the directory ``python -m eval.regress run`` wrote.

    Returns:
        Run: the run.

    Raises:
        RunError: if the directory or a file is missing or malformed.
    """
    root = Path(path)
    if not root.is_dir():
        raise RunError(f"{root}: not a directory (expected a run directory of python -m eval.regress run)")
    meta = _read_json(root / RUN_FILE)
    if not isinstance(meta, dict) or not isinstance(meta.get("identity"), dict):
        raise RunError(f"{root / RUN_FILE}: no 'identity' object")
    tasks = meta.get("tasks")
    if not isinstance(tasks, dict) or not all(isinstance(v, list) for v in tasks.values()):
        raise RunError(f"{root / RUN_FILE}: 'tasks' must map each requested name to a list of tasks")
    results_path = root / RESULTS_FILE
    results: Optional[Any] = _read_json(results_path) if results_path.exists() else {"tasks": {}}
    if not isinstance(results, dict) or not isinstance(results.get("tasks"), dict):
        raise RunError(f"{results_path}: no 'tasks' object")
    return Run(
        path=root,
        identity=meta["identity"],
        tasks={str(k): [str(t) for t in v] for k, v in tasks.items()},
        groups=[str(g) for g in meta.get("groups") or []],
        status={str(k): str(v) for k, v in (meta.get("status") or {}).items()},
        results=results["tasks"],
    )
