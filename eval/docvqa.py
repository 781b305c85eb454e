"""``python -m eval.docvqa``: score document question answering against an OpenAI-compatible server.

The task is :mod:`eval.tasks.docvqa`; flags, files and exit statuses are those of every
evaluator (:mod:`eval.core.cli`); ``--help`` lists them.
"""

import sys

from eval.core.cli import entry

__all__ = ["main"]

main = entry("docvqa")

if __name__ == "__main__":
    sys.exit(main())
