"""Seed-compatible preparation of the W-2 dataset (the llama-cookbook ``prepare_dataset.py`` step).

Same operations, same order, same library calls, so the real dataset yields the very rows
the reference recipe trained and evaluated on:

1. ``train`` + ``test`` merged, in that order (``load_dataset(name, split="train+test")``);
2. ``train_test_split(train_size=ratio, seed=seed)`` (HF ``datasets``' own shuffle);
3. the original ``validation`` split kept as is;
4. ``ground_truth`` replaced by ``json.dumps`` of its ``gt_parse`` dict (already-flat
   ground truth is kept flat), and an ``input`` column holding the task prompt added;
5. ``save_to_disk`` of a ``DatasetDict`` with ``train``/``validation``/``test``.

The source is a directory written by :mod:`torchtune_ext.data.synth.w2` (or any
``save_to_disk`` ``DatasetDict`` in that layout) or a Hugging Face dataset id, which loads
from the local HF cache or the Hub.

Example::

    python -m torchtune_ext.data.prepare_w2 --train-ratio 0.3 --seed 42 --source data/synth_w2
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from eval.tasks.w2 import PROMPT

__all__ = ["DEFAULT_SOURCE", "PrepareError", "default_output_name", "prepare_w2", "main"]

#: The reference recipe's dataset.
DEFAULT_SOURCE = "singhsays/fake-w2-us-tax-form-dataset"
_REQUIRED_SPLITS = ("train", "validation", "test")
_REQUIRED_COLUMNS = ("image", "ground_truth")


class PrepareError(ValueError):
    """A source that cannot be prepared (missing split/column, bad ground truth, no access)."""


def default_output_name(source: str, train_ratio: float) -> str:
    """Directory name the reference recipe uses, e.g. ``fake_w2_us_tax_form_dataset_train30_test70``.

    Args:
        source (str): HF id (``owner/name``) or local directory.
        train_ratio (float): share of the merged rows that go to ``train``.

    Returns:
        str: ``<name with - as _>_train<pct>_test<100-pct>``.
    """
    name = Path(source.rstrip("/\\")).name or "dataset"
    name = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")
    pct = round(train_ratio * 100)
    return f"{name}_train{pct}_test{100 - pct}"


def _load(source: str):  # -> datasets.DatasetDict
    import datasets
    from huggingface_hub import constants as hub_constants

    path = Path(source)
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except FileNotFoundError as e:
            raise PrepareError(f"{source} is not a dataset saved with save_to_disk: {e}") from None
        if isinstance(ds, datasets.Dataset):
            raise PrepareError(
                f"{source} holds a single split; expected a DatasetDict directory with "
                f"{'/'.join(_REQUIRED_SPLITS)} subdirectories"
            )
        return ds
    if path.suffix or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise PrepareError(f"source {source} does not exist (expected a local directory or a HF dataset id)")
    offline = not _hub_reachable()
    saved = datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE
    if offline:  # use the local cache only instead of retrying the Hub for half a minute
        datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        return datasets.load_dataset(source)
    except Exception as e:  # the Hub client raises many types: offline, not found, gated
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PrepareError(
            f"cannot load HF dataset {source!r} from the local cache or the Hub "
            f"(offline or not downloaded?): {reason}"
        ) from None
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint accepts a TCP connection (always False in offline mode)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlsplit(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _flatten_ground_truth(split: str):
    def fn(truths: list[Any], indices: list[int]) -> dict[str, list[Any]]:
        out = []
        for gt, idx in zip(truths, indices, strict=True):
            try:
                obj = json.loads(gt) if isinstance(gt, str) else gt
            except json.JSONDecodeError as e:
                raise PrepareError(f"{split} row {idx}: ground_truth is not valid JSON ({e})") from None
            if not isinstance(obj, dict):
                kind = type(obj).__name__
                raise PrepareError(f"{split} row {idx}: ground_truth is a {kind}, not an object")
            flat = obj.get("gt_parse", obj)
            if not isinstance(flat, dict):
                raise PrepareError(f"{split} row {idx}: gt_parse is a {type(flat).__name__}, not an object")
            out.append(json.dumps(flat))
        return {"ground_truth": out, "input": [PROMPT] * len(out)}

    return fn


def prepare_w2(
    source: str = DEFAULT_SOURCE,
    *,
    train_ratio: float = 0.3,
    seed: int = 42,
    output_dir: str | Path | None = None,
) -> dict[str, int]:
    """Prepare the W-2 dataset the way the reference recipe does and save it.

    Args:
        source (str): local ``save_to_disk`` directory or HF dataset id.
        train_ratio (float): share of the merged train+test rows that become ``train``.
        seed (int): seed of ``train_test_split``.
        output_dir (str | Path | None): where to save; default
            :func:`default_output_name` in the current directory.

    Returns:
        dict[str, int]: rows per split written (``train``, ``validation``, ``test``).

    Raises:
        PrepareError: missing source, split or column; bad ground truth; existing output.
    """
    import datasets

    if not 0.0 < train_ratio < 1.0:
        raise PrepareError(f"--train-ratio must be between 0 and 1, got {train_ratio}")
    out = Path(output_dir) if output_dir is not None else Path(default_output_name(source, train_ratio))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PrepareError(f"output {out} exists and is not empty; pick a new --output-dir")
    dd = _load(source)
    missing = [s for s in _REQUIRED_SPLITS if s not in dd]
    if missing:
        raise PrepareError(f"{source} lacks split(s) {', '.join(missing)}; it has {', '.join(dd) or 'none'}")
    for split in _REQUIRED_SPLITS:
        cols = dd[split].column_names
        lacking = [c for c in _REQUIRED_COLUMNS if c not in cols]
        if lacking:
            raise PrepareError(f"{source} split {split} lacks column(s) {', '.join(lacking)}; it has {cols}")

    # Without caching, intermediate files go to a temporary directory, not next to the source.
    caching = datasets.is_caching_enabled()
    datasets.disable_caching()
    try:
        # Unwrapping is per row, so doing it before the split (to name source rows in errors)
        # gives the same rows as the recipe, which splits first.
        flat = {
            name: dd[name].map(
                _flatten_ground_truth(name),
                batched=True,
                with_indices=True,
                input_columns=["ground_truth"],  # never decode the images
                desc=f"prepare {name}",
            )
            for name in _REQUIRED_SPLITS
        }
        # Same as load_dataset(name, split="train+test"): train rows first, then test rows.
        merged = datasets.concatenate_datasets([flat["train"], flat["test"]])
        if int(train_ratio * len(merged)) == 0 or len(merged) - int(train_ratio * len(merged)) == 0:
            raise PrepareError(
                f"--train-ratio {train_ratio} of {len(merged)} train+test rows leaves a split empty"
            )
        parts = merged.train_test_split(train_size=train_ratio, seed=seed)
        prepared = datasets.DatasetDict(
            {"train": parts["train"], "validation": flat["validation"], "test": parts["test"]}
        )
        prepared.save_to_disk(str(out))
    finally:
        if caching:
            datasets.enable_caching()
    return {name: len(split) for name, split in prepared.items()}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.prepare_w2",
        description="Merge train+test, re-split by --train-ratio with --seed (HF train_test_split), keep "
        "validation, unwrap gt_parse, add the prompt as column 'input', save_to_disk one directory with "
        "train/validation/test - exactly as the llama-cookbook W-2 recipe prepares its data.",
    )
    p.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help="directory written by torchtune_ext.data.synth w2 (or any save_to_disk DatasetDict with "
        "train/validation/test and columns image, ground_truth), or a HF dataset id "
        f"(default {DEFAULT_SOURCE})",
    )
    p.add_argument(
        "--train-ratio", type=float, default=0.3, help="share of train+test rows for training (default 0.3)"
    )
    p.add_argument("--seed", type=int, default=42, help="train_test_split seed (default 42, the recipe's)")
    p.add_argument(
        "--output-dir",
        default=None,
        help="where to save (default ./<dataset>_train<pct>_test<pct>, e.g. "
        "fake_w2_us_tax_form_dataset_train30_test70)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Args:
        argv (Sequence[str] | None): arguments (default ``sys.argv[1:]``).

    Returns:
        int: exit status (0 ok, 2 bad input).
    """
    import datasets

    args = _parser().parse_args(argv)
    datasets.disable_progress_bars()
    out = args.output_dir or default_output_name(args.source, args.train_ratio)
    try:
        counts = prepare_w2(args.source, train_ratio=args.train_ratio, seed=args.seed, output_dir=out)
    except PrepareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {out}: "
        + ", ".join(f"{n} {c}" for n, c in counts.items())
        + f" (train+test of {args.source} merged and re-split at {args.train_ratio} with seed {args.seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
