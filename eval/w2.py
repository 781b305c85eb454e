"""``python -m eval.w2``: score W-2 form extraction against an OpenAI-compatible server.

The task is :mod:`eval.tasks.w2`; flags, files and exit statuses are those of every
evaluator (:mod:`eval.core.cli`); ``--help`` lists them.
"""

import sys

from eval.core.cli import entry

__all__ = ["main"]

main = entry("w2")

if __name__ == "__main__":
    sys.exit(main())
