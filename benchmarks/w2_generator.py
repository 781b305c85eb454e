"""Images/s of the synthetic W-2 generator, serial vs all cores, written to disk like the CLI.

    python benchmarks/w2_generator.py                 # 2,000 forms, 612x792
    python benchmarks/w2_generator.py --scan-noise    # with the scan preset (JPEG)

The parallel run is the full ``python -m torchtune_ext.data.synth w2`` path (render, encode,
``save_to_disk``); the serial run renders fewer forms in one process as the reference.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from readme_tables import markdown_table, publish, readme_argument  # benchmarks/ is sys.path[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num", type=int, default=2000, help="forms in the parallel run (default 2000)")
    p.add_argument("--serial-num", type=int, default=300, help="forms in the one-process run (default 300)")
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="parallel processes")
    p.add_argument("--width", type=int, default=612)
    p.add_argument("--height", type=int, default=792)
    p.add_argument("--scan-noise", action="store_true", help="apply the scan preset (JPEG output)")
    readme_argument(p, "w2_generator")
    args = p.parse_args(argv)

    import datasets

    from torchtune_ext.data.synth.scan import SCAN_PRESET, ScanNoise
    from torchtune_ext.data.synth.w2 import make_w2, write_w2_dataset

    datasets.disable_progress_bars()
    scan = SCAN_PRESET if args.scan_noise else ScanNoise()
    make_w2(0, 0, args.width, args.height, scan)  # fonts and blank form cached, as in a worker

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    cpu0 = cpu()
    start = time.perf_counter()
    total = 0
    for i in range(args.serial_num):
        total += len(make_w2(0, i, args.width, args.height, scan)[0])
    serial_s = time.perf_counter() - start
    serial_cpu = cpu() - cpu0

    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = cpu()
        start = time.perf_counter()
        write_w2_dataset(
            Path(tmp) / "w2",
            args.num,
            0,
            width=args.width,
            height=args.height,
            scan=scan,
            workers=args.workers,
        )
        parallel_s = time.perf_counter() - start
        parallel_cpu = cpu() - cpu0  # workers are reaped when the pool closes
        size = sum(f.stat().st_size for f in (Path(tmp) / "w2").rglob("*.arrow"))

    serial_rate = args.serial_num / serial_s
    parallel_rate = args.num / parallel_s
    noise = "on" if args.scan_noise else "off"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = markdown_table(
        ["run", "forms", "wall s", "images/s", "CPU s", "CPU ms/form"],
        [
            ["1 process, render + encode only", args.serial_num, f"{serial_s:.1f}", f"{serial_rate:.1f}",
             f"{serial_cpu:.1f}", f"{1000 * serial_cpu / args.serial_num:.1f}"],
            [f"{args.workers} workers, full CLI path", args.num, f"{parallel_s:.1f}", f"{parallel_rate:.1f}",
             f"{parallel_cpu:.1f}", f"{1000 * parallel_cpu / args.num:.1f}"],
        ],
    ) + (
        f"\n\nPage {args.width}×{args.height}, scan noise {noise}, load average {load}; mean image "
        f"{total / args.serial_num / 1024:.1f} KiB, dataset on disk {size / 2**20:.1f} MiB; ratio "
        f"parallel/serial images/s **{parallel_rate / serial_rate:.2f}**."
    )  # fmt: skip
    print(table)
    idle = 2000 * parallel_cpu / args.num / args.workers
    print(f"2,000 forms on {args.workers} idle cores (CPU time / cores): {idle:.1f} s")
    if args.readme:
        publish(args.readme, "w2_generator", table, ["benchmarks/w2_generator.py", *(argv or sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
