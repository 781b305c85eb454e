"""Synthetic W-2 dataset in the layout of ``singhsays/fake-w2-us-tax-form-dataset``.

Writes a Hugging Face ``DatasetDict`` with ``save_to_disk`` (one subdirectory per split),
columns ``image`` (HF ``Image``) and ``ground_truth`` (the JSON string
``{"gt_parse": {...45 flat keys...}}``), which :mod:`torchtune_ext.data.prepare_w2` and
:func:`torchtune_ext.datasets.w2_dataset` read like the real dataset.

Example::

    python -m torchtune_ext.data.synth w2 --num 2000 --output-dir data/synth_w2 --seed 0

Form ``i`` depends only on ``(seed, i)``, so the output is identical for any worker count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from eval.tasks.w2 import W2Form
from torchtune_ext.data.synth.scan import SCAN_PRESET, ScanNoise, apply_scan_noise, encode_image
from torchtune_ext.data.synth.w2_layout import render_w2
from torchtune_ext.data.synth.w2_values import sample_w2

__all__ = [
    "DEFAULT_SPLITS",
    "make_w2",
    "iter_w2",
    "parse_splits",
    "build_w2_dataset",
    "write_w2_dataset",
    "add_arguments",
    "run",
]

#: The reference dataset's proportions (1,800 / 100 / 100 of 2,000).
DEFAULT_SPLITS = "train=0.9,validation=0.05,test=0.05"


def make_w2(
    seed: int, index: int, width: int = 612, height: int = 792, scan: ScanNoise | None = None
) -> tuple[bytes, str]:
    """Render form ``index`` of the dataset with ``seed``.

    Args:
        seed (int): dataset seed.
        index (int): form number; with ``seed`` it fixes every random choice.
        width (int): page width in px.
        height (int): page height in px.
        scan (ScanNoise | None): scan artefacts (None: a clean print, PNG).

    Returns:
        tuple[bytes, str]: the encoded image and the ``ground_truth`` JSON string
        (``{"gt_parse": {...}}``).

    Raises:
        pydantic.ValidationError: if the record does not match ``W2Form`` (a generator bug).
    """
    scan = scan or ScanNoise()
    rng = np.random.default_rng([seed, index])
    sample = sample_w2(rng)
    W2Form.model_validate(sample.record)
    img = render_w2(sample, rng, width=width, height=height)
    if scan.active:
        img = apply_scan_noise(img, scan, rng)
    return encode_image(img, scan.jpeg_quality), json.dumps({"gt_parse": sample.record})


def _make_star(args: tuple[int, int, int, int, ScanNoise | None]) -> tuple[bytes, str]:
    return make_w2(*args)


def iter_w2(
    num: int,
    seed: int = 0,
    *,
    width: int = 612,
    height: int = 792,
    scan: ScanNoise | None = None,
    workers: int = 1,
) -> Iterator[tuple[bytes, str]]:
    """Yield ``num`` forms in order, rendered by ``workers`` processes.

    Args:
        num (int): number of forms.
        seed (int): dataset seed.
        width (int): page width in px.
        height (int): page height in px.
        scan (ScanNoise | None): scan artefacts.
        workers (int): processes (1 renders in this process).

    Yields:
        tuple[bytes, str]: (encoded image, ground-truth JSON) for forms ``0 .. num-1``.
    """
    jobs = ((seed, i, width, height, scan) for i in range(num))
    if workers <= 1 or num < 32:
        yield from map(_make_star, jobs)
        return
    # fork keeps workers cheap (no re-import); spawn where fork does not exist.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers) as pool:
        yield from pool.imap(_make_star, jobs, chunksize=16)


def parse_splits(spec: str, num: int) -> dict[str, int]:
    """Turn ``"train=1800,validation=100,test=100"`` or ratios into row counts.

    Args:
        spec (str): comma-separated ``name=value``; all values counts (summing to ``num``) or
            all ratios (summing to 1; rounding remainders go to the first split).
        num (int): total number of forms.

    Returns:
        dict[str, int]: rows per split, in the order given.

    Raises:
        ValueError: on a malformed spec, a repeated name, or sums that do not match.
    """
    items: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"bad split {part!r} in {spec!r}: expected name=count or name=ratio")
        try:
            items.append((name, float(value)))
        except ValueError:
            raise ValueError(f"bad split {part!r} in {spec!r}: {value!r} is not a number") from None
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(f"split names repeat in {spec!r}")
    values = [v for _, v in items]
    if any(v < 0 for v in values):
        raise ValueError(f"negative split size in {spec!r}")
    if all(v == int(v) for v in values) and sum(values) == num:
        return {n: int(v) for n, v in items}
    if abs(sum(values) - 1.0) < 1e-6 and all(v <= 1 for v in values):
        counts = [int(v * num) for v in values]
        counts[0] += num - sum(counts)
        return dict(zip(names, counts, strict=True))
    raise ValueError(f"splits {spec!r} must be counts summing to --num {num} or ratios summing to 1")


def build_w2_dataset(
    num: int,
    seed: int = 0,
    *,
    splits: str | dict[str, int] = DEFAULT_SPLITS,
    width: int = 612,
    height: int = 792,
    scan: ScanNoise | None = None,
    workers: int = 1,
):  # -> datasets.DatasetDict (imported lazily: datasets is slow to import)
    """Generate a synthetic W-2 ``DatasetDict`` in memory.

    Args:
        num (int): number of forms over all splits.
        seed (int): dataset seed.
        splits (str | dict[str, int]): split spec (see :func:`parse_splits`) or counts.
        width (int): page width in px.
        height (int): page height in px.
        scan (ScanNoise | None): scan artefacts.
        workers (int): rendering processes.

    Returns:
        datasets.DatasetDict: columns ``image`` and ``ground_truth`` per split.
    """
    from datasets import Dataset, DatasetDict, Features, Image, Value

    counts = parse_splits(splits, num) if isinstance(splits, str) else dict(splits)
    if sum(counts.values()) != num:
        raise ValueError(f"split counts {counts} do not add up to {num}")
    features = Features({"image": Image(), "ground_truth": Value("string")})
    forms = iter_w2(num, seed, width=width, height=height, scan=scan, workers=workers)
    out = {}
    for name, count in counts.items():
        images: list[dict[str, bytes | None]] = []
        truths: list[str] = []
        for _ in range(count):
            image, truth = next(forms)
            images.append({"bytes": image, "path": None})
            truths.append(truth)
        out[name] = Dataset.from_dict({"image": images, "ground_truth": truths}, features=features)
    return DatasetDict(out)


def write_w2_dataset(output_dir: str | Path, num: int, seed: int = 0, **kwargs) -> dict[str, int]:
    """Generate and ``save_to_disk`` a synthetic W-2 dataset.

    Args:
        output_dir (str | Path): target directory (must not exist or be empty).
        num (int): number of forms.
        seed (int): dataset seed.
        **kwargs: ``splits``, ``width``, ``height``, ``scan``, ``workers`` as in
            :func:`build_w2_dataset`.

    Returns:
        dict[str, int]: rows written per split.

    Raises:
        FileExistsError: if ``output_dir`` exists and is not empty.
    """
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; pick a new --output-dir")
    ds = build_w2_dataset(num, seed, **kwargs)
    ds.save_to_disk(str(out))
    return {name: len(split) for name, split in ds.items()}


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The generator's flags (``python -m torchtune_ext.data.synth w2 --help``).

    Args:
        p (argparse.ArgumentParser): the ``w2`` subcommand's parser.
    """
    p.description = (
        "Render synthetic W-2 forms with consistent ground truth, saved in the layout of "
        "singhsays/fake-w2-us-tax-form-dataset (HF save_to_disk; columns image, ground_truth)."
    )
    p.add_argument("--num", type=int, default=2000, help="number of forms over all splits (default 2000)")
    p.add_argument("--output-dir", required=True, help="directory to create (must be new or empty)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed; same seed, same bytes (default 0)")
    p.add_argument("--width", type=int, default=612, help="page width in px (default 612)")
    p.add_argument("--height", type=int, default=792, help="page height in px (default 792)")
    p.add_argument(
        "--splits",
        default=DEFAULT_SPLITS,
        help=f"name=count,... summing to --num, or name=ratio,... summing to 1 (default {DEFAULT_SPLITS})",
    )
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPUs available)")
    g = p.add_argument_group("scan realism (all off by default; each form draws up to the given maximum)")
    g.add_argument(
        "--scan-noise",
        action="store_true",
        help=f"preset: rotate {SCAN_PRESET.rotate}, blur {SCAN_PRESET.blur}, noise {SCAN_PRESET.noise}, "
        f"contrast {SCAN_PRESET.contrast}, JPEG {SCAN_PRESET.jpeg_quality}; the flags below override it",
    )
    g.add_argument("--rotate", type=float, default=None, help="max skew in degrees")
    g.add_argument("--blur", type=float, default=None, help="max Gaussian blur radius in px")
    g.add_argument("--noise", type=float, default=None, help="max std of additive pixel noise (0-255)")
    g.add_argument("--contrast", type=float, default=None, help="max relative contrast change, e.g. 0.2")
    g.add_argument("--jpeg-quality", type=int, default=None, help="store JPEG at this quality (0: PNG)")


def run(args: argparse.Namespace) -> int:
    """Write the dataset the parsed flags describe.

    Args:
        args (argparse.Namespace): from :func:`add_arguments`.

    Returns:
        int: exit status (0 ok, 2 bad input, with ``error: ...`` on stderr).
    """
    import datasets

    datasets.disable_progress_bars()
    base = SCAN_PRESET if args.scan_noise else ScanNoise()
    try:
        if args.num < 1:
            raise ValueError(f"--num must be >= 1, got {args.num}")
        if args.width < 32 or args.height < 32:
            raise ValueError(f"--width/--height must be >= 32 px, got {args.width}x{args.height}")
        scan = ScanNoise(
            rotate=base.rotate if args.rotate is None else args.rotate,
            blur=base.blur if args.blur is None else args.blur,
            noise=base.noise if args.noise is None else args.noise,
            contrast=base.contrast if args.contrast is None else args.contrast,
            jpeg_quality=base.jpeg_quality if args.jpeg_quality is None else args.jpeg_quality,
        )
        parse_splits(args.splits, args.num)
        workers = args.workers if args.workers is not None else _default_workers()
        start = time.perf_counter()
        counts = write_w2_dataset(
            args.output_dir,
            args.num,
            args.seed,
            splits=args.splits,
            width=args.width,
            height=args.height,
            scan=scan,
            workers=workers,
        )
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    secs = time.perf_counter() - start
    split_text = ", ".join(f"{n} {c}" for n, c in counts.items())
    print(
        f"wrote {args.num} W-2 forms ({split_text}) to {args.output_dir} "
        f"in {secs:.1f} s ({args.num / secs:.0f} images/s, {workers} worker(s))"
    )
    return 0
