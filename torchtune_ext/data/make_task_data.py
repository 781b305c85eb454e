"""Generate offline synthetic data for the classification, detection and DocVQA tasks.

Usage::

    python -m torchtune_ext.data.make_task_data classify --output-dir data/classify
    python -m torchtune_ext.data.make_task_data detect --output-dir data/detect --train 200
    python -m torchtune_ext.data.make_task_data docvqa --output-dir data/docvqa --seed 1

Each writes ``OUT/train`` and ``OUT/test`` (``data.jsonl`` plus images); classification also
writes ``OUT/labels.txt``. The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from torchtune_ext.data.synthetic_classify import BRANDS, generate_classify
from torchtune_ext.data.synthetic_detect import generate_detect
from torchtune_ext.data.synthetic_docvqa import generate_docvqa

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.make_task_data",
        description="Write a small synthetic dataset (train + test splits) for one task, offline.",
    )
    tasks = parser.add_subparsers(dest="task", required=True, metavar="TASK")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output-dir", type=Path, required=True, help="directory to write (created)")
    common.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    common.add_argument("--train", type=int, default=None, help="training examples (task default if omitted)")
    common.add_argument("--test", type=int, default=None, help="test examples (task default if omitted)")

    c = tasks.add_parser("classify", parents=[common], help="brand logos, folder tree + JSONL + labels.txt")
    c.add_argument(
        "--num-labels", type=int, default=4, help=f"number of brands, 2-{len(BRANDS)} (default: 4)"
    )
    c.add_argument("--size", type=int, default=112, help="image side in pixels (default: 112)")
    tasks.add_parser("detect", parents=[common], help="product photos with nutrition tables and their boxes")
    d = tasks.add_parser("docvqa", parents=[common], help="document pages with question/answer pairs")
    d.add_argument("--questions-per-page", type=int, default=2, help="questions per page, 1-6 (default: 2)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 on success, 2 on a bad argument).
    """
    args = _parser().parse_args(argv)
    sizes = {k: v for k, v in (("train", args.train), ("test", args.test)) if v is not None}
    if any(v < 0 for v in sizes.values()):
        print("error: --train and --test must be >= 0", file=sys.stderr)
        return 2
    try:
        if args.task == "classify":
            generate_classify(
                args.output_dir, seed=args.seed, num_labels=args.num_labels, size=args.size, **sizes
            )
        elif args.task == "detect":
            generate_detect(args.output_dir, seed=args.seed, **sizes)
        else:
            generate_docvqa(
                args.output_dir, seed=args.seed, questions_per_page=args.questions_per_page, **sizes
            )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split in ("train", "test"):
        path = args.output_dir / split / "data.jsonl"
        with path.open(encoding="utf-8") as f:
            print(f"wrote {sum(1 for _ in f)} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
