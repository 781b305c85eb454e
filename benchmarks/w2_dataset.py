"""Samples/s of ``torchtune_ext.datasets.w2_dataset`` vs torchtune's stock ``vqa_dataset``, one run.

Both read the same prepared rows (``prepare_w2`` output: columns image / ground_truth / input,
the layout ``vqa_dataset`` takes with ``source: arrow``) through the same model transform, so
each sample costs image decode + tiling + tokenisation in both. Samples alternate between
the two (order flipped every round) so both see the same machine load; the median of the
per-round rates is reported. Startup (building the dataset,
which for ``vqa_dataset`` means ``load_dataset`` copying the arrow file into a fresh HF cache,
and for ours the upfront row checks) is timed separately.

    python benchmarks/w2_dataset.py            # tiny transform (56 px tiles)
    python benchmarks/w2_dataset.py --tile-size 560 --num 60   # 11B-sized tiles
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from readme_tables import markdown_table, publish, readme_argument


def _transform(tile_size: int, workdir: Path):
    from torchtune_ext.models import llama3_2_vision_transform
    from torchtune_ext.models.tiny_tokenizer import SHIPPED_BPE, special_tokens

    specials = workdir / "special_tokens.json"
    specials.write_text(
        json.dumps({"added_tokens": [{"id": i, "content": n} for n, i in special_tokens().items()]})
    )
    return llama3_2_vision_transform(
        str(SHIPPED_BPE),
        special_tokens_path=str(specials),
        tile_size=tile_size,
        max_num_tiles=4,
        patch_size=14,
    )


def _interleaved(ours, stock, n: int, rounds: int) -> dict[str, list[float]]:
    """Samples/s per round; samples alternate between the datasets so both see the same load."""
    rates: dict[str, list[float]] = {"w2_dataset": [], "vqa_dataset": []}
    for r in range(rounds):
        spent = {"w2_dataset": 0.0, "vqa_dataset": 0.0}
        order = [("w2_dataset", ours), ("vqa_dataset", stock)]
        if r % 2:
            order.reverse()
        for i in range(n):
            for name, ds in order:
                start = time.perf_counter()
                ds[i]
                spent[name] += time.perf_counter() - start
        for name, secs in spent.items():
            rates[name].append(n / secs)
    return rates


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num", type=int, default=200, help="forms to generate (the test split, 70%%, is read)")
    p.add_argument("--data-dir", default=None, help="a prepare_w2 output to read instead of generating")
    p.add_argument("--tile-size", type=int, default=56, help="56 (tiny model) or 560 (11B)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per dataset")
    readme_argument(p, "w2_dataset")
    args = p.parse_args(argv)

    import datasets
    from torchtune.datasets.multimodal import vqa_dataset

    from torchtune_ext.data.prepare_w2 import prepare_w2
    from torchtune_ext.data.synth.w2 import write_w2_dataset
    from torchtune_ext.datasets import w2_dataset

    datasets.disable_progress_bars()
    torch.set_num_threads(1)  # per-sample work, as in a DataLoader worker
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.data_dir is None:
            write_w2_dataset(work / "raw", args.num, 0, workers=2)
            data_dir = work / "prepared"
            prepare_w2(str(work / "raw"), train_ratio=0.3, seed=42, output_dir=data_dir)
        else:
            data_dir = Path(args.data_dir)
        transform = _transform(args.tile_size, work)
        arrow = sorted((data_dir / "test").glob("data-*.arrow"))

        t0 = time.perf_counter()
        ours = w2_dataset(transform, data_dir=str(data_dir), split="test")
        t1 = time.perf_counter()
        stock = vqa_dataset(
            transform,
            source="arrow",
            data_files=[str(a) for a in arrow],
            split="train",
            column_map={"input": "input", "output": "ground_truth", "image": "image"},
            cache_dir=str(work / "hf_cache"),
        )
        t2 = time.perf_counter()
        n = len(ours)
        assert n == len(stock), (n, len(stock))
        a, b = ours[0], stock[0]
        assert a["tokens"] == b["tokens"] and a["labels"] == b["labels"]
        assert torch.equal(a["encoder_input"]["images"][0], b["encoder_input"]["images"][0])

        rates = _interleaved(ours, stock, n, args.rounds)
        med = {k: statistics.median(v) for k, v in rates.items()}
        tiles = a["encoder_input"]["images"][0].shape
        print(f"rows: {n} (test split of {data_dir.name}), tile size {args.tile_size}, tiles {tuple(tiles)}")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"cores {os.cpu_count()}, load average {load}")
        print(f"tokens per sample: {len(a['tokens'])}; torch threads: {torch.get_num_threads()}")
        rows = []
        for name, startup in (("w2_dataset (ours)", t1 - t0), ("vqa_dataset (stock)", t2 - t1)):
            key = name.split()[0]
            r = rates[key]
            rows.append([name, f"{startup:.2f}", f"{med[key]:.1f}", f"{min(r):.1f}", f"{max(r):.1f}"])
        ratio = med["w2_dataset"] / med["vqa_dataset"]
        table = markdown_table(
            ["dataset", "startup s", f"samples/s (median of {args.rounds})", "min", "max"], rows
        ) + (
            f"\n\nratio ours/stock samples/s: **{ratio:.2f}** ({n} rows, tile size {args.tile_size}, "
            f"{len(a['tokens'])} tokens per sample, 1 torch thread, load average {load})"
        )
        print(table)
        print(f"ratio stock/ours startup: {(t2 - t1) / (t1 - t0):.2f}")
        if args.readme:
            publish(args.readme, "w2_dataset", table, ["benchmarks/w2_dataset.py", *(argv or sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
