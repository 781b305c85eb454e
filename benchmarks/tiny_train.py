"""Time our recipes against torchtune's stock ones on the tiny configs: seconds per step and peak RSS.

    python benchmarks/tiny_train.py --base-dir out/tiny-llama3.2-vision \\
        --data-dir out/w2_synth_train30_test70 [--steps 10] [--configs full lora qlora] \\
        [--readme configs/README.md]

Each config runs through ``tune run`` with the stock recipe (``full_finetune_single_device``,
``lora_finetune_single_device``) and with ours (``torchtune_ext/recipes/full_finetune_vision.py``,
``lora_finetune_vision.py``), on the same config, data and seed, in the same invocation (the
stock configs have no ``dataset_val``, so ours does not validate: this measures the training
step, logging and checkpointing). Each pair runs twice (``max_steps_per_epoch`` = 2 and
2 + steps); the difference of the wall times divided by ``steps`` is the steady-state time per
step, free of the ~10 s of imports and setup. Peak RSS is the training process's own maximum.
The table gives both and ours / stock.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

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
# Runs one command and prints its wall time and the child's peak RSS (KiB on Linux).
_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:], capture_output=True).returncode\n"
    "print(json.dumps({'rc': rc, 'wall': time.perf_counter() - t,"
    " 'rss_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def _run(recipe: str, config: str, steps: int, base: Path, data: Path, out: Path) -> dict:
    cmd = [
        str(Path(sys.executable).parent / "tune"), "run", recipe, "--config", config,
        f"base_dir={base}", f"data_dir={data}", f"output_dir={out}",
        "epochs=1", f"max_steps_per_epoch={steps}", "batch_size=2",
    ]  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], cwd=REPO, capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed (exit {result['rc']})")
    return result


def measure(name: str, kind: str, steps: int, base: Path, data: Path, tmp: Path) -> tuple[float, float]:
    """Seconds per step and peak RSS (MiB) of one recipe on one tiny config.

    Args:
        name (str): a key of :data:`CONFIGS`.
        kind (str): ``stock`` or ``ours``.
        steps (int): timed steps (the difference of two runs).
        base (Path): the tiny checkpoint.
        data (Path): the prepared W-2 data.
        tmp (Path): scratch directory.

    Returns:
        tuple[float, float]: s/step and peak RSS in MiB.
    """
    stock, ours, config = CONFIGS[name]
    recipe = stock if kind == "stock" else ours
    short = _run(recipe, config, 2, base, data, tmp / f"{name}_{kind}_a")
    long = _run(recipe, config, 2 + steps, base, data, tmp / f"{name}_{kind}_b")
    return (long["wall"] - short["wall"]) / steps, max(short["rss_kib"], long["rss_kib"]) / 1024


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
    parser.add_argument("--steps", type=int, default=10)
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
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    if args.readme and not Path(args.readme).is_file():
        parser.error(f"--readme {args.readme}: no such file")
    print(f"machine: {machine()}", flush=True)
    header = [
        "config (batch 2)", "stock s/step", "ours s/step", "ours / stock",
        "stock peak RSS (MiB)", "ours peak RSS (MiB)", "ours / stock",
    ]  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            (s_step, s_rss), (o_step, o_rss) = (
                measure(name, kind, args.steps, base, data, Path(tmp)) for kind in RECIPES
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
