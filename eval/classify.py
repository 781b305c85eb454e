"""``python -m eval.classify``: score image classification over a closed label set against an OpenAI-compatible server.

The task is :mod:`eval.tasks.classify`; flags, files and exit statuses are those of every
evaluator (:mod:`eval.core.cli`); ``--help`` lists them.
"""

import sys

from eval.core.cli import entry

__all__ = ["main"]

main = entry("classify")

if __name__ == "__main__":
    sys.exit(main())
