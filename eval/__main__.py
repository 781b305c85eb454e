"""``python -m eval TASK [flags]``: evaluate any registered task (see :mod:`eval.tasks`).

``python -m eval --help`` lists the tasks; ``python -m eval TASK --help`` lists the flags.
``python -m eval.w2`` and the other per-task modules are shortcuts for the same.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Optional

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Dispatch to the task's evaluator.

    Args:
        argv (Optional[Sequence[str]]): ``TASK`` then its flags (default: ``sys.argv[1:]``).

    Returns:
        int: the evaluator's exit status (2 for an unknown task).
    """
    from eval.core.cli import main as run_task
    from eval.tasks import task_names

    argv = list(sys.argv[1:] if argv is None else argv)
    names = task_names()
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m eval TASK [flags]   (TASK: {' | '.join(names)})")
        print("Score a task against an OpenAI-compatible server; python -m eval TASK --help lists its flags.")
        return 0 if argv else 2
    if argv[0] not in names:
        print(f"error: unknown task {argv[0]!r}; known tasks: {', '.join(names)}", file=sys.stderr)
        return 2
    return run_task(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
