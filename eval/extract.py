"""``python -m eval.extract --schema S.json``: score extraction of your JSON Schema against an OpenAI-compatible server.

The task is :mod:`eval.tasks.extract`; flags, files and exit statuses are those of every
evaluator (:mod:`eval.core.cli`); ``--help`` lists them.
"""

import sys

from eval.core.cli import entry

__all__ = ["main"]

main = entry("extract")

if __name__ == "__main__":
    sys.exit(main())
