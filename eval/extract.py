"""``python -m eval.extract --schema S.json``: score extraction of your JSON Schema against an OpenAI-compatible server.

The task is :mod:`eval.tasks.extract`; flags, files and exit statuses are those of every
evaluator (:mod:`eval.core.cli`); ``--help`` lists them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Optional

from eval.core.cli import main as run_task

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the evaluator.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 ok, 1 failed requests, 2 bad input, 130 interrupted).
    """
    return run_task("extract", argv)


if __name__ == "__main__":
    sys.exit(main())
