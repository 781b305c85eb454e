"""Time the stock torchtune recipes on the tiny configs: seconds per step and peak RSS.

    python benchmarks/tiny_train.py --base-dir out/tiny-llama3.2-vision \\
        --data-dir out/w2_synth_train30_test70 [--steps 10]

Each config runs twice through ``tune run`` (``max_steps_per_epoch`` = 2 and 2 + steps); the
difference of the wall times divided by ``steps`` is the steady-state time per step, free of
the ~10 s of imports and setup. Peak RSS is the training process's own maximum.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from train_11b import cpu_name  # benchmarks/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "full": ("full_finetune_single_device", "configs/tiny/full_w2.yaml"),
    "lora": ("lora_finetune_single_device", "configs/tiny/lora_w2.yaml"),
    "qlora": ("lora_finetune_single_device", "configs/tiny/qlora_w2.yaml"),
}
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
    print(f"machine: {cpu_name()}, {platform.machine()}", flush=True)
    print("| config | s/step | peak RSS (MiB) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            recipe, config = CONFIGS[name]
            short = _run(recipe, config, 2, base, data, Path(tmp) / f"{name}_a")
            long = _run(recipe, config, 2 + args.steps, base, data, Path(tmp) / f"{name}_b")
            per_step = (long["wall"] - short["wall"]) / args.steps
            rss = max(short["rss_kib"], long["rss_kib"]) / 1024
            print(f"| tiny {name} (batch 2) | {per_step:.3f} | {rss:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
