"""Synthetic datasets, one generator per task, written in the layout the task's reader takes.

Each module ``torchtune_ext.data.synth.<task>`` is named after a task of the registry
(:mod:`eval.tasks`) and has ``add_arguments(parser)`` and ``run(args)``, the
``python -m torchtune_ext.data.synth <task>`` subcommand. Shared pieces: :mod:`.drawing`
(PIL helpers), :mod:`.scan` (scanner artefacts), :mod:`.w2_values` and :mod:`.w2_layout`
(the W-2 generator's values and page).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["generator", "generator_names"]


def generator_names() -> list[str]:
    """The registered tasks that have a generator here.

    Returns:
        list[str]: task names, sorted.
    """
    from eval.tasks import task_names

    return [name for name in task_names() if importlib.util.find_spec(f"{__name__}.{name}") is not None]


def generator(task: str) -> ModuleType:
    """The generator module of a task.

    Args:
        task (str): a name from :func:`generator_names`.

    Returns:
        ModuleType: the module (``add_arguments``, ``run``).

    Raises:
        KeyError: if the task has no generator (the message lists those that do).
    """
    if task not in generator_names():
        raise KeyError(f"no synthetic data generator for {task!r}; there are: {', '.join(generator_names())}")
    return importlib.import_module(f"{__name__}.{task}")
