"""Time our recipes against torchtune's stock ones on the tiny configs: seconds per step and peak RSS.

    python benchmarks/tiny_train.py --base-dir out/tiny-llama3.2-vision \\
        --data-dir out/w2_synth_train30_test70 [--steps 10] [--configs full lora qlora] \\
        [--readme configs/README.md]

Each config runs through ``tune run`` with the stock recipe (``full_finetune_single_device``,
``lora_finetune_single_device``) and with ours (``torchtune_ext/recipes/full_finetune_vision.py``,
``lora_finetune_vision.py``), on the same config, data and seed, in the same invocation (the
stock configs have no ``dataset_val``, so ours does not validate: this measures the training
step, logging and checkpointing). Both recipes print ``epoch|step|Loss: ...`` after every
optimizer step; the benchmark stamps each as it arrives and reports the median time between
steps after the first two (warm-up), so the ~10 s of imports and setup, which vary from run to
run, do not enter. Each recipe runs ``--repeats`` times, alternating stock and ours, and the
median over the repeats is taken. Peak RSS is the training process's own maximum
(``wait4``). The table gives both and ours / stock.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from datasets import load_from_disk
from readme_tables import machine, markdown_table, publish, readme_argument  # benchmarks/ is sys.path[0]

REPO = Path(__file__).resolve().parents[1]
#: config name -> (stock recipe, our recipe, config file)
CONFIGS = {
    "full": (
        "full_finetune_single_device",
        "torchtune_ext/recipes/full_finetune_vision.py",
        "configs/tiny/full_w2.yaml",
    ),
    "lora": (
        "lora_finetune_single_device",
        "torchtune_ext/recipes/lora_finetune_vision.py",
        "configs/tiny/lora_w2.yaml",
    ),
    "qlora": (
        "lora_finetune_single_device",
        "torchtune_ext/recipes/lora_finetune_vision.py",
        "configs/tiny/qlora_w2.yaml",
    ),
}
RECIPES = ("stock", "ours")
_STEP = re.compile(rb"(\d+)\|(\d+)\|Loss")


def _run(
    recipe: str, config: str, steps: int, per_epoch: int, base: Path, data: Path, out: Path
) -> tuple[list[float], int]:
    """Run one ``tune run``; return the arrival time of each step's progress line and the peak RSS (KiB)."""
    cmd = [
        str(Path(sys.executable).parent / "tune"), "run", recipe, "--config", config,
        f"base_dir={base}", f"data_dir={data}", f"output_dir={out}",
        f"epochs={-(-steps // per_epoch)}", f"max_steps_per_epoch={per_epoch}", "batch_size=2",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    stamps: dict[int, float] = {}
    tail, log = b"", bytearray()
    while chunk := os.read(proc.stderr.fileno(), 65536):
        now = time.perf_counter()
        log += chunk
        *lines, tail = re.split(rb"[\r\n]", tail + chunk)
        for line in lines:
            for match in _STEP.finditer(line):
                stamps.setdefault(int(match.group(2)), now)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        last = bytes(log).decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"error: {' '.join(cmd)} failed (exit {proc.returncode}): {' / '.join(last)}")
    if len(stamps) < 4:
        raise SystemExit(f"error: {' '.join(cmd)}: saw {len(stamps)} of {steps} step lines")
    return [stamps[k] for k in sorted(stamps)], usage.ru_maxrss


def measure(
    name: str, kind: str, steps: int, per_epoch: int, base: Path, data: Path, tmp: Path
) -> tuple[float, float]:
    """Seconds per step and peak RSS (MiB) of one recipe on one tiny config, one run.

    Args:
        name (str): a key of :data:`CONFIGS`.
        kind (str): ``stock`` or ``ours``.
        steps (int): optimizer steps to run, over as many epochs of the training split as that
            takes (the first two are not timed; the median discounts the epoch-end saves).
        per_epoch (int): optimizer steps in one epoch of the training split.
        base (Path): the tiny checkpoint.
        data (Path): the prepared W-2 data.
        tmp (Path): scratch directory.

    Returns:
        tuple[float, float]: median s/step after the first two steps, and peak RSS in MiB.
    """
    stock, ours, config = CONFIGS[name]
    recipe = stock if kind == "stock" else ours
    times, rss_kib = _run(recipe, config, steps, per_epoch, base, data, tmp / f"{name}_{kind}")
    gaps = [b - a for a, b in zip(times[2:], times[3:], strict=False)]
    return statistics.median(gaps), rss_kib / 1024


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table.

    Args:
        argv (list[str] | None): arguments.

    Returns:
        int: exit status.
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument(
        "--steps", type=int, default=20, help="optimizer steps per run (>= 4; the first 2 untimed)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per recipe and config, alternating (median)"
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    readme_argument(parser, "tiny_train")
    args = parser.parse_args(argv)
    base, data = args.base_dir.resolve(), args.data_dir.resolve()
    if not (base / "config.json").is_file():
        parser.error(
            f"--base-dir {base}: no config.json (build one with python -m torchtune_ext.models.make_tiny)"
        )
    if not (data / "train").is_dir():
        parser.error(
            f"--data-dir {data}: no train/ split (python -m torchtune_ext.data.prepare_w2 writes one)"
        )
    if args.steps < 4 or args.repeats < 1:
        parser.error("--steps must be >= 4 and --repeats >= 1")
    if args.readme and not Path(args.readme).is_file():
        parser.error(f"--readme {args.readme}: no such file")
    print(f"machine: {machine()}", flush=True)
    header = [
        "config (batch 2)", "stock s/step", "ours s/step", "ours / stock",
        "stock peak RSS (MiB)", "ours peak RSS (MiB)", "ours / stock",
    ]  # fmt: skip
    rows = []
    per_epoch = max(1, len(load_from_disk(str(data / "train"))) // 2)  # batch 2
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind in RECIPES}
            for _ in range(args.repeats):
                for kind in RECIPES:
                    runs[kind].append(measure(name, kind, args.steps, per_epoch, base, data, Path(tmp)))
            (s_step, s_rss), (o_step, o_rss) = (
                (statistics.median(t for t, _ in runs[k]), max(r for _, r in runs[k])) for k in RECIPES
            )
            ratio = f"{o_step / s_step:.2f}" if s_step > 0 else "n/a"
            rows.append(
                [
                    f"tiny {name}",
                    f"{s_step:.3f}",
                    f"{o_step:.3f}",
                    ratio,
                    f"{s_rss:.0f}",
                    f"{o_rss:.0f}",
                    f"{o_rss / s_rss:.2f}",
                ]
            )
            print(f"tiny {name}: {' | '.join(rows[-1][1:])}", flush=True)
    table = markdown_table(header, rows)
    print(table)
    if args.readme:
        publish(args.readme, "tiny_train", table, ["benchmarks/tiny_train.py", *(argv or sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
