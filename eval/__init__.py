"""torchtune-ext evaluation: score any OpenAI-compatible server on document tasks.

This package imports without torch; it runs in a light client environment. Its public names
are loaded on first use (``import eval.tasks`` from the training side stays light):

* runner and task protocol: :class:`~eval.runner.TaskAdapter`, :class:`~eval.runner.Example`,
  :class:`~eval.runner.Response`, :func:`~eval.runner.run`, :func:`~eval.runner.summarize`,
  :class:`~eval.runner.RetryPolicy`, :class:`~eval.runner.ResultsLog`;
* client: :class:`~eval.client.ChatClient`, :func:`~eval.client.response_format`;
* CLI: :func:`~eval.cli.build_parser`, :func:`~eval.cli.main_for_task`;
* data: :func:`~eval.data.load_split`, :class:`~eval.data.InputError`;
* parsing: :func:`~eval.parsing.extract_json_object`;
* serving: :func:`~eval.serve.start_server`, :class:`~eval.serve.ServerProcess`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TaskAdapter": "eval.runner",
    "Example": "eval.runner",
    "Response": "eval.runner",
    "RetryPolicy": "eval.runner",
    "ResultsLog": "eval.runner",
    "run": "eval.runner",
    "summarize": "eval.runner",
    "ChatClient": "eval.client",
    "response_format": "eval.client",
    "build_parser": "eval.cli",
    "main_for_task": "eval.cli",
    "load_split": "eval.data",
    "InputError": "eval.data",
    "extract_json_object": "eval.parsing",
    "start_server": "eval.serve",
    "ServerProcess": "eval.serve",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
