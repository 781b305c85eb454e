"""torchtune-ext evaluation: score any OpenAI-compatible server on document tasks.

This package imports without torch; it runs in a light client environment. Layout:

* :mod:`eval.tasks`: one folder per task (definition, reader, metrics, ``task.py``) and the
  registry (:func:`~eval.tasks.get_task`);
* :mod:`eval.core`: the run path every task shares (client, runner, report, splits, reply
  parsing, the command line);
* :mod:`eval.serve`: start, check and stop a server for a model directory;
* ``python -m eval TASK`` (or ``python -m eval.w2`` and the other per-task modules) runs an
  evaluation; ``python -m eval.serve`` serves a model and evaluates it.

Public names are loaded on first use, so ``import eval.tasks`` from the training side stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Task": "eval.core.task",
    "Sample": "eval.core.task",
    "Response": "eval.core.task",
    "RetryPolicy": "eval.core.runner",
    "ResultsLog": "eval.core.runner",
    "send_rows": "eval.core.runner",
    "summarize": "eval.core.runner",
    "ChatClient": "eval.core.client",
    "response_format": "eval.core.client",
    "build_parser": "eval.core.cli",
    "run": "eval.core.cli",
    "load_arrow_split": "eval.core.splits",
    "InputError": "eval.core.splits",
    "DatasetError": "eval.core.splits",
    "ImageError": "eval.core.images",
    "MAX_IMAGE_PIXELS": "eval.core.images",
    "extract_json_object": "eval.core.replies",
    "extract_json_value": "eval.core.replies",
    "bounded_json_schema": "eval.core.schema_bounds",
    "get_task": "eval.tasks",
    "task_names": "eval.tasks",
    "start_server": "eval.serve",
    "ServerProcess": "eval.serve",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
