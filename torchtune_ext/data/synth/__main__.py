"""``python -m torchtune_ext.data.synth TASK --output-dir OUT``: synthetic data for a task, offline.

Usage::

    python -m torchtune_ext.data.synth w2 --num 2000 --output-dir data/synth_w2 --seed 0
    python -m torchtune_ext.data.synth classify --output-dir data/classify
    python -m torchtune_ext.data.synth detect --output-dir data/detect --train 200
    python -m torchtune_ext.data.synth docvqa --output-dir data/docvqa --seed 1

``python -m torchtune_ext.data.synth TASK --help`` lists a generator's flags. The same seed
gives byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional

from torchtune_ext.data.synth import generator, generator_names

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.synth",
        description="Write a synthetic dataset for one task, offline and deterministic.",
    )
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    for name in generator_names():
        module = generator(name)
        sub = tasks.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        module.add_arguments(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the generator the first argument names.

    Args:
        argv (Optional[Sequence[str]]): ``TASK`` then its flags (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 on success, 2 on a bad argument).
    """
    args = _parser().parse_args(argv)
    return generator(args.task).run(args)


if __name__ == "__main__":
    sys.exit(main())
