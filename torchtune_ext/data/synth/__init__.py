"""Synthetic datasets, one generator per task, written in the layout the task's reader takes.

Each module ``torchtune_ext.data.synth.<task>`` is named after a task of the registry
(:mod:`eval.tasks`) and has ``add_arguments(parser)`` and ``run(args)``, the
``python -m torchtune_ext.data.synth <task>`` subcommand. Shared pieces: :mod:`.drawing`
(PIL helpers), :mod:`.scan` (scanner artefacts), :mod:`.w2_values` and :mod:`.w2_layout`
(the W-2 generator's values and page).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["add_split_arguments", "generator", "generator_names", "write_splits"]


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


def add_split_arguments(p: argparse.ArgumentParser, *, train: int, test: int) -> None:
    """The flags of a generator that writes ``OUT/train`` and ``OUT/test`` JSONL splits.

    Args:
        p (argparse.ArgumentParser): the subcommand's parser.
        train (int): default number of training examples.
        test (int): default number of test examples.
    """
    p.add_argument("--output-dir", type=Path, required=True, help="directory to write (created)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    p.add_argument("--train", type=int, default=train, help=f"training examples (default: {train})")
    p.add_argument("--test", type=int, default=test, help=f"test examples (default: {test})")


def write_splits(args: argparse.Namespace, generate: Callable[..., Any], **options: Any) -> int:
    """Run a split generator with the flags of :func:`add_split_arguments`, and say what it wrote.

    Args:
        args (argparse.Namespace): parsed flags (``output_dir``, ``seed``, ``train``, ``test``).
        generate (Callable[..., Any]): ``generate(output_dir, seed=, train=, test=, **options)``.
        **options (Any): the generator's own options.

    Returns:
        int: exit status (0 ok; 2 with ``error: ...`` on stderr for a bad size or option).
    """
    if args.train < 0 or args.test < 0:
        print("error: --train and --test must be >= 0", file=sys.stderr)
        return 2
    try:
        generate(args.output_dir, seed=args.seed, train=args.train, test=args.test, **options)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split in ("train", "test"):
        path = args.output_dir / split / "data.jsonl"
        with path.open(encoding="utf-8") as f:
            print(f"wrote {sum(1 for _ in f)} rows to {path}")
    return 0
