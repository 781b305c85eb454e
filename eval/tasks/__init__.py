"""The task registry: one folder per task, each defining one :class:`~eval.core.task.Task`.

A task is the folder ``eval/tasks/<name>/``: its definition (schema, prompt, target
serialisation, reply parsing), its record reader, its metrics, and ``task.py``, which ties
them together and sets ``TASK`` to its :class:`~eval.core.task.Task` subclass. The
evaluators (``python -m eval <name>``), the torchtune dataset builders, the training
recipes' validation and ``recipes/generate_vision.py`` all find tasks here, by name;
adding a folder adds a task (see ``eval/README.md``, "Add a task").

Nothing here imports torch, and looking a task up imports only that task.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import cache

from eval.core.task import CONTENT_ORDER, Task, openai_user_content

__all__ = ["CONTENT_ORDER", "UnknownTaskError", "get_task", "openai_user_content", "task_names"]


class UnknownTaskError(KeyError):
    """No task folder of that name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


@cache
def task_names() -> tuple[str, ...]:
    """Names of the registered tasks: the folders of ``eval/tasks`` that hold a ``task.py``.

    Returns:
        tuple[str, ...]: sorted task names.
    """
    names = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and importlib.util.find_spec(f"{__name__}.{info.name}.task") is not None:
            names.append(info.name)
    return tuple(sorted(names))


def get_task(name: str) -> type[Task]:
    """Look a task up by name.

    Args:
        name (str): e.g. ``"w2"``.

    Returns:
        type[Task]: the task's class (``eval/tasks/<name>/task.py``'s ``TASK``).

    Raises:
        UnknownTaskError: if there is no such task (the message lists the known ones).
    """
    if name not in task_names():
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    task = importlib.import_module(f"{__name__}.{name}.task").TASK
    if not (isinstance(task, type) and issubclass(task, Task) and task.name == name):
        raise TypeError(f"eval/tasks/{name}/task.py: TASK must be a Task subclass named {name!r}")
    return task
